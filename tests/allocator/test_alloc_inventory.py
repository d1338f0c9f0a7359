"""Slices → inventories; usage bookkeeping; consumable-capacity arithmetic."""

from __future__ import annotations

from fractions import Fraction

import pytest
from alloc_fixtures import DRIVER, GI, claim, classes, counter_set, fractional_gpu, gpu, mig, request, slice_

from driver.allocator import (
    NodeUsage, Pick, SliceError, UsageError, allocate, build_inventories, consumed_capacity, picks_from_allocation,
)
from driver.dra.semver import Semver


def test_devices_are_typed_and_qualified():
    dev = gpu(0)
    dev["attributes"]["resource.kubernetes.io/pcieRoot"] = {"string": "pci0000:00"}
    inv = build_inventories([slice_("n1", [dev])])["n1"]
    d = inv.devices[0]
    assert d.key == (DRIVER, "n1", "gpu-0") and d.node == "n1" and d.index == 0
    assert d.attributes[DRIVER]["index"] == 0 and isinstance(d.attributes[DRIVER]["driverVersion"], Semver)
    assert d.attribute("resource.kubernetes.io/pcieRoot") == "pci0000:00"
    assert d.attribute(f"{DRIVER}/uuid") == "GPU-00000000" and d.attribute(f"{DRIVER}/nope") is None
    assert d.capacity == {DRIVER: {"memory": Fraction(80 * GI)}} and d.capacity_keys == {f"{DRIVER}/memory": "memory"}
    assert inv.by_driver[DRIVER] == [d] and inv.by_key[d.key] is d


def test_newest_generation_wins_and_pools_are_per_driver():
    slices = [slice_("n1", [gpu(0)], generation=1, name="old"), slice_("n1", [gpu(1)], generation=2, name="new"),
              slice_("n1", [gpu(5)], driver="other.example.com", name="other")]
    inv = build_inventories(slices)["n1"]
    assert sorted(d.key for d in inv.devices) == [("gpu.nvidia.com", "n1", "gpu-1"), ("other.example.com", "n1", "gpu-5")]


def test_multi_slice_pool_complete_only_with_all_slices():
    a = slice_("n1", [gpu(0)], count=2, name="a")
    b = slice_("n1", [gpu(1)], count=2, name="b")
    assert len(build_inventories([a, b])["n1"].devices) == 2
    assert build_inventories([a])["n1"].devices == []


def test_counter_layouts_agree():
    migs = [mig(0, "1g.10gb", 19, s, 10, 1, counter_set=True) for s in range(2)]
    inline = build_inventories([slice_("n1", migs, shared_counters=[counter_set(0)])])["n1"]
    split = build_inventories([slice_("n1", migs, count=2, name="d"),
                               slice_("n1", [], count=2, name="c", shared_counters=[counter_set(0)])])["n1"]
    assert inline.counters == split.counters == {
        (DRIVER, "n1", "gpu-0-counter-set"): {f"memory-slice-{i}": Fraction(1) for i in range(8)}}
    assert inline.devices[1].consumes == ((((DRIVER, "n1", "gpu-0-counter-set")), {"memory-slice-1": Fraction(1)}),)


def test_all_nodes_and_node_selector_pools_attach_to_matching_nodes():
    net = {"metadata": {"name": "net"}, "spec": {"driver": "net.example.com", "pool": {
        "name": "fabric", "generation": 1, "resourceSliceCount": 1}, "allNodes": True,
        "devices": [{"name": "nic-0", "attributes": {"type": {"string": "nic"}}}]}}
    rack = {"metadata": {"name": "rack"}, "spec": {"driver": "net.example.com", "pool": {
        "name": "rack-a", "generation": 1, "resourceSliceCount": 1}, "nodeSelector": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "rack", "operator": "In", "values": ["a"]}]}]},
        "devices": [{"name": "switch-0"}]}}
    nodes = {"n1": {"rack": "a"}, "n2": {"rack": "b"}}
    invs = build_inventories([net, rack, slice_("n1", [gpu(0)])], nodes)
    assert [d.name for d in invs["n1"].devices] == ["gpu-0", "nic-0", "switch-0"]
    assert [d.name for d in invs["n2"].devices] == ["nic-0"]
    assert invs["n2"].devices[0].all_nodes
    assert build_inventories([net, rack]) == {}  # without node labels they attach nowhere, without error


