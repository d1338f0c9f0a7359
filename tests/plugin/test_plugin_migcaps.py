"""MIG capability device nodes (/dev/nvidia-caps) in the CDI specs of prepared MIG devices, static
and dynamic, with the mock's table, a configured file, a missing file, and a host /dev elsewhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import jsonschema
import pytest
import referencing

from driver.plugin import cdi
from driver.plugin import checkpoint as ckpt
from driver.plugin.driver import PluginOptions

from plugin_harness import create_claim, result

NVML = "mock:a100-80gb-mixed"  # GPUs 4-6 with static MIG layouts
CONFIG = {"sharing": {"mode": "whole"}, "gpus": {"3": {"mode": "dynamic"}}}
SCHEMA_DIR = Path(__file__).parents[1] / "data" / "cdi"
CONTROL = ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"]
STATIC = "gpu-4-mig-1g10gb-19-2"
DYNAMIC = "gpu-3-mig-3g40gb-9-4"


def _validator() -> jsonschema.Draft7Validator:
    defs = referencing.Resource.from_contents(json.loads((SCHEMA_DIR / "defs.json").read_text()),
                                              default_specification=referencing.jsonschema.DRAFT7)
    return jsonschema.Draft7Validator(json.loads((SCHEMA_DIR / "schema.json").read_text()),
                                      registry=referencing.Registry().with_resource("defs.json", defs))


VALIDATOR = _validator()


def uid(c: dict[str, Any]) -> str:
    return c["metadata"]["uid"]


def read_spec(node: Any, claim: dict[str, Any]) -> dict[str, Any]:
    spec = json.loads(cdi.spec_path(node.cdi_root, uid(claim)).read_text())
    assert sorted(e.message for e in VALIDATOR.iter_errors(spec)) == []
    return spec


def device_nodes(spec: dict[str, Any], claim: dict[str, Any], device: str) -> list[Any]:
    entry = next(d for d in spec["devices"] if d["name"] == cdi.cdi_name(uid(claim), device))
    return entry["containerEdits"].get("deviceNodes", [])


def expected_caps(node: Any, gpu: int, mig_uuid: str) -> list[dict[str, str]]:
    """The two nodes read off the mock's mig-minors text for the instance NVML reports."""
    backend = node.plugin.backend
    inst = next(m for m in backend.mig_instances(gpu) if m.uuid == mig_uuid)
    minors = dict(line.split() for line in backend.mig_minors().splitlines())
    names = [f"gpu{gpu}/gi{inst.gi_id}/access", f"gpu{gpu}/gi{inst.gi_id}/ci{inst.ci_id}/access"]
    return [{"path": f"/dev/nvidia-caps/nvidia-cap{minors[n]}"} for n in names]


@pytest.fixture
def node(start_node: Callable[..., Any]) -> Any:
    return start_node(CONFIG, nvml=NVML, device_nodes=True)


def test_static_mig_spec_names_its_two_cap_nodes(node: Any) -> None:
    claim = create_claim(node.kube, "mig", [result(STATIC, "mig"), result("gpu-0", "gpu")])
    assert node.kubelet.prepare([claim]).claims[uid(claim)].error == ""
    spec = read_spec(node, claim)
    mig_uuid = node.plugin.devices()[STATIC].uuid
    caps = expected_caps(node, 4, mig_uuid)
    assert caps[0] != caps[1]
    assert device_nodes(spec, claim, STATIC) == [{"path": "/dev/nvidia4"}, *caps]
    assert device_nodes(spec, claim, "gpu-0") == [{"path": "/dev/nvidia0"}]  # whole GPU: no caps
    assert spec["containerEdits"]["deviceNodes"] == [{"path": p} for p in CONTROL]
    assert node.kubelet.unprepare([claim]).claims[uid(claim)].error == ""
    assert node.cdi_files() == []


