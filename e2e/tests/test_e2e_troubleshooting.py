"""What the troubleshooting guide (docs/deploy.md) promises an operator: a pod whose claim cannot
be satisfied stays Pending with the reason on the pod (PodScheduled=False, Unschedulable, and a
FailedScheduling event) naming what is missing."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from e2e_support import Target, apply, delete, new_namespace, watch_until

# No GPU in the target clusters carries a 7g.80gb instance (their MIG nodes use mixed-workload).
IMPOSSIBLE = "7g.80gb"


def _manifests(profile: str, scheduler: str) -> list[dict[str, Any]]:
    template = {
        "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate", "metadata": {"name": "big-mig"},
        "spec": {"spec": {"devices": {"requests": [{"name": "mig", "exactly": {
            "deviceClassName": "mig.nvidia.com",
            "selectors": [{"cel": {"expression": f"device.attributes['gpu.nvidia.com'].profile == '{profile}'"}}],
        }}]}}},
    }
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "waits-for-mig"},
        "spec": {
            "schedulerName": scheduler,
            "resourceClaims": [{"name": "mig", "resourceClaimTemplateName": "big-mig"}],
            "containers": [{"name": "main", "image": "ubuntu:24.04", "command": ["sleep", "86400"],
                            "resources": {"claims": [{"name": "mig"}]}}],
        },
    }
    return [template, pod]


def _unschedulable(pod: dict[str, Any]) -> dict[str, Any] | None:
    for condition in pod.get("status", {}).get("conditions", []) or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return condition
    return None


def test_an_unsatisfiable_claim_leaves_its_reason_on_the_pod(installed: Target) -> None:
    target = installed
    objects = _manifests(IMPOSSIBLE, target.scheduler_name)
    namespace = new_namespace(target, "pending")
    apply(target, namespace, objects)
    try:
        core = client.CoreV1Api(target.api)
        pods = watch_until(
            target, core.list_namespaced_pod, (namespace,),
            lambda found: any(_unschedulable(p) for p in found.values()), 60,
            lambda found: f"no PodScheduled=False condition on {sorted(found)}")
        condition = _unschedulable(pods["waits-for-mig"])
        assert condition is not None and condition["reason"] == "Unschedulable"
        message = condition.get("message", "")
        # e.g. "0/5 nodes are available: ... request mig: no device of class 'mig.nvidia.com' matches (...)"
        assert "request mig" in message and "'mig.nvidia.com'" in message, f"the condition names the request: {condition}"
        assert "does not exist" not in message
        assert not pods["waits-for-mig"]["spec"].get("nodeName")
        events = watch_until(
            target, core.list_namespaced_event, (namespace,),
            lambda found: any(e.get("reason") == "FailedScheduling" for e in found.values()), 30,
            lambda found: f"no FailedScheduling event among {[e.get('reason') for e in found.values()]}")
        (event,) = [e for e in events.values() if e.get("reason") == "FailedScheduling"][:1]
        assert event["involvedObject"]["name"] == "waits-for-mig"
    finally:
        delete(target, namespace, objects)
