"""The pynvml binding, exercised against a stand-in pynvml module (there is no GPU here).

The stand-in implements only the functions `real.py` calls, with pynvml's own constants, error
class and ctypes structures, and answers from the A100-80GB model data, so the tests check what
the binding does with NVML's answers: bus-ID and version formats, the MIG profile table from
profile infos and caller-allocated placement arrays, MIG instances, create with rollback, and
events — and that every failure names the call and the GPU.
"""

from __future__ import annotations

import ctypes
import os
from types import SimpleNamespace

import pynvml
import pytest

from driver.nvml.gpumodels import load_model
from driver.nvml.interface import NvmlError
from driver.nvml.real import RealNvml, kernel_bus_id, pcie_root

MODEL = load_model("A100-SXM4-80GB")


def err(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


class FakeNvml:
    """GPU 0: A100-80GB with MIG on; GPU 1: an A100 without MIG support reported (NOT_SUPPORTED)."""

    def __init__(self) -> None:
        for name in dir(pynvml):
            if name.startswith(("NVML_", "nvmlEventType")) or name in ("NVMLError", "c_nvmlGpuInstancePlacement_t"):
                setattr(self, name, getattr(pynvml, name))
        self.gpus = [ctypes.c_void_p(0x1000), ctypes.c_void_p(0x1001)]
        self.instances: list[dict] = []
        self.next_gi = 1
        self.fail_ci = False
        self.events: list = []
        self.lost: set[int] = set()
        self.destroyed: list[int] = []
        self.registered = 0

    # system
    def nvmlInit(self): pass
    def nvmlShutdown(self): pass
    def nvmlSystemGetDriverVersion(self): return "550.54.15"
    def nvmlSystemGetCudaDriverVersion(self): return 12040
    def nvmlDeviceGetCount(self): return 2

    def _gpu(self, h) -> int:
        for i, g in enumerate(self.gpus):
            if g.value == h.value:
                if i in self.lost:
                    raise err(pynvml.NVML_ERROR_GPU_IS_LOST)
                return i
        raise err(pynvml.NVML_ERROR_INVALID_ARGUMENT)

    def nvmlDeviceGetHandleByIndex(self, i):
        if i >= 2:
            raise err(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self.gpus[i]

    def nvmlDeviceGetMigMode(self, h):
        if self._gpu(h) == 1:
            raise err(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return [1, 1]

    def nvmlDeviceGetPciInfo(self, h):
        return SimpleNamespace(busId=f"00000000:{0x07 + 8 * self._gpu(h):02X}:00.0".encode())

    def nvmlDeviceGetAttributes(self, h):
        for inst in self.instances:
            if inst["handle"].value == h.value:
                p = inst["profile"]
                e = p.engines
                return SimpleNamespace(multiprocessorCount=p.multiprocessors, sharedCopyEngineCount=e.copy_engines,
                                       sharedDecoderCount=e.decoders, sharedEncoderCount=e.encoders,
                                       sharedJpegCount=e.jpeg_engines, sharedOfaCount=e.ofa_engines,
                                       memorySizeMB=p.memory_mib)
        raise err(pynvml.NVML_ERROR_NOT_SUPPORTED)

    def nvmlDeviceGetCudaComputeCapability(self, h): self._gpu(h); return (8, 0)
    def nvmlDeviceGetMinorNumber(self, h): return self._gpu(h)
    def nvmlDeviceGetUUID(self, h):
        for inst in self.instances:
            if inst["handle"].value == h.value:
                return inst["uuid"]
        return f"GPU-0000000{self._gpu(h)}-1111-2222-3333-444444444444"
    def nvmlDeviceGetName(self, h): self._gpu(h); return b"NVIDIA A100-SXM4-80GB"
    def nvmlDeviceGetBrand(self, h): return pynvml.NVML_BRAND_NVIDIA
    def nvmlDeviceGetArchitecture(self, h): return pynvml.NVML_DEVICE_ARCH_AMPERE
    def nvmlDeviceGetMemoryInfo(self, h): self._gpu(h); return SimpleNamespace(total=MODEL.memory_mib * 2**20)

    # MIG profiles
    def nvmlDeviceGetGpuInstanceProfileInfo(self, h, profile, version):
        assert version == 2
        self._gpu(h)
        for p in MODEL.mig_profiles:
            if p.nvml_profile == profile:
                e = p.engines
                return SimpleNamespace(id=p.gi_profile_id, sliceCount=p.compute_slices, instanceCount=p.max_count,
                                       multiprocessorCount=p.multiprocessors, copyEngineCount=e.copy_engines,
                                       decoderCount=e.decoders, encoderCount=e.encoders, jpegCount=e.jpeg_engines,
                                       ofaCount=e.ofa_engines, memorySizeMB=p.memory_mib, name=f"MIG {p.name}".encode())
        raise err(pynvml.NVML_ERROR_NOT_SUPPORTED)

    def _profile(self, gi_profile_id):
        return next(p for p in MODEL.mig_profiles if p.gi_profile_id == gi_profile_id)

    def nvmlDeviceGetGpuInstancePossiblePlacements(self, h, profile_id, array, count_ref):
        p = self._profile(profile_id)
        count = count_ref._obj
        assert count.value >= len(p.placements)  # the caller allocated enough room
        for k, start in enumerate(p.placements):
            array[k].start, array[k].size = start, p.memory_slices
        count.value = len(p.placements)

    # MIG instances
    def nvmlDeviceGetMaxMigDeviceCount(self, h): self._gpu(h); return 7
    def nvmlDeviceGetMigDeviceHandleByIndex(self, h, k):
        live = [i for i in self.instances if i["ci"]]
        if k >= len(live):
            raise err(pynvml.NVML_ERROR_NOT_FOUND)
        return live[k]["handle"]
    def _inst(self, h):
        return next(i for i in self.instances if i["handle"].value == h.value)
    def nvmlDeviceGetGpuInstanceId(self, mig): return self._inst(mig)["gi"]
    def nvmlDeviceGetComputeInstanceId(self, mig): return 0
    def nvmlDeviceGetGpuInstanceById(self, h, gi_id):
        return next(SimpleNamespace(gi=i["gi"]) for i in self.instances if i["gi"] == gi_id)
    def nvmlGpuInstanceGetInfo(self, gi):
        i = next(i for i in self.instances if i["gi"] == gi.gi)
        return SimpleNamespace(id=i["gi"], profileId=i["profile"].gi_profile_id,
                               placement=SimpleNamespace(start=i["start"], size=i["profile"].memory_slices))
    def nvmlDeviceGetHandleByUUID(self, uuid):
        return next(i["handle"] for i in self.instances if i["uuid"] == uuid)

    def nvmlDeviceCreateGpuInstanceWithPlacement(self, h, profile_id, placement_ref):
        placement = placement_ref._obj
        p = self._profile(profile_id)
        assert placement.size == p.memory_slices
        want = set(range(placement.start, placement.start + placement.size))
        for i in self.instances:
            if want & set(range(i["start"], i["start"] + i["profile"].memory_slices)):
                raise err(pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES)
        gi = self.next_gi
        self.next_gi += 1
        self.instances.append({"gi": gi, "ci": False, "profile": p, "start": placement.start,
                               "handle": ctypes.c_void_p(0x2000 + gi), "uuid": f"MIG-{gi:08x}-aaaa-bbbb-cccc-dddddddddddd"})
        return SimpleNamespace(gi=gi)

    def nvmlGpuInstanceGetComputeInstanceProfileInfo(self, gi, ci_profile, eng, version):
        inst = next(i for i in self.instances if i["gi"] == gi.gi)
        assert ci_profile == {1: 0, 2: 1, 3: 2, 4: 3, 7: 4}[inst["profile"].compute_slices]
        assert eng == pynvml.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED
        return SimpleNamespace(id=ci_profile)
    def nvmlGpuInstanceCreateComputeInstance(self, gi, ci_id):
        if self.fail_ci:
            raise err(pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES)
        next(i for i in self.instances if i["gi"] == gi.gi)["ci"] = True
    def nvmlGpuInstanceGetComputeInstanceById(self, gi, ci_id): return SimpleNamespace(gi=gi.gi)
    def nvmlComputeInstanceDestroy(self, ci):
        next(i for i in self.instances if i["gi"] == ci.gi)["ci"] = False
    def nvmlGpuInstanceDestroy(self, gi):
        self.destroyed.append(gi.gi)
        self.instances = [i for i in self.instances if i["gi"] != gi.gi]

    # events
    def nvmlEventSetCreate(self): return object()
    def nvmlDeviceGetSupportedEventTypes(self, h):
        # GPU 0 reports XIDs and "GPU unavailable"; GPU 1 neither
        return 0 if self._gpu(h) == 1 else (pynvml.nvmlEventTypeXidCriticalError | pynvml.nvmlEventTypeGpuUnavailableError
                                             | pynvml.nvmlEventTypePState)

    def nvmlDeviceRegisterEvents(self, h, types, es):
        assert self._gpu(h) == 0 and types == pynvml.nvmlEventTypeXidCriticalError | pynvml.nvmlEventTypeGpuUnavailableError
        self.registered = types
    def nvmlEventSetFree(self, es): pass
    def nvmlEventSetWait_v2(self, es, ms):
        if not self.events:
            raise err(pynvml.NVML_ERROR_TIMEOUT)
        item = self.events.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


@pytest.fixture
def nv():
    fake = FakeNvml()
    real = RealNvml(fake)
    real.init()
    return fake, real


def test_gpu_info_and_versions(nv):
    fake, real = nv
    assert real.versions().driver == "550.54.15" and real.versions().cuda_driver == "12.4"
    g = real.gpu(0)
    assert (g.pci_bus_id, g.brand, g.architecture, g.minor, g.cuda_compute_capability) == (
        "0000:07:00.0", "Nvidia", "Ampere", 0, (8, 0))
    assert g.mig_capable and g.mig_enabled and (g.memory_slices, g.compute_slices) == (8, 7)
    assert g.multiprocessors == 98 and g.engines.decoders == 5  # from the full-GPU profile
    g1 = real.gpu(1)
    assert not g1.mig_capable and g1.pci_bus_id == "0000:0f:00.0" and g1.multiprocessors == 0


def test_mig_profile_table_matches_the_model_data(nv):
    _, real = nv
    got = {p.name: p for p in real.mig_profiles(0)}
    for p in MODEL.mig_profiles:
        assert got[p.name] == p


def test_create_list_destroy_and_rollback(nv):
    fake, real = nv
    inst = real.create_mig_instance(0, "3g.40gb", 4)
    assert (inst.profile, inst.placement_start, inst.placement_size, inst.memory_bytes) == ("3g.40gb", 4, 4, 40192 * 2**20)
    assert [m.uuid for m in real.mig_instances(0)] == [inst.uuid]
    with pytest.raises(NvmlError) as exc:
        real.create_mig_instance(0, "2g.20gb", 4)
    assert exc.value.code == "ERROR_INSUFFICIENT_RESOURCES" and "nvmlDeviceCreateGpuInstanceWithPlacement on GPU 0" in str(exc.value)
    fake.fail_ci = True
    with pytest.raises(NvmlError, match="nvmlGpuInstanceCreateComputeInstance on GPU 0"):
        real.create_mig_instance(0, "2g.20gb", 0)
    assert fake.destroyed == [2] and len(fake.instances) == 1  # the half-made GPU instance was rolled back
    with pytest.raises(NvmlError, match="unknown MIG profile '5g.50gb'"):
        real.create_mig_instance(0, "5g.50gb", 0)
    real.destroy_mig_instance(0, inst.uuid)
    assert real.mig_instances(0) == []


def test_errors_name_call_and_gpu(nv):
    fake, real = nv
    fake.lost.add(1)
    with pytest.raises(NvmlError) as exc:
        real.gpu(1)
    assert exc.value.gpu_lost and str(exc.value).startswith("nvmlDeviceGetMigMode on GPU 1: GPU is lost")


def test_events(nv):
    fake, real = nv
    assert real.wait_event(0.01) is None  # timeout
    data = SimpleNamespace(device=fake.gpus[0], eventType=pynvml.nvmlEventTypeXidCriticalError, eventData=79,
                           gpuInstanceId=0xFFFFFFFF, computeInstanceId=0xFFFFFFFF)
    fake.events.append(data)
    event = real.wait_event(1.0)
    assert (event.kind, event.index, event.xid, event.mig_uuid) == ("xid", 0, 79, None)
    assert fake.registered == pynvml.nvmlEventTypeXidCriticalError | pynvml.nvmlEventTypeGpuUnavailableError
    inst = real.create_mig_instance(0, "1g.10gb", 0)
    fake.events.append(SimpleNamespace(device=fake.gpus[0], eventType=8, eventData=43, gpuInstanceId=inst.gi_id,
                                       computeInstanceId=0))
    assert real.wait_event(1.0).mig_uuid == inst.uuid
    fake.events.append(SimpleNamespace(device=fake.gpus[0], eventType=pynvml.nvmlEventTypeGpuUnavailableError,
                                       eventData=0, gpuInstanceId=0xFFFFFFFF, computeInstanceId=0))
    assert real.wait_event(1.0).kind == "gpu-lost"
    fake.lost.add(0)
    fake.events.append(err(pynvml.NVML_ERROR_GPU_IS_LOST))
    lost = real.wait_event(1.0)
    assert (lost.kind, lost.index) == ("gpu-lost", 0)
    real.shutdown()
    assert real.wait_event(1.0) is None


def test_helpers(tmp_path):
    assert kernel_bus_id("00000000:B7:00.0") == "0000:b7:00.0"
    target = tmp_path / "devices" / "pci0000:a0" / "0000:a0:01.0" / "0000:b7:00.0"
    target.mkdir(parents=True)
    links = tmp_path / "bus"
    links.mkdir()
    os.symlink(target, links / "0000:b7:00.0")
    assert pcie_root("0000:b7:00.0", str(links)) == "pci0000:a0"
    assert pcie_root("0000:01:00.0", str(links)) is None


def test_real_nvml_works_or_fails_clearly():
    """Without a driver (CI), init names the call; on a GPU node the real binding answers."""
    real = RealNvml()
    try:
        real.init()
    except NvmlError as exc:
        assert str(exc).startswith("nvmlInit on system:") and exc.code.startswith("ERROR_")
        return
    try:
        count = real.device_count()
        assert count >= 1 and real.gpu(0).uuid.startswith("GPU-")
    finally:
        real.shutdown()
