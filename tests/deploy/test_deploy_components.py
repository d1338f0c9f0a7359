"""The chart's command lines start the real components: `gpu-dra kubelet-plugin` and
`gpu-dra controller` run as subprocesses with exactly the arguments and config files the chart
renders (host paths moved into a temporary directory, --kubeconfig added), against the local
cluster. The plugin must publish its node's devices and answer /healthz; the controller must win
the Lease the chart's Role allows and answer /healthz."""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from deploy_support import NAMESPACE, of_kind, one, render

NODE = "gpu-node-0"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A one-node local cluster without plugins or controller: the subprocesses are those."""
    from driver.local.cluster import LocalCluster

    workdir = tmp_path_factory.mktemp("cluster")
    description = workdir / "cluster.yaml"
    description.write_text(yaml.safe_dump({"nodes": [
        {"name": NODE, "cpu": "32", "memory": "256Gi", "nvml": "a100-80gb-x8", "sharing": {"mode": "fractional"}}]}))
    with LocalCluster(description, workdir=workdir, plugin_factory=None) as running:
        yield running


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Component:
    """A component started as a subprocess, its JSON log lines read by a thread into a queue.

    Waiting with select() on the pipe would miss lines already pulled into the file object's
    buffer by an earlier readline(), so one reader thread owns the pipe. Events are kept once
    read: the component's threads log in no fixed order (slices may be published before
    `plugin_started` is logged), so a wait must also find an event read while waiting for another.
    """

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "driver", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env={**os.environ, **env})
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)  # end of output: the process exited


def _start(args: list[str], env: dict[str, str]) -> _Component:
    return _Component(args, env)


def _wait_event(component: _Component, event: str, timeout: float = 60) -> dict[str, Any]:
    """Read the component's JSON log lines until `event` (or its exit, or the timeout)."""
    for record in component.events:
        if record.get("event") == event:
            return record
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        try:
            line = component.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line.rstrip())
        try:
            record = json.loads(line)
        except ValueError:
            continue
        component.events.append(record)
        if record.get("event") == event:
            return record
    component.proc.kill()
    raise AssertionError(f"no {event!r} event (exit code {component.proc.poll()}); last lines:\n" + "\n".join(seen[-15:]))


def _stop(component: _Component) -> None:
    proc = component.proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _healthz(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
        return response.status


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]["containers"][0]


def _relocated(args: list[str], moves: dict[str, str]) -> list[str]:
    """The chart's args with the flags in `moves` given new values (host paths -> temp dirs)."""
    out = []
    for arg in args:
        flag = arg.split("=", 1)[0]
        out.append(f"{flag}={moves[flag]}" if flag in moves else arg)
    return out


def test_plugin_starts_with_the_charts_arguments(cluster: Any, tmp_path: Path) -> None:
    objects = render({"nvml": "mock:a100-80gb-x8", "plugin": {"nodeGroups": [
        {"name": "frac", "sharing": {"mode": "fractional"}, "nodeSelector": {"gpu.nvidia.com/sharing": "fractional"}}]}})
    (ds,) = of_kind(objects, "DaemonSet")
    config = tmp_path / "node-config.yaml"
    config.write_text(one(objects, "ConfigMap", "gpu-dra-kubelet-plugin-frac")["data"]["node-config.yaml"])
    root = Path(tempfile.mkdtemp(prefix="gd-", dir="/tmp"))  # unix socket paths are limited to 107 bytes
    args = _relocated(_container(ds)["args"], {
        "--config": str(config), "--plugin-dir": str(root / "p"), "--registry-dir": str(root / "r"),
        "--cdi-root": str(root / "c"), "--state-dir": str(root / "s"), "--health-port": "0"})
    for name in ("p", "r", "c", "s"):
        (root / name).mkdir()
    proc = _start([*args, f"--kubeconfig={cluster.kubeconfig}"], {"NODE_NAME": NODE, "POD_UID": "uid-1"})
    try:
        started = _wait_event(proc, "plugin_started")
        assert started["node"] == NODE and started["devices"] == 8
        _wait_event(proc, "slices_published")
        assert _healthz(started["health_port"]) == 200
        from kubernetes import client

        raw = client.ResourceV1Api(cluster.api_client()).list_resource_slice(
            field_selector=f"spec.nodeName={NODE}", _preload_content=False)
        devices = [d for s in json.loads(raw.data)["items"] for d in s["spec"]["devices"]]
        assert len(devices) == 8 and all(d.get("allowMultipleAllocations") for d in devices)
    finally:
        _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


def test_controller_starts_with_the_charts_arguments_and_wins_the_lease(cluster: Any, tmp_path: Path) -> None:
    from kubernetes import client

    objects = render({"controller": {"packing": {"strategy": "spread"}}})
    deployment = one(objects, "Deployment", "gpu-dra-controller")
    config = tmp_path / "packing.yaml"
    config.write_text(one(objects, "ConfigMap", "gpu-dra-controller")["data"]["packing.yaml"])
    port = _free_port()
    args = _relocated(_container(deployment)["args"], {"--config": str(config), "--metrics-port": str(port)})
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    proc = _start([*args, f"--kubeconfig={cluster.kubeconfig}"], {"POD_NAME": "gpu-dra-controller-0", "POD_NAMESPACE": NAMESPACE})
    try:
        assert _wait_event(proc, "controller_started")["strategy"] == "spread"
        _wait_event(proc, "leader_started")
        assert _healthz(port) == 200
        (role,) = of_kind(objects, "Role")
        (lease_name,) = role["rules"][1]["resourceNames"]
        lease = client.CoordinationV1Api(cluster.api_client()).read_namespaced_lease(lease_name, NAMESPACE)
        assert lease.spec.holder_identity == "gpu-dra-controller-0"
    finally:
        _stop(proc)
