"""The device model per sharing mode: names, kinds, identities, attributes, capacities."""

from __future__ import annotations

import pytest

from driver.devices import discover, load_node_config
from driver.devices.inventory import COMPUTE_POLICY, MEMORY_POLICY
from driver.dra.quantity import parse_quantity
from driver.nvml import open_backend

from .helpers import inventory

GPU_ATTRS = {"type", "uuid", "productName", "brand", "architecture", "cudaComputeCapability", "driverVersion",
             "cudaDriverVersion", "resource.kubernetes.io/pciBusID", "resource.kubernetes.io/pcieRoot"}


def test_whole_gpus_carry_nvidia_attributes():
    inv = inventory("t4-x2.yaml", {"mode": "whole"})
    assert [d.name for d in inv.devices] == ["gpu-0", "gpu-1"]
    d = inv.device("gpu-1")
    assert d.kind == "gpu" and d.uuid == d.gpu_uuid == inv.gpu(1).uuid and d.parent_uuid is None
    assert GPU_ATTRS <= set(d.attributes)
    assert d.attributes["type"] == {"string": "gpu"}
    assert d.attributes["productName"] == {"string": "Tesla T4"}
    assert d.attributes["cudaComputeCapability"] == {"version": "7.5.0"}
    # NVML's "535.183.01" is not semver; the leading zero must go
    assert d.attributes["driverVersion"] == {"version": "535.183.1"}
    assert d.attributes["cudaDriverVersion"] == {"version": "12.2.0"}
    assert d.capacity == {"memory": {"value": "15Gi"}}
    with pytest.raises(KeyError, match="gpu-9"):
        inv.device("gpu-9")


def test_static_mig_devices_follow_nvidia_naming():
    inv = inventory("a100-80gb-mixed.yaml", {"mode": "mig"})
    names = [d.name for d in inv.devices if d.index == 4]
    assert names == ["gpu-4-mig-2g20gb-14-0", "gpu-4-mig-1g10gb-19-2", "gpu-4-mig-1g10gb-19-3", "gpu-4-mig-3g40gb-9-4"]
    d = inv.device("gpu-4-mig-3g40gb-9-4")
    assert d.kind == "mig" and d.uuid.startswith("MIG-") and not d.dynamic
    assert (d.mig_profile, d.gi_profile_id, d.placement_start, d.placement_size) == ("3g.40gb", 9, 4, 4)
    assert d.parent_uuid == inv.gpu(4).uuid == d.attributes["parentUUID"]["string"]
    assert d.attributes["profile"] == {"string": "3g.40gb"} and d.attributes["uuid"] == {"string": d.uuid}
    assert {f"memorySlice{i}" for i in range(4, 8)} <= set(d.capacity)
    assert "memorySlice3" not in d.capacity
    assert d.capacity["multiprocessors"] == {"value": "42"} and d.capacity["memory"] == {"value": "40192Mi"}
    # GPUs without MIG enabled fall back to whole; a MIG-enabled GPU without instances offers nothing
    assert inv.device("gpu-0").kind == "gpu"
    assert not [d for d in inv.devices if d.index == 7]


def test_mig_enabled_gpus_publish_mig_even_in_whole_mode():
    inv = inventory("a100-80gb-mixed.yaml", {"mode": "whole"})
    assert {d.kind for d in inv.devices if d.index == 5} == {"mig"}


def test_timeslicing_replicas():
    inv = inventory("l4-x4.yaml", {"mode": "timeslicing", "replicas": 3}, gpus={"2": {"mode": "whole"}})
    assert [d.name for d in inv.devices if d.index == 0] == ["gpu-0-ts-0", "gpu-0-ts-1", "gpu-0-ts-2"]
    r = inv.device("gpu-1-ts-2")
    assert (r.kind, r.replica_index, r.replicas, r.uuid, r.parent_uuid) == ("replica", 2, 3, None, inv.gpu(1).uuid)
    assert r.attributes["type"] == {"string": "replica"}
    assert r.attributes["parentUUID"] == {"string": inv.gpu(1).uuid}
    assert r.attributes["replicaIndex"] == {"int": 2} and r.attributes["replicas"] == {"int": 3}
    assert inv.device("gpu-2").kind == "gpu"


