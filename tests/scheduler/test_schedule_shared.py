"""Pools not tied to one node (allNodes / nodeSelector) in the cluster-level scheduler.

A device of such a pool shows up in the inventory of every node it is available on, but it is one
device: once allocated for a pod on one node it is taken for all of them, and released for all.
The allocation's nodeSelector follows upstream's structured allocator (allocate.py docstring).
"""

from __future__ import annotations

import pytest
from alloc_fixtures import DRIVER, claim, gpu, request, slice_

from driver.allocator.allocate import allocate, allocated_on_node, node_name_selector
from driver.allocator.inventory import SliceError, build_inventories, build_shared_inventory, slice_nodes
from driver.scheduler.cycle import ClusterState, Placement, Unschedulable, schedule
from driver.allocator.usage import NodeUsage, UsageError, picks_from_allocation

NET = "net.example.com"
RACK_A = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "rack", "operator": "In", "values": ["a"]}]}]}
ZONE_1 = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["1"]}]}]}


def net_class(name: str, kind: str) -> dict:
    expr = f"device.driver == '{NET}' && device.attributes['{NET}'].kind == '{kind}'"
    return {"metadata": {"name": name}, "spec": {"selectors": [{"cel": {"expression": expr}}]}}


CLASSES = {
    "gpu.nvidia.com": {"metadata": {"name": "gpu.nvidia.com"}, "spec": {"selectors": [{"cel": {"expression":
                       f"device.driver == '{DRIVER}' && device.attributes['{DRIVER}'].type == 'gpu'"}}]}},
    "fabric": net_class("fabric", "fabric"),
    "switch": net_class("switch", "switch"),
    "vf": net_class("vf", "vf"),
}


def net_slice(name: str, pool: str, devices: list[dict], **placement: object) -> dict:
    return {"metadata": {"name": name}, "spec": {"driver": NET, "pool": {
        "name": pool, "generation": 1, "resourceSliceCount": 1}, "devices": devices, **placement}}


def net_device(name: str, kind: str, **extra: object) -> dict:
    return {"name": name, "attributes": {"kind": {"string": kind}}, **extra}


def shared_vf(name: str) -> dict:
    """A device many claims may use at once, each taking a share of its `compute` (the capacity
    the scorer reads; without it the scorer counts a shared device as full once used)."""
    return net_device(name, "vf", allowMultipleAllocations=True, capacity={"compute": {
        "value": "1", "requestPolicy": {"default": "1", "validRange": {"min": "10m", "step": "10m"}}}})


SLICES = [
    net_slice("fabric", "fabric", [net_device("nic-0", "fabric")], allNodes=True),
    net_slice("rack-a", "rack-a", [net_device("sw-0", "switch")], nodeSelector=RACK_A),
    net_slice("vfs", "vfs", [shared_vf("vf-0")], allNodes=True),
]
NODES = {"n1": {"rack": "a", "zone": "1"}, "n2": {"rack": "a"}, "n3": {"rack": "b"}}


def node(name: str, labels: dict[str, str], cpu: str = "8") -> dict:
    alloc = {"cpu": cpu, "memory": "64Gi", "pods": "110"}
    return {"metadata": {"name": name, "labels": labels}, "spec": {}, "status": {"allocatable": alloc}}


def cluster(nodes: dict[str, dict[str, str]] = NODES, slices: list[dict] = SLICES) -> ClusterState:
    state = ClusterState(CLASSES)
    local = [slice_(n, [gpu(0)]) for n in nodes]
    inventories = build_inventories(local + slices, nodes)
    for name, labels in nodes.items():
        state.add_node(node(name, labels), inventories.get(name))
    return state


def pod(name: str, cpu: str = "1", **spec: object) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}], **spec}}


def used_on(state: ClusterState, device: str) -> set[str]:
    """Nodes whose usage (exclusive or shared) holds the device named `device`."""
    return {n.name for n in state.nodes.values()
            if any(k[2] == device for k in list(n.usage.exclusive) + list(n.usage.shared))}


