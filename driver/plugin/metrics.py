"""Prometheus metrics and the plugin's HTTP endpoint (/healthz, /metrics).

Each Plugin gets its own registry: the local cluster runs several plugins in one process and
the default global registry would mix (and refuse to re-register) their series.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 45)


@dataclass
class Metrics:
    """The plugin's series, in a registry of its own."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.prepare_seconds = Histogram(
            "gpu_dra_prepare_seconds", "NodePrepareResources latency per claim", registry=r, buckets=_BUCKETS)
        self.unprepare_seconds = Histogram(
            "gpu_dra_unprepare_seconds", "NodeUnprepareResources latency per claim", registry=r, buckets=_BUCKETS)
        self.errors = Counter(
            "gpu_dra_claim_errors", "Claims whose prepare or unprepare failed", ["operation"], registry=r)
        self.prepared_devices = Gauge(
            "gpu_dra_prepared_devices", "Devices currently prepared on this node", registry=r)
        self.published_devices = Gauge(
            "gpu_dra_published_devices", "Devices published in this node's ResourceSlices", registry=r)
        self.unhealthy_devices = Gauge(
            "gpu_dra_unhealthy_devices", "Published devices currently tainted unhealthy", registry=r)
        self.publish_errors = Counter(
            "gpu_dra_publish_errors", "Failed ResourceSlice publish attempts", registry=r)


class HttpEndpoint:
    """/healthz answers 200 while `healthy()` is true (503 otherwise); /metrics is Prometheus."""

    def __init__(self, metrics: Metrics, healthy: Callable[[], tuple[bool, str]], port: int, host: str = "0.0.0.0"):
        registry = metrics.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                if self.path.split("?")[0] == "/metrics":
                    body, status, ctype = generate_latest(registry), 200, CONTENT_TYPE_LATEST
                elif self.path.split("?")[0] in ("/healthz", "/readyz", "/livez"):
                    ok, reason = healthy()
                    body, status, ctype = (reason or "ok").encode() + b"\n", 200 if ok else 503, "text/plain"
                else:
                    body, status, ctype = b"not found\n", 404, "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass  # probes every few seconds would drown the log

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="plugin-http", daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
