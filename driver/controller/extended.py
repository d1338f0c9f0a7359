"""The special ResourceClaim of DRA extended resources (KEP-5004): its life in the controller.

A pod asking for `nvidia.com/gpu: 1` gets a claim the scheduler creates itself (upstream's PreBind):
created from `extendedresources.claim_for`, our assumption moved to its real uid the moment it
exists (the informer's echo of the bare claim must not free the devices), allocated and reserved
like any claim, then recorded in `pod.status.extendedResourceClaimStatus`. A cycle that fails undoes
and deletes what it created; one that did not finish (a crash) is found by owner and deleted before
the pod is decided again, so its devices are never held twice.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from driver import log
from driver.controller import kube as k
from driver.controller.view import ClusterView
from driver.controller.writer import WriteError, Writer, Written
from driver.scheduler.plugins import extendedresources as ext

logger = log.get(__name__)


class ExtendedClaims:
    """See module docstring. `claims` looks a claim up by "namespace/name" (the informer's cache)."""

    def __init__(self, kube: k.Kube, writer: Writer, view: ClusterView, claims: Callable[[str], dict | None]) -> None:
        self.kube = kube
        self.writer = writer
        self.view = view
        self.claims = claims
        self._lock = threading.Lock()
        self._by_pod: dict[str, set[str]] = {}  # pod uid -> its special claims ("ns/name")

    def track(self, old: dict | None, new: dict | None) -> None:
        """Special extended-resource claims by the uid of the pod that owns them."""
        for obj, add in ((old, False), (new, True)):
            if obj is None or not ext.is_extended_claim(obj):
                continue
            for ref in obj["metadata"].get("ownerReferences") or []:
                if ref.get("kind") == "Pod" and ref.get("controller"):
                    with self._lock:
                        keys = self._by_pod.setdefault(ref.get("uid", ""), set())
                        (keys.add if add else keys.discard)(k.key_of(obj))
                        if not keys:
                            del self._by_pod[ref.get("uid", "")]

    def drop_stale(self, pod: dict) -> None:
        """An unbound pod that already owns a special claim got it from a cycle that did not finish
        (a controller that crashed between creating it and binding, or a cleanup that failed): as
        upstream, delete it before deciding again, so its devices are not held twice."""
        uid = pod["metadata"]["uid"]
        with self._lock:
            keys = sorted(self._by_pod.get(uid, ()))
        for key in keys:
            claim = self.claims(key)
            alloc = ((claim.get("status") or {}).get("allocation")) if claim else None
            if claim is None or (claim["metadata"].get("deletionTimestamp") and not alloc):
                continue  # gone, or going with nothing held
            meta = claim["metadata"]
            w = Written(meta["namespace"], meta["name"], meta.get("uid", ""), allocated=bool(alloc), allocation=alloc)
            logger.info("stale_extended_claim", pod=k.key_of(pod), claim=key)
            self.drop(pod, claim, [w])

    @staticmethod
    def temp_uid(pod: dict) -> str:
        return f"{pod['metadata']['uid']}-extended-resources"

    def create(self, pod: dict, extended: Any, allocation: dict, assumed_uids: list[str]) -> Written:
        """KEP-5004's PreBind: create the pod's special claim, move our assumption to its real uid
        (so the informer's echo of the bare claim cannot free the devices), write its allocation and
        reservation, then record it in the pod's status.extendedResourceClaimStatus."""
        meta = pod["metadata"]
        body = ext.claim_for(pod, extended, name=None)
        try:
            created = self.kube.call(self.kube.resource.create_namespaced_resource_claim, meta["namespace"], body)
        except Exception as exc:  # noqa: BLE001
            code, text = k.api_error(exc)
            raise WriteError(f"pod {k.key_of(pod)}: create extended resource claim", code, text) from exc
        temp, real = self.temp_uid(pod), created["metadata"]["uid"]
        self.view.rekey_claim(temp, real)
        assumed_uids[assumed_uids.index(temp)] = real
        w: Written | None = None
        try:
            try:
                w = self.writer.reserve(created, pod, allocation)
            except WriteError as exc:
                w = exc.maybe  # it may have landed: undo it too
                raise
            self.view.written(w.uid, w.resource_version)
            patch = {"status": ext.pod_status(created["metadata"]["name"], extended)}
            try:
                self.kube.call(self.kube.core.patch_namespaced_pod_status, meta["name"], meta["namespace"], patch)
            except Exception as exc:  # noqa: BLE001
                code, text = k.api_error(exc)
                raise WriteError(f"pod {k.key_of(pod)}: record extendedResourceClaimStatus", code, text) from exc
        except Exception:
            self.drop(pod, created, [w] if w is not None else [])
            raise
        return w

    def drop(self, pod: dict, claim: dict, written: list[Written]) -> None:
        """Undo a special claim this cycle created (upstream deletes it too): its allocation and
        finalizer first, then the object, so the next cycle starts from nothing."""
        meta = claim["metadata"]
        try:
            if written:
                self.writer.rollback(written, pod)
            self.kube.call(self.kube.resource.delete_namespaced_resource_claim, meta["name"], meta["namespace"],
                           body={"preconditions": {"uid": meta.get("uid")}})
        except Exception as exc:  # noqa: BLE001 - the pod's deletion garbage-collects it in the end
            logger.warning("extended_claim_cleanup_failed", claim=k.key_of(claim), error=k.api_error(exc)[1])
