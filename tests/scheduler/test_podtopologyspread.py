"""PodTopologySpread, from kube-scheduler's own test tables (podtopologyspread/filtering_test.go
TestSingleConstraint, TestMultipleConstraints, TestPreFilterState; scoring_test.go
TestPodTopologySpreadScore, TestPreScoreStateEmptyNodes): same clusters, same expected outcomes."""

from __future__ import annotations

from typing import Any

import pytest

from driver.scheduler.framework import Checks, CycleContext, Rejection
from driver.scheduler.packing.config import PackingConfig
from driver.scheduler.plugins import podtopologyspread as pts
from driver.scheduler.podinfo import pod_info
from driver.scheduler.snapshot import PodIndex
from driver.scheduler.state import ClusterState

HOST = pts.HOSTNAME
ZONE = pts.ZONE
FOO = {"matchExpressions": [{"key": "foo", "operator": "Exists"}]}
BAR = {"matchExpressions": [{"key": "bar", "operator": "Exists"}]}
UNSCHEDULABLE_TAINT = [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]
OK, NO, UNRES = "ok", "unschedulable", "unresolvable"


# -- builders ------------------------------------------------------------------------------------

def node(name: str, taints: list | None = None, **labels: str) -> dict:
    out: dict[str, Any] = {"metadata": {"name": name, "labels": dict(labels)}}
    if taints:
        out["spec"] = {"taints": taints}
    return out


def zn(name: str, zone: str | None, **extra: Any) -> dict:
    """A node labelled zone=<zone> and node=<name> (upstream's 'zone'/'node' keys)."""
    taints = extra.pop("taints", None)
    labels = {"node": name, **extra}
    if zone is not None:
        labels["zone"] = zone
    return node(name, taints, **labels)


def hn(name: str, **extra: str) -> dict:
    """A node labelled kubernetes.io/hostname=<name>."""
    out = node(name, **extra)
    out["metadata"]["labels"][HOST] = name
    return out


def tsc(skew: int, key: str, when: str = "DoNotSchedule", selector: Any = FOO, min_domains: int | None = None,
        affinity_policy: str | None = None, taints_policy: str | None = None,
        match_label_keys: list[str] | None = None) -> dict:
    c: dict[str, Any] = {"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when, "labelSelector": selector}
    if min_domains is not None:
        c["minDomains"] = min_domains
    if affinity_policy:
        c["nodeAffinityPolicy"] = affinity_policy
    if taints_policy:
        c["nodeTaintsPolicy"] = taints_policy
    if match_label_keys:
        c["matchLabelKeys"] = match_label_keys
    return c


def pod(name: str, labels: dict | None = None, on: str = "", ns: str = "default", spread: list | None = None,
        node_selector: dict | None = None, affinity_in: tuple | None = None, affinity_not_in: tuple | None = None,
        tolerations: list | None = None, owner: str | None = None, terminating: bool = False) -> dict:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "uid": f"{ns}-{name}", "labels": dict(labels or {})}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": owner,
                                    "controller": True}]
    if terminating:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    spec: dict[str, Any] = {"containers": [{"name": "c"}]}
    if on:
        spec["nodeName"] = on
    if spread:
        spec["topologySpreadConstraints"] = spread
    if node_selector:
        spec["nodeSelector"] = node_selector
    for op, arg in (("In", affinity_in), ("NotIn", affinity_not_in)):
        if arg:
            key, values = arg
            spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": key, "operator": op, "values": values}]}]}}}
    if tolerations:
        spec["tolerations"] = tolerations
    return {"metadata": meta, "spec": spec}


def foo(name: str, on: str, **kw: Any) -> dict:
    """An existing pod labelled foo="" on node `on`."""
    return pod(name, {"foo": ""}, on=on, **kw)


def cluster(nodes: list[dict], existing: list[dict] = ()) -> ClusterState:
    state = ClusterState({})
    for n in nodes:
        state.add_node(n)
    for p in existing:
        state.pods.add(pod_info(p))
    return state


def prefilter(incoming: dict, nodes: list[dict], existing: list[dict] = (), config: PackingConfig | None = None,
              state: ClusterState | None = None) -> Checks | Rejection | None:
    state = state or cluster(nodes, existing)
    return pts.prefilter(CycleContext(incoming, pod_info(incoming), state, config or PackingConfig()))


def filter_outcome(incoming: dict, nodes: list[dict], existing: list[dict] = (),
                   config: PackingConfig | None = None) -> dict[str, str]:
    state = cluster(nodes, existing)
    checks = prefilter(incoming, nodes, existing, config, state)
    assert isinstance(checks, Checks) and checks.filter is not None
    out = {}
    for name, n in state.nodes.items():
        r = checks.filter(n)
        out[name] = OK if r is None else (UNRES if r.unresolvable else NO)
        if r is not None:
            assert r.plugin == "PodTopologySpread"
            assert r.reason == (pts.REASON_MISSING_LABEL if r.unresolvable else pts.REASON_CONSTRAINTS)
    return out


