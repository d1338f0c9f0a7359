"""ClusterView accounting: idempotent events, assumptions vs stale events, rebuilds keep usage."""

from __future__ import annotations

from ctl_helpers import CLASSES, gpu_devices, node, resource_slice

from driver.allocator.allocate import node_name_selector
from driver.controller.objects import allocation_node, allocation_signature
from driver.controller.view import ClusterView


def make() -> ClusterView:
    v = ClusterView()
    for c in CLASSES:
        v.on_class("ADDED", None, c)
    v.on_node("ADDED", None, node("n1", cpu="4"))
    v.on_slice("ADDED", None, resource_slice("n1", gpu_devices("n1", 2)))
    return v


def alloc(device: str) -> dict:
    return {"devices": {"results": [{"request": "gpu", "driver": "gpu.nvidia.com", "pool": "n1", "device": device}]},
            "nodeSelector": node_name_selector("n1")}


def claim(uid: str, device: str | None, rv: str = "5") -> dict:
    c = {"metadata": {"name": f"c-{uid}", "namespace": "ns", "uid": uid, "resourceVersion": rv}, "spec": {}}
    if device:
        c["status"] = {"allocation": alloc(device)}
    return c


def used(v: ClusterView) -> set[str]:
    return {key[2] for key in v.state.nodes["n1"].usage.exclusive}


def test_claim_events_are_idempotent_and_follow_changes() -> None:
    v = make()
    v.on_claim("ADDED", None, claim("u1", "gpu-0"))
    v.on_claim("MODIFIED", None, claim("u1", "gpu-0", rv="6"))  # same allocation again: counted once
    assert used(v) == {"gpu-0"}
    v.on_claim("MODIFIED", None, claim("u1", None, rv="7"))  # deallocated
    assert used(v) == set()
    v.on_claim("MODIFIED", None, claim("u1", "gpu-1", rv="8"))
    v.on_claim("DELETED", claim("u1", "gpu-1", rv="8"), None)
    assert used(v) == set() and not v.errors


def test_assumption_survives_stale_events_until_confirmed_or_superseded() -> None:
    v = make()
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "p1"},
           "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "3"}}}]}}
    v.assume(pod, "n1", {"u1": ("c-u1", alloc("gpu-0"))})
    assert used(v) == {"gpu-0"} and v.state.nodes["n1"].used_cpu == 3000
    v.on_claim("MODIFIED", None, claim("u1", None, rv="4"))  # the claim as it was before our write
    v.on_pod("MODIFIED", None, dict(pod, spec=dict(pod["spec"])))  # the pod before its binding
    assert used(v) == {"gpu-0"} and v.state.nodes["n1"].used_cpu == 3000
    assert v.allocation_of(claim("u1", None)) == alloc("gpu-0")
    v.written("u1", "9")
    v.on_claim("MODIFIED", None, claim("u1", None, rv="8"))  # still older than our write
    assert used(v) == {"gpu-0"}
    v.on_claim("MODIFIED", None, claim("u1", None, rv="12"))  # newer truth: someone cleared it
    assert used(v) == set() and "u1" not in v.assumed_claims


def test_forget_undoes_assume() -> None:
    v = make()
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "p1"}, "spec": {"containers": []}}
    v.assume(pod, "n1", {"u1": ("c-u1", alloc("gpu-1"))})
    v.forget(pod, ["u1"])
    assert used(v) == set() and v.state.nodes["n1"].used_pods == 0
    assert v.allocation_of(claim("u1", None)) is None


def test_slice_republish_and_node_update_keep_what_runs_there() -> None:
    v = make()
    v.on_claim("ADDED", None, claim("u1", "gpu-1"))
    bound = {"metadata": {"name": "p", "namespace": "ns", "uid": "p1"},
             "spec": {"nodeName": "n1", "containers": [{"name": "c", "resources": {"requests": {"cpu": "2"}}}]},
             "status": {"phase": "Running"}}
    v.on_pod("ADDED", None, bound)
    v.on_slice("MODIFIED", None, resource_slice("n1", gpu_devices("n1", 3), generation=2))
    relabelled = node("n1", cpu="4", labels={"zone": "a"})
    v.on_node("MODIFIED", node("n1", cpu="4"), relabelled)
    state = v.state.nodes["n1"]
    assert used(v) == {"gpu-1"} and state.used_cpu == 2000 and len(state.inventory.devices) == 3
    assert state.labels["zone"] == "a"
    v.on_pod("MODIFIED", bound, dict(bound, status={"phase": "Succeeded"}))
    assert v.state.nodes["n1"].used_cpu == 0


def test_two_claims_on_one_device_are_reported_not_hidden() -> None:
    v = make()
    v.on_claim("ADDED", None, claim("u1", "gpu-0"))
    v.on_claim("ADDED", None, claim("u2", "gpu-0"))
    assert used(v) == {"gpu-0"} and len(v.errors) == 1 and "gpu-0" in v.errors[0]


def test_allocation_helpers() -> None:
    assert allocation_node(alloc("gpu-0")) == "n1"
    assert allocation_node({"devices": {"results": []}}) is None
    a, b = alloc("gpu-0"), alloc("gpu-0")
    b["allocationTimestamp"] = "2026-01-01T00:00:00Z"
    assert allocation_signature(a) == allocation_signature(b) != allocation_signature(alloc("gpu-1"))
