"""`gpu-dra demo` end to end: default local cluster (plugins on mock NVML, claim controller) plus
our controller; the seed's workloads placed under binpack and spread."""

from __future__ import annotations

import io

import pytest

from driver.controller.demo import manifests, run_demo


def test_demo_manifests_cover_the_seed_scenarios() -> None:
    docs = manifests()
    templates = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ResourceClaimTemplate"}
    pods = [d for d in docs if d["kind"] == "Pod"]
    requests = [t["spec"]["spec"]["devices"]["requests"][0]["exactly"] for t in templates.values()]
    computes = {r.get("capacity", {}).get("requests", {}).get("compute") for r in requests}
    assert {"250m", "500m"} <= computes  # notebook 1/4, inference 1/2
    profiles = " ".join(str(r.get("selectors")) for r in requests)
    for p in ("1g.10gb", "2g.20gb", "3g.40gb"):
        assert p in profiles
    classes = {r["deviceClassName"] for r in requests}
    assert {"gpu.nvidia.com", "mig.nvidia.com", "replica.gpu.nvidia.com", "fractional.gpu.nvidia.com"} <= classes
    spread = [p for p in pods if p["metadata"].get("annotations", {}).get("gpu-dra.nvidia.com/scheduling-strategy") == "spread"]
    assert len(spread) == 4
    for p in pods:
        assert p["spec"]["resourceClaims"][0]["resourceClaimTemplateName"] in templates


@pytest.mark.slow
def test_demo_binpack_uses_fewer_gpus_than_spread() -> None:
    out = io.StringIO()
    assert run_demo(["binpack", "spread"], timeout=60, out=out) == 0, out.getvalue()
    text = out.getvalue()
    rows = {line.split()[0]: line.split() for line in text.split("=== comparison ===")[1].strip().splitlines()[1:]}
    binpack_gpus, spread_gpus = int(rows["binpack"][2]), int(rows["spread"][2])
    assert binpack_gpus < spread_gpus, text
    assert "PENDING" not in text
    for pod in ("notebook-0", "mig-large", "training", "inference-spread-3", "timesliced-2"):
        assert pod in text


def test_keep_keeps_the_first_strategy_named_and_compares_before_waiting(monkeypatch) -> None:
    import io
    from types import SimpleNamespace

    from driver.controller import demo

    calls = []

    def fake(strategy, cluster, timeout, keep=False, out=None, before_wait=None):
        summary = SimpleNamespace(nodes_touched=1, gpus_touched=2 if strategy == "binpack" else 4, touched_pct=50.0,
                                  fragmented_gpus=0.0)
        o = SimpleNamespace(strategy=strategy, report=SimpleNamespace(summary=summary), pending=[])
        calls.append((strategy, keep))
        if keep and before_wait:
            before_wait(o)
        return o

    monkeypatch.setattr(demo, "run_strategy", fake)
    monkeypatch.setattr(demo, "print_outcome", lambda o, out: out.write(f"outcome {o.strategy}\n"))
    out = io.StringIO()
    assert demo.run_demo(["binpack", "spread"], keep=True, out=out) == 0
    assert calls == [("spread", False), ("binpack", True)]  # binpack (named first) is the one kept up
    text = out.getvalue()
    assert "=== comparison ===" in text and text.index("binpack  ") < text.index("spread  ")
