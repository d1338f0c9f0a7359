"""`gpu-dra status`: what is allocated where, and how well it is packed (pure; reads wire dicts).

Works against any cluster because it needs only what every DRA cluster has: ResourceSlices (what
exists), ResourceClaims (what is allocated, to whom) and Pods (who uses it). Devices are grouped
by *physical* GPU — a MIG instance or a time-sliced replica belongs to the GPU named by its
`parentUUID`; a whole or fractional device is its own GPU — because packing is about physical GPUs.

Allocated share of a GPU (0..1) is `driver.allocator.gpuuse`'s, the definition the packing
scorer uses too: the larger of memory slices and compute slices in use, as fractions of the GPU's
(`3g.40gb` → max(4/8, 3/7) = 50 %, 7 × `1g.10gb` → 100 %); a whole GPU is 1, a replica 1 /
`replicas`, a fractional device Σ consumedCapacity `compute` / device capacity `compute`. The
slices come from what the slices publish: `memorySlice<N>` capacities (static MIG), the counter
sets and `consumesCounters` (dynamic MIG), the `profile` attribute (compute slices).
Fragmented capacity: the free share left on GPUs that are partly used — capacity a whole-GPU
request can no longer use (the simplest workload-independent reading of FGD's fragment).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

from driver.allocator import gpuuse
from driver.dra.quantity import QuantityError, parse_quantity

_GPU_PREFIX = re.compile(r"^(gpu-\d+)")
SetKey = tuple[str, str, str]  # (driver, pool, counter set)


@dataclass
class DeviceUse:
    device: str
    type: str
    detail: str  # MIG profile, replica index, requested compute ...
    share: float  # of the GPU, this device alone
    claim: str  # namespace/name
    pods: list[str]


@dataclass
class GpuRow:
    node: str
    gpu: str
    mode: str
    share: float
    devices: int
    uses: list[DeviceUse] = field(default_factory=list)


@dataclass
class Summary:
    nodes: int
    nodes_touched: int
    gpus: int
    gpus_touched: int
    gpus_full: int
    allocated_gpus: float  # Σ share
    allocated_pct: float  # of all GPUs
    touched_pct: float  # allocated share of the touched GPUs
    fragmented_gpus: float
    claims_allocated: int
    pods_with_devices: int


@dataclass
class Report:
    gpus: list[GpuRow]
    summary: Summary

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def _attr(device: dict, name: str) -> Any:
    for key, value in (device.get("attributes") or {}).items():
        if key == name or key.endswith("/" + name):
            if isinstance(value, dict) and value:
                return next(iter(value.values()))
    return None


def _capacity(device: dict, name: str) -> Fraction | None:
    for key, value in (device.get("capacity") or {}).items():
        if key == name or key.endswith("/" + name):
            try:
                return parse_quantity((value or {}).get("value", "0"), f"capacity {key}")
            except QuantityError:
                return None
    return None


def _gpu_of(device: dict) -> str:
    match = _GPU_PREFIX.match(device.get("name", ""))
    if match:
        return match.group(1)
    return str(_attr(device, "parentUUID") or _attr(device, "uuid") or device.get("name"))


def _mode(types: set[str]) -> str:
    if "gpu" in types and len(types) > 1:
        return "dynamic"
    if types == {"mig"}:
        return "mig"
    if types == {"replica"}:
        return "timeslicing"
    if types == {"fractional"}:
        return "fractional"
    if types == {"gpu"}:
        return "whole"
    return "+".join(sorted(types)) or "unknown"


def _quantities(raw: Any) -> dict[str, float]:
    """{name: {"value": quantity}} (counters, consumed counters) as numbers; bad values left out."""
    out: dict[str, float] = {}
    for name, value in (raw or {}).items():
        try:
            out[name] = float(parse_quantity((value or {}).get("value", "0"), f"counter {name}"))
        except (QuantityError, AttributeError):
            continue
    return out


@dataclass
class _Gpu:
    """What the published data says about one physical GPU's devices (for `_part`)."""

    devices: list[dict] = field(default_factory=list)
    _geometry: gpuuse.Geometry | None = field(default=None, init=False, repr=False)

    def geometry(self) -> gpuuse.Geometry:
        """Static MIG: the GPU's slice counts from its instances (`gpuuse.static_geometry`)."""
        if self._geometry is None:
            self._geometry = gpuuse.static_geometry(
                (gpuuse.slice_indexes((d.get("capacity") or {}).keys()), gpuuse.compute_slices(_attr(d, "profile")))
                for d in self.devices)
        return self._geometry

    def siblings(self) -> int:
        return sum(1 for d in self.devices if _attr(d, "parentUUID") is not None)


