"""The scheduling cycle: filters, scores, the packing choice and the allocator on the chosen node.

Pure: data in, decision out. `schedule` reads a `ClusterState` (state.py) and returns a
`Placement` or an `Unschedulable`; the caller commits what it wrote.

The order is kube-scheduler's: the plugins' prefilters run once per pod (plugins/registry.py);
then node groups are taken best packing cost first (state.py: nodes with equal state are scored
once), cordons and taints are checked per group, every per-node filter per node, and the DRA
allocator on the first node that passes them all. When the pod has soft preferences (preferred
affinity, ScheduleAnyway spread, PreferNoSchedule taints in the cluster), every feasible node is
scored instead: the packing rank (100 best .. 0 worst) times the Packing weight plus each
plugin's normalized score times its weight, and the allocator runs from the best total down.
"""

from __future__ import annotations

import heapq
from collections import Counter
from typing import Any, Callable, Iterable, Mapping

from driver import log
from driver.allocator.allocate import AllocationFailure, AllocationResult, allocate, allocated_on_node
from driver.scheduler import labels as sel
from driver.scheduler.framework import Checks, CycleContext, Rejection
from driver.scheduler.packing import adapter
from driver.scheduler.packing.scoring import ConfigError, Evaluation, PackingConfig, Scorer, Shape, strategy_for
from driver.scheduler.plugins import noderesources as nodefit
from driver.scheduler.plugins import extendedresources as ext
from driver.scheduler.plugins import registry
from driver.scheduler.plugins.tainttoleration import untolerated
from driver.scheduler.podinfo import pod_info
from driver.scheduler.state import ClusterState, Group, NodeState, Placement

logger = log.get(__name__)

NodeReasons = dict[str, Rejection]


class Unschedulable:
    """Why no node could take the pod: kube-scheduler's summary ("0/N nodes are available: ...").

    The per-node explanation is computed on first access only: a busy scheduler (or a trace
    replay) that just needs to know "not now" does not pay for it. `rejections` maps each node
    to the first filter that refused it (preemption reads `unresolvable` from it); `rejection` is
    set instead when no node was even considered (a gated pod, an unreadable spec).
    """

    def __init__(self, pod: str, total: int, rejection: Rejection | None = None,
                 explain: Callable[[], NodeReasons] | None = None) -> None:
        self.pod = pod
        self.total = total
        self.rejection = rejection
        self._explain = explain
        self._rejections: NodeReasons | None = None if explain else {}

    @property
    def rejections(self) -> NodeReasons:
        if self._rejections is None:
            self._rejections = self._explain() if self._explain else {}
        return self._rejections

    @property
    def counts(self) -> dict[str, int]:
        """Nodes per reason."""
        if self.rejection is not None:
            return {self.rejection.reason: self.total}
        return dict(Counter(r.reason for r in self.rejections.values()))

    @property
    def reason(self) -> str:
        if self.rejection is not None and self.rejection.plugin in ("PreFilter", "SchedulingGates", "VolumeBinding"):
            return self.rejection.reason  # about the pod, not the nodes
        return summary(self.total, self.counts)

    def __repr__(self) -> str:
        return f"Unschedulable({self.pod!r}, {self.reason!r})"


def summary(total: int, counts: Mapping[str, int]) -> str:
    """kube-scheduler's FitError text: "0/N nodes are available: <n reason>, ... ." (sorted as upstream sorts
    the "<n> <reason>" strings)."""
    parts = ", ".join(sorted(f"{n} {reason}" for reason, n in counts.items()))
    return f"0/{total} nodes are available: {parts}." if parts else f"0/{total} nodes are available."


def _first_rejection(filters: Iterable[Checks], node: NodeState) -> Rejection | None:
    for c in filters:
        r = c.filter(node)  # type: ignore[misc]
        if r is not None:
            return r
    return None


def _resource_reason(group: Group, requests: nodefit.Resources) -> str | None:
    """cpu, memory and pod slots against the group's free amounts, in NodeResourcesFit's words
    (ephemeral-storage and extended resources are that plugin's per-node filter)."""
    free = nodefit.Resources(group.state[0], group.state[1], group.pods_free)
    reasons = nodefit.insufficient(nodefit.Resources(requests.cpu, requests.memory, requests.pods), free)
    return ", ".join(reasons) or None