def test_per_device_node_selection():
    spec = {"driver": DRIVER, "pool": {"name": "shared", "generation": 1, "resourceSliceCount": 1},
            "perDeviceNodeSelection": True, "devices": [
                {"name": "a", "nodeName": "n2"}, {"name": "b", "allNodes": True},
                {"name": "c", "nodeSelector": {"nodeSelectorTerms": [{"matchFields": [
                    {"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}]}
    invs = build_inventories([{"metadata": {"name": "per-dev"}, "spec": spec}], {"n1": {}, "n2": {}})
    assert [d.name for d in invs["n1"].devices] == ["b", "c"]
    assert [d.name for d in invs["n2"].devices] == ["a", "b"]


@pytest.mark.parametrize("mutate, fragment", [
    (lambda d: d["attributes"].update(bad={"int": 1, "string": "x"}), "attributes[bad]: expected exactly one of"),
    (lambda d: d["attributes"].update(v={"version": "1.2"}), "attributes[v].version: '1.2' is not a semantic version"),
    (lambda d: d["attributes"].update(n={"int": "3"}), "attributes[n].int: expected an integer"),
    (lambda d: d["capacity"].update(memory={"value": "lots"}), "capacity[memory].value: 'lots' is not a quantity"),
    (lambda d: d.update(taints=[{"key": "k", "effect": "Sometimes"}]), "taints[0].effect: expected None, NoSchedule"),
    (lambda d: d.pop("name"), "devices[0].name: expected a non-empty device name"),
])
def test_malformed_slices_name_the_field(mutate, fragment):
    dev = gpu(0)
    mutate(dev)
    with pytest.raises(SliceError) as err:
        build_inventories([slice_("n1", [dev], name="bad-slice")])
    assert "slice bad-slice devices[0]" in str(err.value) and fragment in str(err.value)


@pytest.mark.parametrize("mutate, fragment", [
    (lambda s: s.pop("spec"), "slice bad spec: expected an object"),
    (lambda s: s["spec"].pop("driver"), "slice bad spec.driver: expected a driver name"),
    (lambda s: s["spec"]["pool"].pop("name"), "slice bad spec.pool.name: expected a pool name"),
    (lambda s: s["spec"]["pool"].update(generation="1"), "spec.pool.generation: expected an integer >= 0, got '1'"),
    (lambda s: s["spec"]["pool"].update(resourceSliceCount=0), "spec.pool.resourceSliceCount: expected an integer >= 1"),
])
def test_malformed_slice_headers_name_the_field(mutate, fragment):
    s = slice_("n1", [gpu(0)], name="bad")
    mutate(s)
    with pytest.raises(SliceError) as err:
        build_inventories([s])
    assert fragment in str(err.value)


def test_duplicate_device_names_in_a_pool_are_rejected():
    with pytest.raises(SliceError, match="'gpu-0' appears twice in pool n1"):
        build_inventories([slice_("n1", [gpu(0)], count=2, name="a"), slice_("n1", [gpu(0)], count=2, name="b")])


# ----------------------------------------------------------------------------- usage


def test_usage_add_remove_is_exact_and_rejects_conflicts_without_change():
    inv = build_inventories([slice_("n1", [gpu(0), gpu(1)])])["n1"]
    g0, g1 = inv.devices
    usage = NodeUsage()
    usage.add([Pick(g0, "r")])
    with pytest.raises(UsageError, match="gpu-0 is already allocated"):
        usage.add([Pick(g1, "r"), Pick(g0, "r")])
    assert usage.exclusive == {g0.key}
    with pytest.raises(UsageError, match="gpu-1 is not allocated"):
        usage.remove([Pick(g0, "r"), Pick(g1, "r")])
    assert usage.exclusive == {g0.key}
    usage.add([Pick(g1, "r", admin=True)])  # admin access consumes nothing
    usage.remove([Pick(g0, "r")])
    assert usage == NodeUsage()


def test_usage_of_shared_devices_and_counters():
    dev = fractional_gpu(0)
    dev["consumesCounters"] = [{"counterSet": "cs", "counters": {"c": {"value": "1"}}}]
    inv = build_inventories([slice_("n1", [dev], shared_counters=[{"name": "cs", "counters": {"c": {"value": "1"}}}])])["n1"]
    d = inv.devices[0]
    a = Pick(d, "r", share_id="s1", consumed={f"{DRIVER}/compute": Fraction(1, 4)})
    b = Pick(d, "r", share_id="s2", consumed={f"{DRIVER}/compute": Fraction(1, 2)})
    usage = NodeUsage()
    usage.add([a])
    usage.add([b])
    cset = (DRIVER, "n1", "cs")
    assert usage.shared[d.key].consumed == {f"{DRIVER}/compute": Fraction(3, 4)}
    assert usage.counters[cset] == {"c": 1}, "a shared device consumes its counters once"
    with pytest.raises(UsageError, match="shareID s1 is already in use"):
        usage.add([a])
    usage.remove([a])
    assert usage.counters[cset] == {"c": 1}
    usage.remove([b])
    assert d.key not in usage.shared and usage.counters[cset] == {"c": 0}
    with pytest.raises(UsageError, match="no allocation with shareID s2"):
        usage.remove([b])


def test_picks_from_allocation_ignore_other_nodes_and_reject_bad_quantities():
    inv = build_inventories([slice_("n1", [fractional_gpu(0)])])["n1"]
    alloc = {"devices": {"results": [
        {"request": "r", "driver": DRIVER, "pool": "n1", "device": "gpu-0", "shareID": "x",
         "consumedCapacity": {"compute": "250m"}},
        {"request": "r", "driver": DRIVER, "pool": "n2", "device": "gpu-0"}]}}
    picks = picks_from_allocation(inv, alloc)
    assert len(picks) == 1 and picks[0].consumed == {f"{DRIVER}/compute": Fraction(1, 4)}
    alloc["devices"]["results"][0]["consumedCapacity"] = {"compute": "a lot"}
    with pytest.raises(UsageError, match=r"results\[0\].consumedCapacity\[compute\]"):
        picks_from_allocation(inv, alloc)


def test_usage_from_claims_matches_incremental_usage():
    inv = build_inventories([slice_("n1", [gpu(0), gpu(1), fractional_gpu(2)])])["n1"]
    usage, claims = NodeUsage(), []
    for c in (claim("a", request("g")), claim("b", request("f", "fractional.gpu.nvidia.com",
                                                            capacity={"compute": "500m"}))):
        r = allocate([c], inv, usage, classes())
        usage.add(r.picks)
        claims.append({**c, "status": {"allocation": r.allocations[0]}})
    rebuilt = NodeUsage.from_claims(inv, claims)
    assert rebuilt.exclusive == usage.exclusive
    assert rebuilt.shared == usage.shared


# ----------------------------------------------------------------------------- capacity


@pytest.mark.parametrize("policy, asked, expect", [
    (None, "300m", Fraction(3, 10)),
    ({"validValues": ["250m", "500m", "1"]}, "300m", Fraction(1, 2)),
    ({"validValues": ["250m", "500m"]}, "600m", None),
    ({"validRange": {"min": "100m", "step": "100m"}}, "250m", Fraction(3, 10)),
    ({"validRange": {"min": "100m", "step": "100m"}}, "50m", Fraction(1, 10)),
    ({"validRange": {"min": "200m", "max": "500m", "step": "150m"}}, "450m", Fraction(1, 2)),
    ({"validRange": {"min": "200m", "max": "400m", "step": "150m"}}, "450m", None),
    ({"validRange": {"min": "100m"}}, "333m", Fraction(333, 1000)),
    (None, "2", None),
])
def test_request_policy_rounding(policy, asked, expect):
    dev = fractional_gpu(0, policy=policy)
    dev["capacity"]["memory"]["requestPolicy"] = {"default": "2Gi"}
    d = build_inventories([slice_("n1", [dev])])["n1"].devices[0]
    got = consumed_capacity(d, {f"{DRIVER}/compute": Fraction(asked) if "m" not in asked
                                else Fraction(int(asked[:-1]), 1000)})
    if expect is None:
        assert got is None
    else:
        assert got == {f"{DRIVER}/compute": expect, f"{DRIVER}/memory": Fraction(2 * GI)}


def test_capacity_on_ordinary_devices_filters_only():
    d = build_inventories([slice_("n1", [gpu(0, memory_gi=40)])])["n1"].devices[0]
    assert consumed_capacity(d, {f"{DRIVER}/memory": Fraction(40 * GI)}) == {}
    assert consumed_capacity(d, {f"{DRIVER}/memory": Fraction(41 * GI)}) is None
    assert consumed_capacity(d, {"other.example.com/memory": Fraction(1)}) is None
