"""Crash safety: the plugin process is SIGKILLed at each step of a prepare and restarted; the
next prepare/unprepare converges and nothing leaks (CDI files, MIG instances, MPS daemons)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest

from driver.local.server import ApiServer
from driver.plugin.kube import Kube, api_client
from driver.plugin.state import CRASH_POINTS

from plugin_harness import Kubelet, create_claim, opaque, result
from wait_helpers import wait_for

HARNESS = Path(__file__).parent / "crash_harness.py"
API = "resource.nvidia.com/v1beta1"
START_TIMEOUT = 30.0


class PluginProcess:
    def __init__(self, root: Path, kubeconfig: Path, crash_at: str = ""):
        env = {**os.environ, "FAKE_BIN_LOG_DIR": str(root / "bin-logs"), "GPU_DRA_CRASH_AT": crash_at}
        self.proc = subprocess.Popen([sys.executable, str(HARNESS), str(root), str(kubeconfig)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.kubelet = Kubelet(str(root / "registry" / "gpu.nvidia.com-reg.sock"))

        def registered():  # kubelet's plugin watcher also polls for the socket to appear
            if self.proc.poll() is not None:
                raise AssertionError(f"plugin exited: {self.proc.stderr.read().decode()[-2000:]}")
            return self.kubelet.register()

        wait_for(registered, timeout=START_TIMEOUT, what="the plugin to register", ignore=(grpc.RpcError,))

    def stop(self) -> None:
        self.kubelet.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
        self.proc.stderr.close()


@pytest.fixture
def root() -> Iterator[Path]:
    """A short root: the plugin's unix sockets live under it (sun_path holds 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="dra-crash-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def cluster(root: Path) -> Iterator[tuple[Kube, Path]]:
    (root / "bin-logs").mkdir()
    with ApiServer() as api:
        kubeconfig = api.write_kubeconfig(root / "kubeconfig")
        yield Kube(api_client(str(kubeconfig))), kubeconfig


def leftovers(root: Path) -> dict[str, Any]:
    mig = json.loads((root / "mig-state.json").read_text()) if (root / "mig-state.json").exists() else []
    mps = root / "plugins" / "mps"
    return {
        "cdi": sorted(p.name for p in (root / "cdi").glob("*")) if (root / "cdi").exists() else [],
        "mig": mig,
        "mps_daemons": sorted(str(p.relative_to(mps)) for p in mps.glob("*/pipe/control")) if mps.exists() else [],
    }


def the_claim(kube: Kube) -> dict[str, Any]:
    """One claim that exercises every step: dynamic MIG with MPS, and a time-sliced whole GPU."""
    mig_mps = {"apiVersion": API, "kind": "MigDeviceConfig",
               "sharing": {"strategy": "MPS", "mpsConfig": {"defaultActiveThreadPercentage": 40}}}
    gpu_ts = {"apiVersion": API, "kind": "GpuConfig",
              "sharing": {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": "Long"}}}
    return create_claim(kube, "crashy", [result("gpu-3-mig-3g40gb-9-0", "mig"), result("gpu-0", "gpu")],
                        [opaque(mig_mps, ["mig"]), opaque(gpu_ts, ["gpu"])])


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_killed_during_prepare_then_prepare_and_unprepare_converge(cluster: tuple[Kube, Path], root: Path,
                                                                   point: str) -> None:
    kube, kubeconfig = cluster
    claim = the_claim(kube)
    uid = claim["metadata"]["uid"]
    doomed = PluginProcess(root, kubeconfig, crash_at=point)
    with pytest.raises(grpc.RpcError) as err:
        doomed.kubelet.prepare([claim])
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert doomed.proc.wait(timeout=20) == -signal.SIGKILL
    doomed.stop()

    plugin = PluginProcess(root, kubeconfig)
    try:
        entry = plugin.kubelet.prepare([claim]).claims[uid]
        assert entry.error == ""
        assert sorted(d.device_name for d in entry.devices) == ["gpu-0", "gpu-3-mig-3g40gb-9-0"]
        state = leftovers(root)
        assert state["cdi"] == [f"k8s.gpu.nvidia.com-claim_{uid}.json"]
        assert state["mig"] == [[3, "3g.40gb", 0]]  # exactly one instance: no duplicate from the first try
        assert state["mps_daemons"] == [f"{uid}/pipe/control"]
        assert plugin.kubelet.unprepare([claim]).claims[uid].error == ""
        assert leftovers(root) == {"cdi": [], "mig": [], "mps_daemons": []}
        smi = (root / "bin-logs" / "nvidia-smi.log").read_text().splitlines()
        assert smi[-1].endswith("--set-timeslice 0")  # the GPU's interval is back to Default
    finally:
        plugin.stop()


@pytest.mark.parametrize("point", ["after-mig-create", "after-cdi"])
def test_killed_during_prepare_then_only_unprepare(cluster: tuple[Kube, Path], root: Path, point: str) -> None:
    """The pod was deleted while the plugin was down: kubelet only unprepares."""
    kube, kubeconfig = cluster
    claim = the_claim(kube)
    doomed = PluginProcess(root, kubeconfig, crash_at=point)
    with pytest.raises(grpc.RpcError):
        doomed.kubelet.prepare([claim])
    doomed.proc.wait(timeout=20)
    doomed.stop()
    assert leftovers(root)["mig"] == [[3, "3g.40gb", 0]]  # the crash left an instance behind...
    plugin = PluginProcess(root, kubeconfig)
    try:
        # ...which the restart already rolled back, before kubelet asks.
        assert leftovers(root) == {"cdi": [], "mig": [], "mps_daemons": []}
        assert plugin.kubelet.unprepare([claim]).claims[claim["metadata"]["uid"]].error == ""
        assert leftovers(root) == {"cdi": [], "mig": [], "mps_daemons": []}
    finally:
        plugin.stop()
