"""The bridge between the allocator's typed views and the scorer's compact numbers.

The scorer thinks in "milli-GPU free per device" and "count × share per request"; the allocator
thinks in DeviceViews, consumable capacities and CEL. This module translates one into the other
(and back, as a DeviceChooser), so that neither has to know the other's internals:

- a device with consumable `compute` capacity (fractional GPU) offers `compute × 1000` milli and
  has free what its allocations have not consumed; any other device offers 1000 milli, all free
  or none (it is exclusive); devices carved out of one physical GPU (MIG, replicas, counter
  sets) are mapped onto that GPU by physical.py, which also zeroes those whose counters no
  longer fit;
- a request's share is its `compute` capacity request (whole device when absent);
- which devices a request may use is decided by the real CEL selectors (class's, then request's),
  evaluated once per device and cached by the allocator's CEL layer.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Callable, Mapping

from driver.allocator.inventory import DeviceView, NodeInventory
from driver.allocator.request import ClaimError, PreparedClaims, RequestSpec, prepare
from driver.scheduler.packing.scoring import Request, Shape
from driver.allocator.usage import NodeUsage, Pick, picks_from_allocation
from driver.dra.cel import compile_selector, matches

COMPUTE = "compute"
FULL = 1000
# Attributes unique to one physical device: left out of the equivalence signature so that nodes
# built alike group together. Claims naming them make the cycle check nodes one by one
# (`names_identity`).
IDENTITY_ATTRIBUTES = frozenset({"uuid", "parentUUID", "pciBusID", "pcieRoot", "serial"})


class ClaimShapeError(ValueError):
    """A claim the scheduler cannot read (reported on the pod; the allocator would fail the same way)."""


def _compute(device: DeviceView) -> Fraction | None:
    return device.capacity.get(device.driver, {}).get(COMPUTE)


def device_total(device: DeviceView) -> int:
    """Milli-GPU the device offers (fractional: its compute capacity; otherwise one whole unit)."""
    c = _compute(device) if device.allow_multiple else None
    return int(c * FULL) if c is not None else FULL


def device_free(device: DeviceView, usage: NodeUsage) -> int:
    """Milli-GPU still free on the device under `usage`."""
    if device.allow_multiple:
        c = _compute(device)
        if c is None:
            return 0 if device.key in usage.shared else FULL
        use = usage.shared.get(device.key)
        if use is None:
            return int(c * FULL)
        used = use.consumed.get(f"{device.driver}/{COMPUTE}", Fraction(0))
        return int((c - used) * FULL)
    return 0 if device.key in usage.exclusive else FULL


def inventory_signature(inventory: NodeInventory) -> tuple:
    """What makes two nodes' devices interchangeable: everything but per-device identities."""
    out = []
    for d in inventory.devices:
        attrs = tuple(sorted((dom, k, repr(v)) for dom, ids in d.attributes.items() for k, v in ids.items()
                             if k not in IDENTITY_ATTRIBUTES))
        caps = tuple(sorted((dom, k, v) for dom, ids in d.capacity.items() for k, v in ids.items()))
        consumes = tuple((cset[2], tuple(sorted(a.items()))) for cset, a in d.consumes)
        out.append((d.driver, d.name, attrs, caps, d.allow_multiple, d.taints, consumes,
                    tuple(sorted(d.policies.items(), key=lambda kv: kv[0]))))
    if inventory.counters:  # what the counter sets hold decides which devices fit together
        out.append(tuple(sorted((k[2], tuple(sorted(v.items()))) for k, v in inventory.counters.items())))
    return tuple(out)


def usage_signature(inventory: NodeInventory, usage: NodeUsage) -> tuple:
    """Usage beyond free compute (other consumed capacities, counters), by device position."""
    if not usage.shared and not usage.counters:
        return ()
    shared = []
    for key, use in usage.shared.items():
        d = inventory.by_key.get(key)
        others = tuple(sorted((k, v) for k, v in use.consumed.items() if not k.endswith("/" + COMPUTE)))
        if others and d is not None:
            shared.append((d.index, others))
    counters = tuple(sorted((cset[2], tuple(sorted(v.items()))) for cset, v in usage.counters.items()))
    return (tuple(sorted(shared)), counters)


def mask_key(spec: RequestSpec) -> tuple[str, ...]:
    return spec.key


def admission(inventory: NodeInventory, classes: Mapping[str, Mapping[str, Any]]) -> Callable[[Any], tuple[bool, ...]]:
    """A function: selector key (the expressions of a request) → one flag per device of `inventory`."""

    def admits(key: tuple[str, ...]) -> tuple[bool, ...]:
        selectors = [compile_selector(e) for e in key]
        return tuple(all(matches(s, d) is True for s in selectors) for d in inventory.devices)

    return admits


