"""kube-scheduler's InterPodAffinity: required (anti-)affinity as a filter, preferred as a score.

Why it is shaped this way: kube-scheduler's PreFilter walks every pod of every node to count,
per topology pair (node label key, value), the pods that match the incoming pod's terms, then
answers each node from those counts. We get the same counts from the snapshot's indexes
(`PodIndex.select_term` finds the pods a term selects from its label index;
`PodIndex.terms_selecting` finds the existing pods' terms that select the incoming pod from the
index of terms by what they select), so PreFilter
costs O(matching pods + pods carrying terms), and each node costs O(terms) after it. A pod with
no terms in a cluster where no pod has any costs nothing (`prefilter` returns None).

Upstream rules kept here (pkg/scheduler/framework/plugins/interpodaffinity):

- Required affinity counts a pod only if it matches ALL the incoming pod's required affinity
  terms; it then counts for each term's topology pair of its node. A node passes when it has
  every term's topology label and each pair has a count. Exception, for the first pod of a group
  with affinity to itself: when no pod anywhere matches (the counts are empty) and the pod
  matches all its own terms, any node carrying every topology label passes. Failure is
  UnschedulableAndUnresolvable (evicting pods cannot create a matching pod).
- Required anti-affinity: any term's pair of the node with a matching pod rejects (Unschedulable:
  evicting that pod helps).
- Existing pods' required anti-affinity terms that select the incoming pod forbid the existing
  pod's topology pair (Unschedulable).
- Score: the incoming pod's preferred terms (+weight affinity, -weight anti-affinity) for each
  existing pod they select, plus, symmetrically, existing pods' preferred terms that select the
  incoming pod and their required affinity terms at hardPodAffinityWeight (default 1). Sums are
  kept per topology pair; a node scores the sum over the pairs it has. NormalizeScore maps
  min..max of the candidate nodes to 0..100, truncated to an integer; all equal → all 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from driver.scheduler.framework import Checks, CycleContext, NodeFilter, NodeScore, Rejection
from driver.scheduler.podinfo import AffinityTerm, WeightedTerm

if TYPE_CHECKING:
    from driver.scheduler.state import NodeState
    from driver.scheduler.snapshot import TopologyIndex

NAME = "InterPodAffinity"

# kube-scheduler's ErrReason* texts (filtering.go).
REASON_AFFINITY = "node(s) didn't match pod affinity rules"
REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"

AFFINITY_REJECTION = Rejection(NAME, REASON_AFFINITY, unresolvable=True)
ANTI_AFFINITY_REJECTION = Rejection(NAME, REASON_ANTI_AFFINITY)
EXISTING_ANTI_AFFINITY_REJECTION = Rejection(NAME, REASON_EXISTING_ANTI_AFFINITY)

# InterPodAffinityArgs.hardPodAffinityWeight: default 1, valid 0..100 (0 turns the symmetric
# weight of existing pods' required affinity off).
DEFAULT_HARD_POD_AFFINITY_WEIGHT = 1
MAX_NODE_SCORE = 100

Pair = tuple[str, str]  # (topology key, value)
_REQUIRED_ANTI = frozenset({"requiredAntiAffinity"})
_SCORED = frozenset({"requiredAffinity", "preferredAffinity", "preferredAntiAffinity"})


def hard_pod_affinity_weight(config: object) -> int:
    """The config's `hard_pod_affinity_weight` (default 1), checked to be an integer in 0..100."""
    value = getattr(config, "hard_pod_affinity_weight", DEFAULT_HARD_POD_AFFINITY_WEIGHT)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise ValueError(f"hardPodAffinityWeight: expected an integer in 0..100, got {value!r}")
    return value


def prefilter(ctx: CycleContext) -> Checks | None:
    """The plugin's per-node filter and score for `ctx.info`, or None when there is nothing to do."""
    return build(ctx, hard_pod_affinity_weight(ctx.config))


def build(ctx: CycleContext, hard_weight: int = DEFAULT_HARD_POD_AFFINITY_WEIGHT) -> Checks | None:
    """`prefilter` with an explicit hardPodAffinityWeight."""
    info = ctx.info
    pods = ctx.state.pods
    if not info.has_affinity_terms and not pods.with_terms:
        return None  # nobody has terms: neither a filter nor a score can say anything
    node_filter = _filter(ctx)
    score_map = _score_map(ctx, hard_weight)
    if node_filter is None and score_map is None:
        return None
    checks = Checks(NAME, filter=node_filter)
    if score_map is not None:
        checks.score = _scorer(score_map)
        checks.normalize = normalize
    return checks


# -- filter -----------------------------------------------------------------------------------

def _add(counts: dict[Pair, int], topology: "TopologyIndex", node: str, key: str) -> None:
    value = topology.value(node, key)
    if value is not None:
        counts[(key, value)] = counts.get((key, value), 0) + 1


def _affinity_counts(ctx: CycleContext, terms: tuple[AffinityTerm, ...]) -> dict[Pair, int]:
    """Pairs of the pods that match ALL `terms`, counted once per term (upstream's rule)."""
    counts: dict[Pair, int] = {}
    if not terms:
        return counts
    pods, topology = ctx.state.pods, ctx.state.topology
    ns_labels = pods.namespace_labels
    first, rest = terms[0], terms[1:]
    for pod in pods.select_term(first):
        if pod.uid == ctx.info.uid or not all(t.selects(pod, ns_labels) for t in rest):
            continue
        for t in terms:
            _add(counts, topology, pod.node, t.topology_key)
    return counts