def test_dynamic_mode_publishes_every_placement_with_counters():
    inv = inventory("a100-80gb-mixed.yaml", {"mode": "dynamic", "replicas": 2})
    gpu0 = [d for d in inv.devices if d.index == 0]
    # 1 whole + 7+7+4+3+2+1+1 MIG placements + 2 replicas
    assert len(gpu0) == 1 + 25 + 2
    assert all(d.dynamic for d in gpu0)
    assert [cs.name for cs in inv.counter_sets] == [f"gpu-{i}-counter-set" for i in range(8)]
    cs = inv.counter_sets[0].counters
    assert cs["multiprocessors"] == "108" and cs["memory"] == "80Gi" and cs["memory-slice-7"] == "2"
    assert set(cs) == {"multiprocessors", "copy-engines", "decoders", "encoders", "jpeg-engines", "ofa-engines",
                       "memory", *(f"memory-slice-{i}" for i in range(8))}
    mig = inv.device("gpu-0-mig-2g20gb-14-2")
    assert mig.uuid is None  # not created yet
    used = mig.consumes_counters[0]["counters"]
    assert used["memory-slice-2"] == used["memory-slice-3"] == {"value": "2"} and "memory-slice-4" not in used
    assert used["multiprocessors"] == {"value": "28"}
    whole = inv.device("gpu-0").consumes_counters[0]["counters"]
    assert whole["memory-slice-0"] == {"value": "2"} and whole["memory"] == {"value": "80Gi"}
    assert "encoders" not in whole  # zero consumption is left out; A100 has no NVENC
    rep = inv.device("gpu-0-ts-1").consumes_counters[0]["counters"]
    assert rep == {f"memory-slice-{i}": {"value": "1"} for i in range(8)}
    # an existing MIG device keeps its UUID in dynamic mode
    assert inv.device("gpu-4-mig-3g40gb-9-4").uuid.startswith("MIG-")


def test_dynamic_mode_on_a_gpu_without_mig():
    inv = inventory("l4-x4.yaml", {"mode": "dynamic", "replicas": 2})
    assert [d.name for d in inv.devices if d.index == 0] == ["gpu-0", "gpu-0-ts-0", "gpu-0-ts-1"]
    assert "memory-slice-0" in inv.counter_sets[0].counters and "memory-slice-1" not in inv.counter_sets[0].counters


def test_fractional_capacity_policies():
    inv = inventory("h100-x8.yaml", {"mode": "fractional"})
    d = inv.device("gpu-3")
    assert d.kind == "fractional" and d.allow_multiple_allocations and d.uuid == inv.gpu(3).uuid
    compute, memory = d.capacity["compute"], d.capacity["memory"]
    assert compute == {"value": "1", "requestPolicy": COMPUTE_POLICY}
    assert memory["requestPolicy"] == MEMORY_POLICY
    # no capacity request -> compute default = all of it (exclusive); compute-only -> not all memory
    assert parse_quantity(compute["requestPolicy"]["default"]) == parse_quantity(compute["value"])
    assert parse_quantity(memory["requestPolicy"]["default"]) < parse_quantity(memory["value"])
    assert d.to_wire()["allowMultipleAllocations"] is True


def test_lost_gpu_is_left_out_and_recorded():
    inv = inventory("a100-80gb-faulty.yaml", {"mode": "whole"})
    assert [d.name for d in inv.devices] == ["gpu-0", "gpu-1", "gpu-2"]
    assert "ERROR_GPU_IS_LOST" in inv.errors[3]


def test_inventory_is_stable_across_restarts_and_distinct_across_nodes():
    a = inventory("a100-80gb-mig.yaml", {"mode": "mig"}, node="node-a")
    again = inventory("a100-80gb-mig.yaml", {"mode": "mig"}, node="node-a")
    b = inventory("a100-80gb-mig.yaml", {"mode": "mig"}, node="node-b")
    assert [(d.name, d.uuid) for d in a.devices] == [(d.name, d.uuid) for d in again.devices]
    assert [d.name for d in a.devices] == [d.name for d in b.devices]
    assert not {d.uuid for d in a.devices} & {d.uuid for d in b.devices}


def test_init_failure_propagates_as_nvml_error():
    from driver.nvml import NvmlError

    backend = open_backend("mock:l4-x4", "n")
    backend.fail_init("driver not loaded")  # type: ignore[attr-defined]
    with pytest.raises(NvmlError, match="nvmlInit on system: driver not loaded"):
        discover(backend, load_node_config(None), "n")
