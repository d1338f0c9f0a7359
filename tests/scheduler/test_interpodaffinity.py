"""InterPodAffinity: cases translated from kube-scheduler's interpodaffinity filtering_test.go
(TestRequiredAffinitySingleNode, TestRequiredAffinityMultipleNodes) and scoring_test.go
(TestPreferredAffinity, TestPreferredAffinityWithHardPodAffinitySymmetricWeight), plus
matchLabelKeys / mismatchLabelKeys and the cost rules of this implementation.

Upstream's namespace "" is "default" here (pod_info's default namespace).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from driver.scheduler import labels as sel
from driver.scheduler.framework import CycleContext
from driver.scheduler.packing.config import PackingConfig
from driver.scheduler.plugins import interpodaffinity as ipa
from driver.scheduler.podinfo import pod_info
from driver.scheduler.state import ClusterState

AFF, ANTI, EXIST = "aff", "anti", "exist"  # expected filter outcomes (None: passes)
EXPECT = {AFF: (ipa.REASON_AFFINITY, True), ANTI: (ipa.REASON_ANTI_AFFINITY, False),
          EXIST: (ipa.REASON_EXISTING_ANTI_AFFINITY, False)}

NAMESPACES = {"subteam1.team1": {"team": "team1"}, "subteam2.team1": {"team": "team1"},
              "subteam1.team2": {"team": "team2"}, "subteam2.team2": {"team": "team2"}}

_uid = itertools.count()


# ---- builders ----------------------------------------------------------------------------------


def expr(key: str, op: str, *values: str) -> dict:
    e: dict[str, Any] = {"key": key, "operator": op}
    if values:
        e["values"] = list(values)
    return e


def term(topology: str, *exprs: dict, namespaces: list[str] | None = None, ns_selector: dict | None = None,
         **extra: Any) -> dict:
    t: dict[str, Any] = {"labelSelector": {"matchExpressions": list(exprs)}, "topologyKey": topology}
    if namespaces is not None:
        t["namespaces"] = namespaces
    if ns_selector is not None:
        t["namespaceSelector"] = ns_selector
    t.update(extra)
    return t


def weighted(weight: int, t: dict) -> dict:
    return {"weight": weight, "podAffinityTerm": t}


def affinity(req: list | None = None, anti: list | None = None, pref: list | None = None,
             pref_anti: list | None = None) -> dict:
    out: dict[str, Any] = {}
    if req or pref:
        out["podAffinity"] = {k: v for k, v in (("requiredDuringSchedulingIgnoredDuringExecution", req),
                                                 ("preferredDuringSchedulingIgnoredDuringExecution", pref)) if v}
    if anti or pref_anti:
        out["podAntiAffinity"] = {k: v for k, v in (("requiredDuringSchedulingIgnoredDuringExecution", anti),
                                                     ("preferredDuringSchedulingIgnoredDuringExecution", pref_anti)) if v}
    return out


def pod(labels: dict | None = None, node: str = "", ns: str = "default", aff: dict | None = None,
        uid: str | None = None) -> dict:
    n = next(_uid)
    spec: dict[str, Any] = {"containers": [{"name": "c"}]}
    if node:
        spec["nodeName"] = node
    if aff:
        spec["affinity"] = aff
    return {"metadata": {"name": f"p{n}", "namespace": ns, "uid": uid or f"uid-{n}", "labels": dict(labels or {})},
            "spec": spec}


def node(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, "labels": labels},
            "status": {"allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"}}}


def cluster(nodes: list[dict], pods: list[dict]) -> ClusterState:
    state = ClusterState({})
    for n in nodes:
        state.add_node(n)
    for name, labels in NAMESPACES.items():
        state.pods.set_namespace(name, labels)
    for p in pods:
        state.pods.add(pod_info(p))
    return state


def run(incoming: dict, state: ClusterState, hard_weight: int | None = None):
    ctx = CycleContext(incoming, pod_info(incoming), state, PackingConfig())
    if hard_weight is None:
        return ipa.prefilter(ctx)
    return ipa.build(ctx, hard_weight)


def filter_results(incoming: dict, state: ClusterState, names: list[str]) -> list[str | None]:
    checks = run(incoming, state)
    if checks is None or checks.filter is None:
        return [None] * len(names)  # nothing can reject a node (no filter at all)
    out: list[str | None] = []
    for name in names:
        r = checks.filter(state.nodes[name])
        if r is None:
            out.append(None)
            continue
        kind = next(k for k, (reason, _) in EXPECT.items() if reason == r.reason)
        assert r.plugin == "InterPodAffinity"
        assert r.unresolvable is EXPECT[kind][1], f"{kind}: unresolvable should be {EXPECT[kind][1]}"
        out.append(kind)
    return out


def scores(incoming: dict, state: ClusterState, names: list[str], hard_weight: int | None = None) -> list[float]:
    checks = run(incoming, state, hard_weight)
    assert checks is not None and checks.score is not None and checks.normalize is not None
    raw = {n: checks.score(state.nodes[n]) for n in names}
    normalized = checks.normalize(raw)
    return [normalized[n] for n in names]


# ---- filter: one node (TestRequiredAffinitySingleNode) -------------------------------------------

NODE1 = node("node1", region="r1", zone="z11")
SECURITYSCAN = {"service": "securityscan"}
S1 = {"security": "S1"}
EXISTING = pod(SECURITYSCAN, node="node1")

SINGLE_NODE = [
    ("affinity In matches the existing pod",
     pod(S1, aff=affinity(req=[term("region", expr("service", "In", "securityscan", "value2"))])),
     [EXISTING], None),
    ("affinity NotIn matches the existing pod",
     pod(S1, aff=affinity(req=[term("region", expr("service", "NotIn", "securityscan3", "value3"))])),
     [EXISTING], None),
    ("affinity fails: the matching pod is in another namespace",
     pod(S1, aff=affinity(req=[term("region", expr("service", "In", "securityscan", "value2"),
                                    namespaces=["DiffNameSpace"])])),
     [pod(SECURITYSCAN, node="node1", ns="ns")], AFF),
    ("affinity fails: labelSelector matches no pod",
     pod(SECURITYSCAN, aff=affinity(req=[term("region", expr("service", "In", "antivirusscan", "value2"))])),
     [EXISTING], AFF),
    ("affinity with several operators in several terms",
     pod(S1, aff=affinity(req=[
         term("region", expr("service", "Exists"), expr("wrongkey", "DoesNotExist")),
         term("region", expr("service", "In", "securityscan"), expr("service", "NotIn", "WrongValue"))])),
     [EXISTING], None),
    ("affinity requirements are ANDed: one expression does not match",
     pod(S1, aff=affinity(req=[
         term("region", expr("service", "Exists"), expr("wrongkey", "DoesNotExist")),
         term("region", expr("service", "In", "securityscan2"), expr("service", "NotIn", "WrongValue"))])),
     [EXISTING], AFF),
    ("affinity and anti-affinity both satisfied",
     pod(S1, aff=affinity(req=[term("region", expr("service", "In", "securityscan", "value2"))],
                          anti=[term("node", expr("service", "In", "antivirusscan", "value2"))])),
     [EXISTING], None),
    ("affinity, anti-affinity and existing pod's anti-affinity all satisfied",
     pod(S1, aff=affinity(req=[term("region", expr("service", "In", "securityscan", "value2"))],
                          anti=[term("node", expr("service", "In", "antivirusscan", "value2"))])),
     [pod(SECURITYSCAN, node="node1", aff=affinity(anti=[term("node", expr("service", "In", "antivirusscan"))]))],
     None),
    ("affinity satisfied, anti-affinity not",
     pod(S1, aff=affinity(req=[term("region", expr("service", "In", "securityscan", "value2"))],
                          anti=[term("zone", expr("service", "In", "securityscan", "value2"))])),
     [EXISTING], ANTI),
    ("own terms satisfied, the existing pod's anti-affinity is not",
     pod(SECURITYSCAN, aff=affinity(req=[term("region", expr("service", "In", "securityscan", "value2"))],
                                    anti=[term("node", expr("service", "In", "antivirusscan", "value2"))])),
     [pod(SECURITYSCAN, node="node1",
          aff=affinity(anti=[term("zone", expr("service", "In", "securityscan", "value2"))]))],
     EXIST),
    ("the pod does not match its own term and the only match is on a node outside the snapshot",
     pod(SECURITYSCAN, aff=affinity(req=[term("region", expr("service", "NotIn", "securityscan", "value2"))])),
     [pod(SECURITYSCAN, node="node2")], AFF),
    ("a pod without terms is kept off by an existing pod's anti-affinity",
     pod(SECURITYSCAN),
     [pod(SECURITYSCAN, node="node1", aff=affinity(anti=[term("zone", expr("service", "In", "securityscan"))]))],
     EXIST),
    ("incoming anti-affinity matches first although the existing pod's does too",
     pod(SECURITYSCAN, aff=affinity(anti=[term("region", expr("service", "Exists")),
                                          term("region", expr("security", "Exists"))])),
     [pod(S1, node="node1", aff=affinity(anti=[term("zone", expr("security", "Exists"))]))], ANTI),
    ("symmetry a1: partial match, incoming side",
     pod(SECURITYSCAN, aff=affinity(anti=[term("zone", expr("service", "Exists")),
                                          term("zone", expr("security", "Exists"))])),
     [pod(S1, node="node1", aff=affinity(anti=[term("zone", expr("security", "Exists"))]))], ANTI),
    ("symmetry a2: partial match, existing side",
     pod(S1, aff=affinity(anti=[term("zone", expr("security", "Exists"))])),
     [pod(SECURITYSCAN, node="node1", aff=affinity(anti=[term("zone", expr("service", "Exists")),
                                                         term("zone", expr("security", "Exists"))]))], EXIST),
    ("symmetry b1",
     pod({"abc": "", "xyz": ""}, aff=affinity(anti=[term("zone", expr("abc", "Exists")),
                                                    term("zone", expr("def", "Exists"))])),
     [pod({"def": "", "xyz": ""}, node="node1", aff=affinity(anti=[term("zone", expr("abc", "Exists")),
                                                                   term("zone", expr("def", "Exists"))]))], ANTI),
    ("symmetry b2",
     pod({"def": "", "xyz": ""}, aff=affinity(anti=[term("zone", expr("abc", "Exists")),
                                                    term("zone", expr("def", "Exists"))])),
     [pod({"abc": "", "xyz": ""}, node="node1", aff=affinity(anti=[term("zone", expr("abc", "Exists")),
                                                                   term("zone", expr("def", "Exists"))]))], ANTI),
    ("affinity with a matching namespaceSelector",
     pod(S1, aff=affinity(req=[term("region", expr("service", "In", "securityscan", "value2"),
                                    ns_selector={"matchExpressions": [expr("team", "In", "team1")]})])),
     [pod(SECURITYSCAN, node="node1", ns="subteam1.team1")], None),
    ("affinity with a namespaceSelector that does not match",
     pod(S1, aff=affinity(req=[term("region", expr("service", "In", "securityscan", "value2"),
                                    ns_selector={"matchExpressions": [expr("team", "In", "team1")]})])),
     [pod(SECURITYSCAN, node="node1", ns="subteam1.team2")], AFF),
    ("anti-affinity with a matching namespaceSelector",
     pod(S1, ns="subteam1.team1", aff=affinity(anti=[term("zone", expr("service", "In", "securityscan", "value2"),
                                                          ns_selector={"matchExpressions": [expr("team", "In", "team1")]})])),
     [pod(SECURITYSCAN, node="node1", ns="subteam2.team1")], ANTI),
    ("anti-affinity with the all-namespaces selector {}",
     pod(S1, ns="subteam1.team1", aff=affinity(anti=[term("zone", expr("service", "In", "securityscan", "value2"),
                                                          ns_selector={})])),
     [pod(SECURITYSCAN, node="node1", ns="subteam2.team1")], ANTI),
    ("anti-affinity with a namespaceSelector that does not match",
     pod(S1, ns="subteam1.team1", aff=affinity(anti=[term("zone", expr("service", "In", "securityscan", "value2"),
                                                          ns_selector={"matchExpressions": [expr("team", "In", "team1")]})])),
     [pod(SECURITYSCAN, node="node1", ns="subteam1.team2")], None),
]


@pytest.mark.parametrize("incoming, existing, want", [c[1:] for c in SINGLE_NODE], ids=[c[0] for c in SINGLE_NODE])
def test_required_single_node(incoming, existing, want):
    state = cluster([NODE1], existing)
    assert filter_results(incoming, state, ["node1"]) == [want]


@pytest.mark.parametrize("incoming, existing", [
    (pod(), []),  # no terms, no pods
    (pod(SECURITYSCAN), [EXISTING]),  # no terms anywhere
    # the existing pod's anti-affinity (NotIn) does not select the incoming pod: upstream Skip
    (pod(SECURITYSCAN), [pod(SECURITYSCAN, node="node1",
                             aff=affinity(anti=[term("zone", expr("service", "NotIn", "securityscan", "value2"))]))]),
], ids=["nothing", "plain pods", "existing anti-affinity not selecting"])
def test_nothing_to_check_returns_none(incoming, existing):
    assert run(incoming, cluster([NODE1], existing)) is None


# ---- filter: several nodes (TestRequiredAffinityMultipleNodes) -----------------------------------

CHINA, CHINA_AZ1, INDIA = {"region": "China"}, {"region": "China", "az": "az1"}, {"region": "India"}


def _abc(*labels):  # region r1 nodes A, B (C) with zones z1.. and hostnames
    return [node(f"node{x}", region="r1", zone=z, hostname=f"node{x}") for x, z in labels]


MULTI_NODE = [
    ("nodes sharing the matched domain pass, the other region fails",
     pod(aff=affinity(req=[term("region", expr("foo", "In", "bar"))])),
     [pod({"foo": "bar"}, node="node1")],
     [node("node1", **CHINA), node("node2", **CHINA_AZ1), node("node3", **INDIA)], [None, None, AFF]),
    ("the first pod of a self-affine collection goes anywhere with the topology label",
     pod({"foo": "bar", "service": "securityscan"},
         aff=affinity(req=[term("zone", expr("foo", "In", "bar")), term("zone", expr("service", "In", "securityscan"))])),
     [pod({"foo": "bar"}, node="nodeA")],
     [node("nodeA", zone="az1", hostname="h1"), node("nodeB", zone="az2", hostname="h2")], [None, None]),
    ("the first pod of a collection still needs the topology label",
     pod({"foo": "bar", "service": "securityscan"},
         aff=affinity(req=[term("zone", expr("foo", "In", "bar")), term("zone", expr("service", "In", "securityscan"))])),
     [pod({"foo": "bar"}, node="nodeA")],
     [node("nodeA", zoneLabel="az1", hostname="h1"), node("nodeB", zoneLabel="az2", hostname="h2")], [AFF, AFF]),
    ("anti-affinity forbids the whole domain of the matching pod",
     pod(aff=affinity(anti=[term("region", expr("foo", "In", "abc"))])),
     [pod({"foo": "abc"}, node="nodeA")],
     [node("nodeA", region="r1", hostname="nodeA"), node("nodeB", region="r1", hostname="nodeB")], [ANTI, ANTI]),
    ("anti-affinity: any matching term forbids",
     pod(aff=affinity(anti=[term("region", expr("foo", "In", "abc")), term("zone", expr("service", "In", "securityscan"))])),
     [pod({"foo": "abc", "service": "securityscan"}, node="nodeA")],
     _abc(("A", "z1"), ("B", "z2")), [ANTI, ANTI]),
    ("anti-affinity: another region is free",
     pod(aff=affinity(anti=[term("region", expr("foo", "In", "abc"))])),
     [pod({"foo": "abc"}, node="nodeA")],
     [node("nodeA", **CHINA), node("nodeB", **CHINA_AZ1), node("nodeC", **INDIA)], [ANTI, ANTI, None]),
    ("anti-affinity counts only pods in the term's namespaces",
     pod({"foo": "123"}, ns="NS1", aff=affinity(anti=[term("region", expr("foo", "In", "bar"))])),
     [pod({"foo": "bar"}, node="nodeA", ns="NS1"),
      pod(node="nodeC", ns="NS2", aff=affinity(anti=[term("region", expr("foo", "In", "123"))]))],
     [node("nodeA", **CHINA), node("nodeB", **CHINA_AZ1), node("nodeC", **INDIA)], [ANTI, ANTI, None]),
    ("incoming anti-affinity on a topology key no node has forbids nothing",
     pod(aff=affinity(anti=[term("invalid-node-label", expr("foo", "Exists"))])),
     [pod({"foo": ""}, node="nodeA")],
     _abc(("A", "z1"), ("B", "z1")), [None, None]),
    ("the pod violates a term of each existing pod on every node",
     pod({"foo": "", "bar": ""}),
     [pod(node="nodeA", aff=affinity(anti=[term("zone", expr("foo", "Exists"))])),
      pod(node="nodeA", aff=affinity(anti=[term("region", expr("bar", "Exists"))]))],
     _abc(("A", "z1"), ("B", "z2")), [EXIST, EXIST]),
    ("the incoming pod's terms are violated on every node",
     pod(aff=affinity(anti=[term("zone", expr("foo", "Exists")), term("region", expr("bar", "Exists"))])),
     [pod({"foo": ""}, node="nodeA"), pod({"bar": ""}, node="nodeB")],
     _abc(("A", "z1"), ("B", "z2")), [ANTI, ANTI]),
    ("existing anti-affinity: a term counts only with both selector and topology key",
     pod({"foo": "", "bar": ""}),
     [pod(node="nodeA", aff=affinity(anti=[term("invalid-node-label", expr("foo", "Exists")),
                                           term("zone", expr("bar", "Exists"))]))],
     _abc(("A", "z1"), ("B", "z2")), [EXIST, None]),
    ("incoming anti-affinity: a term counts only with both selector and topology key",
     pod(aff=affinity(anti=[term("invalid-node-label", expr("foo", "Exists")), term("zone", expr("bar", "Exists"))])),
     [pod({"foo": "", "bar": ""}, node="nodeA")],
     _abc(("A", "z1"), ("B", "z2")), [ANTI, None]),
    ("existing anti-affinity with valid keys forbids both domains",
     pod({"foo": "", "bar": ""}),
     [pod(node="nodeA", aff=affinity(anti=[term("region", expr("foo", "Exists")), term("zone", expr("bar", "Exists"))]))],
     _abc(("A", "z1"), ("B", "z2")), [EXIST, EXIST]),
    ("incoming anti-affinity with valid keys forbids both domains",
     pod(aff=affinity(anti=[term("region", expr("foo", "Exists")), term("zone", expr("bar", "Exists"))])),
     [pod({"foo": "", "bar": ""}, node="nodeA")],
     _abc(("A", "z1"), ("B", "z2")), [ANTI, ANTI]),
    ("existing pods on nodeA and nodeB each have a matching term: only nodeC",
     pod({"foo": "", "bar": ""}),
     [pod(node="nodeA", aff=affinity(anti=[term("zone", expr("foo", "Exists")), term("zone", expr("labelA", "Exists"))])),
      pod(node="nodeB", aff=affinity(anti=[term("zone", expr("bar", "Exists")), term("zone", expr("labelB", "Exists"))]))],
     _abc(("A", "z1"), ("B", "z2"), ("C", "z3")), [EXIST, EXIST, None]),
    ("affinity: one pod matching all terms satisfies every term's domain",
     pod(aff=affinity(req=[term("region", expr("foo", "Exists")), term("zone", expr("bar", "Exists"))])),
     [pod({"foo": "", "bar": ""}, node="nodeA")],
     _abc(("A", "z1"), ("B", "z1")), [None, None]),
    ("affinity: the terms must be matched by the same pod",
     pod(aff=affinity(req=[term("region", expr("foo", "Exists")), term("zone", expr("bar", "Exists"))])),
     [pod({"foo": ""}, node="nodeA"), pod({"bar": ""}, node="nodeB")],
     _abc(("A", "z1"), ("B", "z2")), [AFF, AFF]),
]


@pytest.mark.parametrize("incoming, existing, nodes, want", [c[1:] for c in MULTI_NODE], ids=[c[0] for c in MULTI_NODE])
def test_required_multiple_nodes(incoming, existing, nodes, want):
    state = cluster(nodes, existing)
    assert filter_results(incoming, state, [n["metadata"]["name"] for n in nodes]) == want


def test_existing_anti_affinity_on_missing_topology_key_is_skipped():
    """Upstream: the existing pod's only term has a key no node carries → PreFilter Skip."""
    state = cluster(_abc(("A", "z1"), ("B", "z1")),
                    [pod(node="nodeA", aff=affinity(anti=[term("invalid-node-label", expr("foo", "Exists"))]))])
    assert run(pod({"foo": ""}), state) is None


