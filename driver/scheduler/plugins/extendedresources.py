"""Extended resources backed by DRA (KEP-5004, DRAExtendedResource): `nvidia.com/gpu: 2` in a
container's resources served by ResourceSlice devices instead of a device plugin.

Why it is here: pods written for the device plugin (`resources.limits: {nvidia.com/gpu: 1}`,
`nvidia.com/mig-1g.10gb: 1`) must keep working unchanged on DRA nodes, and kube-scheduler never sees
the pods our scheduler places, so its DynamicResources plugin's extended-resource part is repeated
here, as pure functions over wire dicts, with upstream's exact names:

- a DeviceClass serves its `spec.extendedResourceName` and, always, the implicit name
  `deviceclass.resource.kubernetes.io/<class name>`. Several classes may name the same resource; the
  newest (metadata.creationTimestamp) wins, equal times go to the alphabetically first class name
  (`mapping`);
- per node, a requested resource the node lists in `status.allocatable` is the device plugin's
  (NodeResourcesFit checks its quantity, even if a class names it too); a mapped resource the node
  does not list goes to DRA; one that is neither is "Insufficient <name>" (`dra_requests`,
  `unknown`);
- the DRA part becomes one special ResourceClaim per pod (`claim_for`): generateName
  `<pod>-extended-resources-`, annotation `resource.kubernetes.io/extended-resource-claim: "true"`,
  the pod as controller owner, one `ExactCount` request per (container, resource) named
  `container-<i>-request-<j>` (i: index in initContainers + containers, j: index of the resource
  among the container's sorted request names); init containers that run before the others reuse
  the devices of later long-lived containers and share one request sized for the largest of them;
- the pod's `status.extendedResourceClaimStatus` {resourceClaimName, requestMappings[{containerName,
  resourceName, requestName}]} tells the kubelet which container gets which request's devices
  (`request_mappings`, `pod_status`).

Cost: `pod_extended(pod)` parses a pod once (a pod with no `domain/name` resource returns the shared
empty result after one pass over its containers); `dra_requests` is then a few set lookups per node
plus a cache hit, since every node that serves the same resources the same way gets the same
requests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Collection, Iterable, Mapping

from driver.dra.quantity import QuantityError, parse_quantity
from driver.scheduler.plugins.noderesources import PodSpecError

IMPLICIT_PREFIX = "deviceclass.resource.kubernetes.io/"
CLAIM_ANNOTATION = "resource.kubernetes.io/extended-resource-claim"
IN_MEMORY_NAME = "<extended-resources>"  # upstream's name for the claim before it is created (invalid on purpose)
GENERATE_NAME_SUFFIX = "-extended-resources-"

_NAME_PART = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_EPOCH = datetime.min.replace(tzinfo=timezone.utc)


class ExtendedResourceError(PodSpecError):
    """A pod whose extended resource requests cannot be read; the message names the field."""


class DeviceClassError(ValueError):
    """A DeviceClass whose extended resource fields cannot be read; the message names the field."""


# --- names ---------------------------------------------------------------------------------------

def _qualified(name: str) -> bool:
    prefix, slash, part = name.rpartition("/")
    if not slash or not prefix or len(prefix) > 253 or len(part) > 63 or not _NAME_PART.match(part):
        return False
    return all(_DNS_LABEL.match(label) for label in prefix.split("."))


def is_extended_name(name: str) -> bool:
    """v1helper.IsExtendedResourceName: `domain/name`, not in the kubernetes.io domain, not
    `requests.*`, and a qualified name once prefixed with `requests.` (as quota names it)."""
    if "/" not in name or "kubernetes.io/" in name or name.startswith("requests."):
        return False
    return _qualified("requests." + name)


def is_dra_extended_name(name: str) -> bool:
    """IsDRAExtendedResourceName: an extended resource name or an implicit class name."""
    return name.startswith(IMPLICIT_PREFIX) or is_extended_name(name)


# --- DeviceClass -> resource name ----------------------------------------------------------------

def _created(cls: Mapping[str, Any], name: str) -> datetime:
    raw = (cls.get("metadata") or {}).get("creationTimestamp")
    if raw is None:
        return _EPOCH  # never stored by an API server: older than any stored class (Go's zero time)
    try:
        when = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise DeviceClassError(f"deviceclass {name} metadata.creationTimestamp: expected an RFC 3339 time, "
                               f"got {raw!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def mapping(classes: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Extended resource name -> DeviceClass name, for DeviceClass dicts by name.

    Every class serves `deviceclass.resource.kubernetes.io/<name>`; a class with
    `spec.extendedResourceName` also serves that name unless a newer class (creationTimestamp)
    names it too, or one created at the same time whose name sorts first. Compute it when the
    classes change, not per pod.
    """
    out: dict[str, str] = {}
    best: dict[str, tuple[datetime, str]] = {}
    for name, cls in classes.items():
        out[IMPLICIT_PREFIX + name] = name
        spec = cls.get("spec") or {}
        ext = spec.get("extendedResourceName") if isinstance(spec, Mapping) else None
        if ext is None:
            continue
        if not isinstance(ext, str) or not is_extended_name(ext):
            raise DeviceClassError(f"deviceclass {name} spec.extendedResourceName: expected an extended resource "
                                   f"name such as example.com/gpu, got {ext!r}")
        when = _created(cls, name)
        held = best.get(ext)
        if held is None or when > held[0] or (when == held[0] and name < held[1]):
            best[ext] = (when, name)
    for ext, (_, name) in best.items():
        out[ext] = name
    return out