def scores(incoming: dict, nodes: list[dict], existing: list[dict] = (), failed: list[dict] = (),
           config: PackingConfig | None = None) -> dict[str, float]:
    """Score + normalize over `nodes` (the candidates); `failed` nodes exist but did not pass filters.
    Upstream's score table runs with defaultingType System."""
    state = cluster(list(nodes) + list(failed), existing)
    checks = prefilter(incoming, [], (), config or PackingConfig(spread_defaulting="System"), state)
    assert isinstance(checks, Checks) and checks.score is not None and checks.normalize is not None
    raw = {n["metadata"]["name"]: checks.score(state.nodes[n["metadata"]["name"]]) for n in nodes}
    return checks.normalize(raw)


FOUR_ZONED = [zn("node-a", "zone1"), zn("node-b", "zone1"), zn("node-x", "zone2"), zn("node-y", "zone2")]
SPREAD_2_1_0_3 = [foo("p-a1", "node-a"), foo("p-a2", "node-a"), foo("p-b1", "node-b"),
                  foo("p-y1", "node-y"), foo("p-y2", "node-y"), foo("p-y3", "node-y")]
FOO_POD = {"foo": ""}


def expect(a: str, b: str, x: str, y: str) -> dict[str, str]:
    return {"node-a": a, "node-b": b, "node-x": x, "node-y": y}


# -- TestSingleConstraint ---------------------------------------------------------------------------

SINGLE = [
    pytest.param(pod("p", FOO_POD, spread=[tsc(1, "zone")]), FOUR_ZONED, [], expect(OK, OK, OK, OK),
                 id="no existing pods"),
    pytest.param(pod("p", FOO_POD, spread=[tsc(1, "zone", selector=BAR)]), FOUR_ZONED, [], expect(OK, OK, OK, OK),
                 id="no existing pods, incoming pod doesn't match itself"),
    pytest.param(pod("p", FOO_POD, spread=[tsc(1, "zone")]), FOUR_ZONED,
                 [foo("p-a1", "node-a", ns="ns1"), foo("p-b1", "node-a", ns="ns2"), foo("p-x1", "node-x"),
                  foo("p-y1", "node-y")], expect(OK, OK, NO, NO),
                 id="existing pods in a different namespace do not count"),
    pytest.param(pod("p", FOO_POD, spread=[tsc(1, "zone", selector=None)]), FOUR_ZONED,
                 [foo("p-x1", "node-x"), foo("p-y1", "node-y")], expect(OK, OK, OK, OK),
                 id="existing pods do not match null selector"),
    pytest.param(pod("p", FOO_POD, spread=[tsc(1, "zone")]), FOUR_ZONED,
                 [foo("p-a1", "node-a"), foo("p-a2", "node-a"), foo("p-b1", "node-b"), foo("p-y1", "node-y"),
                  foo("p-y2", "node-y"), foo("p-y3", "node-y")], expect(OK, OK, OK, OK),
                 id="pods spread across zones as 3/3, all nodes fit"),
    pytest.param(pod("p", FOO_POD, spread=[tsc(1, "zone")]),
                 [zn("node-a", "zone1"), zn("node-b", None, zon="zone1"), zn("node-x", "zone2"), zn("node-y", "zone2")],
                 [foo("p-a1", "node-a"), foo("p-b1", "node-b"), foo("p-x1", "node-x"), foo("p-y1", "node-y")],
                 expect(OK, UNRES, NO, NO), id="spread 1/2 because node-b lacks the zone label"),
    pytest.param(pod("p", FOO_POD, spread=[tsc(1, "node")]), FOUR_ZONED, SPREAD_2_1_0_3, expect(NO, NO, OK, NO),
                 id="pods spread across nodes as 2/1/0/3, only node-x fits"),
    pytest.param(pod("p", FOO_POD, spread=[tsc(2, "node")]), FOUR_ZONED, SPREAD_2_1_0_3, expect(NO, OK, OK, NO),
                 id="2/1/0/3, maxSkew 2: node-b and node-x fit"),
    pytest.param(pod("p", {"bar": ""}, spread=[tsc(1, "node")]), FOUR_ZONED, SPREAD_2_1_0_3, expect(NO, OK, OK, NO),
                 id="2/1/0/3 but the pod doesn't match itself"),
    pytest.param(pod("p", FOO_POD, affinity_in=("node", ["node-a", "node-y"]), spread=[tsc(1, "node")]),
                 FOUR_ZONED, SPREAD_2_1_0_3, expect(OK, OK, OK, NO),
                 id="incoming pod has nodeAffinity, spread 2/~1~/~0~/3, node-a fits"),
    pytest.param(pod("p", FOO_POD, affinity_not_in=("node", ["node-b"]), spread=[tsc(1, "zone")]), FOUR_ZONED,
                 [foo("p-b1", "node-b"), foo("p-b2", "node-b"), foo("p-y1", "node-y")], expect(OK, OK, NO, NO),
                 id="incoming pod has nodeAffinity, spread 0/~2~/0/1, node-a fits"),
]


@pytest.mark.parametrize("incoming, nodes, existing, want", SINGLE)
def test_single_constraint(incoming: dict, nodes: list, existing: list, want: dict) -> None:
    assert filter_outcome(incoming, nodes, existing) == want


def test_no_topology_label_anywhere_is_unresolvable() -> None:
    got = filter_outcome(pod("p", FOO_POD, spread=[tsc(1, "rack")]), [zn("node-a", "zone1"), zn("node-x", "zone2")])
    assert got == {"node-a": UNRES, "node-x": UNRES}


