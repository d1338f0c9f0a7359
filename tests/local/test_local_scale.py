"""The scale subresource of Deployments and ReplicaSets through the official client (no controllers
run here: these tests are about what the API server stores and answers)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from driver.local import scale
from driver.local.server import ApiServer


def _deployment(name: str = "web", replicas: int = 3) -> dict[str, Any]:
    labels = {"app": name}
    return {"metadata": {"name": name, "labels": {"team": "ml"}},
            "spec": {"replicas": replicas,
                     "selector": {"matchLabels": labels,
                                  "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "main", "image": "nginx"}]}}}}


@pytest.fixture
def apps(kube: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(kube)


def _raw(resp: Any) -> dict[str, Any]:
    return json.loads(resp.data)


def _http(api: ApiServer, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """A request with a JSON body the typed client would not send; returns the error Status."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(api.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    answer = json.loads(err.value.read())
    assert answer["code"] == err.value.code
    return answer


def _refused(call: Any, *args: Any) -> dict[str, Any]:
    with pytest.raises(ApiException) as err:
        call(*args)
    body = json.loads(err.value.body)
    assert body["code"] == err.value.status
    return body


def test_get_scale_shows_the_parent(apps: client.AppsV1Api) -> None:
    dep = apps.create_namespaced_deployment("default", _deployment())
    got = _raw(apps.read_namespaced_deployment_scale("web", "default", _preload_content=False))
    assert got == {"kind": "Scale", "apiVersion": "autoscaling/v1",
                   "metadata": {"name": "web", "namespace": "default", "uid": dep.metadata.uid,
                                "resourceVersion": dep.metadata.resource_version,
                                "creationTimestamp": got["metadata"]["creationTimestamp"]},
                   "spec": {"replicas": 3}, "status": {"replicas": 0, "selector": "app=web,tier notin (db)"}}


def test_update_changes_only_spec_replicas(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment("default", _deployment())
    before = _raw(apps.read_namespaced_deployment("web", "default", _preload_content=False))
    current = apps.read_namespaced_deployment_scale("web", "default")
    body = {"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": "web", "resourceVersion": current.metadata.resource_version,
                         "labels": {"ignored": "yes"}},
            "spec": {"replicas": 5}, "status": {"replicas": 99}}
    answer = apps.replace_namespaced_deployment_scale("web", "default", body)
    assert answer.spec.replicas == 5 and answer.status.replicas == 0
    after = _raw(apps.read_namespaced_deployment("web", "default", _preload_content=False))
    assert after["spec"] == {**before["spec"], "replicas": 5}
    assert after["metadata"]["labels"] == {"team": "ml"} and after.get("status") == before.get("status")
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert answer.metadata.resource_version == after["metadata"]["resourceVersion"]


def test_stale_resource_version_is_409_and_changes_nothing(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment("default", _deployment())
    stale = apps.read_namespaced_deployment_scale("web", "default")
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 4}})
    stale.spec.replicas = 7
    body = _refused(apps.replace_namespaced_deployment_scale, "web", "default", stale)
    assert body["reason"] == "Conflict" and 'deployments.apps "web"' in body["message"]
    # a merge patch that names an old resourceVersion is a precondition too
    body = _refused(apps.patch_namespaced_deployment_scale, "web", "default",
                    {"metadata": {"resourceVersion": stale.metadata.resource_version}, "spec": {"replicas": 8}})
    assert body["reason"] == "Conflict"
    assert apps.read_namespaced_deployment("web", "default").spec.replicas == 4


@pytest.mark.parametrize("replicas, words", [(-1, "Invalid value: -1: must be greater than or equal to 0"),
                                             ("two", "Invalid value: 'two': must be an integer"),
                                             (1.5, "Invalid value: 1.5: must be an integer"),
                                             (2**31, "must be at most 2147483647")])
def test_bad_replicas_is_422_naming_spec_replicas(api: ApiServer, apps: client.AppsV1Api, replicas: Any,
                                                  words: str) -> None:
    apps.create_namespaced_deployment("default", _deployment())
    rv = apps.read_namespaced_deployment("web", "default").metadata.resource_version
    patched = _refused(apps.patch_namespaced_deployment_scale, "web", "default", {"spec": {"replicas": replicas}})
    # the typed client checks PUT bodies itself, so the PUT goes out as raw JSON
    put = _http(api, "PUT", "/apis/apps/v1/namespaces/default/deployments/web/scale",
                {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web"},
                 "spec": {"replicas": replicas}})
    for answer in (patched, put):
        assert answer["code"] == 422 and answer["reason"] == "Invalid"
        assert answer["details"]["causes"][0]["field"] == "spec.replicas" and words in answer["message"]
    dep = apps.read_namespaced_deployment("web", "default")
    assert dep.spec.replicas == 3 and dep.metadata.resource_version == rv


def test_json_patch_and_replicaset_scale(apps: client.AppsV1Api) -> None:
    rs = _deployment("cache", 2)
    apps.create_namespaced_replica_set("default", rs)
    got = apps.patch_namespaced_replica_set_scale("cache", "default",
                                                  [{"op": "replace", "path": "/spec/replicas", "value": 0}])
    assert got.spec.replicas == 0 and got.kind == "Scale"
    stored = _raw(apps.read_namespaced_replica_set("cache", "default", _preload_content=False))
    assert stored["spec"]["replicas"] == 0
    same = apps.patch_namespaced_replica_set_scale("cache", "default", {"spec": {"replicas": 0}})
    assert same.metadata.resource_version == got.metadata.resource_version  # a no-op write keeps the version


def test_bad_bodies_and_methods(api: ApiServer, apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment("default", _deployment())
    answer = _refused(apps.replace_namespaced_deployment_scale, "web", "default",
                      {"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 1}})
    assert answer["code"] == 400 and "does not match the URL (Scale)" in answer["message"]
    answer = _refused(apps.replace_namespaced_deployment_scale, "web", "default",
                      {"kind": "Scale", "metadata": {"name": "other"}, "spec": {"replicas": 1}})
    assert answer["code"] == 400 and "(other) does not match the name on the URL (web)" in answer["message"]
    answer = _refused(apps.read_namespaced_deployment_scale, "missing", "default")
    assert answer["code"] == 404
    path = "/apis/apps/v1/namespaces/default/deployments/web/scale"
    assert _http(api, "DELETE", path)["code"] == 405
    assert _http(api, "POST", path, {"spec": {"replicas": 1}})["code"] == 405
    assert _http(api, "PUT", path, [1])["code"] == 400
    assert apps.read_namespaced_deployment("web", "default").spec.replicas == 3


def test_discovery_lists_the_scale_subresource(kube: client.ApiClient) -> None:
    resources = client.AppsV1Api(kube).get_api_resources().resources
    entry = next(r for r in resources if r.name == "deployments/scale")
    assert (entry.group, entry.version, entry.kind) == ("autoscaling", "v1", "Scale")
    assert sorted(entry.verbs) == ["get", "patch", "update"]
    assert any(r.name == "replicasets/scale" for r in resources)


def test_selector_string() -> None:
    assert scale.selector_string({"matchLabels": {"b": "2", "a": "1"},
                                  "matchExpressions": [{"key": "x", "operator": "In", "values": ["q", "p"]},
                                                       {"key": "y", "operator": "Exists"},
                                                       {"key": "z", "operator": "DoesNotExist"}]}) \
        == "a=1,b=2,x in (p,q),y,!z"
    assert scale.selector_string(None) == ""