def _anti_affinity_counts(ctx: CycleContext, terms: tuple[AffinityTerm, ...]) -> dict[Pair, int]:
    """Pairs of the pods that match each term, per term: from the pod index's standing per-node
    counts of the term's selector (kept current as pods come and go), not a walk over the pods."""
    counts: dict[Pair, int] = {}
    pods, topology = ctx.state.pods, ctx.state.topology
    me = pods.get(ctx.info.uid)
    for t in terms:
        key = t.topology_key
        for node, n in pods.node_counts(t.selector, t.namespaces, t.namespace_selector).items():
            if me is not None and me.node == node and t.selects(me, pods.namespace_labels):
                n -= 1  # the pod being scheduled does not count itself
            value = topology.value(node, key)
            if value is not None and n > 0:
                counts[(key, value)] = counts.get((key, value), 0) + n
    return counts


def _existing_anti_affinity(ctx: CycleContext) -> dict[str, set[str]]:
    """Topology key -> values forbidden by existing pods' required anti-affinity terms that
    select the incoming pod (found through the index of terms by what they select)."""
    topology = ctx.state.topology
    forbidden: dict[str, set[str]] = {}
    for pod, kind, _, t in ctx.state.pods.terms_selecting(ctx.info, _REQUIRED_ANTI):
        if kind == "requiredAntiAffinity":
            value = topology.value(pod.node, t.topology_key)
            if value is not None:
                forbidden.setdefault(t.topology_key, set()).add(value)
    return forbidden


def _filter(ctx: CycleContext) -> NodeFilter | None:
    info = ctx.info
    affinity = info.required_affinity
    affinity_counts = _affinity_counts(ctx, affinity)
    anti_terms = info.required_anti_affinity
    anti_counts = _anti_affinity_counts(ctx, anti_terms)
    existing = _existing_anti_affinity(ctx)
    if not affinity and not anti_counts and not existing:
        return None  # nothing can reject a node
    # The first pod of a self-affine group: nothing matches anywhere, but the pod matches itself.
    ns_labels = ctx.state.pods.namespace_labels
    first_of_group = bool(affinity) and not affinity_counts and all(t.selects(info, ns_labels) for t in affinity)
    affinity_keys = tuple(t.topology_key for t in affinity)
    anti_keys = tuple(dict.fromkeys(t.topology_key for t in anti_terms)) if anti_counts else ()
    existing_items = tuple(existing.items())

    def node_filter(node: "NodeState") -> Rejection | None:
        labels = node.labels
        if affinity_keys:
            pods_exist = True
            for key in affinity_keys:
                value = labels.get(key)
                if value is None:
                    return AFFINITY_REJECTION  # every topology label must be on the node
                if affinity_counts.get((key, value), 0) <= 0:
                    pods_exist = False
            if not pods_exist and not first_of_group:
                return AFFINITY_REJECTION
        for key in anti_keys:
            value = labels.get(key)
            if value is not None and anti_counts.get((key, value), 0) > 0:
                return ANTI_AFFINITY_REJECTION
        for key, values in existing_items:
            if labels.get(key) in values:
                return EXISTING_ANTI_AFFINITY_REJECTION
        return None

    return node_filter


# -- score ------------------------------------------------------------------------------------

ScoreMap = dict[str, dict[str, int]]  # topology key -> value -> summed weight


def _credit(score: ScoreMap, topology: "TopologyIndex", node: str, key: str, weight: int) -> None:
    value = topology.value(node, key)
    if value is not None:
        values = score.setdefault(key, {})
        values[value] = values.get(value, 0) + weight


def _incoming_preferred(ctx: CycleContext, score: ScoreMap, terms: Iterable[WeightedTerm], sign: int) -> None:
    pods, topology = ctx.state.pods, ctx.state.topology
    for wt in terms:
        for pod in pods.select_term(wt.term):
            if pod.uid != ctx.info.uid:
                _credit(score, topology, pod.node, wt.term.topology_key, sign * wt.weight)


def _symmetric(ctx: CycleContext, score: ScoreMap, hard_weight: int) -> None:
    """Existing pods' terms that select the incoming pod."""
    topology = ctx.state.topology
    for pod, kind, weight, t in ctx.state.pods.terms_selecting(ctx.info, _SCORED):
        if kind == "requiredAffinity":
            if hard_weight > 0:
                _credit(score, topology, pod.node, t.topology_key, hard_weight)
        elif kind == "preferredAffinity":
            _credit(score, topology, pod.node, t.topology_key, weight)
        elif kind == "preferredAntiAffinity":
            _credit(score, topology, pod.node, t.topology_key, -weight)


def _score_map(ctx: CycleContext, hard_weight: int) -> ScoreMap | None:
    """Weights per topology pair, or None when no term matched any pod on a labelled node
    (upstream's PreScore Skip)."""
    info = ctx.info
    score: ScoreMap = {}
    _incoming_preferred(ctx, score, info.preferred_affinity, 1)
    _incoming_preferred(ctx, score, info.preferred_anti_affinity, -1)
    _symmetric(ctx, score, hard_weight)
    return score or None


def _scorer(score: ScoreMap) -> NodeScore:
    items = tuple(score.items())

    def node_score(node: "NodeState") -> float:
        labels = node.labels
        total = 0
        for key, values in items:
            value = labels.get(key)
            if value is not None:
                total += values.get(value, 0)
        return float(total)

    return node_score


def normalize(scores: dict[str, float]) -> dict[str, float]:
    """Upstream's NormalizeScore: 100 * (s - min) / (max - min) over the scored nodes, truncated to
    an integer as upstream's int64 conversion does; all equal (or none) → 0."""
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    spread = hi - lo
    if spread <= 0:
        return {n: 0.0 for n in scores}
    return {n: float(int(MAX_NODE_SCORE * ((s - lo) / spread))) for n, s in scores.items()}