# --- a pod's extended resource requests ----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ContainerRequest:
    """One container's request for one DRA-eligible extended resource."""

    index: int  # position in initContainers + containers
    container: str
    init: bool  # an init container
    sidecar: bool  # an init container with restartPolicy Always (runs beside the regular ones)
    resource: str
    count: int
    position: int  # index of `resource` among the container's sorted request names

    @property
    def long_lived(self) -> bool:
        return not self.init or self.sidecar


@dataclass(frozen=True, slots=True)
class DeviceRequest:
    """One request of the special claim: `count` devices of `device_class`."""

    name: str
    device_class: str
    count: int

    def wire(self) -> dict[str, Any]:
        return {"name": self.name, "exactly": {"deviceClassName": self.device_class, "allocationMode": "ExactCount",
                                               "count": self.count}}


@dataclass(frozen=True, slots=True)
class RequestMapping:
    """Container `container`'s `resource` is served by the devices of claim request `request`."""

    container: str
    resource: str
    request: str

    def wire(self) -> dict[str, str]:
        return {"containerName": self.container, "resourceName": self.resource, "requestName": self.request}


@dataclass(frozen=True, slots=True)
class ExtendedRequests:
    """A pod's extended resources as one node serves them.

    `dra`: resource -> DeviceClass for what DRA allocates here (NodeResourcesFit must skip these);
    `requests` / `mappings`: the special claim's requests and the pod status mappings for them;
    `containers`: the per-container requests behind them; `by_allocatable`: pod totals of the
    resources the node lists in its allocatable (device plugin: NodeResourcesFit checks them);
    `missing`: resources neither mapped nor listed ("Insufficient <name>" here).
    Falsy when the node needs no special claim.
    """

    dra: Mapping[str, str] = field(default_factory=dict)
    requests: tuple[DeviceRequest, ...] = ()
    mappings: tuple[RequestMapping, ...] = ()
    containers: tuple[ContainerRequest, ...] = ()
    by_allocatable: Mapping[str, int] = field(default_factory=dict)
    missing: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.requests)


EMPTY_REQUESTS = ExtendedRequests()


@dataclass(slots=True)
class PodExtended:
    """A pod's DRA-eligible extended resource requests, parsed once (`pod_extended`)."""

    totals: Mapping[str, int]  # the pod's requests (PodRequests rules), only those > 0
    containers: tuple[ContainerRequest, ...]
    _cache: dict[tuple, ExtendedRequests] = field(default_factory=dict, repr=False)

    def __bool__(self) -> bool:
        return bool(self.totals)


EMPTY = PodExtended({}, ())


