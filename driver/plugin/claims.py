"""From a ResourceClaim dict to a checked plan of what to prepare (pure, no I/O).

Kubelet passes only namespace/name/UID; the plugin reads the claim and must refuse anything it
cannot prepare exactly: a claim that was recreated under the same name (UID mismatch), one
that is not allocated, results for devices this node does not publish, and configs that do not
decode or do not fit their device. Every refusal names the claim field at fault, because the
message ends up in the pod's events, where a user has to act on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from driver.dra.configs import ConfigEntry, ConfigError, decode_allocation_configs, select_config
from driver.dra.quantity import QuantityError, parse_quantity
from driver.plugin.inventory import AllocatableDevice


class ClaimError(ValueError):
    """The claim cannot be prepared on this node as it stands."""


@dataclass
class PlannedDevice:
    """One allocation result of our driver and pool, with its device and applicable config."""

    request: str
    device: AllocatableDevice
    config: ConfigEntry | None
    share_id: str | None = None
    admin_access: bool = False
    consumed: dict[str, str] = field(default_factory=dict)


@dataclass
class ClaimPlan:
    """Everything prepare needs from the claim, already validated."""

    uid: str
    namespace: str
    name: str
    devices: list[PlannedDevice]

    def groups(self) -> list[tuple[ConfigEntry | None, list[PlannedDevice]]]:
        """Devices grouped by the config that applies to them (one sharing setup per group)."""
        out: dict[int, tuple[ConfigEntry | None, list[PlannedDevice]]] = {}
        for d in self.devices:
            key = -1 if d.config is None else d.config.index
            out.setdefault(key, (d.config, []))[1].append(d)
        return list(out.values())


def _str_field(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise ClaimError(f"{where}.{key}: required non-empty string, got {value!r}")
    return value


def plan_claim(
    claim: dict[str, Any] | None,
    namespace: str,
    name: str,
    uid: str,
    driver: str,
    pool: str,
    devices: dict[str, AllocatableDevice],
) -> ClaimPlan:
    """Check a claim kubelet asked us to prepare and plan its devices; raises ClaimError."""
    ref = f"ResourceClaim {namespace}/{name}"
    if not uid:
        raise ClaimError(f"{ref}: kubelet sent an empty claim UID")
    if claim is None:
        raise ClaimError(f"{ref}: not found in the API server")
    if not isinstance(claim, dict) or not isinstance(claim.get("metadata"), dict):
        raise ClaimError(f"{ref}: the API server returned an object without metadata")
    actual_uid = claim["metadata"].get("uid")
    if actual_uid != uid:
        raise ClaimError(
            f"{ref}: UID mismatch: kubelet asked for {uid}, the API server has {actual_uid} "
            "(the claim was deleted and recreated)"
        )
    if claim["metadata"].get("deletionTimestamp") and not (claim.get("status") or {}).get("reservedFor"):
        raise ClaimError(f"{ref}: is being deleted and reserved for no pod")
    allocation = (claim.get("status") or {}).get("allocation")
    if not allocation:
        raise ClaimError(f"{ref}: not allocated (status.allocation is empty)")
    if not isinstance(allocation, dict) or not isinstance(allocation.get("devices"), dict):
        raise ClaimError(f"{ref}: status.allocation.devices: expected an object")
    results = allocation["devices"].get("results")
    if not isinstance(results, list):
        raise ClaimError(f"{ref}: status.allocation.devices.results: expected a list, got {type(results).__name__}")
    try:
        configs = decode_allocation_configs(allocation["devices"].get("config"), driver)
    except ConfigError as exc:
        raise ClaimError(f"{ref}: status.{exc}") from None

    planned: list[PlannedDevice] = []
    seen: set[tuple[str, str | None]] = set()
    foreign_pools: set[str] = set()
    for i, result in enumerate(results):
        where = f"status.allocation.devices.results[{i}]"
        if not isinstance(result, dict):
            raise ClaimError(f"{ref}: {where}: expected an object, got {type(result).__name__}")
        if result.get("driver") != driver:
            continue  # another driver's device: its own plugin prepares it
        request = _str_field(result, "request", f"{ref}: {where}")
        result_pool = _str_field(result, "pool", f"{ref}: {where}")
        device_name = _str_field(result, "device", f"{ref}: {where}")
        if result_pool != pool:
            foreign_pools.add(result_pool)
            continue
        device = devices.get(device_name)
        if device is None:
            raise ClaimError(f"{ref}: {where}.device: {device_name!r} is not a device this node publishes in pool {pool!r}")
        if device.lost:
            raise ClaimError(f"{ref}: {where}.device: {device_name!r} is on GPU {device.gpu_uuid}, which has fallen "
                             "off the bus (tainted gpu-lost); it cannot be prepared")
        share_id = result.get("shareID")
        if share_id is not None and not isinstance(share_id, str):
            raise ClaimError(f"{ref}: {where}.shareID: expected a string, got {share_id!r}")
        key = (device_name, share_id)
        if key in seen:
            raise ClaimError(f"{ref}: {where}: device {device_name!r} is allocated twice in the same claim")
        seen.add(key)
        consumed: dict[str, str] = {}
        raw_consumed = result.get("consumedCapacity") or {}
        if not isinstance(raw_consumed, dict):
            raise ClaimError(f"{ref}: {where}.consumedCapacity: expected a map of quantities")
        for cap, value in raw_consumed.items():
            try:
                parse_quantity(value, f"{where}.consumedCapacity.{cap}")
            except QuantityError as exc:
                raise ClaimError(f"{ref}: {exc}") from None
            consumed[cap] = str(value)
        try:
            config = select_config(configs, request, device.type)
        except ConfigError as exc:
            raise ClaimError(f"{ref}: status.{exc}") from None
        planned.append(PlannedDevice(request, device, config, share_id, bool(result.get("adminAccess")), consumed))
    if not planned:
        extra = f" (its results are for pools {sorted(foreign_pools)})" if foreign_pools else ""
        raise ClaimError(f"{ref}: no device of driver {driver!r} allocated in pool {pool!r}{extra}")
    plan = ClaimPlan(uid, namespace, name, planned)
    _check_mps_limits(plan, ref)
    return plan


def _check_mps_limits(plan: ClaimPlan, ref: str) -> None:
    """Per-device MPS limits must name a device of their own group, by UUID or index."""
    for config, group in plan.groups():
        if config is None or config.config.sharing is None or config.config.sharing.mps is None:
            continue
        uuids = {d.device.gpu_uuid for d in group} | {d.device.uuid for d in group if d.device.uuid}
        for key in config.config.sharing.mps.default_per_device_pinned_memory_limit:
            where = f"status.allocation.devices.config[{config.index}] ({config.source}): " \
                    f"sharing.mpsConfig.defaultPerDevicePinnedMemoryLimit"
            if key.isdigit():
                if int(key) >= len(group):
                    raise ClaimError(f"{ref}: {where}: index {key} is out of range: the config applies to "
                                     f"{len(group)} device(s)")
            elif key not in uuids:
                raise ClaimError(f"{ref}: {where}: UUID {key} is not one of the devices the config applies to")


def mps_limits(config: ConfigEntry, group: list[PlannedDevice], uuid_of: dict[str, str]) -> dict[str, Fraction]:
    """Pinned-memory limit per device UUID of one MPS group (default first, then per-device)."""
    mps = config.config.sharing.mps if config.config.sharing else None
    if mps is None:
        return {}
    out: dict[str, Fraction] = {}
    uuids = [uuid_of[d.device.name] for d in group]
    if mps.default_pinned_device_memory_limit is not None:
        for u in uuids:
            out[u] = mps.default_pinned_device_memory_limit
    for key, limit in mps.default_per_device_pinned_memory_limit.items():
        out[uuids[int(key)] if key.isdigit() else key] = limit
    return out
