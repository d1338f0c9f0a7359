"""SchedulingGates: a pod with spec.schedulingGates is not scheduled until every gate is
removed. kube-scheduler keeps such pods out of its queue (PreEnqueue); here the whole pod is
rejected, unresolvable, in its words: "waiting for scheduling gates: [gate1 gate2]"."""

from __future__ import annotations

from typing import Any, Mapping

from driver.scheduler.framework import CycleContext, Rejection

PLUGIN = "SchedulingGates"


def gates(pod: Mapping[str, Any]) -> list[str]:
    """The names of the pod's scheduling gates, in spec order."""
    raw = (pod.get("spec") or {}).get("schedulingGates") or []
    if not isinstance(raw, list):
        raise ValueError("spec.schedulingGates: expected a list of {name: ...}")
    out = []
    for i, g in enumerate(raw):
        name = g.get("name") if isinstance(g, Mapping) else None
        if not isinstance(name, str) or not name:
            raise ValueError(f"spec.schedulingGates[{i}].name: a gate name is required")
        out.append(name)
    return out


def prefilter(ctx: CycleContext) -> Rejection | None:
    try:
        names = gates(ctx.pod)
    except ValueError as exc:
        return Rejection(PLUGIN, str(exc), unresolvable=True)
    if not names:
        return None
    return Rejection(PLUGIN, f"waiting for scheduling gates: [{' '.join(names)}]", unresolvable=True)