def _count(value: Any, where: str) -> int:
    try:
        q = parse_quantity(value, where)
    except QuantityError as exc:
        raise ExtendedResourceError(str(exc)) from None
    if q.denominator != 1 or q < 0:
        raise ExtendedResourceError(f"{where}: extended resources must be a whole non-negative number, got {value!r}")
    return int(q)


def _effective(container: Mapping[str, Any], where: str) -> dict[str, tuple[Any, str]]:
    """requests plus limits for resources without a request (the API's defaulting): raw value and
    the field it came from, by resource name."""
    res = container.get("resources") or {}
    if not isinstance(res, Mapping):
        raise ExtendedResourceError(f"{where}.resources: expected a resource requirements object")
    out: dict[str, tuple[Any, str]] = {}
    for key in ("limits", "requests"):
        part = res.get(key) or {}
        if not isinstance(part, Mapping):
            raise ExtendedResourceError(f"{where}.resources.{key}: expected a map of resource name to quantity")
        out.update((str(k), (v, f"{where}.resources.{key}[{k}]")) for k, v in part.items())
    return out


def _has_domain_resource(containers: Iterable[Any]) -> bool:
    for c in containers:
        res = c.get("resources") if isinstance(c, Mapping) else None
        if not res or not isinstance(res, Mapping):
            continue
        for key in ("requests", "limits"):
            part = res.get(key)
            if part and isinstance(part, Mapping) and any("/" in str(k) for k in part):
                return True
    return False


def pod_extended(pod: Mapping[str, Any]) -> PodExtended:
    """Parse the pod's DRA-eligible extended resource requests (EMPTY when it has none).

    Raises ExtendedResourceError naming the field for malformed or fractional quantities.
    """
    spec = pod.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise ExtendedResourceError("spec: expected a pod spec object")
    inits = spec.get("initContainers") or []
    regular = spec.get("containers") or []
    if not isinstance(inits, list) or not isinstance(regular, list):
        raise ExtendedResourceError("spec.containers / spec.initContainers: expected lists of containers")
    if not _has_domain_resource(inits) and not _has_domain_resource(regular):
        return EMPTY
    entries: list[ContainerRequest] = []
    for index, (c, init, where) in enumerate(
            [(c, True, f"spec.initContainers[{i}]") for i, c in enumerate(inits)]
            + [(c, False, f"spec.containers[{i}]") for i, c in enumerate(regular)]):
        if not isinstance(c, Mapping):
            raise ExtendedResourceError(f"{where}: expected a container object")
        effective = _effective(c, where)
        names = sorted(effective)
        sidecar = init and c.get("restartPolicy") == "Always"
        for position, rname in enumerate(names):
            if not is_dra_extended_name(rname):
                continue
            count = _count(*effective[rname])
            if count:
                entries.append(ContainerRequest(index, str(c.get("name") or ""), init, sidecar, rname, count, position))
    return PodExtended(_totals(entries), tuple(entries))


def _totals(entries: list[ContainerRequest]) -> dict[str, int]:
    """PodRequests: Σ regular + Σ sidecars, against the peak of each init container plus the
    sidecars started before it."""
    total: dict[str, int] = {}
    sidecars: dict[str, int] = {}
    peak: dict[str, int] = {}
    by_index: dict[int, list[ContainerRequest]] = {}
    for e in entries:
        if not e.init:
            total[e.resource] = total.get(e.resource, 0) + e.count
        else:
            by_index.setdefault(e.index, []).append(e)
    for index in sorted(by_index):
        group = by_index[index]
        if group[0].sidecar:
            for e in group:
                total[e.resource] = total.get(e.resource, 0) + e.count
                sidecars[e.resource] = sidecars.get(e.resource, 0) + e.count
            for r, v in sidecars.items():
                peak[r] = max(peak.get(r, 0), v)
        else:
            running = dict(sidecars)
            for e in group:
                running[e.resource] = running.get(e.resource, 0) + e.count
            for r, v in running.items():
                peak[r] = max(peak.get(r, 0), v)
    for r, v in peak.items():
        total[r] = max(total.get(r, 0), v)
    return {r: v for r, v in total.items() if v > 0}


