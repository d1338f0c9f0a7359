"""resource.k8s.io objects rejected with 422 naming the field, through the official client."""

from __future__ import annotations

import copy
import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from driver.local import validation
from local_helpers import allocation, claim_body, slice_body


def _fields(exc: ApiException) -> list[str]:
    body = json.loads(exc.body)
    assert exc.status == 422 and body["reason"] == "Invalid", body
    return [c["field"] for c in body["details"]["causes"]]


def _gpu(name: str, **extra: object) -> dict:
    return {"name": name, "attributes": {"type": {"string": "gpu"}}, **extra}


def test_valid_slice_is_stored(dra: client.ResourceV1Api) -> None:
    made = dra.create_resource_slice(slice_body("s", [_gpu(f"gpu-{i}") for i in range(8)]), _preload_content=False)
    assert len(json.loads(made.data)["spec"]["devices"]) == 8


def test_bad_device_name_is_422(dra: client.ResourceV1Api) -> None:
    with pytest.raises(ApiException) as err:
        dra.create_resource_slice(slice_body("s", [_gpu("GPU_0")]), _preload_content=False)
    assert "spec.devices[0].name" in _fields(err.value)
    assert dra.list_resource_slice().items == []


def test_too_many_devices_is_422(dra: client.ResourceV1Api) -> None:
    with pytest.raises(ApiException) as err:
        dra.create_resource_slice(slice_body("s", [_gpu(f"gpu-{i}") for i in range(129)]), _preload_content=False)
    assert "spec.devices" in _fields(err.value)
    tainted = [_gpu(f"gpu-{i}", taints=[{"key": "k", "effect": "NoSchedule"}]) for i in range(65)]
    with pytest.raises(ApiException) as err:
        dra.create_resource_slice(slice_body("s", tainted), _preload_content=False)
    assert "spec.devices" in _fields(err.value)


def test_attribute_needs_exactly_one_value(dra: client.ResourceV1Api) -> None:
    device = {"name": "gpu-0", "attributes": {"type": {"string": "gpu", "int": 1}}}
    with pytest.raises(ApiException) as err:
        dra.create_resource_slice(slice_body("s", [device]), _preload_content=False)
    assert any(f.startswith("spec.devices[0].attributes") for f in _fields(err.value))


def test_claim_request_names_and_counts(dra: client.ResourceV1Api) -> None:
    with pytest.raises(ApiException) as err:
        dra.create_namespaced_resource_claim("default", claim_body("c", requests=33), _preload_content=False)
    assert "spec.devices.requests" in _fields(err.value)
    body = claim_body("c")
    body["spec"]["devices"]["requests"][0]["name"] = "Bad Name"
    body["spec"]["devices"]["requests"][0]["exactly"]["count"] = 0
    with pytest.raises(ApiException) as err:
        dra.create_namespaced_resource_claim("default", body, _preload_content=False)
    assert _fields(err.value) == ["spec.devices.requests[0].name", "spec.devices.requests[0].exactly.count"]


def test_claim_spec_is_immutable(dra: client.ResourceV1Api) -> None:
    dra.create_namespaced_resource_claim("default", claim_body("c"), _preload_content=False)
    with pytest.raises(ApiException) as err:
        dra.patch_namespaced_resource_claim("c", "default", {"spec": {"devices": {"requests": [
            {"name": "r0", "exactly": {"deviceClassName": "other"}}]}}}, _preload_content=False)
    assert _fields(err.value) == ["spec"]


