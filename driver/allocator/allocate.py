"""Allocate all of one pod's claims on one node, or none: upstream's structured-allocation search.

Depth-first over claims → requests → device slots with backtracking; the first complete solution
wins (FACTS §6). Device order comes from a `DeviceChooser` (default: inventory order, which is
upstream first-fit); packing strategies plug in there, the search itself stays the same.

Hot-path choices, because a scheduler calls this for every (pod, node) pair:
- claims are parsed once per pod (`prepare`), devices once per inventory;
- devices matching a selector set are cached on the inventory (CEL at most once per device);
- the attempt's own picks live in small overlay dicts, never in copies of the node usage;
- status dicts are only built when the caller asks for them (the winning node).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Mapping, Protocol, Sequence

from driver.allocator.capacity import consumption
from driver.allocator.inventory import CounterSetKey, DeviceKey, DeviceView, NodeInventory, node_selector_matches
from driver.allocator.request import ClaimError, ClaimSpec, ConstraintSpec, PreparedClaims, RequestSpec, prepare
from driver.allocator.usage import NodeUsage, Pick
from driver.dra.cel import matches
from driver.dra.quantity import format_quantity

MAX_STEPS = 200_000  # search nodes per attempt before giving up (pathological constraint sets)
_SHARE_NS = uuid.UUID("6f1d3a52-6a43-4b8e-9a8e-3c3f1f0b9d11")


class DeviceChooser(Protocol):
    """Orders (and may drop) the available candidates for one request on one node.

    `candidates` are the devices that match the request's selectors and are free enough right now
    (including this attempt's earlier picks). For shared devices, what the request would consume
    on a device is `consumed_capacity(device, request.capacity_requests)`. The search tries the
    returned devices in order and backtracks through them when constraints demand it.
    """

    def order(self, request: RequestSpec, candidates: list[DeviceView], inventory: NodeInventory,
              usage: NodeUsage) -> list[DeviceView]: ...


@dataclass(slots=True)
class AllocationFailure:
    """Why the pod's claims do not fit this node. `permanent`: the claim itself is at fault
    (unknown class, bad or failing CEL, invalid spec), so no node and no retry will help until it
    or its class changes."""

    reason: str
    permanent: bool = False

    def __bool__(self) -> bool:
        return False


@dataclass(slots=True)
class ClaimAllocation:
    """One claim's outcome: the picks (to update NodeUsage) and its `status.allocation` dict."""

    claim: ClaimSpec
    picks: list[Pick]
    specs: list[RequestSpec]  # the alternative chosen for each request, in request order
    node: str
    now: str | None
    _status: dict[str, Any] | None = None

    @property
    def allocation(self) -> dict[str, Any]:
        """The `status.allocation` dict, built on first access."""
        if self._status is None:
            self._status = _status(self)
        return self._status


@dataclass(slots=True)
class AllocationResult:
    node: str
    claims: list[ClaimAllocation]

    def __bool__(self) -> bool:
        return True

    @property
    def picks(self) -> list[Pick]:
        """Every pick of every claim: pass to `NodeUsage.add` once the allocation is written."""
        return [p for c in self.claims for p in c.picks]

    @property
    def allocations(self) -> list[dict[str, Any]]:
        return [c.allocation for c in self.claims]


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


_FREE: tuple[dict[str, Fraction], tuple[tuple[str, int], ...]] = ({}, ())
Consumption = tuple[dict[str, Fraction], tuple[tuple[str, int], ...]]


@dataclass(slots=True)
class _State:
    """This attempt's picks, layered over the node's usage (amounts in nano-units)."""

    inventory: NodeInventory
    usage: NodeUsage
    taken: set[DeviceKey] = field(default_factory=set)
    shared: dict[DeviceKey, dict[str, int]] = field(default_factory=dict)
    shared_refs: dict[DeviceKey, int] = field(default_factory=dict)
    counters: dict[CounterSetKey, dict[str, int]] = field(default_factory=dict)
    steps: int = 0

    def fits(self, d: DeviceView, spec: RequestSpec) -> Consumption | None:
        """What `d` would consume for `spec` now, or None if it cannot take it."""
        if d.taints and not spec.tolerates(d):
            return None
        if spec.capacity_key or d.allow_multiple:
            consumed = consumption(d, spec.capacity_requests, spec.capacity_key)
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
            for qn, amount in consumed[1]:
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
            for qn, amount in consumed[1]:
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
            for qn, amount in consumed[1]:
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


# ----------------------------------------------------------------------------- search


class _Abort(Exception):
    def __init__(self, reason: str, permanent: bool) -> None:
        super().__init__(reason)
        self.reason, self.permanent = reason, permanent


def _search(claims: list[ClaimSpec], st: _State, chooser: DeviceChooser | None) -> list[list[tuple]] | None:
    """Picks per claim as (spec, device, consumed) tuples, or None when nothing fits."""
    flat = [(ci, g) for ci, c in enumerate(claims) for g in c.groups]
    picked: list[list[tuple]] = [[] for _ in claims]
    cons = [_Constraints(c.constraints) for c in claims]
    inv, usage = st.inventory, st.usage

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
            raise _Abort(f"claim {claims[ci].label} request {spec.name}: {cand}", True)
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
        else:
            avail = cand
        return choose(spec, ci, gi, avail, idx, 0, spec.count)

    def choose(spec: RequestSpec, ci: int, gi: int, avail: list[DeviceView], idx: list[int],
               start: int, left: int) -> bool:
        if left == 0:
            return solve(gi + 1)
        c = cons[ci]
        for i in range(start, len(avail) - left + 1):
            st.steps += 1
            if st.steps > MAX_STEPS:
                raise _Abort(f"search gave up after {MAX_STEPS} steps (constraints too hard to satisfy)", False)
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
            if choose(spec, ci, gi, avail, idx, i + 1, left - 1):
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


# ----------------------------------------------------------------------------- results


def _share_id(claim: ClaimSpec, request: str, d: DeviceView, taken: set[str]) -> str:
    """Deterministic (same inputs, same ID) and unique among the device's live allocations."""
    n = 0
    while True:
        sid = str(uuid.uuid5(_SHARE_NS, f"{claim.uid or claim.label}|{request}|{'/'.join(d.key)}|{n}"))
        if sid not in taken:
            taken.add(sid)
            return sid
        n += 1


def _finish(claims: list[ClaimSpec], picked: list[list[tuple]], st: _State, node: str,
            now: str | None) -> AllocationResult:
    share_taken: dict[DeviceKey, set[str]] = {}
    out = []
    for claim, picks in zip(claims, picked):
        plist = []
        for spec, d, consumed in picks:
            sid = None
            if d.allow_multiple:
                taken = share_taken.get(d.key)
                if taken is None:
                    use = st.usage.shared.get(d.key)
                    taken = share_taken[d.key] = set(use.share_ids) if use else set()
                sid = _share_id(claim, spec.name, d, taken)
            plist.append(Pick(d, spec.name, spec.admin, sid, consumed[0] if d.allow_multiple else None))
        chosen: list[RequestSpec] = []
        for spec, _, _ in picks:
            if not chosen or chosen[-1] is not spec:
                chosen.append(spec)
        out.append(ClaimAllocation(claim, plist, chosen, node, now))
    return AllocationResult(node, out)


def _status(ca: ClaimAllocation) -> dict[str, Any]:
    results = []
    specs = {s.name: s for s in ca.specs}
    for p in ca.picks:
        spec = specs[p.request]
        entry: dict[str, Any] = {"request": p.request, "driver": p.device.driver, "pool": p.device.pool,
                                 "device": p.device.name}
        if spec.admin:
            entry["adminAccess"] = True
        if spec.raw_tolerations:
            entry["tolerations"] = [dict(t) for t in spec.raw_tolerations]
        if p.share_id:
            entry["shareID"] = p.share_id
        if p.consumed:
            keys = p.device.capacity_keys
            entry["consumedCapacity"] = {keys.get(qn, qn): format_quantity(v) for qn, v in p.consumed.items()}
        results.append(entry)
    config: list[dict[str, Any]] = []
    for spec in ca.specs:
        for c in spec.class_configs:
            config.append({"source": "FromClass", "requests": [spec.name], **{k: v for k, v in c.items() if k != "requests"}})
    for c in ca.claim.configs:
        entry = {"source": "FromClaim"}
        if c.get("requests"):
            entry["requests"] = list(c["requests"])
        entry.update({k: v for k, v in c.items() if k not in ("requests", "source")})
        config.append(entry)
    devices: dict[str, Any] = {"results": results}
    if config:
        devices["config"] = config
    status: dict[str, Any] = {"devices": devices}
    if not ca.picks or not all(p.device.all_nodes for p in ca.picks):
        status["nodeSelector"] = node_name_selector(ca.node)
    if ca.now:
        status["allocationTimestamp"] = ca.now
    return status


def node_name_selector(node: str) -> dict[str, Any]:
    """The nodeSelector upstream writes for node-local devices."""
    return {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}


def allocated_on_node(claim: Mapping[str, Any], node: str, labels: Mapping[str, str] | None = None) -> bool:
    """Whether an already-allocated (e.g. shared) claim can be used by a pod on `node`.

    Such claims are never reallocated: a pod using one can only go where its allocation points.
    An allocation without nodeSelector (network devices for all nodes) fits every node.
    """
    alloc = (claim.get("status") or {}).get("allocation")
    if not alloc:
        return False
    selector = alloc.get("nodeSelector")
    if not selector:
        return True
    return node_selector_matches(selector, node, {**(labels or {}), "kubernetes.io/hostname": (labels or {}).get("kubernetes.io/hostname", node)})


# ----------------------------------------------------------------------------- entry points


def _prepared(claims: PreparedClaims | Sequence[Mapping[str, Any]],
              classes: Mapping[str, Mapping[str, Any]] | None) -> PreparedClaims | AllocationFailure:
    if isinstance(claims, PreparedClaims):
        return claims
    try:
        return prepare(claims, classes or {})
    except ClaimError as exc:
        return AllocationFailure(str(exc), True)


def allocate(claims: PreparedClaims | Sequence[Mapping[str, Any]], inventory: NodeInventory, usage: NodeUsage,
             classes: Mapping[str, Mapping[str, Any]] | None = None, *, chooser: DeviceChooser | None = None,
             now: str | None = None) -> AllocationResult | AllocationFailure:
    """Allocate every claim (all unallocated claims of one pod) on this node, or none.

    `claims` are ResourceClaim dicts (then `classes` maps DeviceClass name → dict) or the result of
    `prepare(...)` (do that once per pod when trying many nodes). Nothing is modified: on success
    the caller writes the allocations and then calls `usage.add(result.picks)`.
    """
    prep = _prepared(claims, classes)
    if isinstance(prep, AllocationFailure):
        return prep
    st = _State(inventory, usage)
    try:
        picked = _search(prep.claims, st, chooser)
    except _Abort as exc:
        return AllocationFailure(exc.reason, exc.permanent)
    if picked is None:
        return AllocationFailure(explain(prep, inventory, usage), False)
    return _finish(prep.claims, picked, st, inventory.node, now)


def explain(prep: PreparedClaims, inventory: NodeInventory, usage: NodeUsage) -> str:
    """A human reason for a failed attempt: the first request that cannot be served even on its
    own, else the constraints or the competition between requests."""
    st = _State(inventory, usage)
    for claim in prep.claims:
        for group in claim.groups:
            notes = []
            for spec in group.alternatives:
                cand = matching_devices(spec, inventory)
                if isinstance(cand, str):
                    return f"claim {claim.label} request {spec.name}: {cand}"
                free = sum(1 for d in cand if st.fits(d, spec) is not None)
                label = f"claim {claim.label} request {spec.name}"
                if not cand:
                    notes.append(f"{label}: no device of class {spec.class_name!r} matches "
                                 f"({len(inventory.devices)} devices on node {inventory.node}, 0 match the selectors)")
                elif spec.mode == "All" and free < len(cand):
                    notes.append(f"{label}: allocationMode All needs all {len(cand)} matching devices, "
                                 f"{len(cand) - free} are unavailable")
                elif spec.mode == "ExactCount" and free < spec.count:
                    notes.append(f"{label}: needs {spec.count} device(s), {free} of {len(cand)} matching devices "
                                 f"available on node {inventory.node} (others in use, tainted, or short of capacity/counters)")
                else:
                    notes = []
                    break
            if notes:
                return "; ".join(notes)
    constrained = [f"{'match' if not c.distinct else 'distinct'}Attribute {c.attribute} in claim {cl.label}"
                   for cl in prep.claims for c in cl.constraints]
    if constrained:
        return f"no combination of available devices on node {inventory.node} satisfies " + ", ".join(constrained)
    names = ", ".join(c.label for c in prep.claims)
    return f"the requests of claims {names} together need more than node {inventory.node} has free"


def quick_reject(claims: PreparedClaims | Sequence[Mapping[str, Any]], inventory: NodeInventory, usage: NodeUsage,
                 classes: Mapping[str, Mapping[str, Any]] | None = None) -> str | None:
    """A reason when the node obviously cannot fit, else None (then run `allocate`).

    Sound: a request whose every alternative lacks enough individually free devices cannot be
    served together with others either, so a rejected node is never feasible. CEL errors and
    claim problems are left to `allocate`, which reports them properly.
    """
    prep = _prepared(claims, classes)
    if isinstance(prep, AllocationFailure):
        return None
    st = _State(inventory, usage)
    for claim in prep.claims:
        for group in claim.groups:
            for spec in group.alternatives:
                cand = matching_devices(spec, inventory)
                if isinstance(cand, str):
                    return None
                need = len(cand) if spec.mode == "All" else spec.count
                if spec.mode == "All" and not cand:
                    continue
                free = 0
                for d in cand:
                    if st.fits(d, spec) is not None:
                        free += 1
                        if free >= need:
                            break
                if free >= need:
                    break
            else:
                return f"claim {claim.label} request {group.name}: not enough free matching devices on node {inventory.node}"
    return None
