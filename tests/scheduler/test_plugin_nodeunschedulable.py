"""NodeUnschedulable: cases from kube-scheduler's node_unschedulable_test.go."""

from __future__ import annotations

import pytest

from driver.scheduler.framework import CycleContext
from driver.scheduler.packing.config import PackingConfig
from driver.scheduler.plugins import nodeunschedulable as nu
from driver.scheduler.podinfo import pod_info
from driver.scheduler.state import ClusterState

CORDON_TOLERATION = {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}


def run(tolerations: list[dict], unschedulable: bool, other_cordoned: bool = False):
    p = {"metadata": {"name": "p"}, "spec": {"tolerations": tolerations}}
    state = ClusterState({})
    state.add_node({"metadata": {"name": "n1"}, "spec": {"unschedulable": unschedulable}})
    if other_cordoned:
        state.add_node({"metadata": {"name": "n2"}, "spec": {"unschedulable": True}})
    checks = nu.prefilter(CycleContext(p, pod_info(p), state, PackingConfig()))
    return checks, (checks.filter(state.nodes["n1"]) if checks else None)


@pytest.mark.parametrize("name,tolerations,unschedulable,want", [
    ("Does not schedule pod to unschedulable node (node.Spec.Unschedulable==true)", [], True, nu.REASON),
    ("Schedule pod to normal node", [], False, None),
    ("Schedule pod with toleration to unschedulable node (node.Spec.Unschedulable==true)",
     [CORDON_TOLERATION], True, None),
    ("a toleration of every taint tolerates the cordon", [{"operator": "Exists"}], True, None),
    ("a toleration for another effect does not", [{**CORDON_TOLERATION, "effect": "NoExecute"}], True, nu.REASON),
])
def test_filter(name: str, tolerations: list[dict], unschedulable: bool, want: str | None) -> None:
    _, got = run(tolerations, unschedulable)
    assert (got.reason if got else None) == want
    if got:
        assert got.unresolvable and got.plugin == "NodeUnschedulable"


def test_a_normal_node_passes_while_another_is_cordoned() -> None:
    checks, got = run([], False, other_cordoned=True)
    assert checks is not None and got is None


def test_nothing_to_check_without_cordoned_nodes() -> None:
    assert run([], False)[0] is None
    assert run([CORDON_TOLERATION], True)[0] is None
