"""Pod fields a scheduler with priority, preemption and gates relies on, as kube-apiserver treats them.

Scheduling gates (pkg/apis/core/validation validateOnlyDeletedSchedulingGates, the nodeName rule,
pods/binding of a gated pod: pkg/registry/core/pod/storage TestEtcdCreateWithSchedulingGates),
status fields written by schedulers (nominatedNodeName, DisruptionTarget, extendedResourceClaimStatus),
requests defaulted from limits (SetDefaults_Pod), canonical quantities (resource.Quantity), and
graceful deletion with the emulated kubelet.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from driver.local.cluster import LocalCluster
from driver.local.clusterfile import parse_cluster
from driver.local.quantities import QuantityError, canonical
from driver.local.server import ApiServer
from local_helpers import http, kubectl, pod_body, status_of
from wait_helpers import wait_for


def _refused(call: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ApiException) as err:
        call(*args, **kwargs)
    return {"code": err.value.status, **status_of(err.value)}


def _gated(name: str = "gated", *gates: str, **spec: Any) -> dict[str, Any]:
    return pod_body(name, schedulingGates=[{"name": g} for g in gates or ("example.com/quota",)], **spec)


def _binding(name: str, node: str = "node-a", **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, **meta}, "target": {"kind": "Node", "name": node}}


# --- scheduling gates ------------------------------------------------------------------------------

def test_a_gated_pod_reads_scheduling_gated(core: client.CoreV1Api) -> None:
    pod = core.create_namespaced_pod("default", _gated())
    scheduled = [c for c in pod.status.conditions if c.type == "PodScheduled"]
    assert [(c.status, c.reason, c.message) for c in scheduled] == [
        ("False", "SchedulingGated", "Scheduling is blocked due to non-empty scheduling gates")]


def test_gates_may_only_be_removed(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", _gated("g", "example.com/arch", "example.com/quota"))
    out = _refused(core.patch_namespaced_pod, "g", "default",
                   {"spec": {"schedulingGates": [{"name": "example.com/arch"}, {"name": "example.com/quota"},
                                                 {"name": "x"}]}}, _content_type="application/merge-patch+json")
    assert out["code"] == 422
    assert out["message"] == ('Pod "g" is invalid: spec.schedulingGates[2].name: Forbidden: only deletion is allowed, '
                              "but found new scheduling gate 'x'")
    one_left = core.patch_namespaced_pod("g", "default", {"spec": {"schedulingGates": [{"name": "example.com/quota"}]}},
                                         _content_type="application/merge-patch+json")
    assert [g.name for g in one_left.spec.scheduling_gates] == ["example.com/quota"]
    kept = core.patch_namespaced_pod("g", "default", {"spec": {"schedulingGates": [{"name": "example.com/quota"}]}})
    assert [g.name for g in kept.spec.scheduling_gates] == ["example.com/quota"]  # strategic: merged by name
    with_arch = _refused(core.patch_namespaced_pod, "g", "default",
                         {"spec": {"schedulingGates": [{"name": "example.com/arch"}]}})
    assert with_arch["code"] == 422 and "found new scheduling gate 'example.com/arch'" in with_arch["message"]
    released = core.patch_namespaced_pod("g", "default", [{"op": "remove", "path": "/spec/schedulingGates"}],
                                         _content_type="application/json-patch+json")
    assert released.spec.scheduling_gates is None


def test_a_pod_cannot_be_created_with_gates_and_a_node(core: client.CoreV1Api) -> None:
    out = _refused(core.create_namespaced_pod, "default", _gated("g", nodeName="node-a"))
    assert out["code"] == 422 and out["message"] == (
        'Pod "g" is invalid: spec.nodeName: Forbidden: cannot be set until all schedulingGates have been cleared')


def test_gate_names_are_qualified_and_unique(core: client.CoreV1Api) -> None:
    out = _refused(core.create_namespaced_pod, "default", _gated("g", "a", "a", "Bad Gate"))
    fields = {(c["field"], c["message"].split(":")[0]) for c in out["details"]["causes"]}
    assert fields == {("spec.schedulingGates[1]", "Duplicate value"), ("spec.schedulingGates[2]", "Invalid value")}


def test_binding_a_gated_pod_conflicts_until_released(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", _gated("foo", "foo", "bar"))
    out = _refused(core.create_namespaced_pod_binding, "foo", "default", _binding("foo"))
    assert out["code"] == 409 and out["reason"] == "Conflict"
    assert out["message"] == 'Operation cannot be fulfilled on pods/binding "foo": pod foo has non-empty .spec.schedulingGates'
    core.patch_namespaced_pod("foo", "default", {"spec": {"schedulingGates": None}},
                              _content_type="application/merge-patch+json")
    core.create_namespaced_pod_binding("foo", "default", _binding("foo"), _preload_content=False)
    pod = core.read_namespaced_pod("foo", "default")
    scheduled = [c for c in pod.status.conditions if c.type == "PodScheduled"]
    assert pod.spec.node_name == "node-a"
    assert [(c.status, c.reason, c.message) for c in scheduled] == [("True", None, None)]


def test_a_gated_pod_may_gain_node_selector_entries_only(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", _gated("g", nodeSelector={"a": "b"}))
    widened = core.patch_namespaced_pod("g", "default", {"spec": {"nodeSelector": {"c": "d"}}})
    assert widened.spec.node_selector == {"a": "b", "c": "d"}
    out = _refused(core.patch_namespaced_pod, "g", "default", {"spec": {"nodeSelector": {"a": "z"}}})
    assert [c["field"] for c in out["details"]["causes"]] == ["spec.nodeSelector"]
    assert "only additions to spec.nodeSelector are allowed (no mutations or deletions)" in out["message"]
    core.create_namespaced_pod("default", pod_body("free", nodeSelector={"a": "b"}))
    out = _refused(core.patch_namespaced_pod, "free", "default", {"spec": {"nodeSelector": {"c": "d"}}})
    assert [c["field"] for c in out["details"]["causes"]] == ["spec"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_shows_scheduling_gated(api: ApiServer, core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", _gated())
    rows = [line.split() for line in kubectl(api.kubeconfig_path, "get", "pods").stdout.splitlines()]
    assert rows[1][:3] == ["gated", "0/1", "SchedulingGated"]


# --- binding and status fields ---------------------------------------------------------------------

def test_binding_clears_the_nomination_and_copies_annotations(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", pod_body("p"))
    core.patch_namespaced_pod_status("p", "default", {"status": {"nominatedNodeName": "node-b"}})
    assert core.read_namespaced_pod("p", "default").status.nominated_node_name == "node-b"
    core.create_namespaced_pod_binding("p", "default", _binding("p", annotations={"example.com/bound-by": "test"}),
                                       _preload_content=False)
    pod = core.read_namespaced_pod("p", "default")
    assert pod.status.nominated_node_name is None and pod.spec.node_name == "node-a"
    assert pod.metadata.annotations == {"example.com/bound-by": "test"}


def test_status_keeps_what_a_preempting_scheduler_writes(core: client.CoreV1Api) -> None:
    spec = {"containers": [{"name": "main", "image": "busybox:1.36", "resources": {"limits": {"example.com/gpu": "1"}}}]}
    core.create_namespaced_pod("default", {"metadata": {"name": "victim"}, "spec": spec})
    extended = {"resourceClaimName": "victim-extended-resources-x7k2p",
                "requestMappings": [{"containerName": "main", "resourceName": "example.com/gpu",
                                     "requestName": "container-0-request-0"}]}
    core.patch_namespaced_pod_status("victim", "default", {"status": {
        "nominatedNodeName": "node-a", "extendedResourceClaimStatus": extended,
        "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
                        "message": "default-scheduler: preempting to accommodate a higher priority pod"}]}})
    # a later strategic-merge patch of one condition keeps the others and the other fields
    core.patch_namespaced_pod_status("victim", "default", {"status": {"conditions": [
        {"type": "Ready", "status": "False"}]}})
    raw = http(core.api_client.configuration.host, "GET", "/api/v1/namespaces/default/pods/victim")[1]
    status = raw["status"]
    assert status["nominatedNodeName"] == "node-a" and status["extendedResourceClaimStatus"] == extended
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["DisruptionTarget"]["reason"] == "PreemptionByScheduler" and by_type["Ready"]["status"] == "False"
    assert raw["spec"] == core.api_client.sanitize_for_serialization(core.read_namespaced_pod("victim", "default").spec)


@pytest.mark.parametrize(("status", "field"), [
    ({"extendedResourceClaimStatus": {"resourceClaimName": "c", "requestMappings": [
        {"containerName": "nope", "resourceName": "example.com/gpu", "requestName": "r0"}]}},
     "status.extendedResourceClaimStatus.requestMappings[0].containerName"),
    ({"extendedResourceClaimStatus": {"requestMappings": [
        {"containerName": "main", "resourceName": "example.com/gpu", "requestName": "r0"}]}},
     "status.extendedResourceClaimStatus.resourceClaimName"),
    ({"extendedResourceClaimStatus": {"resourceClaimName": "c", "requestMappings": []}},
     "status.extendedResourceClaimStatus.requestMappings"),
    ({"nominatedNodeName": "Not_A_Node"}, "status.nominatedNodeName"),
])
def test_bad_status_fields_are_refused_naming_the_field(core: client.CoreV1Api, status: dict[str, Any],
                                                        field: str) -> None:
    core.create_namespaced_pod("default", pod_body("p"))
    out = _refused(core.patch_namespaced_pod_status, "p", "default", {"status": status})
    assert out["code"] == 422 and [c["field"] for c in out["details"]["causes"]] == [field]


# --- requests from limits, canonical quantities ----------------------------------------------------

def test_requests_default_to_limits_for_resources_listed_only_in_limits(core: client.CoreV1Api) -> None:
    spec = {"initContainers": [{"name": "init", "image": "x", "resources": {"limits": {"cpu": "1"}}}],
            "containers": [{"name": "main", "image": "x", "resources": {
                "limits": {"cpu": "2", "memory": "1Gi", "example.com/gpu": "1"}, "requests": {"cpu": "500m"}}}]}
    pod = core.create_namespaced_pod("default", {"metadata": {"name": "p"}, "spec": spec})
    assert pod.spec.containers[0].resources.requests == {"cpu": "500m", "memory": "1Gi", "example.com/gpu": "1"}
    assert pod.spec.init_containers[0].resources.requests == {"cpu": "1"}
    assert pod.status.qos_class == "Burstable"


def test_templates_are_not_defaulted(kube: client.ApiClient) -> None:
    apps = client.AppsV1Api(kube)
    template = {"metadata": {"labels": {"app": "a"}},
                "spec": {"containers": [{"name": "main", "image": "x", "resources": {"limits": {"cpu": "1000m"}}}]}}
    dep = apps.create_namespaced_deployment("default", {"metadata": {"name": "d"}, "spec": {
        "selector": {"matchLabels": {"app": "a"}}, "template": template}})
    resources = dep.spec.template.spec.containers[0].resources
    assert resources.requests is None and resources.limits == {"cpu": "1"}


def test_quantities_come_back_canonical(api: ApiServer) -> None:
    body = {"metadata": {"name": "q"}, "spec": {"containers": [{"name": "main", "image": "x", "resources": {
        "limits": {"cpu": 1, "memory": "1024Mi"}, "requests": {"cpu": 0.5, "memory": "1.5e3"}}}]}}
    code, pod = http(api.url, "POST", "/api/v1/namespaces/default/pods", body)
    assert code == 201, pod
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources == {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1500"}}
    # a read-modify-write of what the server returned is not a spec change
    code, again = http(api.url, "PUT", "/api/v1/namespaces/default/pods/q", pod)
    assert code == 200 and again["metadata"]["resourceVersion"] == pod["metadata"]["resourceVersion"]


def test_a_bad_quantity_is_a_bad_request(api: ApiServer) -> None:
    body = pod_body("q")
    body["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "two"}}
    code, out = http(api.url, "POST", "/api/v1/namespaces/default/pods", body)
    assert code == 400 and out["reason"] == "BadRequest"
    assert "spec.containers[0].resources.requests[cpu]: quantities must match the regular expression" in out["message"]


@pytest.mark.parametrize(("resources", "field", "message"), [
    ({"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}, "spec.containers[0].resources.requests",
     'Invalid value: "2": must be less than or equal to cpu limit of 1'),
    ({"requests": {"example.com/gpu": "1"}, "limits": {"example.com/gpu": "2"}}, "spec.containers[0].resources.requests",
     'Invalid value: "1": must be equal to example.com/gpu limit of 2'),
    ({"requests": {"example.com/gpu": "1"}}, "spec.containers[0].resources.requests[example.com/gpu]",
     "Forbidden: Limit must be set for non overcommitable resources"),
    ({"limits": {"example.com/gpu": "500m"}}, "spec.containers[0].resources.limits[example.com/gpu]",
     'Invalid value: "500m": must be an integer'),
    ({"limits": {"memory": "-1"}}, "spec.containers[0].resources.limits[memory]",
     'Invalid value: "-1": must be greater than or equal to 0'),
])
def test_resource_requirements_are_validated(core: client.CoreV1Api, resources: dict[str, Any], field: str,
                                             message: str) -> None:
    body = pod_body("r")
    body["spec"]["containers"][0]["resources"] = resources
    out = _refused(core.create_namespaced_pod, "default", body)
    assert out["code"] == 422
    assert {(c["field"], c["message"]) for c in out["details"]["causes"]} >= {(field, message)}, out


@pytest.mark.parametrize(("given", "expected"), [
    (1, "1"), ("1000m", "1"), ("0.5", "500m"), (0.5, "500m"), ("1500m", "1500m"), ("1000", "1k"),
    ("1200000", "1200k"), ("1.5Gi", "1536Mi"), ("1024Mi", "1Gi"), ("1000Mi", "1000Mi"), ("512", "512"),
    ("1e3", "1e3"), ("1.5e3", "1500"), ("129e6", "129e6"), ("0", "0"), ("-1", "-1"), ("0.1n", "1n"),
    ("65536Mi", "64Gi"), ("100Ki", "100Ki"),
])
def test_canonical_quantity_text(given: Any, expected: str) -> None:
    assert canonical(given) == expected


@pytest.mark.parametrize("bad", ["two", "1.2.3", "", True, None, "1Zi"])
def test_non_quantities_are_refused(bad: Any) -> None:
    with pytest.raises(QuantityError):
        canonical(bad)


# --- graceful deletion with the emulated kubelet ---------------------------------------------------

@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    spec = parse_cluster({"nodes": [{"name": "node-a", "cpu": "8", "memory": "16Gi"}]})
    with LocalCluster(spec, workdir=tmp_path, plugin_factory=None, claim_controller=False, workloads=False,
                      disruption=False, volumes=False) as running:
        yield running


def test_preemption_victims_terminate_gracefully(cluster: LocalCluster) -> None:
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespaced_pod("default", pod_body("victim"))
    wait_for(lambda: core.read_namespaced_pod("victim", "default").status.phase == "Running", what="victim running")
    core.patch_namespaced_pod_status("victim", "default", {"status": {"conditions": [
        {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}]}})
    deleting = core.delete_namespaced_pod("victim", "default", grace_period_seconds=30)
    assert deleting.metadata.deletion_timestamp is not None and deleting.metadata.deletion_grace_period_seconds == 30
    assert any(c.type == "DisruptionTarget" for c in deleting.status.conditions)

    def gone() -> bool:
        try:
            core.read_namespaced_pod("victim", "default")
        except ApiException as exc:
            return exc.status == 404
        return False
    wait_for(gone, what="the kubelet finishing the deletion")


def test_an_unbound_pod_goes_at_once_and_negative_grace_means_one_second(cluster: LocalCluster) -> None:
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespaced_pod("default", pod_body("pending", nodeSelector={"no": "such-node"}))
    core.delete_namespaced_pod("pending", "default", grace_period_seconds=30)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("pending", "default")
    assert err.value.status == 404
    core.create_namespaced_pod("default", pod_body("bound", nodeName="node-a"))
    code, out = http(cluster.api.url, "DELETE", "/api/v1/namespaces/default/pods/bound",
                     {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": -5})
    assert code == 200 and out["metadata"]["deletionGracePeriodSeconds"] == 1


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_apply_of_integer_quantities(api: ApiServer) -> None:
    manifest = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: ints\nspec:\n  containers:\n  - name: main\n"
                "    image: busybox:1.36\n    resources:\n      limits:\n        cpu: 1\n        memory: 1024Mi\n")
    assert "pod/ints created" in kubectl(api.kubeconfig_path, "apply", "-f", "-", stdin=manifest).stdout
    got = kubectl(api.kubeconfig_path, "get", "pod", "ints", "-o",
                  "jsonpath={.spec.containers[0].resources.requests.cpu} {.spec.containers[0].resources.limits.memory}")
    assert got.stdout == "1 1Gi"
    before = kubectl(api.kubeconfig_path, "get", "pod", "ints", "-o", "jsonpath={.metadata.resourceVersion}").stdout
    # kubectl patches `cpu: 1` over the stored "1" (as it does on any cluster); the pod spec, immutable,
    # must accept it as no change at all
    assert "pod/ints configured" in kubectl(api.kubeconfig_path, "apply", "-f", "-", stdin=manifest).stdout
    after = kubectl(api.kubeconfig_path, "get", "pod", "ints", "-o", "jsonpath={.metadata.resourceVersion}").stdout
    assert after == before


def test_the_default_scheduler_waits_for_the_last_gate(cluster: LocalCluster) -> None:
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespaced_pod("default", _gated("held", "example.com/a"))
    core.create_namespaced_pod("default", pod_body("marker"))  # queued after the gated pod: bound means it was seen
    wait_for(lambda: core.read_namespaced_pod("marker", "default").spec.node_name, what="the marker pod bound")
    held = core.read_namespaced_pod("held", "default")
    assert held.spec.node_name is None
    assert not [e for e in core.list_namespaced_event("default").items
                if e.involved_object.name == "held" and e.reason == "FailedScheduling"]
    core.patch_namespaced_pod("held", "default", {"spec": {"schedulingGates": None}},
                              _content_type="application/merge-patch+json")
    assert wait_for(lambda: core.read_namespaced_pod("held", "default").spec.node_name, what="held bound") == "node-a"