# ---- matchLabelKeys / mismatchLabelKeys (resolved by podinfo) -------------------------------------


def test_match_label_keys_limit_anti_affinity_to_the_same_revision():
    nodes = [node("a", hostname="a"), node("b", hostname="b")]
    existing = [pod({"app": "web", "pod-template-hash": "v1"}, node="a"),
                pod({"app": "web", "pod-template-hash": "v2"}, node="b")]
    incoming = pod({"app": "web", "pod-template-hash": "v2"}, aff=affinity(anti=[
        term("hostname", expr("app", "In", "web"), matchLabelKeys=["pod-template-hash"])]))
    assert filter_results(incoming, cluster(nodes, existing), ["a", "b"]) == [None, ANTI]


def test_mismatch_label_keys_require_another_tenant():
    nodes = [node("a", zone="z1"), node("b", zone="z2")]
    existing = [pod({"app": "db", "tenant": "t1"}, node="a"), pod({"app": "db", "tenant": "t2"}, node="b")]
    incoming = pod({"app": "web", "tenant": "t1"}, aff=affinity(req=[
        term("zone", expr("app", "In", "db"), mismatchLabelKeys=["tenant"])]))
    assert filter_results(incoming, cluster(nodes, existing), ["a", "b"]) == [AFF, None]


