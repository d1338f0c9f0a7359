"""The depth-first search behind `allocate`: candidates, per-attempt state, constraints.

Upstream's structured allocator walks claims → requests → device slots and backtracks; the first
complete solution wins. This module is that walk and nothing else: what a request may use
(`matching_devices`, cached per inventory), what is free given the node's usage plus this
attempt's own picks (`AttemptState`, amounts in nano-units so the inner loop is int arithmetic),
matchAttribute / distinctAttribute bookkeeping, and the recursion. Device order is the
`DeviceChooser`'s; results are turned into API dicts by allocate.py.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any, Protocol, Sequence

from driver.allocator.capacity import consumption
from driver.allocator.inventory import CounterSetKey, DeviceKey, DeviceView, NodeInventory
from driver.allocator.request import ClaimSpec, ConstraintSpec, RequestSpec
from driver.allocator.usage import NodeUsage
from driver.dra.cel import matches

MAX_STEPS = 200_000  # search nodes per attempt before giving up (pathological constraint sets)


class DeviceChooser(Protocol):
    """Orders (and may drop) the available candidates for one request on one node.

    `candidates` are the devices that match the request's selectors and are free enough right now
    (including this attempt's earlier picks). For shared devices, what the request would consume
    on a device is `consumed_capacity(device, request.capacity_requests)`. The search tries the
    returned devices in order and backtracks through them when constraints demand it. It is
    called once per request per attempt (again only when backtracking re-enters the request), and
    not at all for allocationMode All, which takes every matching device anyway.
    """

    def order(self, request: RequestSpec, candidates: list[DeviceView], inventory: NodeInventory,
              usage: NodeUsage) -> list[DeviceView]: ...


# ----------------------------------------------------------------------------- candidates


def matching_devices(spec: RequestSpec, inventory: NodeInventory) -> list[DeviceView] | str:
    """Devices passing the class then request selectors (cached per inventory), or a CEL error."""
    hit = inventory.match_cache.get(spec.key)
    if hit is not None:
        return hit
    out: list[DeviceView] = []
    error: str | None = None
    for device in inventory.devices:
        ok = True
        for sel in spec.selectors:
            r = matches(sel, device)
            if r is True:
                continue
            if r is not False:
                error = f"device {device.pool}/{device.name}: {r}"
            ok = False
            break
        if error is not None:
            break
        if ok:
            out.append(device)
    result: list[DeviceView] | str = error if error is not None else out
    inventory.match_cache[spec.key] = result
    return result


Consumption = tuple[tuple[str, int], ...]  # ((qualified capacity name, nano-units), ...)
_FREE: Consumption = ()


class AttemptState:
    """This attempt's picks, layered over the node's usage (amounts in nano-units).

    A plain slotted class rather than a dataclass: one is built per (pod, node) attempt.
    """

    __slots__ = ("inventory", "usage", "taken", "shared", "shared_refs", "counters", "steps")

    def __init__(self, inventory: NodeInventory, usage: NodeUsage) -> None:
        self.inventory = inventory
        self.usage = usage
        self.taken: set[DeviceKey] = set()
        self.shared: dict[DeviceKey, dict[str, int]] = {}
        self.shared_refs: dict[DeviceKey, int] = {}
        self.counters: dict[CounterSetKey, dict[str, int]] = {}
        self.steps = 0

    def fits(self, d: DeviceView, spec: RequestSpec) -> Consumption | None:
        """What `d` would consume for `spec` now, or None if it cannot take it."""
        if d.taints and not spec.tolerates(d):
            return None
        if spec.capacity_key or d.allow_multiple:
            consumed = consumption(d, spec.capacity_units, spec.capacity_key)
            if consumed is None:
                return None
        else:
            consumed = _FREE
        if spec.admin:
            return _FREE
        key = d.key
        if d.allow_multiple:
            used = self.usage.shared.get(key)
            extra = self.shared.get(key)
            caps = d.cap_units
            for qn, amount in consumed:
                have = (used.units.get(qn, 0) if used else 0) + (extra.get(qn, 0) if extra else 0)
                if have + amount > caps[qn]:
                    return None
            if (used and used.refs) or self.shared_refs.get(key):
                return consumed  # counters already charged for this device
        elif key in self.taken or key in self.usage.exclusive:
            return None
        if d.consumes_units and not self._counters_fit(d):
            return None
        return consumed

    def _counters_fit(self, d: DeviceView) -> bool:
        totals = self.inventory.counter_units
        for cset, amounts in d.consumes_units:
            total = totals.get(cset)
            if total is None:
                return False
            used = self.usage.counter_units.get(cset)
            extra = self.counters.get(cset)
            for name, amount in amounts:
                have = (used.get(name, 0) if used else 0) + (extra.get(name, 0) if extra else 0)
                if have + amount > total.get(name, 0):
                    return False
        return True

    def take(self, d: DeviceView, spec: RequestSpec, consumed: Consumption) -> None:
        if spec.admin:
            return
        key = d.key
        charge = True
        if d.allow_multiple:
            extra = self.shared.setdefault(key, {})
            for qn, amount in consumed:
                extra[qn] = extra.get(qn, 0) + amount
            used = self.usage.shared.get(key)
            charge = not ((used and used.refs) or self.shared_refs.get(key))
            self.shared_refs[key] = self.shared_refs.get(key, 0) + 1
        else:
            self.taken.add(key)
        if charge:
            self._charge(d, 1)

    def release(self, d: DeviceView, spec: RequestSpec, consumed: Consumption) -> None:
        if spec.admin:
            return
        key = d.key
        charge = True
        if d.allow_multiple:
            extra = self.shared[key]
            for qn, amount in consumed:
                extra[qn] -= amount
            self.shared_refs[key] -= 1
            used = self.usage.shared.get(key)
            charge = not ((used and used.refs) or self.shared_refs[key])
        else:
            self.taken.discard(key)
        if charge:
            self._charge(d, -1)

    def _charge(self, d: DeviceView, sign: int) -> None:
        for cset, amounts in d.consumes_units:
            extra = self.counters.setdefault(cset, {})
            for name, amount in amounts:
                extra[name] = extra.get(name, 0) + sign * amount


# ----------------------------------------------------------------------------- constraints


def _comparable(value: Any) -> Any:
    # bool is an int in Python; an attribute typed bool must never "match" an int 1.
    return (type(value).__name__, value)


class _Constraints:
    """matchAttribute / distinctAttribute state of one claim while the search runs."""

    __slots__ = ("items", "match", "seen")

    def __init__(self, items: list[ConstraintSpec]) -> None:
        self.items = items
        self.match: list[list[Any]] = [[None, 0] for _ in items]  # value, count
        self.seen: list[dict[Any, int]] = [{} for _ in items]

    def applicable(self, spec: RequestSpec) -> list[int]:
        return [i for i, c in enumerate(self.items) if c.applies(spec)]

    def ok(self, idx: list[int], d: DeviceView) -> bool:
        for i in idx:
            c = self.items[i]
            v = d.attribute(c.attribute)
            if v is None:
                return False
            v = _comparable(v)
            if c.distinct:
                if self.seen[i].get(v):
                    return False
            elif self.match[i][1] and self.match[i][0] != v:
                return False
        return True

    def fixed(self, idx: list[int]) -> tuple[str, Any] | None:
        """(attribute, value) of a matchAttribute constraint that earlier picks already settled."""
        for i in idx:
            m = self.match[i]
            if m[1] and not self.items[i].distinct:
                return self.items[i].attribute, m[0]
        return None

    def add(self, idx: list[int], d: DeviceView, sign: int) -> None:
        for i in idx:
            c = self.items[i]
            v = _comparable(d.attribute(c.attribute))
            if c.distinct:
                self.seen[i][v] = self.seen[i].get(v, 0) + sign
            else:
                m = self.match[i]
                m[0] = v
                m[1] += sign


_NO_CONSTRAINTS = _Constraints([])


# ----------------------------------------------------------------------------- search


def _positions(inv: NodeInventory, spec: RequestSpec, cand: list[DeviceView], attribute: str) -> dict[Any, list[int]]:
    """Positions in `cand` grouped by the value of `attribute` (cached on the inventory)."""
    key = ("by-attribute", spec.key, attribute)
    hit = inv.match_cache.get(key)
    if hit is None:
        hit = {}
        for i, d in enumerate(cand):
            v = d.attribute(attribute)
            if v is not None:
                hit.setdefault(_comparable(v), []).append(i)
        inv.match_cache[key] = hit
    return hit


def _interchangeable(claims: list[ClaimSpec], a: tuple[int, Any], b: tuple[int, Any], cons: list[Any]) -> bool:
    (ca, ga), (cb, gb) = a, b
    if ca != cb or len(ga.alternatives) != 1 or len(gb.alternatives) != 1:
        return False
    x, y = ga.alternatives[0], gb.alternatives[0]
    if x.mode != "ExactCount" or y.mode != "ExactCount":
        return False
    if (x.key, x.capacity_key, x.admin, x.tolerations, x.class_name) != (y.key, y.capacity_key, y.admin, y.tolerations,
                                                                         y.class_name):
        return False
    if cons[ca].items and cons[ca].applicable(x) != cons[ca].applicable(y):
        return False
    named = {r for c in claims[ca].configs for r in (c.get("requests") or ())}
    return x.name not in named and y.name not in named


class SearchAbort(Exception):
    def __init__(self, reason: str, permanent: bool) -> None:
        super().__init__(reason)
        self.reason, self.permanent = reason, permanent


def search(claims: list[ClaimSpec], st: AttemptState, chooser: DeviceChooser | None) -> list[list[tuple]] | None:
    """Picks per claim as (spec, device, consumed) tuples, or None when nothing fits."""
    flat = [(ci, g) for ci, c in enumerate(claims) for g in c.groups]
    picked: list[list[tuple]] = [[] for _ in claims]
    cons = [_Constraints(c.constraints) if c.constraints else _NO_CONSTRAINTS for c in claims]
    inv, usage = st.inventory, st.usage
    # Symmetry breaking: consecutive requests of one claim that are interchangeable (same
    # selectors, capacity, access, tolerations and constraints, no config naming them) take
    # devices in non-decreasing candidate order. Without it, "eight identical MIG requests on a
    # GPU with seven slots" explores every permutation before failing.
    same_as_prev = [chooser is None and gi > 0 and _interchangeable(claims, flat[gi - 1], flat[gi], cons)
                    for gi in range(len(flat))]
    last_index = [0] * len(flat)

    def solve(gi: int) -> bool:
        if gi == len(flat):
            return True
        ci, group = flat[gi]
        for spec in group.alternatives:
            if place(spec, ci, gi):
                return True
        return False

    def place(spec: RequestSpec, ci: int, gi: int) -> bool:
        cand = matching_devices(spec, inv)
        if isinstance(cand, str):
            raise SearchAbort(f"claim {claims[ci].label} request {spec.name}: {cand}", True)
        idx = cons[ci].applicable(spec) if cons[ci].items else []
        if spec.mode == "All":
            return place_all(spec, ci, gi, cand, idx)
        if chooser is not None:
            # The chooser ranks what is free now; without one, inventory order is first-fit and
            # availability is checked lazily in `choose` (usually the first device fits).
            avail = [d for d in cand if st.fits(d, spec) is not None]
            if len(avail) < spec.count:
                return False
            avail = chooser.order(spec, avail, inv, usage)
            seq: Sequence[int] = range(len(avail))
        else:
            avail = cand
            settled = cons[ci].fixed(idx) if idx else None
            # Once a matchAttribute value is settled, only devices with that value can follow:
            # walk their positions instead of every candidate.
            seq = _positions(inv, spec, cand, settled[0]).get(settled[1], []) if settled else range(len(avail))
        return choose(spec, ci, gi, avail, seq, idx, last_index[gi - 1] if same_as_prev[gi] else 0, spec.count)

    def choose(spec: RequestSpec, ci: int, gi: int, avail: list[DeviceView], seq: Sequence[int], idx: list[int],
               start: int, left: int) -> bool:
        """Pick `left` more devices for `spec` at positions of `avail` listed in `seq`, from `start` on."""
        if left == 0:
            return solve(gi + 1)
        c = cons[ci]
        for k in range(bisect_left(seq, start), len(seq) - left + 1):
            i = seq[k]
            st.steps += 1
            if st.steps > MAX_STEPS:
                raise SearchAbort(f"search gave up after {MAX_STEPS} steps (constraints too hard to satisfy)", False)
            d = avail[i]
            if idx and not c.ok(idx, d):
                continue
            consumed = st.fits(d, spec)
            if consumed is None:
                continue
            st.take(d, spec, consumed)
            if idx:
                c.add(idx, d, 1)
            picked[ci].append((spec, d, consumed))
            last_index[gi] = i
            if choose(spec, ci, gi, avail, seq, idx, i + 1, left - 1):
                return True
            picked[ci].pop()
            if idx:
                c.add(idx, d, -1)
            st.release(d, spec, consumed)
        return False

    def place_all(spec: RequestSpec, ci: int, gi: int, cand: list[DeviceView], idx: list[int]) -> bool:
        if not cand:
            return False
        done: list[tuple] = []
        ok = True
        for d in cand:
            consumed = st.fits(d, spec)
            if consumed is None or (idx and not cons[ci].ok(idx, d)):
                ok = False
                break
            st.take(d, spec, consumed)
            if idx:
                cons[ci].add(idx, d, 1)
            done.append((spec, d, consumed))
        if ok:
            picked[ci].extend(done)
            if solve(gi + 1):
                return True
            del picked[ci][len(picked[ci]) - len(done):]
        for spec_, d, consumed in reversed(done):
            if idx:
                cons[ci].add(idx, d, -1)
            st.release(d, spec_, consumed)
        return False

    return picked if solve(0) else None
