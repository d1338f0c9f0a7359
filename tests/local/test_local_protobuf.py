"""Protobuf request bodies (what kubectl's typed client sends): decoded into the JSON create path, and
refused — changing nothing — when the server cannot represent them faithfully."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from kubernetes import client

from driver.local import protobody
from driver.local.server import ApiServer
from driver.plugin.proto import kube_objects_pb2 as pb

PROTOBUF = "application/vnd.kubernetes.protobuf"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited field, as it appears on the wire."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _envelope(api_version: str, kind: str, raw: bytes, **extra: str) -> bytes:
    unknown = pb.Unknown(typeMeta=pb.TypeMeta(apiVersion=api_version, kind=kind), raw=raw, **extra)
    return protobody.MAGIC + unknown.SerializeToString()


def _post(api: ApiServer, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
    url = urlsplit(api.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.request("POST", path, body, {"Content-Type": PROTOBUF, "Accept": f"{PROTOBUF},application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def _deployment(replicas: int | None = 2) -> pb.Deployment:
    labels = {"app": "train"}
    container = pb.Container(
        name="main", image="cuda:12.4", command=["python"], args=["train.py"],
        ports=[pb.ContainerPort(containerPort=8080)], env=[pb.EnvVar(name="EPOCHS", value="3")],
        resources=pb.ResourceRequirements(limits={"cpu": pb.Quantity(string="500m")},
                                          claims=[pb.ResourceClaim(name="gpu")]))
    spec = pb.DeploymentSpec(
        selector=pb.LabelSelector(matchLabels=labels),
        template=pb.PodTemplateSpec(
            metadata=pb.ObjectMeta(labels=labels),
            spec=pb.PodSpec(containers=[container],
                            resourceClaims=[pb.PodResourceClaim(name="gpu", resourceClaimTemplateName="one-gpu")])),
        strategy=pb.DeploymentStrategy(type="RollingUpdate", rollingUpdate=pb.RollingUpdateDeployment(
            maxUnavailable=pb.IntOrString(type=0, intVal=0), maxSurge=pb.IntOrString(type=1, strVal="25%"))))
    if replicas is not None:
        spec.replicas = replicas
    return pb.Deployment(metadata=pb.ObjectMeta(name="train", labels=labels), spec=spec, status=pb.DeploymentStatus())


def test_deployment_body_is_stored_as_its_json_form(api: ApiServer, kube: client.ApiClient) -> None:
    code, body = _post(api, "/apis/apps/v1/namespaces/default/deployments",
                       _envelope("apps/v1", "Deployment", _deployment(replicas=0).SerializeToString()))
    assert code == 201, body
    stored = json.loads(client.AppsV1Api(kube).read_namespaced_deployment("train", "default",
                                                                          _preload_content=False).data)
    spec = stored["spec"]
    assert spec["replicas"] == 0  # explicitly zero: kept, not defaulted to 1
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}}
    pod = spec["template"]["spec"]
    assert pod["resourceClaims"] == [{"name": "gpu", "resourceClaimTemplateName": "one-gpu"}]
    assert pod["containers"] == [{
        "name": "main", "image": "cuda:12.4", "command": ["python"], "args": ["train.py"],
        "ports": [{"containerPort": 8080}], "env": [{"name": "EPOCHS", "value": "3"}],
        "resources": {"limits": {"cpu": "500m"}, "claims": [{"name": "gpu"}]}}]
    assert stored["metadata"]["labels"] == {"app": "train"} and stored["metadata"]["uid"]


def test_unset_optional_replicas_gets_the_default(api: ApiServer, kube: client.ApiClient) -> None:
    code, _ = _post(api, "/apis/apps/v1/namespaces/default/deployments",
                    _envelope("apps/v1", "Deployment", _deployment(replicas=None).SerializeToString()))
    assert code == 201
    assert client.AppsV1Api(kube).read_namespaced_deployment("train", "default").spec.replicas == 1


def test_secret_and_configmap_bytes_are_base64(api: ApiServer, core: client.CoreV1Api) -> None:
    secret = pb.Secret(metadata=pb.ObjectMeta(name="s"), data={"raw": b"\x00\xff"}, stringData={"text": "hi"})
    code, _ = _post(api, "/api/v1/namespaces/default/secrets", _envelope("v1", "Secret", secret.SerializeToString()))
    assert code == 201
    stored = core.read_namespaced_secret("s", "default")
    assert stored.data == {"raw": "AP8=", "text": "aGk="} and stored.type == "Opaque"
    cm = pb.ConfigMap(metadata=pb.ObjectMeta(name="c"), data={"a": "b"}, binaryData={"bin": b"\x01"}, immutable=False)
    code, _ = _post(api, "/api/v1/namespaces/default/configmaps", _envelope("v1", "ConfigMap", cm.SerializeToString()))
    assert code == 201
    stored_cm = core.read_namespaced_config_map("c", "default")
    assert stored_cm.data == {"a": "b"} and stored_cm.binary_data == {"bin": "AQ=="} and stored_cm.immutable is False


def test_unknown_field_deep_inside_is_refused_and_nothing_stored(api: ApiServer, kube: client.ApiClient) -> None:
    raw = _deployment().SerializeToString()
    # merge a field the schema lacks (PodSpec #34, ephemeralContainers) into spec.template.spec
    raw += _field(2, _field(3, _field(2, _field(34, b"\x0a\x01x"))))
    code, body = _post(api, "/apis/apps/v1/namespaces/default/deployments", _envelope("apps/v1", "Deployment", raw))
    assert code == 415, body
    assert body["reason"] == "UnsupportedMediaType"
    assert "kind Deployment" in body["message"] and "spec.template.spec #34" in body["message"]
    assert "JSON" in body["message"]
    assert client.AppsV1Api(kube).list_namespaced_deployment("default").items == []


def test_unsupported_kind_is_refused_naming_it(api: ApiServer, core: client.CoreV1Api) -> None:
    pod = _field(1, pb.ObjectMeta(name="p").SerializeToString())
    code, body = _post(api, "/api/v1/namespaces/default/pods", _envelope("v1", "Pod", pod))
    assert code == 415, body
    assert "kind Pod (v1)" in body["message"] and "apps/v1 Deployment" in body["message"]
    assert core.list_namespaced_pod("default").items == []


@pytest.mark.parametrize("body, words", [
    (b"\x0a\x02{}", "envelope prefix"),
    (protobody.MAGIC + b"\x0a\xff\xff", "runtime.Unknown envelope does not parse"),
    (protobody.MAGIC + pb.Unknown(raw=b"x").SerializeToString(), "typeMeta.kind is empty"),
    (_envelope("v1", "ConfigMap", b"\x0a\x05ab"), "the ConfigMap message does not parse"),
])
def test_malformed_bodies_are_400_and_change_nothing(api: ApiServer, core: client.CoreV1Api, body: bytes,
                                                     words: str) -> None:
    code, answer = _post(api, "/api/v1/namespaces/default/configmaps", body)
    assert code == 400 and answer["reason"] == "BadRequest" and words in answer["message"], answer
    assert core.list_namespaced_config_map("default").items == []


def test_encoded_or_foreign_envelope_content_is_refused(api: ApiServer, core: client.CoreV1Api) -> None:
    raw = pb.ConfigMap(metadata=pb.ObjectMeta(name="c")).SerializeToString()
    code, body = _post(api, "/api/v1/namespaces/default/configmaps",
                       _envelope("v1", "ConfigMap", raw, contentEncoding="gzip"))
    assert code == 415 and "contentEncoding 'gzip'" in body["message"]
    code, body = _post(api, "/api/v1/namespaces/default/configmaps",
                       _envelope("v1", "ConfigMap", raw, contentType="application/json"))
    assert code == 415 and "contentType 'application/json'" in body["message"]
    assert core.list_namespaced_config_map("default").items == []


def test_kind_must_match_the_url(api: ApiServer, core: client.CoreV1Api) -> None:
    raw = pb.ConfigMap(metadata=pb.ObjectMeta(name="c")).SerializeToString()
    code, body = _post(api, "/api/v1/namespaces", _envelope("v1", "ConfigMap", raw))
    assert code == 400 and "does not match the URL (Namespace)" in body["message"]
    assert "c" not in [ns.metadata.name for ns in core.list_namespace().items]


def test_time_and_zero_values() -> None:
    meta = pb.ObjectMeta(name="n", creationTimestamp=pb.Time(), deletionTimestamp=pb.Time(seconds=86400))
    assert protobody.to_json(meta) == {"name": "n", "deletionTimestamp": "1970-01-02T00:00:00Z"}
    assert protobody.to_json(pb.Namespace(metadata=meta, spec=pb.NamespaceSpec(), status=pb.NamespaceStatus())) == {
        "metadata": {"name": "n", "deletionTimestamp": "1970-01-02T00:00:00Z"}, "spec": {}, "status": {}}


def _numbers(msg: Any) -> dict[str, int]:
    return {f.name: f.number for f in msg.DESCRIPTOR.fields}


def test_field_numbers_match_kubernetes() -> None:
    """The wire numbers of k8s.io/api and apimachinery generated.proto (names are ours, numbers are not)."""
    assert _numbers(pb.Unknown) == {"typeMeta": 1, "raw": 2, "contentEncoding": 3, "contentType": 4}
    assert _numbers(pb.ObjectMeta) == {
        "name": 1, "generateName": 2, "namespace": 3, "selfLink": 4, "uid": 5, "resourceVersion": 6, "generation": 7,
        "creationTimestamp": 8, "deletionTimestamp": 9, "deletionGracePeriodSeconds": 10, "labels": 11,
        "annotations": 12, "ownerReferences": 13, "finalizers": 14}
    assert _numbers(pb.OwnerReference) == {"kind": 1, "name": 3, "uid": 4, "apiVersion": 5, "controller": 6,
                                           "blockOwnerDeletion": 7}
    assert _numbers(pb.IntOrString) == {"type": 1, "intVal": 2, "strVal": 3}
    container = _numbers(pb.Container)
    assert {k: container[k] for k in ("name", "image", "command", "args", "ports", "env", "resources",
                                      "imagePullPolicy")} == {
        "name": 1, "image": 2, "command": 3, "args": 4, "ports": 6, "env": 7, "resources": 8, "imagePullPolicy": 14}
    pod = _numbers(pb.PodSpec)
    assert {k: pod[k] for k in ("containers", "restartPolicy", "nodeSelector", "initContainers", "tolerations",
                                "resourceClaims")} == {
        "containers": 2, "restartPolicy": 3, "nodeSelector": 7, "initContainers": 20, "tolerations": 22,
        "resourceClaims": 39}
    assert _numbers(pb.PodResourceClaim) == {"name": 1, "resourceClaimName": 3, "resourceClaimTemplateName": 4}
    spec = _numbers(pb.DeploymentSpec)
    assert spec == {"replicas": 1, "selector": 2, "template": 3, "strategy": 4, "minReadySeconds": 5,
                    "revisionHistoryLimit": 6, "paused": 7, "progressDeadlineSeconds": 9}
    assert pb.DeploymentSpec.DESCRIPTOR.fields_by_name["replicas"].has_presence  # Go *int32: zero is meaningful
    job = _numbers(pb.JobSpec)
    assert {k: job[k] for k in ("parallelism", "completions", "selector", "template", "backoffLimit", "suspend")} == {
        "parallelism": 1, "completions": 2, "selector": 4, "template": 6, "backoffLimit": 7, "suspend": 10}
    assert _numbers(pb.Secret) == {"metadata": 1, "data": 2, "type": 3, "stringData": 4, "immutable": 5}
    assert _numbers(pb.ConfigMap) == {"metadata": 1, "data": 2, "binaryData": 3, "immutable": 4}
    assert _numbers(pb.ServiceAccount) == {"metadata": 1, "secrets": 2, "imagePullSecrets": 3,
                                           "automountServiceAccountToken": 4}
