"""NodeName: a pod that names its node (spec.nodeName) fits only that node — "node(s) didn't
match the requested node name", unresolvable. Pods without spec.nodeName: nothing to check."""

from __future__ import annotations

from typing import Any

from driver.scheduler.framework import Checks, CycleContext, Rejection

PLUGIN = "NodeName"
REASON = "node(s) didn't match the requested node name"


def prefilter(ctx: CycleContext) -> Checks | Rejection | None:
    wanted = (ctx.pod.get("spec") or {}).get("nodeName")
    if not wanted:
        return None
    if not isinstance(wanted, str):
        return Rejection(PLUGIN, f"spec.nodeName: expected a node name, got {type(wanted).__name__}",
                         unresolvable=True)
    rejected = Rejection(PLUGIN, REASON, unresolvable=True)

    def named(node: Any) -> Rejection | None:
        return None if node.name == wanted else rejected
    return Checks(PLUGIN, filter=named)
