"""What the scheduler honours, as a user sees it with kubectl: required anti-affinity spreads a
Deployment over distinct nodes, `nvidia.com/gpu: 1` and `nvidia.com/mig-1g.10gb: 1` pods get an
allocated extended-resource claim and its status, an extended resource nobody provides is
Unschedulable naming it, a gated pod is never scheduled until its gates go, and a high-priority
GPU pod preempts a low-priority one on a full node. Runs against the local cluster in CI and
unchanged against a real cluster with the chart installed (E2E_KUBECONFIG)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Any, Iterator

from kubernetes import client

from e2e_support import Target, apply, delete, new_namespace, wait_pods_placed, watch_until

HOST = "kubernetes.io/hostname"


def _pods(target: Target, namespace: str) -> list[dict[str, Any]]:
    return json.loads(target.kubectl("get", "pods", "-n", namespace, "-o", "json"))["items"]


def _pod(name: str, scheduler: str, limits: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"schedulerName": scheduler, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": "ubuntu:24.04", "command": ["sleep", "86400"],
                                     "resources": {"limits": limits}}], **spec}}


@contextmanager
def _applied(target: Target, stem: str, objects: list[dict[str, Any]]) -> Iterator[str]:
    """The objects applied with kubectl in a new namespace (yielded), deleted afterwards."""
    namespace = new_namespace(target, stem)
    apply(target, namespace, objects)
    try:
        yield namespace
    finally:
        delete(target, namespace, objects)


def _describe(pods: dict[str, dict[str, Any]]) -> str:
    return json.dumps({n: {"node": p["spec"].get("nodeName"), "deleting": bool(p["metadata"].get("deletionTimestamp")),
                           "phase": p["status"].get("phase"), "nominated": p["status"].get("nominatedNodeName"),
                           "messages": [c.get("message") for c in p["status"].get("conditions") or [] if c.get("message")]}
                       for n, p in pods.items()})


def _unschedulable_message(target: Target, namespace: str, name: str, timeout: float = 60) -> str:
    def done(pods: dict[str, dict[str, Any]]) -> bool:
        pod = pods.get(name) or {}
        return any(c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable"
                   for c in (pod.get("status") or {}).get("conditions") or [])
    pods = watch_until(target, client.CoreV1Api(target.api).list_namespaced_pod, (namespace,), done, timeout,
                       lambda _: f"{namespace}/{name} reported Unschedulable")
    return next(c["message"] for c in pods[name]["status"]["conditions"] if c.get("type") == "PodScheduled")


def test_required_anti_affinity_deployment_lands_on_distinct_nodes(installed: Target) -> None:
    target = installed
    labels = {"app": "spread-gpu"}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "spread-gpu"},
        "spec": {"replicas": 3, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {**_pod("x", target.scheduler_name, {"nvidia.com/gpu": 1})["spec"],
                     "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                         {"labelSelector": {"matchLabels": labels}, "topologyKey": HOST}]}}}}}}
    with _applied(target, "anti", [deployment]) as namespace:
        pods = wait_pods_placed(target, namespace, 3, timeout=90)
        nodes = [p["spec"]["nodeName"] for p in pods]
        assert len(set(nodes)) == 3, nodes
        for p in pods:  # each replica holds its GPU through the extended-resource claim
            status = p["status"]["extendedResourceClaimStatus"]
            assert status["requestMappings"][0]["resourceName"] == "nvidia.com/gpu"
            claim = json.loads(target.kubectl("get", "resourceclaim", "-n", namespace, status["resourceClaimName"],
                                              "-o", "json"))
            assert claim["status"]["allocation"]["devices"]["results"][0]["pool"] == p["spec"]["nodeName"]


def test_mig_extended_resource_lands_on_a_mig_device(installed: Target) -> None:
    target = installed
    pod = _pod("mig-1g", target.scheduler_name, {"nvidia.com/mig-1g.10gb": 1})
    with _applied(target, "migext", [pod]) as namespace:
        (placed,) = wait_pods_placed(target, namespace, 1)
        name = placed["status"]["extendedResourceClaimStatus"]["resourceClaimName"]
        claim = json.loads(target.kubectl("get", "resourceclaim", "-n", namespace, name, "-o", "json"))
        (result,) = claim["status"]["allocation"]["devices"]["results"]
        assert "-mig-1g10gb-" in result["device"], result


def test_unknown_extended_resource_is_unschedulable_naming_it(installed: Target) -> None:
    target = installed
    pod = _pod("wants-fpga", target.scheduler_name, {"example.com/fpga": 1})
    with _applied(target, "unknown", [pod]) as namespace:
        message = _unschedulable_message(target, namespace, "wants-fpga")
        assert "Insufficient example.com/fpga" in message
        assert not _pods(target, namespace)[0]["spec"].get("nodeName")


def test_gated_pod_stays_unbound_until_its_gates_are_removed(installed: Target) -> None:
    target = installed
    pod = _pod("gated", target.scheduler_name, {"nvidia.com/gpu": 1},
               schedulingGates=[{"name": "example.com/admission"}])
    with _applied(target, "gated", [pod]) as namespace:
        got = _pods(target, namespace)[0]
        cond = next(c for c in got["status"].get("conditions") or [] if c["type"] == "PodScheduled")
        assert cond["reason"] == "SchedulingGated"
        assert not got["spec"].get("nodeName") and not got["status"].get("extendedResourceClaimStatus")
        assert target.kubectl("get", "resourceclaims", "-n", namespace, "-o", "name").strip() == ""
        target.kubectl("patch", "pod", "gated", "-n", namespace, "--type=json",
                       "-p", '[{"op": "remove", "path": "/spec/schedulingGates"}]')
        (placed,) = wait_pods_placed(target, namespace, 1)
        assert placed["status"]["extendedResourceClaimStatus"]["resourceClaimName"]


def test_high_priority_pod_preempts_a_low_priority_one_on_a_full_node(installed: Target) -> None:
    target = installed
    classes = [{"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
                "value": value, "description": "e2e"} for name, value in (("e2e-low", 10), ("e2e-high", 100000))]
    apply(target, None, classes)
    # the L4 node has four whole GPUs: fill them with low-priority pods, then ask for one more
    nodes = json.loads(target.kubectl("get", "nodes", "-l", "gpu.nvidia.com/model=l4", "-o", "json"))["items"]
    if not nodes:
        import pytest
        pytest.skip("no node labelled gpu.nvidia.com/model=l4 in this cluster")
    node = nodes[0]["metadata"]["name"]
    gpus = sum(1 for s in json.loads(target.kubectl("get", "resourceslices", "-o", "json"))["items"]
               if s["spec"].get("nodeName") == node for _ in s["spec"].get("devices") or [])
    pin = {"nodeSelector": {HOST: node}}
    low = [_pod(f"low-{i}", target.scheduler_name, {"nvidia.com/gpu": 1}, priorityClassName="e2e-low", **pin)
           for i in range(gpus)]
    high = _pod("urgent", target.scheduler_name, {"nvidia.com/gpu": 1}, priorityClassName="e2e-high", **pin)
    namespace = new_namespace(target, "preempt")
    apply(target, namespace, low)
    try:
        wait_pods_placed(target, namespace, gpus, timeout=90)
        apply(target, namespace, [high])

        def done(pods: dict[str, dict[str, Any]]) -> bool:
            urgent = pods.get("urgent") or {}
            return bool(urgent.get("spec", {}).get("nodeName")) and urgent.get("status", {}).get("phase") == "Running"
        pods = watch_until(target, client.CoreV1Api(target.api).list_namespaced_pod, (namespace,), done, 120,
                           lambda ps: "urgent running: " + _describe(ps))
        assert pods["urgent"]["spec"]["priority"] == 100000
        assert pods["urgent"]["spec"]["nodeName"] == node
        survivors = [n for n in pods if n.startswith("low-")]
        assert len(survivors) == gpus - 1  # exactly one victim
        events = json.loads(target.kubectl("get", "events", "-n", namespace, "-o", "json"))["items"]
        assert any(e.get("reason") == "Preempted" for e in events)
    finally:
        delete(target, namespace, low + [high])
        target.kubectl("delete", "priorityclass", "e2e-low", "e2e-high", "--ignore-not-found")