def test_allocation_can_be_set_and_cleared_but_not_changed(dra: client.ResourceV1Api) -> None:
    dra.create_namespaced_resource_claim("default", claim_body("c"), _preload_content=False)
    claim = json.loads(dra.read_namespaced_resource_claim("c", "default", _preload_content=False).data)
    claim["status"] = {"allocation": allocation(device="gpu-0")}
    claim = json.loads(dra.replace_namespaced_resource_claim_status("c", "default", claim, _preload_content=False).data)
    mutated = copy.deepcopy(claim)
    mutated["status"]["allocation"]["devices"]["results"][0]["device"] = "gpu-1"
    with pytest.raises(ApiException) as err:
        dra.replace_namespaced_resource_claim_status("c", "default", mutated, _preload_content=False)
    assert _fields(err.value) == ["status.allocation"]
    stored = json.loads(dra.read_namespaced_resource_claim("c", "default", _preload_content=False).data)
    assert stored["status"]["allocation"]["devices"]["results"][0]["device"] == "gpu-0"
    claim["status"] = {}
    cleared = json.loads(dra.replace_namespaced_resource_claim_status("c", "default", claim, _preload_content=False).data)
    assert "allocation" not in cleared["status"]


def test_reserved_for_rules(dra: client.ResourceV1Api) -> None:
    dra.create_namespaced_resource_claim("default", claim_body("c"), _preload_content=False)
    claim = json.loads(dra.read_namespaced_resource_claim("c", "default", _preload_content=False).data)
    ref = {"resource": "pods", "name": "p", "uid": "u-1"}
    claim["status"] = {"reservedFor": [ref]}
    with pytest.raises(ApiException) as err:
        dra.replace_namespaced_resource_claim_status("c", "default", claim, _preload_content=False)
    assert _fields(err.value) == ["status.reservedFor"]
    claim["status"] = {"allocation": allocation(),
                       "reservedFor": [{"resource": "pods", "name": f"p{i}", "uid": f"u-{i}"} for i in range(257)]}
    with pytest.raises(ApiException) as err:
        dra.replace_namespaced_resource_claim_status("c", "default", claim, _preload_content=False)
    assert _fields(err.value) == ["status.reservedFor"]


def test_claim_created_with_status_drops_it(dra: client.ResourceV1Api) -> None:
    body = claim_body("c")
    body["status"] = {"allocation": allocation()}
    made = json.loads(dra.create_namespaced_resource_claim("default", body, _preload_content=False).data)
    assert "status" not in made


def test_device_class_selector_must_compile(dra: client.ResourceV1Api) -> None:
    bad = {"metadata": {"name": "gpu.nvidia.com"},
           "spec": {"selectors": [{"cel": {"expression": "device.driver == "}}]}}
    with pytest.raises(ApiException) as err:
        dra.create_device_class(bad, _preload_content=False)
    assert _fields(err.value) == ["spec.selectors[0].cel.expression"]


def test_template_checks_its_claim_spec(dra: client.ResourceV1Api) -> None:
    body = {"metadata": {"name": "t"}, "spec": {"spec": {"devices": {
        "requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com"}}],
        "constraints": [{"requests": ["nope"], "matchAttribute": "gpu.nvidia.com/uuid"}]}}}}
    with pytest.raises(ApiException) as err:
        dra.create_namespaced_resource_claim_template("default", body, _preload_content=False)
    assert _fields(err.value) == ["spec.spec.devices.constraints[0].requests[0]"]


def test_opaque_parameters_are_limited() -> None:
    spec = {"devices": {"requests": [{"name": "r", "exactly": {"deviceClassName": "c"}}],
                        "config": [{"opaque": {"driver": "gpu.nvidia.com", "parameters": {"x": "y" * 11000}}}]}}
    assert [f for f, _ in validation.validate_claim_spec("spec", spec)] == ["spec.devices.config[0].opaque.parameters"]


def test_first_available_subrequests() -> None:
    sub = [{"name": f"s{i}", "deviceClassName": "c"} for i in range(9)]
    spec = {"devices": {"requests": [{"name": "r", "firstAvailable": sub}],
                        "constraints": [{"requests": ["r/s0"], "distinctAttribute": "gpu.nvidia.com/uuid"}]}}
    assert [f for f, _ in validation.validate_claim_spec("spec", spec)] == ["spec.devices.requests[0].firstAvailable"]
    both = {"devices": {"requests": [{"name": "r", "firstAvailable": sub[:1], "exactly": {"deviceClassName": "c"}}]}}
    assert [f for f, _ in validation.validate_claim_spec("spec", both)] == ["spec.devices.requests[0]"]
