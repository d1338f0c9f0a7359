"""kube-scheduler's PodTopologySpread: DoNotSchedule constraints filter, ScheduleAnyway ones score.

Why it is here: pods our scheduler places never pass kube-scheduler's filters, so a workload's
topologySpreadConstraints would be silently ignored unless we apply them with the same rules
(pkg/scheduler/framework/plugins/podtopologyspread: common.go, filtering.go, scoring.go).

Rules kept from upstream:

- A constraint counts the pods in the incoming pod's namespace that its labelSelector matches
  (null selector: none; `{}`: all), skipping terminating pods (deletionTimestamp set).
  matchLabelKeys add `key in (value)` of the pod's own labels, except to a null selector.
- Node inclusion: nodeAffinityPolicy (default Honor) counts only nodes that match the pod's
  nodeSelector and required node affinity; nodeTaintsPolicy (default Ignore; Honor leaves out
  nodes with a NoSchedule/NoExecute taint the pod does not tolerate).
- Filter: a domain (topology value) exists when an eligible node carries it — eligible means
  carrying every DoNotSchedule constraint's key and passing the constraint's inclusion policies.
  skew = count(node's domain) + (1 if the pod matches the selector) - global minimum, the global
  minimum being 0 while fewer than minDomains (default 1) domains exist. A node without the key is
  UnschedulableAndUnresolvable ("... (missing required label)"); skew > maxSkew is Unschedulable.
- Score: for each ScheduleAnyway constraint a node in domain v scores count(v) * log(size + 2) +
  maxSkew - 1, size being the number of domains among the scored (feasible) nodes, or their number
  for kubernetes.io/hostname, whose count is the node's own matching pods. Rounded sum per node;
  NormalizeScore gives 100 * (max + min - s) / max (fewer pods, higher score), 100 for all when
  max is 0, and 0 to nodes missing a key. Because the size depends on which nodes are feasible,
  `score` only reports the node's unweighted count and `normalize` computes upstream's scores from
  the names it is given: it must receive every scored node at once, as the cycle does.
- Defaults: a pod without constraints gets the cluster's (config.spread_defaulting "System":
  hostname maxSkew 3 and zone maxSkew 5, both ScheduleAnyway, nodes missing a key still scored;
  "List": config.spread_defaults). A pod with constraints of its own never gets defaults.

Approximation (documented): upstream gives default constraints the selector of the Services,
ReplicationControllers, ReplicaSets and StatefulSets that select the pod; the snapshot has none of
those, so we use the pod's controller ownerReference instead: the selector is the pod's own labels
(matchLabels) and a counted pod must also have the same controller owner uid. A pod without a
controller owner gets no defaults (upstream: no selecting workload, no defaults).

Cost: matching pods come from the snapshot's label index (`state.pods.select`), domains from
`state.topology.domains(key)`; a node's eligibility is computed once per pod. No walk over every
pod of every node; a pod with no constraints (and no defaults) costs nothing (`prefilter` → None).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from driver.scheduler import labels as sel
from driver.scheduler.framework import Checks, CycleContext, Rejection
from driver.scheduler.plugins.nodeaffinity import label_requirements, labels_match
from driver.scheduler.plugins.tainttoleration import untolerated
from driver.scheduler.podinfo import PodInfo

if TYPE_CHECKING:
    from driver.scheduler.state import ClusterState, NodeState

NAME = "PodTopologySpread"
HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
DO_NOT_SCHEDULE = "DoNotSchedule"
SCHEDULE_ANYWAY = "ScheduleAnyway"
HONOR, IGNORE = "Honor", "Ignore"
MAX_NODE_SCORE = 100

# kube-scheduler's ErrReason* texts (plugin.go).
REASON_CONSTRAINTS = "node(s) didn't match pod topology spread constraints"
REASON_MISSING_LABEL = REASON_CONSTRAINTS + " (missing required label)"
SKEW_REJECTION = Rejection(NAME, REASON_CONSTRAINTS)
LABEL_REJECTION = Rejection(NAME, REASON_MISSING_LABEL, unresolvable=True)

# plugin.go systemDefaultConstraints (defaultingType System).
SYSTEM_DEFAULTS: tuple[Mapping[str, Any], ...] = (
    {"topologyKey": HOSTNAME, "whenUnsatisfiable": SCHEDULE_ANYWAY, "maxSkew": 3},
    {"topologyKey": ZONE, "whenUnsatisfiable": SCHEDULE_ANYWAY, "maxSkew": 5},
)


class SpreadSpecError(ValueError):
    """A topology spread constraint that cannot be read; the message names the field."""


@dataclass(frozen=True, slots=True)
class Constraint:
    """One topologySpreadConstraint, resolved against the pod that carries it."""

    max_skew: int
    topology_key: str
    hard: bool  # DoNotSchedule (filter) or ScheduleAnyway (score)
    selector: sel.Selector
    min_domains: int = 1
    honor_affinity: bool = True
    honor_taints: bool = False
    owner: str | None = None  # default constraints: counted pods need this controller owner uid

    def selects(self, pod: PodInfo) -> bool:
        if not self.selector.matches(pod.labels):
            return False
        return self.owner is None or controller_uid(pod) == self.owner


@dataclass(frozen=True, slots=True)
class DomainCounts:
    """What the filter decides from for one DoNotSchedule constraint: matching pods per eligible
    domain and the global minimum it compares against (0 while domains < minDomains)."""

    constraint: Constraint
    counts: Mapping[str, int]
    min_match: int
    self_match: int


def controller_uid(pod: PodInfo) -> str | None:
    """uid of the pod's controller ownerReference (None: no controller), cached on the PodInfo."""
    if "controllerUID" not in pod.extra:
        uid = None
        for ref in ((pod.obj.get("metadata") or {}).get("ownerReferences")) or []:
            if isinstance(ref, Mapping) and ref.get("controller") and ref.get("uid"):
                uid = str(ref["uid"])
                break
        pod.extra["controllerUID"] = uid
    return pod.extra["controllerUID"]


