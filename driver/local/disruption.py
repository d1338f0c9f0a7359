"""The disruption controller (kube-controller-manager's): keeps every PodDisruptionBudget's status current.

Preemption and eviction read `status.disruptionsAllowed`; on a real cluster the disruption
controller recomputes it whenever a selected pod, the budget, or the scale of the pods'
controllers changes. This one watches PDBs, pods, ReplicaSets and Deployments, and for each
budget of a namespace that changed computes the status with `policy.compute_status` (the rules
are documented there) and writes it through the status subresource when it differs. A budget
whose expected count cannot be computed fails safe: 0 disruptions allowed, condition
`DisruptionAllowed=False` with reason `SyncFailed`.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from kubernetes import client

from driver import log
from driver.local import policy
from driver.local.controllerloop import ControllerLoop, read_or_none
from driver.local.informer import Cache, Informer
from driver.local.objectmeta import now_rfc3339
from driver.local.workqueue import WorkQueue

logger = log.get(__name__)


def _raw(resp: Any) -> dict[str, Any]:
    return json.loads(resp.data)


def _namespace(obj: dict[str, Any]) -> list[str]:
    return [str((obj.get("metadata") or {}).get("namespace") or "")]


def _controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller") is True:
            return ref
    return None


class DisruptionController:
    """Start/stop component; see the module docstring."""

    def __init__(self, api_client: client.ApiClient, retry_s: float = 0.5) -> None:
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.policy = client.PolicyV1Api(api_client)
        self.queue = WorkQueue()
        self.budgets = Cache({"namespace": _namespace})
        self.pods = Cache({"namespace": _namespace})
        informers = [
            Informer("disruption-pdbs", self.policy.list_pod_disruption_budget_for_all_namespaces, self._on_budget,
                     cache=self.budgets),
            Informer("disruption-pods", self.core.list_pod_for_all_namespaces, self._on_namespaced, cache=self.pods),
            Informer("disruption-replicasets", self.apps.list_replica_set_for_all_namespaces, self._on_namespaced),
            Informer("disruption-deployments", self.apps.list_deployment_for_all_namespaces, self._on_namespaced),
        ]
        self._loop = ControllerLoop("disruption-controller", self.queue, informers, self._sync, retry_s=retry_s)

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def _on_budget(self, etype: str, pdb: dict[str, Any]) -> None:
        if etype != "DELETED":
            self.queue.add((pdb["metadata"]["namespace"], pdb["metadata"]["name"]))

    def _on_namespaced(self, etype: str, obj: dict[str, Any]) -> None:
        """A pod or a controller changed: every budget of its namespace may count differently."""
        for pdb in self.budgets.by_index("namespace", _namespace(obj)[0]):
            self.queue.add((pdb["metadata"]["namespace"], pdb["metadata"]["name"]))

    def _sync(self, key: Any) -> None:
        ns, name = key
        self.sync(ns, name)

    def scale_of(self, ns: str, ref: dict[str, Any]) -> int | None:
        """The scale of a pod's controller (the finders of pkg/controller/disruption), None if it has none."""
        kind, group = ref.get("kind"), str(ref.get("apiVersion") or "").rpartition("/")[0]
        if group not in ("apps", "extensions") or kind not in ("ReplicaSet", "Deployment"):
            return None
        if kind == "Deployment":
            dep = read_or_none(self.apps.read_namespaced_deployment, ref.get("name", ""), ns)
            if dep is None or dep["metadata"]["uid"] != ref.get("uid"):
                return None
            return int((dep.get("spec") or {}).get("replicas", 1))
        rs = read_or_none(self.apps.read_namespaced_replica_set, ref.get("name", ""), ns)
        if rs is None or rs["metadata"]["uid"] != ref.get("uid"):
            return None
        owner = _controller_of(rs)
        if owner is not None and owner.get("kind") == "Deployment":
            scale = self.scale_of(ns, owner)
            if scale is not None:
                return scale
        return int((rs.get("spec") or {}).get("replicas", 1))

    def sync(self, ns: str, name: str) -> None:
        """Recompute one budget's status and write it if it changed."""
        pdb = _raw(self.policy.read_namespaced_pod_disruption_budget(name, ns, _preload_content=False))
        if pdb["metadata"].get("deletionTimestamp"):
            return
        pods = self.pods.by_index("namespace", ns)
        now = datetime.now(timezone.utc)
        try:
            status: policy.Status | None = policy.compute_status(pdb, pods, self.scale_of, now)
            failure = ""
        except policy.SyncFailed as exc:
            status, failure = None, str(exc)
            logger.warning("pdb_sync_failed", namespace=ns, pdb=name, error=failure)
        body = policy.status_body(pdb, status, failure, now_rfc3339())
        if body != (pdb.get("status") or {}):
            pdb["status"] = body
            self.policy.replace_namespaced_pod_disruption_budget_status(name, ns, pdb, _preload_content=False)
            logger.debug("pdb_status_updated", namespace=ns, pdb=name, allowed=body.get("disruptionsAllowed"))
        if status is not None and status.recheck_after_s is not None:
            self.queue.add_after((ns, name), status.recheck_after_s)
