"""Discovery: NVML answers + node config -> the node's device model (`NodeInventory`).

Per GPU, by its sharing mode (nodeconfig.py):

- whole: `gpu-<minor>`, type gpu, capacity memory.
- mig: one device per existing MIG instance (type mig, with its UUID). A GPU whose MIG mode is
  off falls back to whole; a GPU with MIG on publishes its MIG devices in any static mode, since
  it cannot be used whole until MIG is disabled.
- timeslicing: `gpu-<minor>-ts-<k>` for k < replicas, type replica.
- dynamic: `gpu-<minor>` + one device per (MIG profile, placement) + optional replicas, all
  consuming counter set `gpu-<minor>-counter-set`. Memory-slice counters have capacity R =
  max(replicas, 1): a replica consumes 1 of every slice, a MIG device R of each slice it covers,
  the whole GPU R of every slice and all of every other counter. So two MIG devices on the same
  slice, a MIG device next to any replica, or the whole GPU next to anything, overflow a counter;
  up to R replicas fit together. Counters with capacity 0 are listed; zero consumption is left out.
- fractional: `gpu-<minor>`, type fractional, allowMultipleAllocations, consumable capacities:

    compute  value 1     requestPolicy {default: 1, validRange {min: 10m, max: 1, step: 10m}}
    memory   value bytes requestPolicy {default: 1Gi, validRange {min: 256Mi, step: 256Mi}}

  A claim with no capacity request takes compute 1 (the default) and so the whole GPU: nobody
  else can get even the 10m minimum. A claim naming only `compute: 250m` takes 1Gi of memory (the
  default), not all of it. Memory has no `max` because max must be a multiple of step and not all
  GPU memory sizes are multiples of 256Mi; the capacity itself is the upper bound. Both policies
  pass the API schema (kubernetes-validate 1.34 and 1.35) and the package validator.
"""

from __future__ import annotations

from typing import Any

from driver import log
from driver.devices.model import (
    CounterSet,
    Device,
    NodeInventory,
    counter_set_name,
    gpu_name,
    int_attr,
    mig_name,
    replica_name,
    semver,
    string_attr,
    version_attr,
)
from driver.devices.nodeconfig import NodeConfig
from driver.dra.quantity import format_quantity
from driver.nvml.interface import GpuInfo, MigInstance, MigProfile, NvmlBackend, Versions, snapshot

logger = log.get(__name__)

STD = "resource.kubernetes.io"
COMPUTE_POLICY = {"default": "1", "validRange": {"min": "10m", "max": "1", "step": "10m"}}
MEMORY_POLICY = {"default": "1Gi", "validRange": {"min": "256Mi", "step": "256Mi"}}
# (dynamic-MIG counter name, static-MIG capacity name, Engines field): NVIDIA's names for both
ENGINE_COUNTERS = (
    ("copy-engines", "copyEngines", "copy_engines"),
    ("decoders", "decoders", "decoders"),
    ("encoders", "encoders", "encoders"),
    ("jpeg-engines", "jpegEngines", "jpeg_engines"),
    ("ofa-engines", "ofaEngines", "ofa_engines"),
)


def _q(n: int) -> str:
    return format_quantity(n)


def common_attributes(gpu: GpuInfo, versions: Versions) -> dict[str, dict[str, Any]]:
    """Attributes every device of a GPU carries (NVIDIA's names, FACTS §8)."""
    attrs = {
        "productName": string_attr(gpu.name),
        "brand": string_attr(gpu.brand),
        "architecture": string_attr(gpu.architecture),
        "cudaComputeCapability": version_attr(semver(".".join(map(str, gpu.cuda_compute_capability)))),
        "driverVersion": version_attr(semver(versions.driver)),
        "cudaDriverVersion": version_attr(semver(versions.cuda_driver)),
        f"{STD}/pciBusID": string_attr(gpu.pci_bus_id),
    }
    if gpu.pcie_root:
        attrs[f"{STD}/pcieRoot"] = string_attr(gpu.pcie_root)
    return attrs


