"""Deployment and ReplicaSet controllers (kube-controller-manager's), enough for GPU workloads.

A Deployment owns one ReplicaSet per pod template (named `<deployment>-<template hash>`, pods
labelled `pod-template-hash`); the current one is scaled to `spec.replicas`, older ones to 0 (a
rollout without surge limits). A ReplicaSet keeps `replicas` pods that it controls, creating
them from its template and deleting the surplus (unscheduled pods first). Both report replica
counts in status. Deleting a Deployment removes its ReplicaSets and pods through owner
references (the API server's garbage collector), as in a real cluster.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kubernetes import client

from driver import log
from driver.local.controllerloop import ControllerLoop
from driver.local.informer import Informer
from driver.local.workqueue import WorkQueue

logger = log.get(__name__)

HASH_LABEL = "pod-template-hash"
_HASH_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def template_hash(template: dict[str, Any]) -> str:
    """A stable 10-character name-safe hash of a pod template."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(_HASH_CHARS[b % len(_HASH_CHARS)] for b in digest[:10])


def _raw(resp: Any) -> dict[str, Any]:
    return json.loads(resp.data)


def _controller_of(obj: dict[str, Any], kind: str) -> tuple[str, str] | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == kind and ref.get("controller"):
            return ref.get("name", ""), ref.get("uid", "")
    return None


def _owner_ref(obj: dict[str, Any], kind: str, api_version: str) -> dict[str, Any]:
    meta = obj["metadata"]
    return {"apiVersion": api_version, "kind": kind, "name": meta["name"], "uid": meta["uid"], "controller": True,
            "blockOwnerDeletion": True}


