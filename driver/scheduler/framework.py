"""What a constraint plugin gives the cycle: typed filter results and per-node scores.

Each module under `plugins/` exposes `prefilter(ctx) -> Checks | Rejection | None`, run once per
pod per cycle (kube-scheduler's PreFilter):

- `None`: the plugin has nothing to say about this pod (kube-scheduler's Skip) — the common case,
  and why a pod without constraints costs nothing extra;
- a `Rejection`: no node can take the pod (a gated pod, an unreadable spec);
- `Checks`: a per-node `filter` (None = may go there, else a `Rejection` in kube-scheduler's
  words) and/or a per-node `score` with its `normalize` (to 0..100, as kube-scheduler's
  NormalizeScore), weighted by the plugin's weight in the config.

Results are values, never strings to parse: `Rejection.reason` is the text a user reads (grouped
into "0/N nodes are available: ..."), `Rejection.unresolvable` says whether evicting pods from the
node could help (kube-scheduler's UnschedulableAndUnresolvable), which preemption reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from driver.scheduler.podinfo import PodInfo

if TYPE_CHECKING:
    from driver.scheduler.packing.config import PackingConfig
    from driver.scheduler.state import ClusterState, NodeState


@dataclass(frozen=True, slots=True)
class Rejection:
    plugin: str
    reason: str
    unresolvable: bool = False


NodeFilter = Callable[["NodeState"], "Rejection | None"]
NodeScore = Callable[["NodeState"], float]
Normalize = Callable[[dict[str, float]], dict[str, float]]


@dataclass(slots=True)
class Checks:
    """One plugin's per-node work for one pod."""

    plugin: str
    filter: NodeFilter | None = None
    score: NodeScore | None = None
    normalize: Normalize | None = None


@dataclass(slots=True)
class CycleContext:
    """What every plugin's prefilter reads: the pod (dict and parsed), the snapshot, the config."""

    pod: Mapping[str, Any]
    info: PodInfo
    state: "ClusterState"
    config: "PackingConfig"
    cache: dict[str, Any] = field(default_factory=dict)


def default_normalize(scores: dict[str, float], reverse: bool = False) -> dict[str, float]:
    """kube-scheduler's DefaultNormalizeScore: scale to 0..100 by the highest score (reverse:
    100 - that, for scores where less is better). All zero stays zero (or 100 reversed)."""
    top = max(scores.values(), default=0.0)
    if top <= 0:
        return {n: (100.0 if reverse else 0.0) for n in scores}
    out = {n: 100.0 * s / top for n, s in scores.items()}
    return {n: 100.0 - s for n, s in out.items()} if reverse else out
