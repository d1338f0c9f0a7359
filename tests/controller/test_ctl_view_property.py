"""Property: whatever the lag of the informer echo, and whichever writes fail, the controller's view
never hands out a device that the API (the truth) has given to another claim, and once the echo has
caught up the view counts exactly what the API holds. Pure (no HTTP), so hypothesis can try many
interleavings; the HTTP-level race with real controllers is in test_ctl_race.py."""

from __future__ import annotations

from fractions import Fraction

from ctl_helpers import CLASSES, claim_spec, fractional_devices, gpu_devices, node, resource_slice
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driver.scheduler.cycle import Unschedulable, schedule
from driver.scheduler.packing.scoring import PackingConfig
from driver.controller.objects import allocation_signature
from driver.controller.view import ClusterView
from driver.dra.quantity import parse_quantity

CLAIMS = 8
SPECS = [claim_spec(), claim_spec(count=2), claim_spec("fractional.gpu.nvidia.com", compute="300m"),
         claim_spec("fractional.gpu.nvidia.com", compute="600m")]


def truth_usage(truth: dict[int, tuple[dict | None, int]]) -> tuple[list[str], dict[str, Fraction]]:
    exclusive: list[str] = []
    frac: dict[str, Fraction] = {}
    for alloc, _ in truth.values():
        for r in ((alloc or {}).get("devices") or {}).get("results") or []:
            key = f"{r['pool']}/{r['device']}"
            if r.get("consumedCapacity"):
                frac[key] = frac.get(key, Fraction(0)) + parse_quantity(r["consumedCapacity"]["compute"])
            else:
                exclusive.append(key)
    return exclusive, frac


op = st.tuples(st.sampled_from(["decide", "decide", "echo", "release"]), st.integers(0, CLAIMS - 1), st.booleans())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op, min_size=5, max_size=40), kinds=st.lists(st.integers(0, len(SPECS) - 1), min_size=CLAIMS,
                                                                   max_size=CLAIMS))
def test_view_never_double_allocates_under_lagging_echo_and_failed_writes(ops, kinds) -> None:
    v = ClusterView(PackingConfig(strategy="binpack"))
    for c in CLASSES:
        v.on_class("ADDED", None, c)
    for name, devices in (("w", gpu_devices("w", 3)), ("f", fractional_devices("f", 1))):
        v.on_node("ADDED", None, node(name))
        v.on_slice("ADDED", None, resource_slice(name, devices))
    rv = 1
    truth: dict[int, tuple[dict | None, int]] = {i: (None, 1) for i in range(CLAIMS)}
    history: dict[int, list[tuple[dict | None, int]]] = {i: [(None, 1)] for i in range(CLAIMS)}
    delivered: dict[int, int] = {i: 0 for i in range(CLAIMS)}  # index into history the echo reached

    def claim_obj(i: int, alloc: dict | None, version: int) -> dict:
        c = {"metadata": {"name": f"c{i}", "namespace": "ns", "uid": f"u{i}", "resourceVersion": str(version)},
             "spec": SPECS[kinds[i]]}
        if alloc:
            c["status"] = {"allocation": alloc}
        return c

    def write(i: int, alloc: dict | None) -> int:
        nonlocal rv
        rv += 1
        truth[i] = (alloc, rv)
        history[i].append((alloc, rv))
        return rv

    for action, i, flag in ops:
        if action == "decide":
            seen = history[i][delivered[i]]
            c = claim_obj(i, *seen)
            if v.allocation_of(c) or truth[i][0]:
                continue  # the controller only decides for claims it sees unallocated; the API refuses others
            pod = {"metadata": {"name": f"p{i}", "namespace": "ns", "uid": f"p{i}-{rv}"}, "spec": {"containers": []}}
            result = schedule(pod, [c], v.state, v.classes, v.config)
            if isinstance(result, Unschedulable):
                continue
            alloc = result.allocations[f"c{i}"]
            v.assume(pod, result.node, {f"u{i}": (f"c{i}", alloc)})
            # The decision must fit the truth, not just the view.
            exclusive, frac = truth_usage({**truth, i: (alloc, 0)})
            assert len(exclusive) == len(set(exclusive)), exclusive
            assert all(x <= 1 for x in frac.values()), frac
            if flag:  # the write succeeds
                v.written(f"u{i}", str(write(i, alloc)))
            else:
                v.forget(pod, [f"u{i}"])
        elif action == "echo" and delivered[i] < len(history[i]) - 1:
            old = claim_obj(i, *history[i][delivered[i]])
            delivered[i] += 1
            v.on_claim("MODIFIED", old, claim_obj(i, *history[i][delivered[i]]))
        elif action == "release" and truth[i][0]:
            write(i, None)  # the claim controller deallocates (the echo may not have shown the allocation yet)
    for i in range(CLAIMS):  # the echo catches up
        while delivered[i] < len(history[i]) - 1:
            old = claim_obj(i, *history[i][delivered[i]])
            delivered[i] += 1
            v.on_claim("MODIFIED", old, claim_obj(i, *history[i][delivered[i]]))
    assert not v.errors
    counted = {u: a.signature for u, a in v.claims.items()}
    expected = {f"u{i}": allocation_signature(a) for i, (a, _) in truth.items() if a}
    assert counted == expected
    exclusive, _ = truth_usage(truth)
    assert {f"{k[1]}/{k[2]}" for n in v.state.nodes.values() for k in n.usage.exclusive} == set(exclusive)
