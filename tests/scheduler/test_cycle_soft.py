"""Soft terms beside the packing choice: weights, the seed's Step 7, config errors.

The seed's Step 7 (binpack strategy, 4 replicas with *preferred* pod anti-affinity on the hostname)
must spread across nodes, as kube-scheduler's InterPodAffinity score (weight 2) outweighs
NodeResourcesFit (weight 1); with the InterPodAffinity weight set to 0 the packing choice stacks them.
"""

from __future__ import annotations

import pytest

from driver.scheduler.cycle import Placement, schedule
from driver.scheduler.packing.config import ConfigError, PackingConfig, parse_config
from driver.scheduler.podinfo import pod_info
from driver.sim import trace as tr

from test_schedule import _pod, _state

NODES = [tr.TraceNode(f"n{i}", 32000, 131072, 4, "T4") for i in range(4)]
PREFERRED_ANTI = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
    {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "inference"}},
                                        "topologyKey": "kubernetes.io/hostname"}}]}}


def _label_hosts(node):
    node["metadata"].setdefault("labels", {})["kubernetes.io/hostname"] = node["metadata"]["name"]


def _replicas(state, count, affinity=None, config=None):
    placed = []
    for i in range(count):
        pod, claims = _pod(f"inf-{i}", milli=250)
        pod["metadata"]["uid"] = f"inf-{i}"
        pod["metadata"]["labels"] = {"app": "inference"}
        if affinity:
            pod["spec"]["affinity"] = affinity
        got = schedule(pod, claims, state, config=config)
        assert isinstance(got, Placement), got
        state.commit(got)
        state.pods.add(pod_info(pod, got.node))
        placed.append(got.node)
    return placed


def test_step7_preferred_anti_affinity_spreads_under_binpack():
    state = _state(NODES, strategy="binpack", edit=_label_hosts)
    assert len(set(_replicas(state, 4, PREFERRED_ANTI))) == 4


def test_without_the_preference_binpack_stacks():
    state = _state(NODES, strategy="binpack", edit=_label_hosts)
    assert len(set(_replicas(state, 4))) == 1


def test_weight_zero_turns_the_preference_off():
    config = parse_config({"strategy": "binpack", "pluginWeights": {"InterPodAffinity": 0}})
    state = _state(NODES, strategy="binpack", edit=_label_hosts)
    assert len(set(_replicas(state, 4, PREFERRED_ANTI, config))) == 1


def test_preferred_node_affinity_beats_packing_but_packing_breaks_ties():
    def labels(node):
        _label_hosts(node)
        node["metadata"]["labels"]["tier"] = "gold" if node["metadata"]["name"] in ("n2", "n3") else "silver"
    state = _state(NODES, strategy="binpack", edit=labels)
    pref = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "preference": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold"]}]}}]}}
    placed = _replicas(state, 3, pref)
    assert set(placed) <= {"n2", "n3"} and len(set(placed)) == 1  # binpack among the preferred nodes


def test_prefer_no_schedule_taint_is_avoided_when_possible():
    def taint(node):
        _label_hosts(node)
        if node["metadata"]["name"] != "n3":
            node["spec"]["taints"] = [{"key": "spot", "value": "true", "effect": "PreferNoSchedule"}]
    state = _state(NODES, strategy="binpack", edit=taint)
    assert _replicas(state, 2) == ["n3", "n3"]


@pytest.mark.parametrize("raw, field", [
    ({"pluginWeights": {"InterPodAfinity": 1}}, "pluginWeights.InterPodAfinity"),
    ({"pluginWeights": {"Packing": -1}}, "pluginWeights.Packing"),
    ({"pluginWeights": []}, "pluginWeights"),
    ({"topologySpread": {"defaultingType": "Sytem"}}, "topologySpread.defaultingType"),
    ({"topologySpread": {"defaultConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                                                  "whenUnsatisfiable": "ScheduleAnyway",
                                                  "labelSelector": {}}]}}, "defaultConstraints[0].labelSelector"),
    ({"topologySpread": {"defaultingType": "System", "defaultConstraints": [
        {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}]}}, "defaultConstraints"),
    ({"interPodAffinity": {"hardPodAffinityWeight": 101}}, "interPodAffinity.hardPodAffinityWeight"),
])
def test_bad_scheduling_config_names_the_field(raw, field):
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_config(raw)


def test_default_weights_are_kube_schedulers():
    w = PackingConfig().plugin_weights
    assert (w["TaintToleration"], w["NodeAffinity"], w["PodTopologySpread"], w["InterPodAffinity"], w["Packing"]) == \
        (3, 2, 2, 2, 1)


def test_prefer_no_schedule_scores_one_node_per_group_and_still_avoids_the_tainted_node():
    def taint(node):
        _label_hosts(node)
        if node["metadata"]["name"] == "n0":
            node["spec"]["taints"] = [{"key": "DeletionCandidateOfClusterAutoscaler", "value": "1",
                                       "effect": "PreferNoSchedule"}]
    state = _state(NODES, strategy="binpack", edit=taint)
    assert state.nodes["n0"].group != state.nodes["n1"].group  # the taint is part of the group
    placed = _replicas(state, 8)
    assert "n0" not in placed and len(set(placed)) == 1  # binpack among the untainted nodes