def test_terminating_pods_are_excluded() -> None:
    nodes = [node("node-a", node="node-a"), node("node-b", node="node-b")]
    existing = [foo("p-a", "node-a", terminating=True), foo("p-b", "node-b")]
    assert filter_outcome(pod("p", FOO_POD, spread=[tsc(1, "node")]), nodes, existing) == {
        "node-a": OK, "node-b": NO}


THREE_NODES = [node("node-a", node="node-a"), node("node-b", node="node-b"), node("node-c", node="node-c")]
SPREAD_2_2_1 = [foo("p-a1", "node-a"), foo("p-a2", "node-a"), foo("p-b1", "node-b"), foo("p-b2", "node-b"),
                foo("p-c1", "node-c")]
ZONE_2_1 = [foo("p-b1", "node-a"), foo("p-b2", "node-b"), foo("p-y1", "node-y")]


@pytest.mark.parametrize("nodes, existing, key, min_domains, want", [
    pytest.param(THREE_NODES, SPREAD_2_2_1, "node", 4, {"node-a": NO, "node-b": NO, "node-c": OK},
                 id="2/2/1, maxSkew 2, domains < minDomains: only the third node fits"),
    pytest.param(THREE_NODES, SPREAD_2_2_1, "node", 2, {"node-a": OK, "node-b": OK, "node-c": OK},
                 id="2/2/1, maxSkew 2, domains > minDomains: all fit"),
    pytest.param(FOUR_ZONED, ZONE_2_1, "zone", 3, expect(NO, NO, OK, OK),
                 id="zones 2/1, maxSkew 2, domains < minDomains: zone2 fits"),
    pytest.param(FOUR_ZONED, ZONE_2_1, "zone", 1, expect(OK, OK, OK, OK),
                 id="zones 2/1, maxSkew 2, domains > minDomains: all fit"),
])
def test_min_domains(nodes: list, existing: list, key: str, min_domains: int, want: dict) -> None:
    incoming = pod("p", FOO_POD, spread=[tsc(2, key, min_domains=min_domains)])
    assert filter_outcome(incoming, nodes, existing) == want


INCLUSION_NODES = [node("node-a", node="node-a", foo=""), node("node-b", node="node-b", foo=""),
                   node("node-x", node="node-x", foo=""), node("node-y", node="node-y")]
TAINTED_NODES = [node("node-a", node="node-a", foo=""), node("node-b", node="node-b", foo=""),
                 node("node-x", node="node-x", foo=""), node("node-y", UNSCHEDULABLE_TAINT, node="node-y")]
SPREAD_1_1_0_1 = [foo("p-b1", "node-a"), foo("p-b2", "node-b"), foo("p-y1", "node-y")]


@pytest.mark.parametrize("incoming, nodes, want", [
    pytest.param(pod("p", FOO_POD, node_selector={"foo": ""}, spread=[tsc(1, "node")]), INCLUSION_NODES,
                 expect(NO, NO, OK, OK), id="NodeAffinityPolicy honored with nodeSelector"),
    pytest.param(pod("p", FOO_POD, node_selector={"foo": ""}, spread=[tsc(1, "node", affinity_policy="Ignore")]),
                 INCLUSION_NODES, expect(NO, NO, OK, NO), id="NodeAffinityPolicy ignored with nodeSelector"),
    pytest.param(pod("p", FOO_POD, affinity_in=("foo", [""]), spread=[tsc(1, "node")]), INCLUSION_NODES,
                 expect(NO, NO, OK, OK), id="NodeAffinityPolicy honored with nodeAffinity"),
    pytest.param(pod("p", FOO_POD, affinity_in=("foo", [""]), spread=[tsc(1, "node", affinity_policy="Ignore")]),
                 INCLUSION_NODES, expect(NO, NO, OK, NO), id="NodeAffinityPolicy ignored with nodeAffinity"),
    pytest.param(pod("p", FOO_POD, spread=[tsc(1, "node", taints_policy="Honor")]), TAINTED_NODES,
                 expect(NO, NO, OK, OK), id="NodeTaintsPolicy honored"),
    pytest.param(pod("p", FOO_POD, spread=[tsc(1, "node")]), TAINTED_NODES, expect(NO, NO, OK, NO),
                 id="NodeTaintsPolicy ignored (default)"),
    pytest.param(pod("p", FOO_POD, tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}],
                     spread=[tsc(1, "node", taints_policy="Honor")]), TAINTED_NODES, expect(NO, NO, OK, NO),
                 id="NodeTaintsPolicy honored, taint tolerated: node-y counts"),
])
def test_node_inclusion_policies(incoming: dict, nodes: list, want: dict) -> None:
    assert filter_outcome(incoming, nodes, SPREAD_1_1_0_1) == want


# -- TestMultipleConstraints ----------------------------------------------------------------------

ZONE_AND_NODE = [tsc(1, "zone"), tsc(1, "node")]
ZONE_FOO_NODE_BAR = [tsc(1, "zone"), tsc(1, "node", selector=BAR)]
FOO_BAR = {"foo": "", "bar": ""}


def _bar(name: str, on: str) -> dict:
    return pod(name, {"bar": ""}, on=on)


