"""`gpu-dra bench mig`: how well each packing strategy fills GPUs carved into MIG slices.

Protocol. The cluster is a `gpu-dra simulate` cluster description (default: the bundled
scenarios/mig-dynamic.yaml, 64 GPUs in dynamic MIG mode). A seeded random stream of pods, each
with one claim for a MIG profile (1g/2g/3g/4g/7g) or a whole GPU, arrives until the demand that
arrived reaches `load` times the cluster's GPU capacity; every pod goes through `schedule` +
`commit` (simulate's engine, the controller's path) and nothing ever finishes, so what is left
unplaced once the cluster is full is what packing could not fit. Reported per strategy and seed:

- pods placed (of those that arrived);
- GPUs touched (physical GPUs with anything on them) once half the capacity has arrived — at the
  end every strategy has touched every GPU;
- GPU used, % of the cluster's GPUs, at the end and when the first pod was refused: per GPU the
  larger of its memory and compute slices in use (driver.allocator.gpuuse, what `gpu-dra status`
  shows), so a GPU holding 7 x 1g.10gb is full although one memory slice is idle;
- fragment failures: pods that failed while the free GPU share of the cluster, summed over GPUs,
  was at least the pod's own (`pod_share`) — capacity lost to where earlier pods were put.

The measures come from the node's real usage (its counters), not from the scorer's view of it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from driver.allocator import gpuuse
from driver.scheduler.packing import physical
from driver.scheduler.cycle import ClusterState, Placement, Unschedulable
from driver.scheduler.packing.scoring import PackingConfig
from driver.sim import simulate

SCENARIO = Path(__file__).parent / "scenarios" / "mig-dynamic.yaml"
SLICES = 8  # memory slices of an A100/H100 80GB
# (profile or "gpu" for a whole GPU, memory slices it takes, relative frequency): an inference
# cluster, mostly small and medium instances, a few pods wanting a whole GPU.
MIX = (("1g.10gb", 1, 35), ("2g.20gb", 2, 25), ("3g.40gb", 4, 20), ("4g.40gb", 4, 10),
       ("7g.80gb", 8, 5), ("gpu", 8, 5))
PROFILE_SELECTOR = "device.attributes['gpu.nvidia.com'].profile == '{profile}'"


@dataclass(frozen=True)
class MigResult:
    """One (strategy, seed) run."""

    strategy: str
    seed: int
    pods: int
    placed: int
    gpus: int
    gpus_touched: int  # when half the capacity had arrived
    gpu_used_percent: float
    first_failure_percent: float  # GPU used when the first pod was refused (100: none was)
    fragment_failures: int
    seconds: float  # CPU seconds of the run, measuring included

    def as_json(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "seed": self.seed, "pods": self.pods, "placed": self.placed,
                "gpus": self.gpus, "gpusTouchedAtHalf": self.gpus_touched,
                "gpuUsedPercent": self.gpu_used_percent, "firstFailureAtPercent": self.first_failure_percent,
                "fragmentFailures": self.fragment_failures,
                "seconds": self.seconds}


def pod_and_claim(n: int, profile: str) -> tuple[dict, dict]:
    """Pod `mig-<n>` with one claim for `profile` (a MIG profile name, or "gpu": a whole GPU)."""
    name = f"mig-{n}"
    request: dict[str, Any] = {"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com"}}
    if profile != "gpu":
        request["exactly"] = {"deviceClassName": "mig.nvidia.com",
                              "selectors": [{"cel": {"expression": PROFILE_SELECTOR.format(profile=profile)}}]}
    claim = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
             "metadata": {"name": name, "namespace": "default", "uid": f"uid-claim-{name}"},
             "spec": {"devices": {"requests": [request]}}}
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default", "uid": f"uid-pod-{name}",
                        "labels": {"profile": profile}},
           "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10",
                                    "resources": {"requests": {"cpu": "2", "memory": "8Gi"}, "claims": [{"name": "gpu"}]}}],
                    "resourceClaims": [{"name": "gpu", "resourceClaimName": name}]}}
    return pod, claim


def pod_share(profile: str) -> float:
    """Share of an A100/H100 80GB one pod of `profile` takes (gpuuse: its more exhausted kind)."""
    if profile == "gpu":
        return 1.0
    geometry = gpuuse.FALLBACK  # the bench's GPUs; their counter sets say the same (8 + 7)
    memory = next(m[1] for m in MIX if m[0] == profile)
    return gpuuse.use(gpuuse.Part(memory / geometry.memory, (gpuuse.compute_slices(profile) or 0) / geometry.compute))


def workload(seed: int, gpus: int, load: float) -> list[tuple[dict, dict, int]]:
    """(pod, claim, slices) arriving until their slices reach `load` x the cluster's."""
    rng = random.Random(seed)
    names = [m[0] for m in MIX]
    sizes = {m[0]: m[1] for m in MIX}
    weights = [m[2] for m in MIX]
    out: list[tuple[dict, dict, int]] = []
    arrived, target = 0, load * gpus * SLICES
    while arrived < target:
        profile = rng.choices(names, weights)[0]
        pod, claim = pod_and_claim(len(out), profile)
        out.append((pod, claim, sizes[profile]))
        arrived += sizes[profile]
    return out