def _device_reason(group: Group, shape: Shape) -> str:
    for r in shape.requests:
        mask = group.klass.mask(r.mask)
        if not any(mask):
            return "no device matches the claim's class and selectors"
        if sum(1 for f, ok in zip(group.state[2], mask) if ok and f >= r.share) < r.count:
            return f"fewer than {r.count} matching device(s) with {r.share}m free"
    return "claims cannot be allocated"


def _allocate_on(node: NodeState, prepared: Any, shape: Shape, ev: Evaluation, scorer: Scorer, strategy: str,
                 now: str | None) -> AllocationResult | AllocationFailure:
    chooser = adapter.PlanChooser(scorer, strategy, node.klass, node.state(), adapter.plans_by_request(prepared, ev.plan))
    return allocate(prepared, node.inventory, node.usage, {}, chooser=chooser, now=now)


def _extended(pod: Mapping[str, Any], classes: Mapping[str, Mapping[str, Any]], state: ClusterState
              ) -> tuple[ext.ExtendedRequests | None, Rejection | None]:
    """The pod's DRA-backed extended resources (KEP-5004): the requests of the special claim, or
    the rejection for a resource nobody serves. A resource a DeviceClass maps is served by DRA on
    every node (see README: nodes that list it in allocatable are not mixed in)."""
    parsed = ext.pod_extended(pod)
    if not parsed:
        return None, None
    by_resource = ext.mapping(classes)
    missing = ext.unknown(parsed, by_resource, (ext.allocatable_names(n.obj) for n in state.nodes.values()))
    if missing:
        return None, Rejection("NodeResourcesFit", ", ".join(f"Insufficient {m}" for m in missing), unresolvable=True)
    requests = ext.dra_requests(parsed, by_resource, frozenset())
    return (requests if requests else None), None


def _nominated_checks(nominated: Mapping[str, int], priority: int) -> Checks:
    why = Rejection("DefaultPreemption", "node(s) were reserved for a nominated pod of higher or equal priority")

    def free(node: NodeState) -> Rejection | None:
        return why if nominated.get(node.name, priority - 1) >= priority else None
    return Checks("DefaultPreemption", filter=free)


def _pinned_checks(allocated: list[Mapping[str, Any]]) -> Checks:
    """A pod whose claim is already allocated (shared with another pod) goes where that allocation is."""
    why = Rejection("DynamicResources", "node(s) not where the pod's allocated claim is", unresolvable=True)

    def pinned(node: NodeState) -> Rejection | None:
        return None if all(allocated_on_node(c, node.name, node.labels) for c in allocated) else why
    return Checks("DynamicResources", filter=pinned)


