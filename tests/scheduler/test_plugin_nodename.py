"""NodeName: cases from kube-scheduler's node_name_test.go."""

from __future__ import annotations

import pytest

from driver.scheduler.framework import CycleContext
from driver.scheduler.packing.config import PackingConfig
from driver.scheduler.plugins import nodename
from driver.scheduler.podinfo import pod_info
from driver.scheduler.state import ClusterState


def run(node_name: object):
    p = {"metadata": {"name": "p"}, "spec": {"nodeName": node_name} if node_name is not None else {}}
    state = ClusterState({})
    state.add_node({"metadata": {"name": "foo"}})
    info = pod_info({"metadata": {"name": "p"}})
    checks = nodename.prefilter(CycleContext(p, info, state, PackingConfig()))
    return state, checks


@pytest.mark.parametrize("name,wanted,want", [
    ("no host specified", None, None),
    ("host matches", "foo", None),
    ("host doesn't match", "bar", nodename.REASON),
])
def test_filter(name: str, wanted: str | None, want: str | None) -> None:
    state, checks = run(wanted)
    if wanted is None:
        assert checks is None
        return
    got = checks.filter(state.nodes["foo"])
    assert (got.reason if got else None) == want
    if got:
        assert got.unresolvable and got.plugin == "NodeName"


def test_unreadable_node_name_rejects_the_pod() -> None:
    _, got = run(["foo"])
    assert got is not None and got.reason.startswith("spec.nodeName:") and got.unresolvable