# ---- status.allocation.nodeSelector --------------------------------------------------------------


def _alloc_on(node_name: str, *requests: dict, nodes: dict = NODES) -> dict:
    inv = build_inventories([slice_(n, [gpu(0)]) for n in nodes] + SLICES + [
        net_slice("zone-1", "zone-1", [net_device("sw-z", "switch")], nodeSelector=ZONE_1)], nodes)[node_name]
    result = allocate([claim("c", *requests)], inv, NodeUsage(), CLASSES)
    assert result, getattr(result, "reason", "")
    return result.allocations[0]


def test_all_nodes_devices_alone_carry_no_node_selector():
    alloc = _alloc_on("n3", request("nic", "fabric"))
    assert "nodeSelector" not in alloc
    assert alloc["devices"]["results"][0]["pool"] == "fabric"


def test_node_selector_pool_allocation_carries_the_pool_selector():
    assert _alloc_on("n2", request("sw", "switch"))["nodeSelector"] == RACK_A


def test_two_node_selector_pools_are_anded_into_one_term():
    alloc = _alloc_on("n1", request("sw", "switch", count=2))  # sw-0 (rack a) and sw-z (zone 1)
    assert alloc["nodeSelector"] == {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "rack", "operator": "In", "values": ["a"]}, {"key": "zone", "operator": "In", "values": ["1"]}]}]}
    assert allocated_on_node({"status": {"allocation": alloc}}, "n1", NODES["n1"])
    assert not allocated_on_node({"status": {"allocation": alloc}}, "n2", NODES["n2"])


def test_a_node_local_device_pins_the_allocation_to_its_node():
    alloc = _alloc_on("n2", request("gpu"), request("sw", "switch"), request("nic", "fabric"))
    assert alloc["nodeSelector"] == node_name_selector("n2")


def test_malformed_node_selector_names_the_slice_and_field():
    bad = net_slice("bad-rack", "bad", [net_device("x", "switch")], nodeSelector={"nodeSelectorTerms": "rack=a"})
    with pytest.raises(SliceError, match="slice bad-rack spec.nodeSelector: nodeSelectorTerms: expected a non-empty"):
        build_inventories([bad], NODES)
    assert slice_nodes(bad, NODES) == set()  # reaches no node, raises nothing
    per_device = net_slice("per-dev", "pd", [net_device("y", "switch", nodeSelector={"nodeSelectorTerms": [7]})],
                           perDeviceNodeSelection=True)
    with pytest.raises(SliceError, match=r"slice per-dev devices\[0\].nodeSelector: nodeSelectorTerms\[0\]: expected an"):
        build_inventories([per_device], NODES)


def test_selectors_with_several_terms_intersect_term_by_term():
    """Upstream validation allows one term per slice selector; should a slice carry several (ORed),
    the AND with another pool's selector must keep every alternative."""
    either = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "rack", "operator": "In", "values": ["a"]}]},
                                    {"matchExpressions": [{"key": "rack", "operator": "In", "values": ["c"]}]}]}
    nodes = {"n1": {"rack": "a", "zone": "1"}}
    slices = [net_slice("s1", "p1", [net_device("sw-e", "switch")], nodeSelector=either),
              net_slice("s2", "p2", [net_device("sw-z", "switch")], nodeSelector=ZONE_1)]
    result = allocate([claim("c", request("sw", "switch", count=2))], build_inventories(slices, nodes)["n1"],
                      NodeUsage(), CLASSES)
    zone = {"key": "zone", "operator": "In", "values": ["1"]}
    assert result.allocations[0]["nodeSelector"] == {"nodeSelectorTerms": [
        {"matchExpressions": [either["nodeSelectorTerms"][0]["matchExpressions"][0], zone]},
        {"matchExpressions": [either["nodeSelectorTerms"][1]["matchExpressions"][0], zone]}]}


