"""The view's pod accounting beside the pod index: in-place resize, label changes, heartbeats."""

from __future__ import annotations

import copy

from driver.controller.view import ClusterView


def _node(name="n1", cpu="8"):
    alloc = {"cpu": cpu, "memory": "64Gi", "pods": "110"}
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"allocatable": alloc, "capacity": alloc, "conditions": [{"type": "Ready", "status": "True"}]}}


def _pod(cpu="1", labels=None):
    return {"metadata": {"name": "p", "namespace": "default", "uid": "u1", "labels": labels or {"app": "a"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]},
            "status": {"phase": "Running"}}


def test_in_place_resize_is_counted_anew():
    view = ClusterView()
    view.on_node("ADDED", None, _node())
    view.on_pod("ADDED", None, _pod("1"))
    assert view.state.nodes["n1"].used_cpu == 1000
    view.on_pod("MODIFIED", _pod("1"), _pod("6"))
    assert view.state.nodes["n1"].used_cpu == 6000
    assert view.state.pods.get("u1").requests.cpu == 6000


def test_relabelled_pod_is_seen_by_the_inter_pod_constraints():
    view = ClusterView()
    view.on_node("ADDED", None, _node())
    view.on_pod("ADDED", None, _pod())
    view.on_pod("MODIFIED", _pod(), _pod(labels={"app": "b"}))
    assert view.state.pods.get("u1").labels == {"app": "b"}
    assert view.state.nodes["n1"].used_cpu == 1000  # counted once


def test_a_heartbeat_changes_nothing_the_scheduler_reads():
    view = ClusterView()
    assert view.on_node("ADDED", None, _node()) is True
    beat = copy.deepcopy(_node())
    beat["status"]["conditions"][0]["lastHeartbeatTime"] = "2026-12-04T20:00:00Z"
    assert view.on_node("MODIFIED", _node(), beat) is False
    assert view.on_node("MODIFIED", beat, _node(cpu="16")) is True