def _terminating(pod: PodInfo) -> bool:
    return bool((pod.obj.get("metadata") or {}).get("deletionTimestamp"))


def _policy(raw: Mapping[str, Any], field: str, default: str, where: str) -> bool:
    value = raw.get(field)
    if value is None:
        value = default
    if value not in (HONOR, IGNORE):
        raise SpreadSpecError(f"{where}.{field}: expected Honor or Ignore, got {value!r}")
    return value == HONOR


def parse_constraint(raw: Any, pod_labels: Mapping[str, str], where: str, with_selector: bool = True) -> Constraint:
    """Parse one TopologySpreadConstraint dict. `with_selector=False` (cluster defaults): the
    labelSelector and matchLabelKeys are not read (the caller supplies the selector)."""
    if not isinstance(raw, Mapping):
        raise SpreadSpecError(f"{where}: expected a topology spread constraint object")
    skew = raw.get("maxSkew")
    if not isinstance(skew, int) or isinstance(skew, bool) or skew < 1:
        raise SpreadSpecError(f"{where}.maxSkew: expected an integer of at least 1, got {skew!r}")
    key = raw.get("topologyKey")
    if not isinstance(key, str) or not key:
        raise SpreadSpecError(f"{where}.topologyKey: required (a node label key such as {ZONE})")
    when = raw.get("whenUnsatisfiable")
    if when not in (DO_NOT_SCHEDULE, SCHEDULE_ANYWAY):
        raise SpreadSpecError(f"{where}.whenUnsatisfiable: expected DoNotSchedule or ScheduleAnyway, got {when!r}")
    min_domains = raw.get("minDomains")
    if min_domains is None:
        min_domains = 1
    elif not isinstance(min_domains, int) or isinstance(min_domains, bool) or min_domains < 1:
        raise SpreadSpecError(f"{where}.minDomains: expected an integer of at least 1, got {min_domains!r}")
    selector = sel.NOTHING
    if with_selector:
        try:
            selector = sel.parse(raw.get("labelSelector"), f"{where}.labelSelector")
        except sel.SelectorError as exc:
            raise SpreadSpecError(str(exc)) from None
        keys = raw.get("matchLabelKeys") or []
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise SpreadSpecError(f"{where}.matchLabelKeys: expected a list of label keys")
        extra = tuple(sel.Requirement(k, "In", frozenset([pod_labels[k]])) for k in keys if k in pod_labels)
        selector = selector.with_requirements(extra)  # a null selector stays null (upstream)
    return Constraint(
        max_skew=skew, topology_key=key, hard=when == DO_NOT_SCHEDULE, selector=selector,
        min_domains=min_domains if when == DO_NOT_SCHEDULE else 1,  # minDomains is filter-only
        honor_affinity=_policy(raw, "nodeAffinityPolicy", HONOR, where),
        honor_taints=_policy(raw, "nodeTaintsPolicy", IGNORE, where))


