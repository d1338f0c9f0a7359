"""Replay a trace through the scheduler the controller uses: `schedule` then `commit`, pod by pod.

Nothing here decides placement: each trace pod becomes a pod dict and ResourceClaim dicts, goes
through `driver.scheduler.cycle.schedule` (node fit, scorer, the real allocator with CEL and
consumable capacity) and, when placed, is committed exactly as the controller would after writing
the allocation. The only bookkeeping added is the metric's (arrived, allocated) pair per pod.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from driver import log
from driver.allocator.inventory import build_inventories
from driver.scheduler.cycle import ClusterState, Placement, schedule
from driver.scheduler.packing.scoring import PackingConfig
from driver.sim import trace as tr
from driver.sim.report import SeedResult, curve

logger = log.get(__name__)

Progress = Callable[[int, int], None]


@dataclass
class Cluster:
    """A trace cluster converted once: nodes, their slices and the DeviceClasses (reused per seed)."""

    nodes: list[tr.TraceNode]
    node_dicts: list[dict]
    slices: list[dict]
    classes: dict[str, dict]

    @property
    def gpus(self) -> int:
        return sum(n.gpus for n in self.nodes)


def build_cluster(nodes: list[tr.TraceNode]) -> Cluster:
    slices = [s for s in (tr.node_slice(n) for n in nodes) if s is not None]
    cls = tr.fractional_class()
    return Cluster(nodes, [tr.node_dict(n) for n in nodes], slices, {cls["metadata"]["name"]: cls})


def new_state(cluster: Cluster, config: PackingConfig) -> ClusterState:
    """A fresh ClusterState with every trace node and its devices (inventories parsed from the slices)."""
    state = ClusterState(cluster.classes, config)
    inventories = build_inventories(cluster.slices)
    for node in cluster.node_dicts:
        state.add_node(node, inventories.get(node["metadata"]["name"]))
    return state


def placed_milli(placement: Placement) -> int:
    """GPU milli the allocator actually charged for a placement (consumed compute, or whole devices)."""
    total = 0
    for pick in placement.picks:
        if pick.device.allow_multiple:
            for name, amount in (pick.consumed or {}).items():
                if name.endswith("/compute"):
                    total += int(amount * 1000)
        else:
            total += 1000
    return total


def replay(cluster: Cluster, pods: list[tr.TracePod], seed: int, config: PackingConfig,
           trace_name: str = "", progress: Progress | None = None, limit: int = 0) -> SeedResult:
    """One seed: arrival order, then schedule + commit each pod; returns the curve and counts.

    `limit` > 0 submits only the first `limit` pods of the order (smoke tests; the curve then
    stops short of 130 %).
    """
    state = new_state(cluster, config)
    order = tr.arrival_order(pods, cluster.gpus, seed)
    if limit:
        order = order[:limit]
    names = tr.instance_names(order)
    capacity = cluster.gpus * tr.MILLI_PER_GPU
    events: list[tuple[int, int]] = []
    arrived = used = failed = 0
    start = time.perf_counter()
    cpu_start = time.process_time()
    for i, (pod, name) in enumerate(zip(order, names)):
        pod_obj, claims = tr.pod_objects(pod, name)
        result = schedule(pod_obj, claims, state)
        arrived += pod.gpu_demand
        if isinstance(result, Placement):
            state.commit(result)
            used += placed_milli(result)
        else:
            failed += 1
        events.append((arrived, used))
        if progress is not None and (i % 200 == 0 or i + 1 == len(order)):
            progress(i + 1, len(order))
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    if used != state.used_gpu_milli():
        raise AssertionError(f"replay bookkeeping: {used} milli placed but the cluster state holds {state.used_gpu_milli()}")
    logger.debug("replay_done", trace=trace_name, strategy=config.strategy, seed=seed, pods=len(order),
                 failed=failed, seconds=round(seconds, 2))
    return SeedResult(trace_name, config.strategy, seed, len(order), failed, seconds, curve(events, capacity),
                      cpu_seconds)
