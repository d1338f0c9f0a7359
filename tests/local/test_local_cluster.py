"""The cluster emulation: claim-template controller, kubelets, and the real kubelet plugin over its socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from driver.local.claims import DELETE_PROTECTION, POD_CLAIM_ANNOTATION
from driver.devices.classes import device_classes
from driver.local.cluster import LocalCluster, driver_plugin_factory
from driver.local.clusterfile import parse_cluster
from wait_helpers import wait_for

SMALL = {"nodes": [
    {"name": "node-a", "cpu": "16", "memory": "64Gi", "nvml": "l4-x4", "sharing": {"mode": "whole"},
     "labels": {"zone": "a"}},
    {"name": "node-b", "cpu": "8", "memory": "32Gi"},
]}

TEMPLATE = {"metadata": {"name": "one-gpu", "labels": {}},
            "spec": {"metadata": {"labels": {"team": "ml"}},
                     "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com"}}]}}}}


def _pod(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "spec": {"schedulerName": "gpu-dra-scheduler", "containers": [{"name": "main", "image": "cuda:12"}],
                     "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "one-gpu"}]}}


def _raw(resp: Any) -> dict[str, Any]:
    return json.loads(resp.data)


class Env:
    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        api = cluster.api_client()
        self.core = client.CoreV1Api(api)
        self.dra = client.ResourceV1Api(api)

    def claim_of(self, pod: str) -> str:
        def name() -> str | None:
            statuses = self.core.read_namespaced_pod(pod, "default").status.resource_claim_statuses or []
            return statuses[0].resource_claim_name if statuses else None
        return wait_for(name, what=f"claim of {pod}")

    def schedule(self, pod: str, node: str = "node-a", device: str = "gpu-0") -> str:
        """Do what the scheduler does: finalizer, allocation + reservation, then bind."""
        claim = self.claim_of(pod)
        uid = self.core.read_namespaced_pod(pod, "default").metadata.uid
        self.dra.patch_namespaced_resource_claim(claim, "default", {"metadata": {"finalizers": [DELETE_PROTECTION]}},
                                                 _preload_content=False)
        body = _raw(self.dra.read_namespaced_resource_claim(claim, "default", _preload_content=False))
        body["status"] = {
            "allocation": {"devices": {"results": [{"request": "gpu", "driver": "gpu.nvidia.com", "pool": node,
                                                    "device": device}]},
                           "nodeSelector": {"nodeSelectorTerms": [{"matchFields": [
                               {"key": "metadata.name", "operator": "In", "values": [node]}]}]}},
            "reservedFor": [{"resource": "pods", "name": pod, "uid": uid}]}
        self.dra.replace_namespaced_resource_claim_status(claim, "default", body, _preload_content=False)
        self.core.create_namespaced_pod_binding(pod, "default", {"metadata": {"name": pod}, "target": {"name": node}},
                                                _preload_content=False)
        return claim

    def phase(self, pod: str) -> str | None:
        try:
            return self.core.read_namespaced_pod(pod, "default").status.phase
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def events(self, pod: str) -> list[Any]:
        return self.core.list_namespaced_event("default", field_selector=f"involvedObject.name={pod}").items


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with LocalCluster(parse_cluster(SMALL), workdir=tmp_path, plugin_factory=None, lease_renew_s=0.2) as cluster:
        e = Env(cluster)
        e.dra.create_namespaced_resource_claim_template("default", TEMPLATE, _preload_content=False)
        yield e


def test_nodes_are_registered_with_capacity_and_leases(env: Env) -> None:
    nodes = {n.metadata.name: n for n in env.core.list_node().items}
    assert sorted(nodes) == ["node-a", "node-b"]
    a = nodes["node-a"]
    assert a.status.capacity == {"cpu": "16", "memory": "64Gi", "pods": "110"}
    assert a.metadata.labels["kubernetes.io/hostname"] == "node-a" and a.metadata.labels["zone"] == "a"
    assert [(c.type, c.status) for c in a.status.conditions] == [("Ready", "True")]
    coordination = client.CoordinationV1Api(env.cluster.api_client())
    leases = coordination.list_namespaced_lease("kube-node-lease").items
    assert sorted(lease.spec.holder_identity for lease in leases) == ["node-a", "node-b"]
    first = leases[0].metadata.resource_version
    wait_for(lambda: coordination.read_namespaced_lease(leases[0].metadata.name, "kube-node-lease").metadata.resource_version
             != first, what="lease renewed")


def test_the_drivers_device_classes_exist_from_the_start(env: Env) -> None:
    classes = {c["metadata"]["name"]: c for c in _raw(env.dra.list_device_class(_preload_content=False))["items"]}
    assert sorted(classes) == sorted(c["metadata"]["name"] for c in device_classes("gpu.nvidia.com"))
    assert classes["mig.nvidia.com"]["spec"]["selectors"][0]["cel"]["expression"] == \
        "device.driver == 'gpu.nvidia.com' && device.attributes['gpu.nvidia.com'].type == 'mig'"


def test_device_classes_follow_the_driver_name_and_can_be_left_out(tmp_path: Path) -> None:
    spec = parse_cluster({"driverName": "gpu.example.com", "nodes": [{"name": "node-x", "cpu": "4", "memory": "8Gi"}]})
    with LocalCluster(spec, workdir=tmp_path / "a", plugin_factory=None, kubelets=False, claim_controller=False,
                      workloads=False, default_scheduler=False) as cluster:
        dra = client.ResourceV1Api(cluster.api_client())
        assert sorted(c.metadata.name for c in dra.list_device_class().items) == sorted(
            c["metadata"]["name"] for c in device_classes("gpu.example.com"))
        assert cluster.create_device_classes() == []  # already there: kept, nothing created twice
    with LocalCluster(spec, workdir=tmp_path / "b", plugin_factory=None, kubelets=False, claim_controller=False,
                      workloads=False, default_scheduler=False, device_classes=False) as cluster:
        assert client.ResourceV1Api(cluster.api_client()).list_device_class().items == []


def test_claims_are_generated_from_templates(env: Env) -> None:
    env.core.create_namespaced_pod("default", _pod("train"))
    name = env.claim_of("train")
    claim = _raw(env.dra.read_namespaced_resource_claim(name, "default", _preload_content=False))
    pod = env.core.read_namespaced_pod("train", "default")
    assert name.startswith("train-gpu-") and len(name) == len("train-gpu-") + 5
    assert claim["metadata"]["annotations"][POD_CLAIM_ANNOTATION] == "gpu"
    assert claim["metadata"]["labels"] == {"team": "ml"}
    assert claim["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Pod", "name": "train",
                                                     "uid": pod.metadata.uid, "controller": True,
                                                     "blockOwnerDeletion": True}]
    assert claim["spec"] == TEMPLATE["spec"]["spec"]
    assert len(env.dra.list_namespaced_resource_claim("default").items) == 1  # exactly one, even after resyncs


def test_missing_template_is_reported_as_an_event(env: Env) -> None:
    body = _pod("lost")
    body["spec"]["resourceClaims"][0]["resourceClaimTemplateName"] = "nope"
    env.core.create_namespaced_pod("default", body)
    event = wait_for(lambda: env.events("lost"), what="FailedResourceClaimCreation event")[0]
    assert event.reason == "FailedResourceClaimCreation" and '"nope" not found' in event.message
    assert env.dra.list_namespaced_resource_claim("default").items == []


def test_pod_runs_then_its_claim_is_released_and_deleted(env: Env) -> None:
    env.core.create_namespaced_pod("default", _pod("job"))
    claim = env.schedule("job")
    wait_for(lambda: env.phase("job") == "Running", what="pod Running")
    pod = env.core.read_namespaced_pod("job", "default")
    assert pod.status.container_statuses[0].ready and pod.status.container_statuses[0].state.running
    assert {c.type for c in pod.status.conditions} >= {"Ready", "ContainersReady", "PodScheduled"}
    env.core.delete_namespaced_pod("job", "default")  # graceful: the kubelet finishes it
    wait_for(lambda: env.phase("job") is None, what="pod gone")
    wait_for(lambda: not env.dra.list_namespaced_resource_claim("default").items, what="generated claim deleted")
    with pytest.raises(ApiException):
        env.dra.read_namespaced_resource_claim(claim, "default")


def test_pod_with_run_seconds_succeeds_and_its_claim_is_deleted(env: Env) -> None:
    body = _pod("batch")
    body["metadata"]["annotations"] = {"local.gpu-dra.io/run-seconds": "0.2"}
    env.core.create_namespaced_pod("default", body)
    env.schedule("batch")
    wait_for(lambda: env.phase("batch") == "Succeeded", what="pod Succeeded")
    state = env.core.read_namespaced_pod("batch", "default").status.container_statuses[0].state
    assert state.terminated.exit_code == 0 and state.terminated.reason == "Completed"
    # the pod still exists, but its generated claim is released and deleted (FACTS 7)
    wait_for(lambda: not env.dra.list_namespaced_resource_claim("default").items, what="claim of a finished pod deleted")
    assert env.phase("batch") == "Succeeded"


def test_finished_pod_releases_a_shared_claim(env: Env) -> None:
    """A claim not owned by the pod: reservation dropped, allocation cleared, finalizer removed, claim kept."""
    env.dra.create_namespaced_resource_claim("default", {"metadata": {"name": "shared"},
                                                         "spec": TEMPLATE["spec"]["spec"]}, _preload_content=False)
    env.core.create_namespaced_pod("default", {"metadata": {"name": "user"},
                                               "spec": {"containers": [{"name": "main", "image": "cuda:12"}],
                                                        "resourceClaims": [{"name": "gpu", "resourceClaimName": "shared"}]}})
    env.core.patch_namespaced_pod_status("user", "default", {"status": {"resourceClaimStatuses": [
        {"name": "gpu", "resourceClaimName": "shared"}]}})
    env.schedule("user")
    wait_for(lambda: env.phase("user") == "Running", what="pod Running")
    env.core.patch_namespaced_pod_status("user", "default", {"status": {"phase": "Succeeded"}})

    def released() -> dict[str, Any] | None:
        c = _raw(env.dra.read_namespaced_resource_claim("shared", "default", _preload_content=False))
        done = not c.get("status", {}).get("allocation") and DELETE_PROTECTION not in (c["metadata"].get("finalizers") or [])
        return c if done else None

    claim = wait_for(released, what="claim deallocated")
    assert not claim["status"].get("reservedFor")


def test_pod_waits_until_its_claim_is_reserved(env: Env) -> None:
    env.core.create_namespaced_pod("default", _pod("early"))
    env.claim_of("early")
    env.core.create_namespaced_pod_binding("early", "default", {"metadata": {"name": "early"},
                                                                 "target": {"name": "node-a"}}, _preload_content=False)

    def waiting_reason() -> str | None:
        statuses = env.core.read_namespaced_pod("early", "default").status.container_statuses or []
        return statuses[0].state.waiting.message if statuses and statuses[0].state.waiting else None

    assert "is not allocated" in wait_for(waiting_reason, what="container waiting")
    assert env.phase("early") == "Pending"


@pytest.fixture
def plugin_env(tmp_path: Path) -> Iterator[Env]:
    pytest.importorskip("driver.plugin.driver")
    spec = parse_cluster({"nodes": [SMALL["nodes"][0]]})
    with LocalCluster(spec, workdir=tmp_path, plugin_factory=driver_plugin_factory) as cluster:
        e = Env(cluster)
        e.dra.create_namespaced_resource_claim_template("default", TEMPLATE, _preload_content=False)
        yield e


def test_kubelet_prepares_through_the_real_plugin(plugin_env: Env) -> None:
    env = plugin_env
    wait_for(lambda: env.dra.list_resource_slice(field_selector="spec.nodeName=node-a").items, what="slices published")
    env.core.create_namespaced_pod("default", _pod("gpu-job"))
    claim = env.schedule("gpu-job", device="gpu-1")
    wait_for(lambda: env.phase("gpu-job") == "Running", timeout=20, what="pod Running after NodePrepareResources")
    uid = env.dra.read_namespaced_resource_claim(claim, "default").metadata.uid
    cdi_dir = env.cluster.workdir / "n" / "node-a" / "cdi"
    assert [p.name for p in cdi_dir.iterdir() if uid in p.name], "the plugin wrote the claim's CDI spec"
    env.core.delete_namespaced_pod("gpu-job", "default")
    wait_for(lambda: env.phase("gpu-job") is None, what="pod gone")
    wait_for(lambda: not [p for p in cdi_dir.iterdir() if uid in p.name], what="NodeUnprepareResources removed the spec")


def test_kubelet_reports_plugin_errors(plugin_env: Env) -> None:
    env = plugin_env
    env.core.create_namespaced_pod("default", _pod("bad"))
    env.schedule("bad", device="gpu-99")  # not a device of this node: the plugin refuses
    event = wait_for(lambda: [e for e in env.events("bad") if e.reason == "FailedPrepareDynamicResources"],
                     timeout=20, what="FailedPrepareDynamicResources event")[0]
    assert event.type == "Warning" and "gpu-99" in event.message
    waiting = env.core.read_namespaced_pod("bad", "default").status.container_statuses[0].state.waiting
    assert waiting.reason == "ContainerCreating"
    assert env.phase("bad") == "Pending"


def test_deployment_creates_scales_and_deletes_pods(env: Env) -> None:
    apps = client.AppsV1Api(env.cluster.api_client())
    labels = {"app": "infer"}
    apps.create_namespaced_deployment("default", {
        "metadata": {"name": "infer"},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "main", "image": "cuda:12"}]}}}})

    def pods() -> list[Any]:
        return [p for p in env.core.list_namespaced_pod("default", label_selector="app=infer").items
                if not p.metadata.deletion_timestamp]

    made = wait_for(lambda: pods() if len(pods()) == 2 else None, what="two replicas")
    rs_name = made[0].metadata.owner_references[0].name
    assert rs_name.startswith("infer-") and made[0].metadata.labels["pod-template-hash"] in rs_name
    wait_for(lambda: (apps.read_namespaced_deployment("infer", "default").status.available_replicas or 0) == 2,
             what="deployment available")
    apps.patch_namespaced_deployment("infer", "default", {"spec": {"replicas": 1}})
    wait_for(lambda: len(pods()) == 1, what="scaled down to one pod")
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("infer", "default", {"spec": {"template": {"metadata": {"labels": {"app": "x"}}}}})
    assert err.value.status == 422 and "spec.template.metadata.labels" in err.value.body
    apps.delete_namespaced_deployment("infer", "default")
    wait_for(lambda: not env.core.list_namespaced_pod("default").items, timeout=20, what="pods collected")
    assert apps.list_namespaced_replica_set("default").items == []


def test_claim_controller_retries_through_api_failures(env: Env) -> None:
    env.cluster.api.faults.set(verb="create", resource="resourceclaims", error_rate=1.0, count=3)
    env.cluster.api.faults.set(verb="patch", resource="pods/status", conflict_rate=1.0, count=2)
    env.core.create_namespaced_pod("default", _pod("flaky"))
    name = env.claim_of("flaky")
    assert [c.metadata.name for c in env.dra.list_namespaced_resource_claim("default").items] == [name]


def test_default_scheduler_places_pods_without_claims(env: Env) -> None:
    small = {"metadata": {"name": "web"}, "spec": {"nodeSelector": {"zone": "a"}, "containers": [
        {"name": "main", "image": "nginx", "resources": {"requests": {"cpu": "4", "memory": "1Gi"}}}]}}
    env.core.create_namespaced_pod("default", small)
    wait_for(lambda: env.phase("web") == "Running", what="pod scheduled and running")
    assert env.core.read_namespaced_pod("web", "default").spec.node_name == "node-a"
    assert "Scheduled" in wait_for(lambda: {e.reason for e in env.events("web")} & {"Scheduled"}, what="Scheduled event")
    huge = {"metadata": {"name": "huge"}, "spec": {"containers": [
        {"name": "main", "image": "nginx", "resources": {"requests": {"cpu": "13"}}}]}}
    env.core.create_namespaced_pod("default", huge)  # node-a has 12 cpu left, node-b 8
    event = wait_for(lambda: env.events("huge"), what="FailedScheduling")[0]
    assert event.reason == "FailedScheduling" and "0/2 nodes are available: 2 Insufficient cpu or memory" in event.message
    assert env.core.read_namespaced_pod("huge", "default").spec.node_name is None
    with_claim = _pod("dra")
    with_claim["spec"]["schedulerName"] = "default-scheduler"
    env.core.create_namespaced_pod("default", with_claim)
    event = wait_for(lambda: [e for e in env.events("dra") if e.reason == "FailedScheduling"], what="DRA warning")[0]
    assert "gpu-dra-scheduler" in event.message


def test_a_restarted_claim_controller_adopts_the_claim_it_made_before(kube: client.ApiClient, core: client.CoreV1Api,
                                                                      dra: client.ResourceV1Api) -> None:
    """Its first sync must find the pod's existing claim in its (owner-indexed) cache, not make a second."""
    from driver.local.claims import ClaimController

    dra.create_namespaced_resource_claim_template("default", TEMPLATE, _preload_content=False)
    pod = core.create_namespaced_pod("default", _pod("resumed"))
    earlier = _raw(dra.create_namespaced_resource_claim("default", {
        "metadata": {"generateName": "resumed-gpu-", "annotations": {POD_CLAIM_ANNOTATION: "gpu"},
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "resumed", "uid": pod.metadata.uid,
                                          "controller": True, "blockOwnerDeletion": True}]},
        "spec": TEMPLATE["spec"]["spec"]}, _preload_content=False))
    controller = ClaimController(kube, workers=2)
    controller.start()
    try:
        statuses = wait_for(lambda: core.read_namespaced_pod("resumed", "default").status.resource_claim_statuses,
                            what="the claim recorded in the pod's status")
        assert [(s.name, s.resource_claim_name) for s in statuses] == [("gpu", earlier["metadata"]["name"])]
        assert [c.metadata.name for c in dra.list_namespaced_resource_claim("default").items] == [earlier["metadata"]["name"]]
    finally:
        controller.stop()


def test_claim_benchmark_generates_exactly_one_claim_per_pod() -> None:
    from driver.local.bench import run_claims

    figures = run_claims(30, workers=3, timeout=60)
    assert figures["finished"] and figures["claims"] == 30 and figures["claims_per_second"] > 0
    with pytest.raises(ValueError, match="positive"):
        run_claims(0)
