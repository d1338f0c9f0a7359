"""Randomized workloads, two controller replicas racing for the Lease (with a failover in the
middle), and an API server injecting 500s and 409s into claim and binding writes. Afterwards the
API must show: no device allocated twice, no fractional capacity exceeded, every allocation on the
node its pod is bound to and satisfying its request, no allocation leaked by a failed attempt."""

from __future__ import annotations

import os
import random
from collections import defaultdict
from fractions import Fraction

import pytest
from ctl_helpers import (
    D, Api, claim, claim_spec, controller, fractional_devices, gpu_devices, mig_devices, node, pod, resource_slice,
)
from wait_helpers import wait_for

from driver.controller.leader import LeaseConfig
from driver.dra.quantity import parse_quantity

PROFILES = ["1g.10gb", "2g.20gb", "3g.40gb"]
# More seeds for a soak run: GPU_DRA_RACE_SEEDS=1,2,3,... pytest tests/controller/test_ctl_race.py
SEEDS = [int(s) for s in os.environ.get("GPU_DRA_RACE_SEEDS", "7,11").split(",") if s.strip()]


def random_claim(rng: random.Random) -> tuple[dict, str]:
    kind = rng.choice(["whole", "whole2", "mig", "frac", "frac"])
    if kind == "whole":
        return claim_spec(), kind
    if kind == "whole2":
        return claim_spec(count=2), kind
    if kind == "mig":
        profile = rng.choice(PROFILES)
        return claim_spec("mig.nvidia.com", selectors=[f"device.attributes['{D}'].profile == '{profile}'"]), profile
    milli = rng.randrange(1, 8) * 100
    return claim_spec("fractional.gpu.nvidia.com", compute=f"{milli}m"), f"frac:{milli}"


def lease(identity: str) -> LeaseConfig:
    return LeaseConfig(name="race", namespace="default", identity=identity, lease_duration=2.0,
                       renew_deadline=1.5, retry_period=0.1)


def settled(api: Api, names: list[str]) -> bool:
    for p in (api.pod(n) for n in names):
        if p["spec"].get("nodeName"):
            continue
        conds = (p.get("status") or {}).get("conditions") or []
        if not any(c["type"] == "PodScheduled" and c["status"] == "False" for c in conds):
            return False
    return True


@pytest.mark.parametrize("seed", SEEDS)
def test_racing_controllers_with_faults_never_double_allocate(server, api: Api, seed: int) -> None:
    rng = random.Random(seed)
    api.create(node("whole"))
    api.create(resource_slice("whole", gpu_devices("whole", 4)))
    api.create(node("mig"))
    api.create(resource_slice("mig", mig_devices("mig", gpus=2)))
    api.create(node("frac"))
    api.create(resource_slice("frac", fractional_devices("frac", 2)))
    server.faults.set(verb="update", resource="resourceclaims/status", error_rate=0.1, conflict_rate=0.1)
    server.faults.set(verb="update", resource="resourceclaims", conflict_rate=0.15)
    server.faults.set(verb="create", resource="pods/binding", error_rate=0.15)

    kinds: dict[str, str] = {}
    names: list[str] = []

    def submit(n: int) -> None:
        for _ in range(n):
            i = len(names)
            spec, kind = random_claim(rng)
            kinds[f"c{i}"] = kind
            api.create(claim(f"c{i}", spec))
            api.create(pod(f"p{i}", {"gpu": f"c{i}"}, cpu="100m"))
            names.append(f"p{i}")

    with controller(server, leader=lease("a")) as a, controller(server, leader=lease("b")) as b:
        first = wait_for(lambda: a if a.is_leader() else b if b.is_leader() else None, 20, "a leader")
        submit(12)
        first.stop()  # failover while pods are being scheduled
        submit(12)
        with controller(server, leader=lease("c")) as c:
            wait_for(lambda: settled(api, names) and (a.is_leader() or b.is_leader() or c.is_leader()), 30,
                     "every pod bound or reported unschedulable")
            leader = next(x for x in (a, b, c) if x.is_leader())
            assert leader.wait_idle(30)
            server.faults.clear()

    claims = {c["metadata"]["name"]: c for c in api.claims()}
    pods = {p["metadata"]["name"]: p for p in api.pods()}
    exclusive: dict[tuple[str, str], str] = {}
    compute: dict[tuple[str, str], Fraction] = defaultdict(Fraction)
    bound = 0
    for i, name in enumerate(names):
        c, p = claims[f"c{i}"], pods[name]
        alloc = (c.get("status") or {}).get("allocation")
        node_name = p["spec"].get("nodeName")
        if not node_name:
            assert not alloc, f"{name} is not bound but its claim kept an allocation (leaked by a failed attempt)"
            continue
        bound += 1
        assert alloc, f"{name} is bound without an allocated claim"
        assert [r["uid"] for r in c["status"]["reservedFor"]] == [p["metadata"]["uid"]]
        assert "resource.kubernetes.io/delete-protection" in c["metadata"]["finalizers"]
        kind = kinds[f"c{i}"]
        results = alloc["devices"]["results"]
        assert len(results) == (2 if kind == "whole2" else 1)
        for r in results:
            assert r["pool"] == node_name, f"{name}: device on {r['pool']} but pod on {node_name}"
            key = (r["pool"], r["device"])
            if kind.startswith("frac:"):
                assert r["pool"] == "frac"
                compute[key] += parse_quantity(r["consumedCapacity"]["compute"])
            else:
                assert key not in exclusive, f"{key} allocated to {exclusive[key]} and c{i}"
                exclusive[key] = f"c{i}"
                if kind in PROFILES:
                    assert kind.replace(".", "") in r["device"]
                else:
                    assert r["pool"] == "whole"
    for key, used in compute.items():
        assert used <= 1, f"fractional device {key} over-committed: {used}"
    # Nothing left on the table: every pod left pending really does not fit in what is free.
    free_whole = 4 - sum(1 for (pool, _) in exclusive if pool == "whole")
    mig_free = {p: sum(1 for d in mig_devices("mig", gpus=2) if p.replace(".", "") in d["name"]
                       and ("mig", d["name"]) not in exclusive) for p in PROFILES}
    frac_free = [1 - compute[("frac", f"gpu-{g}")] for g in range(2)]
    for i, name in enumerate(names):
        if pods[name]["spec"].get("nodeName"):
            continue
        kind = kinds[f"c{i}"]
        if kind == "whole":
            assert free_whole < 1, f"{name} pending with {free_whole} whole GPUs free"
        elif kind == "whole2":
            assert free_whole < 2, f"{name} pending with {free_whole} whole GPUs free"
        elif kind in PROFILES:
            assert mig_free[kind] == 0, f"{name} pending with {mig_free[kind]} {kind} free"
        else:
            need = Fraction(int(kind.split(":")[1]), 1000)
            assert max(frac_free) < need, f"{name} pending needing {need} with {frac_free} free"
    assert bound > 0
