"""Cluster-level placement: node fit, unschedulable reasons, equivalence groups, commit/release."""

from __future__ import annotations

import copy

import pytest

from driver.allocator.inventory import build_inventories
from driver.scheduler.cycle import ClusterState, Placement, Unschedulable, schedule
from driver.scheduler.packing.scoring import ANNOTATION, PackingConfig
from driver.sim import trace as tr


def _state(nodes: list[tr.TraceNode], strategy: str = "fragmentation", edit=None) -> ClusterState:
    """A cluster of trace-style nodes; `edit(node_dict)` may add labels, taints, cordon."""
    cls = tr.fractional_class()
    state = ClusterState({cls["metadata"]["name"]: cls}, PackingConfig(strategy=strategy))
    inventories = build_inventories([s for s in map(tr.node_slice, nodes) if s])
    for n in nodes:
        obj = tr.node_dict(n)
        if edit:
            edit(obj)
        state.add_node(obj, inventories.get(n.name))
    return state


def _pod(name="p", cpu=1000, milli=500, gpus=1, spec=(), **pod_spec):
    pod, claims = tr.pod_objects(tr.TracePod(name, cpu, 1024, gpus, milli, tuple(spec)), name)
    pod["spec"].update(pod_spec)
    return pod, claims


T4 = tr.TraceNode("t4", 8000, 32768, 2, "T4")
V100 = tr.TraceNode("v100", 16000, 65536, 4, "V100M16")
SMALL = tr.TraceNode("small", 2000, 32768, 1, "P100")


def test_places_and_writes_allocation_dicts():
    state = _state([T4])
    pod, claims = _pod()
    result = schedule(pod, claims, state)
    assert isinstance(result, Placement) and result.node == "t4"
    alloc = result.allocations["p-gpu"]
    (entry,) = alloc["devices"]["results"]
    assert entry["driver"] == "gpu.nvidia.com" and entry["pool"] == "t4" and entry["device"] in ("gpu-0", "gpu-1")
    assert entry["consumedCapacity"] == {"compute": "500m"}
    assert entry["shareID"]
    assert alloc["nodeSelector"]["nodeSelectorTerms"][0]["matchFields"][0]["values"] == ["t4"]


def test_gpu_spec_selector_restricts_the_model():
    state = _state([T4, V100])
    for i in range(3):
        pod, claims = _pod(f"p{i}", spec=("V100M16", "V100M32"))
        result = schedule(pod, claims, state)
        assert isinstance(result, Placement) and result.node == "v100"
        state.commit(result)


def test_whole_gpus_need_entirely_free_devices():
    state = _state([T4])
    pod, claims = _pod("frac", milli=300)
    state.commit(schedule(pod, claims, state))
    pod, claims = _pod("two", milli=1000, gpus=2)
    result = schedule(pod, claims, state)
    assert isinstance(result, Unschedulable)
    assert result.reason.startswith("0/1 nodes are available: 1 claim default/two-gpu request gpu: needs 2 device(s)")


def test_unschedulable_reasons_are_counted_per_node():
    state = _state([T4, V100, SMALL])
    pod, claims = _pod(cpu=10000, spec=("P100",))  # T4 and SMALL lack CPU, V100 has no P100
    result = schedule(pod, claims, state)
    assert isinstance(result, Unschedulable)
    # kube-scheduler's FitError: "<n> <reason>" strings sorted, then a full stop
    assert result.reason.startswith("0/3 nodes are available: 1 claim default/p-gpu request gpu: ")
    assert result.reason.endswith(", 2 Insufficient cpu.")
    assert "0 match the selectors" in result.reason and "node v100" in result.reason
    assert result.counts["Insufficient cpu"] == 2 and sum(result.counts.values()) == 3


def test_insufficient_memory_and_pod_count():
    state = _state([T4], edit=lambda n: n["status"]["allocatable"].update(pods="1"))
    pod, claims = _pod("first")
    state.commit(schedule(pod, claims, state))
    pod, claims = _pod("second")
    result = schedule(pod, claims, state)
    assert result.counts == {"Too many pods": 1}
    big = tr.pod_objects(tr.TracePod("big", 1000, 10**6, 0, 0, ()), "big")[0]
    assert schedule(big, [], _state([T4])).counts == {"Insufficient memory": 1}


def _label(name: str, value: str):
    def edit(node):
        if node["metadata"]["name"] == name:
            node["metadata"]["labels"]["tier"] = value
            node["metadata"]["labels"]["rank"] = "7"
    return edit


@pytest.mark.parametrize("expr, node", [
    ({"key": "tier", "operator": "In", "values": ["gold"]}, "v100"),
    ({"key": "tier", "operator": "NotIn", "values": ["gold"]}, "t4"),
    ({"key": "tier", "operator": "Exists"}, "v100"),
    ({"key": "tier", "operator": "DoesNotExist"}, "t4"),
    ({"key": "rank", "operator": "Gt", "values": ["5"]}, "v100"),
    ({"key": "rank", "operator": "Lt", "values": ["5"]}, None),
])
def test_required_node_affinity(expr, node):
    state = _state([T4, V100], edit=_label("v100", "gold"))
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [expr]}]}}}
    pod, claims = _pod(affinity=affinity)
    result = schedule(pod, claims, state)
    if node is None:
        assert isinstance(result, Unschedulable)
        assert result.counts == {"node(s) didn't match Pod's node affinity/selector": 2}
    else:
        assert isinstance(result, Placement) and result.node == node


