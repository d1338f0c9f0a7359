"""The controller's writes: claim allocation + reservation, binding, rollback, failure reporting.

Order matters and mirrors kube-scheduler's DRA plugin:
1. finalizer `resource.kubernetes.io/delete-protection` on the claim (main object: a /status
   write cannot change metadata), so nobody deletes an allocated claim under a running pod;
2. `status.allocation` + `status.reservedFor` in one /status write — a claim is never allocated
   without being reserved, so the claim controller cannot deallocate it in between;
3. the pod binding.
Every write carries the resourceVersion we decided on: if anyone changed the claim since, the
server answers 409 and we retry from fresh state instead of overwriting (this is what makes two
controllers, or a restarted one, unable to hand out a device twice). When a later step fails,
`rollback` undoes the earlier ones, again with preconditions and re-reads on 409.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from driver import log
from driver.controller.kube import Kube, api_error

logger = log.get(__name__)

FINALIZER = "resource.kubernetes.io/delete-protection"


class WriteError(Exception):
    """A write the API refused. `conflict` is True for 409 (retry from fresh state)."""

    def __init__(self, what: str, status: int, message: str) -> None:
        super().__init__(f"{what}: HTTP {status}: {message}")
        self.status = status
        self.conflict = status == 409
        self.gone = status == 404
        # A write whose outcome is unknown (no answer, or a 5xx): it may have landed. `maybe` is
        # what to roll back in case it did.
        self.maybe: "Written | None" = None

    @property
    def ambiguous(self) -> bool:
        return self.status == 0 or self.status >= 500


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _same_devices(a: dict | None, b: dict | None) -> bool:
    """Do two allocations name the same devices (a rollback must not clear another writer's)?"""
    def key(alloc: dict | None) -> list:
        results = ((alloc or {}).get("devices") or {}).get("results") or []
        return sorted((r.get("driver"), r.get("pool"), r.get("device"), r.get("shareID")) for r in results)
    return key(a) == key(b)


def pod_ref(pod: dict) -> dict:
    meta = pod.get("metadata") or {}
    return {"resource": "pods", "name": meta.get("name"), "uid": meta.get("uid")}


@dataclass
class Written:
    """What `reserve` changed on one claim, so that `rollback` can undo exactly that."""

    namespace: str
    name: str
    uid: str
    allocated: bool  # we wrote the allocation (vs. only added a reservation to an allocated claim)
    resource_version: str | None = None  # of the claim after our status write
    allocation: dict | None = None  # what we wrote: a rollback clears only this allocation


class Writer:
    def __init__(self, kube: Kube, scheduler_name: str) -> None:
        self.kube = kube
        self.scheduler_name = scheduler_name
        self.api = kube.resource

    def _claim_call(self, what: str, fn, *args) -> dict:  # type: ignore[no-untyped-def]
        try:
            return self.kube.call(fn, *args)
        except Exception as exc:  # noqa: BLE001
            status, message = api_error(exc)
            raise WriteError(what, status, message) from exc

    def reserve(self, claim: dict, pod: dict, allocation: dict | None) -> Written:
        """Write `allocation` (None: the claim is already allocated) and reserve the claim for `pod`.

        `claim` is the version the decision was made on; its resourceVersion is the precondition.
        """
        meta = claim["metadata"]
        ns, name = meta["namespace"], meta["name"]
        ref = pod_ref(pod)
        current = claim
        if allocation is not None and FINALIZER not in (meta.get("finalizers") or []):
            body = dict(claim)
            body["metadata"] = dict(meta, finalizers=[*(meta.get("finalizers") or []), FINALIZER])
            current = self._claim_call(
                f"claim {ns}/{name}: add finalizer", self.api.replace_namespaced_resource_claim, name, ns, body
            )
        status = dict(current.get("status") or {})
        if allocation is not None:
            if status.get("allocation"):
                raise WriteError(f"claim {ns}/{name}", 409, "already allocated by someone else")
            status["allocation"] = allocation
        elif not status.get("allocation"):
            raise WriteError(f"claim {ns}/{name}", 409, "allocation was cleared meanwhile")
        reserved = list(status.get("reservedFor") or [])
        if not any(r.get("uid") == ref["uid"] for r in reserved):
            if len(reserved) >= 256:
                raise WriteError(f"claim {ns}/{name}", 422, "reservedFor is full (256 consumers)")
            reserved.append(ref)
        status["reservedFor"] = reserved
        body = dict(current, status=status)
        try:
            after = self._claim_call(
                f"claim {ns}/{name}: write allocation", self.api.replace_namespaced_resource_claim_status, name, ns,
                body)
        except WriteError as exc:
            if exc.ambiguous:
                exc.maybe = Written(ns, name, meta.get("uid", ""), allocated=allocation is not None,
                                    allocation=allocation)
            raise
        rv = (after.get("metadata") or {}).get("resourceVersion")
        return Written(ns, name, meta.get("uid", ""), allocated=allocation is not None, resource_version=rv,
                       allocation=allocation)

    def bind(self, pod: dict, node: str) -> None:
        meta = pod["metadata"]
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid")},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        try:
            self.kube.call(self.kube.core.create_namespaced_pod_binding, meta["name"], meta["namespace"], body)
        except Exception as exc:  # noqa: BLE001
            status, message = api_error(exc)
            raise WriteError(f"pod {meta['namespace']}/{meta['name']}: bind to {node}", status, message) from exc

    def rollback(self, written: list[Written], pod: dict, attempts: int = 5) -> list[Written]:
        """Undo `reserve` on each claim: drop our reservation; if we allocated and nobody else uses
        the claim now, clear the allocation (ours only) and drop the finalizer. Re-reads on 409.
        Returns the claims whose undo could not be confirmed (their allocation may still stand)."""
        uid = pod_ref(pod)["uid"]
        unconfirmed = []
        for w in written:
            for _ in range(attempts):
                try:
                    self._undo(w, uid)
                    break
                except WriteError as exc:
                    if exc.gone:
                        break
                    if not exc.conflict and exc.status < 500 and exc.status != 0:
                        logger.warning("rollback_failed", claim=f"{w.namespace}/{w.name}", error=str(exc))
                        unconfirmed.append(w)
                        break
            else:
                logger.warning("rollback_gave_up", claim=f"{w.namespace}/{w.name}")
                unconfirmed.append(w)
        return unconfirmed

    def _undo(self, w: Written, pod_uid: str) -> None:
        claim = self._claim_call(
            f"claim {w.namespace}/{w.name}: read", self.api.read_namespaced_resource_claim, w.name, w.namespace
        )
        if (claim.get("metadata") or {}).get("uid") != w.uid:
            return
        status = dict(claim.get("status") or {})
        reserved = [r for r in status.get("reservedFor") or [] if r.get("uid") != pod_uid]
        changed = len(reserved) != len(status.get("reservedFor") or [])
        status["reservedFor"] = reserved
        ours = w.allocation is None or _same_devices(status.get("allocation"), w.allocation)
        if w.allocated and not reserved and status.get("allocation") and ours:
            status.pop("allocation", None)
            status.pop("devices", None)
            changed = True
        if changed:
            if not reserved:
                status.pop("reservedFor", None)
            claim = self._claim_call(
                f"claim {w.namespace}/{w.name}: roll back status",
                self.api.replace_namespaced_resource_claim_status,
                w.name,
                w.namespace,
                dict(claim, status=status),
            )
        meta = claim.get("metadata") or {}
        if w.allocated and not (claim.get("status") or {}).get("allocation") and FINALIZER in (meta.get("finalizers") or []):
            body = dict(claim)
            body["metadata"] = dict(meta, finalizers=[f for f in meta["finalizers"] if f != FINALIZER])
            self._claim_call(
                f"claim {w.namespace}/{w.name}: drop finalizer",
                self.api.replace_namespaced_resource_claim,
                w.name,
                w.namespace,
                body,
            )

    # ---- releases (idempotent: the claim controller may do the same) ----------------------

    def release(self, claim: dict, live_pod_uids: set[str]) -> bool:
        """Drop reservations of pods that are gone or done; clear an allocation nobody reserves.

        Returns True when something was written. Raises WriteError (409: retry from fresh state).
        """
        meta = claim.get("metadata") or {}
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        status = dict(claim.get("status") or {})
        before = status.get("reservedFor") or []
        reserved = [r for r in before if r.get("resource") != "pods" or r.get("uid") in live_pod_uids]
        wrote = False
        if len(reserved) != len(before) or (not reserved and status.get("allocation")):
            if reserved:
                status["reservedFor"] = reserved
            else:
                status.pop("reservedFor", None)
                status.pop("allocation", None)
                status.pop("devices", None)
            claim = self._claim_call(
                f"claim {ns}/{name}: release", self.api.replace_namespaced_resource_claim_status, name, ns,
                dict(claim, status=status),
            )
            wrote = True
            meta = claim.get("metadata") or {}
        if not (claim.get("status") or {}).get("allocation") and FINALIZER in (meta.get("finalizers") or []):
            body = dict(claim)
            body["metadata"] = dict(meta, finalizers=[f for f in meta["finalizers"] if f != FINALIZER])
            self._claim_call(
                f"claim {ns}/{name}: drop finalizer", self.api.replace_namespaced_resource_claim, name, ns, body
            )
            wrote = True
        return wrote

    # ---- failure reporting -----------------------------------------------------------------

    def mark_unschedulable(self, pod: dict, message: str) -> None:
        """PodScheduled=False (reason Unschedulable) in pod status; re-reads once on 409."""
        meta = pod["metadata"]
        ns, name = meta["namespace"], meta["name"]
        core = self.kube.core
        for attempt in range(3):
            status = dict(pod.get("status") or {})
            conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            old = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
            if old and old.get("status") == "False" and old.get("message") == message:
                return
            conds.append(
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                    "lastTransitionTime": _now(),
                    "lastProbeTime": None,
                }
            )
            status["conditions"] = conds
            status.setdefault("phase", "Pending")
            try:
                self.kube.call(core.replace_namespaced_pod_status, name, ns, dict(pod, status=status))
                return
            except Exception as exc:  # noqa: BLE001
                code, text = api_error(exc)
                if code != 409 or attempt == 2:
                    raise WriteError(f"pod {ns}/{name}: set PodScheduled", code, text) from exc
                pod = self.kube.call(core.read_namespaced_pod, name, ns)
                if (pod.get("spec") or {}).get("nodeName"):
                    return

    # ---- preemption -------------------------------------------------------------------------

    def nominate(self, pod: dict, node: str | None) -> None:
        """status.nominatedNodeName (merge patch of pods/status): where the pod waits for its victims."""
        meta = pod["metadata"]
        body = {"status": {"nominatedNodeName": node}}
        try:
            self.kube.call(self.kube.core.patch_namespaced_pod_status, meta["name"], meta["namespace"], body)
        except Exception as exc:  # noqa: BLE001
            code, text = api_error(exc)
            raise WriteError(f"pod {meta['namespace']}/{meta['name']}: set nominatedNodeName", code, text) from exc

    def evict(self, victim: dict, preemptor: dict, node: str) -> None:
        """Preempt `victim`: a DisruptionTarget condition, an Event, then a graceful delete (uid
        precondition: never a newer pod of the same name). Gone already counts as done."""
        meta = victim["metadata"]
        ns, name = meta["namespace"], meta["name"]
        core = self.kube.core
        message = f"{self.scheduler_name}: preempting to accommodate a higher priority pod"
        for attempt in range(3):
            status = dict(victim.get("status") or {})
            conds = [c for c in status.get("conditions") or [] if c.get("type") != "DisruptionTarget"]
            conds.append({"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
                          "message": message, "lastTransitionTime": _now(), "lastProbeTime": None})
            status["conditions"] = conds
            try:
                self.kube.call(core.replace_namespaced_pod_status, name, ns, dict(victim, status=status))
                break
            except Exception as exc:  # noqa: BLE001 - the delete below is what frees the node
                code, text = api_error(exc)
                if code != 409 or attempt == 2:
                    logger.info("disruption_condition_failed", pod=f"{ns}/{name}", error=text)
                    break
                try:
                    victim = self.kube.call(core.read_namespaced_pod, name, ns)
                except Exception:  # noqa: BLE001 - gone: nothing to mark
                    return
                if (victim.get("metadata") or {}).get("uid") != meta.get("uid"):
                    return
        pmeta = preemptor["metadata"]
        self.event(victim, "Preempted", f"Preempted by pod {pmeta.get('uid')} on node {node}", "Normal")
        try:
            self.kube.call(core.delete_namespaced_pod, name, ns,
                           body={"preconditions": {"uid": meta.get("uid")}})
        except Exception as exc:  # noqa: BLE001
            code, text = api_error(exc)
            if code in (404, 409):
                return
            raise WriteError(f"pod {ns}/{name}: delete (preempted)", code, text) from exc

    def event(self, pod: dict, reason: str, message: str, type_: str = "Warning") -> None:
        """A core/v1 Event about the pod (best effort: events are advisory)."""
        meta = pod["metadata"]
        now = _now()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": self.scheduler_name},
            "reportingComponent": self.scheduler_name,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.kube.call(self.kube.core.create_namespaced_event, meta["namespace"], body)
        except Exception as exc:  # noqa: BLE001
            logger.warning("event_failed", pod=f"{meta['namespace']}/{meta['name']}", error=api_error(exc)[1])