def _gpu_device(gpu: GpuInfo, versions: Versions, kind: str = "gpu") -> Device:
    attrs = {"type": string_attr(kind), "uuid": string_attr(gpu.uuid), "index": int_attr(gpu.index), "minor": int_attr(gpu.minor)}
    attrs.update(common_attributes(gpu, versions))
    return Device(
        name=gpu_name(gpu.minor), kind=kind, index=gpu.index, minor=gpu.minor, gpu_uuid=gpu.uuid, uuid=gpu.uuid,
        attributes=attrs, capacity={"memory": {"value": _q(gpu.memory_bytes)}},
    )


def _mig_device(gpu: GpuInfo, versions: Versions, profile: MigProfile, start: int, uuid: str | None,
                dynamic: bool) -> Device:
    attrs = {"type": string_attr("mig")}
    if uuid:
        attrs["uuid"] = string_attr(uuid)
    attrs.update({"parentUUID": string_attr(gpu.uuid), "profile": string_attr(profile.name), "parentIndex": int_attr(gpu.index),
                  "parentMinor": int_attr(gpu.minor)})
    attrs.update(common_attributes(gpu, versions))
    capacity = {"multiprocessors": {"value": _q(profile.multiprocessors)}}
    for _, capacity_name, attr in ENGINE_COUNTERS:
        capacity[capacity_name] = {"value": _q(getattr(profile.engines, attr))}
    capacity["memory"] = {"value": _q(profile.memory_bytes)}
    for sl in profile.slices_at(start):
        capacity[f"memorySlice{sl}"] = {"value": "1"}
    return Device(
        name=mig_name(gpu.minor, profile.name, profile.gi_profile_id, start), kind="mig", index=gpu.index,
        minor=gpu.minor, gpu_uuid=gpu.uuid, uuid=uuid, parent_uuid=gpu.uuid, mig_profile=profile.name,
        gi_profile_id=profile.gi_profile_id, placement_start=start, placement_size=profile.memory_slices,
        dynamic=dynamic, attributes=attrs, capacity=capacity,
    )


def _replica_device(gpu: GpuInfo, versions: Versions, k: int, replicas: int, dynamic: bool) -> Device:
    attrs = {"type": string_attr("replica"), "parentUUID": string_attr(gpu.uuid), "replicaIndex": int_attr(k), "replicas": int_attr(replicas),
             "parentIndex": int_attr(gpu.index), "parentMinor": int_attr(gpu.minor)}
    attrs.update(common_attributes(gpu, versions))
    return Device(
        name=replica_name(gpu.minor, k), kind="replica", index=gpu.index, minor=gpu.minor, gpu_uuid=gpu.uuid,
        uuid=None, parent_uuid=gpu.uuid, replica_index=k, replicas=replicas, dynamic=dynamic,
        attributes=attrs, capacity={"memory": {"value": _q(gpu.memory_bytes)}},
    )


def _fractional_device(gpu: GpuInfo, versions: Versions) -> Device:
    d = _gpu_device(gpu, versions, kind="fractional")
    d.allow_multiple_allocations = True
    d.capacity = {
        "compute": {"value": "1", "requestPolicy": _copy_policy(COMPUTE_POLICY)},
        "memory": {"value": _q(gpu.memory_bytes), "requestPolicy": _copy_policy(MEMORY_POLICY)},
    }
    return d


def _copy_policy(p: dict[str, Any]) -> dict[str, Any]:
    return {k: (dict(val) if isinstance(val, dict) else val) for k, val in p.items()}


def slice_count(gpu: GpuInfo) -> int:
    """Memory slices used for counters: the MIG geometry's, or 1 for a GPU without MIG."""
    return gpu.memory_slices if gpu.mig_capable and gpu.memory_slices else 1


