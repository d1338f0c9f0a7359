"""TaintToleration: cases from kube-scheduler's taint_toleration_test.go (TestTaintTolerationFilter,
TestTaintTolerationScore), core/v1 ToleratesTaint (incl. Gt / Lt), and when the plugin costs
nothing (no tainted nodes)."""

from __future__ import annotations

import pytest

from driver.scheduler.framework import CycleContext
from driver.scheduler.packing.config import PackingConfig
from driver.scheduler.plugins import tainttoleration as tt
from driver.scheduler.podinfo import pod_info
from driver.scheduler.state import ClusterState


def pod(*tolerations: dict) -> dict:
    return {"metadata": {"name": "pod1", "namespace": "default"}, "spec": {"tolerations": list(tolerations)}}


def node(name: str, *taints: dict) -> dict:
    return {"metadata": {"name": name}, "spec": {"taints": list(taints)}}


def taint(key: str, value: str, effect: str) -> dict:
    return {"key": key, "value": value, "effect": effect}


def tol(key: str = "", op: str | None = None, value: str = "", effect: str = "") -> dict:
    t = {"key": key, "value": value, "effect": effect}
    if op:
        t["operator"] = op
    return t


def prefilter(p: dict, nodes: list[dict], index: bool = False):
    state = ClusterState({})
    for n in nodes:
        state.add_node(n)
    if index:
        state.taint_index = tt.TaintIndex()
        for n in nodes:
            state.taint_index.set_node(n["metadata"]["name"], n)
    return state, tt.prefilter(CycleContext(p, pod_info(p), state, PackingConfig()))


FILTER = [
    ("A pod having no tolerations can't be scheduled onto a node with nonempty taints",
     pod(), node("nodeA", taint("dedicated", "user1", "NoSchedule")), "node(s) had untolerated taint {dedicated: user1}"),
    ("A pod which can be scheduled on a dedicated node assigned to user1 with effect NoSchedule",
     pod(tol("dedicated", None, "user1", "NoSchedule")), node("nodeA", taint("dedicated", "user1", "NoSchedule")), None),
    ("A pod which can't be scheduled on a dedicated node assigned to user2 with effect NoSchedule",
     pod(tol("dedicated", "Equal", "user2", "NoSchedule")), node("nodeA", taint("dedicated", "user1", "NoSchedule")),
     "node(s) had untolerated taint {dedicated: user1}"),
    ("A pod can be scheduled onto the node, with a toleration uses operator Exists that tolerates the taints on the node",
     pod(tol("foo", "Exists", "", "NoSchedule")), node("nodeA", taint("foo", "bar", "NoSchedule")), None),
    ("A pod has multiple tolerations, node has multiple taints, all the taints are tolerated, pod can be scheduled onto the node",
     pod(tol("dedicated", "Equal", "user2", "NoSchedule"), tol("foo", "Exists", "", "NoSchedule")),
     node("nodeA", taint("dedicated", "user2", "NoSchedule"), taint("foo", "bar", "NoSchedule")), None),
    ("A pod has a toleration that keys and values match the taint on the node, but (non-empty) effect doesn't match, "
     "can't be scheduled onto the node",
     pod(tol("foo", "Equal", "bar", "PreferNoSchedule")), node("nodeA", taint("foo", "bar", "NoSchedule")),
     "node(s) had untolerated taint {foo: bar}"),
    ("The pod has a toleration that keys and values match the taint on the node, the effect of toleration is empty, "
     "and the effect of taint is NoSchedule. Pod can be scheduled onto the node",
     pod(tol("foo", "Equal", "bar")), node("nodeA", taint("foo", "bar", "NoSchedule")), None),
    ("The pod has a toleration that key and value don't match the taint on the node, but the effect of taint on node is "
     "PreferNoSchedule. Pod can be scheduled onto the node",
     pod(tol("dedicated", "Equal", "user2", "NoSchedule")), node("nodeA", taint("dedicated", "user1", "PreferNoSchedule")),
     None),
    ("The pod has no toleration, but the effect of taint on node is PreferNoSchedule. Pod can be scheduled onto the node",
     pod(), node("nodeA", taint("dedicated", "user1", "PreferNoSchedule")), None),
    ("NoExecute taints keep pods away too", pod(), node("nodeA", taint("k", "", "NoExecute")),
     "node(s) had untolerated taint {k: }"),
    ("The first untolerated taint in spec order is named", pod(tol("a", "Exists")),
     node("nodeA", taint("z", "1", "NoSchedule"), taint("a", "1", "NoSchedule"), taint("b", "2", "NoSchedule")),
     "node(s) had untolerated taint {z: 1}"),
    ("An empty key with Exists tolerates every taint", pod(tol("", "Exists")),
     node("nodeA", taint("a", "1", "NoSchedule"), taint("b", "2", "NoExecute")), None),
]