def _units(state: ClusterState) -> list[float]:
    """Milli in use per physical GPU over the cluster, recomputed from each node's real usage
    (its counters), with the layout its node class already holds."""
    out: list[float] = []
    for node in state.nodes.values():
        layout = node.klass.layout
        free, counters = physical.node_view(node.inventory, node.usage, layout)
        if layout is None:
            out.extend(float(t - f) for t, f in zip(node.klass.totals, free))
        else:
            out.extend(layout.unit_used(u, free, counters) for u in range(len(layout.unit_total)))
    return out


def load_cluster(cluster: str | None) -> simulate.Cluster:
    """The bench's cluster (default: the bundled SCENARIO), loaded once for every run."""
    return simulate.load(str(cluster or SCENARIO))


def run(cluster: str | simulate.Cluster | None, strategy: str, seed: int, load: float = 1.3,
        config: PackingConfig | None = None) -> MigResult:
    """One run of the protocol (see the module docstring) on a fresh state of `cluster` (a path,
    or what `load_cluster` returned)."""
    config = replace(config or PackingConfig(), strategy=strategy)
    loaded = cluster if isinstance(cluster, simulate.Cluster) else load_cluster(cluster)
    state = simulate.new_state(loaded, config)
    capacity = state.total_gpu_milli()
    gpus = capacity // physical.FULL
    if not gpus:
        raise simulate.SimulateError(f"{loaded.source}: no GPUs to pack")
    stream = workload(seed, gpus, load)
    demand = {pod["metadata"]["name"]: slices for pod, _, slices in stream}
    shares = {m[0]: pod_share(m[0]) for m in MIX}
    lost, arrived, touched = 0, 0, -1
    first: float | None = None

    def after(pod: dict, result: Placement | Unschedulable) -> None:
        nonlocal lost, arrived, touched, first
        slices = demand[pod["metadata"]["name"]]
        arrived += slices
        if isinstance(result, Unschedulable):
            used = sum(_units(state))
            if first is None:
                first = round(100 * used / capacity, 2)
            if capacity - used + 1e-6 >= shares[pod["metadata"]["labels"]["profile"]] * physical.FULL:
                lost += 1
        if touched < 0 and arrived * physical.FULL >= capacity * SLICES / 2:
            touched = sum(1 for u in _units(state) if u > 0)

    start = time.process_time()
    outcome = simulate.place(state, [(pod, [claim]) for pod, claim, _ in stream], strategy, after)
    seconds = time.process_time() - start
    units = _units(state)
    if touched < 0:  # less than half arrived (a tiny --load)
        touched = sum(1 for u in units if u > 0)
    return MigResult(strategy, seed, len(stream), len(outcome.placed), gpus, touched,
                     round(100 * sum(units) / capacity, 2), 100.0 if first is None else first, lost, round(seconds, 2))


def table(results: list[MigResult]) -> str:
    """Mean over seeds per strategy, one line each."""
    lines = [f"{'strategy':<14}{'seeds':>6}{'placed':>11}{'GPUs touched at 50%':>21}{'GPU used %':>15}"
             f"{'at 1st failure':>16}{'fragment failures':>19}{'s/run':>7}"]
    for strategy in dict.fromkeys(r.strategy for r in results):
        rs = [r for r in results if r.strategy == strategy]
        n = len(rs)
        lines.append(f"{strategy:<14}{n:>6}{sum(r.placed for r in rs) / n:>7.1f}/{sum(r.pods for r in rs) / n:<3.0f}"
                     f"{sum(r.gpus_touched for r in rs) / n:>17.1f}/{rs[0].gpus:<3}"
                     f"{sum(r.gpu_used_percent for r in rs) / n:>15.2f}"
                     f"{sum(r.first_failure_percent for r in rs) / n:>16.2f}"
                     f"{sum(r.fragment_failures for r in rs) / n:>19.1f}{sum(r.seconds for r in rs) / n:>7.1f}")
    return "\n".join(lines)


def write_workload(path: str, seed: int, gpus: int, load: float) -> int:
    """The stream of one seed as a `gpu-dra simulate --workload` YAML; returns the pod count."""
    import yaml

    stream = workload(seed, gpus, load)
    docs = [doc for pod, claim, _ in stream for doc in (claim, pod)]
    Path(path).write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return len(stream)
