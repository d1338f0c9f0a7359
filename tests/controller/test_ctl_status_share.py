"""GPU use of MIG instances, on the devices discovery really publishes: the larger of memory and
compute slices in use (driver.allocator.gpuuse), in static and dynamic mode, and the same figure
in `gpu-dra status` and in the packing scorer."""

from __future__ import annotations

import random

import pytest

from driver.allocator.inventory import build_inventories
from driver.scheduler.cycle import ClusterState, Placement, schedule
from driver.scheduler.packing.scoring import PackingConfig
from driver.controller.status import build_report
from driver.devices import discover, load_node_config
from driver.devices.classes import device_classes
from driver.devices.model import mig_name
from driver.devices.slices import build_slices
from driver.nvml.mock import MockNvml, load_node

D = "gpu.nvidia.com"
NODE = "n1"
GI = {"1g.10gb": 19, "1g.20gb": 15, "2g.20gb": 14, "3g.40gb": 9, "4g.40gb": 5, "7g.80gb": 0}
# (instances as (profile, placement start), GPU use): the figures the definition promises
CASES = [
    ([("1g.10gb", s) for s in range(7)], 1.0),  # 7/8 memory but 7/7 compute: nothing more fits
    ([("4g.40gb", 0), ("3g.40gb", 4)], 1.0),  # 8/8 memory, 7/7 compute
    ([("3g.40gb", 0)], 0.5),  # 4/8 memory, 3/7 compute
    ([("1g.20gb", 0)], 0.25),  # 2/8 memory, 1/7 compute
]


def _slices(model: str, sharing: str, carved: list[str], layout: str = "1.35", replicas: int = 1) -> list[dict]:
    gpus = [{"index": 0, "migEnabled": True, "migDevices": carved}] if sharing == "mig" else []
    nvml = load_node({"profile": model, "gpuCount": 1, "gpus": gpus})
    config = {"mode": sharing} if replicas == 1 else {"mode": sharing, "replicas": replicas}
    inventory = discover(MockNvml(nvml, NODE), load_node_config({"sharing": config}), NODE)
    return build_slices(inventory, NODE, driver_name=D, layout=layout)


def _named(slices: list[dict], profile: str) -> str:
    """The first published device of `profile`."""
    return next(d["name"] for s in slices for d in s["spec"].get("devices") or []
                if d.get("attributes", {}).get("profile") == {"string": profile})


def _claim(i: int, devices: list[str]) -> dict:
    results = [{"driver": D, "pool": NODE, "device": d, "request": "gpu"} for d in devices]
    return {"metadata": {"name": f"c{i}", "namespace": "ns", "uid": f"u{i}"},
            "status": {"allocation": {"devices": {"results": results}}, "reservedFor": []}}


@pytest.mark.parametrize("instances, use", CASES)
@pytest.mark.parametrize("sharing, layout", [("mig", "1.35"), ("dynamic", "1.35"), ("dynamic", "1.34")])
def test_status_share_of_mig_instances(instances, use, sharing, layout):
    slices = _slices("A100-SXM4-80GB", sharing, [p for p, _ in instances], layout)
    names = {d["name"] for s in slices for d in s["spec"].get("devices") or []}
    wanted = [mig_name(0, p, GI[p], start) for p, start in instances]
    assert set(wanted) <= names
    report = build_report(slices, [_claim(i, [n]) for i, n in enumerate(wanted)], [])
    (row,) = report.gpus
    assert row.share == pytest.approx(use)
    assert report.summary.gpus_full == (use == 1.0)


def test_one_instance_reads_the_same_in_every_mode():
    """A device's own share (the table's per-device figure) does not depend on the sharing mode."""
    shares = set()
    for sharing in ("mig", "dynamic"):
        slices = _slices("H100-80GB-HBM3", sharing, ["1g.20gb", "2g.20gb", "3g.40gb"])
        claims = [_claim(0, [_named(slices, "1g.20gb")]), _claim(1, [_named(slices, "2g.20gb")])]
        (row,) = build_report(slices, claims, []).gpus
        shares.add(tuple(round(u.share, 9) for u in row.uses) + (round(row.share, 9),))
    assert shares == {(0.25, round(2 / 7, 9), 0.5)}  # 1g.20gb, 2g.20gb, both: max(4/8, 3/7)


def test_whole_gpu_and_replicas_in_dynamic_mode():
    slices = _slices("A100-SXM4-80GB", "dynamic", [])
    (row,) = build_report(slices, [_claim(0, ["gpu-0"])], []).gpus
    assert row.share == 1.0
    slices = _slices("A100-SXM4-80GB", "dynamic", [], replicas=4)
    (row,) = build_report(slices, [_claim(0, ["gpu-0-ts-0"]), _claim(1, ["gpu-0-ts-3"])], []).gpus
    assert row.share == 0.5 and [u.share for u in row.uses] == [0.25, 0.25]


@pytest.mark.parametrize("sharing, nvml", [("dynamic", "A100-SXM4-80GB"), ("dynamic", "H100-80GB-HBM3"),
                                           ("mig", "a100-80gb-mig"), ("mig", "h100-mig")])
def test_status_and_scorer_agree_on_every_gpu(sharing, nvml):
    """After random placements through the scorer, each GPU's use in `gpu-dra status` is the
    scorer's use of that GPU: one definition, not two."""
    inventory = discover(MockNvml(load_node(nvml), NODE), load_node_config({"sharing": {"mode": sharing}}), NODE)
    slices = build_slices(inventory, NODE, driver_name=D)
    state = ClusterState({c["metadata"]["name"]: c for c in device_classes()}, PackingConfig(strategy="spread"))
    state.add_node({"metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
                    "status": {"allocatable": {"cpu": "256", "memory": "2Ti", "pods": "500"}}},
                   build_inventories(slices)[NODE])
    rng = random.Random(5)
    claims = []
    for i in range(14):
        profile = rng.choice(sorted(GI))
        claim = {"metadata": {"name": f"c{i}", "namespace": "ns", "uid": f"u{i}"},
                 "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {
                     "deviceClassName": "mig.nvidia.com",
                     "selectors": [{"cel": {"expression": f"device.attributes['{D}'].profile == '{profile}'"}}]}}]}}}
        pod = {"metadata": {"name": f"p{i}", "namespace": "ns", "uid": f"up{i}"},
               "spec": {"containers": [{"name": "x", "resources": {"requests": {"cpu": "1"}}}],
                        "resourceClaims": [{"name": "gpu", "resourceClaimName": f"c{i}"}]}}
        placement = schedule(pod, [claim], state)
        if isinstance(placement, Placement):
            state.commit(placement)
            claims.append(dict(claim, status={"allocation": placement.allocations[f"c{i}"]}))
    assert claims
    node = state.nodes[NODE]
    layout = node.klass.layout
    units = range(len(layout.unit_total))
    scorer = sorted(round(layout.unit_used(u, node.free, node.counters) / 1000, 6) for u in units)
    status = sorted(round(r.share, 6) for r in build_report(slices, claims, []).gpus)
    assert status == scorer
    assert len(set(status)) > 2  # the placements left GPUs at different uses
