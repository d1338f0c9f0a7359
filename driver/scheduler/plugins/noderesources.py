"""NodeResourcesFit: what a pod reserves on a node, what a node offers, and whether it fits.

A pod handled by our scheduler never passes kube-scheduler's filters, so resource fit is checked
here, with the API's rules (component-helpers `PodRequests`):

- a container's request for a resource it only limits is the limit (API defaulting);
- requests = max(Σ regular containers + Σ sidecars (init containers with restartPolicy Always),
  max over init containers of (that container + the sidecars started before it)), then pod-level
  `spec.resources` (cpu, memory, hugepages-*) replace the container sums, then `spec.overhead`
  is added;
- this holds for cpu (millicores), memory and ephemeral-storage (bytes) and every scalar
  resource (extended resources such as `example.com/foo`, `hugepages-*`, `*kubernetes.io/*`),
  each rounded up once after summing (never under-reserve).

cpu, memory and pod count are checked by the cycle's equivalence groups (`insufficient` gives
it upstream's words); `prefilter` checks the rest — ephemeral-storage and scalar resources —
against the pods already on the node, and only for pods that request them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Collection, Mapping

from driver.dra.quantity import QuantityError, parse_quantity

if TYPE_CHECKING:
    from driver.scheduler.framework import Checks, CycleContext, Rejection

__all__ = ["PLUGIN", "PodSpecError", "Resources", "insufficient", "is_scalar_resource", "is_sidecar", "node_allocatable",
           "pod_requests", "prefilter", "request_list", "used_on_node"]

PLUGIN = "NodeResourcesFit"
DEFAULT_PODS = 110  # a node that states no pod capacity: the kubelet's default max-pods
POD_LEVEL = ("cpu", "memory")  # plus hugepages-*: what spec.resources may set (PodLevelResources)

class PodSpecError(ValueError):
    """A pod or node whose resource fields cannot be read; the message names the field."""


@dataclass(frozen=True, slots=True)
class Resources:
    """CPU in millicores, memory and ephemeral-storage in bytes, pods as a count; `scalars` the
    other resources as sorted (name, amount) pairs, amounts rounded up to integers."""

    cpu: int = 0
    memory: int = 0
    pods: int = 0
    ephemeral: int = 0
    scalars: tuple[tuple[str, int], ...] = ()

    def scalar(self, name: str) -> int:
        for n, v in self.scalars:
            if n == name:
                return v
        return 0


def is_scalar_resource(name: str) -> bool:
    """kube-scheduler's IsScalarResourceName: extended (`domain/name`, not `requests.*`),
    `*kubernetes.io/*`, `hugepages-*` and `attachable-volumes-*` resources."""
    if name.startswith(("hugepages-", "attachable-volumes-")):
        return True
    return "/" in name and not name.startswith("requests.")


_MAPS = (dict, Mapping)  # dict first: isinstance against typing's Mapping alone is slow, and this runs per pod


@lru_cache(maxsize=4096)
def _cached_quantity(value: str | int) -> Fraction:
    return parse_quantity(value, "quantity")


def _quantity(value: Any, where: str) -> Fraction:
    # Every scheduled pod is parsed (and every pod on a node re-parsed after a rebuild); their
    # amounts repeat ("100m", "1Gi"), so the parse of a plain value is cached.
    try:
        if type(value) in (str, int):
            try:
                return _cached_quantity(value)
            except QuantityError:
                pass  # parsed again below, so that the error names the field
        return parse_quantity(value, where)
    except QuantityError as exc:
        raise PodSpecError(str(exc)) from None


def _resource_list(raw: Any, where: str | tuple) -> dict[str, Fraction]:
    """A resource list parsed; `where` (text, or parts joined only if an error needs them: this
    runs for every pod) names the field in errors."""
    if not raw:
        return {}
    if not isinstance(raw, _MAPS):
        raise PodSpecError(f"{_where(where)}: expected a map of resource name to quantity")
    out: dict[str, Fraction] = {}
    for k, v in raw.items():
        if type(v) in (str, int):
            try:
                out[str(k)] = _cached_quantity(v)
                continue
            except QuantityError:
                pass
        out[str(k)] = _quantity(v, f"{_where(where)}.{k}")
    return out


def _where(where: str | tuple) -> str:
    return where if isinstance(where, str) else "".join(_where(p) if isinstance(p, tuple) else str(p) for p in where)


def _effective_requests(resources: Any, where: str | tuple) -> dict[str, Fraction]:
    """requests, plus limits for resources without a request (the API's defaulting)."""
    if resources is None:
        return {}
    if not isinstance(resources, _MAPS):
        raise PodSpecError(f"{_where(where)}: expected a resource requirements object")
    out = _resource_list(resources.get("requests"), (where, ".requests"))
    limits = resources.get("limits")
    if limits:
        for k, v in _resource_list(limits, (where, ".limits")).items():
            out.setdefault(k, v)
    return out


def _add(into: dict[str, Fraction], more: Mapping[str, Fraction]) -> None:
    for k, v in more.items():
        have = into.get(k)
        into[k] = v if have is None else have + v


def _max(into: dict[str, Fraction], more: Mapping[str, Fraction]) -> None:
    for k, v in more.items():
        if v > into.get(k, Fraction(0)):
            into[k] = v


def _containers(spec: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    raw = spec.get(key) or []
    if not isinstance(raw, list):
        raise PodSpecError(f"spec.{key}: expected a list of containers")
    for i, c in enumerate(raw):
        if not isinstance(c, _MAPS):
            raise PodSpecError(f"spec.{key}[{i}]: expected a container object")
    return raw


def is_sidecar(container: Mapping[str, Any]) -> bool:
    """An init container that keeps running beside the regular ones (restartPolicy: Always)."""
    return container.get("restartPolicy") == "Always"


def request_list(pod: Mapping[str, Any]) -> dict[str, Fraction]:
    """The pod's effective requests by resource name, exact (see the module docstring)."""
    spec = pod.get("spec") or {}
    if not isinstance(spec, _MAPS):
        raise PodSpecError("spec: expected a pod spec object")
    total: dict[str, Fraction] = {}
    for i, c in enumerate(_containers(spec, "containers")):
        _add(total, _effective_requests(c.get("resources"), ("spec.containers[", i, "].resources")))
    sidecars: dict[str, Fraction] = {}
    init_peak: dict[str, Fraction] = {}
    for i, c in enumerate(_containers(spec, "initContainers")):
        req = _effective_requests(c.get("resources"), ("spec.initContainers[", i, "].resources"))
        if is_sidecar(c):
            _add(total, req)
            _add(sidecars, req)
            _max(init_peak, sidecars)
        else:
            running = dict(sidecars)
            _add(running, req)
            _max(init_peak, running)
    _max(total, init_peak)
    pod_level = spec.get("resources")
    if pod_level is not None:
        for k, v in _effective_requests(pod_level, "spec.resources").items():
            if k in POD_LEVEL or k.startswith("hugepages-"):
                total[k] = v
    _add(total, _resource_list(spec.get("overhead"), "spec.overhead"))
    return total


def _resources(amounts: Mapping[str, Fraction], pods: int) -> Resources:
    cpu = math.ceil(amounts.get("cpu", Fraction(0)) * 1000)
    memory = math.ceil(amounts.get("memory", Fraction(0)))
    ephemeral = math.ceil(amounts.get("ephemeral-storage", Fraction(0)))
    scalars = tuple(sorted((k, math.ceil(v)) for k, v in amounts.items() if is_scalar_resource(k)))
    return Resources(cpu, memory, pods, ephemeral, scalars)


def pod_requests(pod: Mapping[str, Any]) -> Resources:
    """What the pod reserves on a node (and one pod slot). Raises PodSpecError naming the field."""
    return _resources(request_list(pod), 1)


def node_allocatable(node: Mapping[str, Any]) -> Resources:
    """status.allocatable (falling back to capacity) of a Node dict; pods default to 110."""
    status = node.get("status") or {}
    name = (node.get("metadata") or {}).get("name", "?")
    alloc = status.get("allocatable") or status.get("capacity") or {}
    amounts = _resource_list(alloc, f"node {name} status.allocatable")
    pods = amounts.get("pods")
    return _resources(amounts, DEFAULT_PODS if pods is None else math.floor(pods))


def insufficient(requests: Resources, free: Resources, ignored: Collection[str] = ()) -> list[str]:
    """kube-scheduler's fitsRequest reasons, in its order: "Too many pods", "Insufficient cpu",
    "Insufficient memory", "Insufficient ephemeral-storage", "Insufficient <scalar>" (by name).
    `free` is allocatable minus what the node's pods request (pods: free slots); `ignored` are
    scalar resources checked elsewhere (extended resources served by DRA)."""
    out = []
    if free.pods < requests.pods:
        out.append("Too many pods")
    if not (requests.cpu or requests.memory or requests.ephemeral or requests.scalars):
        return out
    if 0 < requests.cpu and requests.cpu > free.cpu:
        out.append("Insufficient cpu")
    if 0 < requests.memory and requests.memory > free.memory:
        out.append("Insufficient memory")
    if 0 < requests.ephemeral and requests.ephemeral > free.ephemeral:
        out.append("Insufficient ephemeral-storage")
    for name, amount in requests.scalars:
        if amount > 0 and name not in ignored and amount > free.scalar(name):
            out.append(f"Insufficient {name}")
    return out


def used_on_node(ctx: "CycleContext", node: str) -> Resources:
    """Σ requests of the pods the snapshot has on `node` (ephemeral-storage and scalars only)."""
    ephemeral = 0
    scalars: dict[str, int] = {}
    for p in ctx.state.pods.on_node(node).values():
        ephemeral += p.requests.ephemeral
        for n, v in p.requests.scalars:
            scalars[n] = scalars.get(n, 0) + v
    return Resources(ephemeral=ephemeral, scalars=tuple(sorted(scalars.items())))


def prefilter(ctx: "CycleContext") -> "Checks | Rejection | None":
    """Ephemeral-storage and scalar resources against each node's allocatable minus its pods'
    requests; None for pods that request neither (cpu, memory, pods: the cycle's groups)."""
    from driver.scheduler.framework import Checks, Rejection

    req = ctx.info.requests
    if req.ephemeral <= 0 and not req.scalars:
        return None  # the common case
    ignored = frozenset(ctx.cache.get("dra_extended", ()))
    scalars = tuple((n, v) for n, v in req.scalars if v > 0 and n not in ignored)
    if req.ephemeral <= 0 and not scalars:
        return None
    wanted = Resources(ephemeral=req.ephemeral, scalars=scalars)

    def fit(node: Any) -> Rejection | None:
        used = used_on_node(ctx, node.name)
        alloc = node.allocatable
        free = Resources(pods=1, ephemeral=alloc.ephemeral - used.ephemeral,
                         scalars=tuple((n, alloc.scalar(n) - used.scalar(n)) for n, _ in scalars))
        reasons = insufficient(wanted, free)
        return Rejection(PLUGIN, ", ".join(reasons)) if reasons else None

    return Checks(PLUGIN, filter=fit)
