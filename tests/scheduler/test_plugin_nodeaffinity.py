"""NodeAffinity: cases from kube-scheduler's node_affinity_test.go (TestNodeAffinity,
TestNodeAffinityPriority) and component-helpers' nodeaffinity rules (empty terms, matchFields,
Gt / Lt, unparsable terms). Upstream's scheduler-config `addedAffinity` has no equivalent here.
"""

from __future__ import annotations

from typing import Any

import pytest

from driver.scheduler.framework import CycleContext
from driver.scheduler.packing.config import PackingConfig
from driver.scheduler.plugins import nodeaffinity as na
from driver.scheduler.podinfo import pod_info
from driver.scheduler.state import ClusterState

NO = na.REASON


def expr(key: str, op: str, *values: str) -> dict:
    e: dict[str, Any] = {"key": key, "operator": op}
    if values:
        e["values"] = list(values)
    return e


def name_field(op: str, *values: str) -> dict:
    return {"key": "metadata.name", "operator": op, "values": list(values)}


def term(*exprs: dict, fields: tuple[dict, ...] = ()) -> dict:
    t: dict[str, Any] = {}
    if exprs:
        t["matchExpressions"] = list(exprs)
    if fields:
        t["matchFields"] = list(fields)
    return t


def pod(selector: dict | None = None, required: list[dict] | None = None, preferred: list[dict] | None = None) -> dict:
    spec: dict[str, Any] = {}
    if selector is not None:
        spec["nodeSelector"] = selector
    aff: dict[str, Any] = {}
    if required is not None:
        aff[na.REQUIRED] = {"nodeSelectorTerms": required}
    if preferred is not None:
        aff[na.PREFERRED] = preferred
    if aff:
        spec["affinity"] = {"nodeAffinity": aff}
    return {"metadata": {"name": "p", "namespace": "default"}, "spec": spec}


def run(p: dict, nodes: list[tuple[str, dict]]):
    state = ClusterState({})
    for name, labels in nodes:
        state.add_node({"metadata": {"name": name, "labels": labels}})
    return state, na.prefilter(CycleContext(p, pod_info(p), state, PackingConfig()))


