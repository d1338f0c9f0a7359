"""Imperative kubectl commands (typed client: protobuf bodies, the scale subresource) against an
in-process local cluster, checked through the official Python client."""

from __future__ import annotations

import base64
import shutil
from typing import Any

import pytest
from kubernetes import client

from driver.local.cluster import LocalCluster
from local_helpers import KubectlOn
from wait_helpers import wait_for

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")


class Kubectl(KubectlOn):
    def __init__(self, cluster: LocalCluster) -> None:
        super().__init__(cluster)
        self.core, self.apps = client.CoreV1Api(self.api), client.AppsV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)

    def live_pods(self, selector: str) -> list[dict[str, Any]]:
        pods = self.raw(self.core.list_namespaced_pod, "default")["items"]
        wanted = dict(term.split("=") for term in selector.split(","))
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")
                and all(p["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())]


@pytest.fixture(scope="module")
def kubectl(one_node: LocalCluster) -> Kubectl:
    return Kubectl(one_node)


def test_create_namespace_configmap_secret_serviceaccount(kubectl: Kubectl) -> None:
    assert kubectl("create", "namespace", "ns1").stdout.strip() == "namespace/ns1 created"
    ns = kubectl.core.read_namespace("ns1")
    assert ns.status.phase == "Active" and ns.metadata.labels == {"kubernetes.io/metadata.name": "ns1"}

    kubectl("create", "configmap", "cm1", "--from-literal=a=b", "--from-literal=c=d")
    assert kubectl.core.read_namespaced_config_map("cm1", "default").data == {"a": "b", "c": "d"}

    kubectl("create", "serviceaccount", "sa1", "-n", "ns1")
    sa = kubectl.raw(kubectl.core.read_namespaced_service_account, "sa1", "ns1")
    assert sa["kind"] == "ServiceAccount" and sa["metadata"]["namespace"] == "ns1" and sa["metadata"]["uid"]

    kubectl("create", "secret", "generic", "s1", "--from-literal=token=s3cret")
    secret = kubectl.core.read_namespaced_secret("s1", "default")
    assert secret.type == "Opaque" and base64.b64decode(secret.data["token"]) == b"s3cret"
    listing = kubectl("get", "namespaces,configmaps,secrets").stdout
    assert "namespace/ns1" in listing and "configmap/cm1" in listing and "secret/s1" in listing


def test_create_deployment_then_scale_converges(kubectl: Kubectl) -> None:
    kubectl("create", "deployment", "web", "--image=nginx", "--replicas=3", "--port=80")
    dep = kubectl.raw(kubectl.apps.read_namespaced_deployment, "web", "default")
    assert dep["spec"]["replicas"] == 3 and dep["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert dep["spec"]["template"]["metadata"]["labels"] == {"app": "web"}
    assert dep["spec"]["template"]["spec"]["containers"] == [
        {"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}], "resources": {}}]
    wait_for(lambda: len(kubectl.live_pods("app=web")) == 3, timeout=30, what="3 web pods")

    assert kubectl("scale", "deployment", "web", "--replicas=1").stdout.strip() == "deployment.apps/web scaled"
    assert kubectl.apps.read_namespaced_deployment("web", "default").spec.replicas == 1
    wait_for(lambda: len(kubectl.live_pods("app=web")) == 1, timeout=30, what="web scaled down to 1 pod")
    rs = kubectl.raw(kubectl.apps.list_namespaced_replica_set, "default")["items"]
    assert [r["spec"]["replicas"] for r in rs if r["metadata"]["name"].startswith("web-")] == [1]

    # with a precondition kubectl reads the Scale and PUTs it back (the update path)
    kubectl("scale", "deployment", "web", "--current-replicas=1", "--replicas=2")
    wait_for(lambda: len(kubectl.live_pods("app=web")) == 2, timeout=30, what="web scaled up to 2 pods")
    wrong = kubectl("scale", "deployment", "web", "--current-replicas=5", "--replicas=4", check=False)
    assert wrong.returncode != 0 and kubectl.apps.read_namespaced_deployment("web", "default").spec.replicas == 2


def test_create_deployment_with_zero_replicas_keeps_zero(kubectl: Kubectl) -> None:
    kubectl("create", "deployment", "idle", "--image=nginx", "--replicas=0")
    assert kubectl.apps.read_namespaced_deployment("idle", "default").spec.replicas == 0
    scale = kubectl.raw(kubectl.apps.read_namespaced_deployment_scale, "idle", "default")
    assert scale["spec"] == {"replicas": 0} and scale["status"]["selector"] == "app=idle"


def test_create_job(kubectl: Kubectl) -> None:
    kubectl("create", "job", "j1", "--image=busybox", "--", "echo", "hi")
    job = kubectl.raw(kubectl.batch.read_namespaced_job, "j1", "default")
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["containers"] == [{"name": "j1", "image": "busybox", "command": ["echo", "hi"], "resources": {}}]
    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert job["spec"]["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "j1"
    assert job["spec"]["completions"] == 1 and job["spec"]["backoffLimit"] == 6
    assert "job.batch/j1" in kubectl("get", "jobs", "-o", "name").stdout


def test_invalid_creates_fail_with_the_field_and_store_nothing(kubectl: Kubectl) -> None:
    bad = kubectl("create", "namespace", "Bad_NS", check=False)
    assert bad.returncode != 0 and "metadata.name" in bad.stderr
    assert "Bad_NS" not in [n.metadata.name for n in kubectl.core.list_namespace().items]
    bad = kubectl("create", "deployment", "neg", "--image=nginx", "--replicas=-2", check=False)
    assert bad.returncode != 0 and "spec.replicas" in bad.stderr
    assert "neg" not in [d.metadata.name for d in kubectl.apps.list_namespaced_deployment("default").items]
    kubectl("create", "configmap", "dup")
    again = kubectl("create", "configmap", "dup", check=False)
    assert again.returncode != 0 and "already exists" in again.stderr
