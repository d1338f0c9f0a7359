"""The releaser: drops reservations of pods that are gone or finished, and deallocates claims
nobody reserves any more.

Why it is separate from the scheduling worker and the binders: releases are a different kind of
work with a different urgency. They never decide anything (they only take back what a pod no
longer holds), they are idempotent (the resourceclaim controller may release the same claim),
and they may block on an API read when the pod cache lags the claim cache. Running them on their
own thread with their own queue keeps a slow or failing release from delaying a decision, and
keeps a burst of finished pods from queueing ahead of pending ones.

What it must not do is take back a claim the controller is still writing: a reservation whose pod
is in flight (decided, binders writing) or a claim whose allocation is assumed in the view but not
yet seen in the cache looks exactly like a stale one. So the releaser reads the controller's
in-flight set (under the controller's lock) and the view's assumed claims; the writes that finish
those trigger another look through the claim informer.

The releaser keeps no state of its own: it is handed the caches, the index and the queue it reads
from the controller (by reference, never copied), so that both sides see one truth.
"""

from __future__ import annotations

import threading
from collections.abc import Container, Mapping

from driver import log
from driver.controller import kube as k
from driver.controller.informers import Informer
from driver.controller.queue import WorkQueue, serve
from driver.controller.objects import pod_is_done
from driver.controller.writer import FINALIZER, WriteError, Writer

logger = log.get(__name__)


class Releaser:
    """Takes claim keys off `queue` while leading and releases what their pods no longer hold.

    Everything passed in is shared with the controller and read live (never copied): `pod_by_uid`,
    `in_flight` and `assumed` are updated by the informer, binder and worker threads.
    """

    def __init__(
        self,
        kube: k.Kube,
        writer: Writer,
        queue: WorkQueue,
        claims: Informer,
        pods: Informer,
        pod_by_uid: Mapping[str, str],
        assumed: Container[str],
        in_flight: set[str],
        lock: threading.Lock,
        leading: threading.Event,
        stop: threading.Event,
    ) -> None:
        self.kube = kube
        self.writer = writer
        self.queue = queue
        self.claims = claims
        self.pods = pods
        self._pod_by_uid = pod_by_uid
        self._assumed = assumed  # claim uids whose allocation is assumed but not yet in the cache
        self._in_flight = in_flight  # pod uids whose writes the binders are doing right now
        self._lock = lock  # guards `in_flight`
        self._leading = leading
        self._stop = stop

    def needs_release(self, claim: dict) -> bool:
        """Is there anything to take back from this claim? Cheap and cache-only, so that informer
        handlers can ask it on every event; `release_one` checks again before writing."""
        status = claim.get("status") or {}
        reserved = status.get("reservedFor") or []
        if not reserved:
            return bool(status.get("allocation")) or (
                FINALIZER in (claim["metadata"].get("finalizers") or []) and not status.get("allocation")
            )
        for ref in reserved:
            if ref.get("resource") != "pods":
                continue
            key = self._pod_by_uid.get(ref.get("uid", ""))
            pod = self.pods.get(key) if key else None
            if pod is None or pod_is_done(pod):
                return True
        return False

    def run(self) -> None:
        """Thread body: release queued claims while leading, until `stop` is set. A release that
        failed for any reason but the claim being gone is retried with backoff."""
        serve(self.queue, self._stop, self._leading, self._release_or_retry, logger, "release_failed", "claim")

    def _release_or_retry(self, key: str) -> None:
        try:
            self.release_one(key)
            self.queue.forget(key)
        except WriteError as exc:
            if not exc.gone:
                self.queue.retry_later(key)

    def release_one(self, key: str) -> None:
        """Release one claim from fresh cache state; raises WriteError when the API refuses."""
        claim = self.claims.get(key)
        if claim is None:
            return
        live: set[str] = set()
        for ref in (claim.get("status") or {}).get("reservedFor") or []:
            if ref.get("resource") != "pods":
                continue
            if self._pod_alive(claim["metadata"].get("namespace", ""), ref):
                live.add(ref.get("uid", ""))
        # Leave claims our binders are writing right now alone: their writes trigger another look.
        with self._lock:
            if live & self._in_flight:
                return
        if claim["metadata"]["uid"] in self._assumed:
            return
        if self.writer.release(claim, live):
            logger.info("claim_released", claim=key, still_reserved=len(live))

    def _pod_alive(self, ns: str, ref: dict) -> bool:
        """Is the pod of a reservation still there and not finished? Asks the API when the cache
        does not know it (the pod watch may lag the claim watch)."""
        key = self._pod_by_uid.get(ref.get("uid", ""))
        pod = self.pods.get(key) if key else None
        if pod is None:
            try:
                pod = self.kube.call(self.kube.core.read_namespaced_pod, ref.get("name", ""), ns)
            except Exception as exc:  # noqa: BLE001
                status, _ = k.api_error(exc)
                if status == 404:
                    return False
                raise WriteError(f"pod {ns}/{ref.get('name')}: read", status, "cannot tell whether it runs") from exc
            if pod["metadata"].get("uid") != ref.get("uid"):
                return False
        if ref.get("uid") in self._in_flight:
            return True
        return not pod_is_done(pod)