FILTER = [
    ("missing labels", pod({"foo": "bar"}), "n", {}, NO),
    ("same labels", pod({"foo": "bar"}), "n", {"foo": "bar"}, None),
    ("node labels are superset", pod({"foo": "bar"}), "n", {"foo": "bar", "baz": "blah"}, None),
    ("node labels are subset", pod({"foo": "bar", "baz": "blah"}), "n", {"foo": "bar"}, NO),
    ("Pod with matchExpressions using In operator that matches the existing node",
     pod(required=[term(expr("foo", "In", "bar", "value2"))]), "n", {"foo": "bar"}, None),
    ("Pod with matchExpressions using Gt operator that matches the existing node",
     pod(required=[term(expr("kernel-version", "Gt", "0204"))]), "n", {"kernel-version": "0206"}, None),
    ("Pod with matchExpressions using NotIn operator that matches the existing node",
     pod(required=[term(expr("mem-type", "NotIn", "DDR", "DDR2"))]), "n", {"mem-type": "DDR3"}, None),
    ("Pod with matchExpressions using Exists operator that matches the existing node",
     pod(required=[term(expr("GPU", "Exists"))]), "n", {"GPU": "NVIDIA-GRID-K1"}, None),
    ("Pod with affinity that don't match node's labels won't schedule onto the node",
     pod(required=[term(expr("foo", "In", "value1", "value2"))]), "n", {"foo": "bar"}, NO),
    ("Pod with empty MatchExpressions is not a valid value will match no objects and won't schedule onto the node",
     pod(required=[{"matchExpressions": []}]), "n", {"foo": "bar"}, NO),
    ("Pod with multiple matchExpressions ANDed that matches the existing node",
     pod(required=[term(expr("GPU", "Exists"), expr("GPU", "NotIn", "AMD", "INTER"))]), "n", {"GPU": "NVIDIA-GRID-K1"}, None),
    ("Pod with multiple matchExpressions ANDed that doesn't match the existing node",
     pod(required=[term(expr("GPU", "Exists"), expr("GPU", "In", "AMD", "INTER"))]), "n", {"GPU": "NVIDIA-GRID-K1"}, NO),
    ("Pod with multiple NodeSelectorTerms ORed in affinity, matches the node's labels and will schedule onto the node",
     pod(required=[term(expr("foo", "In", "bar", "value2")), term(expr("diffkey", "In", "wrong", "value2"))]),
     "n", {"foo": "bar"}, None),
    ("Pod with an Affinity and a PodSpec.NodeSelector both are satisfied, will schedule onto the node",
     pod({"foo": "bar"}, [term(expr("foo", "Exists"))]), "n", {"foo": "bar"}, None),
    ("Pod with an Affinity matches node's labels but the PodSpec.NodeSelector is not satisfied, won't schedule onto the node",
     pod({"foo": "bar"}, [term(expr("foo", "Exists"))]), "n", {"foo": "barrrrrr"}, NO),
    ("Pod with matchFields using In operator that matches the existing node",
     pod(required=[term(fields=(name_field("In", "node1"),))]), "node1", {}, None),
    ("Pod with matchFields using In operator that does not match the existing node",
     pod(required=[term(fields=(name_field("In", "node1"),))]), "node2", {}, NO),
    ("Pod with two terms: matchFields does not match, but matchExpressions matches",
     pod(required=[term(fields=(name_field("In", "node1"),)), term(expr("foo", "In", "bar"))]), "node2", {"foo": "bar"}, None),
    ("Pod with one term: matchFields does not match, but matchExpressions matches",
     pod(required=[term(expr("foo", "In", "bar"), fields=(name_field("In", "node1"),))]), "node2", {"foo": "bar"}, NO),
    ("Pod with one term: both matchFields and matchExpressions match",
     pod(required=[term(expr("foo", "In", "bar"), fields=(name_field("In", "node1"),))]), "node1", {"foo": "bar"}, None),
    ("Pod with two terms: both matchFields and matchExpressions do not match",
     pod(required=[term(fields=(name_field("In", "node1"),)), term(expr("foo", "In", "not-match-to-bar"))]),
     "node2", {"foo": "bar"}, NO),
    ("Pod with two terms of node.Name affinity",
     pod(required=[term(fields=(name_field("In", "node1"),)), term(fields=(name_field("In", "node2"),))]), "node2", {}, None),
    ("matchFields NotIn excludes the named node",
     pod(required=[term(fields=(name_field("NotIn", "node1"),))]), "node1", {}, NO),
    ("Gt with a label that is not an integer does not match",
     pod(required=[term(expr("kernel-version", "Gt", "1"))]), "n", {"kernel-version": "v2"}, NO),
    ("Lt matches a smaller label", pod(required=[term(expr("gen", "Lt", "5"))]), "n", {"gen": "-3"}, None),
    ("DoesNotExist matches a node without the label", pod(required=[term(expr("spot", "DoesNotExist"))]), "n", {}, None),
    ("NotIn matches a node without the label", pod(required=[term(expr("zone", "NotIn", "a"))]), "n", {}, None),
    ("an unreadable term is skipped while another can match",
     pod(required=[term(expr("foo", "NotIn", "invalid value: ___@#$%^")), term(expr("foo", "In", "bar"))]),
     "n", {"foo": "bar"}, None),
    ("required affinity without terms matches no node", pod(required=[]), "n", {"foo": "bar"}, NO),
]


@pytest.mark.parametrize("name,p,node_name,labels,want", FILTER, ids=[c[0][:90] for c in FILTER])
def test_filter(name: str, p: dict, node_name: str, labels: dict, want: str | None) -> None:
    state, checks = run(p, [(node_name, labels)])
    assert checks is not None and checks.filter is not None and checks.score is None
    got = checks.filter(state.nodes[node_name])
    assert (got.reason if got else None) == want
    if got:
        assert got.unresolvable and got.plugin == "NodeAffinity"
    # labels_match (the cycle's and other plugins' helper) agrees
    sel, aff = na.label_requirements(p)
    assert na.labels_match(sel, aff, node_name, labels) is (want is None)


@pytest.mark.parametrize("p", [
    pod(), pod(selector={}), {"spec": {"affinity": {"nodeAffinity": {}}}},
    {"spec": {"affinity": {"nodeAffinity": {na.REQUIRED: None}}}},
], ids=["no affinity", "empty nodeSelector", "empty nodeAffinity", "nil required"])
def test_nothing_to_check(p: dict) -> None:
    assert run(p, [("n", {})])[1] is None


def test_conflicting_match_fields_reject_the_pod() -> None:
    p = pod(required=[term(fields=(name_field("In", "node1"), name_field("In", "node2")))])
    _, got = run(p, [("node2", {"foo": "bar"})])
    assert got is not None and got.reason == na.REASON_CONFLICT and got.unresolvable


def test_invalid_value_in_the_only_term_rejects_the_pod_naming_the_field() -> None:
    p = pod(required=[term(expr("foo", "NotIn", "invalid value: ___@#$%^"))])
    _, got = run(p, [("n", {"foo": "bar"})])
    assert got is not None and got.unresolvable
    assert got.reason.startswith(f"{na.WHERE}.{na.REQUIRED}.nodeSelectorTerms[0].matchExpressions[0].values[0]:")


