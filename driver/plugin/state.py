"""Prepare and unprepare: the side effects, in a crash-safe order.

Order of a prepare (each step can be interrupted by a crash; see `CRASH_POINTS`):

1. record the claim as PrepareStarted with what it is about to do (checkpoint),
2. create dynamic MIG instances (recording each UUID),
3. apply sharing (time-slice interval through nvidia-smi, MPS control daemon),
4. write the claim's CDI spec,
5. record PrepareCompleted.

A failure at any step undoes the earlier ones; a crash leaves PrepareStarted, which the next
start (or the next prepare of the claim) rolls back from the record, so nothing leaks: no CDI
file, no MIG instance, no MPS daemon. Unprepare undoes a completed record the same way and
needs nothing from the API server.

All state changes hold one lock: kubelet sends few, small batches and correctness under
retries matters far more than parallel prepares.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from driver import log
from driver.dra.quantity import parse_quantity
from driver.nvml.migcaps import MigCapsError, MigMinors
from driver.plugin import cdi
from driver.plugin import checkpoint as ckpt
from driver.plugin.checkpoint import Checkpoint, ClaimRecord, PreparedDevice
from driver.plugin.claims import ClaimError, ClaimPlan, PlannedDevice, mps_limits, plan_claim
from driver.plugin.inventory import AllocatableDevice, MigManager
from driver.plugin.sharing import MpsControl, MpsSettings, NvidiaSmi

logger = log.get(__name__)

CRASH_ENV = "GPU_DRA_CRASH_AT"
CRASH_POINTS = (
    "after-checkpoint-started",
    "after-mig-create",
    "after-sharing",
    "after-cdi",
    "after-checkpoint-completed",
)
CONTROL_NODES = ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"]


class PrepareError(RuntimeError):
    """A claim could not be prepared; the message goes back to kubelet for this claim only."""


@dataclass
class StateOptions:
    node_name: str
    driver_name: str
    cdi_root: str
    state_dir: str
    device_nodes: bool = False  # add /dev/nvidia* (and /dev/nvidia-caps for MIG) to CDI specs (real GPUs)
    dev_root: str = "/dev"  # where the host keeps those device nodes
    crash_at: str = ""  # test hook: SIGKILL ourselves at this point of a prepare


@dataclass
class DeviceState:
    """The node's prepared claims and the operations on them."""

    options: StateOptions
    devices: Callable[[], dict[str, AllocatableDevice]]
    get_claim: Callable[[str, str], dict[str, Any] | None]
    mig: MigManager | None = None
    smi: NvidiaSmi = field(default_factory=NvidiaSmi)
    mps: MpsControl = field(default_factory=MpsControl)
    report: Callable[[str, str], None] = lambda reason, message: None  # node Event sink
    changed: Callable[[], None] = lambda: None  # the node's devices changed (dynamic MIG): republish
    # The node's MIG capability table (raises MigCapsError); read only when a MIG device is prepared
    # with device nodes, so whole-GPU nodes never need it.
    mig_minors: Callable[[], MigMinors] | None = None
    checkpoint: Checkpoint = field(init=False)
    lock: threading.RLock = field(default_factory=threading.RLock, init=False)

    def __post_init__(self) -> None:
        if self.options.crash_at and self.options.crash_at not in CRASH_POINTS:
            raise ValueError(f"{CRASH_ENV}: expected one of {', '.join(CRASH_POINTS)}, got {self.options.crash_at!r}")
        self.checkpoint = Checkpoint(ckpt.read_boot_id())

    # -- helpers ----------------------------------------------------------------------------
    @property
    def pool(self) -> str:
        return self.options.node_name

    def _crash(self, point: str) -> None:
        if self.options.crash_at == point:
            logger.warning("crash_point", point=point)
            os.kill(os.getpid(), signal.SIGKILL)

    def _save(self) -> None:
        ckpt.save(self.options.state_dir, self.checkpoint)

    def _mps_dir(self, uid: str) -> Path:
        return Path(self.options.state_dir) / "mps" / uid

    def prepared_device_count(self) -> int:
        with self.lock:
            return sum(len(r.devices) for r in self.checkpoint.claims.values() if r.state == ckpt.PREPARE_COMPLETED)

    # -- startup ------------------------------------------------------------------------------
    def recover(self, list_claims: Callable[[], list[dict[str, Any]]] | None = None) -> None:
        """Load the checkpoint and converge: roll back half-prepared claims, drop leftovers.

        A corrupted checkpoint is reported and rebuilt from the API server's allocated claims
        for this node (when `list_claims` is given).
        """
        with self.lock:
            boot_id = ckpt.read_boot_id()
            try:
                loaded = ckpt.load(self.options.state_dir)
            except ckpt.CheckpointCorrupt as exc:
                logger.error("checkpoint_corrupt", error=str(exc))
                self.report("CheckpointCorrupt", f"{exc}; rebuilding from the API server")
                loaded = None
                self.checkpoint = Checkpoint(boot_id)
                self._rebuild(list_claims)
            else:
                self.checkpoint = loaded or Checkpoint(boot_id)
                if loaded and loaded.boot_id != boot_id:
                    # A reboot destroyed MIG instances, MPS daemons and time-slice settings:
                    # forget everything; kubelet prepares again for pods that still run.
                    logger.info("node_rebooted", claims=len(loaded.claims))
                    self.checkpoint = Checkpoint(boot_id)
            for uid, rec in list(self.checkpoint.claims.items()):
                if rec.state != ckpt.PREPARE_COMPLETED:
                    logger.warning("rollback_half_prepared", claim=uid, namespace=rec.namespace, name=rec.name)
                    self._rollback(rec)
            self._save()
            self._remove_orphans()

    def _rollback(self, rec: ClaimRecord) -> bool:
        """Undo a record and forget it; if undoing fails, keep it (PrepareStarted) to retry later."""
        try:
            self._undo(rec)
        except Exception as exc:  # noqa: BLE001 - reported, and retried on the next prepare/start
            logger.error("rollback_failed", claim=rec.uid, namespace=rec.namespace, name=rec.name, error=str(exc))
            rec.state = ckpt.PREPARE_STARTED
            return False
        self.checkpoint.claims.pop(rec.uid, None)
        return True

    def _rebuild(self, list_claims: Callable[[], list[dict[str, Any]]] | None) -> None:
        if list_claims is None:
            return
        rebuilt = 0
        for claim in list_claims():
            meta = claim.get("metadata") or {}
            if not (claim.get("status") or {}).get("reservedFor"):
                continue
            try:
                self._prepare_locked(meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", ""), claim)
                rebuilt += 1
            except (ClaimError, PrepareError):
                continue  # not ours or not preparable: kubelet's next call reports it
        logger.info("checkpoint_rebuilt", claims=rebuilt)

    def _remove_orphans(self) -> None:
        """CDI files, MPS dirs and dynamic MIG instances no record accounts for."""
        known = set(self.checkpoint.claims)
        cdi.remove_stale_temp_files(self.options.cdi_root)
        for uid in cdi.list_claim_uids(self.options.cdi_root):
            if uid not in known:
                logger.warning("orphan_cdi_removed", claim=uid)
                cdi.delete_spec(self.options.cdi_root, uid)
        mps_root = Path(self.options.state_dir) / "mps"
        if mps_root.is_dir():
            for d in mps_root.iterdir():
                if d.name not in known:
                    self.mps.stop(d)
        if self.mig is None:
            return
        ours = {d.uuid for r in self.checkpoint.claims.values() for d in r.devices if d.mig_created}
        dynamic_gpus = {d.gpu_index for d in self.devices().values() if d.dynamic}
        for gpu in sorted(dynamic_gpus):
            for uuid, profile, start in self.mig.instances(gpu):
                if uuid not in ours:
                    logger.warning("orphan_mig_destroyed", gpu=gpu, uuid=uuid, profile=profile, placement=start)
                    self.mig.destroy(gpu, uuid)

    # -- prepare ------------------------------------------------------------------------------
    def prepare(self, namespace: str, name: str, uid: str) -> list[PreparedDevice]:
        """Prepare one claim (idempotent); raises ClaimError / PrepareError for this claim."""
        with self.lock:
            rec = self.checkpoint.claims.get(uid)
            if rec is not None and rec.state == ckpt.PREPARE_COMPLETED:
                return rec.devices
        claim = self.get_claim(namespace, name)  # outside the lock: a slow API must not stall others
        with self.lock:
            return self._prepare_locked(namespace, name, uid, claim)

    def _prepare_locked(self, namespace: str, name: str, uid: str, claim: dict[str, Any] | None) -> list[PreparedDevice]:
        rec = self.checkpoint.claims.get(uid)
        if rec is not None and rec.state == ckpt.PREPARE_COMPLETED:
            return rec.devices
        if rec is not None:  # an earlier attempt died half-way: start clean
            if not self._rollback(rec):
                raise PrepareError(f"ResourceClaim {namespace}/{name}: an earlier half-done prepare could not be "
                                   "rolled back yet (see the plugin log); retrying on the next call")
            self._save()
        plan = plan_claim(claim, namespace, name, uid, self.options.driver_name, self.pool, self.devices())
        self._check_conflicts(plan)
        rec = ClaimRecord(uid, namespace, name, ckpt.PREPARE_STARTED, [self._record(d) for d in plan.devices])
        if any(d.sharing == "MPS" for d in rec.devices):
            rec.mps_dir = str(self._mps_dir(uid))
        self.checkpoint.claims[uid] = rec
        self._save()
        self._crash("after-checkpoint-started")
        try:
            self._apply(plan, rec)
        except Exception as exc:
            logger.error("prepare_failed", claim=uid, namespace=namespace, name=name, error=str(exc))
            self._rollback(rec)
            self._save()
            if isinstance(exc, (ClaimError, PrepareError)):
                raise
            raise PrepareError(f"ResourceClaim {namespace}/{name}: {exc}") from exc
        rec.state = ckpt.PREPARE_COMPLETED
        self._save()
        if any(d.mig_profile for d in rec.devices):
            self.changed()
        self._crash("after-checkpoint-completed")
        logger.info("claim_prepared", claim=uid, namespace=namespace, name=name, devices=[d.device for d in rec.devices])
        return rec.devices

    def _record(self, d: PlannedDevice) -> PreparedDevice:
        """The device's record with every side effect prepare *intends*, saved before any is made.

        Undoing an intended-but-not-made effect is harmless (reset an interval that was never
        set, find no MIG instance at the placement, find no MPS dir), so one checkpoint write
        before the work and one after it are enough for a crash at any point in between.
        """
        dev = d.device
        sharing = d.config.config.sharing if d.config else None
        mps = (sharing is not None and sharing.strategy == "MPS") or (
            d.config is not None and d.config.config.kind == "FractionalConfig" and d.config.config.enforcement == "MPS")
        interval = sharing.interval if sharing and sharing.strategy == "TimeSlicing" and sharing.interval else ""
        return PreparedDevice(
            request_names=[d.request], pool=self.pool, device=dev.name, type=dev.type, uuid=dev.uuid,
            parent_uuid=dev.parent_uuid, gpu_index=dev.gpu_index,
            share_id=d.share_id, mig_profile=dev.mig_profile if dev.dynamic else "",
            mig_placement=dev.mig_placement if dev.dynamic else -1, consumed=dict(d.consumed),
            sharing="MPS" if mps else ("TimeSlicing" if interval else ""), timeslice_interval=interval,
        )

    def _check_conflicts(self, plan: ClaimPlan) -> None:
        """Refuse a device another prepared claim holds, unless they share it legitimately."""
        ref = f"ResourceClaim {plan.namespace}/{plan.name}"
        for d in plan.devices:
            dev = d.device
            for other in self.checkpoint.claims.values():
                if other.uid == plan.uid:
                    continue
                for od in other.devices:
                    shared = d.admin_access or dev.type == "fractional"
                    if od.device == dev.name and not shared:
                        raise PrepareError(
                            f"{ref}: device {dev.name} is already prepared for claim "
                            f"{other.namespace}/{other.name} ({other.uid})")
                    whole_vs_part = od.gpu_index == dev.gpu_index and od.device != dev.name and (
                        od.type == "gpu" or dev.type == "gpu")
                    if whole_vs_part and not d.admin_access:
                        raise PrepareError(
                            f"{ref}: device {dev.name} overlaps {od.device} on the same GPU, already "
                            f"prepared for claim {other.namespace}/{other.name} ({other.uid})")
                    interval = d.config.config.sharing.interval if d.config and d.config.config.sharing else None
                    if (dev.type == "replica" and od.type == "replica" and od.gpu_index == dev.gpu_index
                            and interval and od.timeslice_interval and interval != od.timeslice_interval):
                        raise PrepareError(
                            f"{ref}: GPU {dev.gpu_index} is time-sliced with interval {od.timeslice_interval} "
                            f"for claim {other.namespace}/{other.name}; this claim asks for {interval}")

    def _apply(self, plan: ClaimPlan, rec: ClaimRecord) -> None:
        by_name = {d.device: d for d in rec.devices}
        # 2. dynamic MIG instances
        for d in plan.devices:
            prep = by_name[d.device.name]
            if d.device.dynamic and self.mig is not None:
                existing = self.mig.find(d.device.gpu_index, d.device.mig_profile, d.device.mig_placement)
                prep.uuid = existing or self.mig.create(d.device.gpu_index, d.device.mig_profile, d.device.mig_placement)
                prep.mig_created = True
                self._crash("after-mig-create")
            elif d.device.dynamic:
                raise PrepareError(f"device {d.device.name} needs a MIG instance but no NVML backend is available")
        uuid_of = {name: p.uuid for name, p in by_name.items()}
        # 3. sharing
        edits: dict[str, cdi.DeviceEdits] = {n: cdi.DeviceEdits(n) for n in by_name}
        common_env: dict[str, str] = {}
        for config, group in plan.groups():
            sharing = config.config.sharing if config else None
            if config is not None and config.config.kind == "FractionalConfig" and config.config.enforcement == "MPS":
                self._start_mps(rec, group, uuid_of, None, edits)
            if sharing is None:
                continue
            if sharing.strategy == "TimeSlicing" and sharing.interval is not None:
                for d in group:
                    self.smi.set_timeslice(d.device.gpu_uuid, sharing.interval_value or 0)
            elif sharing.strategy == "MPS":
                self._start_mps(rec, group, uuid_of, config, edits)
        self._crash("after-sharing")
        # 4. CDI
        fractional = [by_name[d.device.name] for d in plan.devices if d.device.type == "fractional"]
        if fractional:
            common_env.update(_fractional_env(fractional))
        visible = []
        for d in plan.devices:
            u = uuid_of[d.device.name] if d.device.type == "mig" else d.device.gpu_uuid
            if u and u not in visible:
                visible.append(u)
        if self.options.device_nodes:
            self._add_device_nodes(plan.devices, uuid_of, edits)
        common_env["NVIDIA_VISIBLE_DEVICES"] = ",".join(visible)
        spec = cdi.build_spec(rec.uid, list(edits.values()), common_env,
                              CONTROL_NODES if self.options.device_nodes else None, self.options.dev_root)
        cdi.write_spec(self.options.cdi_root, rec.uid, spec)
        for prep in rec.devices:
            prep.cdi_device_ids = [cdi.cdi_device_id(rec.uid, prep.device)]
        self._crash("after-cdi")

    def _mig_table(self) -> MigMinors:
        if self.mig_minors is None:
            raise MigCapsError("MIG devices need the node's MIG capability table (mig-minors), but none is configured")
        return self.mig_minors()

    def _add_device_nodes(self, devices: list[PlannedDevice], uuid_of: dict[str, str],
                          edits: dict[str, cdi.DeviceEdits]) -> None:
        """/dev/nvidia<minor> for every device, and for a MIG device its two /dev/nvidia-caps nodes:
        the capability table is read once per prepare and NVML asked once per GPU, not per device.

        The ids are asked of NVML here rather than at discovery: a dynamic device only has them once
        step 2 created it, and a static one keeps the ids NVML gave it when it was created.
        """
        table: MigMinors | None = None
        ids_by_gpu: dict[int, dict[str, tuple[int, int]]] = {}
        for d in devices:
            nodes = edits[d.device.name].device_nodes
            nodes.append(f"/dev/nvidia{d.device.minor}")
            if d.device.type != "mig":
                continue
            table = table or self._mig_table()
            gpu = d.device.gpu_index
            if gpu not in ids_by_gpu:
                ids_by_gpu[gpu] = self.mig.ids(gpu) if self.mig is not None else {}
            nodes += self._mig_cap_nodes(d.device, uuid_of[d.device.name], table, ids_by_gpu[gpu])

    def _mig_cap_nodes(self, dev: AllocatableDevice, uuid: str, table: MigMinors,
                       gpu_ids: dict[str, tuple[int, int]]) -> list[str]:
        """/dev/nvidia-caps nodes of a MIG device's GPU and compute instance (`gpu_ids`: its GPU's
        MIG devices, UUID -> (GPU-instance id, compute-instance id))."""
        ids = gpu_ids.get(uuid) if uuid else None
        if ids is None:
            raise MigCapsError(f"device {dev.name}: MIG device {uuid or '(none)'} not found on GPU {dev.gpu_index}, "
                               "so its GPU/compute-instance ids (for /dev/nvidia-caps) are unknown")
        try:
            return table.device_nodes(dev.minor, *ids)
        except MigCapsError as exc:
            raise MigCapsError(f"device {dev.name} (GPU minor {dev.minor}, GPU instance {ids[0]}, "
                               f"compute instance {ids[1]}): {exc}") from None

    def _start_mps(self, rec: ClaimRecord, group: list[PlannedDevice], uuid_of: dict[str, str],
                   config: Any, edits: dict[str, cdi.DeviceEdits]) -> None:
        claim_dir = self._mps_dir(rec.uid)
        uuids = [uuid_of[d.device.name] for d in group]
        mps = config.config.sharing.mps if config is not None else None
        settings = MpsSettings(
            active_thread_percentage=mps.default_active_thread_percentage if mps else None,
            pinned_memory_limits=mps_limits(config, group, uuid_of) if config is not None else None,
        )
        self.mps.start(claim_dir, uuids, settings)
        pipe, _, shm = MpsControl.dirs(claim_dir)
        for d in group:
            e = edits[d.device.name]
            e.env["CUDA_MPS_PIPE_DIRECTORY"] = cdi.MPS_PIPE_DIR
            e.mounts += [(str(pipe), cdi.MPS_PIPE_DIR), (str(shm), "/dev/shm")]

    # -- unprepare ----------------------------------------------------------------------------
    def unprepare(self, namespace: str, name: str, uid: str) -> None:
        """Undo a prepare from the checkpoint alone (idempotent; the claim may be gone)."""
        with self.lock:
            rec = self.checkpoint.claims.get(uid)
            if rec is None:
                cdi.delete_spec(self.options.cdi_root, uid)  # a leftover with no record
                return
            # Half-undone from here on: a prepare arriving after a failed unprepare redoes it all.
            rec.state = ckpt.PREPARE_STARTED
            self._save()
            self._undo(rec)
            del self.checkpoint.claims[uid]
            self._save()
            if any(d.mig_profile for d in rec.devices):
                self.changed()
            logger.info("claim_unprepared", claim=uid, namespace=namespace, name=name)

    def _undo(self, rec: ClaimRecord) -> None:
        """Reverse every side effect a record says may have happened; tolerate missing ones."""
        cdi.delete_spec(self.options.cdi_root, rec.uid)
        if rec.mps_dir or self._mps_dir(rec.uid).exists():
            self.mps.stop(rec.mps_dir or self._mps_dir(rec.uid))
        for d in rec.devices:
            if d.timeslice_interval and d.timeslice_interval != "Default" and not self._gpu_still_sliced(rec.uid, d):
                try:
                    self.smi.set_timeslice(d.parent_uuid or d.uuid, 0)
                except Exception as exc:  # noqa: BLE001 - keep undoing the rest
                    logger.warning("timeslice_reset_failed", device=d.device, error=str(exc))
            if d.mig_profile and self.mig is not None:
                uuid = d.uuid or self.mig.find(d.gpu_index, d.mig_profile, d.mig_placement)
                if uuid:
                    try:
                        self.mig.destroy(d.gpu_index, uuid)
                    except Exception as exc:  # noqa: BLE001
                        if self.mig.find(d.gpu_index, d.mig_profile, d.mig_placement):
                            raise PrepareError(f"destroying MIG device {d.device} ({uuid}): {exc}") from exc

    def _gpu_still_sliced(self, uid: str, dev: PreparedDevice) -> bool:
        """Another prepared claim keeps the same GPU time-sliced: leave its interval alone."""
        return any(
            od.gpu_index == dev.gpu_index and od.timeslice_interval
            for other in self.checkpoint.claims.values() if other.uid != uid for od in other.devices
        )


def _fractional_env(devices: list[PreparedDevice]) -> dict[str, str]:
    """Limits of fractional allocations as the environment CUDA MPS clients honour.

    Ordinals are the order of the devices in the claim (the container sees only them).
    """
    env: dict[str, str] = {}
    limits = []
    percents = []
    for i, d in enumerate(devices):
        if "memory" in d.consumed:
            mib = int(parse_quantity(d.consumed["memory"]) // (1024 * 1024))
            limits.append(f"{i}={mib}M")
        if "compute" in d.consumed:
            share = parse_quantity(d.consumed["compute"])
            percents.append(max(1, min(100, int(share * 100))))
    if limits:
        env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] = ",".join(limits)
    if percents:
        env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(min(percents))
    return env

