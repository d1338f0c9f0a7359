"""The scheduler's snapshot of nodes and devices: what is in use where, in equivalence groups.

Pure: the controller's view (driver/controller/view.py), the trace replay and `gpu-dra schedule`
feed it; the cycle (cycle.py) reads it; `commit` / `release` record what was written or freed.

Why it is fast at 1,000+ nodes: nodes are grouped into *equivalence groups* — same capacity,
taints and devices (the static class) and the same free CPU, memory, pod slots and per-device
usage (the state). Every node of a group gives the same answer for the same pod, so a pod is
scored once per group, and the score is cached per (group state, pod shape) until the group's
state changes. Only the node a pod lands on changes group, so after the first pods a schedule
call is mostly cache lookups. The real allocator (`allocate`, CEL, constraints, capacity) then
runs on the best node only; if it disagrees with the scorer's compact view (constraints the
scorer does not model), the next best group is tried.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Mapping

from driver import log
from driver.allocator.inventory import NodeInventory
from driver.allocator.usage import NodeUsage, Pick, UsageError
from driver.scheduler.packing import adapter, physical
from driver.scheduler.packing.scoring import Evaluation, NodeClass, PackingConfig, Scorer, Shape
from driver.scheduler.plugins import noderesources as nodefit
from driver.scheduler.plugins.tainttoleration import TaintIndex, node_taints
from driver.scheduler.sharedpool import SharedPools
from driver.scheduler.snapshot import PodIndex, TopologyIndex
from driver.scheduler.volumes import VolumeIndex

logger = log.get(__name__)



@dataclass(slots=True)
class NodeState:
    """One node as the scheduler sees it: static facts plus what is in use."""

    name: str
    labels: dict[str, str]
    allocatable: nodefit.Resources
    taints: tuple[tuple[str, str, str], ...]
    unschedulable: bool
    inventory: NodeInventory
    usage: NodeUsage
    klass: NodeClass
    used_cpu: int = 0
    used_memory: int = 0
    used_pods: int = 0
    free: tuple[int, ...] = ()  # free milli per inventory device (0 where counters no longer fit)
    group: Any = None
    counters: tuple = ()  # counters in use per counter set (physical.Layout order); () without
    obj: Mapping[str, Any] = field(default_factory=dict)  # the Node dict (taints of every effect, allocatable)

    def state(self) -> tuple:
        """The scorer's compact view: free cpu, memory, milli per device (+ counters in use)."""
        base = (self.allocatable.cpu - self.used_cpu, self.allocatable.memory - self.used_memory, self.free)
        return base + (self.counters,) if self.counters else base


@dataclass(slots=True)
class Group:
    """Nodes that are interchangeable for every pod right now (same class and same state)."""

    key: Any
    klass: NodeClass
    state: tuple  # NodeState.state(): cpu, memory, free per device (+ counters in use)
    pods_free: int
    taints: tuple[tuple[str, str, str], ...]
    unschedulable: bool
    nodes: dict[str, NodeState] = field(default_factory=dict)
    seq: int = 0  # creation order: the tie-break between equally scored groups
    alive: bool = True