@pytest.mark.parametrize("name,p,n,want", FILTER, ids=[c[0][:90] for c in FILTER])
def test_filter(name: str, p: dict, n: dict, want: str | None) -> None:
    state, checks = prefilter(p, [n])
    node_state = state.nodes["nodeA"]
    # the per-group helper the cycle uses (sorted taints) agrees on whether the node is refused
    assert (tt.untolerated(p, node_state.taints, False) is None) == (want is None)
    got = checks.filter(node_state) if checks and checks.filter else None
    assert (got.reason if got else None) == want
    if got:
        assert got.unresolvable and got.plugin == "TaintToleration"


def test_untolerated_names_cordon_first_in_upstream_words() -> None:
    p = pod()
    taints = tt.node_taints(node("n", taint("gpu", "reserved", "NoSchedule")))
    assert tt.untolerated(p, taints, True) == "node(s) were unschedulable"
    assert tt.untolerated(p, taints, False) == "node(s) had untolerated taint {gpu: reserved}"
    ok = pod(tol(tt.UNSCHEDULABLE_TAINT, "Exists", "", "NoSchedule"), tol("gpu", "Exists"))
    assert tt.untolerated(ok, taints, True) is None


SCORE = [
    ("node with taints tolerated by the pod, gets a higher score than those node with intolerable taints",
     pod(tol("foo", "Equal", "bar", "PreferNoSchedule")),
     [node("nodeA", taint("foo", "bar", "PreferNoSchedule")), node("nodeB", taint("foo", "blah", "PreferNoSchedule"))],
     {"nodeA": 100, "nodeB": 0}),
    ("the nodes that all of their taints are tolerated by the pod, get the same score, no matter how many tolerable taints a node has",
     pod(tol("cpu-type", "Equal", "arm64", "PreferNoSchedule"), tol("disk-type", "Equal", "ssd", "PreferNoSchedule")),
     [node("nodeA"), node("nodeB", taint("cpu-type", "arm64", "PreferNoSchedule")),
      node("nodeC", taint("cpu-type", "arm64", "PreferNoSchedule"), taint("disk-type", "ssd", "PreferNoSchedule"))],
     {"nodeA": 100, "nodeB": 100, "nodeC": 100}),
    ("the more intolerable taints a node has, the lower score it gets.",
     pod(tol("foo", "Equal", "bar", "PreferNoSchedule")),
     [node("nodeA"), node("nodeB", taint("cpu-type", "arm64", "PreferNoSchedule")),
      node("nodeC", taint("cpu-type", "arm64", "PreferNoSchedule"), taint("disk-type", "ssd", "PreferNoSchedule"))],
     {"nodeA": 100, "nodeB": 50, "nodeC": 0}),
    ("only taints and tolerations that have effect PreferNoSchedule are checked by taints-tolerations priority function",
     pod(tol("cpu-type", "Equal", "arm64", "NoSchedule"), tol("disk-type", "Equal", "ssd", "NoSchedule")),
     [node("nodeA"), node("nodeB", taint("cpu-type", "arm64", "NoSchedule")),
      node("nodeC", taint("cpu-type", "arm64", "PreferNoSchedule"), taint("disk-type", "ssd", "PreferNoSchedule"))],
     {"nodeA": 100, "nodeB": 100, "nodeC": 0}),
    ("Default behaviour No taints and tolerations, lands on node with no taints",
     pod(), [node("nodeA"), node("nodeB", taint("cpu-type", "arm64", "PreferNoSchedule"))], {"nodeA": 100, "nodeB": 0}),
    ("a toleration with an empty effect counts for PreferNoSchedule taints",
     pod(tol("foo", "Exists")), [node("nodeA", taint("foo", "x", "PreferNoSchedule")),
                                 node("nodeB", taint("bar", "x", "PreferNoSchedule"))], {"nodeA": 100, "nodeB": 0}),
]


