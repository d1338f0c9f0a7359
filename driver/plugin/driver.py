"""The kubelet plugin as one object: `Plugin(PluginOptions(...)).start()`.

Used by `gpu-dra kubelet-plugin` on real nodes and, in-process, by the local cluster's emulated
kubelets (several plugins per process: nothing here is global: own metrics registry, own
sockets, own threads). Start order follows kubelet's expectations (FACTS.md §2): recover the
checkpoint, serve the DRA socket, start publishing, and only then the registration socket,
because kubelet calls the DRA socket as soon as it sees the registration.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from driver import log
from driver.devices import discover, load_node_config
from driver.devices.model import NodeInventory, counter_set_name
from driver.devices.slices import apply_taints, build_slices
from driver.nvml import migcaps, open_backend
from driver.nvml.interface import HealthEvent
from driver.nvml.mock import MockNvml
from driver.plugin import server as srv
from driver.plugin.health import HealthMonitor
from driver.plugin.inventory import AllocatableDevice, MigManager, NvmlMig, from_inventory
from driver.plugin.kube import Kube, api_client
from driver.plugin.metrics import HttpEndpoint, Metrics
from driver.plugin.publisher import Publisher
from driver.plugin.sharing import MpsControl, NvidiaSmi
from driver.plugin.state import CRASH_ENV, DeviceState, StateOptions

logger = log.get(__name__)

DEFAULT_DRIVER = "gpu.nvidia.com"
KUBELET_DIR = "/var/lib/kubelet"


@dataclass
class PluginOptions:
    """Everything a plugin instance needs; defaults are a real node's paths (FACTS.md §2)."""

    node_name: str
    driver_name: str = DEFAULT_DRIVER
    nvml: str = "real"  # "real" | "mock:<profile | node file>"
    node_config: str | Path | dict[str, Any] | None = None  # sharing config (path or dict)
    kubeconfig: str | None = None  # None: in-cluster service account
    plugin_dir: str | None = None  # dra.sock lives here; default /var/lib/kubelet/plugins/<driver>
    registry_dir: str = f"{KUBELET_DIR}/plugins_registry"
    cdi_root: str = "/var/run/cdi"
    state_dir: str | None = None  # checkpoint + MPS dirs; default: plugin_dir
    health_port: int | None = None  # HTTP /healthz + /metrics; None = off, 0 = random port
    # Paths of NVIDIA's tools; None = "nvidia-smi" / "nvidia-cuda-mps-control" with real NVML and
    # simulated (logged, not run) with mock NVML, where no driver tools exist; "" = simulated.
    nvidia_smi: str | None = None
    mps_control: str | None = None
    slice_layout: str = "1.35"  # ResourceSlice counter layout of the cluster's API version
    # CDI device nodes (/dev/nvidia*, /dev/nvidia-caps for MIG): None = only with real NVML, whose
    # nodes exist; a runtime refuses a container whose spec names a node the host lacks.
    device_nodes: bool | None = None
    dev_root: str = "/dev"  # where the host keeps the device nodes (CDI hostPath when not /dev)
    # MIG capability table; None = the driver's /proc file with real NVML, the mock's own with mock NVML
    mig_minors: str | None = None
    resync_s: float = 60.0
    crash_at: str = field(default_factory=lambda: os.environ.get(CRASH_ENV, ""))  # test hook

    def __post_init__(self) -> None:
        if not self.node_name:
            raise ValueError("node_name: required (flag --node-name or env NODE_NAME)")
        if not self.driver_name:
            raise ValueError("driver_name: required")
        if self.plugin_dir is None:
            self.plugin_dir = f"{KUBELET_DIR}/plugins/{self.driver_name}"
        if self.state_dir is None:
            self.state_dir = self.plugin_dir
        simulated = self.nvml.startswith("mock:")
        if self.nvidia_smi is None:
            self.nvidia_smi = "" if simulated else "nvidia-smi"
        if self.mps_control is None:
            self.mps_control = "" if simulated else "nvidia-cuda-mps-control"
        if self.device_nodes is None:
            self.device_nodes = self.nvml == "real"
        if not self.dev_root.startswith("/"):
            raise ValueError(f"dev_root: expected an absolute path (the host's /dev), got {self.dev_root!r}")
        if self.mig_minors == "":
            raise ValueError("mig_minors: expected a file path (or None for the default), got ''")
        if self.health_port is not None and not 0 <= self.health_port <= 65535:
            raise ValueError(f"health_port: expected 0..65535 (0 = any free port), got {self.health_port}")