MULTIPLE = [
    pytest.param(pod("p", FOO_POD, spread=ZONE_AND_NODE), FOUR_ZONED, SPREAD_2_1_0_3, expect(NO, NO, OK, NO),
                 id="zone and node, spreads [3/3, 2/1/0/3]"),
    pytest.param(pod("p", FOO_POD, spread=ZONE_AND_NODE), FOUR_ZONED, SPREAD_2_1_0_3 + [foo("p-y4", "node-y")],
                 expect(NO, NO, NO, NO), id="zone and node, spreads [3/4, 2/1/0/4]"),
    pytest.param(pod("p", FOO_BAR, spread=ZONE_FOO_NODE_BAR), FOUR_ZONED,
                 [foo("p-a1", "node-a"), _bar("p-y1", "node-y")], expect(NO, NO, OK, NO),
                 id="different selectors, spreads [1/0, 1/0/0/1]"),
    pytest.param(pod("p", FOO_BAR, spread=ZONE_FOO_NODE_BAR), FOUR_ZONED,
                 [foo("p-a1", "node-a"), _bar("p-x1", "node-x"), _bar("p-y1", "node-y")], expect(NO, NO, NO, NO),
                 id="different selectors, spreads [1/0, 0/0/1/1]"),
    pytest.param(pod("p", FOO_BAR, spread=ZONE_FOO_NODE_BAR), FOUR_ZONED,
                 [foo("p-a1", "node-a"), pod("p-a2", FOO_BAR, on="node-a"), foo("p-y1", "node-y"),
                  pod("p-y2", FOO_BAR, on="node-y"), foo("p-y3", "node-y")], expect(NO, OK, NO, NO),
                 id="different selectors, spreads [2/3, 1/0/0/1]"),
    pytest.param(pod("p", {"bar": ""}, spread=ZONE_FOO_NODE_BAR), FOUR_ZONED,
                 [foo("p-a1", "node-a"), _bar("p-x1", "node-x"), _bar("p-y1", "node-y")], expect(OK, OK, NO, NO),
                 id="different selectors, pod doesn't match itself on zone"),
    pytest.param(pod("p", FOO_POD, spread=ZONE_AND_NODE),
                 [zn("node-a", "zone1"), zn("node-b", "zone1"), node("node-x", zone="zone2"), zn("node-y", "zone2")],
                 [foo("p-a1", "node-a"), foo("p-y3", "node-y")], expect(NO, OK, UNRES, NO),
                 id="zone and node, node-x lacks the node label, spreads [1/1, 1/0/0/1]"),
    pytest.param(pod("p", FOO_POD, node_selector={"foo": ""},
                     spread=[tsc(1, "zone"), tsc(1, "node", affinity_policy="Ignore")]),
                 [zn("node-a", "zone1", foo=""), zn("node-b", "zone1", foo=""), zn("node-x", "zone2", foo=""),
                  zn("node-y", "zone2")],
                 [foo("p-a1", "node-a"), foo("p-b1", "node-b"), foo("p-y1", "node-y")], expect(NO, NO, OK, NO),
                 id="inclusion zone honor/ignore, node ignore/ignore"),
    pytest.param(pod("p", FOO_POD, spread=[tsc(1, "zone", taints_policy="Honor"), tsc(1, "node")]),
                 [zn("node-a", "zone1", foo=""), zn("node-b", "zone1", foo=""), zn("node-x", "zone2", foo=""),
                  zn("node-y", "zone2", taints=UNSCHEDULABLE_TAINT)],
                 [foo("p-a1", "node-a"), foo("p-b1", "node-b"), foo("p-y1", "node-y")], expect(NO, NO, OK, NO),
                 id="inclusion zone honor/honor, node honor/ignore"),
    pytest.param(pod("p", FOO_POD, node_selector={"foo": ""}, spread=ZONE_AND_NODE),
                 [zn("node-a", "zone1", foo=""), zn("node-b", "zone1"), zn("node-x", "zone2", foo=""),
                  zn("node-y", "zone2", foo="", taints=UNSCHEDULABLE_TAINT)],
                 [foo("p-a1", "node-a"), foo("p-b1", "node-b"), foo("p-y1", "node-y")], expect(NO, OK, OK, NO),
                 id="inclusion zone honor/ignore, node honor/ignore"),
    pytest.param(pod("p", FOO_POD, node_selector={"foo": ""},
                     spread=[tsc(1, "zone", taints_policy="Honor"), tsc(1, "node", affinity_policy="Ignore")]),
                 [zn("node-a", "zone1", foo=""), zn("node-b", "zone1"), zn("node-x", "zone2", foo=""),
                  zn("node-y", "zone2", foo="", taints=UNSCHEDULABLE_TAINT)],
                 [foo("p-a1", "node-a"), foo("p-b1", "node-b"), foo("p-y1", "node-y")], expect(NO, NO, OK, NO),
                 id="inclusion zone honor/honor, node ignore/ignore"),
]


@pytest.mark.parametrize("incoming, nodes, existing, want", MULTIPLE)
def test_multiple_constraints(incoming: dict, nodes: list, existing: list, want: dict) -> None:
    assert filter_outcome(incoming, nodes, existing) == want


# -- TestPreFilterState: the counts themselves ----------------------------------------------------

def counts_of(incoming: dict, nodes: list, existing: list, config: PackingConfig | None = None) -> list[dict]:
    state = cluster(nodes, existing)
    ctx = CycleContext(incoming, pod_info(incoming), state, config or PackingConfig())
    return [dict(d.counts) for d in pts.filter_state(ctx)]


