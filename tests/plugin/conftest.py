"""Fixtures for the kubelet plugin tests: a local API server and a started plugin with a kubelet."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from driver.local.server import ApiServer
from driver.plugin.driver import Plugin, PluginOptions
from driver.plugin.kube import Kube, api_client

from plugin_harness import BIN_DIR, Kubelet


@dataclass
class Node:
    """A running plugin with its kubelet, API access and directories."""

    plugin: Plugin
    kubelet: Kubelet
    kube: Kube
    root: Path

    @property
    def cdi_root(self) -> Path:
        return Path(self.plugin.options.cdi_root)

    @property
    def state_dir(self) -> Path:
        return Path(self.plugin.options.state_dir or "")

    def cdi_files(self) -> list[str]:
        return sorted(p.name for p in self.cdi_root.glob("*.json")) if self.cdi_root.exists() else []

    def log(self, name: str) -> list[str]:
        path = self.root / "bin-logs" / name
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def api() -> Iterator[ApiServer]:
    server = ApiServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def kube(api: ApiServer, tmp_path: Path) -> Kube:
    return Kube(api_client(str(api.write_kubeconfig(tmp_path / "kubeconfig"))))


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short directory for unix sockets (sun_path holds 107 bytes; pytest's tmp paths get long)."""
    path = Path(tempfile.mkdtemp(prefix="dra-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def start_node(api: ApiServer, kube: Kube, tmp_path: Path, sock_dir: Path, monkeypatch: pytest.MonkeyPatch
               ) -> Iterator[Callable[..., Node]]:
    """Start a plugin (mock NVML) and register it with an emulated kubelet; stopped at teardown."""
    logs = tmp_path / "bin-logs"
    logs.mkdir()
    monkeypatch.setenv("FAKE_BIN_LOG_DIR", str(logs))
    started: list[Node] = []

    def start(node_config: Any = None, nvml: str = "mock:a100-80gb-x8", node_name: str = "node-a",
              register: bool = True, **overrides: Any) -> Node:
        opts = dict(
            node_name=node_name, nvml=nvml, node_config=node_config,
            kubeconfig=str(tmp_path / "kubeconfig"), plugin_dir=str(sock_dir / "plugins" / "gpu.nvidia.com"),
            registry_dir=str(sock_dir / "plugins_registry"), cdi_root=str(tmp_path / "cdi"),
            nvidia_smi=str(BIN_DIR / "nvidia-smi"), mps_control=str(BIN_DIR / "nvidia-cuda-mps-control"),
        )
        opts.update(overrides)
        plugin = Plugin(PluginOptions(**opts)).start()
        assert plugin.wait_published(15), "slices were not published"
        kubelet = Kubelet(plugin.registration_socket)
        if register:
            kubelet.register()
        node = Node(plugin, kubelet, kube, tmp_path)
        started.append(node)
        return node

    yield start
    for node in started:
        node.kubelet.close()
        if node.plugin._servers:
            node.plugin.stop()
