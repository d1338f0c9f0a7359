"""The chart's DeviceClasses are the driver's own (driver.devices.classes), and each one selects
exactly the devices of its type among what the plugin publishes in every sharing mode."""

from __future__ import annotations

from typing import Any

import pytest

from deploy_support import of_kind, render
from value_sets import RENAMED_DRIVER


def _without_labels(classes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**c, "metadata": {"name": c["metadata"]["name"]}} for c in classes]


@pytest.mark.parametrize("driver", ["gpu.nvidia.com", "gpu.example.com", "dra.example.org"])
def test_chart_classes_equal_the_drivers_classes(driver: str) -> None:
    from driver.devices.classes import device_classes

    rendered = _without_labels(of_kind(render({"driverName": driver}), "DeviceClass"))
    assert sorted(rendered, key=lambda c: c["metadata"]["name"]) == sorted(
        device_classes(driver), key=lambda c: c["metadata"]["name"])


def test_classes_can_be_renamed_disabled_and_lose_the_extended_resource() -> None:
    rendered = {c["metadata"]["name"]: c for c in of_kind(render(RENAMED_DRIVER), "DeviceClass")}
    assert sorted(rendered) == ["fractional.gpu.example.com", "gpu.example.com", "mig-devices.example.com"]
    assert "extendedResourceName" not in rendered["gpu.example.com"]["spec"]
    assert "gpu.example.com" in rendered["mig-devices.example.com"]["spec"]["selectors"][0]["cel"]["expression"]


MODES = [
    ({"sharing": {"mode": "whole"}}, "a100-80gb-x8", {"gpu"}),
    ({"sharing": {"mode": "mig"}}, "a100-80gb-mig", {"mig"}),
    ({"sharing": {"mode": "timeslicing", "replicas": 3}}, "l4-x4", {"replica"}),
    ({"sharing": {"mode": "fractional"}}, "h100-x8", {"fractional"}),
    ({"sharing": {"mode": "dynamic", "replicas": 2}}, "a100-80gb-x8", {"gpu", "mig", "replica"}),
]


@pytest.mark.parametrize("node_config,mock,types", MODES, ids=[m[0]["sharing"]["mode"] for m in MODES])
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
    for device_class in of_kind(render(), "DeviceClass"):
        (selector,) = device_class["spec"]["selectors"]
        compiled = compile_selector(selector["cel"]["expression"])
        for device in devices:
            kind = device.attributes["gpu.nvidia.com"]["type"]
            wanted = device_class["metadata"]["name"].split(".")[0] == kind  # replica.gpu.nvidia.com -> replica
            assert matches(compiled, device) is wanted, (device_class["metadata"]["name"], device.name)
            seen.add(kind)
    assert seen == types


def test_static_manifests_equal_the_drivers_classes() -> None:
    from deploy_support import REPO, load_manifests
    from driver.devices.classes import device_classes

    assert load_manifests(REPO / "deploy" / "deviceclasses" / "gpu.nvidia.com.yaml") == device_classes("gpu.nvidia.com")
