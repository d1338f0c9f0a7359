"""The seed's workloads applied with kubectl, once per strategy: binpack must put them on fewer
physical GPUs than spread. The strategy is chosen per pod with the annotation a user would set,
so the test runs unchanged against any cluster where the controller is installed."""

from __future__ import annotations

from typing import Any

import pytest
from e2e_support import (
    Target, apply, attribute, claims_of, delete, for_scheduler, new_namespace, published_devices, results,
    wait_claims_gone, wait_pods_placed,
)

from driver.controller.demo import manifests

STRATEGY_ANNOTATION = "gpu-dra.nvidia.com/scheduling-strategy"


def _workload(strategy: str, scheduler_name: str) -> list[dict[str, Any]]:
    """The demo's templates and pods (notebook 1/4, inference 1/2, MIG 1g/2g/3g, full GPUs, a
    4-pod inference set, time-sliced replicas), every pod annotated with `strategy`."""
    objects = for_scheduler(manifests(), scheduler_name)
    for obj in objects:
        obj["metadata"].pop("namespace", None)
        if obj["kind"] == "Pod":
            obj["metadata"].setdefault("annotations", {})[STRATEGY_ANNOTATION] = strategy
    return objects


def _physical_gpu(device: dict[str, Any], driver_name: str) -> str:
    """MIG devices and replicas belong to their parent GPU; whole and fractional devices are one."""
    return attribute(device, "parentUUID", driver_name) or attribute(device, "uuid", driver_name)


def _gpus_touched(target: Target, strategy: str) -> tuple[set[str], int]:
    objects = _workload(strategy, target.scheduler_name)
    namespace = new_namespace(target, f"packing-{strategy}")
    apply(target, namespace, objects)
    try:
        pods = wait_pods_placed(target, namespace, sum(1 for o in objects if o["kind"] == "Pod"))
        devices = published_devices(target, target.driver_name)
        gpus: set[str] = set()
        for pod in pods:
            for claim in claims_of(target, pod):
                for result in results(claim):
                    gpus.add(_physical_gpu(devices[(result["pool"], result["device"])], target.driver_name))
        return gpus, len(pods)
    finally:
        delete(target, namespace, objects)
        wait_claims_gone(target, namespace)


@pytest.mark.slow
def test_binpack_uses_fewer_gpus_than_spread(installed: Target) -> None:
    binpack, placed_b = _gpus_touched(installed, "binpack")
    spread, placed_s = _gpus_touched(installed, "spread")
    assert placed_b == placed_s > 0
    assert None not in binpack | spread, "every allocated device names its physical GPU"
    assert len(binpack) < len(spread), f"binpack touched {len(binpack)} GPUs, spread {len(spread)}"