def test_incoming_pod_does_not_count_itself():
    """Already assumed on nodeA (e.g. rescheduled after a failed bind): its own labels must not
    trip its anti-affinity there."""
    me = pod({"app": "solo"}, uid="me", aff=affinity(anti=[term("hostname", expr("app", "In", "solo"))]))
    placed = dict(me, spec=dict(me["spec"], nodeName="nodeA"))
    state = cluster([node("nodeA", hostname="nodeA"), node("nodeB", hostname="nodeB")], [placed])
    assert filter_results(me, state, ["nodeA", "nodeB"]) == [None, None]


def test_filter_only_pod_has_no_score():
    state = cluster([node("a", zone="z1")], [pod({"app": "x"}, node="a")])
    checks = run(pod(aff=affinity(anti=[term("zone", expr("app", "In", "x"))])), state)
    assert checks is not None and checks.filter is not None and checks.score is None


# ---- score (TestPreferredAffinity) ------------------------------------------------------------------

S2 = {"security": "S2"}
AZ1, AZ2 = {"az": "az1"}, {"az": "az2"}


def pref(weight: int, topology: str, *exprs: dict, **kw: Any) -> dict:
    return weighted(weight, term(topology, *exprs, **kw))


STAY_S1_REGION = affinity(pref=[pref(5, "region", expr("security", "In", "S1"))])
STAY_S2_REGION = affinity(pref=[pref(6, "region", expr("security", "In", "S2"))])
AFFINITY3 = affinity(pref=[pref(8, "region", expr("security", "NotIn", "S1"), expr("security", "In", "S2")),
                           pref(2, "region", expr("security", "Exists"), expr("wrongkey", "DoesNotExist"))])
