"""`gpu-dra kubelet-plugin` as a process: flags, env, clean start and stop, clear start errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import grpc
import pytest

from driver.local.server import ApiServer

from plugin_harness import Kubelet
from wait_helpers import wait_for


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dra-cli-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "driver", "--log-format", "json", "kubelet-plugin", *args],
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _events(stderr: bytes) -> list[dict]:
    return [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]


def test_missing_node_name_is_a_usage_error() -> None:
    env = {k: v for k, v in os.environ.items() if k != "NODE_NAME"}
    proc = subprocess.run([sys.executable, "-m", "driver", "kubelet-plugin", "--nvml", "mock:T4"], env=env,
                          capture_output=True, timeout=60)
    assert proc.returncode == 2
    assert [e["error"] for e in _events(proc.stderr) if e["event"] == "bad_options"] == [
        "node_name: required (flag --node-name or env NODE_NAME)"]


def test_bad_nvml_spec_fails_start_with_one_clear_line(root: Path) -> None:
    proc = _cli("--node-name", "n1", "--nvml", "nvml-please", "--kubeconfig", str(root / "none"),
                "--plugin-dir", str(root / "p"), "--registry-dir", str(root / "r"))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    failures = [e["error"] for e in _events(err) if e["event"] == "plugin_start_failed"]
    assert failures == ["--nvml: expected 'real' or 'mock:<profile name or node file>', got 'nvml-please'"]


def test_runs_registers_and_stops_cleanly_on_sigterm(root: Path) -> None:
    with ApiServer() as api:
        kubeconfig = api.write_kubeconfig(root / "kubeconfig")
        proc = _cli("--nvml", "mock:t4-x2", "--kubeconfig", str(kubeconfig), "--plugin-dir", str(root / "p"),
                    "--registry-dir", str(root / "r"), "--cdi-root", str(root / "cdi"),
                    env={"NODE_NAME": "env-node"})
        kubelet = Kubelet(str(root / "r" / "gpu.nvidia.com-reg.sock"))

        def registered():  # what kubelet's plugin watcher does: wait for the socket, then GetInfo
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            return kubelet.register()

        info = wait_for(registered, timeout=30, what="the plugin to register", ignore=(grpc.RpcError,))
        assert info.endpoint == str(root / "p" / "dra.sock")
        kubelet.close()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert not (root / "p" / "dra.sock").exists() and not (root / "r" / "gpu.nvidia.com-reg.sock").exists()
    started = [e for e in _events(err) if e["event"] == "plugin_started"]
    assert started and started[0]["node"] == "env-node" and started[0]["devices"] == 2
