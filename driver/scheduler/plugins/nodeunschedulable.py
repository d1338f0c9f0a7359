"""NodeUnschedulable: a cordoned node (spec.unschedulable) takes only pods that tolerate the
`node.kubernetes.io/unschedulable:NoSchedule` taint (kube-scheduler checks the field, not the
taint the node lifecycle controller adds beside it, so a pod tolerating that taint may use a
cordoned node). "node(s) were unschedulable", unresolvable: evicting pods does not uncordon.

The cycle applies this per equivalence group (`NodeState.unschedulable` is part of a group's
key) through `tainttoleration.untolerated`; `prefilter` is the same check per node, and returns
None unless some group is cordoned and the pod does not tolerate it.
"""

from __future__ import annotations

from typing import Any

from driver.scheduler.framework import Checks, CycleContext, Rejection
from driver.scheduler.plugins.tainttoleration import (UNSCHEDULABLE_REASON, UNSCHEDULABLE_TAINT, pod_tolerations,
                                                      tolerates)

PLUGIN = "NodeUnschedulable"
REASON = UNSCHEDULABLE_REASON


def tolerates_cordon(pod: Any) -> bool:
    return tolerates(pod_tolerations(pod), UNSCHEDULABLE_TAINT, "", "NoSchedule")


def prefilter(ctx: CycleContext) -> Checks | None:
    if not any(g.unschedulable for g in ctx.state.groups.values()) or tolerates_cordon(ctx.pod):
        return None
    rejected = Rejection(PLUGIN, REASON, unresolvable=True)

    def cordon(node: Any) -> Rejection | None:
        return rejected if node.unschedulable else None
    return Checks(PLUGIN, filter=cordon)