def test_shared_inventory_holds_every_unplaced_device_once():
    inv = build_shared_inventory(SLICES + [slice_("n1", [gpu(0)])])
    assert sorted(d.name for d in inv.devices) == ["nic-0", "sw-0", "vf-0"]
    assert all(d.shared_pool for d in inv.devices)
    assert slice_nodes(SLICES[1], NODES) == {"n1", "n2"} and slice_nodes(SLICES[0], NODES) == {"n1", "n2", "n3"}


# ---- ClusterState: usage is global -------------------------------------------------------------


def test_node_selector_pool_is_offered_only_to_matching_nodes():
    state = cluster()
    for i in range(3):
        result = schedule(pod(f"p{i}"), [claim(f"c{i}", request("sw", "switch"))], state)
        if i == 0:
            assert isinstance(result, Placement) and result.node in ("n1", "n2")
            assert result.allocations["c0"]["nodeSelector"] == RACK_A
            state.commit(result)
        else:  # the only rack-a switch is taken, and n3 never had it
            assert isinstance(result, Unschedulable)
    assert used_on(state, "sw-0") == {"n1", "n2"}


def test_committing_a_shared_device_takes_it_on_every_node_and_release_frees_it_everywhere():
    state = cluster()
    first = schedule(pod("a"), [claim("ca", request("nic", "fabric"))], state)
    assert isinstance(first, Placement) and "nodeSelector" not in first.allocations["ca"]
    state.commit(first)
    assert used_on(state, "nic-0") == {"n1", "n2", "n3"}
    for n in state.nodes.values():  # the scorer's view (free per device) agrees on every node
        nic = n.inventory.by_key[(NET, "fabric", "nic-0")]
        assert n.free[nic.index] == 0
    assert state.nodes[first.node].used_cpu == 1000
    assert sum(n.used_cpu for n in state.nodes.values()) == 1000  # cpu stays where the pod is
    blocked = schedule(pod("b"), [claim("cb", request("nic", "fabric"))], state)
    assert isinstance(blocked, Unschedulable)
    state.release(first)
    assert used_on(state, "nic-0") == set()
    again = schedule(pod("b"), [claim("cb", request("nic", "fabric"))], state)
    assert isinstance(again, Placement)


def test_a_conflicting_commit_changes_nothing():
    state = cluster()
    first = schedule(pod("a"), [claim("ca", request("nic", "fabric"))], state)
    state.commit(first)
    other = next(n for n in NODES if n != first.node)
    # The same device decided for another node (a stale decision): refused, nothing half-applied.
    inv = state.nodes[other].inventory
    picks = tuple(picks_from_allocation(inv, {"devices": {"results": [
        {"request": "gpu", "driver": DRIVER, "pool": other, "device": "gpu-0"},
        {"request": "nic", "driver": NET, "pool": "fabric", "device": "nic-0"}]}}))
    stale = Placement("b", other, {}, (), "", first.requests, picks)
    before = {n.name: (set(n.usage.exclusive), n.used_cpu, n.free, n.group) for n in state.nodes.values()}
    with pytest.raises(UsageError, match="nic-0 is already allocated"):
        state.commit(stale)
    assert {n.name: (set(n.usage.exclusive), n.used_cpu, n.free, n.group) for n in state.nodes.values()} == before
    with pytest.raises(UsageError, match="not allocated"):
        state.release(stale)  # never committed: refused too
    assert used_on(state, "nic-0") == {"n1", "n2", "n3"}


def test_nodes_joining_or_rebuilt_start_from_the_global_use():
    state = cluster()
    placed = schedule(pod("a"), [claim("ca", request("nic", "fabric"))], state)
    state.commit(placed)
    invs = build_inventories([slice_("n4", [gpu(0)])] + SLICES, {"n4": {"rack": "a"}})
    state.add_node(node("n4", {"rack": "a"}), invs["n4"])  # a new node sees the taken device as taken
    assert "n4" in used_on(state, "nic-0")
    rebuilt = build_inventories([slice_(placed.node, [gpu(0)])] + SLICES, {placed.node: NODES[placed.node]})
    state.add_node(node(placed.node, NODES[placed.node]), rebuilt[placed.node])  # replaced: shared use stays
    assert used_on(state, "nic-0") == {"n1", "n2", "n3", "n4"}
    state.remove_node(placed.node)  # the pod's node goes away: the device is still allocated
    assert isinstance(schedule(pod("b"), [claim("cb", request("nic", "fabric"))], state), Unschedulable)
    state.release_shared(tuple(p for p in placed.picks if p.device.shared_pool))
    assert used_on(state, "nic-0") == set()
    assert isinstance(schedule(pod("b"), [claim("cb", request("nic", "fabric"))], state), Placement)


