"""Allocate all of one pod's claims on one node, or none: upstream's structured-allocation search.

The search itself (depth-first with backtracking, first complete solution wins, FACTS §6) is in
search.py; this module prepares claims, builds the API results and explains failures. Device
order comes from a `DeviceChooser` (default: inventory order, which is upstream first-fit);
packing strategies plug in there, the search itself stays the same.

Hot-path choices, because a scheduler calls this for every (pod, node) pair:
- claims are parsed once per pod (`prepare`), devices once per inventory;
- devices matching a selector set are cached on the inventory (CEL at most once per device);
- the attempt's own picks live in small overlay dicts, never in copies of the node usage;
- status dicts are only built when the caller asks for them (the winning node).
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Mapping, Sequence

from driver.allocator.inventory import UNIT, DeviceKey, DeviceView, NodeInventory, node_selector_matches
from driver.allocator.request import ClaimError, ClaimSpec, PreparedClaims, RequestSpec, prepare
from driver.allocator.search import AttemptState, DeviceChooser, SearchAbort, matching_devices, search
from driver.allocator.usage import NodeUsage, Pick
from driver.dra.quantity import format_quantity
_SHARE_NS = uuid.UUID("6f1d3a52-6a43-4b8e-9a8e-3c3f1f0b9d11")


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


# ----------------------------------------------------------------------------- results


def uuid5_text(name: str) -> str:
    """`str(uuid.uuid5(namespace, name))` for our namespace, without building UUID objects
    (this runs for every pick of a shared device; uuid5 itself costs a third of such an attempt)."""
    h = bytearray(hashlib.sha1(_SHARE_NS.bytes + name.encode()).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50
    h[8] = (h[8] & 0x3F) | 0x80
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def _share_id(claim: ClaimSpec, request: str, d: DeviceView, taken: set[str]) -> str:
    """Deterministic (same inputs, same ID) and unique among the device's live allocations."""
    n = 0
    while True:
        sid = uuid5_text(f"{claim.uid or claim.label}|{request}|{'/'.join(d.key)}|{n}")
        if sid not in taken:
            taken.add(sid)
            return sid
        n += 1