def _ready(pod: dict[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


class WorkloadController:
    """Start/stop component running both controllers on one work queue."""

    def __init__(self, api_client: client.ApiClient, retry_s: float = 0.5) -> None:
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.retry_s = retry_s
        self.queue = WorkQueue()
        informers = [
            Informer("deployments", self.apps.list_deployment_for_all_namespaces, self._on_deployment),
            Informer("replicasets", self.apps.list_replica_set_for_all_namespaces, self._on_replicaset),
            Informer("workload-pods", self.core.list_pod_for_all_namespaces, self._on_pod),
        ]
        self._loop = ControllerLoop("workload-controller", self.queue, informers, self._sync, retry_s=retry_s)

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def _on_deployment(self, etype: str, obj: dict[str, Any]) -> None:
        if etype != "DELETED":
            self.queue.add(("deployment", obj["metadata"]["namespace"], obj["metadata"]["name"]))

    def _on_replicaset(self, etype: str, obj: dict[str, Any]) -> None:
        ns = obj["metadata"]["namespace"]
        if etype != "DELETED":
            self.queue.add(("replicaset", ns, obj["metadata"]["name"]))
        owner = _controller_of(obj, "Deployment")
        if owner:
            self.queue.add(("deployment", ns, owner[0]))

    def _on_pod(self, etype: str, obj: dict[str, Any]) -> None:
        owner = _controller_of(obj, "ReplicaSet")
        if owner:
            self.queue.add(("replicaset", obj["metadata"]["namespace"], owner[0]))

    def _sync(self, key: Any) -> None:
        kind, ns, name = key
        if kind == "deployment":
            self.sync_deployment(ns, name)
        else:
            self.sync_replicaset(ns, name)

    # --- deployments ---------------------------------------------------------------------

    def sync_deployment(self, ns: str, name: str) -> None:
        dep = _raw(self.apps.read_namespaced_deployment(name, ns, _preload_content=False))
        if dep["metadata"].get("deletionTimestamp"):
            return
        spec = dep["spec"]
        template = json.loads(json.dumps(spec["template"]))
        digest = template_hash(template)
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = digest
        owned = [rs for rs in _raw(self.apps.list_namespaced_replica_set(ns, _preload_content=False))["items"]
                 if _controller_of(rs, "Deployment") == (name, dep["metadata"]["uid"])]
        current = next((rs for rs in owned if rs["metadata"].get("labels", {}).get(HASH_LABEL) == digest), None)
        if current is None:
            selector = json.loads(json.dumps(spec["selector"]))
            selector.setdefault("matchLabels", {})[HASH_LABEL] = digest
            body = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": f"{name}-{digest}", "namespace": ns,
                                 "labels": dict(template["metadata"]["labels"]),
                                 "ownerReferences": [_owner_ref(dep, "Deployment", "apps/v1")]},
                    "spec": {"replicas": spec["replicas"], "selector": selector, "template": template}}
            current = _raw(self.apps.create_namespaced_replica_set(ns, body, _preload_content=False))
            owned.append(current)
            logger.info("replicaset_created", namespace=ns, deployment=name, replicaset=current["metadata"]["name"])
        for rs in owned:
            want = spec["replicas"] if rs is current else 0
            if rs["spec"].get("replicas") != want:
                self.apps.patch_namespaced_replica_set(rs["metadata"]["name"], ns, {"spec": {"replicas": want}},
                                                       _preload_content=False)
        statuses = [rs.get("status") or {} for rs in owned]
        status = {
            "observedGeneration": dep["metadata"].get("generation", 1),
            "replicas": sum(s.get("replicas", 0) for s in statuses),
            "updatedReplicas": (current.get("status") or {}).get("replicas", 0),
            "readyReplicas": sum(s.get("readyReplicas", 0) for s in statuses),
            "availableReplicas": sum(s.get("availableReplicas", 0) for s in statuses),
        }
        status["unavailableReplicas"] = max(spec["replicas"] - status["availableReplicas"], 0)
        available = "True" if status["availableReplicas"] >= spec["replicas"] else "False"
        status["conditions"] = [{"type": "Available", "status": available,
                                 "reason": "MinimumReplicasAvailable" if available == "True" else "MinimumReplicasUnavailable"}]
        old_status = dict(dep.get("status") or {})
        old_conds = old_status.pop("conditions", None) or []
        new_conds = status.pop("conditions")
        if old_status != status or [(c.get("type"), c.get("status")) for c in old_conds] != \
                [(c["type"], c["status"]) for c in new_conds]:
            dep["status"] = {**status, "conditions": new_conds}
            self.apps.replace_namespaced_deployment_status(name, ns, dep, _preload_content=False)

    # --- replicasets ---------------------------------------------------------------------

    def sync_replicaset(self, ns: str, name: str) -> None:
        rs = _raw(self.apps.read_namespaced_replica_set(name, ns, _preload_content=False))
        if rs["metadata"].get("deletionTimestamp"):
            return
        uid = rs["metadata"]["uid"]
        match = rs["spec"]["selector"].get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(match.items()))
        pods = [p for p in _raw(self.core.list_namespaced_pod(ns, label_selector=selector, _preload_content=False))["items"]
                if _controller_of(p, "ReplicaSet") == (name, uid)]
        alive = [p for p in pods if not p["metadata"].get("deletionTimestamp")
                 and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        want = int(rs["spec"].get("replicas", 1))
        template = rs["spec"]["template"]
        for _ in range(want - len(alive)):
            body = {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"generateName": f"{name}-", "namespace": ns,
                                 "labels": dict((template.get("metadata") or {}).get("labels") or {}),
                                 "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                                 "ownerReferences": [_owner_ref(rs, "ReplicaSet", "apps/v1")]},
                    "spec": template["spec"]}
            pod = _raw(self.core.create_namespaced_pod(ns, body, _preload_content=False))
            alive.append(pod)
            logger.info("pod_created", namespace=ns, replicaset=name, pod=pod["metadata"]["name"])
        if len(alive) > want:
            # surplus: unscheduled first, then not ready, then newest
            alive.sort(key=lambda p: (bool((p.get("spec") or {}).get("nodeName")), _ready(p),
                                      p["metadata"].get("creationTimestamp", "")), reverse=False)
            for pod in alive[: len(alive) - want]:
                self.core.delete_namespaced_pod(pod["metadata"]["name"], ns, _preload_content=False)
            alive = alive[len(alive) - want:]
        ready = sum(1 for p in alive if _ready(p))
        status = {"replicas": len(alive), "fullyLabeledReplicas": len(alive), "readyReplicas": ready,
                  "availableReplicas": ready, "observedGeneration": rs["metadata"].get("generation", 1)}
        if rs.get("status") != status:
            rs["status"] = status
            self.apps.replace_namespaced_replica_set_status(name, ns, rs, _preload_content=False)
