"""The allocation controller: informers → queue → `schedule()` → claim writes → binding.

Threads and why:
- one informer thread per watched collection (see informers.py) keeps the caches and the
  `ClusterView` current;
- ONE scheduling worker makes decisions, one pod at a time, against the view: decisions must see
  each other (two pods deciding in parallel would pick the same free device);
- a small pool of binder threads performs the API writes of decided pods (finalizer, allocation +
  reservation, binding: three round trips). The decision is *assumed* in the view first, so the
  worker moves on at once and the next decision already sees it; a failed write is rolled back
  and un-assumed, and the pod retried with backoff. This is kube-scheduler's assume/bind split,
  and what makes throughput independent of API latency;
- the binders also create the special claims of DRA extended resources (extended.py), and the
  worker evicts the victims of DefaultPreemption (preemptor.py) when a pod fits nowhere;
- one releaser thread (releaser.py) drops reservations of pods that are gone or finished and
  deallocates claims nobody reserves (idempotent: the resourceclaim controller may do the same).
Only the leader (leader.py) runs the worker, binders and releaser; a standby keeps its caches
warm so that it can take over at once. Nothing is decided before every informer has listed:
after a restart, claims allocated in the API count as used before the first decision.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from driver import log
from driver.scheduler.cycle import Unschedulable, schedule
from driver.scheduler.plugins import extendedresources as ext
from driver.scheduler.packing.scoring import PackingConfig
from driver.controller import kube as k
from driver.controller.extended import ExtendedClaims
from driver.controller.informers import Informer, wait_all_synced
from driver.controller.leader import LeaderElector, LeaseConfig
from driver.controller.metrics import Metrics
from driver.controller.preemptor import Preemptor
from driver.controller.podclaims import plan_claims, resolve_claims
from driver.controller.queue import Backoff, WorkQueue, serve
from driver.controller.releaser import Releaser
from driver.controller.status import build_report
from driver.controller.objects import pod_claim_keys, pod_is_done, rv_newer
from driver.controller.view import ClusterView
from driver.controller.writer import WriteError, Writer, Written

logger = log.get(__name__)

DEFAULT_SCHEDULER_NAME = "gpu-dra-scheduler"


@dataclass
class ControllerConfig:
    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    packing: PackingConfig = field(default_factory=PackingConfig)
    binders: int = 8
    backoff_initial: float = 0.2
    backoff_max: float = 10.0
    max_park: float = 60.0
    leader: LeaseConfig | None = None  # None: no election, schedule at once
    sync_timeout: float = 60.0
    release: bool = True  # run the releaser (turn off when another component owns releases)
    preemption: bool = True  # DefaultPreemption for pods with a priority above 0


class Controller:
    """See module docstring. `start()` returns once caches are synced; `stop()` ends everything."""

    def __init__(self, kube: k.Kube, cfg: ControllerConfig | None = None) -> None:
        self.kube = kube
        self.cfg = cfg or ControllerConfig()
        self.view = ClusterView(self.cfg.packing)
        self.metrics = Metrics()
        self.queue = WorkQueue(Backoff(self.cfg.backoff_initial, self.cfg.backoff_max), self.cfg.max_park)
        self.releases = WorkQueue(Backoff(self.cfg.backoff_initial, self.cfg.backoff_max), self.cfg.max_park)
        self.writer = Writer(kube, self.cfg.scheduler_name)
        self.pods = Informer(kube, k.PODS)
        self.nodes = Informer(kube, k.NODES)
        self.slices = Informer(kube, k.SLICES)
        self.claims = Informer(kube, k.CLAIMS)
        self.classes = Informer(kube, k.CLASSES)
        self.templates = Informer(kube, k.TEMPLATES)
        self.namespaces = Informer(kube, k.NAMESPACES)
        self.pvcs = Informer(kube, k.PVCS)
        self.pvs = Informer(kube, k.PVS)
        self.storage_classes = Informer(kube, k.STORAGE_CLASSES)
        self.pdbs = Informer(kube, k.PDBS)
        # Not required to start: they sharpen constraints (namespaceSelector, volumes, PDBs) on
        # clusters that grant them; a controller without that RBAC still schedules everything else.
        self.optional = [self.templates, self.namespaces, self.pvcs, self.pvs, self.storage_classes, self.pdbs]
        self.informers = [self.classes, self.templates, self.namespaces, self.pvcs, self.pvs, self.storage_classes,
                          self.pdbs, self.nodes, self.slices, self.claims, self.pods]
        self._pod_by_uid: dict[str, str] = {}
        self._awaiting: dict[str, set[str]] = {}  # claim key -> pods waiting for it to exist
        self._in_flight: set[str] = set()
        self._first_try: dict[str, float] = {}
        self._reported: dict[str, str] = {}  # pod uid -> last unschedulable message reported
        self._leading = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._binders = ThreadPoolExecutor(self.cfg.binders, thread_name_prefix="binder")
        self._lock = threading.Lock()
        self.elector: LeaderElector | None = None
        self.scheduled = 0
        self.extended = ExtendedClaims(kube, self.writer, self.view, self.claims.get)
        self.preemptor = Preemptor(self.writer, self.view, self.metrics, self.pods.get, self.claims.get,
                                   self.pdbs.items, self.cfg.preemption)
        self.releaser = Releaser(
            kube, self.writer, self.releases, self.claims, self.pods, self._pod_by_uid,
            self.view.assumed_claims, self._in_flight, self._lock, self._leading, self._stop,
        )
        self.metrics.watch_shares(self._shares)

        self.classes.add_handler(self._on_class)
        self.templates.add_handler(self._on_template)
        self.nodes.add_handler(self._on_node)
        self.slices.add_handler(self._on_slice)
        self.claims.add_handler(self._on_claim)
        self.pods.add_handler(self._on_pod)
        self.namespaces.add_handler(self._on_namespace)
        for inf, kind in ((self.pvcs, "pvc"), (self.pvs, "pv"), (self.storage_classes, "storageclass")):
            inf.add_handler(lambda e, o, n, kind=kind: self._on_volume(kind, e, o, n))

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self, lead: bool = True, stop: threading.Event | None = None) -> None:
        """Start watching; return once every cache is synced. Without leader election the controller
        starts scheduling at once, unless `lead=False` (then call `lead()`: benchmarks time from there).

        `stop`, when given, is watched while the caches sync: once it is set, start() returns at
        once without starting anything more (the caller then calls stop() as usual). A process
        told to exit (SIGTERM) while the API server is unreachable must not wait `sync_timeout`."""
        for inf in self.informers:
            inf.start()
        # Templates only sharpen a message ("template not found"); without RBAC for them the
        # controller still works, so they do not hold up the start.
        required = [inf for inf in self.informers if inf not in self.optional]
        deadline = time.monotonic() + self.cfg.sync_timeout
        while True:
            left = deadline - time.monotonic()
            if stop is not None and stop.is_set():
                return
            if wait_all_synced(required, max(0.0, min(left, 0.2) if stop is not None else left)):
                break
            if time.monotonic() >= deadline:
                self.stop()
                raise TimeoutError(f"controller: caches not synced within {self.cfg.sync_timeout}s "
                                   "(is the API reachable?)")
        logger.info(
            "controller_synced",
            nodes=len(self.nodes), slices=len(self.slices), claims=len(self.claims), pods=len(self.pods),
            accounted_claims=len(self.view.claims),
        )
        for target, name in ((self._work, "scheduler"), (self.releaser.run, "releaser")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        if self.cfg.leader is None:
            if lead:
                self._started_leading()
        else:
            self.elector = LeaderElector(self.kube, self.cfg.leader, self._started_leading, self._stopped_leading)
            self.elector.start()

    def stop(self) -> None:
        """Stop deciding, let in-flight writes finish, then hand the Lease over and stop watching.

        The order matters: releasing the Lease before our last writes landed would let a new
        leader decide without seeing them.
        """
        self._stop.set()
        self._leading.clear()
        self.queue.shutdown()
        self.releases.shutdown()
        for t in self._threads:
            t.join(timeout=10)
        self._binders.shutdown(wait=True)
        if self.elector is not None:
            self.elector.stop(release=True)
        for inf in self.informers:
            inf.stop()

    def lead(self) -> None:
        """Start scheduling (no leader election configured and `start(lead=False)` was used)."""
        if self.cfg.leader is not None:
            raise RuntimeError("controller: lead() is for controllers without leader election")
        self._started_leading()

    def is_leader(self) -> bool:
        return self._leading.is_set()

    def healthy(self) -> bool:
        return not self._stop.is_set() and all(inf.wait_synced(0) for inf in self.informers if inf not in self.optional)

    def _started_leading(self) -> None:
        if self.cfg.leader is not None:
            # Runs on the election thread: stay well within the renew deadline.
            self._catch_up(timeout=self.cfg.leader.renew_deadline / 2)
        self.metrics.leader.set(1)
        self._leading.set()
        # Anything that changed while we were standby: look at every pending pod and every claim.
        for pod in self.pods.items():
            if self._wants(pod):
                self.queue.add(k.key_of(pod))
        if self.cfg.release:
            for claim in self.claims.items():
                if self.releaser.needs_release(claim):
                    self.releases.add(k.key_of(claim))

    def _catch_up(self, timeout: float = 10.0) -> None:
        """Before deciding as a new leader, make sure our claim cache has every write the previous
        leader made: a consistent LIST, then wait until the cache holds each claim at least at the
        listed version. Without it, a standby whose watch lags by milliseconds could hand out a
        device the old leader allocated just before it let go."""
        try:
            listed = self.kube.list_raw(k.CLAIMS)["items"]
        except Exception as exc:  # noqa: BLE001 - then the cache is the best we have
            logger.warning("catch_up_list_failed", error=k.api_error(exc)[1])
            return
        deadline = time.monotonic() + timeout
        pending = {k.key_of(c): (c.get("metadata") or {}).get("resourceVersion") for c in listed}
        while pending and time.monotonic() < deadline and not self._stop.is_set():
            for key, rv in list(pending.items()):
                cached = self.claims.get(key)
                have = (cached or {}).get("metadata", {}).get("resourceVersion")
                if cached is not None and (have == rv or rv_newer(have, rv)):
                    del pending[key]
            if pending:
                time.sleep(0.01)
        if pending:
            logger.warning("catch_up_incomplete", claims=len(pending))

    def _stopped_leading(self) -> None:
        self.metrics.leader.set(0)
        self._leading.clear()

    # ---- event handlers (informer threads) -------------------------------------------------

    def _on_class(self, event: str, old: dict | None, new: dict | None) -> None:
        self.view.on_class(event, old, new)
        self.queue.cluster_changed()

    def _on_template(self, event: str, old: dict | None, new: dict | None) -> None:
        if new is not None and event == "ADDED":
            with self._lock:
                waiting = self._awaiting.pop("template:" + k.key_of(new), set())
            for key in waiting:
                self.queue.add(key)

    def _on_node(self, event: str, old: dict | None, new: dict | None) -> None:
        if self.view.on_node(event, old, new):
            self.queue.cluster_changed()

    def _on_slice(self, event: str, old: dict | None, new: dict | None) -> None:
        self.view.on_slice(event, old, new)
        self.queue.cluster_changed()

    def _on_claim(self, event: str, old: dict | None, new: dict | None) -> None:
        self.view.on_claim(event, old, new)
        self.extended.track(old, new)
        if new is not None and event == "ADDED":
            with self._lock:
                waiting = self._awaiting.pop(k.key_of(new), set())
            for key in waiting:
                self.queue.add(key)  # pods that were waiting for exactly this claim
            for ref in new["metadata"].get("ownerReferences") or []:
                if ref.get("kind") == "Pod":
                    key = self._pod_by_uid.get(ref.get("uid", ""))
                    if key:
                        self.queue.add(key)
        old_alloc = ((old or {}).get("status") or {}).get("allocation")
        new_alloc = ((new or {}).get("status") or {}).get("allocation")
        if old_alloc and not new_alloc:
            self.queue.cluster_changed()  # devices freed
        if new is not None and self.cfg.release and self.releaser.needs_release(new):
            self.releases.add(k.key_of(new))

    def _on_namespace(self, event: str, old: dict | None, new: dict | None) -> None:
        self.view.on_namespace(event, old, new)
        self.queue.cluster_changed()

    def _on_volume(self, kind: str, event: str, old: dict | None, new: dict | None) -> None:
        self.view.on_volume(kind, event, old, new)
        self.queue.cluster_changed()

    def _on_pod(self, event: str, old: dict | None, new: dict | None) -> None:
        self.view.on_pod(event, old, new)
        obj = new or old or {}
        uid = obj["metadata"].get("uid", "")
        key = k.key_of(obj)
        if new is None or (new.get("spec") or {}).get("nodeName") or pod_is_done(new):
            self.preemptor.done(key)  # bound or gone: its nomination ends
        if new is None:
            with self._lock:
                for waiting in self._awaiting.values():
                    waiting.discard(key)
            self._pod_by_uid.pop(uid, None)
            self._reported.pop(uid, None)
            self._first_try.pop(key, None)
        else:
            self._pod_by_uid[uid] = key
            if self._wants(new):
                self.queue.add(key)
        gone = new is None or pod_is_done(new)
        if gone:
            self.queue.cluster_changed()  # cpu, memory and (after release) devices freed
            if self.cfg.release:
                for claim_key in self._claim_keys(obj):
                    self.releases.add(claim_key)

    # ---- what needs doing ------------------------------------------------------------------

    def _wants(self, pod: dict | None) -> bool:
        if pod is None:
            return False
        spec = pod.get("spec") or {}
        return (
            spec.get("schedulerName") == self.cfg.scheduler_name
            and not spec.get("nodeName")
            and not pod["metadata"].get("deletionTimestamp")
            and not pod_is_done(pod)
            and not spec.get("schedulingGates")  # gated: never scheduled, no claim allocated (PreEnqueue)
        )

    def _claim_keys(self, pod: dict) -> list[str]:
        return pod_claim_keys(pod)

    # ---- scheduling worker -----------------------------------------------------------------

    def _work(self) -> None:
        serve(self.queue, self._stop, self._leading, self._schedule_one, logger, "schedule_failed", "pod",
              after=self._gauge_queue)

    def _gauge_queue(self) -> None:
        for state, n in self.queue.depth().items():
            self.metrics.queue_depth.labels(state).set(n)

    def _schedule_one(self, key: str) -> None:
        pod = self.pods.get(key)
        if not self._wants(pod) or not self._leading.is_set():
            self.queue.forget(key)
            return
        assert pod is not None
        uid = pod["metadata"]["uid"]
        with self._lock:
            if uid in self._in_flight:
                return  # its binder re-queues it if the writes fail
        if self.view.is_assumed_bound(uid):
            # Bound by us; the informer has not shown the binding yet (an older event of the pod,
            # e.g. our own status write, woke it). Scheduling it again would allocate twice.
            self.queue.forget(key)
            return
        pod = self.pods.get(key)  # the binding may have arrived between the two reads above
        if not self._wants(pod):
            self.queue.forget(key)
            return
        assert pod is not None
        self.extended.drop_stale(pod)
        started = time.monotonic()
        self._first_try.setdefault(key, started)
        templates = self.templates.get if self.templates.wait_synced(0) else None
        claims, why, user_error = resolve_claims(pod, self.claims.get, templates)
        if why is not None:
            self.metrics.attempts.labels("waiting").inc()
            if user_error:
                self._report(pod, why)
            arrived = False
            if why.startswith("resourceclaimtemplate "):
                tkey = why.split()[1]
                with self._lock:
                    self._awaiting.setdefault("template:" + tkey, set()).add(key)
                arrived = self.templates.get(tkey) is not None
            for claim_key in self._claim_keys(pod):
                if self.claims.get(claim_key) is not None:
                    continue
                with self._lock:
                    self._awaiting.setdefault(claim_key, set()).add(key)
                # The claim may have arrived between the lookup and the registration.
                arrived = arrived or self.claims.get(claim_key) is not None
            if arrived:
                self.queue.retry_later(key)
            else:
                self.queue.park(key, wake_on_change=False)  # the pod's or its claim's own event wakes it
            return
        plan = plan_claims(claims, self.view.allocation_of, self.view.node_of)
        if plan.conflict:
            self._report(pod, plan.conflict)
            self.queue.park(key)
            return
        target, pending, floating = pod, plan.pending, plan.allocated
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        nominated = self.preemptor.nominated_elsewhere(key)
        with self.view.lock:
            result = schedule(target, pending, self.view.state, self.view.classes, self.cfg.packing, now,
                              allocated=floating, nominated=nominated)
            if isinstance(result, Unschedulable):
                reason = plan.explain(result.reason)  # the explanation reads the state: under the lock
        if isinstance(result, Unschedulable):
            reason += self.preemptor.attempt(pod, target, pending, result, floating, now, nominated)
            self.metrics.attempts.labels("unschedulable").inc()
            self.metrics.latency.labels("unschedulable").observe(time.monotonic() - started)
            self._report(pod, reason)
            self.queue.park(key)
            return
        by_name = {c["metadata"]["name"]: c for c in claims}
        assumed = {}
        for name, alloc in result.allocations.items():
            if name == ext.IN_MEMORY_NAME:  # the extended-resource claim: created by the binder
                assumed[self.extended.temp_uid(pod)] = (name, alloc)
                continue
            claim = by_name[name]
            assumed[claim["metadata"]["uid"]] = (name, alloc)
        self.view.assume(pod, result.node, assumed)
        with self._lock:
            self._in_flight.add(uid)
        try:
            self._binders.submit(self._bind, key, pod, result.node, claims, result.allocations, list(assumed), started,
                                 result.extended)
        except RuntimeError:  # shutting down: undo the decision, the next leader makes it again
            self.view.forget(pod, list(assumed))
            with self._lock:
                self._in_flight.discard(uid)

    def _bind(self, key: str, pod: dict, node: str, claims: list[dict], allocations: dict[str, dict],
              assumed_uids: list[str], started: float, extended: Any = None) -> None:
        uid = pod["metadata"]["uid"]
        written = []
        special: Written | None = None
        try:
            if extended is not None:
                special = self.extended.create(pod, extended, allocations[ext.IN_MEMORY_NAME], assumed_uids)
            for claim in claims:
                alloc = allocations.get(claim["metadata"]["name"])
                reserved = (claim.get("status") or {}).get("reservedFor") or []
                if alloc is None and any(r.get("uid") == uid for r in reserved):
                    continue
                try:
                    w = self.writer.reserve(claim, pod, alloc)
                except WriteError as exc:
                    if exc.maybe is not None:  # it may have landed: roll it back as if it did
                        written.append(exc.maybe)
                    raise
                written.append(w)
                if w.allocated:
                    self.view.written(w.uid, w.resource_version)
            self.writer.bind(pod, node)
        except Exception as exc:  # noqa: BLE001
            status = getattr(exc, "status", 0)
            result = "conflict" if status == 409 else "error"
            logger.info("bind_failed", pod=key, node=node, error=str(exc), rolled_back=len(written))
            unconfirmed: list[Written] = []
            try:
                unconfirmed = self.writer.rollback(written, pod)
                if special is not None:
                    self.extended.drop(pod, {"metadata": {"name": special.name, "namespace": special.namespace,
                                                           "uid": special.uid}}, [special])
            finally:
                # A claim whose rollback was not confirmed may still hold its devices in the API:
                # keep counting them until the informer shows the claim (then the API is the truth).
                kept = {w.uid for w in unconfirmed if w.allocated}
                for claim_uid in kept:
                    self.view.keep_counting(claim_uid)
                self.view.forget(pod, [u for u in assumed_uids if u not in kept])
                with self._lock:
                    self._in_flight.discard(uid)
                self.metrics.attempts.labels(result).inc()
                self.metrics.latency.labels(result).observe(time.monotonic() - started)
                if isinstance(exc, WriteError) and exc.gone and "bind" in str(exc):
                    self.queue.forget(key)  # the pod is gone
                else:
                    self.queue.retry_later(key)
            return
        with self._lock:
            self._in_flight.discard(uid)
            self.scheduled += 1
        self.queue.forget(key)
        self._reported.pop(uid, None)
        self.metrics.attempts.labels("scheduled").inc()
        self.metrics.latency.labels("scheduled").observe(time.monotonic() - started)
        first = self._first_try.pop(key, None)
        if first is not None:
            self.metrics.e2e.observe(time.monotonic() - first)
        logger.debug("pod_bound", pod=key, node=node, claims=len(claims))

    def _report(self, pod: dict, message: str) -> None:
        """PodScheduled=False + a FailedScheduling event, once per distinct message."""
        uid = pod["metadata"]["uid"]
        if self._reported.get(uid) == message:
            return
        self._reported[uid] = message
        logger.info("pod_unschedulable", pod=k.key_of(pod), reason=message)
        try:
            self.writer.mark_unschedulable(pod, message)
        except WriteError as exc:
            logger.warning("condition_failed", pod=k.key_of(pod), error=str(exc))
            self._reported.pop(uid, None)
        self.writer.event(pod, "FailedScheduling", message)

    # ---- metrics ---------------------------------------------------------------------------

    def _shares(self):  # type: ignore[no-untyped-def]
        report = build_report(self.slices.items(), self.claims.items(), self.pods.items())
        return [(r.node, r.gpu, r.mode, r.share) for r in report.gpus]

    # ---- helpers for tests, demo and benchmark ---------------------------------------------

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is queued, being decided or being written (parked pods excepted)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                busy = bool(self._in_flight)
            if not busy and self.queue.idle():
                return True
            time.sleep(0.02)
        return False
