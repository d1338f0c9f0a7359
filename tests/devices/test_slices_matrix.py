"""Every shipped mock node x every sharing mode x both counter layouts gives slices that pass
the package validator and the official schema (kubernetes-validate, strict)."""

from __future__ import annotations

import kubernetes_validate
import pytest

from driver.devices.slices import build_slices
from driver.devices.apinames import is_dns_label
from driver.devices.validate import validate_pool

from .conftest import schema_errors
from .helpers import MODES, NODE_FILES, inventory


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("node_file", NODE_FILES)
def test_slices_valid_for_both_layouts(node_file, mode):
    inv = inventory(node_file, MODES[mode])
    names = [d.name for d in inv.devices]
    assert len(names) == len(set(names)) and all(is_dns_label(n) for n in names)
    for layout in ("1.34", "1.35"):
        slices = build_slices(inv, "node-a", "3f1c0f0e-0000-4000-8000-000000000001", None, 7, layout)
        assert validate_pool(slices, layout) == []
        for obj in slices:
            assert schema_errors(obj, layout) == [], obj["metadata"]["name"]
        published = [d["name"] for s in slices for d in s["spec"].get("devices", [])]
        assert sorted(published) == sorted(names)
        assert {s["spec"]["pool"]["resourceSliceCount"] for s in slices} == {len(slices)}
        assert {s["spec"]["pool"]["generation"] for s in slices} == {7}


def test_cached_validator_agrees_with_kubernetes_validate():
    inv = inventory("a100-80gb-mixed.yaml", MODES["fractional"])
    obj = build_slices(inv, "node-a", None, None, 1, "1.35")[0]
    for version in ("1.34", "1.35"):
        kubernetes_validate.validate(obj, version, strict=True)
    broken = {**obj, "spec": {**obj["spec"], "devices": [{**obj["spec"]["devices"][0], "colour": "red"}]}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.35", strict=True)
    assert any("colour" in e for e in schema_errors(broken, "1.35"))