HARD = affinity(req=[term("region", expr("security", "In", "S1", "value2")),
                     term("region", expr("security", "Exists"), expr("wrongkey", "DoesNotExist"))])
AWAY_S1_AZ = affinity(pref_anti=[pref(5, "az", expr("security", "In", "S1"))])
AWAY_S2_AZ = affinity(pref_anti=[pref(5, "az", expr("security", "In", "S2"))])
STAY_S1_AWAY_S2 = affinity(pref=[pref(8, "region", expr("security", "In", "S1"))],
                           pref_anti=[pref(5, "az", expr("security", "In", "S2"))])
TEAM1 = {"matchExpressions": [expr("team", "In", "team1")]}
AFF_NS_SELECTOR = affinity(pref=[pref(5, "region", expr("security", "In", "S1"), namespaces=["subteam2.team2"],
                                      ns_selector=TEAM1)])
ANTI_NS_SELECTOR = affinity(pref_anti=[pref(5, "region", expr("security", "In", "S1"), namespaces=["subteam2.team2"],
                                            ns_selector=TEAM1)])


def nodes_(*labels: dict) -> list[dict]:
    return [node(f"node{i}", **lab) for i, lab in enumerate(labels, 1)]


PREFERRED = [
    ("affinity: matching pod in the domain scores high",
     pod(S1, aff=STAY_S1_REGION),
     [pod(S1, node="node1"), pod(S2, node="node2"), pod(S1, node="node3")],
     nodes_(CHINA, INDIA, AZ1), [100, 0, 0]),
    ("affinity: every node of the matched domain scores the same",
     pod(aff=STAY_S1_REGION), [pod(S1, node="node1")],
     nodes_(CHINA, CHINA_AZ1, INDIA), [100, 100, 0]),
    ("affinity: the region with more matches wins",
     pod(S1, aff=STAY_S2_REGION),
     [pod(S2, node=n) for n in ("node1", "node1", "node2", "node3", "node4", "node5")],
     nodes_(CHINA, INDIA, CHINA, CHINA, INDIA), [100, 0, 100, 100, 0]),
    ("affinity: several operators and weights",
     pod(S1, aff=AFFINITY3), [pod(S1, node="node1"), pod(S2, node="node2"), pod(S1, node="node3")],
     nodes_(CHINA, INDIA, AZ1), [20, 100, 0]),
    ("symmetry: existing pods' preferred affinity",
     pod(S2), [pod(S1, node="node1", aff=STAY_S1_REGION), pod(S2, node="node2", aff=STAY_S2_REGION)],
     nodes_(CHINA, INDIA, AZ1), [0, 100, 0]),
    ("symmetry with a namespace selector",
     pod(S1, ns="subteam1.team1"),
     [pod(S1, node="node1", aff=AFF_NS_SELECTOR), pod(S2, node="node2", aff=STAY_S2_REGION)],
     nodes_(CHINA, INDIA, AZ1), [100, 0, 0]),
    ("anti-affinity symmetry with a namespace selector",
     pod(S1, ns="subteam1.team1"),
     [pod(S1, node="node1", aff=ANTI_NS_SELECTOR), pod(S2, node="node2", aff=STAY_S2_REGION)],
     nodes_(CHINA, INDIA, AZ1), [0, 100, 100]),
    ("symmetry: existing pods' required affinity at hardPodAffinityWeight",
     pod(S1), [pod(S1, node="node1", aff=HARD), pod(S2, node="node2", aff=HARD)],
     nodes_(CHINA, INDIA, AZ1), [100, 100, 0]),
    ("anti-affinity: the node with the matching pod scores low",
     pod(S1, aff=AWAY_S1_AZ), [pod(S1, node="node1"), pod(S2, node="node2")],
     nodes_(AZ1, CHINA), [0, 100]),
    ("anti-affinity: a node without the topology key scores high",
     pod(S1, aff=AWAY_S1_AZ), [pod(S1, node="node1"), pod(S1, node="node2")],
     nodes_(AZ1, CHINA), [0, 100]),
    ("anti-affinity: more matches, lower score",
     pod(S1, aff=AWAY_S1_AZ), [pod(S1, node="node1"), pod(S1, node="node1"), pod(S2, node="node2")],
     nodes_(AZ1, INDIA), [0, 100]),
    ("anti-affinity symmetry",
     pod(S2), [pod(S1, node="node1", aff=AWAY_S2_AZ), pod(S2, node="node2", aff=AWAY_S1_AZ)],
     nodes_(AZ1, AZ2), [0, 100]),
    ("affinity and anti-affinity together",
     pod(S1, aff=STAY_S1_AWAY_S2), [pod(S1, node="node1"), pod(S1, node="node2")],
     nodes_(CHINA, AZ1), [100, 0]),
    ("same region, spread across nodes",
     pod(S1, aff=STAY_S1_AWAY_S2),
     [pod(S1, node=n) for n in ("node1", "node1", "node2", "node3", "node3", "node4", "node5")],
     nodes_({"region": "China", "az": "az1"}, INDIA, CHINA, CHINA, INDIA), [100, 0, 100, 100, 0]),
    ("affinity, anti-affinity and both symmetries",
     pod(S1, aff=STAY_S1_AWAY_S2),
     [pod(S1, node="node1"), pod(S2, node="node2"), pod(node="node3", aff=STAY_S1_AWAY_S2),
      pod(node="node4", aff=AWAY_S1_AZ)],
     nodes_(CHINA, AZ1, INDIA, AZ2), [100, 0, 100, 0]),
    ("one domain for all nodes: all equal, all 0",
     pod(S1), [pod(S1, node="node1"), pod(node="node2", aff=STAY_S1_AWAY_S2)],
     nodes_(CHINA, CHINA), [0, 0]),
    ("incoming affinity with namespaceSelector",
     pod(S1, ns="subteam1.team1", aff=AFF_NS_SELECTOR),
     [pod(S1, node="node1", ns="subteam1.team1"), pod(S1, node="node1", ns="subteam1.team1"),
      pod(S1, node="node1", ns="subteam1.team2"), pod(S1, node="node2", ns="subteam2.team1")],
     nodes_(CHINA, INDIA), [100, 0]),
    ("incoming affinity with namespaceSelector and namespaces",
     pod(S1, ns="subteam1.team1", aff=AFF_NS_SELECTOR),
     [pod(S1, node="node1", ns="subteam1.team1"), pod(S1, node="node1", ns="subteam1.team1"),
      pod(S1, node="node1", ns="subteam2.team2"), pod(S1, node="node2", ns="subteam2.team1")],
     nodes_(CHINA, INDIA), [100, 0]),
    ("incoming anti-affinity with namespaceSelector",
     pod(S1, ns="subteam1.team1", aff=ANTI_NS_SELECTOR),
     [pod(S1, node="node1", ns="subteam1.team1"), pod(S1, node="node1", ns="subteam1.team1"),
      pod(S1, node="node1", ns="subteam1.team2"), pod(S1, node="node2", ns="subteam2.team1")],
     nodes_(CHINA, INDIA), [0, 100]),
    ("incoming anti-affinity with namespaceSelector and namespaces",
     pod(S1, ns="subteam1.team1", aff=ANTI_NS_SELECTOR),
     [pod(S1, node="node1", ns="subteam1.team1"), pod(S1, node="node1", ns="subteam1.team1"),
      pod(S1, node="node1", ns="subteam2.team2"), pod(S1, node="node2", ns="subteam2.team1")],
     nodes_(CHINA, INDIA), [0, 100]),
    ("existing pods' preferred terms are not ignored",
     pod(S2), [pod(S1, node="node1", aff=STAY_S1_AWAY_S2), pod(S2, node="node2", aff=STAY_S2_REGION)],
     nodes_(CHINA, INDIA), [0, 100]),
]


