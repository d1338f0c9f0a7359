"""`gpu-dra demo`: the default local cluster, the controller in-process, the seed's workloads.

For each strategy asked for, a fresh local cluster (API server, emulated nodes with their kubelet
plugins on mock NVML, claim-template controller) is started with the allocation controller as a
component (the cluster creates the driver's DeviceClasses); the workloads of `demo/*.yaml` are
applied through the official client; the demo waits — on the pods' state, with a timeout — until every pod is placed, then
prints where each pod went and how the GPUs are used. Running binpack then spread on the same
workload shows the difference: binpack touches the fewest GPUs, spread the most.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TextIO

import yaml

from driver import log
from driver.scheduler.packing.scoring import PackingConfig
from driver.controller.kube import CLAIMS, PODS, SLICES, Kube, api_error, controller_pool_size
from driver.controller.scheduler import Controller, ControllerConfig
from driver.controller.status import Report, build_report, format_table

logger = log.get(__name__)

MANIFESTS = Path(__file__).parent / "demo"
NAMESPACE = "demo"


def manifests() -> list[dict]:
    """The demo's objects: claim templates first, then pods (file order)."""
    docs: list[dict] = []
    for name in ("templates.yaml", "pods.yaml"):
        docs += [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]
    return docs


class ControllerComponent:
    """The allocation controller as a LocalCluster component (start/stop)."""

    def __init__(self, cluster: Any, strategy: str, scheduler_name: str = "gpu-dra-scheduler") -> None:
        cfg = ControllerConfig(scheduler_name=scheduler_name, packing=PackingConfig(strategy=strategy),
                               backoff_initial=0.1, backoff_max=2.0, max_park=5.0)
        self.controller = Controller(Kube(cluster.api_client(pool_size=controller_pool_size(cfg.binders))), cfg)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


def _create(kube: Kube, obj: dict) -> None:
    kind, ns = obj["kind"], obj["metadata"].get("namespace", NAMESPACE)
    core, res = kube.core, kube.resource
    fn: Any = {
        "Namespace": lambda: kube.call(core.create_namespace, obj),
        "DeviceClass": lambda: kube.call(res.create_device_class, obj),
        "ResourceClaimTemplate": lambda: kube.call(res.create_namespaced_resource_claim_template, ns, obj),
        "ResourceClaim": lambda: kube.call(res.create_namespaced_resource_claim, ns, obj),
        "Pod": lambda: kube.call(core.create_namespaced_pod, ns, obj),
    }.get(kind)
    if fn is None:
        raise ValueError(f"demo manifest: unsupported kind {kind!r}")
    try:
        fn()
    except Exception as exc:  # noqa: BLE001
        status, message = api_error(exc)
        if status != 409:  # already there (e.g. classes the cluster created itself)
            raise RuntimeError(f"create {kind} {obj['metadata'].get('name')}: HTTP {status}: {message}") from exc


def _wait(what: str, timeout: float, check: Any) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


@dataclass
class Outcome:
    strategy: str
    report: Report
    placements: list[tuple[str, str, str, str]]  # pod, node, devices, modes
    pending: list[tuple[str, str]]  # pod, reason


def apply_and_wait(kube: Kube, gpu_nodes: list[str], timeout: float, scheduler_name: str = "gpu-dra-scheduler") -> tuple[list[dict], list[tuple[str, str]]]:
    """Apply the workload (the local cluster made the DeviceClasses); wait for slices, then for every pod to be placed."""
    _create(kube, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})

    def published() -> bool:
        nodes = {(s.get("spec") or {}).get("nodeName") for s in kube.list_raw(SLICES)["items"]}
        return all(n in nodes for n in gpu_nodes)

    _wait(f"ResourceSlices of {', '.join(gpu_nodes)} (are the kubelet plugins running?)", timeout, published)
    docs = manifests()
    for obj in docs:
        if obj["kind"] == "Pod":
            obj["spec"]["schedulerName"] = scheduler_name
        _create(kube, obj)
    names = {d["metadata"]["name"] for d in docs if d["kind"] == "Pod"}

    def pods() -> list[dict]:
        return [p for p in kube.list_raw(PODS)["items"] if p["metadata"].get("namespace") == NAMESPACE
                and p["metadata"]["name"] in names]

    try:
        _wait("all demo pods to be placed", timeout, lambda: all(p["spec"].get("nodeName") for p in pods()))
    except TimeoutError:
        pass
    final = pods()
    pending = []
    for p in final:
        if not p["spec"].get("nodeName"):
            cond = next((c for c in (p.get("status") or {}).get("conditions") or [] if c.get("type") == "PodScheduled"), {})
            pending.append((p["metadata"]["name"], cond.get("message") or "not scheduled yet"))
    return final, pending


