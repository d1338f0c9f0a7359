"""Mock NVML: node descriptions, identities, dynamic MIG and fault injection."""

from __future__ import annotations

import re
import threading
import time

import pytest

from driver.nvml import DataError, NvmlBackend, NvmlError, open_backend, snapshot
from driver.nvml.mock import NODE_DIR, MockNvml, load_node, parse_node

GPU_UUID = re.compile(r"^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MIG_UUID = re.compile(r"^MIG-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
BUS_ID = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.0$")


def started(spec: str, node: str = "node-a") -> MockNvml:
    b = open_backend(spec, node)
    b.init()
    return b  # type: ignore[return-value]


@pytest.mark.parametrize("node_file", sorted(p.name for p in NODE_DIR.glob("*.yaml")))
def test_every_shipped_node_loads(node_file):
    b = started(f"mock:{node_file}")
    assert isinstance(b, NvmlBackend)
    snap = snapshot(b)
    assert len(snap.gpus) + len(snap.errors) == b.device_count() > 0


def test_identities_are_realistic_deterministic_and_node_specific():
    a1, a2, b = started("mock:h100-x8", "node-a"), started("mock:h100-x8", "node-a"), started("mock:h100-x8", "node-b")
    ga = [a1.gpu(i) for i in range(8)]
    assert [g.uuid for g in ga] == [a2.gpu(i).uuid for i in range(8)]
    assert all(GPU_UUID.match(g.uuid) and BUS_ID.match(g.pci_bus_id) for g in ga)
    assert len({g.uuid for g in ga}) == 8 and len({g.pci_bus_id for g in ga}) == 8
    gb = [b.gpu(i) for i in range(8)]
    assert not {g.uuid for g in ga} & {g.uuid for g in gb}
    assert not {g.pci_bus_id for g in ga} & {g.pci_bus_id for g in gb}
    g0 = ga[0]
    assert (g0.name, g0.architecture, g0.cuda_compute_capability, g0.multiprocessors) == (
        "NVIDIA H100 80GB HBM3", "Hopper", (9, 0), 132)
    assert g0.memory_bytes == 81559 * 2**20
    assert a1.versions().driver == "560.35.03"


def test_static_mig_layout_from_mig_parted_config():
    b = started("mock:a100-80gb-mixed")
    assert not b.gpu(0).mig_enabled and b.mig_instances(0) == []
    migs = b.mig_instances(4)
    assert sorted(m.profile for m in migs) == ["1g.10gb", "1g.10gb", "2g.20gb", "3g.40gb"]
    assert all(MIG_UUID.match(m.uuid) and m.parent_uuid == b.gpu(4).uuid for m in migs)
    slices = [s for m in migs for s in m.memory_slices]
    assert len(slices) == len(set(slices))
    assert b.gpu(7).mig_enabled and b.mig_instances(7) == []
    assert len(b.mig_instances(6)) == 7


def test_dynamic_mig_create_and_destroy():
    b = started("mock:a100-80gb-mixed")
    inst = b.create_mig_instance(7, "3g.40gb", 4)
    assert inst.placement_start == 4 and inst.placement_size == 4 and MIG_UUID.match(inst.uuid)
    assert [m.uuid for m in b.mig_instances(7)] == [inst.uuid]
    with pytest.raises(NvmlError) as exc:
        b.create_mig_instance(7, "2g.20gb", 4)
    assert exc.value.code == "ERROR_INSUFFICIENT_RESOURCES"
    assert "GPU 7" in str(exc.value) and "overlaps 3g.40gb@4" in str(exc.value)
    with pytest.raises(NvmlError, match="cannot start at memory slice 1"):
        b.create_mig_instance(7, "2g.20gb", 1)
    with pytest.raises(NvmlError, match="MIG mode is disabled"):
        b.create_mig_instance(0, "1g.10gb", 0)
    with pytest.raises(NvmlError, match="MIG devices still exist"):
        b.set_mig_mode(7, False)
    b.destroy_mig_instance(7, inst.uuid)
    assert b.mig_instances(7) == []
    with pytest.raises(NvmlError, match="no MIG device"):
        b.destroy_mig_instance(7, inst.uuid)
    again = b.create_mig_instance(7, "3g.40gb", 4)
    assert again.uuid != inst.uuid  # a re-created MIG device gets a new UUID, as on hardware
    b.set_mig_mode(0, True)
    assert b.create_mig_instance(0, "7g.80gb", 0).placement_size == 8
    with pytest.raises(NvmlError, match="does not support MIG"):
        started("mock:l4-x4").set_mig_mode(0, True)


def test_init_failure_from_description_and_at_run_time():
    b = MockNvml(parse_node({"profile": "L4", "gpuCount": 1, "faults": {"initFailure": "driver/library version mismatch"}}))
    with pytest.raises(NvmlError, match="nvmlInit on system: driver/library version mismatch"):
        b.init()
    with pytest.raises(NvmlError, match="not initialised"):
        b.device_count()
    c = started("mock:l4-x4")
    c.fail_init("no driver")
    with pytest.raises(NvmlError, match="no driver"):
        c.init()
    c.fail_init(None)
    c.init()
    assert c.device_count() == 4


def test_lost_gpu_fails_its_calls_reports_an_event_and_spares_the_others():
    b = started("mock:a100-80gb-faulty")
    event = b.wait_event(1.0)
    assert event is not None and event.kind == "gpu-lost" and event.index == 3
    xid = b.wait_event(1.0)
    assert xid is not None and (xid.kind, xid.index, xid.xid) == ("xid", 1, 79)
    with pytest.raises(NvmlError) as exc:
        b.gpu(3)
    assert exc.value.gpu_lost and "GPU 3" in str(exc.value)
    snap = snapshot(b)
    assert [g.index for g in snap.gpus] == [0, 1, 2] and "fallen off the bus" in snap.errors[3]
    b.lose_gpu(0)
    assert b.wait_event(1.0).index == 0
    b.restore_gpu(0)
    assert b.gpu(0).index == 0


def test_injected_xid_wakes_a_waiting_thread_and_shutdown_wakes_everyone():
    b = started("mock:l4-x4")
    assert b.wait_event(0.0) is None
    got: list = []
    ready = threading.Event()

    def waiter():
        ready.set()
        got.append(b.wait_event(10.0))
        got.append(b.wait_event(10.0))

    t = threading.Thread(target=waiter)
    t.start()
    ready.wait(5)
    b.inject_xid(2, 48, mig_uuid=None)
    b.shutdown()
    t.join(10)
    assert not t.is_alive()
    assert got[0].xid == 48 and got[0].uuid == b._gpus[2].uuid
    assert got[1] is None
    assert b.wait_event(0.0) is None


def test_slow_calls_take_at_least_the_injected_latency():
    b = MockNvml(parse_node({"profile": "T4", "gpuCount": 1, "faults": {"latencyMs": 30}}))
    b.init()
    start = time.monotonic()
    b.gpu(0)
    assert time.monotonic() - start >= 0.03
    b.set_latency(0)
    assert b.gpu(0).name == "Tesla T4"


@pytest.mark.parametrize(
    "desc, message",
    [
        ({"gpuCount": 2}, "missing required field(s) profile"),
        ({"profile": "A100-SXM4-80GB", "gpuCount": "8"}, "gpuCount: expected an integer"),
        ({"profile": "V100", "gpuCount": 1}, "profile: GPU model 'V100': no such profile"),
        ({"profile": "L4", "gpuCount": 1, "colour": "green"}, "unknown field(s) colour"),
        ({"profile": "A100-SXM4-80GB", "gpuCount": 2, "migConfig": "all-9g"}, "migConfig: unknown MIG config 'all-9g'"),
        ({"profile": "A100-SXM4-80GB", "gpuCount": 2, "gpus": [{"index": 2}]}, "gpus[0].index: must be <= 1"),
        ({"profile": "A100-SXM4-80GB", "gpuCount": 2, "gpus": [{"index": 0, "migDevices": ["7g.80gb", "1g.10gb"]}]},
         "GPU 0: migDevices: cannot place"),
        ({"profile": "A100-SXM4-80GB", "gpuCount": 2, "gpus": [{"index": 0, "migEnabled": False, "migDevices": ["1g.10gb"]}]},
         "migEnabled is false"),
        ({"profile": "L4", "gpuCount": 1, "gpus": [{"index": 0, "migEnabled": True}]}, "does not support MIG"),
        ({"profile": "L4", "gpuCount": 1, "faults": {"lostGpu": [0]}}, "faults: unknown field(s) lostGpu"),
        ({"profile": "L4", "gpuCount": 1, "faults": {"xids": [{"index": 0}]}}, "faults.xids[0]: missing required field(s) xid"),
        ({"profile": "L4", "gpuCount": 1, "driverVersion": "latest"}, "driverVersion: expected a version"),
    ],
)
def test_malformed_node_descriptions_name_the_field(desc, message):
    with pytest.raises(DataError) as exc:
        parse_node(desc)
    assert message in str(exc.value)


def test_open_backend_specs(tmp_path):
    with pytest.raises(DataError, match="expected 'real' or 'mock:"):
        open_backend("fake")
    with pytest.raises(DataError, match="expected 'real' or 'mock:"):
        open_backend("mock:")
    f = tmp_path / "node.yaml"
    f.write_text("profile: T4\ngpuCount: 3\nnodeName: fixed\n")
    b = started(f"mock:{f}", "ignored")
    assert b.device_count() == 3 and b.seed == "fixed"
    assert load_node("A100-SXM4-40GB").gpu_count == 8
    with pytest.raises(DataError, match="cannot read"):
        load_node(str(tmp_path / "missing.yaml"))


def test_mig_state_survives_a_restart_with_a_state_file(tmp_path):
    state = tmp_path / "state" / "nvml.json"
    desc = load_node("a100-80gb-mixed")
    first = MockNvml(desc, "node-a", state_file=state)
    first.init()
    created = first.create_mig_instance(7, "4g.40gb", 0)
    first.set_mig_mode(0, True)
    kept = {m.uuid for m in first.mig_instances(4)}
    gone = first.mig_instances(4)[0].uuid
    first.destroy_mig_instance(4, gone)
    second = MockNvml(desc, "node-a", state_file=state)  # the "process" restarts
    second.init()
    assert [m.uuid for m in second.mig_instances(7)] == [created.uuid]
    assert second.gpu(0).mig_enabled
    assert {m.uuid for m in second.mig_instances(4)} == kept - {gone}
    newer = second.create_mig_instance(7, "3g.40gb", 4)
    assert newer.uuid not in {created.uuid} and newer.gi_id != created.gi_id


def test_corrupt_state_file_names_the_entry(tmp_path):
    state = tmp_path / "nvml.json"
    state.write_text('{"migEnabled": {"7": true}, "instances": [{"index": 7, "profile": "2g.20gb", "start": 1, "uuid": "MIG-x", "giId": 1}]}')
    with pytest.raises(DataError, match=r"instances\[0\]: 2g.20gb cannot start at memory slice 1"):
        MockNvml(load_node("a100-80gb-mixed"), "n", state_file=state)
    state.write_text("{not json")
    with pytest.raises(DataError, match="cannot read"):
        MockNvml(load_node("a100-80gb-mixed"), "n", state_file=state)
    node = tmp_path / "node.yaml"
    node.write_text(f"profile: A100-SXM4-80GB\ngpuCount: 1\nstateFile: {tmp_path / 'fresh.json'}\n")
    b = open_backend(f"mock:{node}", "n")
    b.init()
    b.set_mig_mode(0, True)
    assert (tmp_path / "fresh.json").exists()


def test_events_after_restart_and_bad_injection_targets():
    b = started("mock:l4-x4")
    b.shutdown()
    b.init()
    b.inject_xid(1, 31)
    event = b.wait_event(1.0)  # the XID, not the stale wake-up marker of the shutdown
    assert event is not None and event.xid == 31
    with pytest.raises(ValueError, match="GPU index 9: the mock node has GPUs 0..3"):
        b.inject_xid(9, 79)
    with pytest.raises(ValueError, match="GPU index -1"):
        b.lose_gpu(-1)


def test_bus_ids_stay_unique_past_the_models_bus_list():
    b = MockNvml(parse_node({"profile": "T4", "gpuCount": 20}), "big")
    b.init()
    ids = [b.gpu(i).pci_bus_id for i in range(20)]
    assert len(set(ids)) == 20 and all(BUS_ID.match(x) for x in ids)
