"""The plugins a cycle runs, in kube-scheduler's order, and the one call that prefilters them all.

Order (default_plugins.go): SchedulingGates, NodeUnschedulable, NodeName, TaintToleration,
NodeAffinity, NodePorts, NodeResourcesFit, VolumeBinding, PodTopologySpread, InterPodAffinity;
DynamicResources is the allocator the cycle runs itself. NodeUnschedulable and TaintToleration's
filters are applied per node group by the cycle (every node of a group shares its taints), so
only their scores and explanations come from here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType

from driver.scheduler.framework import Checks, CycleContext, Rejection

ORDER = ("schedulinggates", "nodename", "tainttoleration", "nodeaffinity", "nodeports", "noderesources",
         "volumebinding", "podtopologyspread", "interpodaffinity")
GROUP_LEVEL = ("tainttoleration",)  # filters the cycle applies per group: only their scores are used here


@dataclass(slots=True)
class Plan:
    """A pod's prefilter outcome: per-node filters and scores in order, or one rejection."""

    filters: list[Checks] = field(default_factory=list)
    scores: list[Checks] = field(default_factory=list)
    rejection: Rejection | None = None


def _load() -> list[tuple[str, ModuleType]]:
    out = []
    for name in ORDER:
        try:
            out.append((name, importlib.import_module(f"driver.scheduler.plugins.{name}")))
        except ModuleNotFoundError as exc:  # pragma: no cover - plugins still being written
            if exc.name != f"driver.scheduler.plugins.{name}":
                raise
    return out


PLUGINS = _load()


# A pod with none of these spec fields, no host ports, no ephemeral-storage or extended requests,
# in a cluster without PreferNoSchedule taints, pods with affinity terms or default spread
# constraints, is one every plugin skips (tests/scheduler/test_registry.py holds each plugin to
# that): the common case — a trace replay's every pod — then costs one look instead of nine calls.
PLAIN_SPEC_FIELDS = ("schedulingGates", "nodeName", "nodeSelector", "affinity", "tolerations", "volumes",
                     "topologySpreadConstraints")


def is_plain(ctx: CycleContext) -> bool:
    spec = ctx.pod.get("spec") or {}
    for name in PLAIN_SPEC_FIELDS:
        if spec.get(name):
            return False
    info, state, config = ctx.info, ctx.state, ctx.config
    if info.host_ports or info.requests.ephemeral or info.requests.scalars or info.has_affinity_terms:
        return False
    if state.pods.with_terms or state.taint_index.any_prefer_no_schedule:
        return False
    return config.spread_defaulting == "List" and not config.spread_defaults


def prefilter(ctx: CycleContext) -> Plan:
    plan = Plan()
    if is_plain(ctx):
        return plan
    for name, module in PLUGINS:
        fn = getattr(module, "prefilter", None)
        if fn is None:
            continue
        got = fn(ctx)
        if got is None:
            continue
        if isinstance(got, Rejection):
            plan.rejection = got
            return plan
        if got.filter is not None and name not in GROUP_LEVEL:
            plan.filters.append(got)
        if got.score is not None:
            plan.scores.append(got)
    return plan
