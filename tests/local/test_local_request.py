"""Request decoding of the local API server: bodies and query parameters, and the 4xx answers a
malformed request gets (each naming the parameter and what was expected)."""

from __future__ import annotations

import io
import json
from http.client import HTTPMessage
from typing import Any

import pytest
from kubernetes import client

from driver.local import request
from driver.local.errors import ApiError
from driver.local.resources import RESOURCES

CONFIGMAPS = next(r for r in RESOURCES if r.key == "configmaps")


def _headers(**fields: str) -> HTTPMessage:
    headers = HTTPMessage()
    for name, value in fields.items():
        headers[name.replace("_", "-")] = value
    return headers


def _refused(call: Any, *args: Any) -> ApiError:
    with pytest.raises(ApiError) as err:
        call(*args)
    return err.value


def test_bodies_json_yaml_and_chunked() -> None:
    data = b'{"metadata": {"name": "a"}}'
    plain = request.read_body(_headers(Content_Length=str(len(data))), io.BytesIO(data))
    assert plain == {"metadata": {"name": "a"}}
    yaml_body = b"metadata:\n  name: b\n"
    assert request.read_body(_headers(Content_Type="application/yaml", Content_Length=str(len(yaml_body))),
                             io.BytesIO(yaml_body)) == {"metadata": {"name": "b"}}
    chunked = b"5;ext=1\r\n" + data[:5] + b"\r\n" + b"%x\r\n" % (len(data) - 5) + data[5:] + b"\r\n0\r\n\r\n"
    assert request.read_body(_headers(Transfer_Encoding="chunked"), io.BytesIO(chunked)) == plain
    assert request.read_body(_headers(), io.BytesIO(b"")) is None


def test_undecodable_bodies_are_refused() -> None:
    err = _refused(request.read_body, _headers(Content_Type="application/vnd.kubernetes.protobuf", Content_Length="3"),
                   io.BytesIO(b"k8s"))
    assert err.code == 400 and "expected the Kubernetes envelope prefix" in err.message
    err = _refused(request.read_body, _headers(Content_Type="application/cbor", Content_Length="1"), io.BytesIO(b"\xa0"))
    assert err.code == 415 and "not application/cbor" in err.message
    err = _refused(request.read_body, _headers(Content_Type="application/json; charset=utf-8", Content_Length="5"),
                   io.BytesIO(b"{oops"))
    assert err.code == 400 and err.message.startswith("error decoding the request body:")


def test_a_bad_chunk_size_is_refused_with_the_line() -> None:
    err = _refused(request.read_body, _headers(Transfer_Encoding="chunked"), io.BytesIO(b"zz\r\n{}\r\n0\r\n\r\n"))
    assert err.code == 400 and "expected a hexadecimal chunk size, got b'zz\\r\\n'" in err.message
    err = _refused(request.read_body, _headers(Transfer_Encoding="chunked"), io.BytesIO(b""))
    assert err.code == 400 and "got b''" in err.message


def test_query_parameters() -> None:
    assert request.parse_query("limit=1&limit=5&continue=") == {"limit": "5", "continue": ""}
    assert request.flag({"watch": "true"}, "watch") and request.flag({"watch": "1"}, "watch")
    assert not request.flag({"watch": "false"}, "watch") and not request.flag({}, "watch")
    assert request.limit({}) == 0 and request.limit({"limit": "7"}) == 7
    assert request.resource_version({}) is None and request.resource_version({"resourceVersion": "0"}) is None
    assert request.resource_version({"resourceVersion": "42"}) == 42
    assert request.timeout_seconds({}) is None and request.timeout_seconds({"timeoutSeconds": "2.5"}) == 2.5
    assert request.grace_seconds({}, {}) is None
    assert request.grace_seconds({"gracePeriodSeconds": "3"}, {"gracePeriodSeconds": 9}) == 3
    assert request.grace_seconds({}, {"gracePeriodSeconds": 9}) == 9
    assert request.media_type(_headers(Content_Type="application/merge-patch+json; charset=utf-8")) \
        == "application/merge-patch+json"


@pytest.mark.parametrize("call, args, message", [
    (request.limit, ({"limit": "ten"},), "limit: expected an integer, got 'ten'"),
    (request.limit, ({"limit": "-1"},), "limit: expected a non-negative integer, got -1"),
    (request.resource_version, ({"resourceVersion": "abc"},), "resourceVersion: expected an integer, got 'abc'"),
    (request.timeout_seconds, ({"timeoutSeconds": "soon"},), "timeoutSeconds: expected a number, got 'soon'"),
    (request.grace_seconds, ({"gracePeriodSeconds": "x"}, {}), "gracePeriodSeconds: expected an integer, got 'x'"),
    (request.grace_seconds, ({}, {"gracePeriodSeconds": [1]}), "gracePeriodSeconds: expected an integer, got [1]"),
])
def test_bad_query_parameters_are_named(call: Any, args: tuple[Any, ...], message: str) -> None:
    err = _refused(call, *args)
    assert err.code == 400 and err.message == message


def test_kind_and_field_validation() -> None:
    body = {"kind": "ConfigMap", "metadata": {"name": "c", "labls": {}}, "sepc": {}}
    assert request.check_kind(CONFIGMAPS, body, {}) == request.check_kind(CONFIGMAPS, body, {"fieldValidation": "Warn"})
    assert any("metadata.labls" in w for w in request.check_kind(CONFIGMAPS, body, {}))
    assert request.check_kind(CONFIGMAPS, body, {"fieldValidation": "Ignore"}) == []
    assert "strict decoding error" in _refused(request.check_kind, CONFIGMAPS, body, {"fieldValidation": "Strict"}).message
    assert _refused(request.check_kind, CONFIGMAPS, body, {"fieldValidation": "Loose"}).message \
        == "fieldValidation: expected Strict, Warn or Ignore, got 'Loose'"
    assert _refused(request.check_kind, CONFIGMAPS, [], {}).message == "the request body must be a ConfigMap object"
    assert _refused(request.check_kind, CONFIGMAPS, dict(body, kind="Secret"), {}).message \
        == "the kind of the object (Secret) does not match the URL (ConfigMap)"


def test_server_answers_bad_parameters_with_400_and_changes_nothing(kube: client.ApiClient,
                                                                    core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "keep"}})
    base = f"{kube.configuration.host}/api/v1/namespaces/default/configmaps"
    for method, url, message in [
        ("GET", base + "?limit=ten", "limit: expected an integer, got 'ten'"),
        ("GET", base + "?watch=true&timeoutSeconds=soon", "timeoutSeconds: expected a number, got 'soon'"),
        ("DELETE", base + "/keep?gracePeriodSeconds=x", "gracePeriodSeconds: expected an integer, got 'x'"),
    ]:
        resp = kube.call_api(method, url)
        resp.read()
        assert resp.status == 400, (method, url)
        assert json.loads(resp.data)["message"] == message
    assert core.read_namespaced_config_map("keep", "default").metadata.deletion_timestamp is None
