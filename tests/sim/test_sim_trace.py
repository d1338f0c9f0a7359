"""Trace loading, the BENCHMARKS.md §1 arrival order, and conversion to Kubernetes objects."""

from __future__ import annotations

import random

import pytest

from driver.allocator.inventory import build_inventories
from driver.sim import trace as tr


def _pods(demands: list[tuple[int, int]]) -> list[tr.TracePod]:
    return [tr.TracePod(f"pod-{i:03d}", 1000, 1024, n, m, ()) for i, (n, m) in enumerate(demands)]


def test_bundled_traces_load():
    nodes = tr.load_nodes()
    assert len(nodes) == 1213 and sum(n.gpus for n in nodes) == 6212
    pods = tr.load_pods(tr.TRACES["gpuspec20"])
    assert len(pods) == 8152
    assert any(p.gpu_spec == ("V100M16", "V100M32") for p in pods)


def test_arrival_order_is_deterministic_per_seed_and_differs_between_seeds():
    pods = tr.load_pods()
    a = tr.arrival_order(pods, 6212, 42)
    assert [p.name for p in a] == [p.name for p in tr.arrival_order(pods, 6212, 42)]
    assert [p.name for p in a] != [p.name for p in tr.arrival_order(pods, 6212, 43)]


def test_top_up_follows_the_per_gpu_milli_rule():
    """Below target: draws are appended until a draw's *per-GPU* milli would pass the target."""
    pods = _pods([(1, 1000), (2, 1000), (1, 500), (0, 0)])
    gpus = 10  # target 13,000 milli; the list itself holds 3,500
    order = tr.arrival_order(pods, gpus, seed=7)
    target = 1.3 * gpus * 1000
    total = sum(p.gpu_demand for p in order)
    assert total <= target
    # replay the recipe independently: the first rejected draw is the stop
    rng = random.Random(7)
    ordered = sorted(pods, key=lambda p: p.name)
    shuffled = list(ordered)
    rng.shuffle(shuffled)
    assert order[:4] == shuffled
    running = 3500
    for p in order[4:]:
        assert ordered[rng.randrange(len(ordered))] is p
        running += p.gpu_demand
    stop = ordered[rng.randrange(len(ordered))]
    assert running + stop.gpu_milli > target  # the quirk: per-GPU milli, not num_gpu × milli
    assert running == total


def test_trim_pops_random_pods_until_at_or_below_target():
    pods = _pods([(1, 1000)] * 20)  # 20,000 milli on 10 GPUs: target 13,000
    order = tr.arrival_order(pods, 10, seed=1)
    assert sum(p.gpu_demand for p in order) == 13000
    assert len(order) == 13


def test_instance_names_are_unique():
    p = _pods([(1, 100)])[0]
    assert tr.instance_names([p, p, p]) == ["pod-000", "pod-000-r1", "pod-000-r2"]


def test_conversion_builds_fractional_slices_and_claims():
    node = tr.TraceNode("n1", 16000, 65536, 2, "V100M16")
    slice_ = tr.node_slice(node)
    inv = build_inventories([slice_])["n1"]
    assert [d.name for d in inv.devices] == ["gpu-0", "gpu-1"]
    assert all(d.allow_multiple and d.attribute("gpu.nvidia.com/productName") == "V100M16" for d in inv.devices)
    pod, claims = tr.pod_objects(tr.TracePod("p", 6000, 12288, 1, 460, ("T4", "P100")), "p")
    assert pod["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "6", "memory": "12288Mi"}
    req = claims[0]["spec"]["devices"]["requests"][0]["exactly"]
    assert req["capacity"]["requests"] == {"compute": "460m"} and req["count"] == 1
    assert req["selectors"][0]["cel"]["expression"] == "device.attributes['gpu.nvidia.com'].productName in ['T4', 'P100']"
    _, whole = tr.pod_objects(tr.TracePod("w", 1000, 1, 4, 1000, ()), "w")
    assert whole[0]["spec"]["devices"]["requests"][0]["exactly"]["count"] == 4
    assert tr.pod_objects(tr.TracePod("c", 1000, 1, 0, 0, ()), "c")[1] == []


@pytest.mark.parametrize("text, message", [
    ("sn,cpu_milli,memory_mib,gpu\nn1,1,1,1\n", r"missing column\(s\) model"),
    ("sn,cpu_milli,memory_mib,gpu,model\nn1,x,1,1,T4\n", "column 'cpu_milli' is 'x'"),
    ("sn,cpu_milli,memory_mib,gpu,model\nn1,1,1,-2,T4\n", "column 'gpu' is -2"),
    ("sn,cpu_milli,memory_mib,gpu,model\nn1,1,1,1,T4\nn1,1,1,1,T4\n", "node 'n1' appears twice"),
    ("sn,cpu_milli,memory_mib,gpu,model\n", "no nodes"),
])
def test_bad_node_files_are_named(tmp_path, text, message):
    path = tmp_path / "nodes.csv"
    path.write_text(text)
    with pytest.raises(tr.TraceError, match=message):
        tr.load_nodes(path)


def test_bad_pod_files_are_named(tmp_path):
    path = tmp_path / "pods.csv"
    path.write_text("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,1,1,2,500\n")
    with pytest.raises(tr.TraceError, match=r"pods.csv:2: num_gpu is 2 with gpu_milli 500"):
        tr.load_pods(path)
    with pytest.raises(tr.TraceError, match="cannot read trace file"):
        tr.load_pods(tmp_path / "missing.csv")
