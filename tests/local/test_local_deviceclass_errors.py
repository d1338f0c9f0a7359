"""DeviceClasses with fields the kind does not have are refused whole, every cause in one 422, and
the usual mistakes (a device-plugin era `driver:`/`parameters:`, untyped opaque parameters) name
the fix; through kubectl apply and the official client against the local API server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from driver.local import validation
from driver.local.server import ApiServer
from local_helpers import kubectl

SEED = """\
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {name: gpu-timeslice}
spec:
  driver: nvidia.com/gpu
  parameters:
    sharing: {strategy: TimeSlicing, replicas: 4}
"""

GOOD = """\
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {name: gpu-timeslice}
spec:
  selectors:
  - cel: {expression: "device.driver == 'gpu.nvidia.com'"}
  config:
  - opaque:
      driver: gpu.nvidia.com
      parameters:
        apiVersion: resource.nvidia.com/v1beta1
        kind: GpuConfig
        sharing: {strategy: TimeSlicing}
"""


def _classes(dra: client.ResourceV1Api) -> list[str]:
    return [item["metadata"]["name"]
            for item in json.loads(dra.list_device_class(_preload_content=False).data)["items"]]


# --- the rules, as pure functions ----------------------------------------------------------------

def test_seed_class_has_both_causes_with_their_fixes() -> None:
    causes = dict(validation.validate_device_class(yaml.safe_load(SEED)))
    assert set(causes) == {"spec.driver", "spec.parameters"}
    assert "device.driver == 'gpu.nvidia.com'" in causes["spec.driver"]
    assert "spec.selectors" in causes["spec.driver"] and "not nvidia.com/gpu" in causes["spec.driver"]
    for fact in ("spec.config", "opaque", "apiVersion: resource.nvidia.com/v1beta1", "kind: GpuConfig",
                 "strategy: TimeSlicing", "replica.gpu.nvidia.com", "sharing mode"):
        assert fact in causes["spec.parameters"], fact


def test_correct_class_and_the_drivers_own_classes_are_valid() -> None:
    from driver.devices.classes import device_classes

    assert validation.validate_device_class(yaml.safe_load(GOOD)) == []
    assert validation.validate_device_class({"spec": {}}) == []
    assert validation.validate_device_class({}) == []
    for cls in device_classes():
        assert validation.validate_device_class(cls) == [], cls["metadata"]["name"]


@pytest.mark.parametrize("spec, field, words", [
    ({"selectors": [{"expression": "true"}]}, "spec.selectors[0].expression", "{cel: {expression"),
    ({"selectors": [{"cel": {"expression": "true", "lang": "cel"}}]}, "spec.selectors[0].cel.lang", "expression"),
    ({"config": [{"driver": "gpu.nvidia.com", "parameters": {}}]}, "spec.config[0].driver", "{opaque:"),
    ({"config": [{"requests": ["r"], "opaque": {"driver": "x.example.com", "parameters": {"a": 1}}}]},
     "spec.config[0].requests", "ResourceClaim"),
    ({"config": [{"opaque": {"driver": "x.example.com", "parameters": {}, "kind": "K"}}]},
     "spec.config[0].opaque.kind", "driver, parameters"),
    ({"selector": []}, "spec.selector", "selectors, config, extendedResourceName"),
])
def test_unknown_fields_anywhere_in_the_spec(spec: dict, field: str, words: str) -> None:
    causes = dict(validation.validate_device_class({"spec": spec}))
    assert field in causes, causes
    assert causes[field].startswith(f'unknown field "{field}"') and words in causes[field]


def test_opaque_parameters_of_our_driver_need_api_version_and_kind() -> None:
    def cfg(driver: str, params: dict) -> dict:
        return {"spec": {"config": [{"opaque": {"driver": driver, "parameters": params}}]}}

    causes = dict(validation.validate_device_class(cfg("gpu.nvidia.com", {"sharing": {"strategy": "TimeSlicing"}})))
    assert list(causes) == ["spec.config[0].opaque.parameters"]
    assert "apiVersion and kind" in causes["spec.config[0].opaque.parameters"]
    assert "apiVersion: resource.nvidia.com/v1beta1, kind: GpuConfig" in causes["spec.config[0].opaque.parameters"]
    only_kind = dict(validation.validate_device_class(cfg("gpu.nvidia.com", {"kind": "GpuConfig"})))
    assert only_kind["spec.config[0].opaque.parameters"].startswith("Required value: apiVersion:")
    # another driver's parameters are its own business, as in Kubernetes
    assert validation.validate_device_class(cfg("other.example.com", {"x": 1})) == []
    wrong = dict(validation.validate_device_class(cfg("nvidia.com/gpu", {"kind": "GpuConfig", "apiVersion": "v"})))
    assert "not nvidia.com/gpu" in wrong["spec.config[0].opaque.driver"]


def test_unknown_and_semantic_causes_come_together() -> None:
    spec = {"driver": "gpu.nvidia.com", "selectors": [{"cel": {"expression": "device.driver == "}}],
            "config": [{"opaque": {"driver": "gpu.nvidia.com", "parameters": {"sharing": {}}}}]}
    assert sorted(f for f, _ in validation.validate_device_class({"spec": spec})) == [
        "spec.config[0].opaque.parameters", "spec.driver", "spec.selectors[0].cel.expression"]


# --- through the official client ------------------------------------------------------------------
# The typed client (pydantic models) refuses to send fields DeviceClassSpec lacks, so bodies that carry
# them go through the same client's ApiClient.call_api, as `kubectl` or a dynamic client would send them.

def _send(kube: client.ApiClient, method: str, path: str, body: dict, query: str = "",
          ctype: str = "application/json") -> tuple[int, dict]:
    url = f"{kube.configuration.host}/apis/resource.k8s.io/v1/deviceclasses{path}{query}"
    resp = kube.call_api(method, url, header_params={"Content-Type": ctype}, body=body)
    resp.read()
    return resp.status, json.loads(resp.data)


def _raw_causes(status: int, body: dict) -> dict[str, str]:
    assert status == 422 and body["reason"] == "Invalid", body
    return {c["field"]: c["message"] for c in body["details"]["causes"]}


def test_typed_client_refuses_the_seed_before_sending(dra: client.ResourceV1Api) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="spec.driver"):
        dra.create_device_class(yaml.safe_load(SEED))


@pytest.mark.parametrize("query", ["", "?fieldValidation=Strict", "?fieldValidation=Warn", "?fieldValidation=Ignore",
                                   "?dryRun=All"])
def test_client_create_of_seed_is_refused_whole(kube: client.ApiClient, dra: client.ResourceV1Api,
                                                query: str) -> None:
    status, body = _send(kube, "POST", "", yaml.safe_load(SEED), query)
    causes = _raw_causes(status, body)
    assert set(causes) == {"spec.driver", "spec.parameters"}
    assert body["message"].startswith('DeviceClass.resource.k8s.io "gpu-timeslice" is invalid: spec.driver: ')
    assert "gpu-timeslice" not in _classes(dra)


def test_client_correct_class_is_stored(dra: client.ResourceV1Api) -> None:
    made = json.loads(dra.create_device_class(yaml.safe_load(GOOD), field_validation="Strict",
                                              _preload_content=False).data)
    assert made["spec"]["config"][0]["opaque"]["parameters"]["kind"] == "GpuConfig"
    assert "gpu-timeslice" in _classes(dra)


def test_client_update_and_patch_cannot_add_unknown_fields(kube: client.ApiClient, dra: client.ResourceV1Api) -> None:
    dra.create_device_class(yaml.safe_load(GOOD), _preload_content=False)
    current = json.loads(dra.read_device_class("gpu-timeslice", _preload_content=False).data)
    bad = dict(current, spec=dict(current["spec"], driver="nvidia.com/gpu"))
    assert list(_raw_causes(*_send(kube, "PUT", "/gpu-timeslice", bad))) == ["spec.driver"]
    patch = {"spec": {"parameters": {"replicas": 4}}}
    merge = _send(kube, "PATCH", "/gpu-timeslice", patch, ctype="application/merge-patch+json")
    assert list(_raw_causes(*merge)) == ["spec.parameters"]
    stored = json.loads(dra.read_device_class("gpu-timeslice", _preload_content=False).data)
    assert stored["spec"] == current["spec"]
    assert stored["metadata"]["resourceVersion"] == current["metadata"]["resourceVersion"]


# --- through kubectl 1.32 ---------------------------------------------------------------------------

def _kubeconfig(api: ApiServer) -> Path:
    assert api.kubeconfig_path is not None
    return Path(api.kubeconfig_path)


def test_kubectl_apply_of_seed_prints_every_cause_and_stores_nothing(api: ApiServer) -> None:
    out = kubectl(_kubeconfig(api), "apply", "-f", "-", stdin=SEED, check=False)
    assert out.returncode != 0
    assert 'The DeviceClass "gpu-timeslice" is invalid' in out.stderr, out.stderr
    for words in ("spec.driver", "device.driver == 'gpu.nvidia.com'", "spec.parameters",
                  "kind: GpuConfig", "replica.gpu.nvidia.com"):
        assert words in out.stderr, (words, out.stderr)
    got = kubectl(_kubeconfig(api), "get", "deviceclass", "gpu-timeslice", check=False)
    assert got.returncode != 0 and "NotFound" in got.stderr


def test_kubectl_apply_of_correct_class_works_and_reapply_of_seed_is_refused(api: ApiServer) -> None:
    out = kubectl(_kubeconfig(api), "apply", "-f", "-", stdin=GOOD)
    assert "deviceclass.resource.k8s.io/gpu-timeslice created" in out.stdout
    before = json.loads(kubectl(_kubeconfig(api), "get", "deviceclass", "gpu-timeslice", "-o", "json").stdout)
    again = kubectl(_kubeconfig(api), "apply", "-f", "-", stdin=SEED, check=False)
    assert again.returncode != 0 and "spec.driver" in again.stderr and "spec.parameters" in again.stderr
    after = json.loads(kubectl(_kubeconfig(api), "get", "deviceclass", "gpu-timeslice", "-o", "json").stdout)
    assert after["spec"] == before["spec"]
