"""The allocator on the slices the plugin really publishes (driver.devices on mock NVML)."""

from __future__ import annotations

import pytest
from alloc_fixtures import claim, request

from driver.allocator import AllocationFailure, NodeUsage, allocate, build_inventories
from driver.devices.classes import device_classes
from driver.devices.inventory import discover
from driver.devices.nodeconfig import load_node_config, with_mode
from driver.devices.slices import build_slices
from driver.nvml import open_backend

D = "gpu.nvidia.com"
CLASSES = {c["metadata"]["name"]: c for c in device_classes()}


def published(mode: str, layout: str, replicas: int | None = None):
    backend = open_backend("mock:a100-80gb-x8", node_name="n1")
    backend.init()
    model = discover(backend, with_mode(load_node_config(None), mode, replicas), "n1")
    return build_inventories(build_slices(model, "n1", layout=layout))["n1"]


def names(result) -> list[str]:
    return [r["device"] for a in result.allocations for r in a["devices"]["results"]]


@pytest.mark.parametrize("layout", ["1.34", "1.35"])
def test_dynamic_mig_partitions_stay_consistent(layout):
    inv, usage = published("dynamic", layout, replicas=2), NodeUsage()
    assert inv.skipped_pools == [] and len(inv.counters) == 8

    def place(c):
        r = allocate([c], inv, usage, CLASSES)
        if r:
            usage.add(r.picks)
        return r

    one_g = f"device.attributes['{D}'].profile == '1g.10gb'"
    four = claim("four", *[request(f"m{i}", "mig.nvidia.com", selectors=[one_g]) for i in range(4)],
                 constraints=[{"matchAttribute": f"{D}/parentUUID"}])
    got = names(place(four))
    assert got == [f"gpu-0-mig-1g10gb-19-{s}" for s in range(4)]
    # The whole GPU 0 and its time-sliced replicas now conflict through the counter set.
    assert names(place(claim("whole", request("g")))) == ["gpu-1"]
    parent0 = inv.by_key[(D, "n1", "gpu-0")].attribute(f"{D}/uuid")
    replica_on_0 = claim("rep", request("r", "replica.gpu.nvidia.com",
                                        selectors=[f"device.attributes['{D}'].parentUUID == '{parent0}'"]))
    assert isinstance(place(replica_on_0), AllocationFailure)
    # Three more 1g slices fit on GPU 0; an eighth never does (7 compute slices).
    three = claim("three", *[request(f"m{i}", "mig.nvidia.com", selectors=[
        one_g, f"device.attributes['{D}'].parentUUID == '{parent0}'"]) for i in range(3)])
    assert names(place(three)) == [f"gpu-0-mig-1g10gb-19-{s}" for s in (4, 5, 6)]
    assert isinstance(place(claim("eighth", request("m", "mig.nvidia.com", selectors=[
        f"device.attributes['{D}'].parentUUID == '{parent0}'"]))), AllocationFailure)
    big = place(claim("big", request("m", "mig.nvidia.com", selectors=[
        f"device.attributes['{D}'].profile == '7g.80gb'"])))
    assert names(big) == ["gpu-2-mig-7g80gb-0-0"]


def test_fractional_gpus_share_by_compute():
    inv, usage = published("fractional", "1.35"), NodeUsage()
    shares = []
    for i in range(5):
        r = allocate([claim(f"f{i}", request("f", "fractional.gpu.nvidia.com", capacity={"compute": "250m"}))],
                     inv, usage, CLASSES)
        usage.add(r.picks)
        shares.append(r.allocations[0]["devices"]["results"][0])
    assert [s["device"] for s in shares] == ["gpu-0"] * 4 + ["gpu-1"]
    assert len({s["shareID"] for s in shares[:4]}) == 4
    assert all(s["consumedCapacity"]["compute"] == "250m" for s in shares)
