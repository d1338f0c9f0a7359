"""`NvmlBackend` over the node's NVML through nvidia-ml-py (`pynvml`).

Only this module imports pynvml. Every pynvml error becomes an `NvmlError` naming the NVML call
and the GPU index, with the NVML error code's name (ERROR_GPU_IS_LOST, ...), so logs and claim
errors say "nvmlDeviceGetMigMode on GPU 3: GPU is lost" rather than "Unknown Error".

The binding cannot be exercised without a GPU; it follows the nvidia-ml-py 13 API (function
names, struct fields, caller-allocated placement arrays) and the mock mirrors its answers.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from driver import log
from driver.nvml.interface import MIB, Engines, GpuInfo, HealthEvent, MigInstance, MigProfile, NvmlError, Versions

logger = log.get(__name__)
T = TypeVar("T")

ARCHITECTURES = {2: "Kepler", 3: "Maxwell", 4: "Pascal", 5: "Volta", 6: "Turing", 7: "Ampere",
                 8: "Ada Lovelace", 9: "Hopper", 10: "Blackwell", 13: "Rubin"}
BRANDS = {1: "Quadro", 2: "Tesla", 3: "NVS", 4: "Grid", 5: "GeForce", 6: "Titan", 12: "QuadroRTX",
          13: "NvidiaRTX", 14: "Nvidia"}
_MAX_PLACEMENTS = 16
_NO_INSTANCE = 0xFFFFFFFF


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def kernel_bus_id(nvml_bus_id: str) -> str:
    """"00000000:07:00.0" (NVML) -> "0000:07:00.0" (sysfs, resource.kubernetes.io/pciBusID)."""
    domain, rest = nvml_bus_id.strip().split(":", 1)
    return f"{int(domain, 16):04x}:{rest.lower()}"


def pcie_root(bus_id: str, sysfs: str = "/sys/bus/pci/devices") -> str | None:
    """The PCIe root complex ("pci0000:00") above a device, from its sysfs path; None if unknown."""
    try:
        real = os.path.realpath(os.path.join(sysfs, bus_id))
    except OSError:
        return None
    for part in real.split(os.sep):
        if part.startswith("pci") and ":" in part:
            return part
    return None


class RealNvml:
    """The real NVML. Thread-safe: NVML itself is, and the event set is created under a lock."""

    def __init__(self, binding: Any = None) -> None:
        """`binding` is the pynvml module (default); tests pass a stand-in where no GPU exists."""
        if binding is None:
            import pynvml as binding  # nvidia-ml-py; importing needs no GPU, nvmlInit does

        pynvml = binding
        self.nv = pynvml
        self._codes = {getattr(pynvml, n): n[5:] for n in dir(pynvml) if n.startswith("NVML_ERROR_")}
        self._lock = threading.Lock()
        self._events: Any = None
        self._handles: dict[int, Any] = {}
        self._profiles: dict[int, list[MigProfile]] = {}
        self._closed = False

    # ---- plumbing ---------------------------------------------------------------------------
    def _call(self, call: str, index: int | None, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except self.nv.NVMLError as exc:
            code = self._codes.get(getattr(exc, "value", None), "ERROR_UNKNOWN")
            raise NvmlError(call, str(exc), index, code) from None

    def _handle(self, index: int) -> Any:
        h = self._handles.get(index)
        if h is None:
            h = self._call("nvmlDeviceGetHandleByIndex", index, self.nv.nvmlDeviceGetHandleByIndex, index)
            self._handles[index] = h
        return h

    # ---- NvmlBackend --------------------------------------------------------------------------
    def init(self) -> None:
        self._call("nvmlInit", None, self.nv.nvmlInit)
        self._closed = False

    def shutdown(self) -> None:
        self._closed = True
        with self._lock:
            if self._events is not None:
                try:
                    self.nv.nvmlEventSetFree(self._events)
                except self.nv.NVMLError:
                    pass
                self._events = None
        self._handles.clear()
        self._call("nvmlShutdown", None, self.nv.nvmlShutdown)

    def versions(self) -> Versions:
        driver = _text(self._call("nvmlSystemGetDriverVersion", None, self.nv.nvmlSystemGetDriverVersion))
        cuda = self._call("nvmlSystemGetCudaDriverVersion", None, self.nv.nvmlSystemGetCudaDriverVersion)
        return Versions(driver, f"{cuda // 1000}.{(cuda % 1000) // 10}")

    def device_count(self) -> int:
        return self._call("nvmlDeviceGetCount", None, self.nv.nvmlDeviceGetCount)

    def gpu(self, index: int) -> GpuInfo:
        nv, h = self.nv, self._handle(index)
        try:
            mode = self._call("nvmlDeviceGetMigMode", index, nv.nvmlDeviceGetMigMode, h)
            capable, enabled = True, mode[0] == nv.NVML_DEVICE_MIG_ENABLE
        except NvmlError as exc:
            if exc.code != "ERROR_NOT_SUPPORTED":
                raise
            capable, enabled = False, False
        bus = kernel_bus_id(_text(self._call("nvmlDeviceGetPciInfo", index, nv.nvmlDeviceGetPciInfo, h).busId))
        sms, engines = 0, Engines()
        try:
            attrs = self._call("nvmlDeviceGetAttributes", index, nv.nvmlDeviceGetAttributes, h)
            sms = attrs.multiprocessorCount
            engines = Engines(attrs.sharedCopyEngineCount, attrs.sharedDecoderCount, attrs.sharedEncoderCount,
                              attrs.sharedJpegCount, attrs.sharedOfaCount)
        except NvmlError as exc:
            if exc.gpu_lost:
                raise
        memory_slices = compute_slices = 0
        if capable:
            profiles = self.mig_profiles(index)
            if profiles:
                full = max(profiles, key=lambda p: (p.memory_slices, p.compute_slices))
                memory_slices, compute_slices = full.memory_slices, full.compute_slices
                # the counters must hold every legal MIG layout: take at least the full profile's figures
                sms = max(sms, full.multiprocessors)
                e = full.engines
                engines = Engines(max(engines.copy_engines, e.copy_engines), max(engines.decoders, e.decoders),
                                  max(engines.encoders, e.encoders), max(engines.jpeg_engines, e.jpeg_engines),
                                  max(engines.ofa_engines, e.ofa_engines))
        major, minor_cc = self._call("nvmlDeviceGetCudaComputeCapability", index, nv.nvmlDeviceGetCudaComputeCapability, h)
        return GpuInfo(
            index=index,
            minor=self._call("nvmlDeviceGetMinorNumber", index, nv.nvmlDeviceGetMinorNumber, h),
            uuid=_text(self._call("nvmlDeviceGetUUID", index, nv.nvmlDeviceGetUUID, h)),
            name=_text(self._call("nvmlDeviceGetName", index, nv.nvmlDeviceGetName, h)),
            brand=BRANDS.get(self._call("nvmlDeviceGetBrand", index, nv.nvmlDeviceGetBrand, h), "Unknown"),
            architecture=ARCHITECTURES.get(
                self._call("nvmlDeviceGetArchitecture", index, nv.nvmlDeviceGetArchitecture, h), "Unknown"),
            memory_bytes=self._call("nvmlDeviceGetMemoryInfo", index, nv.nvmlDeviceGetMemoryInfo, h).total,
            pci_bus_id=bus,
            cuda_compute_capability=(major, minor_cc),
            multiprocessors=sms,
            engines=engines,
            mig_capable=capable,
            mig_enabled=enabled,
            memory_slices=memory_slices,
            compute_slices=compute_slices,
            pcie_root=pcie_root(bus),
        )

    def mig_profiles(self, index: int) -> list[MigProfile]:
        if index in self._profiles:
            return self._profiles[index]
        nv, h = self.nv, self._handle(index)
        out: list[MigProfile] = []
        for nvml_profile in range(nv.NVML_GPU_INSTANCE_PROFILE_COUNT):
            try:
                info = self._call("nvmlDeviceGetGpuInstanceProfileInfo", index,
                                  nv.nvmlDeviceGetGpuInstanceProfileInfo, h, nvml_profile, 2)
            except NvmlError as exc:
                if exc.code in ("ERROR_NOT_SUPPORTED", "ERROR_INVALID_ARGUMENT", "ERROR_NOT_FOUND"):
                    continue
                raise
            if info.instanceCount == 0:
                continue
            placements = (nv.c_nvmlGpuInstancePlacement_t * _MAX_PLACEMENTS)()
            count = ctypes.c_uint(_MAX_PLACEMENTS)
            self._call("nvmlDeviceGetGpuInstancePossiblePlacements", index,
                       nv.nvmlDeviceGetGpuInstancePossiblePlacements, h, info.id, placements, ctypes.byref(count))
            starts = tuple(placements[k].start for k in range(count.value))
            size = placements[0].size if count.value else 0
            out.append(MigProfile(
                name=_text(info.name).removeprefix("MIG ").strip(),
                gi_profile_id=info.id,
                nvml_profile=nvml_profile,
                memory_slices=size,
                compute_slices=info.sliceCount,
                memory_mib=info.memorySizeMB,
                multiprocessors=info.multiprocessorCount,
                engines=Engines(info.copyEngineCount, info.decoderCount, info.encoderCount, info.jpegCount, info.ofaCount),
                max_count=info.instanceCount,
                placements=starts,
            ))
        self._profiles[index] = out
        return out

    def _instance(self, index: int, parent: Any, parent_uuid: str, mig: Any) -> MigInstance:
        nv = self.nv
        gi_id = self._call("nvmlDeviceGetGpuInstanceId", index, nv.nvmlDeviceGetGpuInstanceId, mig)
        ci_id = self._call("nvmlDeviceGetComputeInstanceId", index, nv.nvmlDeviceGetComputeInstanceId, mig)
        gi = self._call("nvmlDeviceGetGpuInstanceById", index, nv.nvmlDeviceGetGpuInstanceById, parent, gi_id)
        info = self._call("nvmlGpuInstanceGetInfo", index, nv.nvmlGpuInstanceGetInfo, gi)
        attrs = self._call("nvmlDeviceGetAttributes", index, nv.nvmlDeviceGetAttributes, mig)
        by_id = {p.gi_profile_id: p for p in self.mig_profiles(index)}
        profile = by_id.get(info.profileId)
        return MigInstance(
            parent_index=index,
            parent_uuid=parent_uuid,
            uuid=_text(self._call("nvmlDeviceGetUUID", index, nv.nvmlDeviceGetUUID, mig)),
            profile=profile.name if profile else f"unknown-{info.profileId}",
            gi_profile_id=info.profileId,
            gi_id=gi_id,
            ci_id=ci_id,
            placement_start=info.placement.start,
            placement_size=info.placement.size,
            memory_bytes=attrs.memorySizeMB * MIB,
            multiprocessors=attrs.multiprocessorCount,
            engines=Engines(attrs.sharedCopyEngineCount, attrs.sharedDecoderCount, attrs.sharedEncoderCount,
                            attrs.sharedJpegCount, attrs.sharedOfaCount),
        )

    def mig_instances(self, index: int) -> list[MigInstance]:
        nv, h = self.nv, self._handle(index)
        parent_uuid = _text(self._call("nvmlDeviceGetUUID", index, nv.nvmlDeviceGetUUID, h))
        out = []
        for k in range(self._call("nvmlDeviceGetMaxMigDeviceCount", index, nv.nvmlDeviceGetMaxMigDeviceCount, h)):
            try:
                mig = self._call("nvmlDeviceGetMigDeviceHandleByIndex", index, nv.nvmlDeviceGetMigDeviceHandleByIndex, h, k)
            except NvmlError as exc:
                if exc.code == "ERROR_NOT_FOUND":
                    continue
                raise
            out.append(self._instance(index, h, parent_uuid, mig))
        return sorted(out, key=lambda m: m.placement_start)

    def set_mig_mode(self, index: int, enabled: bool) -> None:
        mode = self.nv.NVML_DEVICE_MIG_ENABLE if enabled else self.nv.NVML_DEVICE_MIG_DISABLE
        self._call("nvmlDeviceSetMigMode", index, self.nv.nvmlDeviceSetMigMode, self._handle(index), mode)
        self._profiles.pop(index, None)

    def create_mig_instance(self, index: int, profile: str, placement_start: int) -> MigInstance:
        nv, h = self.nv, self._handle(index)
        by_name = {p.name: p for p in self.mig_profiles(index)}
        if profile not in by_name:
            raise NvmlError("nvmlDeviceCreateGpuInstanceWithPlacement",
                            f"unknown MIG profile {profile!r} (known: {', '.join(by_name)})", index, "ERROR_INVALID_ARGUMENT")
        p = by_name[profile]
        placement = nv.c_nvmlGpuInstancePlacement_t()
        placement.start, placement.size = placement_start, p.memory_slices
        gi = self._call("nvmlDeviceCreateGpuInstanceWithPlacement", index,
                        nv.nvmlDeviceCreateGpuInstanceWithPlacement, h, p.gi_profile_id, ctypes.byref(placement))
        try:
            ci_profile = {1: 0, 2: 1, 3: 2, 4: 3, 7: 4, 8: 5, 6: 6}[p.compute_slices]
            ci_info = self._call("nvmlGpuInstanceGetComputeInstanceProfileInfo", index,
                                 nv.nvmlGpuInstanceGetComputeInstanceProfileInfo, gi, ci_profile,
                                 nv.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED, 2)
            self._call("nvmlGpuInstanceCreateComputeInstance", index, nv.nvmlGpuInstanceCreateComputeInstance, gi, ci_info.id)
        except Exception:
            try:
                nv.nvmlGpuInstanceDestroy(gi)  # roll back: no half-created MIG device stays behind
            except nv.NVMLError as exc:
                logger.error("mig_rollback_failed", index=index, profile=profile, error=str(exc))
            raise
        gi_id = self._call("nvmlGpuInstanceGetInfo", index, nv.nvmlGpuInstanceGetInfo, gi).id
        for inst in self.mig_instances(index):
            if inst.gi_id == gi_id:
                return inst
        raise NvmlError("nvmlDeviceGetMigDeviceHandleByIndex", f"created GPU instance {gi_id} has no MIG device", index, "ERROR_NOT_FOUND")

    def destroy_mig_instance(self, index: int, uuid: str) -> None:
        nv, h = self.nv, self._handle(index)
        mig = self._call("nvmlDeviceGetHandleByUUID", index, nv.nvmlDeviceGetHandleByUUID, uuid)
        gi_id = self._call("nvmlDeviceGetGpuInstanceId", index, nv.nvmlDeviceGetGpuInstanceId, mig)
        ci_id = self._call("nvmlDeviceGetComputeInstanceId", index, nv.nvmlDeviceGetComputeInstanceId, mig)
        gi = self._call("nvmlDeviceGetGpuInstanceById", index, nv.nvmlDeviceGetGpuInstanceById, h, gi_id)
        ci = self._call("nvmlGpuInstanceGetComputeInstanceById", index, nv.nvmlGpuInstanceGetComputeInstanceById, gi, ci_id)
        self._call("nvmlComputeInstanceDestroy", index, nv.nvmlComputeInstanceDestroy, ci)
        self._call("nvmlGpuInstanceDestroy", index, nv.nvmlGpuInstanceDestroy, gi)

    # ---- events ---------------------------------------------------------------------------------
    def _event_set(self) -> Any:
        """Create the event set on first use, registered for XIDs (and "GPU unavailable" where the
        driver reports it) on every GPU that supports them."""
        with self._lock:
            if self._events is None:
                nv = self.nv
                wanted = nv.nvmlEventTypeXidCriticalError | getattr(nv, "nvmlEventTypeGpuUnavailableError", 0)
                es = self._call("nvmlEventSetCreate", None, nv.nvmlEventSetCreate)
                for index in range(self.device_count()):
                    try:
                        h = self._handle(index)
                        supported = self._call("nvmlDeviceGetSupportedEventTypes", index,
                                               nv.nvmlDeviceGetSupportedEventTypes, h)
                        if not supported & wanted:
                            raise NvmlError("nvmlDeviceGetSupportedEventTypes", "no XID events", index, "ERROR_NOT_SUPPORTED")
                        self._call("nvmlDeviceRegisterEvents", index, nv.nvmlDeviceRegisterEvents, h, supported & wanted, es)
                    except NvmlError as exc:
                        logger.warning("xid_events_unavailable", index=index, error=str(exc))
                self._events = es
            return self._events

    def _index_of(self, handle: Any) -> int:
        addr = ctypes.cast(handle, ctypes.c_void_p).value
        for index, h in self._handles.items():
            if ctypes.cast(h, ctypes.c_void_p).value == addr:
                return index
        return -1

    def _lost_gpus(self) -> list[HealthEvent]:
        out = []
        for index, h in list(self._handles.items()):
            try:
                self.nv.nvmlDeviceGetUUID(h)
            except self.nv.NVMLError:
                out.append(HealthEvent("gpu-lost", index, "", message=f"GPU {index} is lost"))
        return out

    def wait_event(self, timeout_s: float) -> HealthEvent | None:
        if self._closed:
            return None
        es = self._event_set()
        try:
            data = self.nv.nvmlEventSetWait_v2(es, int(max(0.0, timeout_s) * 1000))
        except self.nv.NVMLError as exc:
            code = self._codes.get(getattr(exc, "value", None), "ERROR_UNKNOWN")
            if code == "ERROR_TIMEOUT":
                return None
            if code == "ERROR_GPU_IS_LOST":
                lost = self._lost_gpus()
                return lost[0] if lost else HealthEvent("gpu-lost", -1, "", message="a GPU is lost")
            raise NvmlError("nvmlEventSetWait", str(exc), None, code) from None
        index = self._index_of(data.device)
        try:
            uuid = _text(self.nv.nvmlDeviceGetUUID(data.device))
        except self.nv.NVMLError:
            return HealthEvent("gpu-lost", index, "", message=f"GPU {index} is lost")
        if data.eventType & getattr(self.nv, "nvmlEventTypeGpuUnavailableError", 0):
            return HealthEvent("gpu-lost", index, uuid, message=f"GPU {index} is unavailable")
        mig_uuid = None
        if data.gpuInstanceId not in (_NO_INSTANCE, 0) and index >= 0:
            for inst in self.mig_instances(index):
                if inst.gi_id == data.gpuInstanceId:
                    mig_uuid = inst.uuid
        xid = int(data.eventData)
        return HealthEvent("xid", index, uuid, xid=xid, message=f"XID {xid} on GPU {index}", mig_uuid=mig_uuid)
