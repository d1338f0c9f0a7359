"""The node's device model: one `Device` per published device, plus per-GPU counter sets.

This is the contract between discovery and everything that prepares or publishes devices: the
kubelet plugin looks devices up here by name to know which GPU, MIG placement or replica a claim
got; `slices.py` turns the same entries into ResourceSlices. Attribute, capacity and counter dicts
are kept in their wire form (`{"string": "gpu"}`, `{"value": "80Gi"}`) so that what the plugin
reasons about is byte-for-byte what the scheduler sees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from driver.nvml.interface import GpuInfo, Versions

KINDS = ("gpu", "mig", "replica", "fractional")


@dataclass
class Device:
    """One published device."""

    name: str
    kind: str  # gpu | mig | replica | fractional
    index: int  # NVML index of the physical GPU
    minor: int  # /dev/nvidia<minor> of the physical GPU
    gpu_uuid: str  # UUID of the physical GPU (also for MIG devices and replicas)
    uuid: str | None  # the device's own UUID: GPU-..., MIG-... (None: dynamic MIG not created yet; replicas)
    parent_uuid: str | None = None  # MIG devices and replicas: the physical GPU
    mig_profile: str | None = None
    gi_profile_id: int | None = None
    placement_start: int | None = None
    placement_size: int | None = None
    replica_index: int | None = None
    replicas: int | None = None
    dynamic: bool = False  # published from a counter set (dynamic mode): created on prepare
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    capacity: dict[str, dict[str, Any]] = field(default_factory=dict)
    consumes_counters: list[dict[str, Any]] = field(default_factory=list)
    allow_multiple_allocations: bool = False
    taints: list[dict[str, Any]] = field(default_factory=list)

    def to_wire(self) -> dict[str, Any]:
        """The resource.k8s.io/v1 Device dict."""
        out: dict[str, Any] = {"name": self.name}
        if self.attributes:
            out["attributes"] = {k: dict(v) for k, v in self.attributes.items()}
        if self.capacity:
            out["capacity"] = {k: _copy(v) for k, v in self.capacity.items()}
        if self.consumes_counters:
            out["consumesCounters"] = [_copy(c) for c in self.consumes_counters]
        if self.allow_multiple_allocations:
            out["allowMultipleAllocations"] = True
        if self.taints:
            out["taints"] = [dict(t) for t in self.taints]
        return out


@dataclass
class CounterSet:
    """A shared counter set (`gpu-<minor>-counter-set`) with quantity strings as values."""

    name: str
    counters: dict[str, str]

    def to_wire(self) -> dict[str, Any]:
        return {"name": self.name, "counters": {k: {"value": v} for k, v in self.counters.items()}}


@dataclass
class NodeInventory:
    """Everything one node publishes, in a stable order (by GPU, then as discovered)."""

    node_name: str
    driver_name: str
    versions: Versions
    gpus: list[GpuInfo]
    devices: list[Device]
    counter_sets: list[CounterSet] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)  # GPUs left out, with the NVML error

    def device(self, name: str) -> Device:
        """The device called `name`; KeyError naming it when unknown."""
        for d in self.devices:
            if d.name == name:
                return d
        raise KeyError(f"device {name!r} is not published on node {self.node_name}")

    def by_name(self) -> dict[str, Device]:
        return {d.name: d for d in self.devices}

    def gpu(self, index: int) -> GpuInfo:
        for g in self.gpus:
            if g.index == index:
                return g
        raise KeyError(f"GPU {index} is not in the inventory of node {self.node_name}")


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


# ---- names ------------------------------------------------------------------------------------

def gpu_name(minor: int) -> str:
    return f"gpu-{minor}"


def profile_token(profile: str) -> str:
    """"1g.10gb" -> "1g10gb"; "1g.10gb+me" -> "1g10gbme" (device names must be DNS labels)."""
    return re.sub(r"[^a-z0-9]", "", profile.lower())


def mig_name(minor: int, profile: str, gi_profile_id: int, placement_start: int) -> str:
    return f"gpu-{minor}-mig-{profile_token(profile)}-{gi_profile_id}-{placement_start}"


def replica_name(minor: int, k: int) -> str:
    return f"gpu-{minor}-ts-{k}"


def counter_set_name(minor: int) -> str:
    return f"gpu-{minor}-counter-set"


# ---- attribute values -------------------------------------------------------------------------

def semver(text: str) -> str:
    """A version NVML prints ("535.183.01", "12.4", "8.0") as strict semver ("535.183.1", "12.4.0",
    "8.0.0"): the API server rejects leading zeros and missing components."""
    parts = [p for p in re.split(r"[.]", text.strip()) if p != ""]
    if not parts or not all(p.isdigit() for p in parts):
        raise ValueError(f"version {text!r}: expected numbers separated by dots")
    nums = [str(int(p)) for p in parts[:3]]
    while len(nums) < 3:
        nums.append("0")
    return ".".join(nums)


def string_attr(value: str) -> dict[str, Any]:
    return {"string": value}


def int_attr(value: int) -> dict[str, Any]:
    return {"int": value}


def version_attr(value: str) -> dict[str, Any]:
    return {"version": value}
