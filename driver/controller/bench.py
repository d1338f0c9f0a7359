"""`gpu-dra bench controller`: scheduling throughput through the API (BENCHMARKS.md §2).

The shape of kube-scheduler's scheduler_perf `SchedulingWithResourceClaimTemplate`: N nodes with
G whole GPUs each (one ResourceSlice per node), one ResourceClaimTemplate, P pods each with one
claim from it. Everything goes over HTTP through the official client: the in-memory API server,
the resourceclaim controller (driver.local.claims) creating the claims, and our controller
writing finalizer, allocation + reservation and the binding. The clock starts when the first pod
is created and stops when the last one is bound, so pod creation and claim generation overlap
scheduling, as in scheduler_perf.
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from driver import log
from driver.scheduler.packing.scoring import PackingConfig
from driver.controller.kube import PODS, Kube, new_client
from driver.controller.scheduler import Controller, ControllerConfig

logger = log.get(__name__)
D = "gpu.nvidia.com"
NS = "bench"


@dataclass
class Result:
    mode: str
    constraints: str
    nodes: int
    gpus_per_node: int
    pods: int
    strategy: str
    seconds: float
    pods_per_second: float
    ms_per_pod: float
    bound: int
    conflicts: int
    setup_seconds: float


def _node(i: int) -> dict:
    alloc = {"cpu": "128", "memory": "1Ti", "pods": "110"}
    name = f"node-{i:05d}"
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"capacity": alloc, "allocatable": alloc}}


def _slice(node: str, gpus: int) -> dict:
    devices = [{"name": f"gpu-{g}",
                "attributes": {"type": {"string": "gpu"}, "uuid": {"string": f"GPU-{node}-{g}"},
                               "productName": {"string": "NVIDIA A100-SXM4-80GB"}},
                "capacity": {"memory": {"value": "80Gi"}}} for g in range(gpus)]
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice", "metadata": {"name": f"{node}-gpu"},
            "spec": {"driver": D, "nodeName": node, "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
                     "devices": devices}}


APPS = 8  # apps in the constraint variants: pod i belongs to app i mod 8


def _constraints(i: int, constraints: str) -> tuple[dict, dict]:
    """(labels, spec additions) of pod i: at most one pod of its app per node, by required
    anti-affinity or by a maxSkew-1 DoNotSchedule spread over hostnames. With 8 apps and 8 GPUs a
    node, a full cluster has one pod of every app on every node, so every pod stays placeable
    whatever the order (a node without the pod's app always has a free GPU): the variant measures
    the constraints' cost, not a packing dead end."""
    if constraints == "none":
        return {}, {}
    app = f"app-{i % APPS}"
    selector = {"matchLabels": {"app": app}}
    kind = constraints if constraints != "mixed" else ("anti-affinity" if i % 2 == 0 else "spread")
    if kind == "anti-affinity":
        extra = {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": selector, "topologyKey": "kubernetes.io/hostname"}]}}}
    else:
        extra = {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                                "whenUnsatisfiable": "DoNotSchedule", "labelSelector": selector}]}
    return {"app": app}, extra


def _pod(i: int, constraints: str = "none") -> dict:
    labels, extra = _constraints(i, constraints)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"pod-{i:05d}", "namespace": NS, "labels": labels},
            "spec": {"schedulerName": "gpu-dra-scheduler", **extra,
                     "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "one-gpu"}],
                     "containers": [{"name": "main", "image": "busybox",
                                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                                   "claims": [{"name": "gpu"}]}}]}}


def _parallel(fn: Any, items: list, threads: int = 8) -> None:
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(fn, items):
            pass


def _pregenerated(kube: Kube, i: int, constraints: str = "none") -> None:
    """A pod plus the claim the resourceclaim controller would generate for it (FACTS.md §7)."""
    pod = kube.call(kube.core.create_namespaced_pod, NS, _pod(i, constraints))
    meta = pod["metadata"]
    claim = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
             "metadata": {"generateName": f"{meta['name']}-gpu-", "namespace": NS,
                          "annotations": {"resource.kubernetes.io/pod-claim-name": "gpu"},
                          "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                                               "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]},
             "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com"}}]}}}
    created = kube.call(kube.resource.create_namespaced_resource_claim, NS, claim)
    pod["status"] = dict(pod.get("status") or {}, resourceClaimStatuses=[
        {"name": "gpu", "resourceClaimName": created["metadata"]["name"]}])
    kube.call(kube.core.replace_namespaced_pod_status, meta["name"], NS, pod)


