"""The resourceclaim controller's job (kube-controller-manager), against the API over HTTP.

FACTS §7: for each pod claim that names a ResourceClaimTemplate, create the claim
(`generateName: <pod>-<podClaimName>-`, annotation `resource.kubernetes.io/pod-claim-name`,
controller owner reference to the pod) and record it in `pod.status.resourceClaimStatuses`;
drop `reservedFor` entries of pods that are gone or done; when nothing reserves a claim that
carries the delete-protection finalizer, clear its allocation and remove the finalizer; delete
generated claims of finished pods.

It uses the official client only (watches through `Informer`, writes with resourceVersion
preconditions), so a test of it is also a test of the API server's semantics.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from driver import log
from driver.local.events import post_event
from driver.local.informer import Informer
from driver.local.workqueue import WorkQueue

logger = log.get(__name__)

POD_CLAIM_ANNOTATION = "resource.kubernetes.io/pod-claim-name"
DELETE_PROTECTION = "resource.kubernetes.io/delete-protection"
_DONE = ("Succeeded", "Failed")


def _raw(resp: Any) -> dict[str, Any]:
    return json.loads(resp.data)


def pod_done(pod: dict[str, Any]) -> bool:
    """A pod that will never (again) use its claims: finished, or deleted before it was scheduled."""
    status, meta = pod.get("status") or {}, pod.get("metadata") or {}
    if status.get("phase") in _DONE:
        return True
    return bool(meta.get("deletionTimestamp")) and not (pod.get("spec") or {}).get("nodeName")


def owning_pod(claim: dict[str, Any]) -> tuple[str, str] | None:
    """(name, uid) of the pod that controls a generated claim, if any."""
    for ref in (claim.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "Pod" and ref.get("apiVersion") == "v1" and ref.get("controller"):
            return ref.get("name", ""), ref.get("uid", "")
    return None


class ClaimController:
    """Start/stop component; one worker thread handles pods and claims by key."""

    def __init__(self, api_client: client.ApiClient, retry_s: float = 0.5) -> None:
        self.core = client.CoreV1Api(api_client)
        self.resource = client.ResourceV1Api(api_client)
        self.retry_s = retry_s
        self.queue = WorkQueue()
        self._pods = Informer("claims-pods", self.core.list_pod_for_all_namespaces, self._on_pod)
        self._claims = Informer("claims-claims", self.resource.list_resource_claim_for_all_namespaces, self._on_claim)
        self._worker = threading.Thread(target=self._work, name="claim-controller", daemon=True)

    def start(self) -> None:
        self._pods.start()
        self._claims.start()
        self._worker.start()
        logger.info("claim_controller_started")

    def stop(self) -> None:
        self._pods.stop()
        self._claims.stop()
        self.queue.close()
        self._worker.join(timeout=5)

    # --- events -> keys ------------------------------------------------------------------

    def _on_pod(self, etype: str, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        self.queue.add(("pod", meta.get("namespace", ""), meta.get("name", "")))
        for st in (pod.get("status") or {}).get("resourceClaimStatuses") or []:
            if st.get("resourceClaimName"):
                self.queue.add(("claim", meta.get("namespace", ""), st["resourceClaimName"]))
        for rc in (pod.get("spec") or {}).get("resourceClaims") or []:
            if rc.get("resourceClaimName"):
                self.queue.add(("claim", meta.get("namespace", ""), rc["resourceClaimName"]))

    def _on_claim(self, etype: str, claim: dict[str, Any]) -> None:
        meta = claim.get("metadata") or {}
        if etype != "DELETED":
            self.queue.add(("claim", meta.get("namespace", ""), meta.get("name", "")))
        owner = owning_pod(claim)
        if owner:
            self.queue.add(("pod", meta.get("namespace", ""), owner[0]))

    def _work(self) -> None:
        while True:
            key = self.queue.get()
            if key is None:
                return
            kind, ns, name = key  # type: ignore[misc]
            try:
                if kind == "pod":
                    self.sync_pod(ns, name)
                else:
                    self.sync_claim(ns, name)
            except ApiException as exc:
                if exc.status not in (404, 409):
                    logger.warning("claim_sync_failed", kind=kind, namespace=ns, name=name, status=exc.status)
                if exc.status != 404:
                    self.queue.add_after(key, self.retry_s)
            except Exception:
                logger.exception("claim_sync_crashed", kind=kind, namespace=ns, name=name)
                self.queue.add_after(key, self.retry_s)
            finally:
                self.queue.done(key)

    # --- pods ----------------------------------------------------------------------------

    def _get_pod(self, ns: str, name: str) -> dict[str, Any] | None:
        try:
            return _raw(self.core.read_namespaced_pod(name, ns, _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def sync_pod(self, ns: str, name: str) -> None:
        """Create missing claims from templates and record them in the pod's status."""
        pod = self._get_pod(ns, name)
        if pod is None or (pod["metadata"].get("deletionTimestamp")) or pod_done(pod):
            return
        statuses = {s.get("name"): s for s in (pod.get("status") or {}).get("resourceClaimStatuses") or []}
        new_statuses: list[dict[str, Any]] = []
        existing: list[dict[str, Any]] | None = None
        for pc in (pod.get("spec") or {}).get("resourceClaims") or []:
            template = pc.get("resourceClaimTemplateName")
            if not template or pc.get("name") in statuses:
                continue
            if existing is None:
                existing = _raw(self.resource.list_namespaced_resource_claim(ns, _preload_content=False))["items"]
            claim = next((c for c in existing
                          if owning_pod(c) == (name, pod["metadata"]["uid"])
                          and (c["metadata"].get("annotations") or {}).get(POD_CLAIM_ANNOTATION) == pc["name"]), None)
            if claim is None:
                claim = self._create_claim(pod, pc["name"], template)
                if claim is None:
                    continue
            new_statuses.append({"name": pc["name"], "resourceClaimName": claim["metadata"]["name"]})
        if new_statuses:
            self.core.patch_namespaced_pod_status(
                name, ns, {"metadata": {"uid": pod["metadata"]["uid"]}, "status": {"resourceClaimStatuses": new_statuses}},
                _content_type="application/strategic-merge-patch+json", _preload_content=False)
            logger.info("pod_claims_recorded", namespace=ns, pod=name, claims=[s["resourceClaimName"] for s in new_statuses])

    def _create_claim(self, pod: dict[str, Any], pod_claim: str, template_name: str) -> dict[str, Any] | None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        try:
            template = _raw(self.resource.read_namespaced_resource_claim_template(template_name, ns, _preload_content=False))
        except ApiException as exc:
            if exc.status != 404:
                raise
            self._event(pod, "Warning", "FailedResourceClaimCreation",
                        f'PodResourceClaim {pod_claim}: resource claim template "{template_name}": '
                        f'resourceclaimtemplate.resource.k8s.io "{template_name}" not found')
            self.queue.add_after(("pod", ns, name), self.retry_s * 4)
            return None
        tmeta = (template.get("spec") or {}).get("metadata") or {}
        annotations = dict(tmeta.get("annotations") or {})
        annotations[POD_CLAIM_ANNOTATION] = pod_claim
        body = {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceClaim",
            "metadata": {
                "generateName": f"{name}-{pod_claim}-"[:58],
                "namespace": ns,
                "labels": dict(tmeta.get("labels") or {}),
                "annotations": annotations,
                "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": name, "uid": pod["metadata"]["uid"],
                                     "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": (template.get("spec") or {}).get("spec") or {},
        }
        claim = _raw(self.resource.create_namespaced_resource_claim(ns, body, _preload_content=False))
        logger.info("claim_created", namespace=ns, pod=name, claim=claim["metadata"]["name"], template=template_name)
        return claim

    def _event(self, obj: dict[str, Any], etype: str, reason: str, message: str) -> None:
        meta = obj["metadata"]
        post_event(self.core, obj, etype, reason, message, component="resource-claim-controller")
        logger.info("claim_event", namespace=meta.get("namespace"), name=meta.get("name"), reason=reason)

    # --- claims --------------------------------------------------------------------------

    def sync_claim(self, ns: str, name: str) -> None:
        """Drop stale reservations, deallocate unreserved claims, delete claims of finished pods."""
        try:
            claim = _raw(self.resource.read_namespaced_resource_claim(name, ns, _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        status = claim.get("status") or {}
        reserved = status.get("reservedFor") or []
        valid = []
        for ref in reserved:
            if ref.get("resource") != "pods" or ref.get("apiGroup"):
                valid.append(ref)  # reserved by something we do not know: keep it
                continue
            pod = self._get_pod(ns, ref.get("name", ""))
            if pod is not None and pod["metadata"]["uid"] == ref.get("uid") and not pod_done(pod):
                valid.append(ref)
        finalizers = claim["metadata"].get("finalizers") or []
        if len(valid) != len(reserved) or (not valid and status.get("allocation") and DELETE_PROTECTION in finalizers):
            new_status = dict(status)
            if valid:
                new_status["reservedFor"] = valid
            else:
                new_status.pop("reservedFor", None)
                if DELETE_PROTECTION in finalizers:
                    new_status.pop("allocation", None)
            claim["status"] = new_status
            claim = _raw(self.resource.replace_namespaced_resource_claim_status(name, ns, claim, _preload_content=False))
            logger.info("claim_reservations_updated", namespace=ns, claim=name, reserved=len(valid),
                        deallocated="allocation" not in new_status)
        deallocated = bool(status.get("allocation")) and not (claim.get("status") or {}).get("allocation")
        being_deleted = bool(claim["metadata"].get("deletionTimestamp"))
        # The scheduler adds the finalizer just before it writes the allocation: an unallocated claim
        # keeps it unless this sync deallocated it or the claim is being deleted.
        if not valid and DELETE_PROTECTION in finalizers and not (claim.get("status") or {}).get("allocation") \
                and (deallocated or being_deleted):
            claim["metadata"]["finalizers"] = [f for f in finalizers if f != DELETE_PROTECTION]
            claim = _raw(self.resource.replace_namespaced_resource_claim(name, ns, claim, _preload_content=False))
        owner = owning_pod(claim)
        if owner and not valid and not claim["metadata"].get("deletionTimestamp"):
            pod = self._get_pod(ns, owner[0])
            if pod is None or pod["metadata"]["uid"] != owner[1] or pod_done(pod):
                self.resource.delete_namespaced_resource_claim(
                    name, ns, body={"preconditions": {"uid": claim["metadata"]["uid"]}}, _preload_content=False)
                logger.info("claim_deleted", namespace=ns, claim=name, pod=owner[0])
