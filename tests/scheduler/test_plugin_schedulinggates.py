"""SchedulingGates: cases from kube-scheduler's scheduling_gates_test.go (PreEnqueue)."""

from __future__ import annotations

import pytest

from driver.scheduler.framework import CycleContext, Rejection
from driver.scheduler.packing.config import PackingConfig
from driver.scheduler.plugins import schedulinggates as sg
from driver.scheduler.podinfo import pod_info
from driver.scheduler.state import ClusterState


def run(gates: object) -> Rejection | None:
    p = {"metadata": {"name": "p"}, "spec": {"schedulingGates": gates}}
    return sg.prefilter(CycleContext(p, pod_info({"metadata": {"name": "p"}}), ClusterState({}), PackingConfig()))


def test_pod_does_not_carry_scheduling_gates() -> None:
    assert run(None) is None
    assert run([]) is None


def test_pod_carries_scheduling_gates() -> None:
    got = run([{"name": "foo"}, {"name": "bar"}])
    assert got == Rejection("SchedulingGates", "waiting for scheduling gates: [foo bar]", unresolvable=True)


@pytest.mark.parametrize("gates,field", [("foo", "spec.schedulingGates"), ([{"name": ""}], "spec.schedulingGates[0].name"),
                                         ([{"name": "a"}, "b"], "spec.schedulingGates[1].name")])
def test_unreadable_gates_name_the_field(gates: object, field: str) -> None:
    got = run(gates)
    assert got is not None and got.reason.startswith(field + ":") and got.unresolvable