@pytest.mark.parametrize("index", [False, True])
@pytest.mark.parametrize("name,p,nodes,want", SCORE, ids=[c[0][:80] for c in SCORE])
def test_score(name: str, p: dict, nodes: list[dict], want: dict[str, int], index: bool) -> None:
    state, checks = prefilter(p, nodes, index)
    assert checks is not None and checks.score is not None
    raw = {n: checks.score(state.nodes[n]) for n in want}
    assert checks.normalize(raw) == pytest.approx(want)


def test_nothing_to_do_without_tainted_nodes() -> None:
    _, checks = prefilter(pod(), [node("a"), node("b")])
    assert checks is None
    _, checks = prefilter(pod(), [node("a"), node("b")], index=True)
    assert checks is None


def test_filter_only_or_score_only() -> None:
    _, checks = prefilter(pod(), [node("a", taint("k", "v", "NoSchedule"))])
    assert checks.filter is not None and checks.score is None
    _, checks = prefilter(pod(), [node("a", taint("k", "v", "PreferNoSchedule"))])
    assert checks.filter is None and checks.score is not None


def test_taint_index_follows_node_changes() -> None:
    index = tt.TaintIndex()
    index.set_node("a", node("a", taint("k", "v", "PreferNoSchedule")))
    index.set_node("b", node("b", taint("k", "v", "NoSchedule")))
    assert index.any_prefer_no_schedule
    index.set_node("a", node("a"))  # taint removed
    assert not index.any_prefer_no_schedule
    index.set_node("b", node("b", taint("k", "v", "PreferNoSchedule")))
    index.set_node("b", None)  # node gone
    assert not index.any_prefer_no_schedule


@pytest.mark.parametrize("toleration,value,ok", [
    (tol("prio", "Gt", "5"), "7", True),
    (tol("prio", "Gt", "5"), "5", False),
    (tol("prio", "Lt", "5"), "3", True),
    (tol("prio", "Lt", "5"), "-9", True),
    (tol("prio", "Lt", "5"), "8", False),
    (tol("prio", "Gt", "5"), "x", False),  # not an integer: never tolerated
    (tol("prio", "Gt", "five"), "7", False),
    (tol("other", "Exists"), "7", False),
    (tol("", "Equal", "7"), "7", True),  # upstream: an empty key matches any key (the API forbids it with Equal)
])
def test_toleration_operators(toleration: dict, value: str, ok: bool) -> None:
    assert tt.tolerates([toleration], "prio", value, "NoSchedule") is ok


@pytest.mark.parametrize("tolerations,field", [
    ("x", "spec.tolerations"),
    (["x"], "spec.tolerations[0]"),
    ([{"key": "a"}, {"key": "b", "operator": "Contains"}], "spec.tolerations[1].operator"),
])
def test_unreadable_tolerations_reject_the_pod(tolerations: object, field: str) -> None:
    p = {"metadata": {"name": "p"}, "spec": {"tolerations": tolerations}}
    state = ClusterState({})
    got = tt.prefilter(CycleContext(p, pod_info({"metadata": {"name": "p"}}), state, PackingConfig()))
    assert got is not None and got.reason.startswith(field + ":") and got.unresolvable