def test_node_selector():
    state = _state([T4, V100], edit=_label("t4", "silver"))
    pod, claims = _pod(nodeSelector={"tier": "silver"})
    assert schedule(pod, claims, state).node == "t4"
    pod, claims = _pod(nodeSelector={"tier": "platinum"})
    assert schedule(pod, claims, state).counts == {"node(s) didn't match Pod's node affinity/selector": 2}


def test_taints_tolerations_and_cordon():
    def edit(node):
        if node["metadata"]["name"] == "t4":
            node["spec"]["taints"] = [{"key": "dedicated", "value": "ml", "effect": "NoSchedule"}]
        else:
            node["spec"]["unschedulable"] = True
    state = _state([T4, V100], edit=edit)
    pod, claims = _pod()
    result = schedule(pod, claims, state)
    assert result.counts == {"node(s) had untolerated taint {dedicated: ml}": 1, "node(s) were unschedulable": 1}
    pod, claims = _pod(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}])
    assert schedule(pod, claims, state).node == "t4"
    pod, claims = _pod(tolerations=[{"operator": "Exists"}])
    assert isinstance(schedule(pod, claims, state), Placement)


def test_bad_annotation_and_bad_claim_are_reported_not_raised():
    state = _state([T4])
    pod, claims = _pod()
    pod["metadata"]["annotations"] = {ANNOTATION: "tetris"}
    result = schedule(pod, claims, state)
    assert isinstance(result, Unschedulable) and "unknown scheduling strategy 'tetris'" in result.reason
    pod, claims = _pod()
    claims[0]["spec"]["devices"]["requests"][0]["exactly"]["deviceClassName"] = "no-such-class"
    result = schedule(pod, claims, state)
    assert isinstance(result, Unschedulable) and "no-such-class" in result.reason
    pod, claims = _pod(spec=("T4",))
    claims[0]["spec"]["devices"]["requests"][0]["exactly"]["selectors"] = [
        {"cel": {"expression": "device.attributes['gpu.nvidia.com'].noSuchAttribute == 'x'"}}]
    result = schedule(pod, claims, state)
    assert isinstance(result, Unschedulable) and "noSuchAttribute" in result.reason, result.reason


def test_identical_nodes_share_one_group_and_commit_release_restore_it():
    nodes = [tr.TraceNode(f"n{i}", 8000, 32768, 2, "T4") for i in range(4)]
    state = _state(nodes)
    assert len(state.groups) == 1
    before = copy.deepcopy({n: (s.used_cpu, s.used_memory, s.used_pods, s.free) for n, s in state.nodes.items()})
    pod, claims = _pod()
    placement = schedule(pod, claims, state)
    state.commit(placement)
    assert len(state.groups) == 2
    assert state.used_gpu_milli() == 500
    state.release(placement)
    assert len(state.groups) == 1 and state.used_gpu_milli() == 0
    assert {n: (s.used_cpu, s.used_memory, s.used_pods, s.free) for n, s in state.nodes.items()} == before


def test_never_overcommits_a_gpu():
    state = _state([SMALL], strategy="binpack")
    placed = 0
    for i in range(5):
        pod, claims = _pod(f"p{i}", cpu=100, milli=300)
        result = schedule(pod, claims, state)
        if isinstance(result, Placement):
            state.commit(result)
            placed += 1
    assert placed == 3 and state.used_gpu_milli() == 900


def test_pod_with_an_allocated_shared_claim_goes_where_it_points():
    state = _state([T4, V100])
    pod, claims = _pod("first", spec=("V100M16",))
    first = schedule(pod, claims, state)
    state.commit(first)
    shared = dict(claims[0], status={"allocation": first.allocations["first-gpu"]})
    second, _ = _pod("second", gpus=0, milli=0)
    result = schedule(second, [], state, allocated=[shared])
    assert isinstance(result, Placement) and result.node == "v100" and result.allocations == {}
    tight = [tr.TraceNode("t4", 8000, 32768, 2, "T4"), tr.TraceNode("v100", 500, 65536, 4, "V100M16")]
    state = _state(tight)
    result = schedule(second, [], state, allocated=[shared])
    assert result.counts == {"node(s) not where the pod's allocated claim is": 1, "Insufficient cpu": 1}


def test_node_update_replaces_the_node_and_commits_can_be_replayed():
    state = _state([T4])
    pod, claims = _pod()
    placement = schedule(pod, claims, state)
    state.commit(placement)
    node = tr.node_dict(T4)
    node["spec"]["taints"] = [{"key": "maintenance", "effect": "NoSchedule"}]
    inventory = build_inventories([tr.node_slice(T4)])["t4"]  # republished slices: new views, same keys
    state.add_node(node, inventory)
    assert state.used_gpu_milli() == 0  # replaced: the caller re-commits what runs there
    state.commit(placement)
    assert state.used_gpu_milli() == 500 and state.nodes["t4"].used_pods == 1
    assert schedule(*_pod("next"), state).counts == {"node(s) had untolerated taint {maintenance: }": 1}


def test_first_available_alternatives_do_not_filter_nodes():
    """A node where the first alternative cannot fit may still take a later one: the allocator decides."""
    state = _state([T4])
    pod, claims = _pod()
    req = claims[0]["spec"]["devices"]["requests"][0]
    exactly = req.pop("exactly")
    big = dict(exactly, selectors=[{"cel": {"expression": "device.attributes['gpu.nvidia.com'].productName == 'H100'"}}])
    req["firstAvailable"] = [dict(big, name="h100"), dict(exactly, name="any")]
    result = schedule(pod, claims, state)
    assert isinstance(result, Placement)
    assert result.allocations["p-gpu"]["devices"]["results"][0]["request"] == "gpu/any"
