"""ClusterView with pools not tied to one node: which nodes see them, and global accounting."""

from __future__ import annotations

from ctl_helpers import CLASSES, gpu_devices, node, resource_slice

from driver.controller.view import ClusterView

NET = "net.example.com"
RACK_A = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "rack", "operator": "In", "values": ["a"]}]}]}
NIC = (NET, "fabric", "nic-0")
SWITCH = (NET, "rack-a", "sw-0")


def net_slice(name: str, pool: str, device: str, **placement: object) -> dict:
    return {"metadata": {"name": name}, "spec": {"driver": NET, "pool": {
        "name": pool, "generation": 1, "resourceSliceCount": 1},
        "devices": [{"name": device, "attributes": {"kind": {"string": "net"}}}], **placement}}


FABRIC = net_slice("fabric", "fabric", "nic-0", allNodes=True)
RACK = net_slice("rack-a", "rack-a", "sw-0", nodeSelector=RACK_A)


def make(with_slices: bool = True) -> ClusterView:
    v = ClusterView()
    for c in CLASSES:
        v.on_class("ADDED", None, c)
    for name, rack in (("n1", "a"), ("n2", "b")):
        v.on_node("ADDED", None, node(name, labels={"rack": rack}))
        v.on_slice("ADDED", None, resource_slice(name, gpu_devices(name, 1)))
    if with_slices:
        v.on_slice("ADDED", None, FABRIC)
        v.on_slice("ADDED", None, RACK)
    return v


def seen(v: ClusterView, key: tuple) -> set[str]:
    return {n for n, st in v.state.nodes.items() if key in st.inventory.by_key}


def used(v: ClusterView, key: tuple) -> set[str]:
    return {n for n, st in v.state.nodes.items() if key in st.usage.exclusive}


def claim(uid: str, results: list[tuple], selector: dict | None = None, rv: str = "5") -> dict:
    c: dict = {"metadata": {"name": f"c-{uid}", "namespace": "ns", "uid": uid, "resourceVersion": rv}, "spec": {}}
    if results:
        alloc: dict = {"devices": {"results": [{"request": "r", "driver": d, "pool": p, "device": n}
                                               for d, p, n in results]}}
        if selector:
            alloc["nodeSelector"] = selector
        c["status"] = {"allocation": alloc}
    return c


def test_nodes_see_all_nodes_pools_and_matching_selector_pools_following_their_labels():
    v = make()
    assert seen(v, NIC) == {"n1", "n2"} and seen(v, SWITCH) == {"n1"}
    v.on_node("MODIFIED", None, node("n2", labels={"rack": "a"}))
    assert seen(v, SWITCH) == {"n1", "n2"}
    v.on_node("MODIFIED", None, node("n1", labels={"rack": "c"}))
    assert seen(v, SWITCH) == {"n2"}
    v.on_slice("DELETED", RACK, None)
    assert seen(v, SWITCH) == set() and seen(v, NIC) == {"n1", "n2"}


def test_a_shared_pool_claim_counts_on_every_node_and_belongs_to_none():
    v = make()
    c = claim("u1", [NIC])
    v.on_claim("ADDED", None, c)
    assert used(v, NIC) == {"n1", "n2"}
    assert v.node_of(c) is None  # not pinned: later pods follow its (absent) nodeSelector
    v.on_claim("MODIFIED", None, claim("u1", [], rv="6"))  # deallocated
    assert used(v, NIC) == set() and not v.errors


def test_a_mixed_claim_is_pinned_to_its_node_and_its_shared_device_outlives_the_node():
    v = make()
    c = claim("u1", [("gpu.nvidia.com", "n1", "gpu-0"), SWITCH],
              {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]})
    v.on_claim("ADDED", None, c)
    assert v.node_of(c) == "n1" and used(v, ("gpu.nvidia.com", "n1", "gpu-0")) == {"n1"}
    v.on_node("MODIFIED", None, node("n2", labels={"rack": "a"}))  # n2 joins rack a: the switch is taken
    assert used(v, SWITCH) == {"n1", "n2"}
    v.on_node("DELETED", node("n1", labels={"rack": "a"}), None)  # the claim still holds the switch
    assert used(v, SWITCH) == {"n2"}
    v.on_claim("DELETED", c, None)
    assert used(v, SWITCH) == set() and not v.errors


def test_claims_seen_before_their_slices_are_counted_once_the_slices_arrive():
    v = make(with_slices=False)  # informers run in parallel: claims may list before slices
    v.on_claim("ADDED", None, claim("u1", [NIC]))
    assert used(v, NIC) == set()
    v.on_slice("ADDED", None, FABRIC)
    assert used(v, NIC) == {"n1", "n2"}
    v.on_slice("MODIFIED", FABRIC, FABRIC)  # republished: still counted once
    assert used(v, NIC) == {"n1", "n2"} and not v.errors
    v.on_node("ADDED", None, node("n3"))
    assert used(v, NIC) == {"n1", "n2", "n3"}


def test_two_claims_on_one_shared_device_are_reported_not_hidden():
    v = make()
    v.on_claim("ADDED", None, claim("u1", [NIC]))
    v.on_claim("ADDED", None, claim("u2", [NIC]))
    assert used(v, NIC) == {"n1", "n2"}
    assert v.errors and "u2" in v.errors[0] and "nic-0 is already allocated" in v.errors[0]


def test_a_malformed_shared_slice_is_left_out_and_the_others_stay():
    v = make()
    bad = net_slice("bad", "bad-pool", "x", nodeSelector={"nodeSelectorTerms": [["rack"]]})
    v.on_slice("ADDED", None, bad)
    assert seen(v, NIC) == {"n1", "n2"} and seen(v, SWITCH) == {"n1"}
    assert not any(k[1] == "bad-pool" for st in v.state.nodes.values() for k in st.inventory.by_key)
    fixed = net_slice("bad", "bad-pool", "x", allNodes=True)
    v.on_slice("MODIFIED", bad, fixed)
    assert seen(v, (NET, "bad-pool", "x")) == {"n1", "n2"}
