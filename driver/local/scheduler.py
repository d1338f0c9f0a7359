"""A small `default-scheduler` for pods that use no DRA claims (e.g. `kubectl run`).

Real clusters run kube-scheduler for such pods; the local cluster has none otherwise, so they
would stay Pending forever. This one places a pod on a Ready, schedulable node whose labels match
its nodeSelector and whose allocatable cpu, memory and pod count still fit the pod's requests,
preferring the least-loaded node, and binds it through pods/binding. Device allocation is not its
job: a default-scheduler pod with resourceClaims gets a FailedScheduling event pointing at the
driver's scheduler (the `gpu-dra controller`) instead of being bound without devices. Pods with
scheduling gates wait, untouched, until their last gate is removed.
"""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

from kubernetes import client

from driver import log
from driver.dra.quantity import parse_quantity
from driver.scheduler.plugins.noderesources import request_list
from driver.local.controllerloop import ControllerLoop
from driver.local.events import post_event
from driver.local.informer import Informer
from driver.local.workqueue import WorkQueue

logger = log.get(__name__)

SCHEDULER_NAME = "default-scheduler"


def _raw(resp: Any) -> dict[str, Any]:
    return json.loads(resp.data)


def pod_requests(pod: dict[str, Any]) -> dict[str, Fraction]:
    """cpu and memory the pod requests, exact: the scheduler's own rule (init and sidecar containers,
    overhead, limits standing in for missing requests; raises PodSpecError naming the field)."""
    amounts = request_list(pod)
    return {"cpu": amounts.get("cpu", Fraction(0)), "memory": amounts.get("memory", Fraction(0))}


class DefaultScheduler:
    """Start/stop component; see the module docstring."""

    def __init__(self, api_client: client.ApiClient, retry_s: float = 1.0) -> None:
        self.core = client.CoreV1Api(api_client)
        self.retry_s = retry_s
        self.queue = WorkQueue()
        self._warned: set[str] = set()
        self._informer = Informer("default-scheduler", self.core.list_pod_for_all_namespaces, self._on_pod,
                                  field_selector=f"spec.schedulerName={SCHEDULER_NAME},spec.nodeName=")
        self._loop = ControllerLoop("default-scheduler", self.queue, [self._informer], self._sync, retry_s=retry_s)

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def _on_pod(self, etype: str, pod: dict[str, Any]) -> None:
        if etype != "DELETED":
            self.queue.add((pod["metadata"]["namespace"], pod["metadata"]["name"]))

    def _sync(self, key: Any) -> None:
        ns, name = key
        if not self.schedule(ns, name):
            self.queue.add_after(key, self.retry_s)

    def schedule(self, ns: str, name: str) -> bool:
        """Bind the pod if a node fits; True when done (bound, or nothing to do)."""
        pod = _raw(self.core.read_namespaced_pod(name, ns, _preload_content=False))
        meta, spec = pod["metadata"], pod.get("spec") or {}
        if spec.get("nodeName") or meta.get("deletionTimestamp") or spec.get("schedulerName") != SCHEDULER_NAME:
            return True
        if spec.get("schedulingGates"):
            return True  # kube-scheduler leaves gated pods alone; removing the last gate is an update we see
        if spec.get("resourceClaims"):
            if meta["uid"] not in self._warned:
                self._warned.add(meta["uid"])
                post_event(self.core, pod, "Warning", "FailedScheduling",
                           "the local cluster's default-scheduler does not allocate DRA devices: set "
                           "spec.schedulerName to the driver's scheduler (gpu-dra-scheduler)", SCHEDULER_NAME)
            return True
        try:
            want = pod_requests(pod)
        except ValueError as exc:
            post_event(self.core, pod, "Warning", "FailedScheduling", f"invalid resource request: {exc}", SCHEDULER_NAME)
            return True
        node, why = self._pick(pod, want)
        if node is None:
            if meta["uid"] not in self._warned:
                self._warned.add(meta["uid"])
                post_event(self.core, pod, "Warning", "FailedScheduling", why, SCHEDULER_NAME)
            return False
        self.core.create_namespaced_pod_binding(name, ns, {"metadata": {"name": name, "uid": meta["uid"]},
                                                           "target": {"kind": "Node", "name": node}},
                                                _preload_content=False)
        post_event(self.core, pod, "Normal", "Scheduled", f"Successfully assigned {ns}/{name} to {node}", SCHEDULER_NAME)
        logger.info("pod_scheduled", namespace=ns, pod=name, node=node)
        return True

    def _pick(self, pod: dict[str, Any], want: dict[str, Fraction]) -> tuple[str | None, str]:
        nodes = _raw(self.core.list_node(_preload_content=False))["items"]
        bound = _raw(self.core.list_pod_for_all_namespaces(field_selector="spec.nodeName!=", _preload_content=False))["items"]
        selector = (pod.get("spec") or {}).get("nodeSelector") or {}
        best: tuple[Fraction, str] | None = None
        reasons: dict[str, int] = {}
        for node in nodes:
            name = node["metadata"]["name"]
            labels = node["metadata"].get("labels") or {}
            ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in (node.get("status") or {}).get("conditions") or [])
            if not ready or (node.get("spec") or {}).get("unschedulable"):
                reasons["node(s) were unschedulable or not ready"] = reasons.get("node(s) were unschedulable or not ready", 0) + 1
                continue
            if any(labels.get(k) != v for k, v in selector.items()):
                reasons["node(s) didn't match Pod's node affinity/selector"] = reasons.get(
                    "node(s) didn't match Pod's node affinity/selector", 0) + 1
                continue
            alloc = (node.get("status") or {}).get("allocatable") or {}
            running = [p for p in bound if p["spec"].get("nodeName") == name
                       and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
            used = {"cpu": Fraction(0), "memory": Fraction(0)}
            for p in running:
                for k, v in pod_requests(p).items():
                    used[k] += v
            if len(running) + 1 > int(alloc.get("pods", 110)):
                reasons["Too many pods"] = reasons.get("Too many pods", 0) + 1
                continue
            free_cpu = parse_quantity(alloc.get("cpu", "0")) - used["cpu"]
            free_mem = parse_quantity(alloc.get("memory", "0")) - used["memory"]
            if want["cpu"] > free_cpu or want["memory"] > free_mem:
                reasons["Insufficient cpu or memory"] = reasons.get("Insufficient cpu or memory", 0) + 1
                continue
            total_cpu = parse_quantity(alloc.get("cpu", "1")) or Fraction(1)
            score = (free_cpu - want["cpu"]) / total_cpu
            if best is None or score > best[0]:
                best = (score, name)
        if best is not None:
            return best[1], ""
        detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
        return None, f"0/{len(nodes)} nodes are available: {detail or 'no nodes'}."