def _parsed(pod: Mapping[str, Any] | PodExtended) -> PodExtended:
    return pod if isinstance(pod, PodExtended) else pod_extended(pod)


# --- per node ------------------------------------------------------------------------------------

def allocatable_names(node: Mapping[str, Any]) -> frozenset[str]:
    """The resource names a Node dict lists in status.allocatable (capacity when it has none),
    the names for which the node's device plugin, not DRA, serves a pod."""
    status = node.get("status") or {}
    return frozenset(str(k) for k in (status.get("allocatable") or status.get("capacity") or {}))


def dra_requests(pod: Mapping[str, Any] | PodExtended, classes_by_resource: Mapping[str, str],
                 node_allocatable_names: Collection[str]) -> ExtendedRequests:
    """How one node serves the pod's extended resources (see ExtendedRequests).

    `pod`: a Pod dict or, better, its `pod_extended` once per cycle; `classes_by_resource`: from
    `mapping`; `node_allocatable_names`: the node's status.allocatable names (a dict works too).
    """
    ext = _parsed(pod)
    if not ext.totals:
        return EMPTY_REQUESTS
    dra: list[tuple[str, str]] = []
    alloc: list[tuple[str, int]] = []
    missing: list[str] = []
    for rname in sorted(ext.totals):
        if rname in node_allocatable_names:
            alloc.append((rname, ext.totals[rname]))
        elif rname in classes_by_resource:
            dra.append((rname, classes_by_resource[rname]))
        else:
            missing.append(rname)
    key = (tuple(dra), tuple(alloc), tuple(missing))
    hit = ext._cache.get(key)
    if hit is None:
        hit = ext._cache[key] = _build(ext, dict(dra), dict(alloc), tuple(missing))
    return hit


def _build(ext: PodExtended, dra: dict[str, str], alloc: dict[str, int], missing: tuple[str, ...]) -> ExtendedRequests:
    entries = tuple(e for e in ext.containers if e.resource in dra)
    requests: list[DeviceRequest] = []
    mappings: list[RequestMapping] = []
    for rname in sorted(dra):
        reqs, maps = _for_resource([e for e in entries if e.resource == rname], dra[rname])
        requests.extend(reqs)
        mappings.extend(maps)
    requests.sort(key=lambda r: r.name)
    return ExtendedRequests(dra, tuple(requests), tuple(mappings), entries, alloc, missing)


def _request_name(e: ContainerRequest) -> str:
    return f"container-{e.index}-request-{e.position}"


def _for_resource(entries: list[ContainerRequest], device_class: str
                  ) -> tuple[list[DeviceRequest], list[RequestMapping]]:
    """One resource's requests and mappings: a request per long-lived container; init containers
    first use the devices of the long-lived containers at later positions, and all of them share
    the largest remaining request (upstream's createRequestsAndMappings)."""
    long_lived = [e for e in entries if e.long_lived]
    short_lived = [e for e in entries if not e.long_lived]
    own: dict[int, DeviceRequest] = {}
    long_maps: list[RequestMapping] = []
    for e in long_lived:
        own[e.index] = DeviceRequest(_request_name(e), device_class, e.count)
        long_maps.append(RequestMapping(e.container, e.resource, own[e.index].name))
    largest: DeviceRequest | None = None
    short_names: set[str] = set()
    short_maps: list[RequestMapping] = []
    for e in short_lived:
        covered = 0
        extra: DeviceRequest | None = None
        for index in sorted(i for i in own if i >= e.index):
            covered += own[index].count
            short_maps.append(RequestMapping(e.container, e.resource, own[index].name))
            if covered >= e.count:
                break
        else:
            extra = DeviceRequest(_request_name(e), device_class, e.count - covered)
            short_maps.append(RequestMapping(e.container, e.resource, extra.name))
        if extra is not None:
            short_names.add(extra.name)
            if largest is None or largest.count < extra.count:
                largest = extra
    if largest is not None and len(short_names) > 1:
        short_maps = [RequestMapping(m.container, m.resource, largest.name)
                      if m.request in short_names else m for m in short_maps]
    requests = ([largest] if largest is not None else []) + [own[i] for i in sorted(own)]
    return requests, long_maps + short_maps


