"""DefaultPreemption: when a pod fits nowhere, which lower-priority pods to evict, and where.

kube-scheduler's rules (pkg/scheduler/framework/plugins/defaultpreemption, framework/preemption):

- a pod with `preemptionPolicy: Never` never preempts; a pod already nominated to a node where
  lower-priority pods are still terminating waits for them instead of preempting again;
- candidate nodes are those whose refusal preemption can change (`Rejection.unresolvable` is
  False: resources, devices, anti-affinity — not taints, node affinity or missing labels);
- on each candidate, every lower-priority pod is removed; if the pod then fits, victims are
  *reprieved* one by one, highest priority first (those whose eviction would violate a
  PodDisruptionBudget before the others), keeping each one that the pod can live beside;
- the node chosen has, in order: fewest PDB violations, the lowest highest-victim priority, the
  lowest sum of victim priorities, the fewest victims; then the first in node order.

What a victim frees is the caller's to say (`freed`): its cpu, memory and pod slot, and the
devices of claims no other remaining pod uses — so a high-priority pod can take a GPU, MIG slice
or fraction held by a low-priority one. The state is changed while a candidate is evaluated and
restored before returning, whatever happens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from driver import log
from driver.scheduler import labels as sel
from driver.scheduler.cycle import Unschedulable, schedule
from driver.scheduler.podinfo import PodInfo
from driver.scheduler.state import ClusterState, Placement

logger = log.get(__name__)

MIN_CANDIDATES = 100  # kube-scheduler's minCandidateNodesAbsolute


@dataclass(frozen=True, slots=True)
class Preemption:
    """The pod fits on `node` once `victims` are gone."""

    node: str
    victims: tuple[PodInfo, ...]
    pdb_violations: int
    placement: Placement

    @property
    def key(self) -> tuple:
        """kube-scheduler's order (pickOneNodeForPreemption): fewest PDB violations, lowest highest
        victim priority, lowest priority sum (each shifted by MaxInt32+1 so that negative priorities
        still favour fewer victims), fewest victims, latest start of the highest-priority victims."""
        prios = [v.priority for v in self.victims]
        top = max(prios, default=0)
        earliest = min((_start(v) for v in self.victims if v.priority == top), default="")
        return (self.pdb_violations, top, sum(p + 2**31 for p in prios), len(prios), _neg(earliest))


@dataclass(frozen=True, slots=True)
class NotPreempting:
    """Why preemption did not help (a FailedScheduling message names it, as kube-scheduler's does)."""

    reason: str


Freed = Callable[[PodInfo], list[Placement]]


def _pdbs_of(victim: PodInfo, pdbs: Sequence[Mapping[str, Any]]) -> list[int]:
    out = []
    for i, pdb in enumerate(pdbs):
        meta = pdb.get("metadata") or {}
        if (meta.get("namespace") or "default") != victim.namespace:
            continue
        try:
            selector = sel.parse((pdb.get("spec") or {}).get("selector"), "spec.selector")
        except sel.SelectorError:
            continue
        if selector.everything:  # upstream: an empty PDB selector matches nothing for preemption
            continue
        if selector.matches(victim.labels):
            out.append(i)
    return out


def _split_by_pdb(victims: list[PodInfo], pdbs: Sequence[Mapping[str, Any]]) -> tuple[list[PodInfo], list[PodInfo]]:
    """(violating, non-violating): a victim violates when a PDB it matches has no disruption left."""
    allowed = [int(((p.get("status") or {}).get("disruptionsAllowed")) or 0) for p in pdbs]
    violating, fine = [], []
    for v in victims:
        hit = False
        for i in _pdbs_of(v, pdbs):
            disrupted = ((pdbs[i].get("status") or {}).get("disruptedPods")) or {}
            if v.name in disrupted:
                continue
            allowed[i] -= 1
            hit = hit or allowed[i] < 0
        (violating if hit else fine).append(v)
    return violating, fine


def _start(p: PodInfo) -> str:
    """RFC 3339 start time (sorts as time); a pod not started yet counts as starting now, i.e. last."""
    return str(((p.obj.get("status") or {}).get("startTime")) or "9999")


def _neg(timestamp: str) -> tuple[int, ...]:
    """A sort key under which later timestamps come first."""
    return tuple(-ord(ch) for ch in timestamp)


def preempt(pod: Mapping[str, Any], claims: list[Mapping[str, Any]], state: ClusterState, failed: Unschedulable,
            freed: Freed, pdbs: Sequence[Mapping[str, Any]] = (), *, classes: Mapping[str, Any] | None = None,
            now: str | None = None, allocated: list[Mapping[str, Any]] = (),
            nominated: Mapping[str, int] | None = None, held: str | None = None) -> Preemption | NotPreempting:
    """Find where `pod` (that `schedule` just refused with `failed`) fits by evicting lower-priority pods.

    `nominated` is what `schedule` got: nodes held for other preemptors of higher or equal
    priority are no candidates (evicting there would free nothing this pod can use). `held` is the
    node this pod was nominated to by an earlier cycle (default: its status.nominatedNodeName; the
    caller's own record is fresher than a cached pod)."""
    spec = pod.get("spec") or {}
    if spec.get("preemptionPolicy") == "Never":
        return NotPreempting("not eligible due to preemptionPolicy=Never.")
    priority = spec.get("priority") if isinstance(spec.get("priority"), int) else 0
    held = held or (pod.get("status") or {}).get("nominatedNodeName")  # its own nomination, from an earlier cycle
    if held:
        for other in state.pods.on_node(held).values():
            if other.priority < priority and (other.obj.get("metadata") or {}).get("deletionTimestamp"):
                return NotPreempting("not eligible: victims on the nominated node are still terminating.")
    if failed.rejection is not None:
        return NotPreempting("preemption is not helpful for scheduling.")
    rejections = failed.rejections
    candidates: list[Preemption] = []
    for name in sorted(rejections):
        why = rejections[name]
        if why.unresolvable or why.plugin == "DefaultPreemption" or name not in state.nodes:
            continue
        lower = [p for p in state.pods.on_node(name).values() if p.priority < priority]
        if not lower:
            continue
        found = _on_node(pod, claims, state, name, lower, freed, pdbs, classes, now, allocated, nominated)
        if found is not None:
            candidates.append(found)
            if len(candidates) >= max(MIN_CANDIDATES, len(state.nodes) // 10):
                break
    if not candidates:
        return NotPreempting("No preemption victims found for incoming pod.")
    return min(candidates, key=lambda c: (c.key, c.node))


def _remove(state: ClusterState, victims: Iterable[PodInfo], freed: Freed, removed: list) -> None:
    """Take victims out of the state, recording each step as it is done, so that `_restore` puts
    back exactly what was taken even if a release fails midway."""
    for v in victims:
        done: list[Placement] = []
        removed.append((v, done))
        for p in freed(v):
            state.release(p)
            done.append(p)
        state.pods.remove(v.uid)


def _restore(state: ClusterState, removed: list) -> None:
    while removed:
        v, placements = removed.pop()
        while placements:
            state.commit(placements[-1])
            placements.pop()
        if state.pods.get(v.uid) is None:
            state.pods.add(v)


def _on_node(pod: Mapping[str, Any], claims: list[Mapping[str, Any]], state: ClusterState, node: str,
             lower: list[PodInfo], freed: Freed, pdbs: Sequence[Mapping[str, Any]],
             classes: Mapping[str, Any] | None, now: str | None, allocated: list[Mapping[str, Any]],
             nominated: Mapping[str, int] | None = None) -> Preemption | None:
    def fits() -> Placement | None:
        got = schedule(pod, claims, state, classes, now=now, observe=False, allocated=allocated, nodes=[node],
                       nominated=nominated)
        return None if isinstance(got, Unschedulable) else got

    removed: list = []
    try:
        _remove(state, lower, freed, removed)
        if fits() is None:
            return None
        ordered = sorted(lower, key=lambda p: (-p.priority, _start(p), p.key))
        violating, fine = _split_by_pdb(ordered, pdbs)
        victims: list[PodInfo] = []
        violations = 0
        for group, counts in ((violating, True), (fine, False)):
            for v in group:
                # Put v back; keep it if the pod still fits beside it.
                idx = next(i for i, (r, _) in enumerate(removed) if r.uid == v.uid)
                _, placements = removed.pop(idx)
                back: list[Placement] = []
                removed.append((v, placements))  # (still recorded: restored if anything below raises)
                while placements:
                    state.commit(placements[-1])
                    back.append(placements.pop())
                state.pods.add(v)
                if fits() is None:  # v stays a victim: take it out again
                    state.pods.remove(v.uid)
                    while back:
                        p = back.pop()
                        state.release(p)
                        placements.append(p)
                    victims.append(v)
                    violations += int(counts)
                else:
                    removed.pop()  # reprieved: back in the state for good
        placement = fits()
        if placement is None:  # cannot happen unless a filter is not monotone; be safe
            return None
        return Preemption(node, tuple(victims), violations, placement)
    finally:
        _restore(state, removed)
