"""Slice splitting, naming, ownership and health taints."""

from __future__ import annotations

import pytest

from driver.devices.model import NodeInventory
from driver.devices.slices import apply_taints, build_slices, gpu_lost_taint, slice_name, xid_taint
from driver.devices.apinames import is_dns_subdomain
from driver.devices.validate import validate_pool
from driver.nvml.interface import Versions

from .conftest import schema_errors
from .helpers import inventory


def test_plain_devices_fill_128_per_slice():
    inv = inventory("h100-x8.yaml", {"mode": "timeslicing", "replicas": 20})
    slices = build_slices(inv, "node-a")
    assert [len(s["spec"]["devices"]) for s in slices] == [128, 32]
    assert [s["metadata"]["name"] for s in slices] == ["node-a-gpu-nvidia-com-0", "node-a-gpu-nvidia-com-1"]
    assert all("ownerReferences" not in s["metadata"] for s in slices)


def test_counter_devices_split_at_64_and_counter_sets_get_their_own_slices():
    inv = inventory("a100-80gb-x8.yaml", {"mode": "dynamic", "replicas": 2})
    slices = build_slices(inv, "node-a", "uid-1", layout="1.35")
    sizes = [len(s["spec"].get("devices", [])) for s in slices]
    assert sizes == [64, 64, 64, 32, 0]
    assert [len(s["spec"].get("sharedCounters", [])) for s in slices] == [0, 0, 0, 0, 8]
    owner = slices[0]["metadata"]["ownerReferences"][0]
    assert owner == {"apiVersion": "v1", "kind": "Node", "name": "node-a", "uid": "uid-1", "controller": True}


def test_134_layout_keeps_each_gpu_with_its_counter_set():
    inv = inventory("a100-80gb-x8.yaml", {"mode": "dynamic", "replicas": 2})
    slices = build_slices(inv, "node-a", layout="1.34")
    for s in slices:
        defined = {cs["name"] for cs in s["spec"]["sharedCounters"]}
        used = {c["counterSet"] for d in s["spec"]["devices"] for c in d["consumesCounters"]}
        assert used == defined
    assert len(slices) == 4  # 15 counters per GPU, 32 per slice -> two GPUs per slice


def test_134_refuses_a_gpu_that_cannot_fit_one_slice():
    inv = inventory("a100-80gb-x8.yaml", {"mode": "dynamic", "replicas": 64})
    for layout in ("1.34", "1.35"):  # the most replicas a config allows still fits both layouts
        assert validate_pool(build_slices(inv, "node-a", layout=layout), layout) == []
    inv.counter_sets[0].counters.update({f"extra-{i}": "1" for i in range(20)})
    with pytest.raises(ValueError, match="gpu-0-counter-set with 90 devices .* do not fit one 1.34 ResourceSlice"):
        build_slices(inv, "node-a", layout="1.34")


def test_empty_node_publishes_one_empty_slice():
    inv = NodeInventory("n", "gpu.nvidia.com", Versions("550.54.15", "12.4"), [], [])
    slices = build_slices(inv, "n")
    assert len(slices) == 1 and slices[0]["spec"]["devices"] == []
    assert validate_pool(slices) == [] and schema_errors(slices[0], "1.35") == []


def test_bad_arguments():
    inv = inventory("t4-x2.yaml", {"mode": "whole"})
    with pytest.raises(ValueError, match="layout: resource.k8s.io/v1 needs Kubernetes 1.34 or later"):
        build_slices(inv, "n", layout="1.33")
    with pytest.raises(ValueError, match="layout: expected a Kubernetes version"):
        build_slices(inv, "n", layout="latest")
    assert build_slices(inv, "n", layout="v1.37.1") == build_slices(inv, "n", layout="1.35")
    with pytest.raises(ValueError, match="generation"):
        build_slices(inv, "n", generation=-1)


def test_slice_names_are_dns_subdomains_even_for_long_node_names():
    node = ".".join(["a" * 60] * 4)  # 243 characters, a legal node name
    names = {slice_name(node, "gpu.nvidia.com", n) for n in range(12)}
    assert len(names) == 12 and all(is_dns_subdomain(n) and len(n) <= 253 for n in names)
    assert slice_name("n", "gpu.example.com", 3) == "n-gpu-example-com-3"


def test_custom_driver_name_flows_into_slices():
    inv = inventory("t4-x2.yaml", {"mode": "whole"}, driverName="gpu.example.com")
    s = build_slices(inv, "n")[0]
    assert s["spec"]["driver"] == "gpu.example.com" and s["metadata"]["name"] == "n-gpu-example-com-0"


def test_health_taints_reach_every_device_of_the_gpu():
    inv = inventory("a100-80gb-mixed.yaml", {"mode": "dynamic", "replicas": 2})
    gpu0, gpu4 = inv.gpu(0).uuid, inv.gpu(4).uuid
    mig = inv.device("gpu-4-mig-3g40gb-9-4")
    tainted = apply_taints(inv, {
        gpu0: [xid_taint("gpu.nvidia.com", 79, "2026-11-25T10:00:00Z")],
        mig.uuid: [xid_taint("gpu.nvidia.com", 13)],
    })
    on0 = [d for d in tainted.devices if d.index == 0]
    assert all(d.taints == [{"key": "gpu.nvidia.com/xid", "value": "79", "effect": "NoSchedule",
                             "timeAdded": "2026-11-25T10:00:00Z"}] for d in on0)
    assert tainted.device("gpu-4-mig-3g40gb-9-4").taints[0]["effect"] == "None"  # XID 13: application error
    assert tainted.device("gpu-4-mig-1g10gb-19-2").taints == []
    assert all(not d.taints for d in inv.devices)  # the original is untouched
    again = apply_taints(tainted, {gpu0: [xid_taint("gpu.nvidia.com", 48)], gpu4: [gpu_lost_taint("gpu.nvidia.com")]})
    assert [t["value"] for t in again.device("gpu-0").taints] == ["48"]  # latest XID replaces the older one
    assert {t["key"] for t in again.device("gpu-4-mig-3g40gb-9-4").taints} == {"gpu.nvidia.com/xid", "gpu.nvidia.com/gpu-lost"}
    for layout in ("1.34", "1.35"):
        slices = build_slices(again, "node-a", layout=layout)
        assert validate_pool(slices, layout) == []
        assert all(schema_errors(s, layout) == [] for s in slices)


def test_taints_lower_the_device_limit_to_64():
    inv = inventory("h100-x8.yaml", {"mode": "timeslicing", "replicas": 20})
    tainted = apply_taints(inv, {inv.gpu(7).uuid: [gpu_lost_taint("gpu.nvidia.com")]})
    slices = build_slices(tainted, "node-a")
    assert [len(s["spec"]["devices"]) for s in slices] == [128, 32]  # the tainted GPU's replicas are last
    tainted = apply_taints(inv, {inv.gpu(0).uuid: [gpu_lost_taint("gpu.nvidia.com")]})
    slices = build_slices(tainted, "node-a")
    assert [len(s["spec"]["devices"]) for s in slices] == [64, 96]
    assert validate_pool(slices) == []