@pytest.mark.parametrize("incoming, existing, nodes, want", [c[1:] for c in PREFERRED], ids=[c[0] for c in PREFERRED])
def test_preferred(incoming, existing, nodes, want):
    state = cluster(nodes, existing)
    assert scores(incoming, state, [n["metadata"]["name"] for n in nodes]) == want


def test_no_affinity_anywhere_returns_none():
    state = cluster(nodes_(CHINA, INDIA, AZ1), [pod(S1, node="node1")])
    assert run(pod(S1), state) is None


# ---- hardPodAffinityWeight (TestPreferredAffinityWithHardPodAffinitySymmetricWeight) ---------------

HARD_NS = affinity(req=[term("region", expr("service", "In", "S1"), namespaces=["default", "subteam2.team2"],
                             ns_selector=TEAM1)])
SERVICE_S1 = {"service": "S1"}


@pytest.mark.parametrize("ns, weight, want", [
    ("default", 1, [100, 100, 0]),  # default weight
    ("default", 0, None),  # zero weight: nothing to score
    ("subteam1.team2", 1, None),  # no matching namespace
    ("subteam1.team1", 1, [100, 100, 0]),  # matching namespaceSelector
    ("subteam2.team2", 1, [100, 100, 0]),  # matching namespaces
], ids=["default weight", "zero weight", "no matching namespace", "matching namespaceSelector", "matching namespaces"])
def test_hard_pod_affinity_weight(ns, weight, want):
    state = cluster(nodes_(CHINA, INDIA, AZ1), [pod(node="node1", aff=HARD_NS), pod(node="node2", aff=HARD_NS)])
    incoming = pod(SERVICE_S1, ns=ns)
    if want is None:
        assert run(incoming, state, hard_weight=weight) is None
    else:
        assert scores(incoming, state, ["node1", "node2", "node3"], hard_weight=weight) == want