def _finish(claims: list[ClaimSpec], picked: list[list[tuple]], st: AttemptState, node: str,
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
            plist.append(Pick(d, spec.name, spec.admin, sid,
                              {qn: Fraction(u, UNIT) for qn, u in consumed} if d.allow_multiple else None))
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
        if spec.admin_set:
            entry["adminAccess"] = spec.admin
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
            body = {k: copy.deepcopy(v) for k, v in c.items() if k != "requests"}
            config.append({"source": "FromClass", "requests": [spec.name], **body})
    for c in ca.claim.configs:
        entry = {"source": "FromClaim"}
        if c.get("requests"):
            entry["requests"] = list(c["requests"])
        # Copies: the status must not alias the claim's or class's own dicts.
        entry.update({k: copy.deepcopy(v) for k, v in c.items() if k not in ("requests", "source")})
        config.append(entry)
    devices: dict[str, Any] = {"results": results}
    if config:
        devices["config"] = config
    status: dict[str, Any] = {"devices": devices}
    selector = allocation_node_selector(ca.node, [p.device for p in ca.picks])
    if selector is not None:
        status["nodeSelector"] = selector
    if ca.now:
        status["allocationTimestamp"] = ca.now
    return status


def allocation_node_selector(node: str, devices: Sequence[DeviceView]) -> dict[str, Any] | None:
    """`status.allocation.nodeSelector` for an allocation of `devices` made for `node`.

    Upstream's structured allocator (createNodeSelector) decides it so, and so do we:
    - any node-local device (slice `nodeName`) pins the allocation to that node by name; the
      selectors of network devices in it need no mention, the node was chosen to match them;
    - otherwise the selectors of the nodeSelector pools are ANDed (upstream allows one term per
      slice selector and merges the terms' requirements; with several terms the result is every
      combination of one term from each, which is the same intersection);
    - devices for all nodes alone: no nodeSelector at all (usable from every node).
    An allocation without devices is pinned to the node, as before.
    """
    if not devices or any(not d.shared_pool for d in devices):
        return node_name_selector(node)
    terms: list[dict[str, Any]] | None = None
    seen: set[int] = set()
    for d in devices:
        if d.node_selector is None or id(d.node_selector) in seen:
            continue
        seen.add(id(d.node_selector))
        own = [t for t in d.node_selector.get("nodeSelectorTerms") or [] if isinstance(t, Mapping)]
        terms = [copy.deepcopy(dict(t)) for t in own] if terms is None else [
            _and_terms(a, b) for a in terms for b in own]
    if terms is None:
        return None
    unique: list[dict[str, Any]] = []
    for t in terms:
        if t not in unique:
            unique.append(t)
    return {"nodeSelectorTerms": unique}


def _and_terms(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """One term requiring both: the union of their requirements, without repeats."""
    out: dict[str, Any] = {}
    for kind in ("matchExpressions", "matchFields"):
        reqs = [copy.deepcopy(r) for r in a.get(kind) or []]
        for r in b.get(kind) or []:
            if r not in reqs:
                reqs.append(copy.deepcopy(r))
        if reqs:
            out[kind] = reqs
    return out


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
    labels = dict(labels or {})
    labels.setdefault("kubernetes.io/hostname", node)
    return node_selector_matches(selector, node, labels)


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
    st = AttemptState(inventory, usage)
    try:
        picked = search(prep.claims, st, chooser)
    except SearchAbort as exc:
        return AllocationFailure(exc.reason, exc.permanent)
    if picked is None:
        return AllocationFailure(explain(prep, inventory, usage), False)
    return _finish(prep.claims, picked, st, inventory.node, now)


def explain(prep: PreparedClaims, inventory: NodeInventory, usage: NodeUsage) -> str:
    """A human reason for a failed attempt: the first request that cannot be served even on its
    own, else the constraints or the competition between requests."""
    st = AttemptState(inventory, usage)
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
                                 f"available on node {inventory.node} "
                                 "(others in use, tainted, or short of capacity/counters)")
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

    Sound, never rejecting a feasible node: (1) a request whose every alternative lacks enough
    individually free devices cannot be served at all; (2) requests that ask for the same kind
    of ordinary (exclusive) devices — same selectors, capacity and tolerations, one alternative —
    need that many distinct free devices between them. CEL errors and claim problems are left to
    `allocate`, which reports them properly.
    """
    prep = _prepared(claims, classes)
    if isinstance(prep, AllocationFailure):
        return None
    st = AttemptState(inventory, usage)
    # Requests for the same kind of exclusive devices, and how many devices they need together.
    together: dict[tuple, int] = {}
    for claim in prep.claims:
        for group in claim.groups:
            spec = group.alternatives[0]
            if len(group.alternatives) == 1 and spec.mode == "ExactCount" and not spec.admin:
                kind = (spec.key, spec.capacity_key, spec.tolerations)
                together[kind] = together.get(kind, 0) + spec.count
    checked: set[tuple] = set()
    for claim in prep.claims:
        for group in claim.groups:
            for spec in group.alternatives:
                cand = matching_devices(spec, inventory)
                if isinstance(cand, str):
                    return None
                if spec.mode == "All" and not cand:
                    continue
                kind = (spec.key, spec.capacity_key, spec.tolerations)
                need = len(cand) if spec.mode == "All" else spec.count
                pooled = len(group.alternatives) == 1 and spec.mode == "ExactCount" and not spec.admin
                if pooled and kind in checked:
                    break
                target = max(need, together.get(kind, 0)) if pooled else need
                free = 0
                for d in cand:
                    if d.allow_multiple:
                        target = need  # shared devices can serve several requests: no pooling
                    if st.fits(d, spec) is not None:
                        free += 1
                        if free >= target:
                            break
                if free < need:
                    continue
                if pooled:
                    if free < target:
                        return (f"requests for {spec.class_name!r} devices need {target} between them, "
                                f"{free} free on node {inventory.node}")
                    checked.add(kind)
                break
            else:
                return (f"claim {claim.label} request {group.name}: "
                        f"not enough free matching devices on node {inventory.node}")
    return None
