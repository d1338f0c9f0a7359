"""Node fit for a pod, the kube-scheduler filters a DRA scheduler must repeat itself.

A pod handled by our scheduler never passes kube-scheduler's filters, so resource fit (CPU,
memory, pod count), nodeSelector, required node affinity, taints/tolerations and cordoned nodes
are checked here, as pure functions over wire dicts. Requests follow the API's rule: the larger
of the sum over containers and the largest init container, plus pod overhead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from driver.allocator.inventory import node_selector_matches
from driver.dra.quantity import QuantityError, parse_quantity

UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"


class PodSpecError(ValueError):
    """A pod or node whose resource fields cannot be read; the message names the field."""


@dataclass(frozen=True, slots=True)
class Resources:
    """CPU in millicores, memory in bytes, pods as a count (rounded up: never under-reserve)."""

    cpu: int = 0
    memory: int = 0
    pods: int = 0


def _amount(value: Any, where: str, scale: int) -> int:
    try:
        return math.ceil(parse_quantity(value, where) * scale)
    except QuantityError as exc:
        raise PodSpecError(str(exc)) from None


def _container_requests(container: Mapping[str, Any], where: str) -> tuple[int, int]:
    req = ((container.get("resources") or {}).get("requests")) or {}
    cpu = _amount(req["cpu"], f"{where}.resources.requests.cpu", 1000) if "cpu" in req else 0
    mem = _amount(req["memory"], f"{where}.resources.requests.memory", 1) if "memory" in req else 0
    return cpu, mem


def pod_requests(pod: Mapping[str, Any]) -> Resources:
    """What the pod reserves on a node: max(Σ containers, max init container) + overhead, 1 pod."""
    spec = pod.get("spec") or {}
    cpu = mem = 0
    for i, c in enumerate(spec.get("containers") or []):
        a, b = _container_requests(c, f"spec.containers[{i}]")
        cpu, mem = cpu + a, mem + b
    for i, c in enumerate(spec.get("initContainers") or []):
        a, b = _container_requests(c, f"spec.initContainers[{i}]")
        cpu, mem = max(cpu, a), max(mem, b)
    overhead = spec.get("overhead") or {}
    if "cpu" in overhead:
        cpu += _amount(overhead["cpu"], "spec.overhead.cpu", 1000)
    if "memory" in overhead:
        mem += _amount(overhead["memory"], "spec.overhead.memory", 1)
    return Resources(cpu, mem, 1)


def node_allocatable(node: Mapping[str, Any]) -> Resources:
    """status.allocatable (falling back to capacity) of a Node dict."""
    status = node.get("status") or {}
    alloc = status.get("allocatable") or status.get("capacity") or {}
    name = (node.get("metadata") or {}).get("name", "?")
    where = f"node {name} status.allocatable"
    return Resources(
        _amount(alloc.get("cpu", 0), f"{where}.cpu", 1000),
        _amount(alloc.get("memory", 0), f"{where}.memory", 1),
        _amount(alloc.get("pods", 110), f"{where}.pods", 1),
    )


def node_taints(node: Mapping[str, Any]) -> tuple[tuple[str, str, str], ...]:
    """(key, value, effect) of the taints that keep pods away (NoSchedule, NoExecute)."""
    out = []
    for t in ((node.get("spec") or {}).get("taints")) or []:
        if t.get("effect") in ("NoSchedule", "NoExecute"):
            out.append((str(t.get("key", "")), str(t.get("value", "") or ""), str(t["effect"])))
    return tuple(sorted(out))


def tolerates(tolerations: list[Mapping[str, Any]], key: str, value: str, effect: str) -> bool:
    """core/v1 toleration matching: empty key + Exists tolerates everything; empty effect any effect."""
    for t in tolerations:
        if t.get("effect") and t["effect"] != effect:
            continue
        op = t.get("operator") or "Equal"
        tkey = t.get("key") or ""
        if op == "Exists":
            if not tkey or tkey == key:
                return True
        elif op == "Equal" and tkey == key and (t.get("value") or "") == value:
            return True
    return False


def untolerated(pod: Mapping[str, Any], taints: tuple[tuple[str, str, str], ...], unschedulable: bool) -> str | None:
    """Why the pod may not go to a node with these taints (None: it may)."""
    tolerations = ((pod.get("spec") or {}).get("tolerations")) or []
    if unschedulable and not tolerates(tolerations, UNSCHEDULABLE_TAINT, "", "NoSchedule"):
        return "node(s) unschedulable"
    for key, value, effect in taints:
        if not tolerates(tolerations, key, value, effect):
            return f"untolerated taint {key}{'=' + value if value else ''}:{effect}"
    return None


def label_requirements(pod: Mapping[str, Any]) -> tuple[dict[str, str], Mapping[str, Any] | None]:
    """The pod's nodeSelector and required node affinity (None when absent)."""
    spec = pod.get("spec") or {}
    selector = spec.get("nodeSelector") or {}
    affinity = (((spec.get("affinity") or {}).get("nodeAffinity")) or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution")
    return selector, affinity


def labels_match(selector: Mapping[str, str], affinity: Mapping[str, Any] | None, name: str,
                 labels: Mapping[str, str]) -> bool:
    """nodeSelector (every label equal) and required node affinity (terms ORed, expressions ANDed)."""
    for k, v in selector.items():
        if labels.get(k) != v:
            return False
    if affinity is not None:
        return node_selector_matches(affinity, name, labels)
    return True
