"""DefaultPreemption in the controller: evict the victims `scheduler.preemption` names, and keep
what was freed for the pod that preempted.

After a preemption the pod is nominated to the node (status.nominatedNodeName), each victim gets a
DisruptionTarget condition, a Preempted event and a graceful delete. Until the pod binds, pods of
lower or equal priority do not take that node (`nominated_elsewhere`), and the pod does not preempt
again while its victims, or the claims only they used, still hold what it is waiting for.
"""

from __future__ import annotations

import threading
from typing import Callable

from driver import log
from driver.controller import kube as k
from driver.controller.metrics import Metrics
from driver.controller.objects import pod_claim_keys
from driver.controller.view import ClusterView
from driver.controller.writer import WriteError, Writer
from driver.scheduler.cycle import Unschedulable
from driver.scheduler.preemption import NotPreempting, preempt

logger = log.get(__name__)


class Preemptor:
    """See module docstring. `pods` / `claims` look objects up by "namespace/name"; `pdbs` lists
    the PodDisruptionBudgets (informer caches)."""

    def __init__(self, writer: Writer, view: ClusterView, metrics: Metrics, pods: Callable[[str], dict | None],
                 claims: Callable[[str], dict | None], pdbs: Callable[[], list[dict]], enabled: bool = True) -> None:
        self.writer = writer
        self.view = view
        self.metrics = metrics
        self.pods = pods
        self.claims = claims
        self.pdbs = pdbs
        self.enabled = enabled
        self._lock = threading.Lock()
        self._nominated: dict[str, tuple[str, int]] = {}  # pod key -> (node, priority) after preempting
        self._victims: dict[str, list[tuple[str, str, list[str]]]] = {}  # pod key -> victims (key, uid, claims)

    def nominated_elsewhere(self, key: str) -> dict[str, int]:
        """Nodes held for other pods' preemptions: node -> the highest priority waiting there."""
        out: dict[str, int] = {}
        with self._lock:
            for other, (node, prio) in self._nominated.items():
                if other != key:
                    out[node] = max(prio, out.get(node, prio))
        return out

    def done(self, key: str) -> None:
        """The pod is bound or gone: what it held ends."""
        with self._lock:
            self._nominated.pop(key, None)
            self._victims.pop(key, None)

    def attempt(self, pod: dict, target: dict, pending: list[dict], failed: Unschedulable,
                     floating: list[dict], now: str, nominated: dict[str, int] | None = None) -> str:
        """Try DefaultPreemption; evict the victims it names. Returns text for the pod's message."""
        if not self.enabled:
            return ""
        waiting = self._victims_pending(k.key_of(pod))
        if waiting:
            # Victims evicted for this pod are still going (or their claims still hold devices):
            # preempting again now would evict more pods for the same room.
            return f" preemption: waiting for {waiting} to free their resources."
        with self._lock:
            mine = self._nominated.get(k.key_of(pod))
        with self.view.lock:
            outcome = preempt(target, pending, self.view.state, failed, lambda v: self.view.freed_by(v, self.claims), self.pdbs(),
                              classes=self.view.classes, now=now, allocated=floating, nominated=nominated,
                              held=mine[0] if mine else None)
        if isinstance(outcome, NotPreempting):
            return f" preemption: {outcome.reason}"
        key = k.key_of(pod)
        with self._lock:
            self._nominated[key] = (outcome.node, int((pod.get("spec") or {}).get("priority") or 0))
            self._victims[key] = [(v.key, v.uid, pod_claim_keys(v.obj)) for v in outcome.victims]
        logger.info("preempting", pod=key, node=outcome.node, victims=[v.key for v in outcome.victims],
                    pdb_violations=outcome.pdb_violations)
        try:
            self.writer.nominate(pod, outcome.node)
            for v in outcome.victims:
                self.writer.evict(dict(v.obj), pod, outcome.node)
        except WriteError as exc:
            logger.warning("preemption_failed", pod=key, error=str(exc))
            return f" preemption: {exc}"
        self.metrics.attempts.labels("preempting").inc()
        return f" preemption: evicting {len(outcome.victims)} pod(s) on node {outcome.node}."

    def _victims_pending(self, key: str) -> str | None:
        """The first victim of this pod's last preemption that still exists, or whose claims (that
        it alone used) are still allocated; None when all is free (and the record is dropped)."""
        with self._lock:
            victims = self._victims.get(key, [])
        for vkey, vuid, claim_keys in victims:
            live = self.pods(vkey)
            if live is not None and live["metadata"].get("uid") == vuid:
                return f"pod {vkey}"
            for ckey in claim_keys:
                claim = self.claims(ckey)
                status = (claim or {}).get("status") or {}
                users = {r.get("uid") for r in status.get("reservedFor") or []}
                if status.get("allocation") and users <= {vuid}:
                    return f"the claim {ckey} of pod {vkey}"
        with self._lock:
            self._victims.pop(key, None)
        return None