def constraints_for(ctx: CycleContext) -> tuple[list[Constraint], bool]:
    """The pod's constraints (its own, else the cluster defaults) and whether scoring requires
    every key on a node (False only for System defaults). Raises SpreadSpecError."""
    spec = ctx.pod.get("spec") or {}
    own = spec.get("topologySpreadConstraints")
    if own:
        if not isinstance(own, list):
            raise SpreadSpecError("spec.topologySpreadConstraints: expected a list")
        return [parse_constraint(c, ctx.info.labels, f"spec.topologySpreadConstraints[{i}]")
                for i, c in enumerate(own)], True
    system = ctx.config.spread_defaulting == "System"
    defaults = SYSTEM_DEFAULTS if system else tuple(ctx.config.spread_defaults)
    if not defaults:
        return [], True
    owner = controller_uid(ctx.info)
    if owner is None:
        return [], True
    selector = sel.from_labels(ctx.info.labels)
    out = []
    for i, c in enumerate(defaults):
        parsed = parse_constraint(c, ctx.info.labels, f"topologySpread.defaultConstraints[{i}]", with_selector=False)
        out.append(Constraint(parsed.max_skew, parsed.topology_key, parsed.hard, selector, parsed.min_domains,
                              parsed.honor_affinity, parsed.honor_taints, owner))
    return out, not system


class _Inclusion:
    """Per-pod node checks for the inclusion policies, computed once per node."""

    def __init__(self, pod: Mapping[str, Any]) -> None:
        self.pod = pod
        self.node_selector, self.affinity = label_requirements(pod)
        self.trivial_affinity = not self.node_selector and self.affinity is None
        self._affinity: dict[str, bool] = {}
        self._taints: dict[str, bool] = {}

    def affinity_ok(self, node: "NodeState") -> bool:
        if self.trivial_affinity:
            return True
        ok = self._affinity.get(node.name)
        if ok is None:
            ok = self._affinity[node.name] = labels_match(
                self.node_selector, self.affinity, node.name, node.labels)
        return ok

    def taints_ok(self, node: "NodeState") -> bool:
        if not node.taints:
            return True
        ok = self._taints.get(node.name)
        if ok is None:
            ok = self._taints[node.name] = untolerated(self.pod, node.taints, False) is None
        return ok

    def includes(self, c: Constraint, node: "NodeState") -> bool:
        if c.honor_affinity and not self.affinity_ok(node):
            return False
        return not (c.honor_taints and not self.taints_ok(node))


def _has_keys(node: "NodeState", keys: tuple[str, ...]) -> bool:
    labels = node.labels
    return all(k in labels for k in keys)


def _counted(state: "ClusterState", c: Constraint, info: PodInfo) -> Iterator[tuple[PodInfo, "NodeState"]]:
    """Pods that count for `c` (same namespace, selected, not terminating) with their nodes."""
    for p in state.pods.select(c.selector, frozenset([info.namespace])):
        if p.uid == info.uid or _terminating(p) or not c.selects(p):
            continue
        node = state.nodes.get(p.node)
        if node is not None:
            yield p, node


def _counted_nodes(state: "ClusterState", c: Constraint, info: PodInfo) -> Iterator[tuple["NodeState", int]]:
    """(node, pods that count for `c` there): from the pod index's standing per-node count for the
    constraint's selector (no walk over the matching pods) unless counted pods need an owner."""
    if c.owner is not None:
        per: Counter[str] = Counter(node.name for _, node in _counted(state, c, info))
        for name, n in per.items():
            yield state.nodes[name], n
        return
    me = state.pods.get(info.uid)
    for name, n in state.pods.node_counts(c.selector, frozenset([info.namespace]), live_only=True).items():
        node = state.nodes.get(name)
        if node is None:
            continue
        if me is not None and me.node == name and c.selects(me) and not _terminating(me):
            n -= 1  # the pod being scheduled does not count itself
        if n > 0:
            yield node, n


def _domain_counts(ctx: CycleContext, hard: list[Constraint], inclusion: _Inclusion) -> list[DomainCounts]:
    state, info = ctx.state, ctx.info
    keys = tuple(c.topology_key for c in hard)
    out = []
    for c in hard:
        def eligible(node: "NodeState", c: Constraint = c) -> bool:
            return _has_keys(node, keys) and inclusion.includes(c, node)
        counts: dict[str, int] = {}
        for value, names in state.topology.domains(c.topology_key).items():
            for name in names:
                node = state.nodes.get(name)
                if node is not None and eligible(node):
                    counts[value] = 0
                    break
        for node, n in _counted_nodes(state, c, info):
            if eligible(node):
                value = node.labels[c.topology_key]
                counts[value] = counts.get(value, 0) + n
        minimum = 0 if len(counts) < c.min_domains else min(counts.values())
        out.append(DomainCounts(c, counts, minimum, 1 if c.selects(info) else 0))
    return out