def bench_decisions(nodes: int, gpus_per_node: int, pods: int, strategy: str = "binpack",
                    constraints: str = "none") -> Result:
    """Decisions only: the controller's view fed the same nodes and slices, `schedule` + assume per
    pod, no HTTP. Shows what the API round trips cost on top, and how decisions scale with nodes."""
    from driver.scheduler.cycle import Unschedulable, schedule
    from driver.controller.view import ClusterView
    from driver.devices.classes import device_classes

    t0 = time.monotonic()
    view = ClusterView(PackingConfig(strategy=strategy))
    for cls in device_classes():
        view.on_class("ADDED", None, cls)
    for i in range(nodes):
        n = _node(i)
        view.on_node("ADDED", None, n)
        view.on_slice("ADDED", None, _slice(n["metadata"]["name"], gpus_per_node))
    setup = time.monotonic() - t0
    bound = 0
    start = time.monotonic()
    for i in range(pods):
        template = _pod(i, constraints)
        pod = {"metadata": {"name": f"pod-{i:05d}", "namespace": NS, "uid": f"pod-uid-{i}",
                            "labels": template["metadata"]["labels"]}, "spec": template["spec"]}
        claim = {"metadata": {"name": f"pod-{i:05d}-gpu", "namespace": NS, "uid": f"claim-uid-{i}"},
                 "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com"}}]}}}
        result = schedule(pod, [claim], view.state, view.classes, view.config, "2026-01-01T00:00:00Z")
        if isinstance(result, Unschedulable):
            continue
        view.assume(pod, result.node, {f"claim-uid-{i}": (claim["metadata"]["name"], result.allocations[claim["metadata"]["name"]])})
        bound += 1
    elapsed = time.monotonic() - start
    return Result("decide", constraints, nodes, gpus_per_node, pods, strategy, round(elapsed, 3), round(bound / elapsed, 1),
                  round(1000 * elapsed / max(bound, 1), 3), bound, 0, round(setup, 2))


