"""Prometheus metrics and the /metrics + /healthz endpoint of the controller.

Each controller gets its own registry (tests run two controllers in one process). Allocated
shares are computed at scrape time from the informer caches through a callback, so a scrape
always shows the cluster as the controller sees it and nothing has to keep gauges in sync.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# (node, gpu, mode, share 0..1)
ShareSource = Callable[[], Iterable[tuple[str, str, str, float]]]


class _ShareCollector(Collector):
    def __init__(self, source: ShareSource) -> None:
        self.source = source

    def collect(self):  # type: ignore[no-untyped-def]
        gpu = GaugeMetricFamily(
            "gpu_dra_gpu_allocated_share", "Allocated share of each physical GPU (0..1)", labels=["node", "gpu", "mode"]
        )
        node = GaugeMetricFamily(
            "gpu_dra_node_allocated_gpus", "Allocated GPUs on each node (sum of GPU shares)", labels=["node"]
        )
        node_share = GaugeMetricFamily(
            "gpu_dra_node_allocated_share", "Allocated share of the node's GPUs (0..1)", labels=["node"]
        )
        per_node: dict[str, list[float]] = {}
        for n, g, mode, share in self.source():
            gpu.add_metric([n, g, mode], share)
            per_node.setdefault(n, []).append(share)
        for n, shares in sorted(per_node.items()):
            node.add_metric([n], sum(shares))
            node_share.add_metric([n], sum(shares) / len(shares) if shares else 0.0)
        yield gpu
        yield node
        yield node_share


class Metrics:
    """The controller's instruments, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.queue_depth = Gauge("gpu_dra_queue_depth", "Pods waiting in the scheduling queue", ["state"], registry=r)
        self.attempts = Counter(
            "gpu_dra_scheduling_attempts", "Scheduling attempts by result", ["result"], registry=r
        )
        self.latency = Histogram(
            "gpu_dra_scheduling_attempt_duration_seconds",
            "Time of one scheduling attempt (decision + API writes + binding)",
            ["result"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.e2e = Histogram(
            "gpu_dra_pod_scheduling_duration_seconds",
            "Time from a pod's first attempt to its binding",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.leader = Gauge("gpu_dra_leader", "1 while this controller holds the leader Lease", registry=r)
        self.relists = Counter("gpu_dra_informer_relists", "Re-lists after a watch expired (410)", registry=r)

    def watch_shares(self, source: ShareSource) -> None:
        self.registry.register(_ShareCollector(source))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """/metrics (Prometheus text) and /healthz (200 while `healthy()` is true) on one port."""

    def __init__(self, metrics: Metrics, healthy: Callable[[], bool], port: int, host: str = "0.0.0.0") -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, CONTENT_TYPE, metrics.render())
                elif path in ("/healthz", "/livez", "/readyz"):
                    ok = healthy()
                    self._send(200 if ok else 503, "text/plain", b"ok\n" if ok else b"unhealthy\n")
                else:
                    self._send(404, "text/plain", b"not found: try /metrics or /healthz\n")

            def _send(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # silence per-request stderr lines
                return

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)
        outer._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