def test_nodes_that_did_not_get_the_pod_are_regrouped_with_the_device_used():
    state = cluster({"n1": {"rack": "a"}, "n2": {"rack": "a"}, "n3": {"rack": "a"}})
    assert len(state.groups) == 1
    placed = schedule(pod("a"), [claim("ca", request("nic", "fabric"))], state)
    state.commit(placed)
    others = [n for n in state.nodes.values() if n.name != placed.node]
    assert len(state.groups) == 2 and others[0].group == others[1].group != state.nodes[placed.node].group
    group = state.groups[others[0].group]
    nic = others[0].inventory.by_key[(NET, "fabric", "nic-0")]
    assert group.state[2][nic.index] == 0  # the group the scorer ranks knows the device is taken


def test_shared_capacity_device_keeps_each_share_separately():
    state = cluster()
    placements = []
    for i in range(2):
        c = claim(f"v{i}", request("vf", "vf", capacity={"compute": "600m" if i == 0 else "300m"}))
        result = schedule(pod(f"p{i}"), [c], state)
        assert isinstance(result, Placement), result
        state.commit(result)
        placements.append(result)
    for n in state.nodes.values():
        use = n.usage.shared[(NET, "vfs", "vf-0")]
        assert use.refs == 2 and use.units[f"{NET}/compute"] == 9 * 10**8
    too_much = schedule(pod("p2"), [claim("v2", request("vf", "vf", capacity={"compute": "200m"}))], state)
    assert isinstance(too_much, Unschedulable)
    state.release(placements[0])  # the 600m share goes; the 300m share stays on every node
    for n in state.nodes.values():
        use = n.usage.shared[(NET, "vfs", "vf-0")]
        assert use.refs == 1 and use.units[f"{NET}/compute"] == 3 * 10**8
        assert n.free[n.inventory.by_key[(NET, "vfs", "vf-0")].index] == 700
    assert isinstance(schedule(pod("p2"), [claim("v2", request("vf", "vf", capacity={"compute": "200m"}))], state),
                      Placement)


def test_commit_shared_refuses_node_local_devices():
    state = cluster()
    inv = state.nodes["n1"].inventory
    local = tuple(picks_from_allocation(inv, {"devices": {"results": [
        {"request": "gpu", "driver": DRIVER, "pool": "n1", "device": "gpu-0"}]}}))
    with pytest.raises(UsageError, match="node-local"):
        state.commit_shared(local)
    assert used_on(state, "gpu-0") == set()


def test_an_allocated_node_selector_claim_pins_later_pods_to_matching_nodes():
    state = cluster()
    first = schedule(pod("a"), [claim("shared", request("sw", "switch"))], state)
    state.commit(first)
    allocated = claim("shared", request("sw", "switch"))
    allocated["status"] = {"allocation": first.allocations["shared"]}
    for i in range(4):  # n1 and n2 have 8 cpus each: two 3-cpu pods fit on each beside "a"
        result = schedule(pod(f"b{i}", cpu="3"), [], state, allocated=[allocated])
        assert isinstance(result, Placement) and result.node in ("n1", "n2")
        state.commit(result)
    assert state.nodes["n3"].used_pods == 0  # n3 (rack b) had room for all of them
    result = schedule(pod("late", cpu="3"), [], state, allocated=[allocated])
    assert isinstance(result, Unschedulable)
    assert result.counts["node(s) not where the pod's allocated claim is"] == 1
