"""TaintToleration: taints keep pods away unless tolerated; PreferNoSchedule taints score.

Toleration matching is core/v1's `ToleratesTaint`: an empty effect matches every effect, an
empty key (with operator Exists) every key; operator Equal (the default) compares values, Exists
ignores them, Gt / Lt compare the taint's value to the toleration's as integers (the taint's
must be greater / less).

Filter: the first NoSchedule / NoExecute taint (in the node's spec order) no toleration matches
rejects the node, "node(s) had untolerated taint {key: value}", unresolvable (evicting pods does
not remove a taint). Score: the number of PreferNoSchedule taints not tolerated by the pod's
tolerations whose effect is PreferNoSchedule or empty, normalized reversed (fewer is better).

Cost: the cycle applies the filter per equivalence group (every node of a group shares its
NoSchedule / NoExecute taints, `NodeState.taints`) through `untolerated`. The score runs only
when some node has a PreferNoSchedule taint: a `TaintIndex` kept beside the state
(`state.taint_index`, updated on node add / remove) answers that in O(1); without one, the nodes'
taints are scanned once per pod.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from driver.scheduler.framework import Checks, CycleContext, Rejection, default_normalize

PLUGIN = "TaintToleration"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
UNSCHEDULABLE_REASON = "node(s) were unschedulable"  # NodeUnschedulable's words (see nodeunschedulable.py)
DO_NOT_SCHEDULE = ("NoSchedule", "NoExecute")
PREFER = "PreferNoSchedule"

_INT = re.compile(r"^[+-]?[0-9]+$")
_INT64 = (-(2**63), 2**63 - 1)

Taint = tuple[str, str, str]  # (key, value, effect)


def untolerated_reason(key: str, value: str) -> str:
    return f"node(s) had untolerated taint {{{key}: {value}}}"


def _int64(text: str) -> int | None:
    if not _INT.match(text):
        return None
    n = int(text)
    return n if _INT64[0] <= n <= _INT64[1] else None


def _tolerates_one(t: Mapping[str, Any], key: str, value: str, effect: str) -> bool:
    if t.get("effect") and t["effect"] != effect:
        return False
    if t.get("key") and t["key"] != key:
        return False
    op = t.get("operator") or "Equal"
    if op == "Equal":
        return (t.get("value") or "") == value
    if op == "Exists":
        return True
    if op in ("Gt", "Lt"):
        mine, theirs = _int64(str(t.get("value") or "")), _int64(value)
        if mine is None or theirs is None:
            return False
        return theirs > mine if op == "Gt" else theirs < mine
    return False


def tolerates(tolerations: Iterable[Mapping[str, Any]], key: str, value: str, effect: str) -> bool:
    """Does any toleration tolerate the taint (key, value, effect)?"""
    return any(isinstance(t, Mapping) and _tolerates_one(t, key, value, effect) for t in tolerations)


def taints_of(node: Mapping[str, Any]) -> list[Taint]:
    """Every taint of a Node dict, in spec order."""
    out = []
    for t in ((node.get("spec") or {}).get("taints")) or []:
        if isinstance(t, Mapping):
            out.append((str(t.get("key") or ""), str(t.get("value") or ""), str(t.get("effect") or "")))
    return out


def node_taints(node: Mapping[str, Any]) -> tuple[Taint, ...]:
    """(key, value, effect) of the taints that keep pods away (NoSchedule, NoExecute), sorted:
    part of a node's equivalence-class key."""
    return tuple(sorted(t for t in taints_of(node) if t[2] in DO_NOT_SCHEDULE))


def first_untolerated(tolerations: list[Mapping[str, Any]], taints: Iterable[Taint]) -> Taint | None:
    """The first NoSchedule / NoExecute taint no toleration matches (kube-scheduler's
    FindMatchingUntoleratedTaint with DoNotScheduleTaintsFilterFunc)."""
    for key, value, effect in taints:
        if effect in DO_NOT_SCHEDULE and not tolerates(tolerations, key, value, effect):
            return key, value, effect
    return None