FOO_A_EVERYWHERE = [pod("p-a1", {"foo": "a"}, on="node-a"), pod("p-a2", {"foo": "a"}, on="node-a"),
                    pod("p-b1", {"foo": "a"}, on="node-b"), pod("p-y1", {"foo": "a"}, on="node-y"),
                    pod("p-y2", {"foo": "a"}, on="node-y")]


@pytest.mark.parametrize("incoming, existing, want", [
    pytest.param(pod("p", {"foo": "", "bar": "a"}, spread=[tsc(1, "zone", match_label_keys=["bar"])]),
                 [foo("p-a1", "node-a"), pod("p-a2", {"foo": "", "bar": "a"}, on="node-a"), foo("p-b1", "node-b"),
                  pod("p-y1", {"foo": "", "bar": "a"}, on="node-y"), pod("p-y2", {"bar": ""}, on="node-y")],
                 {"zone1": 1, "zone2": 1}, id="matchLabelKeys ANDed with a non-empty labelSelector"),
    pytest.param(pod("p", {"foo": "a"}, spread=[tsc(1, "zone", selector={}, match_label_keys=["foo"])]),
                 FOO_A_EVERYWHERE + [pod("p-x1", {"foo": "b"}, on="node-x")], {"zone1": 3, "zone2": 2},
                 id="matchLabelKeys ANDed with an empty labelSelector"),
    pytest.param(pod("p", {"foo": ""}, spread=[tsc(1, "zone", selector=None, match_label_keys=["bar"])]),
                 FOO_A_EVERYWHERE, {"zone1": 0, "zone2": 0}, id="matchLabelKeys ignored with a null labelSelector"),
    pytest.param(pod("p", {"foo": ""}, spread=[tsc(1, "zone", match_label_keys=["bar"])]),
                 FOO_A_EVERYWHERE, {"zone1": 3, "zone2": 2}, id="matchLabelKeys key missing from the pod's labels"),
    pytest.param(pod("p", {"foo": ""}, spread=[tsc(1, "zone", selector={})]),
                 FOO_A_EVERYWHERE + [pod("p-x1", {}, on="node-x")], {"zone1": 3, "zone2": 3},
                 id="empty labelSelector counts every pod"),
])
def test_prefilter_counts_match_label_keys(incoming: dict, existing: list, want: dict) -> None:
    assert counts_of(incoming, FOUR_ZONED, existing) == [want]


def test_match_label_keys_changes_the_filter_outcome() -> None:
    existing = [foo("p-a1", "node-a"), pod("p-a2", {"foo": "", "bar": "a"}, on="node-a"), foo("p-b1", "node-b"),
                pod("p-y1", {"foo": "", "bar": "a"}, on="node-y"), foo("p-y2", "node-y")]
    with_keys = pod("p", {"foo": "", "bar": "a"}, spread=[tsc(1, "zone", match_label_keys=["bar"])])
    without = pod("p", {"foo": "", "bar": "a"}, spread=[tsc(1, "zone")])
    assert filter_outcome(with_keys, FOUR_ZONED, existing) == expect(OK, OK, OK, OK)  # 1/1
    assert filter_outcome(without, FOUR_ZONED, existing) == expect(NO, NO, OK, OK)  # 3/2


def test_two_constraints_count_only_nodes_with_every_key() -> None:
    nodes = [zn("node-a", "zone1"), zn("node-b", "zone1"), node("node-x", zone="zone2"), zn("node-y", "zone2")]
    existing = [foo("p-a1", "node-a"), foo("p-x1", "node-x"), foo("p-x2", "node-x"), foo("p-y1", "node-y")]
    got = counts_of(pod("p", FOO_POD, spread=ZONE_AND_NODE), nodes, existing)
    # node-x lacks "node": neither its domain nor its pods count, for either constraint
    assert got == [{"zone1": 1, "zone2": 1}, {"node-a": 1, "node-b": 0, "node-y": 1}]


# -- namespaces, defaults, bad input, cost ------------------------------------------------------

def test_pods_of_other_namespaces_do_not_count() -> None:
    incoming = pod("p", FOO_POD, ns="team-a", spread=[tsc(1, "zone")])
    existing = [foo(f"other-{i}", "node-a", ns="team-b") for i in range(5)] + [foo("mine", "node-x", ns="team-a")]
    assert counts_of(incoming, FOUR_ZONED, existing) == [{"zone1": 0, "zone2": 1}]
    assert filter_outcome(incoming, FOUR_ZONED, existing) == expect(OK, OK, NO, NO)


def test_no_constraints_and_no_defaults_is_skipped() -> None:
    assert prefilter(pod("p", FOO_POD, owner="rs1"), FOUR_ZONED) is None  # List with no defaults
    system = PackingConfig(spread_defaulting="System")
    assert prefilter(pod("p", FOO_POD), FOUR_ZONED, config=system) is None  # no controller owner


def test_soft_only_has_no_filter_and_hard_only_no_score() -> None:
    soft = prefilter(pod("p", FOO_POD, spread=[tsc(1, "zone", "ScheduleAnyway")]), FOUR_ZONED)
    hard = prefilter(pod("p", FOO_POD, spread=[tsc(1, "zone")]), FOUR_ZONED)
    assert isinstance(soft, Checks) and soft.filter is None and soft.score is not None
    assert isinstance(hard, Checks) and hard.filter is not None and hard.score is None