def filter_state(ctx: CycleContext) -> list[DomainCounts]:
    """The per-constraint counts the filter uses (explanations, tests). Raises SpreadSpecError."""
    constraints, _ = constraints_for(ctx)
    hard = [c for c in constraints if c.hard]
    return _domain_counts(ctx, hard, _Inclusion(ctx.pod)) if hard else []


def _make_filter(domains: list[DomainCounts]):
    def spread_filter(node: "NodeState") -> Rejection | None:
        labels = node.labels
        for d in domains:
            value = labels.get(d.constraint.topology_key)
            if value is None:
                return LABEL_REJECTION
            if d.counts.get(value, 0) + d.self_match - d.min_match > d.constraint.max_skew:
                return SKEW_REJECTION
        return None
    return spread_filter


class _SoftScore:
    """ScheduleAnyway scoring (scoring.go). Counts are gathered once, on the first call."""

    def __init__(self, ctx: CycleContext, soft: list[Constraint], require_all: bool, inclusion: _Inclusion) -> None:
        self.ctx = ctx
        self.soft = soft
        self.keys = tuple(c.topology_key for c in soft)
        self.require_all = require_all
        self.inclusion = inclusion
        self._counts: list[Counter[str]] | None = None  # by node name (hostname) or by domain value

    def counts(self) -> list[Counter[str]]:
        if self._counts is None:
            state, info = self.ctx.state, self.ctx.info
            out = []
            for c in self.soft:
                got: Counter[str] = Counter()
                for node, n in _counted_nodes(state, c, info):
                    if c.topology_key == HOSTNAME:
                        got[node.name] += n  # upstream counts the node's own pods, no inclusion checks
                    elif (not self.require_all or _has_keys(node, self.keys)) and self.inclusion.includes(c, node):
                        got[node.labels.get(c.topology_key, "")] += n
                out.append(got)
            self._counts = out
        return self._counts

    def _count(self, i: int, c: Constraint, node: "NodeState") -> int:
        counts = self.counts()[i]
        return counts[node.name] if c.topology_key == HOSTNAME else counts[node.labels[c.topology_key]]

    def score(self, node: "NodeState") -> float:
        """The node's matching pods summed over its domains (unweighted; see normalize)."""
        if self.require_all and not _has_keys(node, self.keys):
            return 0.0
        return float(sum(self._count(i, c, node) for i, c in enumerate(self.soft) if c.topology_key in node.labels))

    def normalize(self, scores: dict[str, float]) -> dict[str, float]:
        """Upstream's Score + NormalizeScore over the scored nodes (the keys of `scores`)."""
        nodes = self.ctx.state.nodes
        scored = {n: nodes[n] for n in scores if n in nodes}
        ignored = {n for n, node in scored.items() if self.require_all and not _has_keys(node, self.keys)}
        kept = [node for n, node in scored.items() if n not in ignored]
        weights = []
        for c in self.soft:
            size = len(kept) if c.topology_key == HOSTNAME else len({n.labels.get(c.topology_key, "") for n in kept})
            weights.append(math.log(size + 2))
        raw: dict[str, int] = {}
        for node in kept:
            total = 0.0
            for i, c in enumerate(self.soft):
                if c.topology_key in node.labels:
                    total += self._count(i, c, node) * weights[i] + (c.max_skew - 1)
            raw[node.name] = math.floor(total + 0.5)  # Go's math.Round (values are never negative)
        top = max(raw.values(), default=0)
        low = min(raw.values(), default=0)
        out: dict[str, float] = {}
        for n in scores:
            if n not in raw:
                out[n] = 0.0
            elif top == 0:
                out[n] = float(MAX_NODE_SCORE)
            else:
                out[n] = float(MAX_NODE_SCORE * (top + low - raw[n]) // top)
        return out


def prefilter(ctx: CycleContext) -> Checks | Rejection | None:
    """The pod's spread checks: a filter for DoNotSchedule constraints, a score for ScheduleAnyway
    ones; None when it has neither (and no defaults apply); a Rejection for an unreadable spec."""
    try:
        constraints, require_all = constraints_for(ctx)
    except SpreadSpecError as exc:
        return Rejection(NAME, str(exc), unresolvable=True)
    if not constraints:
        return None
    inclusion = _Inclusion(ctx.pod)
    hard = [c for c in constraints if c.hard]
    soft = [c for c in constraints if not c.hard]
    checks = Checks(NAME)
    if hard:
        checks.filter = _make_filter(_domain_counts(ctx, hard, inclusion))
    if soft:
        scorer = _SoftScore(ctx, soft, require_all, inclusion)
        checks.score = scorer.score
        checks.normalize = scorer.normalize
    return checks
