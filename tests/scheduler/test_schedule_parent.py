"""Inside a node, MIG devices and time-sliced replicas are chosen by how busy their physical GPU
is: spread puts consecutive pods on different GPUs, binpack stacks them on one."""

from __future__ import annotations

import pytest

from driver.allocator.inventory import build_inventories
from driver.scheduler.cycle import ClusterState, Placement, schedule
from driver.scheduler.packing.scoring import PackingConfig
from driver.devices import discover, load_node_config
from driver.devices.classes import device_classes
from driver.devices.slices import build_slices
from driver.nvml import open_backend

from alloc_fixtures import pod_with_claim

NODE = "n1"


def _state(strategy: str, nvml: str, sharing: dict) -> tuple[ClusterState, dict]:
    inventory = discover(open_backend(nvml, node_name=NODE), load_node_config({"sharing": sharing}), NODE)
    slices = build_slices(inventory, NODE, driver_name="gpu.nvidia.com")
    classes = {c["metadata"]["name"]: c for c in device_classes()}
    state = ClusterState(classes, PackingConfig(strategy=strategy))
    node = {"metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
            "status": {"allocatable": {"cpu": "64", "memory": "512Gi", "pods": "110"}}}
    state.add_node(node, build_inventories(slices)[NODE])
    parents = {d.name: d.attributes.get("gpu.nvidia.com", {}).get("parentUUID")
               for d in build_inventories(slices)[NODE].devices}
    return state, parents


def _parents_used(strategy: str, nvml: str, sharing: dict, device_class: str, selector: str | None) -> list[str]:
    state, parents = _state(strategy, nvml, sharing)
    used = []
    for i in range(3):
        pod, claim = pod_with_claim(i, device_class, selector)
        placement = schedule(pod, [claim], state)
        assert isinstance(placement, Placement), getattr(placement, "reason", placement)
        state.commit(placement)
        (result,) = placement.allocations[f"c{i}"]["devices"]["results"]
        used.append(parents[result["device"]])
    return used


MIG_1G = "device.attributes['gpu.nvidia.com'].profile == '1g.10gb'"
# case -> (nvml, sharing, class, selector), and how many such devices one GPU carries
CASES = {
    "mig": (("mock:a100-80gb-mig", {"mode": "mig"}, "mig.nvidia.com", MIG_1G), 2),  # mixed-workload: 2 x 1g.10gb
    "replica": (("mock:h100-x8", {"mode": "timeslicing", "replicas": 4}, "replica.gpu.nvidia.com", None), 4),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_spread_uses_a_new_gpu_for_each_pod(case: str) -> None:
    used = _parents_used("spread", *CASES[case][0])
    assert None not in used and len(set(used)) == 3, used


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("strategy", ["binpack", "fragmentation"])
def test_packing_strategies_stack_pods_on_one_gpu(case: str, strategy: str) -> None:
    args, per_gpu = CASES[case]
    used = _parents_used(strategy, *args)
    assert None not in used, used
    assert len(set(used)) == -(-len(used) // per_gpu), used  # as few GPUs as the pods need
    assert used[0] == used[1], used  # the second pod joins the first one's GPU