def request_shape(spec: RequestSpec) -> Request | None:
    """count × share of one request (None for `All` mode, which the scorer leaves to the allocator)."""
    if spec.mode != "ExactCount":
        return None
    amount = None
    for key, value in spec.capacity_requests.items():
        if key.rsplit("/", 1)[-1] == COMPUTE:
            amount = value
    share = FULL if amount is None else max(1, min(FULL, math.ceil(amount * FULL)))
    return Request(spec.count, share, mask_key(spec))


def _scored(group: Any) -> Request | None:
    """The request as the scorer sees it; None for `All` mode and for firstAvailable lists with
    several alternatives, which only the allocator can resolve (a node where the first does not
    fit may still take a later one), so they never filter nodes out."""
    if len(group.alternatives) != 1:
        return None
    return request_shape(group.alternatives[0])


def names_identity(prepared: PreparedClaims) -> bool:
    """Do the claims select or constrain devices by an attribute unique to one device (a uuid,
    a PCIe root)? Nodes of one equivalence group differ exactly there, so the scorer's per-group
    view (built from one node) cannot answer for the others: the cycle then asks the allocator
    node by node. Conservative: the attribute's name anywhere in a selector counts."""
    for claim in prepared.claims:
        for c in claim.constraints:
            if c.attribute.rpartition("/")[2] in IDENTITY_ATTRIBUTES:
                return True
        for group in claim.groups:
            for spec in group.alternatives:
                if any(attr in expr for expr in spec.key for attr in IDENTITY_ATTRIBUTES):
                    return True
    return False


def pod_shape(cpu: int, memory: int, prepared: PreparedClaims) -> Shape:
    """The scorer's view of a pod (requests with one alternative; see `_scored`)."""
    reqs = []
    for claim in prepared.claims:
        for group in claim.groups:
            r = _scored(group)
            if r is not None:
                reqs.append(r)
    return Shape(cpu, memory, tuple(reqs))


def prepare_claims(claims: list[Mapping[str, Any]], classes: Mapping[str, Mapping[str, Any]]) -> PreparedClaims:
    try:
        return prepare(claims, classes)
    except ClaimError as exc:
        raise ClaimShapeError(str(exc)) from None


def picks_of(inventory: NodeInventory, allocation: Mapping[str, Any]) -> list[Pick]:
    return picks_from_allocation(inventory, allocation)


class PlanChooser:
    """DeviceChooser that tries the scorer's planned devices first, then the rest in its preference.

    The scorer picked the devices for each request on its compact view; if the allocator's full
    rules (constraints, taints, counters) reject them, the search backtracks through the other
    candidates in the strategy's order rather than in inventory order.
    """

    def __init__(self, scorer: Any, strategy: str, klass: Any, free: Any, plans: dict[int, tuple[int, ...]]) -> None:
        self.scorer, self.strategy, self.klass, self.free, self.plans = scorer, strategy, klass, free, plans

    def order(self, request: RequestSpec, candidates: list[DeviceView], inventory: NodeInventory,
              usage: NodeUsage) -> list[DeviceView]:
        layout = self.klass.layout
        if layout is not None and any(layout.kind[d.index] for d in candidates):
            # parts of physical GPUs (MIG, replicas): the planned devices, then the rest by GPU
            # use and placement (Layout.preference), not by their own free milli
            by_index = {d.index: d for d in candidates}
            plan = [i for i in self.plans.get(id(request), ()) if i in by_index]
            rest = layout.order(self.strategy, self.free, [i for i in by_index if i not in plan])
            return [by_index[i] for i in plan + rest]
        plan = self.plans.get(id(request), ())
        by_index = {d.index: d for d in candidates}
        first = [by_index[i] for i in plan if i in by_index]
        if len(first) == len(plan) and plan:
            # the usual case: the planned devices are available; the rest only matter if the
            # search must backtrack (constraints), so they get a cheap best-fit order
            rest = [d for d in candidates if d.index not in plan]
            rest.sort(key=lambda d: (-self.free[2][d.index] if self.strategy == "spread" else self.free[2][d.index], d.index))
            return first + rest
        shape = request_shape(request)
        share = shape.share if shape is not None else FULL
        rest_idx = [i for i in by_index if i not in plan]
        ordered = self.scorer.device_order(self.strategy, self.klass, self.free, share, rest_idx)
        return first + [by_index[i] for i in ordered]


def plans_by_request(prepared: PreparedClaims, plan: tuple[tuple[int, ...], ...]) -> dict[int, tuple[int, ...]]:
    """Map each request spec (by identity) to the devices the scorer planned for it."""
    out: dict[int, tuple[int, ...]] = {}
    k = 0
    for claim in prepared.claims:
        for group in claim.groups:
            if _scored(group) is not None:
                if k < len(plan):
                    out[id(group.alternatives[0])] = plan[k]
                k += 1
    return out