def test_hard_weight_scales_the_symmetric_score():
    """hardPodAffinityWeight 10 against a preferred weight 5 the other way: the hard side wins."""
    state = cluster(nodes_(CHINA, INDIA),
                    [pod(node="node1", aff=affinity(req=[term("region", expr("service", "In", "S1"))])),
                     pod({"x": "y"}, node="node2")])
    incoming = pod(SERVICE_S1, aff=affinity(pref=[pref(5, "region", expr("x", "In", "y"))]))
    assert scores(incoming, state, ["node1", "node2"], hard_weight=10) == [100, 0]
    assert scores(incoming, state, ["node1", "node2"], hard_weight=1) == [0, 100]


@pytest.mark.parametrize("value", [-1, 101, "1", True])
def test_hard_weight_config_is_checked(value):
    class Cfg:
        hard_pod_affinity_weight = value
    with pytest.raises(ValueError, match="hardPodAffinityWeight"):
        ipa.hard_pod_affinity_weight(Cfg())


# ---- normalization -------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, want", [
    ({"a": -5.0, "b": 0.0, "c": 5.0}, {"a": 0.0, "b": 50.0, "c": 100.0}),
    ({"a": 0.0, "b": 2.0, "c": 3.0}, {"a": 0.0, "b": 66.0, "c": 100.0}),  # truncated like int64()
    ({"a": 12.0, "b": 24.0}, {"a": 0.0, "b": 100.0}),  # min is the lowest score, not 0
    ({"a": 7.0, "b": 7.0}, {"a": 0.0, "b": 0.0}),
    ({"a": -3.0}, {"a": 0.0}),
    ({}, {}),
])
def test_normalize(raw, want):
    assert ipa.normalize(raw) == want


def test_bad_term_names_the_field():
    bad = pod(aff=affinity(req=[{"labelSelector": {"matchLabels": {"a": "b"}}}]))
    with pytest.raises(sel.SelectorError, match="topologyKey"):
        pod_info(bad)


def test_prefilter_never_walks_pods_by_node(monkeypatch):
    """Counts come from the label index and the affinity-carrying pods, not from every node's pods."""
    state = cluster(nodes_(CHINA, INDIA), [pod(S1, node="node1"), pod(S2, node="node2", aff=AWAY_S1_AZ)])

    def walked(*_a, **_k):
        raise AssertionError("walked the pods of a node")

    monkeypatch.setattr(state.pods, "on_node", walked)
    monkeypatch.setattr(state.pods, "by_node", None)
    checks = run(pod(S1, aff=affinity(req=[term("region", expr("security", "In", "S1"))], pref=[
        pref(3, "region", expr("security", "In", "S2"))])), state)
    assert checks is not None and checks.filter(state.nodes["node1"]) is None
    assert checks.filter(state.nodes["node2"]).reason == ipa.REASON_AFFINITY
