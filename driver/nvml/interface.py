"""The narrow NVML interface discovery, the plugin and health checks use.

Everything above this layer talks to `NvmlBackend` and gets plain dataclasses back, so the real
binding (`real.py`, over nvidia-ml-py) and the data-driven mock (`mock.py`) are interchangeable
and nothing else in the project imports `pynvml`. Every failure is one exception type,
`NvmlError`, whose message names the NVML call and the GPU, because "NVML_ERROR_UNKNOWN" alone
tells an operator nothing about which of eight GPUs to look at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

MIB = 1024 * 1024


class NvmlError(RuntimeError):
    """An NVML call failed. `call` is the NVML function, `index` the GPU (None = system-wide)."""

    def __init__(self, call: str, message: str, index: int | None = None, code: str = "ERROR_UNKNOWN"):
        self.call = call
        self.index = index
        self.code = code
        self.detail = message
        where = f"GPU {index}" if index is not None else "system"
        super().__init__(f"{call} on {where}: {message} ({code})")

    @property
    def gpu_lost(self) -> bool:
        """True when the GPU fell off the bus: the caller should mark it unhealthy, not retry."""
        return self.code in ("ERROR_GPU_IS_LOST", "ERROR_NOT_FOUND")


@dataclass(frozen=True)
class Engines:
    """Hardware engine counts of a GPU or of a MIG profile."""

    copy_engines: int = 0
    decoders: int = 0
    encoders: int = 0
    jpeg_engines: int = 0
    ofa_engines: int = 0


@dataclass(frozen=True)
class MigProfile:
    """One GPU-instance profile of a MIG-capable GPU model (a row of `nvidia-smi mig -lgip`).

    `placements` are the start memory slices NVML lists as possible placements; an instance
    started at `s` occupies memory slices `s .. s + memory_slices - 1`.
    """

    name: str  # e.g. "1g.10gb"
    gi_profile_id: int  # NVML GPU-instance profile id (19 for 1g.10gb on A100)
    nvml_profile: int  # NVML_GPU_INSTANCE_PROFILE_* constant used to query/create it
    memory_slices: int
    compute_slices: int
    memory_mib: int
    multiprocessors: int
    engines: Engines
    max_count: int
    placements: tuple[int, ...]

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * MIB

    def slices_at(self, start: int) -> range:
        """Memory slices occupied by an instance placed at `start`."""
        return range(start, start + self.memory_slices)


@dataclass(frozen=True)
class GpuInfo:
    """What discovery needs to know about one physical GPU."""

    index: int
    minor: int
    uuid: str
    name: str  # product name, e.g. "NVIDIA A100-SXM4-80GB"
    brand: str  # e.g. "Nvidia", "Tesla"
    architecture: str  # e.g. "Ampere"
    memory_bytes: int
    pci_bus_id: str  # "0000:07:00.0" (lower-case hex, 4-digit domain as the kernel writes it)
    cuda_compute_capability: tuple[int, int]
    multiprocessors: int
    engines: Engines
    mig_capable: bool
    mig_enabled: bool
    memory_slices: int = 0  # MIG memory slices (0 when not MIG-capable)
    compute_slices: int = 0
    pcie_root: str | None = None  # "pci0000:00": the PCIe root complex, when known


@dataclass(frozen=True)
class MigInstance:
    """An existing MIG device (one GPU instance with its full-size compute instance)."""

    parent_index: int
    parent_uuid: str
    uuid: str  # "MIG-..."
    profile: str
    gi_profile_id: int
    gi_id: int
    ci_id: int
    placement_start: int
    placement_size: int
    memory_bytes: int
    multiprocessors: int
    engines: Engines

    @property
    def memory_slices(self) -> range:
        return range(self.placement_start, self.placement_start + self.placement_size)


@dataclass(frozen=True)
class HealthEvent:
    """A health-relevant NVML event: an XID error or a GPU that is gone."""

    kind: str  # "xid" | "gpu-lost"
    index: int
    uuid: str
    xid: int = 0
    message: str = ""
    mig_uuid: str | None = None  # set when NVML attributes the XID to one MIG device


@dataclass(frozen=True)
class Versions:
    driver: str  # "550.54.15"
    cuda_driver: str  # "12.4"


@runtime_checkable
class NvmlBackend(Protocol):
    """The calls the project makes into NVML. All raise `NvmlError` on failure."""

    def init(self) -> None:
        """Initialise NVML (idempotent)."""

    def shutdown(self) -> None:
        """Release NVML; wakes any `wait_event` caller."""

    def versions(self) -> Versions:
        """Driver and CUDA driver versions of the node."""

    def device_count(self) -> int: ...

    def gpu(self, index: int) -> GpuInfo: ...

    def mig_profiles(self, index: int) -> list[MigProfile]:
        """The GPU's MIG profile table ([] for GPUs without MIG)."""

    def mig_instances(self, index: int) -> list[MigInstance]:
        """Existing MIG devices of the GPU ([] when MIG is off)."""

    def set_mig_mode(self, index: int, enabled: bool) -> None: ...

    def create_mig_instance(self, index: int, profile: str, placement_start: int) -> MigInstance:
        """Create a GPU instance at the placement plus its full compute instance (dynamic MIG)."""

    def destroy_mig_instance(self, index: int, uuid: str) -> None:
        """Destroy a MIG device's compute instance(s) and its GPU instance."""

    def wait_event(self, timeout_s: float) -> HealthEvent | None:
        """Block up to `timeout_s` for the next XID / GPU-lost event; None on timeout or shutdown."""


@dataclass
class NodeGpus:
    """A snapshot of everything discovery reads, taken in one pass (handy for logs and tests)."""

    versions: Versions
    gpus: list[GpuInfo] = field(default_factory=list)
    profiles: dict[int, list[MigProfile]] = field(default_factory=dict)
    instances: dict[int, list[MigInstance]] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)  # GPUs that failed, by index


def snapshot(backend: NvmlBackend) -> NodeGpus:
    """Read every GPU once. A GPU whose calls fail is recorded in `errors` and skipped, so one
    broken GPU does not hide the seven healthy ones."""
    backend.init()
    snap = NodeGpus(versions=backend.versions())
    for index in range(backend.device_count()):
        try:
            info = backend.gpu(index)
            profiles = backend.mig_profiles(index) if info.mig_capable else []
            instances = backend.mig_instances(index) if info.mig_enabled else []
        except NvmlError as exc:
            snap.errors[index] = str(exc)
            continue
        snap.gpus.append(info)
        snap.profiles[index] = profiles
        snap.instances[index] = instances
    return snap