def _dynamic(gpu: GpuInfo, versions: Versions, profiles: list[MigProfile], instances: list[MigInstance],
             replicas: int) -> tuple[list[Device], CounterSet]:
    r = max(replicas, 1)
    slices = slice_count(gpu)
    cs_name = counter_set_name(gpu.minor)
    capacity = {"multiprocessors": gpu.multiprocessors}
    for counter, _, attr in ENGINE_COUNTERS:
        capacity[counter] = getattr(gpu.engines, attr)
    capacity["memory"] = gpu.memory_bytes
    for sl in range(slices):
        capacity[f"memory-slice-{sl}"] = r
    counter_set = CounterSet(cs_name, {k: _q(n) for k, n in capacity.items()})

    def consumes(amounts: dict[str, int]) -> list[dict[str, Any]]:
        return [{"counterSet": cs_name,
                 "counters": {k: {"value": _q(n)} for k, n in amounts.items() if n > 0}}]

    whole = _gpu_device(gpu, versions)
    whole.dynamic = True
    whole.consumes_counters = consumes(capacity)
    devices = [whole]
    existing = {(m.profile, m.placement_start): m.uuid for m in instances}
    if gpu.mig_capable:
        for profile in profiles:
            for start in profile.placements:
                d = _mig_device(gpu, versions, profile, start, existing.get((profile.name, start)), dynamic=True)
                amounts = {"multiprocessors": profile.multiprocessors}
                for counter, _, attr in ENGINE_COUNTERS:
                    amounts[counter] = getattr(profile.engines, attr)
                amounts["memory"] = profile.memory_bytes
                for sl in profile.slices_at(start):
                    amounts[f"memory-slice-{sl}"] = r
                d.consumes_counters = consumes(amounts)
                devices.append(d)
    for k in range(replicas):
        d = _replica_device(gpu, versions, k, replicas, dynamic=True)
        d.consumes_counters = consumes({f"memory-slice-{sl}": 1 for sl in range(slices)})
        devices.append(d)
    return devices, counter_set


def discover(backend: NvmlBackend, config: NodeConfig | None, node_name: str) -> NodeInventory:
    """Read the node's GPUs through `backend` and build the devices `config` asks for
    (None: every GPU whole, driver gpu.nvidia.com). Initialises the backend (idempotent).

    A GPU whose NVML calls fail is left out (and listed in `errors`), so one lost GPU does not
    take the node's other devices off the market.
    """
    config = config or NodeConfig()
    snap = snapshot(backend)
    devices: list[Device] = []
    counter_sets: list[CounterSet] = []
    for gpu in snap.gpus:
        sharing = config.for_gpu(gpu.index)
        instances = snap.instances.get(gpu.index, [])
        profiles = snap.profiles.get(gpu.index, [])
        mode = sharing.mode
        if mode == "dynamic":
            devs, cs = _dynamic(gpu, snap.versions, profiles, instances, sharing.replicas)
            devices.extend(devs)
            counter_sets.append(cs)
            continue
        if gpu.mig_enabled:
            if mode != "mig":
                logger.warning("mig_enabled_gpu_published_as_mig", index=gpu.index, mode=mode)
            by_name = {p.name: p for p in profiles}
            for inst in instances:
                profile = by_name.get(inst.profile)
                if profile is None:
                    logger.warning("mig_instance_unknown_profile", index=gpu.index, profile=inst.profile)
                    continue
                devices.append(_mig_device(gpu, snap.versions, profile, inst.placement_start, inst.uuid, False))
            continue
        if mode == "mig":
            logger.debug("mig_mode_off_published_whole", index=gpu.index)
        if mode == "timeslicing":
            devices.extend(_replica_device(gpu, snap.versions, k, sharing.replicas, False)
                           for k in range(sharing.replicas))
        elif mode == "fractional":
            devices.append(_fractional_device(gpu, snap.versions))
        else:
            devices.append(_gpu_device(gpu, snap.versions))
    for index, error in snap.errors.items():
        logger.warning("gpu_left_out", index=index, error=error)
    present = {g.index for g in snap.gpus} | set(snap.errors)
    unknown = sorted(set(config.gpus) - present)
    if unknown:
        logger.warning("node_config_names_missing_gpus", gpus=unknown, present=sorted(present))
    logger.debug("discovered", node=node_name, devices=len(devices), counter_sets=len(counter_sets))
    return NodeInventory(node_name=node_name, driver_name=config.driver_name, versions=snap.versions,
                         gpus=snap.gpus, devices=devices, counter_sets=counter_sets, errors=dict(snap.errors))
