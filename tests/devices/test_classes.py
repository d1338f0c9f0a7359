"""DeviceClasses: NVIDIA-compatible names and selectors that match the published devices."""

from __future__ import annotations

import pytest

from driver.devices.classes import mig_profiles, class_name, device_classes
from driver.dra.cel import compile_selector, device_input, evaluate

from .conftest import schema_errors
from .helpers import inventory


def test_nvidia_compatible_classes_pass_the_schema():
    classes = device_classes()
    names = [c["metadata"]["name"] for c in classes]
    assert names[:5] == ["gpu.nvidia.com", "mig.nvidia.com", "replica.gpu.nvidia.com", "fractional.gpu.nvidia.com",
                         "unit.gpu.nvidia.com"]
    # nvidia.com/gpu is held by the unit class (whole GPUs and time-slice replicas, one per unit);
    # NVIDIA's own class names keep NVIDIA's selectors
    assert all("extendedResourceName" not in c["spec"] for c in classes[:4])
    assert classes[4]["spec"]["extendedResourceName"] == "nvidia.com/gpu"
    assert [c["spec"]["extendedResourceName"] for c in classes[5:]] == [
        "nvidia.com/mig-" + p.replace("+", ".") for p in mig_profiles()]
    assert classes[0]["spec"]["selectors"][0]["cel"]["expression"] == (
        "device.driver == 'gpu.nvidia.com' && device.attributes['gpu.nvidia.com'].type == 'gpu'")
    for c in classes:
        for version in ("1.34", "1.35"):
            assert schema_errors(c, version) == []


def _matches(expression: str, driver: str, device: dict) -> bool:
    """Evaluate the class selector with the project's CEL runtime (string and int attributes suffice)."""
    attrs: dict = {}
    for key, value in device["attributes"].items():
        domain, _, name = key.rpartition("/")
        if "string" in value or "int" in value:
            attrs.setdefault(domain or driver, {})[name] = value.get("string", value.get("int"))
    result = evaluate(compile_selector(expression), device_input(driver, attrs, {}, False))
    assert isinstance(result, bool), result
    return result


@pytest.mark.parametrize("mode, kind", [("whole", "gpu"), ("mig", "mig"), ("timeslicing", "replica"), ("fractional", "fractional")])
def test_each_class_selects_exactly_its_kind(mode, kind):
    sharing = {"mode": mode, **({"replicas": 2} if mode == "timeslicing" else {})}
    inv = inventory("a100-80gb-mixed.yaml", sharing)
    by_class = {c["metadata"]["name"]: c["spec"]["selectors"][0]["cel"]["expression"] for c in device_classes()}
    expr = by_class[class_name(kind)]
    chosen = [d for d in inv.devices if _matches(expr, "gpu.nvidia.com", d.to_wire())]
    assert chosen and all(d.kind == kind for d in chosen)
    assert {d.name for d in inv.devices if d.kind == kind} == {d.name for d in chosen}


def test_other_driver_names():
    classes = device_classes("gpu.example.com")
    assert [c["metadata"]["name"] for c in classes][:2] == ["gpu.example.com", "mig.example.com"]
    assert classes[4]["metadata"]["name"] == "unit.gpu.example.com"
    assert classes[4]["spec"]["extendedResourceName"] == "example.com/gpu"
    with pytest.raises(ValueError, match="kind: expected one of"):
        class_name("tpu")