def schedule(pod: Mapping[str, Any], claims: list[Mapping[str, Any]], state: ClusterState,
             classes: Mapping[str, Mapping[str, Any]] | None = None, config: PackingConfig | None = None,
             now: str | None = None, observe: bool = True,
             allocated: list[Mapping[str, Any]] = (), nodes: Iterable[str] | None = None,
             nominated: Mapping[str, int] | None = None) -> Placement | Unschedulable:
    """Choose the node and devices for `pod` whose not yet allocated claims are `claims`.

    `allocated` are the pod's claims that already carry an allocation (shared with another pod):
    they are not allocated again, and the pod can only go where their allocations point. `nodes`
    limits the search to these nodes (preemption tries one node at a time). `nominated` maps nodes
    to the highest priority of the other pods nominated there (waiting for their victims to leave):
    a pod of no higher priority does not take such a node, so what preemption freed is not lost.
    Changes nothing in `state` but the learned workload (`observe`: the pod counts as arrived);
    call `state.commit(placement)` once its allocations are written. `classes` (DeviceClass dicts
    by name) and `config` default to the state's own.
    """
    name = (pod.get("metadata") or {}).get("name", "")
    config = config or state.config
    total = len(state.nodes)
    classes = state.classes if classes is None else classes
    try:
        strategy = strategy_for(pod, config)
        info = pod_info(pod)
        requests = info.requests
        extended, why = _extended(pod, classes, state) if info.requests.scalars else (None, None)
        if why is not None:
            return Unschedulable(name, total, None, lambda: {n: why for n in state.nodes})
        if extended is not None:
            claims = list(claims) + [ext.claim_for(pod, extended, uid=f"{info.uid}-extended-resources")]
        prepared = adapter.prepare_claims(list(claims), classes)
    except (ConfigError, nodefit.PodSpecError, adapter.ClaimShapeError, sel.SelectorError, ext.DeviceClassError) as exc:
        return Unschedulable(name, total, Rejection("PreFilter", str(exc), unresolvable=True))
    ctx = CycleContext(pod, info, state, config)
    if extended is not None:
        ctx.cache["dra_extended"] = frozenset(extended.dra)
    plan = registry.prefilter(ctx)
    if plan.rejection is not None:
        return Unschedulable(name, total, plan.rejection)
    filters = list(plan.filters)
    if nominated:
        filters.append(_nominated_checks(nominated, info.priority))
    if allocated:
        filters.append(_pinned_checks(list(allocated)))
    only = set(nodes) if nodes is not None else None
    shape = adapter.pod_shape(requests.cpu, requests.memory, prepared)
    scorer = state.scorer
    if observe:
        scorer.observe(shape)

    ranking = state.ranking(strategy, shape, scorer.cache_key(strategy, shape))
    heap = ranking.heap
    set_aside: list[tuple] = []  # valid entries this pod cannot use, or all of them when scoring
    failures: dict[Any, AllocationFailure] = {}
    placement: Placement | None = None
    permanent: str | None = None
    taint_ok: dict[tuple, bool] = {}
    candidates: list[tuple[tuple, NodeState]] = []  # (heap entry, node) when scoring
    scoring = bool(plan.scores)
    # Scores that every node of a group shares, and no per-node filter: one node speaks for its group.
    per_group = scoring and not filters and all(c.plugin in GROUP_INVARIANT_SCORES for c in plan.scores)

    identity = adapter.names_identity(prepared)
    tried: set[str] = set()

    def try_node(entry: tuple, node: NodeState) -> bool:
        nonlocal placement, permanent
        cost, _, group, ev = entry
        tried.add(node.name)
        result = _allocate_on(node, prepared, shape, ev, scorer, strategy, now)
        if not result:
            failures[group.key] = result
            if result.permanent:
                permanent = result.reason
            return False
        allocations = {c.claim.name: c.allocation for c in result.claims}
        placement = Placement(name, node.name, allocations, cost, strategy, requests, tuple(result.picks), extended)
        return True

    while heap and placement is None and permanent is None:
        entry = heap[0]
        cost, _, group, ev = entry
        if not group.alive:
            heapq.heappop(heap)
            continue
        set_aside.append(heapq.heappop(heap))
        if group.taints or group.unschedulable:
            tk = (group.taints, group.unschedulable)
            ok = taint_ok.get(tk)
            if ok is None:
                ok = taint_ok[tk] = untolerated(pod, group.taints, group.unschedulable) is None
            if not ok:
                continue
        for node in list(group.nodes.values()):
            if only is not None and node.name not in only:
                continue
            if filters and _first_rejection(filters, node) is not None:
                continue
            if scoring:
                candidates.append((entry, node))
                if per_group:
                    break
                continue
            try_node(entry, node)
            break  # placed, or every node of the group would give the same allocator answer
    if scoring and candidates:
        tried_groups: set[Any] = set()
        for entry, node in _by_total(candidates, plan.scores, config):
            group = entry[2]
            if group.key in failures and group.key in tried_groups:
                continue  # the allocator already said no for this group state
            tried_groups.add(group.key)
            if try_node(entry, node) or permanent is not None:
                break
    for entry in set_aside:
        heapq.heappush(heap, entry)
    if placement is None and permanent is None and identity:
        placement, permanent = _node_by_node(ctx, state, filters, prepared, requests, strategy, now, only, tried,
                                             extended)
    if placement is not None:
        return placement
    if permanent is not None:
        return Unschedulable(name, total, Rejection("DynamicResources", permanent, unresolvable=True))

    def explain() -> NodeReasons:
        return _rejections(ctx, state, filters, prepared, requests, shape, failures, now, only, identity)

    return Unschedulable(name, total, None, explain)