@dataclass(slots=True)
class _Ranking:
    """Groups ranked for one (strategy, pod shape, workload epoch): a heap with lazy deletion.

    Groups never change once created (a node whose state changes moves to another group), so an
    evaluation stays valid while its group is alive; new groups are taken from the state's creation
    log when the shape is next scheduled. A pod therefore costs O(new groups + log groups), not
    O(groups).
    """

    heap: list[tuple[tuple, int, Group, Evaluation]]
    seen: int  # position in ClusterState._log up to which groups have been considered


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a pod goes: node, `status.allocation` per newly allocated claim (by claim name), score."""

    pod: str
    node: str
    allocations: dict[str, dict]
    score: tuple[float, ...]
    strategy: str
    requests: nodefit.Resources
    picks: tuple[Pick, ...] = ()
    extended: Any = None  # extendedresources.ExtendedRequests: the pod's DRA extended-resource claim to create



class ClusterState:
    """Every node, its usage, and the equivalence groups that make scoring cheap.

    `classes` are DeviceClass dicts by name. Node objects and ResourceSlices are given once
    (`add_node`); allocations change state only through `commit` / `release` / `add_allocated`
    (and `commit_shared` / `release_shared` for allocations tied to no node).

    Devices of allNodes / nodeSelector pools appear in the inventory of every node they are
    available on, but their use is global (`shared`, see sharedpool.py): committing one for a pod
    on node A marks it used on every node that sees it and regroups those nodes. Placements of
    node-local devices only (every trace replay) take the per-node fast path.
    """

    def __init__(self, classes: Mapping[str, Mapping[str, Any]], config: PackingConfig | None = None) -> None:
        self.classes = dict(classes)
        self.config = config or PackingConfig()
        self.scorer = Scorer(self.config)
        self.nodes: dict[str, NodeState] = {}
        self.groups: dict[Any, Group] = {}
        self._classes: dict[Any, NodeClass] = {}
        self._log: list[Group] = []  # groups in creation order (consumed by the rankings)
        self._log_start = 0  # absolute position of _log[0]
        self._seq = 0
        self._rankings: dict[tuple, _Ranking] = {}
        self._epoch = 0
        self.shared = SharedPools()
        self.pods = PodIndex()  # pods placed on nodes, for the inter-pod constraints (snapshot.py)
        self.topology = TopologyIndex()  # nodes by label, for topology domains
        self.volumes = VolumeIndex()  # PVCs, PVs, StorageClasses (VolumeBinding)
        self.taint_index = TaintIndex()  # nodes with PreferNoSchedule taints (TaintToleration's score)

    # -- building -------------------------------------------------------------------------------

    def add_node(self, node: Mapping[str, Any], inventory: NodeInventory | None = None) -> NodeState:
        """Add a node from its Node dict and the inventory of its published devices.

        Adding a node that exists replaces it with nothing in use: the caller re-commits what runs
        there (the controller's view does, after a Node or slice change). Shared-pool devices are
        the exception: they start as used as they are globally (their use is not the node's).
        """
        name = (node.get("metadata") or {}).get("name")
        if not isinstance(name, str) or not name:
            raise nodefit.PodSpecError("node metadata.name: expected a non-empty name")
        if name in self.nodes:
            self.remove_node(name)
        inventory = inventory or NodeInventory(name)
        alloc = nodefit.node_allocatable(node)
        taints = node_taints(node)
        unschedulable = bool((node.get("spec") or {}).get("unschedulable"))
        # PreferNoSchedule taints too: then every node of a group scores alike under TaintToleration
        # and the cycle can score one node per group (see cycle.GROUP_INVARIANT_SCORES).
        prefer = tuple(sorted((str(t.get("key", "")), str(t.get("value", "") or ""))
                              for t in ((node.get("spec") or {}).get("taints")) or []
                              if isinstance(t, Mapping) and t.get("effect") == "PreferNoSchedule"))
        static_key = (alloc, taints, unschedulable, prefer, adapter.inventory_signature(inventory))
        klass = self._classes.get(static_key)
        if klass is None:
            totals = physical.device_totals(inventory)
            klass = NodeClass(len(self._classes), alloc.cpu, alloc.memory, totals,
                              admits=adapter.admission(inventory, self.classes),
                              layout=physical.layout_of(inventory, totals))
            self._classes[static_key] = klass
        state = NodeState(name, dict((node.get("metadata") or {}).get("labels") or {}), alloc, taints, unschedulable,
                          inventory, NodeUsage(), klass, obj=node)
        self.topology.set_node(name, state.labels)
        self.taint_index.set_node(name, node)
        self.shared.attach(name, inventory, state.usage)
        state.free, state.counters = physical.node_view(inventory, state.usage, klass.layout)
        self.nodes[name] = state
        self._regroup(state)
        return state

    def remove_node(self, name: str) -> None:
        state = self.nodes.pop(name, None)
        if state is not None:
            self.topology.set_node(name, None)
            self.taint_index.set_node(name, None)
            self.shared.detach(name, state.inventory)
            self._ungroup(state)

    def _ungroup(self, node: NodeState) -> None:
        group = self.groups.get(node.group)
        if group is not None:
            group.nodes.pop(node.name, None)
            if not group.nodes:
                group.alive = False
                del self.groups[node.group]
        node.group = None

    def _regroup(self, node: NodeState) -> None:
        self._ungroup(node)
        state = node.state()
        key = (node.klass.key, state, node.allocatable.pods - node.used_pods, adapter.usage_signature(node.inventory, node.usage))
        group = self.groups.get(key)
        if group is None:
            self._seq += 1
            group = self.groups[key] = Group(key, node.klass, state, node.allocatable.pods - node.used_pods,
                                             node.taints, node.unschedulable, seq=self._seq)
            self._log.append(group)
        group.nodes[node.name] = node
        node.group = key

    # -- changes --------------------------------------------------------------------------------

    def _apply(self, node: NodeState, requests: nodefit.Resources, picks: tuple[Pick, ...], sign: int) -> None:
        for p in picks:
            if p.device.shared_pool:
                self._apply_shared(node, requests, picks, sign)
                return
        if sign > 0:
            node.usage.add(picks)
        else:
            node.usage.remove(picks)
        node.used_cpu += sign * requests.cpu
        node.used_memory += sign * requests.memory
        node.used_pods += sign * requests.pods
        self._refresh(node, picks)

    def _refresh(self, node: NodeState, picks: Any) -> None:
        free = list(node.free)
        node.counters = physical.refresh(node.inventory, node.usage, node.klass.layout, free, node.counters,
                                         [p.device for p in picks])
        node.free = tuple(free)
        self._regroup(node)

    def _apply_shared(self, node: NodeState | None, requests: nodefit.Resources, picks: tuple[Pick, ...],
                      sign: int) -> None:
        """`_apply` for placements with shared-pool devices: record those globally first (that is
        where a conflict shows), then the node's own part, then mirror into every node that sees
        them. All or nothing: a conflict raises UsageError with nothing changed."""
        shared = [p for p in picks if p.device.shared_pool]
        local = [p for p in picks if not p.device.shared_pool]
        if node is None and local:
            raise UsageError(f"device {'/'.join(local[0].device.key)} is node-local: the placement needs a node")
        self.shared.record(shared, sign)
        if node is not None:
            try:
                if sign > 0:
                    node.usage.add(local)
                else:
                    node.usage.remove(local)
            except UsageError:
                self.shared.record(shared, -sign)
                raise
            node.used_cpu += sign * requests.cpu
            node.used_memory += sign * requests.memory
            node.used_pods += sign * requests.pods
        touched: dict[str, list[Pick]] = {node.name: list(local)} if node is not None else {}
        for name, seen in self.shared.by_node(shared).items():
            other = self.nodes[name]
            if sign > 0:
                other.usage.add(seen)
            else:
                other.usage.remove(seen)
            touched.setdefault(name, []).extend(seen)
        for name, changed in touched.items():
            self._refresh(self.nodes[name], changed)

    def commit_shared(self, picks: tuple[Pick, ...]) -> None:
        """Record shared-pool picks of an allocation tied to no node (nor any pod's cpu/memory)."""
        self._apply_shared(None, nodefit.Resources(0, 0, 0), picks, +1)

    def release_shared(self, picks: tuple[Pick, ...]) -> None:
        """Undo `commit_shared`."""
        self._apply_shared(None, nodefit.Resources(0, 0, 0), picks, -1)

    def commit(self, placement: Placement) -> None:
        """Record a placement (its allocation was written and the pod bound)."""
        self._apply(self.nodes[placement.node], placement.requests, placement.picks, +1)

    def release(self, placement: Placement) -> None:
        """Undo `commit` (the pod finished, or writing the allocation failed)."""
        self._apply(self.nodes[placement.node], placement.requests, placement.picks, -1)

    def add_allocated(self, node: str, pod: Mapping[str, Any], allocations: list[Mapping[str, Any]]) -> Placement:
        """Record a pod that is already running with already-allocated claims (rebuild after restart)."""
        state = self.nodes[node]
        picks: list[Pick] = []
        for a in allocations:
            picks.extend(adapter.picks_of(state.inventory, a))
        placement = Placement((pod.get("metadata") or {}).get("name", ""), node, {}, (), "",
                              nodefit.pod_requests(pod), tuple(picks))
        self.commit(placement)
        return placement

    def ranking(self, strategy: str, shape: Shape, ck: tuple) -> _Ranking:
        """The up-to-date ranking of every group that can take `shape` (see _Ranking)."""
        if self.scorer.epoch != self._epoch:  # the learned workload moved on: FGD rankings are stale
            self._epoch = self.scorer.epoch
            for k in [k for k in self._rankings if k[2] and k[2] != self._epoch]:
                del self._rankings[k]
        r = self._rankings.get(ck)
        end = self._log_start + len(self._log)
        if r is None:
            if len(self._rankings) > 1024:  # shapes seen once long ago: rebuilt if they come back
                self._rankings.clear()
            r = self._rankings[ck] = _Ranking([], end)
            fresh: Any = self.groups.values()
        else:
            fresh = self._log[r.seen - self._log_start:] if r.seen < end else ()
            r.seen = end
        evaluate = self.scorer.evaluate
        heap = r.heap
        for group in fresh:
            if not group.alive:
                continue
            ev = evaluate(strategy, group.klass, group.state, shape) if group.pods_free >= 1 else None
            if ev is not None:
                heapq.heappush(heap, (ev.cost, group.seq, group, ev))
        if len(heap) > 2 * len(self.groups) + 64:
            r.heap = [e for e in heap if e[2].alive]
            heapq.heapify(r.heap)
        self._trim_log()
        return r

    def _trim_log(self) -> None:
        if len(self._log) < 4 * len(self.groups) + 4096:
            return
        low = min((r.seen for r in self._rankings.values()), default=self._log_start + len(self._log))
        cut = low - self._log_start
        if cut < len(self._log) // 2:  # a ranking that lags far behind: rebuild it when next needed
            for k in [k for k, r in self._rankings.items() if r.seen - self._log_start < len(self._log) // 2]:
                del self._rankings[k]
            low = min((r.seen for r in self._rankings.values()), default=self._log_start + len(self._log))
            cut = low - self._log_start
        del self._log[:cut]
        self._log_start += cut

    def used_gpu_milli(self) -> int:
        """Milli-GPU in use: of physical GPUs where devices share one (see physical.py)."""
        return sum(physical.used_milli(n.klass, n.state()) for n in self.nodes.values())

    def total_gpu_milli(self) -> int:
        return sum(physical.total_milli(n.klass) for n in self.nodes.values())