def test_list_defaults_use_the_controller_owner() -> None:
    config = PackingConfig(spread_defaults=({"maxSkew": 1, "topologyKey": "zone",
                                             "whenUnsatisfiable": "DoNotSchedule"},))
    labels = {"app": "web"}
    existing = [pod("w1", labels, on="node-a", owner="rs1"), pod("w2", labels, on="node-b", owner="rs1"),
                pod("other", labels, on="node-x", owner="rs2"), pod("loose", labels, on="node-y")]
    incoming = pod("p", labels, owner="rs1")
    assert counts_of(incoming, FOUR_ZONED, existing, config) == [{"zone1": 2, "zone2": 0}]
    assert filter_outcome(incoming, FOUR_ZONED, existing, config) == expect(NO, NO, OK, OK)


def test_own_constraints_replace_the_defaults() -> None:
    config = PackingConfig(spread_defaults=({"maxSkew": 1, "topologyKey": "rack",
                                             "whenUnsatisfiable": "DoNotSchedule"},))
    got = prefilter(pod("p", FOO_POD, owner="rs1", spread=[tsc(2, "zone", "ScheduleAnyway")]), FOUR_ZONED,
                    config=config)
    assert isinstance(got, Checks) and got.filter is None  # the "rack" default would reject every node


def test_system_defaults_are_upstreams() -> None:
    assert [(c["topologyKey"], c["maxSkew"], c["whenUnsatisfiable"]) for c in pts.SYSTEM_DEFAULTS] == [
        (HOST, 3, "ScheduleAnyway"), (ZONE, 5, "ScheduleAnyway")]


