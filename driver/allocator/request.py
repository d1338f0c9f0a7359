"""Claims and classes parsed once into request specs the search can use directly.

A scheduler tries one pod's claims against hundreds of nodes; parsing the claim dicts, resolving
their DeviceClasses and compiling their CEL once per pod (`prepare`) keeps that out of the
per-node path. Any problem found here is a property of the claim itself (unknown class, bad
expression, malformed field), so it is reported as a permanent failure naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from fractions import Fraction
from typing import Any, Mapping, Sequence

from driver.allocator.inventory import DeviceView, Taint, to_units
from driver.dra.cel import CelError, Selector, compile_selector
from driver.dra.quantity import QuantityError, parse_quantity

BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")
INT64_MAX = 2**63 - 1  # the largest value of an API int64 field (a request's count)


class ClaimError(ValueError):
    """A claim (or the class it names) that can never be allocated as written."""


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str
    operator: str  # Equal | Exists
    value: str
    effect: str  # "" = all effects

    def tolerates(self, taint: Taint) -> bool:
        if self.effect and self.effect != taint.effect:
            return False
        if self.operator == "Exists":
            return not self.key or self.key == taint.key
        return self.key == taint.key and self.value == taint.value


@dataclass(slots=True)
class RequestSpec:
    """One request (or one firstAvailable subrequest), resolved against its class.

    `capacity_requests` is what the claim asked per device, by qualified capacity name; the amount
    actually consumed on a device depends on that device's request policy (see capacity.py).
    """

    name: str  # name in results: "gpu" or "gpu/small"
    parent: str  # the top-level request name ("gpu")
    class_name: str
    selectors: tuple[Selector, ...]  # class selectors first, then the request's own
    mode: str  # ExactCount | All
    count: int
    admin: bool
    tolerations: tuple[Toleration, ...]
    raw_tolerations: list[dict[str, Any]]
    capacity_requests: dict[str, Fraction]
    class_configs: list[dict[str, Any]]
    key: tuple[str, ...] = ()  # selector expressions: the cache key for matching devices
    capacity_key: tuple = ()  # capacity requests, hashable: the cache key for consumption
    capacity_units: dict[str, int] = field(default_factory=dict)  # capacity_requests in nano-units
    admin_set: bool = False  # adminAccess written in the request (then results carry it, even false)

    def tolerates(self, device: DeviceView) -> bool:
        """False when the device has a NoSchedule/NoExecute taint no toleration covers."""
        for taint in device.taints:
            if taint.effect in BLOCKING_EFFECTS and not any(t.tolerates(taint) for t in self.tolerations):
                return False
        return True


@dataclass(slots=True)
class RequestGroup:
    """A top-level request: one alternative (`exactly`) or several (`firstAvailable`), in order."""

    name: str
    alternatives: list[RequestSpec]


@dataclass(frozen=True, slots=True)
class ConstraintSpec:
    requests: frozenset[str] | None  # None: every request of the claim
    attribute: str
    distinct: bool

    def applies(self, spec: RequestSpec) -> bool:
        return self.requests is None or spec.parent in self.requests or spec.name in self.requests


@dataclass(slots=True)
class ClaimSpec:
    namespace: str
    name: str
    uid: str
    groups: list[RequestGroup]
    constraints: list[ConstraintSpec]
    configs: list[dict[str, Any]]  # claim-level config entries, as written

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(slots=True)
class PreparedClaims:
    """The pod's unallocated claims, parsed; pass this to allocate/quick_reject for every node."""

    claims: list[ClaimSpec] = field(default_factory=list)


@lru_cache(maxsize=4096)
def _quantity(text: str) -> Fraction:
    # A scheduler parses every pod's claims; their amounts repeat ("250m", "10Gi").
    return parse_quantity(text)


def _compile(expr: Any, where: str) -> Selector:
    try:
        return compile_selector(expr)
    except CelError as exc:
        raise ClaimError(f"{where}: {exc}") from None


def _selectors(raw: Any, where: str) -> list[Selector]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ClaimError(f"{where}: expected a list of selectors")
    if len(raw) > 32:
        raise ClaimError(f"{where}: {len(raw)} selectors, at most 32 allowed")
    out = []
    for i, s in enumerate(raw):
        cel = (s or {}).get("cel") if isinstance(s, Mapping) else None
        if not isinstance(cel, Mapping) or "expression" not in cel:
            raise ClaimError(f"{where}[{i}].cel.expression: expected a CEL expression")
        out.append(_compile(cel["expression"], f"{where}[{i}].cel.expression"))
    return out


