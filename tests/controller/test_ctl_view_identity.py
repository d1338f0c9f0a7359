"""Claims that select a device by its identity (uuid): nodes of one equivalence group differ exactly
there, so the cycle must ask the allocator node by node (kube-scheduler would place such a pod)."""

from __future__ import annotations

from ctl_helpers import CLASSES, claim, claim_spec, gpu_devices, node, pod, resource_slice

from driver.controller.view import ClusterView
from driver.scheduler.cycle import Placement, Unschedulable, schedule


def _view() -> ClusterView:
    view = ClusterView()
    for c in CLASSES:
        view.on_class("ADDED", None, c)
    for n in ("a", "b"):
        view.on_node("ADDED", None, node(n))
        view.on_slice("ADDED", None, resource_slice(n, gpu_devices(n, 2)))
    return view


def _by_uuid(uuid: str):
    c = claim("c", claim_spec(selectors=[f"device.attributes['gpu.nvidia.com'].uuid == '{uuid}'"]))
    c["metadata"]["uid"] = "c-uid"
    p = pod("p", {"gpu": "c"})
    p["metadata"]["uid"] = "p-uid"
    return p, [c]


def test_a_uuid_on_the_second_node_of_a_group_is_found():
    view = _view()
    assert len(view.state.groups) == 1  # a and b are interchangeable for every other claim
    for uuid, where in (("GPU-a-0", "a"), ("GPU-b-1", "b")):
        got = schedule(*_by_uuid(uuid), view.state, view.classes)
        assert isinstance(got, Placement) and got.node == where, got
        (result,) = got.allocations["c"]["devices"]["results"]
        assert result["device"] == "gpu-" + uuid[-1]


def test_a_uuid_nobody_has_is_explained_per_node():
    view = _view()
    got = schedule(*_by_uuid("GPU-z-9"), view.state, view.classes)
    assert isinstance(got, Unschedulable)
    reasons = {n: r.reason for n, r in got.rejections.items()}
    assert "node a" in reasons["a"] and "node b" in reasons["b"]  # each names its own node


def test_a_node_by_node_placement_keeps_the_extended_resource_claim():
    view = _view()
    cls = {"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass", "metadata": {"name": "x.example.com"},
           "spec": {"selectors": [{"cel": {"expression": "device.driver == 'gpu.nvidia.com'"}}],
                    "extendedResourceName": "example.com/gpu"}}
    view.on_class("ADDED", None, cls)
    p, claims = _by_uuid("GPU-b-0")
    p["spec"]["containers"][0]["resources"]["limits"] = {"example.com/gpu": "1"}
    got = schedule(p, claims, view.state, view.classes)
    assert isinstance(got, Placement) and got.node == "b"
    assert got.extended is not None and "<extended-resources>" in got.allocations
