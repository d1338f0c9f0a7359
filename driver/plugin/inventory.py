"""What the plugin needs to know about each device it publishes, and MIG create/destroy.

Discovery (driver.devices) owns the device model; the plugin keeps only the facts prepare and
unprepare act on (which physical GPU, which UUID, whether a MIG instance must be created), in
one small frozen record, so that prepare never re-reads NVML on the hot path. The one exception
is a MIG device's GPU/compute-instance ids, asked for only when CDI specs name device nodes (real
GPUs): a dynamic device has none before prepare creates it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from driver import log

logger = log.get(__name__)


@dataclass(frozen=True)
class AllocatableDevice:
    """One published device, as prepare sees it."""

    name: str
    type: str  # gpu | mig | replica | fractional
    gpu_index: int  # the physical GPU (parent of a MIG device / replica)
    minor: int  # /dev/nvidia<minor> of the physical GPU
    uuid: str  # the device's own UUID; "" for a dynamic MIG device not created yet
    parent_uuid: str = ""  # physical GPU UUID for mig / replica / fractional
    mig_profile: str = ""
    mig_placement: int = -1
    replica_index: int = -1
    dynamic: bool = False  # a MIG device that prepare creates and unprepare destroys
    lost: bool = False  # its GPU fell off the bus: still published (tainted), never prepared

    @property
    def gpu_uuid(self) -> str:
        """UUID of the physical GPU this device lives on."""
        return self.parent_uuid or self.uuid


def from_inventory(inventory: Any, lost_gpus: set[str] | frozenset[str] = frozenset()) -> dict[str, AllocatableDevice]:
    """Adapt a `driver.devices.discover(...)` NodeInventory to the plugin's records, by name."""
    out: dict[str, AllocatableDevice] = {}
    for d in inventory.devices:
        out[d.name] = AllocatableDevice(
            name=d.name,
            type=d.kind,
            gpu_index=d.index,
            minor=d.minor,
            # A replica runs on its GPU: its "own" UUID for sharing and visibility is the GPU's.
            uuid=(d.uuid or "") if d.kind != "replica" else d.gpu_uuid,
            parent_uuid=d.gpu_uuid if d.kind != "gpu" else "",
            mig_profile=d.mig_profile or "",
            mig_placement=d.placement_start if d.placement_start is not None else -1,
            replica_index=d.replica_index if d.replica_index is not None else -1,
            dynamic=bool(d.dynamic and d.kind == "mig"),
            lost=d.gpu_uuid in lost_gpus,
        )
    return out


class MigManager(Protocol):
    """Create/destroy dynamic MIG instances (a narrow view of NvmlBackend)."""

    def create(self, gpu_index: int, profile: str, placement: int) -> str: ...

    def destroy(self, gpu_index: int, uuid: str) -> None: ...

    def find(self, gpu_index: int, profile: str, placement: int) -> str | None: ...

    def instances(self, gpu_index: int) -> list[tuple[str, str, int]]: ...

    def ids(self, gpu_index: int) -> dict[str, tuple[int, int]]: ...


@dataclass
class NvmlMig:
    """MigManager over an `NvmlBackend` (real or mock)."""

    backend: Any

    def create(self, gpu_index: int, profile: str, placement: int) -> str:
        if not self.backend.gpu(gpu_index).mig_enabled:
            # Dynamic MIG: the GPU stays in whole-GPU mode until a claim needs a MIG device.
            self.backend.set_mig_mode(gpu_index, True)
            logger.info("mig_mode_enabled", gpu=gpu_index)
        inst = self.backend.create_mig_instance(gpu_index, profile, placement)
        logger.info("mig_created", gpu=gpu_index, profile=profile, placement=placement, uuid=inst.uuid)
        return inst.uuid

    def destroy(self, gpu_index: int, uuid: str) -> None:
        self.backend.destroy_mig_instance(gpu_index, uuid)
        logger.info("mig_destroyed", gpu=gpu_index, uuid=uuid)
        if not self.backend.mig_instances(gpu_index):
            # Back to whole-GPU mode so the GPU itself can be prepared again.
            self.backend.set_mig_mode(gpu_index, False)
            logger.info("mig_mode_disabled", gpu=gpu_index)

    def find(self, gpu_index: int, profile: str, placement: int) -> str | None:
        for uuid, prof, start in self.instances(gpu_index):
            if prof == profile and start == placement:
                return uuid
        return None

    def instances(self, gpu_index: int) -> list[tuple[str, str, int]]:
        """(uuid, profile, placement start) of every MIG instance on the GPU."""
        return [(m.uuid, m.profile, m.placement_start) for m in self.backend.mig_instances(gpu_index)]

    def ids(self, gpu_index: int) -> dict[str, tuple[int, int]]:
        """(GPU-instance id, compute-instance id) of every MIG device on the GPU, by UUID."""
        return {m.uuid: (m.gi_id, m.ci_id) for m in self.backend.mig_instances(gpu_index)}