def _node_by_node(ctx: CycleContext, state: ClusterState, filters: list[Checks], prepared: Any,
                  requests: nodefit.Resources, strategy: str, now: str | None, only: set[str] | None,
                  tried: set[str], extended: Any = None) -> tuple[Placement | None, str | None]:
    """The allocator on every node the groups' scorer could not speak for (claims that name device
    identities, see adapter.names_identity), in name order, after the filters."""
    for name in sorted(state.nodes):
        node = state.nodes[name]
        if name in tried or (only is not None and name not in only):
            continue
        if untolerated(ctx.pod, node.taints, node.unschedulable) is not None:
            continue
        group = state.groups.get(node.group)
        if group is None or _resource_reason(group, requests) is not None:
            continue
        if filters and _first_rejection(filters, node) is not None:
            continue
        result = allocate(prepared, node.inventory, node.usage, {}, now=now)
        if result:
            allocations = {c.claim.name: c.allocation for c in result.claims}
            return Placement(ctx.info.name, name, allocations, (), strategy, requests, tuple(result.picks),
                             extended), None
        if result.permanent:
            return None, result.reason
    return None, None


def _by_total(candidates: list[tuple[tuple, NodeState]], scores: list[Checks], config: PackingConfig
              ) -> list[tuple[tuple, NodeState]]:
    """Candidates best first: packing rank and every plugin's normalized score, weighted."""
    costs = sorted({entry[0] for entry, _ in candidates})
    rank = {c: i for i, c in enumerate(costs)}
    span = max(1, len(costs) - 1)
    w_pack = config.weight("Packing")
    total = {n.name: w_pack * 100.0 * (span - rank[e[0]]) / span if len(costs) > 1 else w_pack * 100.0
             for e, n in candidates}
    for c in scores:
        raw = {n.name: float(c.score(n)) for _, n in candidates}  # type: ignore[misc]
        norm = c.normalize(raw) if c.normalize else raw
        w = config.weight(c.plugin)
        for n, v in norm.items():
            total[n] += w * v
    return sorted(candidates, key=lambda en: (-total[en[1].name], en[0][0], en[0][1], en[1].name))


# Plugins whose score is the same for every node of an equivalence group (the group key holds
# the nodes' taints of every effect).
GROUP_INVARIANT_SCORES = frozenset({"TaintToleration"})

# kube-scheduler's filter order: these run before NodeResourcesFit, the others after it
_BEFORE_RESOURCES = frozenset({"NodeName", "NodeAffinity", "NodePorts"})


def _rejections(ctx: CycleContext, state: ClusterState, filters: list[Checks], prepared: Any,
                requests: nodefit.Resources, shape: Shape, failures: dict[Any, AllocationFailure], now: str | None,
                only: set[str] | None, identity: bool = False) -> NodeReasons:
    """Each node's first refusal in kube-scheduler's filter order: cordon and taints, the plugins'
    filters, resources, then devices (from the real allocator, run on one node per group)."""
    out: NodeReasons = {}
    pod = ctx.pod
    for group in state.groups.values():
        nodes = [n for n in group.nodes.values() if only is None or n.name in only]
        if not nodes:
            continue
        why = untolerated(pod, group.taints, group.unschedulable)
        named = (pod.get("spec") or {}).get("nodeName")
        if why and named:  # NodeName runs before the cordon and taint filters
            for n in nodes:
                if n.name != named:
                    out[n.name] = Rejection("NodeName", "node(s) didn't match the requested node name", True)
            nodes = [n for n in nodes if n.name == named]
        if why:
            cordoned = group.unschedulable and untolerated(pod, (), True) is not None
            plugin = "NodeUnschedulable" if cordoned else "TaintToleration"
            for n in nodes:
                out[n.name] = Rejection(plugin, why, unresolvable=True)
            continue
        res = _resource_reason(group, requests)
        device: Rejection | None = None
        before = [c for c in filters if c.plugin in _BEFORE_RESOURCES]
        after = [c for c in filters if c.plugin not in _BEFORE_RESOURCES]
        for n in nodes:
            r = _first_rejection(before, n) if before else None
            if r is None and res:
                r = Rejection("NodeResourcesFit", res)
            if r is None and after:
                r = _first_rejection(after, n)
            if r is None:
                if device is None or identity:  # identities differ per node: ask the allocator for each
                    failure = failures.get(group.key) if not identity else None
                    if failure is None:
                        failure = allocate(prepared, n.inventory, n.usage, {}, now=now)
                    reason = failure.reason if not failure else _device_reason(group, shape)
                    device = Rejection("DynamicResources", reason)
                r = device
            out[n.name] = r
    return out