def placements(pods: list[dict], claims: list[dict], report: Report) -> list[tuple[str, str, str, str]]:
    """(pod, node, devices, sharing modes) per pod, from claim allocations."""
    by_key = {(c["metadata"]["namespace"], c["metadata"]["name"]): c for c in claims}
    modes = {(r.node, u.device): r.mode for r in report.gpus for u in r.uses}
    details = {(r.node, u.device, u.claim): u.detail for r in report.gpus for u in r.uses}
    out = []
    for p in sorted(pods, key=lambda p: p["metadata"]["name"]):
        ns, node = p["metadata"]["namespace"], p["spec"].get("nodeName") or "-"
        devs, kinds = [], []
        for st in (p.get("status") or {}).get("resourceClaimStatuses") or []:
            claim = by_key.get((ns, st.get("resourceClaimName")))
            alloc = ((claim or {}).get("status") or {}).get("allocation") or {}
            for r in (alloc.get("devices") or {}).get("results") or []:
                detail = details.get((r["pool"], r["device"], f"{ns}/{st.get('resourceClaimName')}"), "")
                devs.append(r["device"] + (f" ({detail})" if detail and detail != "whole" else ""))
                kinds.append(modes.get((r["pool"], r["device"]), "?"))
        out.append((p["metadata"]["name"], node, ", ".join(devs) or "-", ", ".join(sorted(set(kinds))) or "-"))
    return out


def print_outcome(o: Outcome, out: TextIO) -> None:
    out.write(f"\n=== strategy: {o.strategy} ===\n")
    width = max([len(p[0]) for p in o.placements] + [3])
    out.write(f"{'POD':<{width}}  {'NODE':<16} {'MODE':<12} DEVICES\n")
    for pod, node, devs, modes in o.placements:
        out.write(f"{pod:<{width}}  {node:<16} {modes:<12} {devs}\n")
    for pod, why in o.pending:
        out.write(f"PENDING {pod}: {why}\n")
    out.write("\nGPU utilisation (GPUs in use):\n")
    out.write(format_table(o.report, show_free=False) + "\n")


def run_strategy(strategy: str, cluster: str | None = None, timeout: float = 120.0, keep: bool = False,
                 out: TextIO = sys.stdout, before_wait: Callable[[Outcome], None] | None = None) -> Outcome:
    """One fresh local cluster with the controller using `strategy`; the workload placed; the outcome.

    With `keep`, prints how to reach the cluster and blocks until Ctrl-C before tearing it down.
    Raises TimeoutError/RuntimeError when the cluster or its plugins do not come up.
    """
    from driver.local.cluster import LocalCluster

    lc = LocalCluster(cluster, component_factories=[lambda c: ControllerComponent(c, strategy)])
    lc.start()
    try:
        kube = Kube(lc.api_client())
        gpu_nodes = [n.name for n in lc.spec.nodes if n.nvml is not None]
        pods, pending = apply_and_wait(kube, gpu_nodes, timeout)
        claims = kube.list_raw(CLAIMS)["items"]
        report = build_report(kube.list_raw(SLICES)["items"], claims, pods)
        outcome = Outcome(strategy, report, placements(pods, claims, report), pending)
        if keep:
            (before_wait or (lambda o: print_outcome(o, out)))(outcome)
            out.write(f"\nThe cluster is up. kubeconfig: {lc.kubeconfig}\n"
                      f"  kubectl --kubeconfig {lc.kubeconfig} get pods -n {NAMESPACE} -o wide\n"
                      f"  gpu-dra status --kubeconfig {lc.kubeconfig}\nPress Ctrl-C to stop.\n")
            out.flush()
            stop = threading.Event()
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, lambda *_: stop.set())
            try:
                stop.wait()
            except KeyboardInterrupt:
                pass
        return outcome
    finally:
        lc.stop()


def run_demo(strategies: list[str], keep: bool = False, cluster: str | None = None, timeout: float = 120.0,
             out: TextIO = sys.stdout) -> int:
    """Run the demo for each strategy; returns 0 when every pod was placed under every strategy.

    With `keep`, the cluster kept up is the first strategy named (`--strategy binpack,spread --keep`
    keeps binpack's): it runs last, after the others, so the comparison is printed first."""
    outcomes: list[Outcome] = []
    order = strategies[1:] + strategies[:1] if keep else list(strategies)
    for i, strategy in enumerate(order):
        last = i == len(order) - 1
        def ready(o: Outcome) -> None:  # the kept cluster, before it waits for Ctrl-C
            print_outcome(o, out)
            _compare(sorted(outcomes + [o], key=lambda x: strategies.index(x.strategy)), out)
        try:
            o = run_strategy(strategy, cluster, timeout, keep=keep and last, out=out, before_wait=ready)
        except (TimeoutError, RuntimeError) as exc:
            out.write(f"demo ({strategy}) failed: {exc}\n")
            return 1
        outcomes.append(o)
        if not (keep and last):
            print_outcome(o, out)
    if keep:
        return 0 if all(not o.pending for o in outcomes) else 1
    _compare(outcomes, out)
    return 0 if all(not o.pending for o in outcomes) else 1


def _compare(outcomes: list[Outcome], out: TextIO) -> None:
    if len(outcomes) < 2:
        return
    out.write("\n=== comparison ===\n")
    out.write(f"{'STRATEGY':<14} {'NODES USED':>10} {'GPUS USED':>10} {'USE OF USED GPUS':>17} {'FRAGMENTED':>11}\n")
    for o in outcomes:
        s = o.report.summary
        out.write(f"{o.strategy:<14} {s.nodes_touched:>10} {s.gpus_touched:>10} {s.touched_pct:>16.1f}% "
                  f"{s.fragmented_gpus:>11.2f}\n")