def pod_tolerations(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(((pod.get("spec") or {}).get("tolerations")) or [])


def untolerated(pod: Mapping[str, Any], taints: tuple[Taint, ...], unschedulable: bool) -> str | None:
    """Why the pod may not go to a node with these taints and cordon (None: it may), in
    kube-scheduler's words: NodeUnschedulable's first, then TaintToleration's."""
    tolerations = pod_tolerations(pod)
    if unschedulable and not tolerates(tolerations, UNSCHEDULABLE_TAINT, "", "NoSchedule"):
        return UNSCHEDULABLE_REASON
    hit = first_untolerated(tolerations, taints)
    return untolerated_reason(hit[0], hit[1]) if hit else None


def intolerable_prefer_count(taints: Iterable[Taint], tolerations: list[Mapping[str, Any]]) -> int:
    """PreferNoSchedule taints not tolerated (tolerations already reduced to effect PreferNoSchedule or empty)."""
    return sum(1 for k, v, e in taints if e == PREFER and not tolerates(tolerations, k, v, e))


class TaintIndex:
    """Which nodes carry PreferNoSchedule taints, kept with the nodes (the lead's state calls
    `set_node` on add / remove): lets a pod skip the TaintToleration score in O(1)."""

    def __init__(self) -> None:
        self._prefer: set[str] = set()
        self._blocking: set[str] = set()  # nodes with NoSchedule / NoExecute taints

    def set_node(self, name: str, node: Mapping[str, Any] | None) -> None:
        self._prefer.discard(name)
        self._blocking.discard(name)
        if node is not None:
            effects = {e for _, _, e in taints_of(node)}
            if PREFER in effects:
                self._prefer.add(name)
            if effects - {PREFER}:
                self._blocking.add(name)

    @property
    def any_prefer_no_schedule(self) -> bool:
        return bool(self._prefer)

    @property
    def any_blocking(self) -> bool:
        return bool(self._blocking)


def any_prefer_no_schedule(state: Any) -> bool:
    """Does some node have a PreferNoSchedule taint? O(1) with `state.taint_index`, else O(nodes)."""
    index = getattr(state, "taint_index", None)
    if isinstance(index, TaintIndex):
        return index.any_prefer_no_schedule
    for node in state.nodes.values():
        for t in ((node.obj.get("spec") or {}).get("taints")) or []:
            if isinstance(t, Mapping) and t.get("effect") == PREFER:
                return True
    return False


def _check_tolerations(pod: Mapping[str, Any]) -> Rejection | None:
    raw = (pod.get("spec") or {}).get("tolerations")
    if raw is None:
        return None
    if not isinstance(raw, list):
        return Rejection(PLUGIN, "spec.tolerations: expected a list of tolerations", unresolvable=True)
    for i, t in enumerate(raw):
        if not isinstance(t, Mapping):
            return Rejection(PLUGIN, f"spec.tolerations[{i}]: expected a toleration object", unresolvable=True)
        op = t.get("operator") or "Equal"
        if op not in ("Equal", "Exists", "Gt", "Lt"):
            return Rejection(PLUGIN, f"spec.tolerations[{i}].operator: {op!r} is not one of Equal, Exists, Gt, Lt",
                             unresolvable=True)
    return None


def prefilter(ctx: CycleContext) -> Checks | Rejection | None:
    """Filter only if some node group has NoSchedule / NoExecute taints, score only if some
    node has a PreferNoSchedule taint; None when neither (the common case)."""
    bad = _check_tolerations(ctx.pod)
    if bad is not None:
        return bad
    tolerations = pod_tolerations(ctx.pod)
    checks = Checks(PLUGIN)
    index = getattr(ctx.state, "taint_index", None)
    blocking = index.any_blocking if isinstance(index, TaintIndex) else any(g.taints for g in ctx.state.groups.values())
    if blocking:
        def taint_filter(node: Any) -> Rejection | None:
            if not node.taints:
                return None
            hit = first_untolerated(tolerations, taints_of(node.obj))
            return Rejection(PLUGIN, untolerated_reason(hit[0], hit[1]), unresolvable=True) if hit else None
        checks.filter = taint_filter
    if any_prefer_no_schedule(ctx.state):
        prefer = [t for t in tolerations if not t.get("effect") or t.get("effect") == PREFER]

        def taint_score(node: Any) -> float:
            return float(intolerable_prefer_count(taints_of(node.obj), prefer))
        checks.score = taint_score
        checks.normalize = lambda scores: default_normalize(scores, reverse=True)
    if checks.filter is None and checks.score is None:
        return None
    return checks
