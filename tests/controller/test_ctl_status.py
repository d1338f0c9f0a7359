"""`gpu-dra status` report: grouping by physical GPU, shares per sharing mode, packing figures."""

from __future__ import annotations

import json

from driver.controller.status import build_report, format_table

D = "gpu.nvidia.com"


def dev(name: str, type_: str, slices: range = range(0), **attrs: object) -> dict:
    """A published device; `slices`: the memory slices a static MIG instance occupies."""
    a = {"type": {"string": type_}}
    for k, v in attrs.items():
        a[k] = {"int": v} if isinstance(v, int) else {"string": v}
    d: dict = {"name": name, "attributes": a}
    if slices:
        d["capacity"] = {f"memorySlice{i}": {"value": "1"} for i in slices}
    if type_ == "fractional":
        d["allowMultipleAllocations"] = True
        d["capacity"] = {"compute": {"value": "1"}, "memory": {"value": "80Gi"}}
    return d


def slice_(node: str, devices: list[dict], generation: int = 1) -> dict:
    return {
        "metadata": {"name": f"{node}-{generation}"},
        "spec": {"driver": D, "nodeName": node, "pool": {"name": node, "generation": generation, "resourceSliceCount": 1},
                 "devices": devices},
    }


def claim(name: str, results: list[dict], pods: list[tuple[str, str]]) -> dict:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"u-{name}"},
        "status": {
            "allocation": {"devices": {"results": [{"driver": D, "request": "r", **r} for r in results]}},
            "reservedFor": [{"resource": "pods", "name": n, "uid": u} for n, u in pods],
        },
    }


def pod(name: str, uid: str) -> dict:
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid}}


SLICES = [
    slice_("whole", [dev("gpu-0", "gpu"), dev("gpu-1", "gpu")]),
    slice_("mig", [dev("gpu-0-mig-1g10gb-19-0", "mig", range(0, 1), profile="1g.10gb", parentUUID="GPU-A"),
                   dev("gpu-0-mig-3g40gb-9-4", "mig", range(4, 8), profile="3g.40gb", parentUUID="GPU-A")]),
    slice_("ts", [dev(f"gpu-0-ts-{k}", "replica", parentUUID="GPU-B", replicaIndex=k, replicas=4) for k in range(4)]),
    slice_("frac", [dev("gpu-0", "fractional"), dev("gpu-1", "fractional")]),
    slice_("whole", [dev("gpu-0", "gpu")], generation=0),  # stale generation: ignored
]


def test_shares_per_mode_and_summary() -> None:
    claims = [
        claim("full", [{"pool": "whole", "device": "gpu-0"}], [("p1", "1")]),
        claim("mig3", [{"pool": "mig", "device": "gpu-0-mig-3g40gb-9-4"}], [("p2", "2")]),
        claim("ts", [{"pool": "ts", "device": "gpu-0-ts-1"}], [("p3", "3")]),
        claim("q", [{"pool": "frac", "device": "gpu-0", "consumedCapacity": {"compute": "250m"}}], [("p4", "4")]),
        claim("h", [{"pool": "frac", "device": "gpu-0", "consumedCapacity": {"compute": "500m"}}], [("p5", "5"), ("p6", "6")]),
        {"metadata": {"name": "pending", "namespace": "ns"}, "spec": {}},
    ]
    pods = [pod(f"p{i}", str(i)) for i in range(1, 6)]
    r = build_report(SLICES, claims, pods)
    rows = {(g.node, g.gpu): g for g in r.gpus}
    assert set(rows) == {("whole", "gpu-0"), ("whole", "gpu-1"), ("mig", "gpu-0"), ("ts", "gpu-0"), ("frac", "gpu-0"), ("frac", "gpu-1")}
    assert rows[("whole", "gpu-0")].share == 1.0 and rows[("whole", "gpu-0")].mode == "whole"
    # 3g.40gb: max(4 of 8 memory slices, 3 of 7 compute slices)
    assert rows[("mig", "gpu-0")].share == 0.5 and rows[("mig", "gpu-0")].mode == "mig"
    assert rows[("ts", "gpu-0")].share == 0.25 and rows[("ts", "gpu-0")].mode == "timeslicing"
    assert rows[("frac", "gpu-0")].share == 0.75 and rows[("frac", "gpu-0")].mode == "fractional"
    assert rows[("frac", "gpu-1")].share == 0.0
    h = [u for u in rows[("frac", "gpu-0")].uses if u.claim == "ns/h"][0]
    assert h.pods == ["ns/p5", "ns/p6 (gone)"]
    s = r.summary
    assert (s.gpus, s.gpus_touched, s.gpus_full, s.nodes, s.nodes_touched) == (6, 4, 1, 4, 4)
    assert s.allocated_gpus == 1 + 0.5 + 0.25 + 0.75
    assert s.fragmented_gpus == 0.5 + 0.75 + 0.25
    assert s.claims_allocated == 5
    text = format_table(r)
    assert "gpu-0-mig-3g40gb-9-4" in text and "3g.40gb" in text and "ns/mig3" in text
    assert "fragmented" in text
    assert json.loads(r.to_json())["summary"]["gpus_touched"] == 4


def test_dynamic_mode_detected_and_driver_filter() -> None:
    slices = [slice_("dyn", [dev("gpu-0", "gpu"), dev("gpu-0-mig-1g10gb-19-0", "mig", profile="1g.10gb")])]
    other = slice_("x", [dev("gpu-0", "gpu")])
    other["spec"]["driver"] = "other.example.com"
    r = build_report(slices + [other], [], [], driver=D)
    assert [(g.node, g.gpu, g.mode) for g in r.gpus] == [("dyn", "gpu-0", "dynamic")]
    assert r.summary.gpus_touched == 0 and r.summary.allocated_pct == 0


def test_allocation_on_unknown_device_is_ignored_not_crashing() -> None:
    claims = [claim("lost", [{"pool": "nowhere", "device": "gpu-9"}], [])]
    r = build_report(SLICES, claims, [])
    assert r.summary.gpus_touched == 0 and r.summary.claims_allocated == 1