def _tolerations(raw: Any, where: str) -> tuple[tuple[Toleration, ...], list[dict[str, Any]]]:
    if not raw:
        return (), []
    out = []
    for i, t in enumerate(raw):
        op = t.get("operator") or "Equal"
        if op not in ("Equal", "Exists"):
            raise ClaimError(f"{where}[{i}].operator: expected Equal or Exists, got {op!r}")
        effect = t.get("effect") or ""
        if effect not in ("", "None", "NoSchedule", "NoExecute"):
            raise ClaimError(f"{where}[{i}].effect: expected NoSchedule, NoExecute or None, got {effect!r}")
        if op == "Exists" and t.get("value"):
            raise ClaimError(f"{where}[{i}].value: must be empty when operator is Exists")
        out.append(Toleration(t.get("key") or "", op, t.get("value") or "", effect))
    return tuple(out), [dict(t) for t in raw]


def _spec(raw: Mapping[str, Any], name: str, parent: str, classes: Mapping[str, Mapping[str, Any]],
          where: str) -> RequestSpec:
    class_name = raw.get("deviceClassName")
    if not isinstance(class_name, str) or not class_name:
        raise ClaimError(f"{where}.deviceClassName: required")
    cls = classes.get(class_name)
    if cls is None:
        raise ClaimError(f"{where}.deviceClassName: device class {class_name!r} does not exist")
    cspec = cls.get("spec") or {}
    selectors = _selectors(cspec.get("selectors"), f"deviceclass {class_name} spec.selectors")
    selectors += _selectors(raw.get("selectors"), f"{where}.selectors")
    mode = raw.get("allocationMode") or "ExactCount"
    if mode not in ("ExactCount", "All"):
        raise ClaimError(f"{where}.allocationMode: expected ExactCount or All, got {mode!r}")
    count = raw.get("count", 1 if mode == "ExactCount" else 0)
    if mode == "ExactCount" and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ClaimError(f"{where}.count: expected a positive integer, got {count!r}")
    if mode == "ExactCount" and count > INT64_MAX:  # the API field is an int64
        raise ClaimError(f"{where}.count: expected at most {INT64_MAX}, got {count}")
    if raw.get("adminAccess") is not None and not isinstance(raw.get("adminAccess"), bool):
        raise ClaimError(f"{where}.adminAccess: expected true or false, got {raw.get('adminAccess')!r}")
    if mode == "All" and raw.get("count") not in (None, 0):
        raise ClaimError(f"{where}.count: must not be set with allocationMode All")
    tolerations, raw_tol = _tolerations(raw.get("tolerations"), f"{where}.tolerations")
    caps: dict[str, Fraction] = {}
    capacity = raw.get("capacity") or {}
    if not isinstance(capacity, Mapping):
        raise ClaimError(f"{where}.capacity: expected a mapping with requests, got {type(capacity).__name__}")
    cap_requests = capacity.get("requests") or {}
    if not isinstance(cap_requests, Mapping):
        raise ClaimError(f"{where}.capacity.requests: expected a mapping of capacity name to quantity, "
                         f"got {type(cap_requests).__name__}")
    for cap_name, value in cap_requests.items():
        if not isinstance(cap_name, str) or not cap_name:
            raise ClaimError(f"{where}.capacity.requests: capacity name {cap_name!r} is not a non-empty string")
        # Bare names belong to the driver that publishes the device, which is not known yet:
        # "*/name" is resolved per device (capacity.requested_on).
        key = cap_name if "/" in cap_name else f"*/{cap_name}"
        try:
            caps[key] = _quantity(value) if isinstance(value, str) else parse_quantity(value)
        except QuantityError:
            try:
                parse_quantity(value, f"{where}.capacity.requests[{cap_name}]")
            except QuantityError as exc:
                raise ClaimError(str(exc)) from None
            raise
        if caps[key] < 0:  # upstream: a capacity request must not be negative
            raise ClaimError(f"{where}.capacity.requests[{cap_name}]: must not be negative, got {value!r}")
    configs = [dict(c) for c in (cspec.get("config") or [])]
    return RequestSpec(
        name=name, parent=parent, class_name=class_name, selectors=tuple(selectors), mode=mode,
        count=count if mode == "ExactCount" else 0, admin=bool(raw.get("adminAccess")),
        tolerations=tolerations, raw_tolerations=raw_tol, capacity_requests=caps,
        class_configs=configs, key=tuple(s.expression for s in selectors),
        capacity_key=tuple(sorted(caps.items())), admin_set=raw.get("adminAccess") is not None,
        capacity_units={k: to_units(v) for k, v in caps.items()},
    )