def unknown(pod: Mapping[str, Any] | PodExtended, classes_by_resource: Mapping[str, str],
            nodes_allocatable: Iterable[Collection[str]]) -> list[str]:
    """The pod's extended resources that no DeviceClass maps and no node lists in its allocatable,
    sorted: every node says "Insufficient <name>" for them and no eviction can help. Only unmapped
    names look at the nodes (one pass, stopping at the first node that lists each)."""
    ext = _parsed(pod)
    wanted = [r for r in sorted(ext.totals) if r not in classes_by_resource]
    if not wanted:
        return []
    left = set(wanted)
    for names in nodes_allocatable:
        left -= {r for r in left if r in names}
        if not left:
            return []
    return [r for r in wanted if r in left]


# --- the special claim and the pod status --------------------------------------------------------

def _pod_identity(pod: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = pod.get("metadata") or {}
    name, uid = meta.get("name"), meta.get("uid")
    if not name or not isinstance(name, str):
        raise ExtendedResourceError("metadata.name: the pod needs a name to own its extended resource claim")
    if not uid or not isinstance(uid, str):
        raise ExtendedResourceError("metadata.uid: the pod needs a uid to own its extended resource claim")
    return str(meta.get("namespace") or "default"), name, uid


def claim_for(pod: Mapping[str, Any], requests: ExtendedRequests, name: str | None = IN_MEMORY_NAME,
              uid: str | None = None) -> dict[str, Any]:
    """The special ResourceClaim (no status) for `requests` on one node.

    `name`: upstream keeps `<extended-resources>` until the claim is created; pass None for the
    body of a create call (the API server names it from generateName). `uid`: a temporary uid
    for in-memory bookkeeping, left out when None.
    """
    if not requests.requests:
        raise ValueError("claim_for: the node serves none of the pod's extended resources through DRA")
    ns, pod_name, pod_uid = _pod_identity(pod)
    meta: dict[str, Any] = {}
    if name is not None:
        meta["name"] = name
    meta["generateName"] = pod_name + GENERATE_NAME_SUFFIX
    meta["namespace"] = ns
    if uid is not None:
        meta["uid"] = uid
    meta["annotations"] = {CLAIM_ANNOTATION: "true"}
    meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": pod_name, "uid": pod_uid, "controller": True}]
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim", "metadata": meta,
            "spec": {"devices": {"requests": [r.wire() for r in requests.requests]}}}


def request_mappings(requests: ExtendedRequests) -> list[dict[str, str]]:
    """status.extendedResourceClaimStatus.requestMappings for `requests`."""
    return [m.wire() for m in requests.mappings]


def pod_status(claim_name: str, requests: ExtendedRequests) -> dict[str, Any]:
    """The pod status patch that records the created claim: {"extendedResourceClaimStatus": ...}."""
    if not claim_name:
        raise ValueError("pod_status: claim_name is the created claim's metadata.name and cannot be empty")
    if not requests.mappings:
        raise ValueError("pod_status: no request mappings (upstream refuses to record an empty status)")
    return {"extendedResourceClaimStatus": {"requestMappings": request_mappings(requests),
                                            "resourceClaimName": claim_name}}


def is_extended_claim(claim: Mapping[str, Any]) -> bool:
    """Does this ResourceClaim carry the extended-resource annotation?"""
    return ((claim.get("metadata") or {}).get("annotations") or {}).get(CLAIM_ANNOTATION) == "true"


def find_claim(pod: Mapping[str, Any], claims: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The pod's special claim from an earlier cycle: annotated, with the pod (name and uid) as
    controller owner. Upstream treats one that already has requests as stale (it is deleted and
    the pod retried), since its allocation may no longer be valid."""
    meta = pod.get("metadata") or {}
    name, uid = meta.get("name"), meta.get("uid")
    for claim in claims:
        if not is_extended_claim(claim):
            continue
        for ref in (claim.get("metadata") or {}).get("ownerReferences") or []:
            if ref.get("name") == name and ref.get("uid") == uid and ref.get("controller") is True:
                return claim
    return None