def _counter_part(device: dict, where: tuple[str, str], sets: dict[SetKey, dict[str, float]],
                  geometries: dict[SetKey, gpuuse.Geometry]) -> gpuuse.Part | None:
    """Part of a device consuming a counter set (dynamic mode): memory from its memory-slice
    counters, compute from its profile (the first set it consumes is its GPU's)."""
    for entry in device.get("consumesCounters") or []:
        key = (where[0], where[1], str((entry or {}).get("counterSet")))
        capacity = sets.get(key)
        if not capacity:
            continue
        measured = gpuuse.measured_counters(capacity)
        used = _quantities(entry.get("counters"))
        memory = gpuuse.memory_share([used.get(n, 0.0) for n in measured], [capacity[n] for n in measured])
        return gpuuse.counter_part(memory, _attr(device, "profile"), geometries[key])
    return None


def _part(device: dict, dtype: str, result: dict, gpu: _Gpu,
          counter_part: gpuuse.Part | None) -> tuple[gpuuse.Part, str]:
    """The device's part of its GPU under this allocation result, and the detail to show."""
    detail = "whole"
    if dtype == "mig":
        detail = str(_attr(device, "profile") or "")
    elif dtype == "replica":
        index = _attr(device, "replicaIndex")
        detail = f"replica {index}" if index is not None else "replica"
    if counter_part is not None:
        return counter_part, detail
    if dtype == "fractional" or device.get("allowMultipleAllocations"):
        total = _capacity(device, "compute")
        used = None
        for key, value in (result.get("consumedCapacity") or {}).items():
            if key == "compute" or key.endswith("/compute"):
                try:
                    used = parse_quantity(value, f"consumedCapacity {key}")
                except QuantityError:
                    used = None
        if used is None or not total:
            return gpuuse.WHOLE, "whole"
        return gpuuse.even(float(used / total)), f"compute {float(used):g}"
    parent = _attr(device, "parentUUID") is not None
    part = gpuuse.device_part(dtype, _attr(device, "profile"), _attr(device, "replicas"),
                              gpuuse.slice_indexes((device.get("capacity") or {}).keys()), gpu.geometry(),
                              gpu.siblings(), parent)
    return part, detail