class Plugin:
    """One node's kubelet plugin: gRPC sockets, slice publisher, health monitor, HTTP endpoint."""

    def __init__(self, options: PluginOptions, *, backend: Any = None, mig: MigManager | None = None,
                 kube: Kube | None = None):
        self.options = options
        self.metrics = Metrics()
        self._backend = backend
        self._mig = mig
        self._kube = kube
        self._servers: list[Any] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._inventory: NodeInventory | None = None
        self._devices: dict[str, AllocatableDevice] = {}
        self._node_uid: str | None = None
        self.registration = srv.RegistrationStatus()
        self.board = srv.HealthBoard(options.node_name)
        self.http: HttpEndpoint | None = None
        self.publisher: Publisher | None = None
        self.monitor: HealthMonitor | None = None
        self.state: DeviceState | None = None
        self._running = False
        self._owns_backend = False
        self._known_gpus: dict[str, tuple[Any, list[Any], list[Any]]] = {}  # uuid -> (gpu, devices, counter sets)

    # -- paths ------------------------------------------------------------------------------
    @property
    def dra_socket(self) -> str:
        return str(Path(self.options.plugin_dir or "") / "dra.sock")

    @property
    def registration_socket(self) -> str:
        return str(Path(self.options.registry_dir) / f"{self.options.driver_name}-reg.sock")

    @property
    def health_port(self) -> int | None:
        return self.http.port if self.http else None

    @property
    def backend(self) -> Any:
        return self._backend

    # -- discovery --------------------------------------------------------------------------
    def _discover(self) -> NodeInventory:
        inv = discover(self._backend, self._node_config, self.options.node_name)
        with self._lock:
            self._inventory = inv
            self._devices = from_inventory(inv)
        return inv

    def devices(self) -> dict[str, AllocatableDevice]:
        with self._lock:
            return self._devices

    def _build_slices(self, generation: int) -> list[dict[str, Any]]:
        inv = self._discover()
        taints = self.monitor.snapshot() if self.monitor else {}
        published, lost = self._keep_lost_gpus(inv, taints)
        if lost:
            with self._lock:
                self._devices = from_inventory(published, lost)
        self.board.set_devices([d.name for d in published.devices])
        return build_slices(apply_taints(published, taints), self.options.node_name, self._node_uid,
                            self.options.driver_name, generation, self.options.slice_layout)

    def _keep_lost_gpus(self, inv: NodeInventory,
                        taints: dict[str, list[dict[str, Any]]]) -> tuple[NodeInventory, set[str]]:
        """Keep publishing the devices of a GPU that fell off the bus, tainted `gpu-lost`; returns the
        inventory to publish and the UUIDs of the lost GPUs it adds back.

        Discovery cannot see a lost GPU; dropping its devices would look like "never existed"
        to the scheduler and to pods that hold them, while a NoSchedule taint says what happened
        and keeps the pool's device set (and generation) stable.
        """
        for gpu in inv.gpus:
            self._known_gpus[gpu.uuid] = (
                gpu, [d for d in inv.devices if d.gpu_uuid == gpu.uuid],
                [c for c in inv.counter_sets if c.name == counter_set_name(gpu.minor)])
        lost = {u for u, ts in taints.items() if any(t["key"] == f"{self.options.driver_name}/gpu-lost" for t in ts)}
        lost -= {g.uuid for g in inv.gpus}
        missing = [self._known_gpus[u] for u in sorted(lost) if u in self._known_gpus]
        if not missing:
            return inv, set()
        gpus = sorted([*inv.gpus, *(m[0] for m in missing)], key=lambda g: g.index)
        order = {g.uuid: g.index for g in gpus}
        devices = sorted([*inv.devices, *(d for m in missing for d in m[1])], key=lambda d: order.get(d.gpu_uuid, -1))
        counters = [*inv.counter_sets, *(c for m in missing for c in m[2])]
        return replace(inv, gpus=gpus, devices=devices, counter_sets=counters), {m[0].uuid for m in missing}

    def _devices_of(self, event: HealthEvent) -> list[str]:
        inv = self._inventory
        if inv is None:
            return []
        if event.mig_uuid:
            return [d.name for d in inv.devices if d.uuid == event.mig_uuid]
        return [d.name for d in inv.devices if d.gpu_uuid == event.uuid or d.index == event.index]

    def _report(self, reason: str, message: str) -> None:
        if self._kube is not None:
            self._kube.event({"kind": "Node", "name": self.options.node_name, "namespace": "default"},
                             reason, message, host=self.options.node_name)

    def _healthy(self) -> tuple[bool, str]:
        if not self._running:
            return False, "not running"
        return True, "ok" + ("" if self.registration.registered else " (not yet registered with kubelet)")

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> "Plugin":
        """Recover, serve DRA, publish, watch health, then register with kubelet."""
        o = self.options
        self._node_config = load_node_config(o.node_config)
        if self._backend is None:
            self._backend = open_backend(o.nvml, o.node_name)
            self._owns_backend = True
        self._backend.init()
        if self._mig is None:
            self._mig = NvmlMig(self._backend)
        if self._kube is None:
            self._kube = Kube(api_client(o.kubeconfig))
        self._discover()
        self.state = DeviceState(
            StateOptions(o.node_name, o.driver_name, o.cdi_root, o.state_dir or "", device_nodes=bool(o.device_nodes),
                         dev_root=o.dev_root, crash_at=o.crash_at),
            devices=self.devices, get_claim=self._kube.get_claim, mig=self._mig,
            smi=NvidiaSmi(o.nvidia_smi or ""), mps=MpsControl(o.mps_control or ""), report=self._report,
            changed=lambda: self.publisher.trigger() if self.publisher else None, mig_minors=self._mig_minors())
        self.state.recover(list_claims=self._kube.list_claims)
        self.metrics.prepared_devices.set(self.state.prepared_device_count())
        try:
            self._node_uid = self._kube.node_uid(o.node_name)
        except Exception as exc:  # noqa: BLE001 - slices work without an owner
            logger.warning("node_uid_unavailable", node=o.node_name, error=str(exc))

        def add_dra(server: Any) -> None:
            srv.add_dra_services(server, self.state, self.metrics)
            srv.add_health_services(server, self.board, lambda: self._running)

        self._running = True
        self._servers.append(srv.serve_unix(self.dra_socket, add_dra))
        self.publisher = Publisher(
            self._kube, o.driver_name, o.node_name, self._build_slices, validate_pool=_pool_validator(o.slice_layout),
            on_published=self.metrics.published_devices.set, on_error=self.metrics.publish_errors.inc,
            resync_s=o.resync_s)
        self.monitor = HealthMonitor(
            o.driver_name, self._backend.wait_event, self._devices_of, self._set_health, self.publisher.trigger)
        self._spawn("publisher", self.publisher.run)
        self._spawn("health", self.monitor.run)
        if o.health_port is not None:
            self.http = HttpEndpoint(self.metrics, self._healthy, o.health_port)
            self.http.start()
        self._servers.append(srv.serve_unix(
            self.registration_socket,
            lambda s: srv.add_registration_service(s, o.driver_name, self.dra_socket, True, self.registration)))
        logger.info("plugin_started", node=o.node_name, driver=o.driver_name, dra_socket=self.dra_socket,
                    registration_socket=self.registration_socket, devices=len(self._devices),
                    health_port=self.health_port)
        return self

    def _mig_minors(self) -> Callable[[], migcaps.MigMinors]:
        """Where the MIG capability table comes from: the configured file; else the mock's own table
        (mock NVML: the host has no such driver file, or one for other GPUs), else the driver's."""
        path = self.options.mig_minors
        backend = self._backend
        if path is None and isinstance(backend, MockNvml):
            return lambda: migcaps.parse(backend.mig_minors(), "MIG capability table (generated by the mock NVML)")
        return lambda: migcaps.load(path or migcaps.DEFAULT_PATH)

    def _set_health(self, names: list[str], healthy: bool, message: str) -> None:
        self.board.set_health(names, healthy, message)
        self.metrics.unhealthy_devices.set(len(self.board.unhealthy()))

    def _spawn(self, name: str, target: Any) -> None:
        t = threading.Thread(target=target, name=f"plugin-{name}-{self.options.node_name}", daemon=True)
        t.start()
        self._threads.append(t)

    def wait_published(self, timeout: float = 10.0) -> bool:
        """Block until the first successful publish pass (for callers that need slices)."""
        return self.publisher is not None and self.publisher.published.wait(timeout)

    def stop(self) -> None:
        """Unregister (remove the registration socket) first, then stop serving and the threads."""
        self._running = False
        self.board.close()  # ends health streams now instead of at the grace deadline
        for server in reversed(self._servers):
            server.stop(grace=1.0).wait(2.0)
        self._servers.clear()
        for path in (self.registration_socket, self.dra_socket):
            Path(path).unlink(missing_ok=True)
        if self.publisher:
            self.publisher.stop()
        if self.monitor:
            self.monitor.stop()
        if self._owns_backend and self._backend is not None:
            self._backend.shutdown()  # wakes the health monitor out of its NVML event wait
        if self.http:
            self.http.stop()
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()
        logger.info("plugin_stopped", node=self.options.node_name)

    def __enter__(self) -> "Plugin":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _pool_validator(layout: str) -> Any:
    """`driver.devices.validate.validate_pool` for the cluster's version: API limits per slice and
    consistency across the pool's slices."""
    from driver.devices.validate import validate_pool

    return lambda slices: validate_pool(slices, layout)