def test_two_static_mig_devices_of_one_gpu_get_different_caps(node: Any) -> None:
    other = "gpu-6-mig-1g10gb-19-1"
    claim = create_claim(node.kube, "two", [result("gpu-6-mig-1g10gb-19-0", "mig"), result(other, "mig")])
    assert node.kubelet.prepare([claim]).claims[uid(claim)].error == ""
    spec = read_spec(node, claim)
    devs = node.plugin.devices()
    first = device_nodes(spec, claim, "gpu-6-mig-1g10gb-19-0")
    second = device_nodes(spec, claim, other)
    assert first[1:] == expected_caps(node, 6, devs["gpu-6-mig-1g10gb-19-0"].uuid)
    assert second[1:] == expected_caps(node, 6, devs[other].uuid)
    assert not {n["path"] for n in first[1:]} & {n["path"] for n in second[1:]}


def test_nvml_asked_for_instance_ids_once_per_gpu(node: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    mig = node.plugin.state.mig
    asked: list[int] = []
    real_ids = mig.ids
    monkeypatch.setattr(mig, "ids", lambda gpu: asked.append(gpu) or real_ids(gpu))
    claim = create_claim(node.kube, "three", [result("gpu-6-mig-1g10gb-19-0", "mig"),
                                              result("gpu-6-mig-1g10gb-19-1", "mig"), result(STATIC, "mig")])
    assert node.kubelet.prepare([claim]).claims[uid(claim)].error == ""
    assert sorted(asked) == [4, 6]


def test_mig_device_unknown_to_nvml_is_named(node: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node.plugin.state.mig, "ids", lambda gpu: {})
    claim = create_claim(node.kube, "gone", [result(STATIC, "mig")])
    err = node.kubelet.prepare([claim]).claims[uid(claim)].error
    mig_uuid = node.plugin.devices()[STATIC].uuid
    assert f"device {STATIC}: MIG device {mig_uuid} not found on GPU 4, so its GPU/compute-instance ids" in err
    assert node.cdi_files() == []


def test_dynamic_mig_spec_uses_the_ids_of_the_created_instance(node: Any) -> None:
    backend = node.plugin.backend
    # Occupy the GPU's first instance id so the claim's instance cannot get it by default.
    backend.set_mig_mode(3, True)
    first = backend.create_mig_instance(3, "3g.40gb", 0)
    claim = create_claim(node.kube, "dyn", [result(DYNAMIC, "mig")])
    assert node.kubelet.prepare([claim]).claims[uid(claim)].error == ""
    created = next(m for m in backend.mig_instances(3) if m.placement_start == 4)
    assert created.gi_id != first.gi_id
    spec = read_spec(node, claim)
    assert device_nodes(spec, claim, DYNAMIC) == [{"path": "/dev/nvidia3"}, *expected_caps(node, 3, created.uuid)]
    assert node.kubelet.unprepare([claim]).claims[uid(claim)].error == ""
    assert [m.uuid for m in backend.mig_instances(3)] == [first.uuid]


def test_configured_file_and_host_dev_root(start_node: Callable[..., Any], tmp_path: Path) -> None:
    table = tmp_path / "mig-minors"
    node = start_node(CONFIG, nvml=NVML, device_nodes=True, mig_minors=str(table), dev_root="/run/nvidia/driver/dev")
    inst = next(m for m in node.plugin.backend.mig_instances(4) if m.uuid == node.plugin.devices()[STATIC].uuid)
    gi, ci = inst.gi_id, inst.ci_id
    table.write_text(f"config 1\nmonitor 2\ngpu4/gi{gi}/access 40\ngpu4/gi{gi}/ci{ci}/access 41\n")
    claim = create_claim(node.kube, "mig", [result(STATIC, "mig")])
    assert node.kubelet.prepare([claim]).claims[uid(claim)].error == ""
    spec = read_spec(node, claim)
    host = "/run/nvidia/driver/dev"
    assert device_nodes(spec, claim, STATIC) == [
        {"path": "/dev/nvidia4", "hostPath": f"{host}/nvidia4"},
        {"path": "/dev/nvidia-caps/nvidia-cap40", "hostPath": f"{host}/nvidia-caps/nvidia-cap40"},
        {"path": "/dev/nvidia-caps/nvidia-cap41", "hostPath": f"{host}/nvidia-caps/nvidia-cap41"},
    ]
    assert spec["containerEdits"]["deviceNodes"][0] == {"path": "/dev/nvidiactl", "hostPath": f"{host}/nvidiactl"}
    assert spec["cdiVersion"] == "0.5.0"


def test_missing_file_fails_only_mig_claims_and_leaves_nothing(start_node: Callable[..., Any], tmp_path: Path) -> None:
    absent = tmp_path / "no-such" / "mig-minors"
    node = start_node(CONFIG, nvml=NVML, device_nodes=True, mig_minors=str(absent))
    static = create_claim(node.kube, "static", [result(STATIC, "mig")])
    dynamic = create_claim(node.kube, "dyn", [result(DYNAMIC, "mig")])
    whole = create_claim(node.kube, "whole", [result("gpu-0")])
    resp = node.kubelet.prepare([static, dynamic, whole]).claims
    for claim in (static, dynamic):
        assert f"MIG capability table {absent}: cannot read: No such file or directory" in resp[uid(claim)].error
        assert "default/" + claim["metadata"]["name"] in resp[uid(claim)].error
    assert resp[uid(whole)].error == ""
    assert node.cdi_files() == [cdi.spec_path(node.cdi_root, uid(whole)).name]
    assert node.plugin.backend.mig_instances(3) == []  # the dynamic instance was rolled back
    assert set(ckpt.load(node.state_dir).claims) == {uid(whole)}


def test_entry_missing_from_the_file_is_named(start_node: Callable[..., Any], tmp_path: Path) -> None:
    table = tmp_path / "mig-minors"
    table.write_text("config 1\nmonitor 2\n")
    node = start_node(CONFIG, nvml=NVML, device_nodes=True, mig_minors=str(table))
    inst = next(m for m in node.plugin.backend.mig_instances(4) if m.uuid == node.plugin.devices()[STATIC].uuid)
    claim = create_claim(node.kube, "mig", [result(STATIC, "mig")])
    err = node.kubelet.prepare([claim]).claims[uid(claim)].error
    assert f"device {STATIC} (GPU minor 4, GPU instance {inst.gi_id}, compute instance {inst.ci_id})" in err
    assert f"{table}: no entry 'gpu4/gi{inst.gi_id}/access'" in err
    assert node.cdi_files() == []


def test_mock_mode_without_device_nodes_names_none(start_node: Callable[..., Any]) -> None:
    """The default with mock NVML (local cluster, kind e2e on CPUs): the host has no such nodes."""
    node = start_node(CONFIG, nvml=NVML)
    claim = create_claim(node.kube, "mig", [result(STATIC, "mig")])
    assert node.kubelet.prepare([claim]).claims[uid(claim)].error == ""
    spec = read_spec(node, claim)
    assert device_nodes(spec, claim, STATIC) == [] and "deviceNodes" not in spec["containerEdits"]


def test_options_defaults_and_bad_values() -> None:
    assert PluginOptions(node_name="n").device_nodes is True
    assert PluginOptions(node_name="n", nvml="mock:T4").device_nodes is False
    with pytest.raises(ValueError, match=r"dev_root: expected an absolute path \(the host's /dev\), got 'dev'"):
        PluginOptions(node_name="n", dev_root="dev")
    with pytest.raises(ValueError, match=r"mig_minors: expected a file path \(or None for the default\), got ''"):
        PluginOptions(node_name="n", mig_minors="")


def test_host_path_needs_cdi_0_5_0() -> None:
    edits = [cdi.DeviceEdits("gpu-0", device_nodes=["/dev/nvidia0"])]
    plain = cdi.build_spec("abc", edits)
    assert plain["cdiVersion"] == "0.3.0" and plain["devices"][0]["containerEdits"]["deviceNodes"] == [
        {"path": "/dev/nvidia0"}]
    moved = cdi.build_spec("abc", edits, dev_root="/host/dev/")
    assert moved["cdiVersion"] == "0.5.0"
    assert moved["devices"][0]["containerEdits"]["deviceNodes"] == [
        {"path": "/dev/nvidia0", "hostPath": "/host/dev/nvidia0"}]
    assert sorted(e.message for e in VALIDATOR.iter_errors(moved)) == []
