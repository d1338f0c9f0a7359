"""Device model -> resource.k8s.io/v1 ResourceSlice dicts, split at the API limits.

Two counter layouts exist and the API server of each version rejects the other's:

- "1.35" (and later): counter sets live in slices of their own, without devices (at most 8 sets
  per slice); device slices hold at most 64 devices when any has counters or taints, else 128.
- "1.34": counter sets sit inline (`sharedCounters`) in the slice whose devices consume them, at
  most 32 counters over all sets of a slice and 1024 counter-consumption entries over its devices,
  at most 128 devices. A GPU's counter set and its devices therefore travel together and whole
  GPUs are packed into slices.

Every slice of the pool (= node name) carries the same generation and `resourceSliceCount`, names
are deterministic (`<node>-<driver with dots as dashes>-<n>`, a DNS subdomain <= 253 characters) so
the publisher can update in place, and the Node owns them when its UID is known (garbage
collection when the node goes away).
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import replace
from typing import Any

from driver.devices.model import Device, NodeInventory

LAYOUTS = ("1.34", "1.35")
MAX_DEVICES = 128
MAX_DEVICES_WITH_COUNTERS_OR_TAINTS = 64
MAX_COUNTER_SETS_135 = 8
MAX_COUNTERS_134 = 32
MAX_CONSUMPTIONS_134 = 1024
# XIDs NVIDIA classifies as application errors: the GPU is fine, the program was not.
APPLICATION_XIDS = frozenset({13, 31, 43, 45, 68, 109})


def slice_name(node_name: str, driver_name: str, n: int) -> str:
    """`<node>-<driver-with-dashes>-<n>`, shortened with a hash when it would pass 253 characters."""
    base = f"{node_name}-{driver_name.replace('.', '-')}"
    suffix = f"-{n}"
    if len(base) + len(suffix) > 253:
        digest = hashlib.sha256(base.encode()).hexdigest()[:10]
        base = f"{base[: 253 - len(suffix) - 11].rstrip('-.')}-{digest}"
    return base + suffix


def _limited(d: Device) -> bool:
    return bool(d.consumes_counters or d.taints)


def _consumptions(d: Device) -> int:
    return sum(len(c.get("counters", {})) for c in d.consumes_counters)


def _chunks_135(devices: list[Device]) -> list[list[Device]]:
    chunks: list[list[Device]] = []
    current: list[Device] = []
    limited = False
    for d in devices:
        will_limit = limited or _limited(d)
        cap = MAX_DEVICES_WITH_COUNTERS_OR_TAINTS if will_limit else MAX_DEVICES
        if current and len(current) + 1 > cap:
            chunks.append(current)
            current, limited = [], False
            will_limit = _limited(d)
        current.append(d)
        limited = will_limit
    if current:
        chunks.append(current)
    return chunks


def _units_134(inventory: NodeInventory) -> list[tuple[list[Any], list[Device]]]:
    """Devices grouped with the counter set they consume (each group must share a slice)."""
    by_set: dict[str, list[Device]] = {cs.name: [] for cs in inventory.counter_sets}
    units: list[tuple[list[Any], list[Device]]] = []
    set_unit: dict[str, int] = {}
    for cs in inventory.counter_sets:
        set_unit[cs.name] = len(units)
        units.append(([cs], by_set[cs.name]))
    for d in inventory.devices:
        sets = [c["counterSet"] for c in d.consumes_counters]
        if not sets:
            units.append(([], [d]))
            continue
        unknown = [n for n in sets if n not in by_set]
        if unknown:
            raise ValueError(f"device {d.name} consumes unknown counter set(s) {', '.join(unknown)}")
        # a device consuming two sets pulls both sets' groups together
        first = set_unit[sets[0]]
        for other in sets[1:]:
            o = set_unit[other]
            if o != first:
                units[first][0].extend(units[o][0])
                units[first][1].extend(units[o][1])
                for n, u in set_unit.items():
                    if u == o:
                        set_unit[n] = first
                units[o] = ([], [])
        units[first][1].append(d)
    ordered = [u for u in units if u[0] or u[1]]
    return ordered


def _chunks_134(inventory: NodeInventory) -> list[tuple[list[Any], list[Device]]]:
    chunks: list[tuple[list[Any], list[Device]]] = []
    sets: list[Any] = []
    devs: list[Device] = []
    counters = consumptions = 0
    for unit_sets, unit_devs in _units_134(inventory):
        u_counters = sum(len(cs.counters) for cs in unit_sets)
        u_cons = sum(_consumptions(d) for d in unit_devs)
        if u_counters > MAX_COUNTERS_134 or len(unit_devs) > MAX_DEVICES or u_cons > MAX_CONSUMPTIONS_134:
            names = ", ".join(cs.name for cs in unit_sets)
            raise ValueError(
                f"counter set(s) {names} with {len(unit_devs)} devices ({u_counters} counters, {u_cons} "
                f"consumptions) do not fit one 1.34 ResourceSlice; use layout 1.35 or fewer replicas")
        if (sets or devs) and (counters + u_counters > MAX_COUNTERS_134 or len(devs) + len(unit_devs) > MAX_DEVICES
                               or consumptions + u_cons > MAX_CONSUMPTIONS_134):
            chunks.append((sets, devs))
            sets, devs, counters, consumptions = [], [], 0, 0
        sets = sets + list(unit_sets)
        devs = devs + list(unit_devs)
        counters += u_counters
        consumptions += u_cons
    if sets or devs:
        chunks.append((sets, devs))
    return chunks


def normalise_layout(version: str) -> str:
    """A Kubernetes minor version ("1.34", "v1.36.2") -> its counter layout ("1.34" or "1.35")."""
    text = str(version).lstrip("v")
    parts = text.split(".")
    try:
        major, minor = int(parts[0]), int(parts[1])
    except (ValueError, IndexError):
        raise ValueError(f"layout: expected a Kubernetes version such as 1.34 or 1.35, got {version!r}") from None
    if (major, minor) < (1, 34):
        raise ValueError(f"layout: resource.k8s.io/v1 needs Kubernetes 1.34 or later, got {version!r}")
    return "1.34" if (major, minor) == (1, 34) else "1.35"


def build_slices(
    inventory: NodeInventory,
    node_name: str,
    node_uid: str | None = None,
    driver_name: str | None = None,
    generation: int = 1,
    layout: str = "1.35",
) -> list[dict[str, Any]]:
    """The ResourceSlices that publish `inventory` for `node_name` (pool = node name).

    `driver_name` defaults to the inventory's. `layout` picks the counter layout ("1.34" or
    "1.35"; later versions use "1.35"). A node without devices still gets one empty slice, so the
    pool exists and consumers see "no devices" rather than "driver not running".
    """
    layout = normalise_layout(layout)
    if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
        raise ValueError(f"generation: expected an integer >= 0, got {generation!r}")
    driver = driver_name or inventory.driver_name
    specs: list[dict[str, Any]] = []
    if layout == "1.35":
        for chunk in _chunks_135(inventory.devices):
            specs.append({"devices": [d.to_wire() for d in chunk]})
        sets = inventory.counter_sets
        for k in range(0, len(sets), MAX_COUNTER_SETS_135):
            specs.append({"sharedCounters": [cs.to_wire() for cs in sets[k : k + MAX_COUNTER_SETS_135]]})
    else:
        for sets_chunk, devs in _chunks_134(inventory):
            spec: dict[str, Any] = {"devices": [d.to_wire() for d in devs]}
            if sets_chunk:
                spec["sharedCounters"] = [cs.to_wire() for cs in sets_chunk]
            specs.append(spec)
    if not specs:
        specs.append({"devices": []})
    out = []
    for n, body in enumerate(specs):
        metadata: dict[str, Any] = {"name": slice_name(node_name, driver, n)}
        if node_uid:
            metadata["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid, "controller": True}
            ]
        spec = {"driver": driver, "nodeName": node_name,
                "pool": {"name": node_name, "generation": generation, "resourceSliceCount": len(specs)}}
        spec.update(body)
        out.append({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice", "metadata": metadata, "spec": spec})
    return out


# ---- health taints -----------------------------------------------------------------------------

def xid_taint(driver_name: str, xid: int, time_added: str | None = None) -> dict[str, Any]:
    """Taint for an XID: NoSchedule, except application XIDs (effect None: informational)."""
    taint = {"key": f"{driver_name}/xid", "value": str(xid),
             "effect": "None" if xid in APPLICATION_XIDS else "NoSchedule"}
    if time_added:
        taint["timeAdded"] = time_added
    return taint


def gpu_lost_taint(driver_name: str, time_added: str | None = None) -> dict[str, Any]:
    taint = {"key": f"{driver_name}/gpu-lost", "value": "true", "effect": "NoSchedule"}
    if time_added:
        taint["timeAdded"] = time_added
    return taint


def apply_taints(inventory: NodeInventory, taints: dict[str, list[dict[str, Any]]]) -> NodeInventory:
    """A copy of `inventory` with `taints[uuid]` added to the devices of that GPU or MIG device.

    A physical GPU's UUID taints every device on it (whole GPU, its MIG devices, replicas); a MIG
    UUID taints that MIG device only. Taints with the same key replace earlier ones (one XID taint
    per device: the latest), and the inventory passed in is left unchanged.
    """
    devices = []
    for d in inventory.devices:
        extra = list(taints.get(d.gpu_uuid, []))
        if d.uuid and d.uuid != d.gpu_uuid:
            extra += taints.get(d.uuid, [])
        if not extra:
            devices.append(d)
            continue
        merged = {t["key"]: t for t in d.taints}
        for t in extra:
            merged[t["key"]] = dict(t)
        devices.append(replace(d, taints=list(merged.values()), attributes=copy.deepcopy(d.attributes)))
    return replace(inventory, devices=devices)
