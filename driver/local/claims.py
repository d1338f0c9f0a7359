"""The resourceclaim controller's job (kube-controller-manager), against the API over HTTP.

FACTS §7: for each pod claim that names a ResourceClaimTemplate, create the claim
(`generateName: <pod>-<podClaimName>-`, annotation `resource.kubernetes.io/pod-claim-name`,
controller owner reference to the pod) and record it in `pod.status.resourceClaimStatuses`;
drop `reservedFor` entries of pods that are gone or done; when nothing reserves a claim that
carries the delete-protection finalizer, clear its allocation and remove the finalizer; delete
generated claims of finished pods.

It uses the official client only (watches through `Informer` into indexed caches, writes with
resourceVersion preconditions), so a test of it is also a test of the API server's semantics.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from driver import log
from driver.local.controllerloop import ControllerLoop, read_or_none
from driver.local.events import post_event
from driver.local.informer import Cache, Informer
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


def _owner_uids(claim: dict[str, Any]) -> list[str]:
    owner = owning_pod(claim)
    return [owner[1]] if owner else []


class ClaimController:
    """Start/stop component: watch-fed caches of pods, claims and templates, `workers` threads syncing by key.

    Lookups go to the caches (claims indexed by owning pod UID), so each pod costs the same
    however many claims the namespace holds; what the controller writes goes into the caches at
    once, so a re-sync never creates a second claim for a pod whose first is not yet watched.
    Where a cache miss could drop a live pod's reservation, the pod is read from the API.
    """

    def __init__(self, api_client: client.ApiClient, retry_s: float = 0.5, workers: int = 4) -> None:
        self.core = client.CoreV1Api(api_client)
        self.resource = client.ResourceV1Api(api_client)
        self.retry_s = retry_s
        self.queue = WorkQueue()
        self.pods = Cache()
        self.claims = Cache({"owner": _owner_uids})
        self.templates = Cache()
        self._pods = Informer("claims-pods", self.core.list_pod_for_all_namespaces, self._on_pod, cache=self.pods)
        self._claims = Informer("claims-claims", self.resource.list_resource_claim_for_all_namespaces, self._on_claim,
                                cache=self.claims)
        self._templates = Informer("claims-templates", self.resource.list_resource_claim_template_for_all_namespaces,
                                   lambda etype, obj: None, cache=self.templates)
        self._loop = ControllerLoop("claim-controller", self.queue, [self._pods, self._claims, self._templates],
                                    self._sync, count=workers, retry_s=retry_s)

    def start(self) -> None:
        self._loop.start()
        logger.info("claim_controller_started")

    def stop(self) -> None:
        self._loop.stop()

    def wait_synced(self, timeout: float) -> bool:
        """True once the caches hold a first list."""
        return all(i.wait_synced(timeout) for i in (self._pods, self._claims, self._templates))

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

    def _sync(self, key: Any) -> None:
        if not self.wait_synced(self.retry_s):
            # an empty cache would make every pod look claimless: wait for the first lists
            self.queue.add_after(key, self.retry_s)
            return
        kind, ns, name = key
        if kind == "pod":
            self.sync_pod(ns, name)
        else:
            self.sync_claim(ns, name)

    # --- pods ----------------------------------------------------------------------------

    def _get_pod(self, ns: str, name: str) -> dict[str, Any] | None:
        return read_or_none(self.core.read_namespaced_pod, name, ns)

    def _pod_in_use(self, ns: str, name: str, uid: str) -> bool:
        """Whether pod `ns/name` with `uid` exists and is not done.

        The cache answers when it knows the pod (done is final); a pod it does not know may
        just not be watched yet — the scheduler can reserve a claim for a pod this controller
        has not seen — so that case asks the API server.
        """
        pod = self.pods.get(ns, name)
        if pod is None or pod["metadata"].get("uid") != uid:
            pod = self._get_pod(ns, name)
        return pod is not None and pod["metadata"].get("uid") == uid and not pod_done(pod)

    def sync_pod(self, ns: str, name: str) -> None:
        """Create missing claims from templates and record them in the pod's status."""
        pod = self.pods.get(ns, name)
        if pod is None or (pod["metadata"].get("deletionTimestamp")) or pod_done(pod):
            return
        uid = pod["metadata"]["uid"]
        statuses = {s.get("name"): s for s in (pod.get("status") or {}).get("resourceClaimStatuses") or []}
        new_statuses: list[dict[str, Any]] = []
        owned: list[dict[str, Any]] | None = None
        for pc in (pod.get("spec") or {}).get("resourceClaims") or []:
            template = pc.get("resourceClaimTemplateName")
            if not template or pc.get("name") in statuses:
                continue
            if owned is None:
                owned = self.claims.by_index("owner", uid)
            claim = next((c for c in owned
                          if owning_pod(c) == (name, uid)
                          and (c["metadata"].get("annotations") or {}).get(POD_CLAIM_ANNOTATION) == pc["name"]), None)
            if claim is None:
                claim = self._create_claim(pod, pc["name"], template)
                if claim is None:
                    continue
                self.claims.upsert(claim)
            new_statuses.append({"name": pc["name"], "resourceClaimName": claim["metadata"]["name"]})
        if new_statuses:
            updated = _raw(self.core.patch_namespaced_pod_status(
                name, ns, {"metadata": {"uid": uid}, "status": {"resourceClaimStatuses": new_statuses}},
                _content_type="application/strategic-merge-patch+json", _preload_content=False))
            self.pods.upsert(updated)
            logger.info("pod_claims_recorded", namespace=ns, pod=name, claims=[s["resourceClaimName"] for s in new_statuses])

    def _create_claim(self, pod: dict[str, Any], pod_claim: str, template_name: str) -> dict[str, Any] | None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        try:
            # a template created a moment ago may not be watched yet: a cache miss asks the API
            template = self.templates.get(ns, template_name) or _raw(
                self.resource.read_namespaced_resource_claim_template(template_name, ns, _preload_content=False))
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
        claim = self.claims.get(ns, name)  # shared with the cache: never edited in place
        if claim is None:
            return  # deleted (or not yet watched: its ADDED event queues it again)
        status = claim.get("status") or {}
        reserved = status.get("reservedFor") or []
        valid = []
        for ref in reserved:
            if ref.get("resource") != "pods" or ref.get("apiGroup"):
                valid.append(ref)  # reserved by something we do not know: keep it
                continue
            if self._pod_in_use(ns, ref.get("name", ""), ref.get("uid", "")):
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
            claim = _raw(self.resource.replace_namespaced_resource_claim_status(
                name, ns, {**claim, "status": new_status}, _preload_content=False))
            self.claims.upsert(claim)
            logger.info("claim_reservations_updated", namespace=ns, claim=name, reserved=len(valid),
                        deallocated="allocation" not in new_status)
        deallocated = bool(status.get("allocation")) and not (claim.get("status") or {}).get("allocation")
        being_deleted = bool(claim["metadata"].get("deletionTimestamp"))
        # The scheduler adds the finalizer just before it writes the allocation: an unallocated claim
        # keeps it unless this sync deallocated it or the claim is being deleted.
        if not valid and DELETE_PROTECTION in finalizers and not (claim.get("status") or {}).get("allocation") \
                and (deallocated or being_deleted):
            kept = [f for f in finalizers if f != DELETE_PROTECTION]
            claim = _raw(self.resource.replace_namespaced_resource_claim(
                name, ns, {**claim, "metadata": {**claim["metadata"], "finalizers": kept}}, _preload_content=False))
            self.claims.upsert(claim)
        owner = owning_pod(claim)
        if owner and not valid and not claim["metadata"].get("deletionTimestamp"):
            if not self._pod_in_use(ns, owner[0], owner[1]):
                self.resource.delete_namespaced_resource_claim(
                    name, ns, body={"preconditions": {"uid": claim["metadata"]["uid"]}}, _preload_content=False)
                logger.info("claim_deleted", namespace=ns, claim=name, pod=owner[0])
