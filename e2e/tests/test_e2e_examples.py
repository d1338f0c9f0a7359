"""Install-level checks on the target cluster: the chart's DeviceClasses apply, the plugin
publishes devices, and every example of deploy/examples is applied with kubectl, its pods are
placed (bound and Running) and its claims get devices of the kind the example asked for."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from e2e_support import (
    EXAMPLES, Target, apply, attribute, claims_of, delete, for_scheduler, iter_examples, load_manifests,
    new_namespace, pod_spec_of, published_devices, results, wait_claims_gone,
    wait_pods_placed,
)

EXAMPLE_FILES = list(iter_examples())


def _expected_type(class_name: str) -> str:
    return class_name.split(".")[0]  # gpu.nvidia.com -> gpu, replica.gpu.nvidia.com -> replica


def _requests(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Request name -> `exactly`, over every claim and claim template of the example."""
    out = {}
    for obj in objects:
        if obj["kind"] == "ResourceClaim":
            spec = obj["spec"]
        elif obj["kind"] == "ResourceClaimTemplate":
            spec = obj["spec"]["spec"]
        else:
            continue
        for request in spec["devices"]["requests"]:
            out[request["name"]] = request["exactly"]
    return out


def _pod_count(objects: list[dict[str, Any]]) -> int:
    return sum(1 if obj["kind"] == "Pod" else obj["spec"].get("replicas", 1)
               for obj in objects if pod_spec_of(obj) is not None)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[str(p.relative_to(EXAMPLES)) for p in EXAMPLE_FILES])
def test_example_is_placed_with_the_devices_it_asks_for(installed: Target, path: Path) -> None:
    target = installed
    objects = for_scheduler(load_manifests(path), target.scheduler_name)
    namespace = new_namespace(target, path.stem)
    apply(target, namespace, objects)
    try:
        pods = wait_pods_placed(target, namespace, _pod_count(objects))
        devices = published_devices(target, target.driver_name)
        requests = _requests(objects)
        for pod in pods:
            for claim in claims_of(target, pod):
                reserved = {r["name"] for r in claim["status"].get("reservedFor", [])}
                assert pod["metadata"]["name"] in reserved
                for result in results(claim):
                    request = requests[result["request"].split("/")[0]]
                    device = devices[(result["pool"], result["device"])]
                    assert result["pool"] == pod["spec"]["nodeName"], "pool = node name"
                    assert attribute(device, "type", target.driver_name) == _expected_type(request["deviceClassName"])
                    for selector in request.get("selectors", []):
                        expression = selector["cel"]["expression"]
                        if ".profile ==" in expression:
                            assert attribute(device, "profile", target.driver_name) in expression
                    wanted = request.get("capacity", {}).get("requests", {})
                    if wanted:
                        assert set(result.get("consumedCapacity", {})) >= set(wanted)
        _check_scenario(path, pods, target)
        delete(target, namespace, objects)
        wait_claims_gone(target, namespace)
    finally:
        delete(target, namespace, objects)


def _check_scenario(path: Path, pods: list[dict[str, Any]], target: Target) -> None:
    """What each scenario promises beyond "placed"."""
    by_name = {p["metadata"]["name"]: p for p in pods}
    devices = published_devices(target, target.driver_name)
    if path.name == "timeslicing-replicas.yaml":
        (claim,) = claims_of(target, by_name["batch-two-replicas"])
        parents = {attribute(devices[(r["pool"], r["device"])], "parentUUID", target.driver_name) for r in results(claim)}
        assert len(results(claim)) == 2 and len(parents) == 1, "two replicas of one GPU"
    if path.name in ("mps.yaml", "timeslicing-shared.yaml"):
        claims = [c for p in pods for c in claims_of(target, p)]
        assert len({c["metadata"]["uid"] for c in claims}) == 1, "both pods share one claim"
        assert len(claims[0]["status"]["reservedFor"]) == 2
        assert len({p["spec"]["nodeName"] for p in pods}) == 1
    if path.name == "spread-inference.yaml":
        used = Counter((r["pool"], r["device"]) for p in pods for c in claims_of(target, p) for r in results(c))
        assert len(pods) == 4 and max(used.values()) == 1, f"spread: one replica per GPU, got {dict(used)}"