@pytest.mark.parametrize("constraint, field", [
    ({"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}, "maxSkew"),
    ({"maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}, "topologyKey"),
    ({"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "Never"}, "whenUnsatisfiable"),
    ({"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "minDomains": 0}, "minDomains"),
    ({"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "nodeTaintsPolicy": "honor"},
     "nodeTaintsPolicy"),
    ({"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
      "labelSelector": {"matchExpressions": [{"key": "a", "operator": "Has"}]}}, "labelSelector"),
])
def test_bad_constraint_is_rejected_naming_the_field(constraint: dict, field: str) -> None:
    got = prefilter(pod("p", FOO_POD, spread=[constraint]), FOUR_ZONED)
    assert isinstance(got, Rejection) and got.unresolvable
    assert f"spec.topologySpreadConstraints[0].{field}" in got.reason


def test_counts_come_from_the_indexes(monkeypatch: pytest.MonkeyPatch) -> None:
    def walked(*_: Any) -> None:
        raise AssertionError("walked the pods of a node")
    monkeypatch.setattr(PodIndex, "on_node", walked)
    incoming = pod("p", FOO_POD, spread=[tsc(1, "zone"), tsc(1, HOST, "ScheduleAnyway")])
    nodes = [hn("node-a", zone="zone1"), hn("node-b", zone="zone2")]
    got = scores(incoming, nodes, [foo("p-a1", "node-a")])
    assert got == {"node-a": 0.0, "node-b": 100.0}
    assert filter_outcome(incoming, nodes, [foo("p-a1", "node-a")]) == {"node-a": NO, "node-b": OK}


# -- TestPodTopologySpreadScore -------------------------------------------------------------------

def _foo_pods(spread: dict[str, int]) -> list[dict]:
    return [foo(f"p-{n[-1]}{i}", n) for n, k in spread.items() for i in range(k)]


HOST4 = [hn("node-a"), hn("node-b"), hn("node-c"), hn("node-d")]
HOST_ZONED = [hn("node-a", zone="zone1"), hn("node-b", zone="zone1"), hn("node-x", zone="zone2"),
              hn("node-y", zone="zone2")]
ZONE_FOO_HOST_BAR = [tsc(1, "zone", "ScheduleAnyway"), tsc(1, HOST, "ScheduleAnyway", selector=BAR)]
DIFFERENT_SELECTOR_PODS = [foo("p-a1", "node-a"), pod("p-b1", FOO_BAR, on="node-b"), foo("p-y1", "node-y"),
                           _bar("p-y2", "node-y")]


def soft(skew: int, key: str = HOST, **kw: Any) -> dict:
    return tsc(skew, key, "ScheduleAnyway", **kw)


SCORE = [
    pytest.param(pod("p", FOO_POD, spread=[soft(1)]), [hn("node-a"), hn("node-b")], [], [],
                 {"node-a": 100, "node-b": 100}, id="one constraint on node, no existing pods"),
    pytest.param(pod("p", FOO_POD, spread=[soft(1)]), [hn("node-a")], _foo_pods({"node-a": 2, "node-b": 1}),
                 [hn("node-b")], {"node-a": 100}, id="only one node is a candidate"),
    pytest.param(pod("p", FOO_POD, spread=[soft(1)]), [hn("node-a"), hn("node-b")],
                 _foo_pods({"node-a": 1, "node-b": 1}), [], {"node-a": 100, "node-b": 100},
                 id="all nodes have the same number of matching pods"),
    pytest.param(pod("p", FOO_POD, spread=[soft(1)]), HOST4, _foo_pods({"node-a": 2, "node-b": 1, "node-d": 3}), [],
                 {"node-a": 20, "node-b": 60, "node-c": 100, "node-d": 0}, id="2/1/0/3, all 4 nodes are candidates"),
    pytest.param(pod("p", FOO_POD, spread=[soft(1, selector=None)]), HOST4,
                 _foo_pods({"node-a": 2, "node-b": 1, "node-d": 3}), [],
                 {"node-a": 100, "node-b": 100, "node-c": 100, "node-d": 100}, id="null selector"),
    pytest.param(pod("p", FOO_POD, spread=[soft(2)]), HOST4, _foo_pods({"node-a": 2, "node-b": 1, "node-d": 3}), [],
                 {"node-a": 33, "node-b": 66, "node-c": 100, "node-d": 16}, id="2/1/0/3, maxSkew 2"),
    pytest.param(pod("p", FOO_POD, spread=[soft(3)]), HOST4,
                 _foo_pods({"node-a": 4, "node-b": 3, "node-c": 2, "node-d": 1}), [],
                 {"node-a": 44, "node-b": 66, "node-c": 77, "node-d": 100}, id="4/3/2/1, maxSkew 3"),
    pytest.param(pod("p", FOO_POD, spread=[soft(1)]), [hn("node-a"), hn("node-b"), hn("node-x")],
                 _foo_pods({"node-a": 4, "node-b": 2, "node-x": 1, "node-y": 3}), [hn("node-y")],
                 {"node-a": 33, "node-b": 83, "node-x": 100}, id="4/2/1/~3~, 3 of 4 nodes are candidates"),
    pytest.param(pod("p", FOO_POD, spread=[soft(1)]), [hn("node-a"), node("node-b", n="node-b"), hn("node-x")],
                 _foo_pods({"node-a": 4, "node-b": 2, "node-x": 1, "node-y": 3}), [hn("node-y")],
                 {"node-a": 16, "node-b": 0, "node-x": 100}, id="4/?2?/1/~3~, node-b lacks the topology key"),
    pytest.param(pod("p", FOO_POD, spread=[soft(1, "zone")]), HOST_ZONED[:3],
                 _foo_pods({"node-a": 4, "node-b": 2, "node-x": 1, "node-y": 3}), HOST_ZONED[3:],
                 {"node-a": 75, "node-b": 75, "node-x": 100}, id="one constraint on zone, 3 of 4 candidates"),
    pytest.param(pod("p", FOO_POD, spread=[soft(1, "zone"), soft(1)]), [HOST_ZONED[0], HOST_ZONED[2]],
                 _foo_pods({"node-a": 2, "node-b": 1, "node-x": 2, "node-y": 4}), [HOST_ZONED[1], HOST_ZONED[3]],
                 {"node-a": 100, "node-x": 63}, id="zone and node, 2/~1~/2/~4~"),
    pytest.param(pod("p", FOO_BAR, spread=ZONE_FOO_HOST_BAR), HOST_ZONED, DIFFERENT_SELECTOR_PODS, [],
                 {"node-a": 60, "node-b": 20, "node-x": 100, "node-y": 60}, id="zone and node, different selectors"),
    pytest.param(pod("p", FOO_BAR, spread=ZONE_FOO_HOST_BAR), HOST_ZONED,
                 [_bar("p-b1", "node-b"), foo("p-x1", "node-x"), pod("p-y1", FOO_BAR, on="node-y")], [],
                 {"node-a": 100, "node-b": 60, "node-x": 40, "node-y": 0},
                 id="different selectors, some nodes have 0 pods"),
    pytest.param(pod("p", FOO_BAR, spread=ZONE_FOO_HOST_BAR), HOST_ZONED[:3], DIFFERENT_SELECTOR_PODS,
                 HOST_ZONED[3:], {"node-a": 50, "node-b": 25, "node-x": 100},
                 id="different selectors, 3 of 4 candidates"),
    pytest.param(pod("p", FOO_POD, spread=[soft(1)]), [hn("node-a"), hn("node-b")],
                 [foo("p-a1", "node-a", ns="ns1"), foo("p-a2", "node-a"), foo("p-b1", "node-b"),
                  foo("p-b2", "node-b")], [], {"node-a": 100, "node-b": 33},
                 id="existing pods in a different namespace do not count"),
    pytest.param(pod("p", FOO_POD, spread=[soft(1)]), [hn("node-a"), hn("node-b")],
                 [foo("p-a", "node-a", terminating=True), foo("p-b", "node-b")], [], {"node-a": 100, "node-b": 0},
                 id="terminating pods are excluded"),
    pytest.param(pod("p", FOO_POD, spread=[soft(2, "node", min_domains=10)]), THREE_NODES, SPREAD_2_2_1, [],
                 {"node-a": 75, "node-b": 75, "node-c": 100}, id="minDomains has no effect when ScheduleAnyway"),
    pytest.param(pod("p", FOO_BAR, spread=[soft(1, "zone", selector={}, match_label_keys=["foo"]),
                                           soft(1, selector={}, match_label_keys=["bar"])]),
                 [hn("node-a", zone="zone1"), hn("node-b", zone="zone1"), hn("node-c", zone="zone2"),
                  hn("node-d", zone="zone2")],
                 [foo("p-a1", "node-a"), pod("p-b1", FOO_BAR, on="node-b"), foo("p-y1", "node-c"),
                  _bar("p-y2", "node-c")], [], {"node-a": 60, "node-b": 20, "node-c": 60, "node-d": 100},
                 id="matchLabelKeys ANDed with an empty labelSelector"),
    pytest.param(pod("p", {"foo": "", "bar": "", "baz": ""},
                     spread=[soft(1, "zone"), soft(1, selector=BAR, match_label_keys=["baz"])]),
                 [hn("node-a", zone="zone1"), hn("node-b", zone="zone1"), hn("node-c", zone="zone2"),
                  hn("node-d", zone="zone2")],
                 [foo("p-a1", "node-a"), pod("p-b1", {"foo": "", "bar": "", "baz": ""}, on="node-b"),
                  foo("p-c1", "node-c"), _bar("p-c2", "node-c"), pod("p-d3", {"bar": "", "baz": ""}, on="node-c")],
                 [], {"node-a": 60, "node-b": 20, "node-c": 60, "node-d": 100},
                 id="matchLabelKeys ANDed with a non-empty labelSelector"),
]


@pytest.mark.parametrize("incoming, nodes, existing, failed, want", SCORE)
def test_score(incoming: dict, nodes: list, existing: list, failed: list, want: dict) -> None:
    assert scores(incoming, nodes, existing, failed) == want


SCORE_INCLUSION_NODES = [node("node-a", node="node-a", foo=""), node("node-b", node="node-b", foo=""),
                         node("node-c", node="node-c")]
SCORE_TAINT_NODES = [node("node-a", node="node-a"), node("node-b", node="node-b"),
                     node("node-c", UNSCHEDULABLE_TAINT, node="node-c")]
SCORE_INCLUSION_PODS = _foo_pods({"node-a": 2, "node-b": 1, "node-c": 1})
HONORED = {"node-a": 0, "node-b": 33, "node-c": 100}
IGNORED = {"node-a": 66, "node-b": 100, "node-c": 100}


@pytest.mark.parametrize("incoming, nodes, want", [
    pytest.param(pod("p", FOO_POD, node_selector={"foo": ""}, spread=[soft(1, "node")]), SCORE_INCLUSION_NODES,
                 HONORED, id="NodeAffinityPolicy honored with nodeSelector"),
    pytest.param(pod("p", FOO_POD, node_selector={"foo": ""}, spread=[soft(1, "node", affinity_policy="Ignore")]),
                 SCORE_INCLUSION_NODES, IGNORED, id="NodeAffinityPolicy ignored with nodeSelector"),
    pytest.param(pod("p", FOO_POD, affinity_in=("foo", [""]), spread=[soft(1, "node")]), SCORE_INCLUSION_NODES,
                 HONORED, id="NodeAffinityPolicy honored with nodeAffinity"),
    pytest.param(pod("p", FOO_POD, affinity_in=("foo", [""]), spread=[soft(1, "node", affinity_policy="Ignore")]),
                 SCORE_INCLUSION_NODES, IGNORED, id="NodeAffinityPolicy ignored with nodeAffinity"),
    pytest.param(pod("p", FOO_POD, spread=[soft(1, "node", taints_policy="Honor")]), SCORE_TAINT_NODES, HONORED,
                 id="NodeTaintsPolicy honored"),
    pytest.param(pod("p", FOO_POD, spread=[soft(1, "node")]), SCORE_TAINT_NODES, IGNORED,
                 id="NodeTaintsPolicy ignored"),
])
def test_score_node_inclusion(incoming: dict, nodes: list, want: dict) -> None:
    assert scores(incoming, nodes, SCORE_INCLUSION_PODS) == want


def _owned(spread: dict[str, int], owner: str = "rs1") -> list[dict]:
    return [pod(f"p-{n[-1]}{i}", FOO_POD, on=n, owner=owner) for n, k in spread.items() for i in range(k)]


def test_system_defaults_score_like_one_hostname_constraint() -> None:
    # upstream: "system defaulting, nodes don't have zone, pods match service" (here: same controller owner)
    loose = [foo(f"loose-{i}", "node-d") for i in range(5)]  # same labels, no owner: not counted
    existing = _owned({"node-a": 4, "node-b": 3, "node-c": 2, "node-d": 1}) + loose
    got = scores(pod("p", FOO_POD, owner="rs1"), HOST4, existing)
    assert got == {"node-a": 44, "node-b": 66, "node-c": 77, "node-d": 100}


def test_system_defaults_score_nodes_without_a_zone() -> None:
    # nodes missing the zone label are still scored (requireAllTopologies is off for System defaults)
    nodes = [hn("node-a", **{"topology.kubernetes.io/zone": "mars"}), hn("node-b")]
    got = scores(pod("p", FOO_POD, owner="rs1"), nodes, _owned({"node-a": 3}))
    assert got["node-b"] == 100 and got["node-a"] < 100


def test_list_defaults_score_needs_every_key() -> None:
    config = PackingConfig(spread_defaults=(
        {"maxSkew": 1, "topologyKey": HOST, "whenUnsatisfiable": "ScheduleAnyway"},
        {"maxSkew": 1, "topologyKey": "rack", "whenUnsatisfiable": "ScheduleAnyway"}))
    nodes = [hn("node-a", rack="r1"), hn("node-b", rack="r1"), hn("node-c")]
    got = scores(pod("p", FOO_POD, owner="rs1"), nodes, _owned({"node-a": 2}), config=config)
    assert got == {"node-a": 40, "node-b": 100, "node-c": 0}  # node-c lacks "rack": ignored, scored 0
