"""The registry's fast path for plain pods must agree with every plugin: a pod `is_plain` calls
plain is one each plugin's own prefilter skips (returns None) — in a cluster with and without the
things that make plugins speak up for any pod (taints, pods with affinity terms)."""

from __future__ import annotations

import pytest

from driver.scheduler.framework import CycleContext
from driver.scheduler.packing.config import PackingConfig
from driver.scheduler.plugins import registry
from driver.scheduler.podinfo import pod_info
from driver.scheduler.state import ClusterState

PLAIN = {"metadata": {"name": "p", "namespace": "ns", "uid": "p", "labels": {"app": "x"}},
         "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                                                             "limits": {"cpu": "2"}}}]}}


def _state(blocking_taint: bool = False) -> ClusterState:
    state = ClusterState({})
    node = {"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
            "status": {"allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"}}}
    if blocking_taint:
        node["spec"] = {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}
    state.add_node(node)
    return state


@pytest.mark.parametrize("blocking", [False, True])
def test_every_plugin_skips_a_plain_pod(blocking):
    ctx = CycleContext(PLAIN, pod_info(PLAIN), _state(blocking), PackingConfig())
    assert registry.is_plain(ctx)
    for name, module in registry.PLUGINS:
        got = module.prefilter(ctx)
        if name in registry.GROUP_LEVEL and got is not None:
            assert got.score is None  # only its group-level filter, which the cycle applies itself
            continue
        assert got is None, name


@pytest.mark.parametrize("edit", [
    lambda p: p["spec"].update(schedulingGates=[{"name": "g"}]),
    lambda p: p["spec"].update(nodeSelector={"a": "b"}),
    lambda p: p["spec"].update(tolerations=[{"operator": "Exists"}]),
    lambda p: p["spec"].update(topologySpreadConstraints=[{"maxSkew": 1, "topologyKey": "zone",
                                                           "whenUnsatisfiable": "DoNotSchedule"}]),
    lambda p: p["spec"]["containers"][0].update(ports=[{"containerPort": 80, "hostPort": 80}]),
    lambda p: p["spec"]["containers"][0]["resources"]["requests"].update({"ephemeral-storage": "1Gi"}),
    lambda p: p["spec"]["containers"][0]["resources"]["limits"].update({"nvidia.com/gpu": "1"}),
    lambda p: p["spec"].update(volumes=[{"name": "v", "persistentVolumeClaim": {"claimName": "c"}}]),
])
def test_anything_a_plugin_reads_makes_the_pod_not_plain(edit):
    import copy
    pod = copy.deepcopy(PLAIN)
    edit(pod)
    assert not registry.is_plain(CycleContext(pod, pod_info(pod), _state(), PackingConfig()))


def test_cluster_state_that_makes_plugins_speak_for_any_pod():
    state = _state()
    other = {"metadata": {"name": "o", "namespace": "ns", "uid": "o", "labels": {}},
             "spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                 {"labelSelector": {"matchLabels": {"app": "x"}}, "topologyKey": "kubernetes.io/hostname"}]}}}}
    state.pods.add(pod_info(other, node="n1"))
    ctx = CycleContext(PLAIN, pod_info(PLAIN), state, PackingConfig())
    assert not registry.is_plain(ctx)  # an existing pod's anti-affinity selects it
    assert registry.prefilter(ctx).filters
    assert not registry.is_plain(CycleContext(PLAIN, pod_info(PLAIN), _state(),
                                              PackingConfig(spread_defaulting="System")))