def parse_claim(claim: Mapping[str, Any], classes: Mapping[str, Mapping[str, Any]]) -> ClaimSpec:
    """One ResourceClaim dict → ClaimSpec. Raises ClaimError naming the claim and field."""
    meta = claim.get("metadata") or {}
    label = f"claim {meta.get('namespace', '')}/{meta.get('name', '')}"
    devices = ((claim.get("spec") or {}).get("devices")) or {}
    requests = devices.get("requests") or []
    if not isinstance(requests, list):
        raise ClaimError(f"{label} spec.devices.requests: expected a list")
    if len(requests) > 32:
        raise ClaimError(f"{label} spec.devices.requests: {len(requests)} requests, at most 32 allowed")
    groups: list[RequestGroup] = []
    names: set[str] = set()
    for i, r in enumerate(requests):
        name = r.get("name")
        where = f"{label} spec.devices.requests[{i}]"
        if not isinstance(name, str) or not name:
            raise ClaimError(f"{where}.name: required")
        if name in names:
            raise ClaimError(f"{where}.name: duplicate request name {name!r}")
        names.add(name)
        exactly, first = r.get("exactly"), r.get("firstAvailable")
        if exactly is None and first is None and r.get("deviceClassName"):
            exactly = r  # v1beta1-style flat request
        if (exactly is None) == (first is None):
            raise ClaimError(f"{where}: exactly one of 'exactly' and 'firstAvailable' is required")
        if exactly is not None:
            groups.append(RequestGroup(name, [_spec(exactly, name, name, classes, f"{where}.exactly")]))
            continue
        if not isinstance(first, list) or not 1 <= len(first) <= 8:
            raise ClaimError(f"{where}.firstAvailable: expected 1 to 8 subrequests")
        alts, subnames = [], set()
        for j, sub in enumerate(first):
            sname = sub.get("name")
            if not isinstance(sname, str) or not sname or sname in subnames:
                raise ClaimError(f"{where}.firstAvailable[{j}].name: required and unique")
            subnames.add(sname)
            if sub.get("adminAccess") is not None:
                raise ClaimError(f"{where}.firstAvailable[{j}].adminAccess: not allowed in a subrequest")
            alts.append(_spec(sub, f"{name}/{sname}", name, classes, f"{where}.firstAvailable[{j}]"))
        groups.append(RequestGroup(name, alts))
    constraints = []
    for i, c in enumerate(devices.get("constraints") or []):
        where = f"{label} spec.devices.constraints[{i}]"
        match, distinct = c.get("matchAttribute"), c.get("distinctAttribute")
        if (match is None) == (distinct is None):
            raise ClaimError(f"{where}: exactly one of matchAttribute and distinctAttribute is required")
        attr = match or distinct
        if not isinstance(attr, str) or "/" not in attr:
            raise ClaimError(f"{where}: attribute {attr!r} must be fully qualified (domain/name)")
        reqs = c.get("requests") or None
        if reqs:
            for rn in reqs:
                if rn.split("/")[0] not in names:
                    raise ClaimError(f"{where}.requests: {rn!r} is not a request of this claim")
        constraints.append(ConstraintSpec(frozenset(reqs) if reqs else None, attr, distinct is not None))
    configs = []
    for i, c in enumerate(devices.get("config") or []):
        for rn in c.get("requests") or []:
            if rn.split("/")[0] not in names:
                raise ClaimError(f"{label} spec.devices.config[{i}].requests: {rn!r} is not a request of this claim")
        configs.append(dict(c))
    return ClaimSpec(meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", ""), groups, constraints, configs)


def prepare(claims: Sequence[Mapping[str, Any]], classes: Mapping[str, Mapping[str, Any]]) -> PreparedClaims:
    """Parse the pod's unallocated claims once. Raises ClaimError for the first bad one."""
    return PreparedClaims([parse_claim(c, classes) for c in claims])
