"""The packing scorer sees physical GPUs: a dynamic-MIG instance blocks the other placements of
its GPU (counters), and node use is GPU use (the larger of memory and compute slices in use,
driver.allocator.gpuuse), not a count of published devices."""

from __future__ import annotations

import random

import pytest

from driver.scheduler import cycle as sch
from driver.allocator.inventory import build_inventories
from driver.scheduler.cycle import ClusterState, Placement, schedule
from driver.scheduler.packing.adapter import pod_shape, prepare_claims
from driver.scheduler.packing.scoring import PackingConfig
from driver.devices import discover, load_node_config
from driver.devices.classes import device_classes
from driver.devices.slices import build_slices
from driver.nvml.mock import MockNvml, load_node

from alloc_fixtures import pod_with_claim

D = "gpu.nvidia.com"
PROFILE = "device.attributes['gpu.nvidia.com'].profile == '{}'"


def _inventory(name: str, nvml: dict, sharing: dict):
    inventory = discover(MockNvml(load_node(nvml), name), load_node_config({"sharing": sharing}), name)
    return build_inventories(build_slices(inventory, name, driver_name=D))[name]


def _node(name: str) -> dict:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"allocatable": {"cpu": "64", "memory": "512Gi", "pods": "110"}}}


def _cluster(strategy: str, names=("n1", "n2"), gpus: int = 2, sharing: dict | None = None,
             nvml: dict | None = None) -> ClusterState:
    state = ClusterState({c["metadata"]["name"]: c for c in device_classes()}, PackingConfig(strategy=strategy))
    for name in names:
        state.add_node(_node(name), _inventory(name, nvml or {"profile": "A100-SXM4-80GB", "gpuCount": gpus},
                                               sharing or {"mode": "dynamic"}))
    return state


def _pod(i: int, profile: str | None, device_class: str = "mig.nvidia.com") -> tuple[dict, dict]:
    return pod_with_claim(i, device_class, PROFILE.format(profile) if profile else None)


def _place(state: ClusterState, i: int, profile: str | None, device_class: str = "mig.nvidia.com") -> Placement:
    pod, claim = _pod(i, profile, device_class)
    placement = schedule(pod, [claim], state)
    assert isinstance(placement, Placement), getattr(placement, "reason", placement)
    state.commit(placement)
    return placement


def _device(placement: Placement):
    (pick,) = placement.picks
    return pick.device


def _parent(device) -> str:
    return device.attributes[D]["parentUUID"]


def _free_by_name(state: ClusterState, node: str) -> dict[str, int]:
    n = state.nodes[node]
    return dict(zip((d.name for d in n.inventory.devices), n.free))


def test_a_7g_instance_blocks_every_other_placement_of_its_gpu_only():
    state = _cluster("binpack", names=("n1",))
    placement = _place(state, 0, "7g.80gb")
    gpu = _device(placement).name.split("-mig-")[0]  # gpu-<minor>
    free = _free_by_name(state, "n1")
    mine = {k: v for k, v in free.items() if k == gpu or k.startswith(gpu + "-")}
    others = {k: v for k, v in free.items() if k not in mine}
    assert len(mine) > 20 and set(mine.values()) == {0}
    assert others and set(others.values()) == {1000}
    state.release(placement)  # releasing unblocks the siblings too
    assert set(_free_by_name(state, "n1").values()) == {1000}


def test_a_1g_instance_blocks_only_the_placements_overlapping_it():
    state = _cluster("binpack", names=("n1",), gpus=1)
    slice_of = {}
    placement = _place(state, 0, "1g.10gb")
    used = _device(placement)
    start = int(used.name.rsplit("-", 1)[1])
    free = _free_by_name(state, "n1")
    for d in state.nodes["n1"].inventory.devices:
        slices = {int(k[len("memorySlice"):]) for k in d.capacity.get(D, {}) if k.startswith("memorySlice")}
        slice_of[d.name] = slices
    assert free["gpu-0"] == 0 and free["gpu-0-mig-7g80gb-0-0"] == 0
    for name, slices in slice_of.items():
        if name.startswith("gpu-0-mig-1g10gb-") and start not in slices:
            assert free[name] == 1000, name  # other 1g placements still fit
        if slices and start in slices:
            assert free[name] == 0, name


def test_scorer_sees_the_node_where_the_allocator_would_fail(monkeypatch):
    state = _cluster("binpack")
    a = _place(state, 0, "1g.10gb")
    b = _place(state, 1, "1g.10gb")
    node = a.node
    assert b.node == node and _parent(_device(a)) == _parent(_device(b))  # binpack: same GPU
    whole = _place(state, 2, None, "gpu.nvidia.com")  # the other GPU of the fuller node
    assert whole.node == node
    pod, claim = _pod(3, None, "gpu.nvidia.com")
    shape = pod_shape(1000, 0, prepare_claims([claim], state.classes))
    n = state.nodes[node]
    # one GPU is taken whole, the other carved: the whole-GPU devices look free device by device,
    # but their counters no longer fit
    assert state.scorer.evaluate("binpack", n.klass, n.state(), shape) is None
    calls = []
    real = sch.allocate
    monkeypatch.setattr(sch, "allocate", lambda *x, **k: calls.append(x[1].node) or real(*x, **k))
    placement = schedule(pod, [claim], state)
    assert isinstance(placement, Placement) and placement.node != node
    assert calls == [placement.node]  # no detour through the node the allocator would refuse