@pytest.mark.parametrize("e,field", [
    (expr("invalid key", "In", "bar"), "matchExpressions[0].key"),
    (expr("foo", "Gt", "1", "2"), "matchExpressions[0].values"),
    (expr("foo", "Gt", "x"), "matchExpressions[0].values"),
    (expr("foo", "In"), "matchExpressions[0].values"),
    (expr("foo", "Exists", "x"), "matchExpressions[0].values"),
    (expr("foo", "Like", "x"), "matchExpressions[0].operator"),
    (expr("-bad.example.com/foo", "Exists"), "matchExpressions[0].key"),
])
def test_unparsable_requirements_name_the_field(e: dict, field: str) -> None:
    with pytest.raises(na.AffinityError, match=r"^t\." + field.replace(".", r"\.").replace("[", r"\[")):
        na.parse_term(term(e), "t")


def test_match_fields_need_one_value_and_in_or_notin() -> None:
    for f, field in [(name_field("In", "a", "b"), "values"), (name_field("Exists"), "operator")]:
        with pytest.raises(na.AffinityError, match=rf"t\.matchFields\[0\]\.{field}"):
            na.parse_term(term(fields=(f,)), "t")


def pref(weight: int, *exprs: dict) -> dict:
    return {"weight": weight, "preference": term(*exprs)}


AFFINITY1 = [pref(2, expr("foo", "In", "bar"))]
AFFINITY2 = [pref(2, expr("foo", "In", "bar")), pref(4, expr("key", "In", "value")),
             pref(5, expr("foo", "In", "bar"), expr("key", "In", "value"), expr("az", "In", "az1"))]
L1, L2, L3 = {"foo": "bar"}, {"key": "value"}, {"az": "az1"}
L4, L5 = {"abc": "az11", "def": "az22"}, {"foo": "bar", "key": "value", "az": "az1"}

PRIORITY = [
    ("no node matches preferred scheduling requirements in NodeAffinity of pod so all nodes' priority is zero",
     AFFINITY1, [("node1", L4), ("node2", L2), ("node3", L3)], {"node1": 0, "node2": 0, "node3": 0}),
    ("only node1 matches the preferred scheduling requirements of pod",
     AFFINITY1, [("node1", L1), ("node2", L2), ("node3", L3)], {"node1": 100, "node2": 0, "node3": 0}),
    ("all nodes matches the preferred scheduling requirements of pod but with different priorities",
     AFFINITY2, [("node1", L1), ("node5", L5), ("node2", L2)], {"node1": 18, "node5": 100, "node2": 36}),
    ("weight 0 and empty preferences count for nothing",
     [{"weight": 0, "preference": term(expr("foo", "In", "bar"))}, {"weight": 7, "preference": {}}, pref(1, expr("az", "Exists"))],
     [("node1", L1), ("node3", L3)], {"node1": 0, "node3": 100}),
]


@pytest.mark.parametrize("name,preferred,nodes,want", PRIORITY, ids=[c[0][:80] for c in PRIORITY])
def test_priority(name: str, preferred: list[dict], nodes: list[tuple[str, dict]], want: dict[str, int]) -> None:
    state, checks = run(pod(preferred=preferred), nodes)
    assert checks is not None and checks.filter is None and checks.score is not None
    raw = {n: checks.score(state.nodes[n]) for n, _ in nodes}
    norm = checks.normalize(raw)
    assert {n: int(v) for n, v in norm.items()} == want  # upstream truncates to int64


def test_all_nodes_same_priority_without_preferences() -> None:
    assert run(pod(preferred=[]), [("node1", L1)])[1] is None


def test_broken_preferred_term_rejects_the_pod() -> None:
    _, got = run(pod(preferred=[pref(2, expr("invalid key", "In", "bar"))]), [("node1", L1)])
    assert got is not None and got.unresolvable
    assert got.reason.startswith(f"{na.WHERE}.{na.PREFERRED}[0].preference.matchExpressions[0].key:")
    _, got = run(pod(preferred=[{"weight": 101, "preference": term(expr("a", "Exists"))}]), [("node1", L1)])
    assert got is not None and f"{na.PREFERRED}[0].weight" in got.reason


def test_empty_name_skips_match_fields() -> None:
    """Upstream matches PV node affinity against a node with labels only: matchFields are not checked."""
    t = na.parse_term(term(expr("zone", "In", "a"), fields=(name_field("In", "other"),)), "t")
    assert t is not None and t.matches("", {"zone": "a"}) and not t.matches("n1", {"zone": "a"})
