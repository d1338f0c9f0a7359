"""`gpu-dra controller` as a real process: schedules, serves /healthz and /metrics, leads through
its Lease, and on SIGTERM finishes, releases the Lease and exits 0."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from ctl_helpers import Api, claim, claim_spec, gpu_devices, node, pod, resource_slice
from wait_helpers import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_controller_process_schedules_serves_metrics_and_stops_cleanly(server, api: Api) -> None:
    api.create(node("n1"))
    api.create(resource_slice("n1", gpu_devices("n1", 1)))
    api.create(claim("c", claim_spec()))
    api.create(pod("p", {"gpu": "c"}))
    port = free_port()
    exe = Path(sys.executable).with_name("gpu-dra")
    proc = subprocess.Popen(
        [str(exe), "--log-level", "warning", "controller", "--kubeconfig", str(server.kubeconfig_path),
         "--leader-elect", "--lease-namespace", "default", "--identity", "test-controller",
         "--metrics-port", str(port), "--config", "/dev/null"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: api.pod("p")["spec"].get("nodeName"), 30, "the pod bound by the process") == "n1"
        base = f"http://127.0.0.1:{port}"
        assert urllib.request.urlopen(base + "/healthz", timeout=5).read() == b"ok\n"
        assert b"gpu_dra_leader 1.0" in urllib.request.urlopen(base + "/metrics", timeout=5).read()
        lease = api.kube.call(api.kube.coordination.read_namespaced_lease, "gpu-dra-controller", "default")
        assert lease["spec"]["holderIdentity"] == "test-controller"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    lease = api.kube.call(api.kube.coordination.read_namespaced_lease, "gpu-dra-controller", "default")
    assert lease["spec"]["holderIdentity"] == ""  # handed over, not left to expire
