"""The scheduling cycle: filters, packing score, the allocator on the chosen node.

Pure: data in, decision out. `schedule` reads a `ClusterState` (state.py) and returns a
`Placement` or an `Unschedulable`; the caller commits what it wrote.
"""

from __future__ import annotations

import heapq
from typing import Any, Callable, Mapping

from driver import log
from driver.allocator.allocate import AllocationFailure, AllocationResult, allocate, allocated_on_node
from driver.scheduler.packing import adapter
from driver.scheduler.packing.scoring import ConfigError, Evaluation, PackingConfig, Scorer, Shape, strategy_for
from driver.scheduler.plugins import noderesources as nodefit
from driver.scheduler.state import ClusterState, Group, NodeState, Placement

logger = log.get(__name__)

class Unschedulable:
    """Why no node could take the pod: a kube-scheduler-style summary ("0/N nodes are available: ...").

    The per-node-group explanation is computed on first access only: a busy scheduler (or a trace
    replay) that just needs to know "not now" does not pay for it.
    """

    def __init__(self, pod: str, total: int, counts: dict[str, int] | None = None,
                 explain: Callable[[], dict[str, int]] | None = None) -> None:
        self.pod = pod
        self.total = total
        self._counts = counts
        self._explain = explain

    @property
    def counts(self) -> dict[str, int]:
        """Nodes per reason."""
        if self._counts is None:
            self._counts = self._explain() if self._explain else {}
        return self._counts

    @property
    def reason(self) -> str:
        return _summary(self.total, self.counts)

    def __repr__(self) -> str:
        return f"Unschedulable({self.pod!r}, {self.reason!r})"




def _fits_labels(selector: dict, affinity: Any, pinned_ok: Any, node: NodeState) -> bool:
    if not nodefit.labels_match(selector, affinity, node.name, node.labels):
        return False
    return pinned_ok is None or pinned_ok(node.name, node.labels)


def _summary(total: int, counts: dict[str, int]) -> str:
    parts = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"0/{total} nodes are available: {parts}" if parts else f"0/{total} nodes are available"


def _group_reason(group: Group, pod: Mapping[str, Any], requests: nodefit.Resources, shape: Shape) -> str:
    cpu, mem = group.state[0], group.state[1]
    why = nodefit.untolerated(pod, group.taints, group.unschedulable)
    if why:
        return why
    if requests.cpu > cpu:
        return "insufficient cpu"
    if requests.memory > mem:
        return "insufficient memory"
    if group.pods_free < requests.pods:
        return "too many pods"
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


def schedule(pod: Mapping[str, Any], claims: list[Mapping[str, Any]], state: ClusterState,
             classes: Mapping[str, Mapping[str, Any]] | None = None, config: PackingConfig | None = None,
             now: str | None = None, observe: bool = True,
             allocated: list[Mapping[str, Any]] = ()) -> Placement | Unschedulable:
    """Choose the node and devices for `pod` whose not yet allocated claims are `claims`.

    `allocated` are the pod's claims that already carry an allocation (shared with another pod):
    they are not allocated again, and the pod can only go where their allocations point.
    Changes nothing in `state` but the learned workload (`observe`: the pod counts as arrived);
    call `state.commit(placement)` once its allocations are written. `classes` (DeviceClass dicts
    by name) and `config` default to the state's own.
    """
    name = (pod.get("metadata") or {}).get("name", "")
    config = config or state.config
    try:
        strategy = strategy_for(pod, config)
        requests = nodefit.pod_requests(pod)
        prepared = adapter.prepare_claims(list(claims), state.classes if classes is None else classes)
    except (ConfigError, nodefit.PodSpecError, adapter.ClaimShapeError) as exc:
        return Unschedulable(name, len(state.nodes), {str(exc): len(state.nodes)})
    shape = adapter.pod_shape(requests.cpu, requests.memory, prepared)
    scorer = state.scorer
    if observe:
        scorer.observe(shape)
    selector, affinity = nodefit.label_requirements(pod)
    if allocated:  # pinned by a shared claim: fold it into the label requirements
        pinned = list(allocated)

        def pinned_ok(node_name: str, labels: Mapping[str, str]) -> bool:
            return all(allocated_on_node(c, node_name, labels) for c in pinned)
    else:
        pinned_ok = None  # type: ignore[assignment]
    has_labels = bool(selector) or affinity is not None or bool(allocated)

    ranking = state.ranking(strategy, shape, scorer.cache_key(strategy, shape))
    heap = ranking.heap
    set_aside: list[tuple] = []  # valid entries this pod cannot use (taints, labels, allocator says no)
    failures: dict[Any, str] = {}
    placement: Placement | None = None
    permanent: str | None = None
    taint_ok: dict[tuple, bool] = {}
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
                ok = taint_ok[tk] = nodefit.untolerated(pod, group.taints, group.unschedulable) is None
            if not ok:
                continue
        for node in list(group.nodes.values()):
            if has_labels and not _fits_labels(selector, affinity, pinned_ok, node):
                continue
            result = _allocate_on(node, prepared, shape, ev, scorer, strategy, now)
            if not result:
                failures[group.key] = result.reason
                if result.permanent:
                    permanent = result.reason
                break  # every node of the group would give the same answer
            allocations = {c.claim.name: c.allocation for c in result.claims}
            placement = Placement(name, node.name, allocations, cost, strategy, requests, tuple(result.picks))
            break
    for entry in set_aside:
        heapq.heappush(heap, entry)
    if placement is not None:
        return placement
    if permanent is not None:
        return Unschedulable(name, len(state.nodes), {permanent: len(state.nodes)})

    def explain() -> dict[str, int]:
        return _reasons(pod, state, prepared, requests, shape, selector, affinity, failures, now, pinned_ok)

    return Unschedulable(name, len(state.nodes), None, explain)


def _reasons(pod: Mapping[str, Any], state: ClusterState, prepared: Any, requests: nodefit.Resources, shape: Shape,
             selector: dict, affinity: Any, failures: dict[Any, str], now: str | None,
             pinned_ok: Callable[[str, Mapping[str, str]], bool] | None = None) -> dict[str, int]:
    """Nodes per reason; device reasons come from the real allocator, run on one node per group."""
    has_labels = bool(selector) or affinity is not None or pinned_ok is not None
    counts: dict[str, int] = {}
    for group in state.groups.values():
        nodes = list(group.nodes.values())
        if has_labels:
            misfits = sum(1 for n in nodes if not _fits_labels(selector, affinity, None, n))
            if misfits:
                key = "node(s) didn't match node selector/affinity"
                counts[key] = counts.get(key, 0) + misfits
            away = 0
            if pinned_ok is not None:
                away = sum(1 for n in nodes if _fits_labels(selector, affinity, None, n) and not pinned_ok(n.name, n.labels))
                if away:
                    key = "node(s) not where the pod's allocated claim is"
                    counts[key] = counts.get(key, 0) + away
            rest = len(nodes) - misfits - away
        else:
            rest = len(nodes)
        if not rest:
            continue
        reason = failures.get(group.key) or _group_reason(group, pod, requests, shape)
        if reason.startswith("no device") or reason.startswith("fewer than") or reason == "claims cannot be allocated":
            result = allocate(prepared, nodes[0].inventory, nodes[0].usage, {}, now=now)
            if not result:
                reason = result.reason
        counts[reason] = counts.get(reason, 0) + rest
    return counts
