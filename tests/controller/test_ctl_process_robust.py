"""`gpu-dra controller` as a process when things around it go wrong: a metrics port that is
taken or out of range gets one clear line and exit 2 (no traceback); SIGTERM/SIGINT while the
API server is unreachable (caches never sync) stops it within seconds, not after `sync_timeout`;
and the controller's client pool is big enough for every concurrent user of it."""

from __future__ import annotations

import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from driver.controller import demo
from driver.controller.kube import WATCHED, Kube, controller_pool_size, new_client
from driver.controller.scheduler import Controller, ControllerConfig

EXE = str(Path(sys.executable).with_name("gpu-dra"))


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unreachable_kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{closed_port()}"}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }))
    return path


def run_controller(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, "--log-level", "warning", "controller", *args], capture_output=True, text=True,
                          timeout=timeout)


# ---- item 1: --metrics-port ------------------------------------------------------------------


def test_metrics_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("0.0.0.0", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        res = run_controller("--kubeconfig", str(unreachable_kubeconfig(tmp_path)), "--metrics-port", str(port))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("gpu-dra controller:")]
    assert lines == [f"gpu-dra controller: --metrics-port {port}: address already in use; "
                     "choose another port or 0 to turn metrics off"]


@pytest.mark.parametrize("port", ["99999", "65536", "-1"])
def test_metrics_port_out_of_range_is_refused_before_anything_starts(port: str) -> None:
    # A kubeconfig that does not exist: had the controller got as far as building its client,
    # the error would be about that file, not the port.
    res = run_controller("--kubeconfig", "/nonexistent/kubeconfig", "--metrics-port", port, timeout=20)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and "OverflowError" not in res.stderr
    assert res.stderr.strip() == (f"gpu-dra controller: --metrics-port {port}: expected 1..65535, "
                                  "or 0 to turn metrics off")


# ---- item 2: signals during start-up ---------------------------------------------------------


def _lines(stream: Any, into: "queue.Queue[str]") -> None:
    for line in stream:
        into.put(line)


def _wait_for_line(lines: "queue.Queue[str]", needle: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no stderr line with {needle!r} within {timeout}s")
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            continue
        if needle in line:
            return line


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_while_api_unreachable_stops_within_seconds(tmp_path: Path, sig: signal.Signals) -> None:
    proc = subprocess.Popen([EXE, "--log-level", "warning", "controller", "--kubeconfig",
                             str(unreachable_kubeconfig(tmp_path)), "--metrics-port", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: "queue.Queue[str]" = queue.Queue()
    reader = threading.Thread(target=_lines, args=(proc.stderr, lines), daemon=True)
    reader.start()
    try:
        # The informers report the refused connection: the controller is now waiting for its caches.
        _wait_for_line(lines, "watch_failed", 30)
        sent = time.monotonic()
        proc.send_signal(sig)
        rc = proc.wait(timeout=15)  # sync_timeout is 60s: without the fix this times out
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    reader.join(timeout=10)
    assert rc == 128 + sig
    assert took < 10
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    stopped = [line for line in rest if "controller_stopped_during_startup" in line]
    assert len(stopped) == 1 and sig.name in stopped[0]
    assert not any("Traceback" in line for line in rest)


def test_start_returns_at_once_when_stop_is_set(tmp_path: Path) -> None:
    ctl = Controller(Kube(new_client(str(unreachable_kubeconfig(tmp_path)))), ControllerConfig(sync_timeout=60))
    stop = threading.Event()
    stop.set()
    began = time.monotonic()
    try:
        ctl.start(stop=stop)  # no TimeoutError: being told to stop is not a failure to sync
        assert time.monotonic() - began < 5
        assert not ctl.is_leader()
        assert not ctl.healthy()
    finally:
        ctl.stop()


def test_start_without_stop_still_times_out(tmp_path: Path) -> None:
    ctl = Controller(Kube(new_client(str(unreachable_kubeconfig(tmp_path)))), ControllerConfig(sync_timeout=0.5))
    with pytest.raises(TimeoutError, match="caches not synced"):
        ctl.start(stop=threading.Event())


# ---- item 3: connection pool -----------------------------------------------------------------


def _pool_maxsize(api_client: Any) -> int:
    return api_client.rest_client.pool_manager.connection_pool_kw["maxsize"]


def test_pool_covers_watches_binders_and_writers() -> None:
    assert len(WATCHED) == 11
    assert controller_pool_size(8) >= len(WATCHED) + 8 + 1
    assert controller_pool_size(32) - controller_pool_size(8) == 24  # one more connection per binder


def test_controller_client_gets_the_sized_pool(tmp_path: Path) -> None:
    api = new_client(str(unreachable_kubeconfig(tmp_path)), pool_size=controller_pool_size(16))
    assert _pool_maxsize(api) == controller_pool_size(16)


def test_demo_controller_asks_the_cluster_for_a_pool_big_enough(tmp_path: Path) -> None:
    kubeconfig = unreachable_kubeconfig(tmp_path)
    asked: list[int | None] = []

    class FakeCluster:
        def api_client(self, pool_size: int | None = None) -> Any:
            asked.append(pool_size)
            return new_client(str(kubeconfig), pool_size=pool_size or 1)

    comp = demo.ControllerComponent(FakeCluster(), "binpack")
    binders = comp.controller.cfg.binders
    assert asked == [controller_pool_size(binders)]
    assert _pool_maxsize(comp.controller.kube.api_client) == controller_pool_size(binders)


def test_local_cluster_api_client_pool_size(tmp_path: Path) -> None:
    from driver.local.cluster import LocalCluster

    lc = LocalCluster(workdir=tmp_path)  # not started: only api_client is exercised
    assert lc.kubeconfig == unreachable_kubeconfig(tmp_path)
    sized = lc.api_client(pool_size=23)
    default = lc.api_client()
    assert _pool_maxsize(sized) == 23
    assert _pool_maxsize(default) != 23  # without pool_size: the client's own default
    sized.close()
    default.close()
