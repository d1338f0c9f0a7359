"""deploy/examples/: every scenario of the seed is there, every manifest is valid Kubernetes, the
claims use classes the chart creates and configs our plugin decodes, and the ones under
nvidia-compatible/ use nothing NVIDIA's driver and kube-scheduler would not understand."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from deploy_support import EXAMPLES_DIR, KUBE_VERSIONS, example_files, load_manifests, of_kind, render, schema_errors

# Seed scenario -> example file (relative to deploy/examples).
SCENARIOS = {
    "notebook on 1/4 GPU": "gpu-dra/notebook-quarter-gpu.yaml",
    "inference on 1/2 GPU": "gpu-dra/inference-half-gpu.yaml",
    "MIG 1g.10gb": "nvidia-compatible/mig-1g10gb.yaml",
    "MIG 2g.20gb": "nvidia-compatible/mig-2g20gb.yaml",
    "MIG 3g.40gb": "nvidia-compatible/mig-3g40gb.yaml",
    "full GPU": "nvidia-compatible/full-gpu.yaml",
    "spread inference deployment": "gpu-dra/spread-inference.yaml",
    "time-slicing with replicas": "gpu-dra/timeslicing-replicas.yaml",
    "time-slicing a shared claim": "nvidia-compatible/timeslicing-shared.yaml",
    "MPS": "nvidia-compatible/mps.yaml",
}
NVIDIA_CLASSES = {"gpu.nvidia.com", "mig.nvidia.com"}
NVIDIA_KINDS = {"GpuConfig", "MigDeviceConfig"}
FILES = example_files()


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(EXAMPLES_DIR)) for p in paths]


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for obj in objects:
        if obj["kind"] == "Pod":
            yield obj["spec"]
        elif obj["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
            yield obj["spec"]["template"]["spec"]


def claim_specs(objects: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for obj in objects:
        if obj["kind"] == "ResourceClaim":
            yield obj["spec"]
        elif obj["kind"] == "ResourceClaimTemplate":
            yield obj["spec"]["spec"]


def test_every_seed_scenario_has_an_example() -> None:
    present = set(_ids(FILES))
    missing = {scenario: path for scenario, path in SCENARIOS.items() if path not in present}
    assert missing == {}


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_example_is_valid_and_self_contained(path: Path) -> None:
    objects = load_manifests(path)
    assert objects, f"{path} is empty"
    for version in KUBE_VERSIONS:
        assert [e for obj in objects for e in schema_errors(obj, version)] == []
    for obj in objects:
        assert "namespace" not in obj["metadata"], "examples apply to the namespace the user picks"
    templates = {o["metadata"]["name"] for o in of_kind(objects, "ResourceClaimTemplate")}
    claims = {o["metadata"]["name"] for o in of_kind(objects, "ResourceClaim")}
    specs = list(pod_specs(objects))
    assert specs, "an example shows a workload using its claims"
    for spec in specs:
        for ref in spec["resourceClaims"]:
            assert ref.get("resourceClaimTemplateName") in templates or ref.get("resourceClaimName") in claims, ref
        used = {c["name"] for container in spec["containers"] for c in container["resources"].get("claims", [])}
        assert used == {ref["name"] for ref in spec["resourceClaims"]}


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_claims_use_chart_classes_valid_selectors_and_configs(path: Path) -> None:
    from driver.dra.cel import compile_selector
    from driver.dra.configs import decode_config

    chart_classes = {o["metadata"]["name"] for o in of_kind(render(), "DeviceClass")}
    for spec in claim_specs(load_manifests(path)):
        for request in spec["devices"]["requests"]:
            exactly = request["exactly"]
            assert exactly["deviceClassName"] in chart_classes
            for selector in exactly.get("selectors", []):
                compile_selector(selector["cel"]["expression"])
        names = {r["name"] for r in spec["devices"]["requests"]}
        for config in spec["devices"].get("config", []):
            assert set(config["requests"]) <= names
            assert config["opaque"]["driver"] == "gpu.nvidia.com"
            decode_config(config["opaque"]["parameters"])


NVIDIA_FILES = [p for p in FILES if p.parent.name == "nvidia-compatible"]
OUR_FILES = [p for p in FILES if p.parent.name == "gpu-dra"]


@pytest.mark.parametrize("path", NVIDIA_FILES, ids=_ids(NVIDIA_FILES))
def test_nvidia_compatible_examples_use_only_what_nvidias_driver_knows(path: Path) -> None:
    objects = load_manifests(path)
    for spec in claim_specs(objects):
        for request in spec["devices"]["requests"]:
            assert request["exactly"]["deviceClassName"] in NVIDIA_CLASSES
            assert "capacity" not in request["exactly"]
        for config in spec["devices"].get("config", []):
            assert config["opaque"]["parameters"]["kind"] in NVIDIA_KINDS
    for spec in pod_specs(objects):
        assert "schedulerName" not in spec, "kube-scheduler must be able to place it"


@pytest.mark.parametrize("path", OUR_FILES, ids=_ids(OUR_FILES))
def test_gpu_dra_examples_ask_for_the_packing_scheduler(path: Path) -> None:
    (controller,) = of_kind(render(), "Deployment")
    scheduler = next(a for a in controller["spec"]["template"]["spec"]["containers"][0]["args"]
                     if a.startswith("--scheduler-name=")).split("=", 1)[1]
    for spec in pod_specs(load_manifests(path)):
        assert spec["schedulerName"] == scheduler


def test_spread_example_uses_the_schedulers_annotation() -> None:
    from driver.scheduler.packing.scoring import ANNOTATION, check_strategy

    (deployment,) = of_kind(load_manifests(EXAMPLES_DIR / "gpu-dra/spread-inference.yaml"), "Deployment")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert check_strategy(annotations[ANNOTATION], ANNOTATION) == "spread"
    assert deployment["spec"]["replicas"] == 4
