"""What is in use on one node, kept incrementally.

Rebuilding usage from every allocated claim for every scheduling attempt would make each attempt
O(cluster); instead a `NodeUsage` is updated by `add`/`remove` with the picks of one allocation,
in O(devices of that allocation). `from_claims` rebuilds it from claim statuses after a restart.

Rules kept here (they mirror upstream's structured allocator):
- an ordinary device is in use by at most one allocation (`exclusive`);
- a device with `allowMultipleAllocations` is never exclusive; each allocation consumes some of its
  capacities (`shared[key].consumed`) and carries a distinct shareID;
- adminAccess allocations consume nothing (monitoring tools look at devices others use);
- shared counters (partitionable devices) are consumed while a device is in use; a shared device
  consumes its counters once, while at least one allocation uses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Iterable, Mapping

from driver.allocator.inventory import CounterSetKey, DeviceKey, DeviceView, NodeInventory, qualify, to_units
from driver.dra.quantity import QuantityError, parse_quantity


class UsageError(ValueError):
    """An add/remove that contradicts the current usage (double allocation, unknown release)."""


@dataclass(frozen=True, slots=True)
class Pick:
    """One device chosen for one request: a `status.allocation.devices.results[]` entry, typed."""

    device: DeviceView
    request: str  # "main" or "main/sub"
    admin: bool = False
    share_id: str | None = None
    consumed: Mapping[str, Fraction] | None = None  # qualified capacity name -> amount (shared devices)


@dataclass(slots=True)
class SharedUse:
    """Allocations on one allowMultipleAllocations device."""

    refs: int = 0
    consumed: dict[str, Fraction] = field(default_factory=dict)
    share_ids: set[str] = field(default_factory=set)
    units: dict[str, int] = field(default_factory=dict)  # `consumed` in nano-units (hot path)


@dataclass(slots=True)
class NodeUsage:
    """Devices, counters and capacity in use on one node."""

    exclusive: set[DeviceKey] = field(default_factory=set)
    shared: dict[DeviceKey, SharedUse] = field(default_factory=dict)
    counters: dict[CounterSetKey, dict[str, Fraction]] = field(default_factory=dict)
    counter_units: dict[CounterSetKey, dict[str, int]] = field(default_factory=dict)  # same, nano-units

    def add(self, picks: Iterable[Pick]) -> None:
        """Record an allocation's picks. Raises UsageError (and changes nothing) on a conflict."""
        picks = [p for p in picks if not p.admin]
        seen: set[DeviceKey] = set()
        for p in picks:
            key = p.device.key
            if p.device.allow_multiple:
                use = self.shared.get(key)
                if p.share_id and use and p.share_id in use.share_ids:
                    raise UsageError(f"device {'/'.join(key)}: shareID {p.share_id} is already in use")
            elif key in self.exclusive or key in seen:
                raise UsageError(f"device {'/'.join(key)} is already allocated")
            seen.add(key)
        for p in picks:
            key = p.device.key
            if p.device.allow_multiple:
                use = self.shared.get(key)
                if use is None:
                    use = self.shared[key] = SharedUse()
                if use.refs == 0:
                    self._counters(p.device, 1)
                use.refs += 1
                for name, amount in (p.consumed or {}).items():
                    use.consumed[name] = use.consumed.get(name, Fraction(0)) + amount
                    use.units[name] = use.units.get(name, 0) + to_units(amount)
                if p.share_id:
                    use.share_ids.add(p.share_id)
            else:
                self.exclusive.add(key)
                self._counters(p.device, 1)

    def remove(self, picks: Iterable[Pick]) -> None:
        """Release an allocation's picks. Raises UsageError (and changes nothing) if one is not in use."""
        picks = [p for p in picks if not p.admin]
        for p in picks:
            key = p.device.key
            if p.device.allow_multiple:
                use = self.shared.get(key)
                if use is None or use.refs == 0 or (p.share_id and p.share_id not in use.share_ids):
                    raise UsageError(f"device {'/'.join(key)}: no allocation with shareID {p.share_id} to release")
            elif key not in self.exclusive:
                raise UsageError(f"device {'/'.join(key)} is not allocated")
        for p in picks:
            key = p.device.key
            if p.device.allow_multiple:
                use = self.shared[key]
                use.refs -= 1
                for name, amount in (p.consumed or {}).items():
                    use.consumed[name] = use.consumed.get(name, Fraction(0)) - amount
                    use.units[name] = use.units.get(name, 0) - to_units(amount)
                use.share_ids.discard(p.share_id or "")
                if use.refs == 0:
                    del self.shared[key]
                    self._counters(p.device, -1)
            else:
                self.exclusive.discard(key)
                self._counters(p.device, -1)

    def _counters(self, device: DeviceView, sign: int) -> None:
        for cset, amounts in device.consumes:
            used = self.counters.setdefault(cset, {})
            for name, amount in amounts.items():
                used[name] = used.get(name, Fraction(0)) + sign * amount
        for cset, unit_amounts in device.consumes_units:
            used_units = self.counter_units.setdefault(cset, {})
            for name, units in unit_amounts:
                used_units[name] = used_units.get(name, 0) + sign * units

    def in_use(self, device: DeviceView) -> bool:
        """True when an ordinary device is taken or a shared device has any allocation."""
        return device.key in self.exclusive or device.key in self.shared

    def copy(self) -> NodeUsage:
        """An independent copy (what-if simulation); not used on the allocation hot path."""
        return NodeUsage(
            set(self.exclusive),
            {k: SharedUse(u.refs, dict(u.consumed), set(u.share_ids), dict(u.units)) for k, u in self.shared.items()},
            {k: dict(v) for k, v in self.counters.items()},
            {k: dict(v) for k, v in self.counter_units.items()},
        )

    @classmethod
    def from_claims(cls, inventory: NodeInventory, claims: Iterable[Mapping[str, Any]]) -> NodeUsage:
        """Usage of `inventory`'s devices by the allocated claims among `claims` (others ignored)."""
        usage = cls()
        for claim in claims:
            alloc = ((claim.get("status") or {}).get("allocation"))
            if alloc:
                usage.add(picks_from_allocation(inventory, alloc))
        return usage


def picks_from_allocation(inventory: NodeInventory, allocation: Mapping[str, Any]) -> list[Pick]:
    """The picks of a `status.allocation` that concern devices of `inventory`.

    Results naming devices this node does not have (another node, a withdrawn slice) are left
    out: they cannot conflict with anything allocated here.
    """
    picks = []
    for i, r in enumerate(((allocation.get("devices") or {}).get("results")) or []):
        device = inventory.by_key.get((r.get("driver", ""), r.get("pool", ""), r.get("device", "")))
        if device is None:
            continue
        consumed = None
        if r.get("consumedCapacity"):
            try:
                consumed = {qualify(k, device.driver): parse_quantity(v, f"results[{i}].consumedCapacity[{k}]")
                            for k, v in r["consumedCapacity"].items()}
            except QuantityError as exc:
                raise UsageError(str(exc)) from None
        picks.append(Pick(device, r.get("request", ""), bool(r.get("adminAccess")), r.get("shareID"), consumed))
    return picks
