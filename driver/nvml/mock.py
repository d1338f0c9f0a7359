"""Mock NVML: answers the `NvmlBackend` calls from a node description and GPU-model data.

It is what every test, the local cluster and kind e2e on CPU-only machines run against, so it
behaves like NVML where that matters: deterministic but node-specific UUIDs and PCI bus IDs (two
mock nodes never publish the same GPU), MIG devices placed legally, create/destroy that refuse
illegal layouts, and faults on demand: init failure, a GPU that falls off the bus, XID events,
slow calls. Faults come from the node description (`faults:`) or from tests at run time
(`inject_xid`, `lose_gpu`, `set_latency`, `fail_init`).

Node description (YAML or dict):

    profile: A100-SXM4-80GB        # a GPU model in driver/nvml/profiles/ (or a path to one)
    gpuCount: 8
    nodeName: node-a               # optional: seeds UUIDs/bus IDs (default: the node name asked for)
    driverVersion: "550.54.15"     # optional
    cudaDriverVersion: "12.4"      # optional
    migConfig: mixed-workload      # optional, for every GPU: a migConfigs entry of the model
    gpus:                          # optional per-GPU state, overrides migConfig
      - {index: 0, migEnabled: true, migDevices: [1g.10gb, 2g.20gb]}
      - {index: 1, migConfig: all-1g.10gb}
    faults:
      initFailure: "driver/library version mismatch"   # or true
      lostGpus: [3]
      xids: [{index: 1, xid: 79}]
      latencyMs: 20
    stateFile: /var/lib/gpu-dra/mock-nvml.json   # optional: MIG state survives restarts

MIG devices outlive the processes that created them on real hardware. With `stateFile` (or the
`state_file` argument) the mock keeps MIG modes and instances in that JSON file, written
atomically on every change and read back at start instead of the description's static layout,
so a restarted plugin finds what it created before it crashed.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from driver import log
from driver.nvml import migcaps
from driver.nvml.gpumodels import GpuModel, load_model
from driver.nvml.interface import (
    MIB,
    GpuInfo,
    HealthEvent,
    MigInstance,
    MigProfile,
    NvmlError,
    Versions,
)
from driver.nvml.placement import PlacementError, is_legal, place
from driver.nvml.strict import DataError, boolean, integer, load_yaml, mapping, sequence, string

logger = log.get(__name__)

NODE_DIR = Path(__file__).parent / "nodes"
_SEMVERISH = re.compile(r"^\d+(\.\d+){1,2}$")
_NODE_KEYS = {"profile", "gpuCount", "nodeName", "driverVersion", "cudaDriverVersion", "migConfig", "gpus", "faults",
              "stateFile"}
_GPU_KEYS = {"index", "migEnabled", "migDevices", "migConfig"}
_FAULT_KEYS = {"initFailure", "lostGpus", "xids", "latencyMs"}


@dataclass
class GpuState:
    """Per-GPU state of a mock node description."""

    index: int
    mig_enabled: bool = False
    mig_devices: list[str] = field(default_factory=list)


@dataclass
class Faults:
    init_failure: str | None = None
    lost_gpus: set[int] = field(default_factory=set)
    xids: list[tuple[int, int]] = field(default_factory=list)
    latency_s: float = 0.0


@dataclass
class NodeDescription:
    """A parsed mock node description."""

    model: GpuModel
    gpu_count: int
    node_name: str | None = None
    state_file: Path | None = None
    driver_version: str = "550.54.15"
    cuda_driver_version: str = "12.4"
    gpus: list[GpuState] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)


def _mig_list(model: GpuModel, config: str, where: str) -> list[str] | None:
    configs = model.mig_configs or {}
    if config not in configs:
        raise DataError(f"{where}: unknown MIG config {config!r} for {model.key} (known: {', '.join(configs) or 'none'})")
    devices = configs[config]
    return None if devices is None else list(devices)


def parse_node(raw: Any, source: str = "node description") -> NodeDescription:
    """Validate a node description dict; DataError names the wrong field."""
    mapping(raw, source, _NODE_KEYS, {"profile", "gpuCount"})
    model_name = string(raw["profile"], f"{source}: profile")
    try:
        model = load_model(model_name)
    except DataError as exc:
        raise DataError(f"{source}: profile: {exc}") from None
    count = integer(raw["gpuCount"], f"{source}: gpuCount", 0, 64)
    desc = NodeDescription(model=model, gpu_count=count)
    if "nodeName" in raw:
        desc.node_name = string(raw["nodeName"], f"{source}: nodeName")
    if raw.get("stateFile") is not None:
        desc.state_file = Path(string(raw["stateFile"], f"{source}: stateFile"))
    for key, attr in (("driverVersion", "driver_version"), ("cudaDriverVersion", "cuda_driver_version")):
        if key in raw:
            value = str(raw[key])
            if not _SEMVERISH.match(value):
                raise DataError(f"{source}: {key}: expected a version like '550.54.15', got {raw[key]!r}")
            setattr(desc, attr, value)
    default_mig: list[str] | None = None
    if raw.get("migConfig") is not None:
        default_mig = _mig_list(model, string(raw["migConfig"], f"{source}: migConfig"), f"{source}: migConfig")
    states = {i: GpuState(i, default_mig is not None, list(default_mig or [])) for i in range(count)}
    for n, g in enumerate(sequence(raw.get("gpus") or [], f"{source}: gpus")):
        where = f"{source}: gpus[{n}]"
        mapping(g, where, _GPU_KEYS, {"index"})
        index = integer(g["index"], f"{where}.index", 0, max(count - 1, 0))
        if index >= count:
            raise DataError(f"{where}.index: {index} but the node has {count} GPU(s)")
        state = GpuState(index)
        if "migConfig" in g:
            devices = _mig_list(model, string(g["migConfig"], f"{where}.migConfig"), f"{where}.migConfig")
            state.mig_enabled, state.mig_devices = devices is not None, list(devices or [])
        if "migEnabled" in g:
            state.mig_enabled = boolean(g["migEnabled"], f"{where}.migEnabled")
        if "migDevices" in g:
            state.mig_devices = [string(d, f"{where}.migDevices[{k}]") for k, d in
                                 enumerate(sequence(g["migDevices"], f"{where}.migDevices"))]
            state.mig_enabled = state.mig_enabled or "migEnabled" not in g
        if state.mig_devices and not state.mig_enabled:
            raise DataError(f"{where}.migDevices: MIG devices listed but migEnabled is false")
        states[index] = state
    for state in states.values():
        where = f"{source}: GPU {state.index}"
        if state.mig_enabled and not model.mig_capable:
            raise DataError(f"{where}: MIG enabled but {model.key} does not support MIG")
        try:
            place(model, state.mig_devices)
        except (PlacementError, DataError) as exc:
            raise DataError(f"{where}: migDevices: {exc}") from None
    desc.gpus = [states[i] for i in range(count)]
    faults = raw.get("faults") or {}
    mapping(faults, f"{source}: faults", _FAULT_KEYS)
    fi = faults.get("initFailure")
    if fi is not None and fi is not False:
        desc.faults.init_failure = "injected init failure" if fi is True else string(fi, f"{source}: faults.initFailure")
    desc.faults.lost_gpus = {
        integer(v, f"{source}: faults.lostGpus[{k}]", 0, max(count - 1, 0))
        for k, v in enumerate(sequence(faults.get("lostGpus") or [], f"{source}: faults.lostGpus"))
    }
    for k, x in enumerate(sequence(faults.get("xids") or [], f"{source}: faults.xids")):
        xw = f"{source}: faults.xids[{k}]"
        mapping(x, xw, {"index", "xid"}, {"index", "xid"})
        desc.faults.xids.append((integer(x["index"], f"{xw}.index", 0, max(count - 1, 0)), integer(x["xid"], f"{xw}.xid", 1)))
    if "latencyMs" in faults:
        desc.faults.latency_s = integer(faults["latencyMs"], f"{source}: faults.latencyMs", 0, 60_000) / 1000
    return desc


def load_node(spec: str | Path | dict[str, Any]) -> NodeDescription:
    """A node description from a dict, a YAML path, a node name in driver/nvml/nodes/ (with or
    without .yaml), or a bare GPU-model name: a plain node of that model, MIG off, with 8 GPUs
    for MIG-capable (HGX-class) models and 4 otherwise."""
    if isinstance(spec, dict):
        return parse_node(spec)
    text = str(spec)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.exists() and (NODE_DIR / path.name).exists():
            path = NODE_DIR / path.name
        return parse_node(load_yaml(path, "node description"), f"node description {path}")
    shipped = NODE_DIR / f"{text}.yaml"
    if shipped.exists():
        return parse_node(load_yaml(shipped, "node description"), f"node description {shipped}")
    return parse_node({"profile": text, "gpuCount": 8 if load_model(text).mig_capable else 4}, f"mock:{text}")


def _hex_id(seed: str, n: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


def _uuid(prefix: str, seed: str) -> str:
    h = _hex_id(seed, 32)
    return f"{prefix}-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


class MockNvml:
    """An `NvmlBackend` over a node description. Thread-safe: the plugin's health loop waits on
    events while prepare calls create MIG devices."""

    def __init__(self, desc: NodeDescription, node_name: str = "mock-node", state_file: str | Path | None = None):
        self.desc = desc
        self.state_file = Path(state_file) if state_file else desc.state_file
        self.seed = desc.node_name or node_name
        self._lock = threading.RLock()
        self._events: queue.Queue[HealthEvent | None] = queue.Queue()
        self._initialised = False
        self._closed = False
        self._init_failure = desc.faults.init_failure
        self._latency = desc.faults.latency_s
        self._lost: set[int] = set()
        self._serial: dict[int, int] = {}
        self._gpus = [self._make_gpu(i) for i in range(desc.gpu_count)]
        self._mig_enabled = {g.index: g.mig_enabled for g in desc.gpus}
        self._instances: dict[int, list[MigInstance]] = {i: [] for i in range(desc.gpu_count)}
        for state in desc.gpus:
            for profile, start in place(desc.model, state.mig_devices):
                self._instances[state.index].append(self._make_instance(state.index, profile, start))
        if self.state_file and self.state_file.exists():
            self._load_state(self.state_file)
        for index in desc.faults.lost_gpus:
            self.lose_gpu(index)
        for index, xid in desc.faults.xids:
            self.inject_xid(index, xid)

    # ---- construction helpers -------------------------------------------------------------
    def _make_gpu(self, index: int) -> GpuInfo:
        m = self.desc.model
        # PCI domain from the node name: two mock nodes never show the same bus IDs; GPUs past the
        # model's bus list take the next device number on the same buses (still unique)
        domain = int(_hex_id(f"{self.seed}/pci-domain", 4), 16)
        bus = m.bus_ids[index % len(m.bus_ids)]
        device = index // len(m.bus_ids)
        return GpuInfo(
            index=index,
            minor=index,
            uuid=_uuid("GPU", f"{self.seed}/gpu/{index}"),
            name=m.product_name,
            brand=m.brand,
            architecture=m.architecture,
            memory_bytes=m.memory_mib * MIB,
            pci_bus_id=f"{domain:04x}:{bus:02x}:{device:02x}.0",
            cuda_compute_capability=m.compute_capability,
            multiprocessors=m.multiprocessors,
            engines=m.engines,
            mig_capable=m.mig_capable,
            mig_enabled=False,
            memory_slices=m.memory_slices,
            compute_slices=m.compute_slices,
            pcie_root=f"pci{domain:04x}:{(index // 2) * 0x10:02x}",
        )

    def _make_instance(self, index: int, profile: MigProfile, start: int) -> MigInstance:
        serial = self._serial.get(index, 0)
        self._serial[index] = serial + 1
        return MigInstance(
            parent_index=index,
            parent_uuid=self._gpus[index].uuid,
            uuid=_uuid("MIG", f"{self.seed}/mig/{index}/{profile.gi_profile_id}/{start}/{serial}"),
            profile=profile.name,
            gi_profile_id=profile.gi_profile_id,
            gi_id=self._free_gi_id(index),
            ci_id=0,
            placement_start=start,
            placement_size=profile.memory_slices,
            memory_bytes=profile.memory_bytes,
            multiprocessors=profile.multiprocessors,
            engines=profile.engines,
        )

    def _free_gi_id(self, index: int) -> int:
        """The lowest GPU-instance id not in use on the GPU (from 1; NVML reuses ids too), so the
        ids stay within the 0..14 that the driver's capability table lists."""
        used = {m.gi_id for m in self._instances[index]}
        return next(i for i in range(1, migcaps.GPU_INSTANCES) if i not in used)

    def mig_minors(self) -> str:
        """The node's /proc/driver/nvidia-caps/mig-minors, as the driver would list it for these
        GPUs (`driver.nvml.migcaps.render`); the plugin reads it in mock mode."""
        return migcaps.render(g.minor for g in self._gpus)

    # ---- persistent state -----------------------------------------------------------------
    def _load_state(self, path: Path) -> None:
        where = f"mock NVML state {path}"
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{where}: cannot read: {exc}") from None
        mapping(raw, where, {"migEnabled", "instances", "serial"}, {"migEnabled", "instances"})
        enabled = {int(k): boolean(v, f"{where}: migEnabled.{k}") for k, v in raw["migEnabled"].items()}
        instances: dict[int, list[MigInstance]] = {i: [] for i in range(self.desc.gpu_count)}
        for n, row in enumerate(sequence(raw["instances"], f"{where}: instances")):
            rw = f"{where}: instances[{n}]"
            mapping(row, rw, {"index", "profile", "start", "uuid", "giId"}, {"index", "profile", "start", "uuid", "giId"})
            index = integer(row["index"], f"{rw}.index", 0, self.desc.gpu_count - 1)
            try:
                profile = self.desc.model.mig_profile(string(row["profile"], f"{rw}.profile"))
            except DataError as exc:
                raise DataError(f"{rw}.profile: {exc}") from None
            start = integer(row["start"], f"{rw}.start", 0)
            existing = [(self.desc.model.mig_profile(m.profile), m.placement_start) for m in instances[index]]
            reason = is_legal(self.desc.model, [*existing, (profile, start)])
            if reason:
                raise DataError(f"{rw}: {reason}")
            inst = self._make_instance(index, profile, start)
            instances[index].append(replace(inst, uuid=string(row["uuid"], f"{rw}.uuid"),
                                            gi_id=integer(row["giId"], f"{rw}.giId", 1, migcaps.GPU_INSTANCES - 1)))
        self._mig_enabled.update({i: e for i, e in enabled.items() if 0 <= i < self.desc.gpu_count})
        self._instances = instances
        self._serial.update({int(k): int(v) for k, v in (raw.get("serial") or {}).items()})

    def _save_state(self) -> None:
        if not self.state_file:
            return
        data = {
            "migEnabled": {str(i): e for i, e in self._mig_enabled.items()},
            "instances": [{"index": m.parent_index, "profile": m.profile, "start": m.placement_start,
                           "uuid": m.uuid, "giId": m.gi_id} for i in sorted(self._instances) for m in self._instances[i]],
            "serial": {str(i): n for i, n in self._serial.items()},
        }
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.state_file)

    # ---- fault injection ------------------------------------------------------------------
    def _known(self, index: int) -> GpuInfo:
        if not 0 <= index < len(self._gpus):
            raise ValueError(f"GPU index {index}: the mock node has GPUs 0..{len(self._gpus) - 1}")
        return self._gpus[index]

    def inject_xid(self, index: int, xid: int, mig_uuid: str | None = None) -> None:
        """Queue an XID event for GPU `index` (as NVML would deliver on nvmlEventSetWait)."""
        gpu = self._known(index)
        self._events.put(HealthEvent("xid", index, gpu.uuid, xid=xid, message=f"XID {xid} on GPU {index}", mig_uuid=mig_uuid))

    def lose_gpu(self, index: int) -> None:
        """Make GPU `index` fall off the bus: its calls fail with GPU_IS_LOST and an event is queued."""
        self._known(index)
        with self._lock:
            if index in self._lost:
                return
            self._lost.add(index)
        gpu = self._gpus[index]
        logger.warning("mock_gpu_lost", index=index, uuid=gpu.uuid)
        self._events.put(HealthEvent("gpu-lost", index, gpu.uuid, message=f"GPU {index} has fallen off the bus"))

    def restore_gpu(self, index: int) -> None:
        with self._lock:
            self._lost.discard(index)

    def set_latency(self, seconds: float) -> None:
        """Every later call takes at least `seconds` (a slow or hung driver)."""
        self._latency = max(0.0, seconds)

    def fail_init(self, message: str | None = "injected init failure") -> None:
        """Make the next init() fail with `message` (None: succeed again)."""
        with self._lock:
            self._init_failure = message
            if message:
                self._initialised = False

    # ---- NvmlBackend --------------------------------------------------------------------------
    def _enter(self, call: str, index: int | None = None) -> None:
        if self._latency:
            time.sleep(self._latency)  # simulated slow driver call, not synchronisation
        if not self._initialised:
            raise NvmlError(call, "NVML is not initialised", index, "ERROR_UNINITIALIZED")
        if index is not None:
            if not 0 <= index < len(self._gpus):
                raise NvmlError(call, f"no GPU with index {index} (count {len(self._gpus)})", index, "ERROR_INVALID_ARGUMENT")
            if index in self._lost:
                raise NvmlError(call, "GPU has fallen off the bus", index, "ERROR_GPU_IS_LOST")

    def init(self) -> None:
        with self._lock:
            if self._latency:
                time.sleep(self._latency)
            if self._init_failure:
                raise NvmlError("nvmlInit", self._init_failure, None, "ERROR_DRIVER_NOT_LOADED")
            if self._closed:  # drop the wake-up markers of the last shutdown, keep real events
                pending = []
                while True:
                    try:
                        pending.append(self._events.get_nowait())
                    except queue.Empty:
                        break
                for event in pending:
                    if event is not None:
                        self._events.put(event)
            self._initialised = True
            self._closed = False

    def shutdown(self) -> None:
        with self._lock:
            self._initialised = False
            self._closed = True
        self._events.put(None)

    def versions(self) -> Versions:
        self._enter("nvmlSystemGetDriverVersion")
        return Versions(self.desc.driver_version, self.desc.cuda_driver_version)

    def device_count(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self._gpus)

    def gpu(self, index: int) -> GpuInfo:
        self._enter("nvmlDeviceGetHandleByIndex", index)
        g = self._gpus[index]
        return GpuInfo(**{**g.__dict__, "mig_enabled": self._mig_enabled[index]})

    def mig_profiles(self, index: int) -> list[MigProfile]:
        self._enter("nvmlDeviceGetGpuInstanceProfileInfo", index)
        return list(self.desc.model.mig_profiles)

    def mig_instances(self, index: int) -> list[MigInstance]:
        self._enter("nvmlDeviceGetMigDeviceHandleByIndex", index)
        with self._lock:
            return sorted(self._instances[index], key=lambda m: m.placement_start)

    def set_mig_mode(self, index: int, enabled: bool) -> None:
        self._enter("nvmlDeviceSetMigMode", index)
        with self._lock:
            if enabled and not self.desc.model.mig_capable:
                raise NvmlError("nvmlDeviceSetMigMode", f"{self.desc.model.key} does not support MIG", index, "ERROR_NOT_SUPPORTED")
            if not enabled and self._instances[index]:
                raise NvmlError("nvmlDeviceSetMigMode", "MIG devices still exist; destroy them first", index, "ERROR_IN_USE")
            self._mig_enabled[index] = enabled
            self._save_state()

    def create_mig_instance(self, index: int, profile: str, placement_start: int) -> MigInstance:
        call = "nvmlDeviceCreateGpuInstanceWithPlacement"
        self._enter(call, index)
        with self._lock:
            if not self._mig_enabled[index]:
                raise NvmlError(call, "MIG mode is disabled", index, "ERROR_NOT_SUPPORTED")
            try:
                prof = self.desc.model.mig_profile(profile)
            except DataError as exc:
                raise NvmlError(call, str(exc), index, "ERROR_INVALID_ARGUMENT") from None
            existing = [(self.desc.model.mig_profile(m.profile), m.placement_start) for m in self._instances[index]]
            reason = is_legal(self.desc.model, [*existing, (prof, placement_start)])
            if reason:
                raise NvmlError(call, f"cannot create {profile} at slice {placement_start}: {reason}", index, "ERROR_INSUFFICIENT_RESOURCES")
            inst = self._make_instance(index, prof, placement_start)
            self._instances[index].append(inst)
            self._save_state()
        logger.info("mock_mig_created", index=index, profile=profile, start=placement_start, uuid=inst.uuid)
        return inst

    def destroy_mig_instance(self, index: int, uuid: str) -> None:
        call = "nvmlGpuInstanceDestroy"
        self._enter(call, index)
        with self._lock:
            for inst in self._instances[index]:
                if inst.uuid == uuid:
                    self._instances[index].remove(inst)
                    self._save_state()
                    logger.info("mock_mig_destroyed", index=index, uuid=uuid)
                    return
        raise NvmlError(call, f"no MIG device {uuid}", index, "ERROR_NOT_FOUND")

    def wait_event(self, timeout_s: float) -> HealthEvent | None:
        if self._closed:
            return None
        try:
            event = self._events.get(timeout=max(0.0, timeout_s))
        except queue.Empty:
            return None
        if event is None:
            self._events.put(None)  # keep other waiters awake after shutdown
        return event