def build_report(slices: list[dict], claims: list[dict], pods: list[dict], driver: str | None = None) -> Report:
    """Per-GPU allocation and packing figures from slice, claim and pod dicts."""
    # Newest generation of each pool only: older slices are being replaced.
    newest: dict[tuple[str, str], int] = {}
    for s in slices:
        spec = s.get("spec") or {}
        pool = spec.get("pool") or {}
        k = (spec.get("driver", ""), pool.get("name", ""))
        newest[k] = max(newest.get(k, 0), int(pool.get("generation") or 0))
    devices: dict[tuple[str, str, str], tuple[str, dict]] = {}  # (driver, pool, device) -> (node, dev)
    gpus: dict[tuple[str, str], GpuRow] = {}
    types: dict[tuple[str, str], set[str]] = defaultdict(set)
    published: dict[tuple[str, str], _Gpu] = defaultdict(_Gpu)
    sets: dict[SetKey, dict[str, float]] = {}
    profiles: dict[SetKey, list[Any]] = defaultdict(list)  # of the devices consuming each set
    for s in slices:
        spec = s.get("spec") or {}
        drv = spec.get("driver", "")
        pool = spec.get("pool") or {}
        if driver and drv != driver:
            continue
        if int(pool.get("generation") or 0) != newest[(drv, pool.get("name", ""))]:
            continue
        node = spec.get("nodeName") or pool.get("name", "")
        for cs in spec.get("sharedCounters") or []:  # inline (1.34) or a slice of their own (1.35)
            if isinstance(cs, dict) and cs.get("name"):
                sets[(drv, pool.get("name", ""), str(cs["name"]))] = _quantities(cs.get("counters"))
        for dev in spec.get("devices") or []:
            devices[(drv, pool.get("name", ""), dev.get("name", ""))] = (node, dev)
            for entry in dev.get("consumesCounters") or []:
                cset = str((entry or {}).get("counterSet"))
                profiles[(drv, pool.get("name", ""), cset)].append(_attr(dev, "profile"))
            gk = (node, _gpu_of(dev))
            published[gk].devices.append(dev)
            row = gpus.get(gk)
            if row is None:
                row = gpus[gk] = GpuRow(node=node, gpu=gk[1], mode="", share=0.0, devices=0)
            row.devices += 1
            types[gk].add(str(_attr(dev, "type") or "gpu"))
    for gk, row in gpus.items():
        row.mode = _mode(types[gk])
    geometries = {key: gpuuse.counter_geometry(capacity, profiles[key]) for key, capacity in sets.items()}

    parts: dict[tuple[str, str], gpuuse.Part] = defaultdict(lambda: gpuuse.NONE)
    live_pods = {(p.get("metadata") or {}).get("uid"): p for p in pods}
    claims_allocated = 0
    pods_using: set[str] = set()
    for claim in claims:
        meta = claim.get("metadata") or {}
        status = claim.get("status") or {}
        alloc = status.get("allocation")
        if not alloc:
            continue
        claims_allocated += 1
        ns = meta.get("namespace", "")
        claim_key = f"{ns}/{meta.get('name')}"
        users = []
        for ref in status.get("reservedFor") or []:
            pod = live_pods.get(ref.get("uid"))
            name = ref.get("name", "")
            users.append(f"{ns}/{name}" if pod is not None or not live_pods else f"{ns}/{name} (gone)")
        pods_using.update(users)
        for result in (alloc.get("devices") or {}).get("results") or []:
            found = devices.get((result.get("driver", ""), result.get("pool", ""), result.get("device", "")))
            if found is None:
                continue
            node, dev = found
            dtype = str(_attr(dev, "type") or "gpu")
            gk = (node, _gpu_of(dev))
            where = (result.get("driver", ""), result.get("pool", ""))
            part, detail = _part(dev, dtype, result, published[gk], _counter_part(dev, where, sets, geometries))
            if result.get("adminAccess"):
                part, detail = gpuuse.NONE, detail + " (admin)"
            parts[gk] = parts[gk] + part
            row = gpus[gk]
            row.share = gpuuse.use(parts[gk])
            row.uses.append(DeviceUse(dev.get("name", ""), dtype, detail, gpuuse.use(part), claim_key, users))

    rows = sorted(gpus.values(), key=lambda r: (r.node, _natural(r.gpu)))
    nodes = {r.node for r in rows}
    touched = [r for r in rows if r.share > 1e-9]
    allocated = sum(r.share for r in rows)
    summary = Summary(
        nodes=len(nodes),
        nodes_touched=len({r.node for r in touched}),
        gpus=len(rows),
        gpus_touched=len(touched),
        gpus_full=sum(1 for r in rows if r.share >= 1 - 1e-9),
        allocated_gpus=round(allocated, 4),
        allocated_pct=round(100 * allocated / len(rows), 2) if rows else 0.0,
        touched_pct=round(100 * allocated / len(touched), 2) if touched else 0.0,
        fragmented_gpus=round(sum(1 - r.share for r in touched), 4),
        claims_allocated=claims_allocated,
        pods_with_devices=len(pods_using),
    )
    return Report(gpus=rows, summary=summary)


def _natural(text: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


def format_table(report: Report, show_free: bool = True) -> str:
    """Human table: one line per device use (or per idle GPU), then the packing summary."""
    lines = [f"{'NODE':<22} {'GPU':<8} {'MODE':<12} {'USED':>5}  {'DEVICE':<28} {'DETAIL':<14} {'CLAIM':<34} PODS"]
    for row in report.gpus:
        used = f"{row.share * 100:.0f}%"
        if not row.uses:
            if show_free:
                lines.append(f"{row.node:<22} {row.gpu:<8} {row.mode:<12} {used:>5}  {'-':<28}")
            continue
        for i, use in enumerate(row.uses):
            head = f"{row.node:<22} {row.gpu:<8} {row.mode:<12} {used:>5}" if i == 0 else " " * 51
            lines.append(f"{head}  {use.device:<28} {use.detail:<14} {use.claim:<34} {','.join(use.pods) or '-'}")
    s = report.summary
    lines.append("")
    lines.append(
        f"GPUs: {s.gpus} on {s.nodes} nodes; touched {s.gpus_touched} on {s.nodes_touched} nodes; full {s.gpus_full}"
    )
    lines.append(
        f"Allocated: {s.allocated_gpus:g} GPUs = {s.allocated_pct:g}% of capacity, "
        f"{s.touched_pct:g}% of touched GPUs; fragmented: {s.fragmented_gpus:g} GPUs free on partly used GPUs"
    )
    lines.append(f"Claims allocated: {s.claims_allocated}; pods holding devices: {s.pods_with_devices}")
    return "\n".join(lines)
