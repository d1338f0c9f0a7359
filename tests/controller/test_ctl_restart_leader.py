"""Restart safety and leader election, against the in-memory API server."""

from __future__ import annotations

from collections import Counter

from ctl_helpers import Api, claim, claim_spec, controller, gpu_devices, node, pod, resource_slice
from wait_helpers import wait_for

from driver.controller.leader import LeaseConfig


def allocated_devices(api: Api) -> list[tuple[str, str]]:
    out = []
    for c in api.claims():
        alloc = (c.get("status") or {}).get("allocation")
        if alloc:
            out += [(r["pool"], r["device"]) for r in alloc["devices"]["results"]]
    return out


def test_restart_rebuilds_from_api_and_never_double_allocates(server, api: Api) -> None:
    for n in ("n1", "n2"):
        api.create(node(n))
        api.create(resource_slice(n, gpu_devices(n, 2)))
    for i in range(2):
        api.create(claim(f"c{i}", claim_spec()))
        api.create(pod(f"p{i}", {"gpu": f"c{i}"}))
    with controller(server):
        for i in range(2):
            wait_for(lambda i=i: api.pod(f"p{i}")["spec"].get("nodeName"), 20, f"p{i} bound")
    # The first controller is gone; more pods than free GPUs arrive while nothing schedules.
    for i in range(2, 5):
        api.create(claim(f"c{i}", claim_spec()))
        api.create(pod(f"p{i}", {"gpu": f"c{i}"}))
    with controller(server) as second:
        assert len(second.view.claims) >= 2  # allocations in the API counted before deciding
        wait_for(lambda: sum(1 for i in range(2, 5) if api.pod(f"p{i}")["spec"].get("nodeName")) == 2, 10,
                 "two more pods bound")
        wait_for(lambda: [i for i in range(2, 5) if "Unschedulable" in str(api.pod(f"p{i}").get("status"))], 10,
                 "the fifth pod reported unschedulable")
    devices = allocated_devices(api)
    assert len(devices) == 4 and len(set(devices)) == 4, Counter(devices)


def test_only_the_leader_schedules_and_a_standby_takes_over(server, api: Api) -> None:
    api.create(node("n1"))
    api.create(resource_slice("n1", gpu_devices("n1", 8)))

    def lease(identity: str) -> LeaseConfig:
        return LeaseConfig(name="gpu-dra-test", namespace="default", identity=identity,
                           lease_duration=8.0, renew_deadline=5.0, retry_period=0.1)

    with controller(server, leader=lease("a")) as a, controller(server, leader=lease("b")) as b:
        leader = wait_for(lambda: a if a.is_leader() else b if b.is_leader() else None, 20, "a leader")
        standby = b if leader is a else a
        for i in range(3):
            api.create(claim(f"c{i}", claim_spec()))
            api.create(pod(f"p{i}", {"gpu": f"c{i}"}))
        wait_for(lambda: all(api.pod(f"p{i}")["spec"].get("nodeName") for i in range(3)), 20, "pods bound")
        wait_for(lambda: leader.scheduled == 3, 20, "the leader to count its bindings")
        assert standby.scheduled == 0 and not standby.is_leader()
        holder = api.kube.call(api.kube.coordination.read_namespaced_lease, "gpu-dra-test", "default")
        assert holder["spec"]["holderIdentity"] == leader.cfg.leader.identity
        leader.stop()  # releases the Lease: the standby must not wait for it to expire
        wait_for(standby.is_leader, 5.0, "standby to lead before the Lease (8 s) could expire")
        for i in range(3, 5):
            api.create(claim(f"c{i}", claim_spec()))
            api.create(pod(f"p{i}", {"gpu": f"c{i}"}))
        wait_for(lambda: all(api.pod(f"p{i}")["spec"].get("nodeName") for i in range(3, 5)), 20, "pods bound")
        wait_for(lambda: standby.scheduled == 2, 20, "the new leader to count its bindings")
    devices = allocated_devices(api)
    assert len(devices) == 5 and len(set(devices)) == 5
