"""The chart's DeviceClasses are the driver's own (driver.devices.classes), each one selects
exactly the devices it is meant for among what the plugin publishes in every sharing mode, and
the extended resource names pods written for NVIDIA's device plugin use (KEP-5004) resolve to
exactly one class each."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from deploy_support import of_kind, render
from value_sets import RENAMED_DRIVER

PROFILE_DIR = Path(__file__).resolve().parents[2] / "driver" / "nvml" / "profiles"


def _without_labels(classes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**c, "metadata": {"name": c["metadata"]["name"]}} for c in classes]


def _known_profiles() -> set[str]:
    """MIG profile names of every GPU model file, read straight from the YAML."""
    names: set[str] = set()
    for path in PROFILE_DIR.glob("*.yaml"):
        model = yaml.safe_load(path.read_text())
        names |= {p["name"] for p in ((model.get("mig") or {}).get("profiles") or [])}
    return names


@pytest.mark.parametrize("driver", ["gpu.nvidia.com", "gpu.example.com", "dra.example.org"])
def test_chart_classes_equal_the_drivers_classes(driver: str) -> None:
    from driver.devices.classes import device_classes

    rendered = _without_labels(of_kind(render({"driverName": driver}), "DeviceClass"))
    assert sorted(rendered, key=lambda c: c["metadata"]["name"]) == sorted(
        device_classes(driver), key=lambda c: c["metadata"]["name"])


def test_classes_can_be_renamed_disabled_and_lose_the_extended_resource() -> None:
    rendered = {c["metadata"]["name"]: c for c in of_kind(render(RENAMED_DRIVER), "DeviceClass")}
    profiles = {n for n in rendered if n.startswith("mig-") and n != "mig-devices.example.com"}
    assert sorted(set(rendered) - profiles) == ["fractional.gpu.example.com", "gpu.example.com", "mig-devices.example.com"]
    # extendedResourceName "" on the gpu class: no class serves example.com/gpu (no unit class)
    assert "extendedResourceName" not in rendered["gpu.example.com"]["spec"]
    assert all(c["spec"].get("extendedResourceName") != "example.com/gpu" for c in rendered.values())
    assert "gpu.example.com" in rendered["mig-devices.example.com"]["spec"]["selectors"][0]["cel"]["expression"]
    # the per-profile MIG classes come with the (renamed) mig class, named under the driver's domain
    assert rendered["mig-1g.10gb.example.com"]["spec"]["extendedResourceName"] == "example.com/mig-1g.10gb"
    assert len(profiles) == len(_known_profiles())


def test_no_mig_profile_classes_without_the_mig_class() -> None:
    rendered = {c["metadata"]["name"] for c in of_kind(render({"deviceClasses": {"mig": {"enabled": False}}}),
                                                       "DeviceClass")}
    assert not any(n.startswith("mig") for n in rendered)
    assert "unit.gpu.nvidia.com" in rendered


def test_no_unit_class_without_the_gpu_class() -> None:
    rendered = {c["metadata"]["name"] for c in of_kind(render({"deviceClasses": {"gpu": {"enabled": False}}}),
                                                       "DeviceClass")}
    assert "unit.gpu.nvidia.com" not in rendered and "gpu.nvidia.com" not in rendered
    assert "mig-1g.10gb.nvidia.com" in rendered


def test_unit_class_takes_a_custom_extended_resource_and_the_gpu_class_name() -> None:
    values = {"deviceClasses": {"gpu": {"enabled": True, "name": "whole.example.org",
                                        "extendedResourceName": "example.org/accelerator"}}}
    rendered = {c["metadata"]["name"]: c for c in of_kind(render(values), "DeviceClass")}
    assert rendered["unit.whole.example.org"]["spec"]["extendedResourceName"] == "example.org/accelerator"


def test_every_known_mig_profile_has_a_class_with_the_device_plugin_name() -> None:
    from driver.devices.classes import mig_profiles

    profiles = _known_profiles()
    assert set(mig_profiles()) == profiles
    names = {c["spec"].get("extendedResourceName"): c["metadata"]["name"] for c in of_kind(render(), "DeviceClass")}
    for profile in profiles:
        token = profile.replace("+", ".")
        assert names[f"nvidia.com/mig-{token}"] == f"mig-{token}.nvidia.com"
    assert names["nvidia.com/mig-1g.10gb.me"] == "mig-1g.10gb.me.nvidia.com"


def test_each_extended_resource_name_is_valid_and_held_by_one_class() -> None:
    from driver.scheduler.plugins.extendedresources import is_extended_name, mapping

    classes = of_kind(render(), "DeviceClass")
    held = [c["spec"]["extendedResourceName"] for c in classes if "extendedResourceName" in c["spec"]]
    assert len(held) == len(set(held)) == len(_known_profiles()) + 1
    assert all(is_extended_name(n) for n in held)
    by_resource = mapping({c["metadata"]["name"]: c for c in classes})
    assert by_resource["nvidia.com/gpu"] == "unit.gpu.nvidia.com"
    assert by_resource["nvidia.com/mig-3g.40gb"] == "mig-3g.40gb.nvidia.com"
    # whole GPUs only, through the gpu class's implicit name
    assert by_resource["deviceclass.resource.kubernetes.io/gpu.nvidia.com"] == "gpu.nvidia.com"


@pytest.mark.parametrize("version", ["1.34", "1.35"])
def test_every_class_passes_the_api_schema_and_the_local_api_servers_validation(version: str) -> None:
    from deploy_support import schema_errors
    from driver.local.validation import validate_dra

    for device_class in of_kind(render(), "DeviceClass"):
        assert schema_errors(device_class, version) == [], device_class["metadata"]["name"]
        assert validate_dra("DeviceClass", device_class, None) == [], device_class["metadata"]["name"]


def _wanted(name: str) -> Callable[[Any], bool]:
    """Which published devices class `name` is meant to select, written from its name."""
    def kind(device: Any) -> str:
        return device.attributes["gpu.nvidia.com"]["type"]

    if name == "unit.gpu.nvidia.com":
        return lambda d: kind(d) in ("gpu", "replica")
    if name.startswith("mig-") and name.endswith(".nvidia.com"):
        token = name[len("mig-"):-len(".nvidia.com")]
        return lambda d: kind(d) == "mig" and d.attributes["gpu.nvidia.com"]["profile"].replace("+", ".") == token
    first = name.split(".")[0]  # replica.gpu.nvidia.com -> replica
    return lambda d: kind(d) == first


MODES = [
    ({"sharing": {"mode": "whole"}}, "a100-80gb-x8", {"gpu"}),
    ({"sharing": {"mode": "mig"}}, "a100-80gb-mig", {"mig"}),
    ({"sharing": {"mode": "timeslicing", "replicas": 3}}, "l4-x4", {"replica"}),
    ({"sharing": {"mode": "fractional"}}, "h100-x8", {"fractional"}),
    ({"sharing": {"mode": "dynamic", "replicas": 2}}, "a100-80gb-x8", {"gpu", "mig", "replica"}),
    ({"sharing": {"mode": "dynamic"}}, "h100-mig", {"gpu", "mig"}),
]


@pytest.mark.parametrize("node_config,mock,types", MODES, ids=[f"{m[0]['sharing']['mode']}-{m[1]}" for m in MODES])
def test_each_class_selects_exactly_its_devices(node_config: dict[str, Any], mock: str, types: set[str]) -> None:
    from driver.allocator.inventory import build_inventory
    from driver.devices.inventory import discover
    from driver.devices.nodeconfig import parse_node_config
    from driver.devices.slices import build_slices
    from driver.dra.cel import compile_selector, matches
    from driver.nvml import open_backend

    backend = open_backend(f"mock:{mock}", "node-a")
    backend.init()
    try:
        slices = build_slices(discover(backend, parse_node_config(node_config), "node-a"), "node-a")
    finally:
        backend.shutdown()
    devices = build_inventory("node-a", slices).devices
    assert devices
    seen: set[str] = set()
    profile_classes: dict[str, int] = {d.name: 0 for d in devices}
    for device_class in of_kind(render(), "DeviceClass"):
        name = device_class["metadata"]["name"]
        (selector,) = device_class["spec"]["selectors"]
        compiled = compile_selector(selector["cel"]["expression"])
        wanted = _wanted(name)
        for device in devices:
            chosen = matches(compiled, device)
            assert chosen is wanted(device), (name, device.name)
            seen.add(device.attributes["gpu.nvidia.com"]["type"])
            if chosen and name.startswith("mig-"):
                profile_classes[device.name] += 1
    assert seen == types
    # every MIG device has exactly one nvidia.com/mig-<profile> class
    for device in devices:
        expected = 1 if device.attributes["gpu.nvidia.com"]["type"] == "mig" else 0
        assert profile_classes[device.name] == expected, device.name


def test_static_manifests_equal_the_drivers_classes() -> None:
    from deploy_support import REPO, load_manifests
    from driver.devices.classes import device_classes

    assert load_manifests(REPO / "deploy" / "deviceclasses" / "gpu.nvidia.com.yaml") == device_classes("gpu.nvidia.com")