@pytest.mark.parametrize("strategy", ["binpack", "fragmentation"])
def test_packing_puts_a_second_small_instance_on_the_used_gpu(strategy):
    state = _cluster(strategy)
    first, second = _place(state, 0, "1g.10gb"), _place(state, 1, "2g.20gb")
    assert second.node == first.node
    assert _parent(_device(second)) == _parent(_device(first))


def test_spread_puts_a_second_small_instance_on_another_node():
    state = _cluster("spread")
    first, second = _place(state, 0, "1g.10gb"), _place(state, 1, "1g.10gb")
    assert second.node != first.node


def test_utilisation_is_physical_gpu_use():
    state = _cluster("binpack", names=("n1",), gpus=8)
    assert state.total_gpu_milli() == 8000  # 8 GPUs, not ~240 published devices
    big = _place(state, 0, "7g.80gb")
    assert state.used_gpu_milli() == 1000  # 1/8 of the node
    _place(state, 1, "1g.10gb")
    assert state.used_gpu_milli() == 1143  # max(one memory slice of eight, one compute slice of seven)
    state.release(big)
    assert state.used_gpu_milli() == 143


def test_seven_1g_instances_fill_a_gpu_the_eighth_memory_slice_does_not_count_as_free():
    state = _cluster("binpack", names=("n1",), gpus=1)
    for i in range(7):
        _place(state, i, "1g.10gb")
    assert state.used_gpu_milli() == 1000  # 7/8 memory, 7/7 compute: nothing more fits
    assert set(_free_by_name(state, "n1").values()) == {0}


@pytest.mark.parametrize("nvml, sharing, device_class, profile, used", [
    # mixed-workload MIG layout: 1g + 1g + 2g + 3g per GPU; the 3g instance is four of eight slices
    ("a100-80gb-mig", {"mode": "mig"}, "mig.nvidia.com", "3g.40gb", 500),
    # four replicas per GPU: one replica is a quarter of it
    ("h100-x8", {"mode": "timeslicing", "replicas": 4}, "replica.gpu.nvidia.com", None, 250),
])
def test_utilisation_of_static_mig_and_replicas(nvml, sharing, device_class, profile, used):
    state = _cluster("binpack", names=("n1",), sharing=sharing, nvml=nvml)
    assert state.total_gpu_milli() == 8000
    _place(state, 0, profile, device_class)
    assert state.used_gpu_milli() == used


@pytest.mark.parametrize("strategy", ["binpack", "spread", "fragmentation", "fgd"])
def test_the_scorers_after_state_is_the_nodes_state_after_commit(strategy):
    """Exactness: what the scorer predicts a placement leaves (free per device, counters in use)
    is what the node holds once the allocator's result is committed."""
    state = _cluster(strategy, names=("n1",), gpus=2)
    rng = random.Random(7)
    node = state.nodes["n1"]
    for i in range(12):
        profile = rng.choice(["1g.10gb", "2g.20gb", "3g.40gb", "1g.20gb", "4g.40gb"])
        pod, claim = _pod(i, profile)
        shape = pod_shape(1000, 0, prepare_claims([claim], state.classes))
        ev = state.scorer.evaluate(strategy, node.klass, node.state(), shape)
        placement = schedule(pod, [claim], state)
        if ev is None:
            assert not isinstance(placement, Placement)
            continue
        assert isinstance(placement, Placement)
        state.commit(placement)
        assert ev.after[2:] == node.state()[2:], (i, profile)


def test_fragment_of_a_gpu_counts_what_a_profile_cannot_use():
    """A GPU holding a 4g instance (4/8 memory, 4/7 compute: 571 milli used) has 429 free: a 3g
    instance can use all of it (4/8 + 4/8 memory, 4/7 + 3/7 compute), a 2g instance leaves 1/7
    (6/7 compute, the one 2g placement left), a 7g none of it."""
    state = _cluster("fragmentation", names=("n1",), gpus=1)
    _place(state, 0, "4g.40gb")
    node = state.nodes["n1"]
    layout = node.klass.layout
    parts = []
    for profile in ("3g.40gb", "2g.20gb", "7g.80gb"):
        _, claim = _pod(9, profile)
        (req,) = pod_shape(0, 0, prepare_claims([claim], state.classes)).requests
        parts.append((1, req.share, node.klass.mask(req.mask)))
    stats = layout.fragment_stats(parts, node.free, node.counters, {})
    assert [n for n, _ in stats] == [1, 1, 0]
    assert [f for _, f in stats] == pytest.approx([0.0, 1000 / 7, 3000 / 7])
