"""DefaultPreemption over devices: victims free GPUs, fewest/lowest victims, PDBs, policy Never.

Cases follow kube-scheduler's defaultpreemption tests (pick the node whose victims have the lowest
highest priority, then the lowest priority sum, then the fewest victims; PDB violations first;
preemptionPolicy Never; equal priority is never preempted), on GPU devices instead of cpu.
"""

from __future__ import annotations

from driver.scheduler.cycle import Placement, Unschedulable, schedule
from driver.scheduler.podinfo import pod_info
from driver.scheduler.preemption import NotPreempting, Preemption, preempt
from driver.sim import trace as tr

from test_schedule import _pod, _state

A = tr.TraceNode("a", 16000, 65536, 2, "T4")
B = tr.TraceNode("b", 16000, 65536, 2, "T4")


def _fill(state, placed, node_pods):
    """node -> list of (name, priority, labels): whole-GPU pods placed there."""
    for node, pods in node_pods.items():
        for name, prio, labels in pods:
            pod, claims = _pod(name, milli=1000)
            pod["metadata"]["uid"] = name
            pod["metadata"]["labels"] = labels
            pod["spec"]["priority"] = prio
            got = schedule(pod, claims, state, nodes=[node])
            assert isinstance(got, Placement), got
            state.commit(got)
            state.pods.add(pod_info(pod, node))
            placed[name] = got


def _high(priority=100, **spec):
    pod, claims = _pod("high", milli=1000)
    pod["metadata"]["uid"] = "high"
    pod["spec"]["priority"] = priority
    pod["spec"].update(spec)
    return pod, claims


def _run(state, placed, pod, claims, pdbs=()):
    failed = schedule(pod, claims, state)
    assert isinstance(failed, Unschedulable)
    before = (state.used_gpu_milli(), len(state.pods))
    out = preempt(pod, claims, state, failed, lambda v: [placed[v.uid]], pdbs)
    assert (state.used_gpu_milli(), len(state.pods)) == before  # the state is restored
    return out


def test_victim_gpu_is_freed_for_the_higher_priority_pod():
    state, placed = _state([A]), {}
    _fill(state, placed, {"a": [("low1", 1, {}), ("low2", 1, {})]})
    out = _run(state, placed, *_high())
    assert isinstance(out, Preemption) and out.node == "a" and len(out.victims) == 1
    # the placement takes exactly the device the victim held
    (victim,) = out.victims
    held = {p.device.key for p in placed[victim.uid].picks}
    assert {p.device.key for p in out.placement.picks} == held


def test_lowest_priority_victims_win():
    state, placed = _state([A, B]), {}
    _fill(state, placed, {"a": [("a1", 5, {}), ("a2", 5, {})], "b": [("b1", 1, {}), ("b2", 3, {})]})
    out = _run(state, placed, *_high())
    assert isinstance(out, Preemption) and out.node == "b" and [v.name for v in out.victims] == ["b1"]


def test_equal_or_higher_priority_is_never_a_victim():
    state, placed = _state([A]), {}
    _fill(state, placed, {"a": [("p1", 100, {}), ("p2", 200, {})]})
    out = _run(state, placed, *_high(100))
    assert isinstance(out, NotPreempting) and "No preemption victims" in out.reason


def test_preemption_policy_never():
    state, placed = _state([A]), {}
    _fill(state, placed, {"a": [("low1", 1, {}), ("low2", 1, {})]})
    out = _run(state, placed, *_high(preemptionPolicy="Never"))
    assert isinstance(out, NotPreempting) and "preemptionPolicy=Never" in out.reason


def test_pdb_violations_are_avoided_when_another_node_has_none():
    state, placed = _state([A, B]), {}
    _fill(state, placed, {"a": [("a1", 1, {"app": "db"}), ("a2", 1, {"app": "db"})],
                          "b": [("b1", 2, {"app": "web"}), ("b2", 2, {"app": "web"})]})
    pdb = {"metadata": {"name": "db", "namespace": "default"},
           "spec": {"selector": {"matchLabels": {"app": "db"}}, "minAvailable": 2},
           "status": {"disruptionsAllowed": 0}}
    out = _run(state, placed, *_high(), pdbs=[pdb])
    assert isinstance(out, Preemption) and out.node == "b" and out.pdb_violations == 0
    # without the PDB the lower-priority victims on a are chosen
    assert _run(state, placed, *_high()).node == "a"


def test_unresolvable_nodes_are_not_candidates():
    def taint(node):
        node["spec"]["taints"] = [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]
    state, placed = _state([A], edit=taint), {}
    pod, claims = _high()
    pod["spec"]["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
    # low pods tolerate the taint too
    for name in ("l1", "l2"):
        p, c = _pod(name, milli=1000)
        p["metadata"]["uid"] = name
        p["spec"]["priority"] = 1
        p["spec"]["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
        got = schedule(p, c, state)
        state.commit(got)
        state.pods.add(pod_info(p, "a"))
        placed[name] = got
    assert isinstance(_run(state, placed, pod, claims), Preemption)
    untolerating, claims2 = _high()
    out = _run(state, placed, untolerating, claims2)
    assert isinstance(out, NotPreempting)


def test_nodes_held_for_other_preemptors_are_no_candidates_and_a_nominated_pod_can_retry():
    state, placed = _state([A, B]), {}
    _fill(state, placed, {"a": [("a1", 1, {}), ("a2", 1, {})], "b": [("b1", 5, {}), ("b2", 5, {})]})
    pod, claims = _high(100)
    failed = schedule(pod, claims, state, nominated={"a": 200})
    out = preempt(pod, claims, state, failed, lambda v: [placed[v.uid]], nominated={"a": 200})
    assert isinstance(out, Preemption) and out.node == "b"  # a is held for a priority-200 pod
    pod["status"] = {"nominatedNodeName": "b"}  # its own nomination from an earlier cycle
    again = preempt(pod, claims, state, schedule(pod, claims, state, nominated={"a": 200}),
                    lambda v: [placed[v.uid]], nominated={"a": 200})
    assert isinstance(again, Preemption) and again.node == "b"
