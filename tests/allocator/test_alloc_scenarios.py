"""Allocation scenarios checked against upstream structured-allocation semantics (FACTS §6)."""

from __future__ import annotations

import copy

import pytest
from alloc_fixtures import (
    DRIVER, FRACTIONAL_CLASS, MIG_CLASS, claim, classes, counter_set, device_class, devices_of,
    first_available, fractional_gpu, gpu, gpu_config, mig, request, slice_,
)

from driver.allocator import (
    AllocationFailure, NodeUsage, allocate, allocated_on_node, build_inventories, prepare, quick_reject,
)

NOW = "2026-11-25T16:00:00Z"


def node(*devices: dict, name: str = "n1", **kw) -> object:
    return build_inventories([slice_(name, list(devices), **kw)])[name]


def place(claims: list[dict], inv, usage: NodeUsage, cls=None, **kw):
    """Allocate and record in usage, like the controller does after writing the status."""
    result = allocate(claims, inv, usage, cls or classes(), **kw)
    if result:
        usage.add(result.picks)
    return result


def test_two_pods_each_get_their_own_gpu_then_the_third_waits():
    inv, usage = node(gpu(0), gpu(1)), NodeUsage()
    a = place([claim("a", request("gpu"))], inv, usage, now=NOW)
    b = place([claim("b", request("gpu"))], inv, usage)
    assert devices_of(a) == [["gpu-0"]] and devices_of(b) == [["gpu-1"]]
    alloc = a.allocations[0]
    assert alloc["devices"]["results"] == [{"request": "gpu", "driver": DRIVER, "pool": "n1", "device": "gpu-0"}]
    assert alloc["nodeSelector"] == {"nodeSelectorTerms": [{"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}
    assert alloc["allocationTimestamp"] == NOW
    assert "allocationTimestamp" not in b.allocations[0]
    c = place([claim("c", request("gpu"))], inv, usage)
    assert isinstance(c, AllocationFailure) and not c.permanent
    assert "claim default/c request gpu: needs 1 device(s), 0 of 2 matching devices available" in c.reason


def test_count_two_takes_two_distinct_devices():
    inv, usage = node(gpu(0), gpu(1), gpu(2)), NodeUsage()
    r = place([claim("a", request("gpus", count=2))], inv, usage)
    assert devices_of(r) == [["gpu-0", "gpu-1"]]
    assert isinstance(place([claim("b", request("gpus", count=2))], inv, usage), AllocationFailure)


def test_all_claims_of_a_pod_or_none():
    inv, usage = node(gpu(0), gpu(1)), NodeUsage()
    r = allocate([claim("a", request("gpu")), claim("b", request("gpu", count=2))], inv, usage, classes())
    assert isinstance(r, AllocationFailure)
    assert "claims default/a, default/b together need more than node n1 has free" in r.reason
    assert usage == NodeUsage()
    ok = allocate([claim("a", request("gpu")), claim("b", request("gpu"))], inv, usage, classes())
    assert devices_of(ok) == [["gpu-0"], ["gpu-1"]]


def test_shared_claim_is_not_reallocated_and_pins_the_node():
    inv, usage = node(gpu(0), gpu(1)), NodeUsage()
    shared = claim("shared", request("gpu"))
    r = place([shared], inv, usage)
    shared["status"] = {"allocation": r.allocations[0]}
    assert allocated_on_node(shared, "n1") and not allocated_on_node(shared, "n2")
    assert not allocated_on_node(claim("fresh", request("gpu")), "n1")
    # A restart rebuilds the same usage from claim statuses.
    rebuilt = NodeUsage.from_claims(inv, [shared, claim("unallocated", request("gpu"))])
    assert rebuilt.exclusive == usage.exclusive == {(DRIVER, "n1", "gpu-0")}


def mig_node(free_on_gpu0: int = 3) -> tuple:
    """Two A100s with seven 1g.10gb MIG devices each; GPU 0 has 7 - free_on_gpu0 in use."""
    devs = [mig(p, "1g.10gb", 19, s, 10, 1) for p in (0, 1) for s in range(7)]
    inv = node(*devs)
    usage = NodeUsage()
    blockers = [claim(f"x{i}", request("m", MIG_CLASS, selectors=[
        f"device.attributes['{DRIVER}'].parentUUID == 'GPU-00000000'"])) for i in range(7 - free_on_gpu0)]
    for b in blockers:
        assert place([b], inv, usage)
    return inv, usage


def test_four_mig_requests_with_match_attribute_backtrack_to_one_parent():
    inv, usage = mig_node(free_on_gpu0=3)
    reqs = [request(f"mig-{i}", MIG_CLASS) for i in range(4)]
    c = claim("four", *reqs, constraints=[{"requests": [f"mig-{i}" for i in range(4)],
                                           "matchAttribute": f"{DRIVER}/parentUUID"}])
    r = place([c], inv, usage)
    picked = [inv.by_key[(DRIVER, "n1", d)] for d in devices_of(r)[0]]
    assert {d.attribute(f"{DRIVER}/parentUUID") for d in picked} == {"GPU-00000001"}
    assert [x["request"] for x in r.allocations[0]["devices"]["results"]] == ["mig-0", "mig-1", "mig-2", "mig-3"]


def test_match_attribute_rejects_devices_lacking_the_attribute():
    inv, usage = node(gpu(0), gpu(1, rack="a")), NodeUsage()
    c = claim("c", request("a"), request("b"), constraints=[{"matchAttribute": f"{DRIVER}/rack"}])
    r = allocate([c], inv, usage, classes())
    assert isinstance(r, AllocationFailure) and "matchAttribute gpu.nvidia.com/rack" in r.reason


def test_distinct_attribute():
    inv, usage = node(gpu(0, rack="a"), gpu(1, rack="a"), gpu(2, rack="b")), NodeUsage()
    c = claim("c", request("a"), request("b"), constraints=[{"distinctAttribute": f"{DRIVER}/rack"}])
    assert devices_of(allocate([c], inv, usage, classes())) == [["gpu-0", "gpu-2"]]
    c3 = claim("c", request("a", count=3), constraints=[{"distinctAttribute": f"{DRIVER}/rack"}])
    assert isinstance(allocate([c3], inv, usage, classes()), AllocationFailure)


def test_configs_copied_from_class_then_claim_with_requests():
    class_cfg = {"opaque": {"driver": DRIVER, "parameters": {"apiVersion": "resource.nvidia.com/v1beta1",
                                                             "kind": "GpuConfig"}}}
    cls = classes(**{"shared-gpu": device_class("shared-gpu", "gpu", config=[class_cfg])})
    inv, usage = node(gpu(0), gpu(1)), NodeUsage()
    per_request = {"requests": ["ts"], "opaque": gpu_config("TimeSlicing", "Long")}
    everyone = {"opaque": gpu_config("MPS")}
    c = claim("c", request("ts", "shared-gpu"), request("plain"), config=[per_request, everyone])
    r = allocate([c], inv, usage, cls)
    assert r.allocations[0]["devices"]["config"] == [
        {"source": "FromClass", "requests": ["ts"], "opaque": class_cfg["opaque"]},
        {"source": "FromClaim", "requests": ["ts"], "opaque": per_request["opaque"]},
        {"source": "FromClaim", "opaque": everyone["opaque"]},
    ]


def test_cel_on_capacity_quantity():
    inv, usage = node(gpu(0, memory_gi=24), gpu(1, memory_gi=80)), NodeUsage()
    sel = f"device.capacity['{DRIVER}'].memory.compareTo(quantity(\"40Gi\")) >= 0"
    assert devices_of(allocate([claim("c", request("g", selectors=[sel]))], inv, usage, classes())) == [["gpu-1"]]


def test_cel_on_versions_orders_by_semver_not_text():
    inv = node(gpu(0, driver_version="535.183.1"), gpu(1, driver_version="550.9.0"), gpu(2, driver_version="550.10.0"))
    sel = f"device.attributes['{DRIVER}'].driverVersion.isGreaterThan(semver(\"550.9.0\"))"
    assert devices_of(allocate([claim("c", request("g", selectors=[sel]))], inv, NodeUsage(), classes())) == [["gpu-2"]]


def test_unknown_attribute_is_a_reported_permanent_error():
    inv = node(gpu(0))
    r = allocate([claim("c", request("g", selectors=[f"device.attributes['{DRIVER}'].noSuchThing == 'x'"]))],
                 inv, NodeUsage(), classes())
    assert isinstance(r, AllocationFailure) and r.permanent
    assert "claim default/c request g" in r.reason and "noSuchThing" in r.reason


def test_unknown_domain_is_an_empty_map_not_an_error():
    inv = node(gpu(0))
    r = allocate([claim("c", request("g", selectors=["device.attributes['other.example.com'].size() == 0"]))],
                 inv, NodeUsage(), classes())
    assert devices_of(r) == [["gpu-0"]]
    r = allocate([claim("c", request("g", selectors=["'x' in device.attributes['other.example.com']"]))],
                 inv, NodeUsage(), classes())
    assert isinstance(r, AllocationFailure) and not r.permanent and "0 match the selectors" in r.reason


def test_first_available_falls_back_in_order():
    big = f"device.capacity['{DRIVER}'].memory.compareTo(quantity('80Gi')) >= 0"
    inv = node(gpu(0, memory_gi=40), mig(0, "3g.40gb", 9, 0, 40, 4))
    c = claim("c", first_available("gpu", request("big", selectors=[big]), request("mig", MIG_CLASS),
                                   request("any")))
    r = allocate([c], inv, NodeUsage(), classes())
    assert r.allocations[0]["devices"]["results"][0]["request"] == "gpu/mig"
    assert devices_of(r) == [["gpu-0-mig-3g40gb-9-0"]]


def test_first_available_backtracks_when_a_later_request_needs_the_device():
    inv = node(gpu(0), mig(1, "1g.10gb", 19, 0, 10, 1))
    c = claim("c", first_available("flex", request("whole"), request("small", MIG_CLASS)), request("need-gpu"))
    r = allocate([c], inv, NodeUsage(), classes())
    assert [(x["request"], x["device"]) for x in r.allocations[0]["devices"]["results"]] == [
        ("flex/small", "gpu-1-mig-1g10gb-19-0"), ("need-gpu", "gpu-0")]


def test_all_mode_takes_every_matching_device_or_fails():
    inv, usage = node(gpu(0), gpu(1), mig(0, "1g.10gb", 19, 0, 10, 1)), NodeUsage()
    r = allocate([claim("c", request("g", mode="All"))], inv, usage, classes())
    assert devices_of(r) == [["gpu-0", "gpu-1"]]
    place([claim("x", request("g"))], inv, usage)
    r = allocate([claim("c", request("g", mode="All"))], inv, usage, classes())
    assert isinstance(r, AllocationFailure) and "allocationMode All needs all 2 matching devices, 1 are unavailable" in r.reason
    none = allocate([claim("c", request("g", FRACTIONAL_CLASS, mode="All"))], inv, usage, classes())
    assert isinstance(none, AllocationFailure)


def test_admin_access_uses_devices_in_use_and_consumes_nothing():
    inv, usage = node(gpu(0)), NodeUsage()
    place([claim("user", request("g"))], inv, usage)
    before = copy.deepcopy(usage)
    r = place([claim("monitor", request("g", admin=True))], inv, usage)
    assert r.allocations[0]["devices"]["results"][0]["adminAccess"] is True
    assert usage == before


def test_taints_block_unless_tolerated():
    taint = {"key": f"{DRIVER}/xid", "value": "48", "effect": "NoSchedule"}
    inv = node(gpu(0, taints=[taint]), gpu(1, taints=[{"key": "info", "value": "13", "effect": "None"}]))
    usage = NodeUsage()
    assert devices_of(allocate([claim("c", request("g"))], inv, usage, classes())) == [["gpu-1"]]
    tol = [{"key": f"{DRIVER}/xid", "operator": "Exists", "effect": "NoSchedule"}]
    r = allocate([claim("c", request("g", tolerations=tol))], inv, usage, classes())
    assert devices_of(r) == [["gpu-0"]]
    assert r.allocations[0]["devices"]["results"][0]["tolerations"] == tol
    wrong = [{"key": f"{DRIVER}/xid", "operator": "Equal", "value": "13"}]
    r = allocate([claim("c", request("g", count=2, tolerations=wrong))], inv, usage, classes())
    assert isinstance(r, AllocationFailure)


@pytest.mark.parametrize("layout", ["1.34-inline", "1.35-separate"])
def test_partitionable_counters_keep_full_gpu_and_mig_consistent(layout):
    full = {"name": "gpu-0", "attributes": {"type": {"string": "gpu"}},
            "consumesCounters": [{"counterSet": "gpu-0-counter-set",
                                  "counters": {f"memory-slice-{i}": {"value": "1"} for i in range(8)}}]}
    migs = [mig(0, "3g.40gb", 9, 0, 40, 4, counter_set=True), mig(0, "3g.40gb", 9, 4, 40, 4, counter_set=True),
            mig(0, "4g.40gb", 5, 0, 40, 4, counter_set=True)]
    if layout == "1.34-inline":
        slices = [slice_("n1", [full, *migs], shared_counters=[counter_set(0)])]
    else:
        slices = [slice_("n1", [full, *migs], count=2, name="devs"),
                  slice_("n1", [], count=2, name="counters", shared_counters=[counter_set(0)])]
    inv, usage = build_inventories(slices)["n1"], NodeUsage()
    a = place([claim("a", request("m", MIG_CLASS))], inv, usage)
    assert devices_of(a) == [["gpu-0-mig-3g40gb-9-0"]]
    assert isinstance(allocate([claim("w", request("g"))], inv, usage, classes()), AllocationFailure)
    # 4g.40gb overlaps slices 0-3 with the first 3g: only the second 3g placement fits.
    b = place([claim("b", request("m", MIG_CLASS))], inv, usage)
    assert devices_of(b) == [["gpu-0-mig-3g40gb-9-4"]]
    assert isinstance(place([claim("c", request("m", MIG_CLASS))], inv, usage), AllocationFailure)
    usage.remove(a.picks)
    usage.remove(b.picks)
    assert devices_of(allocate([claim("w", request("g"))], inv, usage, classes())) == [["gpu-0"]]


def test_fractional_capacity_policy_rounding_share_ids_and_consumed_capacity():
    policy = {"default": "100m", "validRange": {"min": "100m", "max": "1", "step": "100m"}}
    dev = fractional_gpu(0, policy=policy)
    dev["capacity"]["memory"]["requestPolicy"] = {"default": "1Gi", "validRange": {"min": "1Gi", "step": "1Gi"}}
    inv, usage = node(dev), NodeUsage()
    r1 = place([claim("a", request("f", FRACTIONAL_CLASS, capacity={"compute": "250m", "memory": "10Gi"}))], inv, usage)
    res = r1.allocations[0]["devices"]["results"][0]
    assert res["consumedCapacity"] == {"compute": "300m", "memory": "10Gi"}
    r2 = place([claim("b", request("f", FRACTIONAL_CLASS, capacity={"compute": "650m"}))], inv, usage)
    res2 = r2.allocations[0]["devices"]["results"][0]
    assert res2["consumedCapacity"] == {"compute": "700m", "memory": "1Gi"}
    assert res["shareID"] != res2["shareID"] and len(res["shareID"]) == 36
    # 1000m - 300m - 700m = 0 left.
    r3 = allocate([claim("c", request("f", FRACTIONAL_CLASS, capacity={"compute": "100m"}))], inv, usage, classes())
    assert isinstance(r3, AllocationFailure)
    too_big = allocate([claim("d", request("f", FRACTIONAL_CLASS, capacity={"compute": "1100m"}))],
                       inv, NodeUsage(), classes())
    assert isinstance(too_big, AllocationFailure)
    # Deterministic: the same claim on the same state gets the same shareID.
    again = allocate([claim("a", request("f", FRACTIONAL_CLASS, capacity={"compute": "250m"}))], inv, NodeUsage(), classes())
    assert again.allocations[0]["devices"]["results"][0]["shareID"] == res["shareID"]


def test_share_id_text_is_a_name_based_uuid():
    import uuid

    from driver.allocator.allocate import _SHARE_NS, uuid5_text
    for name in ("", "uid-a|f|gpu.nvidia.com/n1/gpu-0|0", "ünïcode"):
        assert uuid5_text(name) == str(uuid.uuid5(_SHARE_NS, name))


def test_shared_device_without_policy_charges_full_capacity_to_plain_requests():
    inv, usage = node(fractional_gpu(0)), NodeUsage()
    r = place([claim("a", request("f", FRACTIONAL_CLASS))], inv, usage)
    assert r.allocations[0]["devices"]["results"][0]["consumedCapacity"] == {"memory": "80Gi", "compute": "1"}
    assert isinstance(allocate([claim("b", request("f", FRACTIONAL_CLASS, capacity={"compute": "1m"}))],
                               inv, usage, classes()), AllocationFailure)


def test_valid_values_policy_rounds_to_next_value():
    dev = fractional_gpu(0, policy={"default": "250m", "validValues": ["250m", "500m", "1"]})
    dev["capacity"]["memory"]["requestPolicy"] = {"default": "0"}
    inv = node(dev)
    r = allocate([claim("a", request("f", FRACTIONAL_CLASS, capacity={"compute": "300m"}))], inv, NodeUsage(), classes())
    assert r.allocations[0]["devices"]["results"][0]["consumedCapacity"]["compute"] == "500m"


def test_capacity_request_filters_ordinary_devices():
    inv = node(gpu(0, memory_gi=40), gpu(1, memory_gi=80))
    r = allocate([claim("a", request("g", capacity={"memory": "60Gi"}))], inv, NodeUsage(), classes())
    assert devices_of(r) == [["gpu-1"]] and "consumedCapacity" not in r.allocations[0]["devices"]["results"][0]


@pytest.mark.parametrize("bad, message", [
    (claim("c", request("g", "no-such-class")), "device class 'no-such-class' does not exist"),
    (claim("c", request("g", count=0)), "spec.devices.requests[0].exactly.count: expected a positive integer"),
    (claim("c", request("g", selectors=["device.driver =="])), "requests[0].exactly.selectors[0].cel.expression"),
    (claim("c", request("g", selectors=["quantity('1').isGreaterThan('x')"])), "found no matching overload"),
    (claim("c", request("g", selectors=["1 + 1"])), "must evaluate to bool, not INT"),
    (claim("c", request("g", selectors=["device.driver"])), "returned STRING, not bool"),
    (claim("c", request("g"), request("g")), "duplicate request name 'g'"),
    (claim("c", request("g"), constraints=[{"matchAttribute": "rack"}]), "must be fully qualified"),
    (claim("c", request("g"), config=[{"requests": ["nope"], "opaque": gpu_config()}]), "'nope' is not a request"),
    (claim("c", first_available("g", request("a", admin=True))), "firstAvailable[0].adminAccess: not allowed"),
    (claim("c", request("g", mode="All", count=2)), "count: must not be set with allocationMode All"),
    (claim("c", request("g", tolerations=[{"key": "k", "operator": "Maybe"}])), "tolerations[0].operator"),
    (claim("c", request("g", capacity={"memory": "lots"})), "capacity.requests[memory]: 'lots' is not a quantity"),
])
def test_invalid_claims_fail_permanently_with_the_field(bad, message):
    r = allocate([bad], node(gpu(0)), NodeUsage(), classes())
    assert isinstance(r, AllocationFailure) and r.permanent
    assert message in r.reason


def test_non_bool_runtime_result_is_an_error():
    r = allocate([claim("c", request("g", selectors=["cel.bind(x, device.attributes['gpu.nvidia.com'].index, "
                                                     "x == 0 ? true : dyn(1))"]))],
                 node(gpu(1)), NodeUsage(), classes())
    assert isinstance(r, AllocationFailure) and r.permanent and "not bool" in r.reason


class Reverse:
    def order(self, request, candidates, inventory, usage):
        return list(reversed(candidates))


class DropAll:
    def order(self, request, candidates, inventory, usage):
        return []


def test_chooser_orders_and_may_drop_candidates():
    inv = node(gpu(0), gpu(1), gpu(2))
    assert devices_of(allocate([claim("c", request("g"))], inv, NodeUsage(), classes(), chooser=Reverse())) == [["gpu-2"]]
    assert isinstance(allocate([claim("c", request("g"))], inv, NodeUsage(), classes(), chooser=DropAll()),
                      AllocationFailure)


def test_prepared_claims_and_quick_reject():
    inv, usage = node(gpu(0), gpu(1)), NodeUsage()
    prep = prepare([claim("c", request("g", count=2))], classes())
    assert quick_reject(prep, inv, usage) is None
    r = allocate(prep, inv, usage)
    usage.add(r.picks)
    assert "not enough free matching devices on node n1" in quick_reject(prep, inv, usage)
    other = node(mig(0, "1g.10gb", 19, 0, 10, 1), name="n2")
    assert quick_reject(prep, other, NodeUsage()) is not None
    # Two claims of one pod, one GPU each, one GPU free: each alone fits, together they do not.
    two = prepare([claim("a", request("g")), claim("b", request("g"))], classes())
    one_free = NodeUsage()
    one_free.add(allocate([claim("x", request("g"))], inv, one_free, classes()).picks)
    assert "need 2 between them, 1 free on node n1" in quick_reject(two, inv, one_free)
    assert isinstance(allocate(two, inv, one_free), AllocationFailure)
    assert quick_reject(two, inv, NodeUsage()) is None


def test_incomplete_pool_is_skipped():
    slices = [slice_("n1", [gpu(0)], count=2, name="a"), slice_("n1", [gpu(9)], generation=0, name="old")]
    inv = build_inventories(slices)["n1"]
    assert inv.devices == [] and len(inv.skipped_pools) == 1 and "incomplete: 1 of 2 slices at generation 1" in inv.skipped_pools[0]
    r = allocate([claim("c", request("g"))], inv, NodeUsage(), classes())
    assert isinstance(r, AllocationFailure) and "0 match the selectors" in r.reason


@pytest.mark.parametrize("version", ["1.34", "1.35"])
def test_allocation_status_is_valid_against_the_api_schema(version):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    taint = {"key": f"{DRIVER}/xid", "value": "48", "effect": "NoSchedule"}
    shared = fractional_gpu(2, policy={"validRange": {"min": "100m", "step": "100m"}})
    shared["capacity"]["memory"]["requestPolicy"] = {"default": "1Gi"}
    inv = node(gpu(0, taints=[taint]), gpu(1), shared)
    tol = [{"key": f"{DRIVER}/xid", "operator": "Exists", "effect": "NoSchedule"}]
    c = claim("c", request("g", tolerations=tol, count=2),
              request("f", FRACTIONAL_CLASS, capacity={"compute": "250m"}), request("a", admin=True),
              first_available("alt", request("mig", MIG_CLASS), request("any", FRACTIONAL_CLASS, capacity={"compute": "100m"})),
              config=[{"requests": ["g"], "opaque": gpu_config()}])
    r = allocate([c], inv, NodeUsage(), classes(), now=NOW)
    results = r.allocations[0]["devices"]["results"]
    assert [x["request"] for x in results] == ["g", "g", "f", "a", "alt/any"]
    kubernetes_validate.validate({**c, "status": {"allocation": r.allocations[0]}}, version, strict=True)