def bench_once(nodes: int, gpus_per_node: int, pods: int, strategy: str = "binpack", binders: int = 8,
               timeout: float = 600.0, mode: str = "pipeline", constraints: str = "none") -> Result:
    """One measurement on a fresh API server (see module docstring).

    mode "pipeline": pods are created while the resourceclaim controller and our controller run
    (the clock covers claim generation too); mode "scheduling": pods and their claims exist before
    the controller starts (the clock covers only our controller: sync, decisions, writes, binding).
    """
    if mode not in ("pipeline", "scheduling"):
        raise ValueError(f"bench mode: expected pipeline or scheduling, got {mode!r}")
    import tempfile

    from driver.devices.classes import device_classes
    from driver.local.claims import ClaimController
    from driver.local.server import ApiServer

    t0 = time.monotonic()
    server = ApiServer(history=max(10000, 8 * pods)).start()
    tmp = tempfile.TemporaryDirectory(prefix="gpu-dra-bench-")
    path = server.write_kubeconfig(f"{tmp.name}/kubeconfig")
    kube = Kube(new_client(str(path), pool_size=64))
    claims_ctl: Any = None
    ctl: Controller | None = None
    try:
        kube.call(kube.core.create_namespace, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        for cls in device_classes():
            kube.call(kube.resource.create_device_class, cls)
        _parallel(lambda i: kube.call(kube.core.create_node, _node(i)), list(range(nodes)))
        _parallel(lambda i: kube.call(kube.resource.create_resource_slice, _slice(f"node-{i:05d}", gpus_per_node)),
                  list(range(nodes)))
        template = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate",
                    "metadata": {"name": "one-gpu", "namespace": NS},
                    "spec": {"spec": {"devices": {"requests": [{"name": "gpu",
                                                                "exactly": {"deviceClassName": "gpu.nvidia.com"}}]}}}}
        kube.call(kube.resource.create_namespaced_resource_claim_template, NS, template)
        if mode == "scheduling":
            _parallel(lambda i: _pregenerated(kube, i, constraints), list(range(pods)))
        else:
            claims_ctl = ClaimController(new_client(str(path)))
            claims_ctl.start()
        ctl = Controller(kube, ControllerConfig(packing=PackingConfig(strategy=strategy), binders=binders,
                                                backoff_initial=0.05, backoff_max=1.0, max_park=5.0,
                                                sync_timeout=timeout))
        done = threading.Event()

        def watch_done() -> None:
            while not done.wait(0.05):
                if ctl is not None and ctl.scheduled >= pods:
                    done.set()

        watcher = threading.Thread(target=watch_done, daemon=True)
        if mode == "scheduling":
            ctl.start(lead=False)  # caches synced, view built: the clock covers scheduling only
            setup = time.monotonic() - t0
            start = time.monotonic()
            ctl.lead()
            watcher.start()
        else:
            ctl.start()
            setup = time.monotonic() - t0
            start = time.monotonic()
            watcher.start()
            _parallel(lambda i: kube.call(kube.core.create_namespaced_pod, NS, _pod(i, constraints)), list(range(pods)))
        finished = done.wait(timeout)
        elapsed = time.monotonic() - start
        done.set()
        listed = kube.list_raw(PODS)["items"]
        bound = sum(1 for p in listed if (p.get("spec") or {}).get("nodeName"))
        conflicts = int(sum(s.value for m in ctl.metrics.attempts.collect() for s in m.samples
                            if s.labels.get("result") == "conflict" and s.name.endswith("_total")))
        if not finished:
            logger.warning("bench_timeout", bound=bound, pods=pods, timeout=timeout)
        return Result(mode, constraints, nodes, gpus_per_node, pods, strategy, round(elapsed, 3), round(bound / elapsed, 1),
                      round(1000 * elapsed / max(bound, 1), 3), bound, conflicts, round(setup, 2))
    finally:
        if ctl is not None:
            ctl.stop()
        if claims_ctl is not None:
            claims_ctl.stop()
        server.stop()
        tmp.cleanup()


def run_bench(node_counts: list[int], gpus_per_node: int, pods: int, strategy: str, binders: int, runs: int,
              timeout: float, as_json: bool, modes: tuple[str, ...] = ("scheduling", "pipeline"),
              out: Any = sys.stdout, constraints: str = "none") -> int:
    """Run each node count and mode `runs` times; print one line (or JSON object) per measurement + medians."""
    ok = True
    medians = []
    for n, mode in [(n, m) for n in node_counts for m in modes]:
        count = min(pods, n * gpus_per_node)
        if count < pods and not as_json:
            out.write(f"note: {pods} pods do not fit on {n} x {gpus_per_node} whole GPUs; measuring {count} pods\n")
        results = []
        for _ in range(runs):
            if mode == "decide":
                r = bench_decisions(n, gpus_per_node, count, strategy, constraints)
            else:
                r = bench_once(n, gpus_per_node, count, strategy, binders, timeout, mode, constraints)
            results.append(r)
            ok = ok and r.bound == count
            if as_json:
                out.write(json.dumps(asdict(r)) + "\n")
            else:
                out.write(f"{r.mode}: constraints={r.constraints} nodes={r.nodes} gpus/node={r.gpus_per_node} pods={r.pods} strategy={r.strategy}: "
                          f"{r.pods_per_second} pods/s, {r.ms_per_pod} ms/pod, bound {r.bound}, "
                          f"conflicts {r.conflicts} (setup {r.setup_seconds}s)\n")
            out.flush()
        medians.append((mode, n, count, statistics.median(r.pods_per_second for r in results),
                        statistics.median(r.ms_per_pod for r in results)))
    if not as_json and (runs > 1 or len(node_counts) > 1):
        out.write(f"\nmedian of {runs}  {'mode':<10} {'nodes':>5} {'pods':>6} {'pods/s':>8} {'ms/pod':>8}\n")
        for mode, n, count, pps, ms in medians:
            out.write(f"{'':13} {mode:<10} {n:>5} {count:>6} {pps:>8.1f} {ms:>8.3f}\n")
    return 0 if ok else 1
