"""Pods as kube-apiserver defaults and validates them (pkg/apis/core/{v1/defaults,validation}).

What a scheduler and its tests depend on, with upstream's field paths and wording:

- defaults: a container's `resources.requests` gets every resource it lists only in `limits`;
  every quantity is rewritten in canonical form (`cpu: 1` reads back `"1"`); a pod created with
  scheduling gates gets `PodScheduled=False` (reason `SchedulingGated`).
- create: scheduling gates are qualified names without duplicates and cannot come with a
  `nodeName`; requests never exceed limits (and equal them for extended resources).
- update: the spec is immutable except images, activeDeadlineSeconds, tolerations,
  terminationGracePeriodSeconds, removing scheduling gates, and adding nodeSelector entries while
  the pod is still gated; `priority` and `preemptionPolicy` left out of an update keep their
  stored values (the Priority admission plugin's rule).
- status: `nominatedNodeName` is a node name; `extendedResourceClaimStatus` names a claim and
  maps containers' extended resources to its requests. Conditions such as `DisruptionTarget` are
  stored as sent.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from driver.devices.apinames import is_dns_label, is_dns_subdomain, label_key_error
from driver.dra.quantity import parse_quantity
from driver.local.quantities import QUANTITY_PATTERN, QuantityError, canonical, canonicalize_key
from driver.local.validation import Causes, show

GATED_REASON = "SchedulingGated"
GATED_MESSAGE = "Scheduling is blocked due to non-empty scheduling gates"
PREEMPTION_POLICIES = ("PreemptLowerPriority", "Never")
_MUTABLE_SPEC = ("activeDeadlineSeconds", "tolerations", "schedulingGates", "terminationGracePeriodSeconds")
_IMMUTABLE_MESSAGE = ("Forbidden: pod updates may not change fields other than `spec.containers[*].image`, "
                      "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing "
                      "tolerations) and `spec.terminationGracePeriodSeconds`")
_INT32 = (-(2**31), 2**31 - 1)


def _containers(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(field path, container) of the regular and init containers that are objects."""
    out = []
    for key in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(key) or []):
            if isinstance(c, dict):
                out.append((f"spec.{key}[{i}]", c))
    return out


# --- defaults ---------------------------------------------------------------------------------

def canonicalize(spec: dict[str, Any]) -> None:
    """Canonical quantities in container resources, pod-level resources and overhead (in place).

    Raises QuantityError naming the field for a value that is not a quantity.
    """
    for path, c in _containers(spec):
        res = c.get("resources")
        if isinstance(res, dict):
            for key in ("requests", "limits"):
                canonicalize_key(res, key, f"{path}.resources.{key}")
    pod_res = spec.get("resources")
    if isinstance(pod_res, dict):
        for key in ("requests", "limits"):
            canonicalize_key(pod_res, key, f"spec.resources.{key}")
    canonicalize_key(spec, "overhead", "spec.overhead")


def default_requests(spec: dict[str, Any]) -> None:
    """SetDefaults_Pod: each resource a container lists only in limits is requested at its limit."""
    for _, c in _containers(spec):
        res = c.get("resources")
        limits = res.get("limits") if isinstance(res, dict) else None
        if not isinstance(limits, dict) or not limits:
            continue
        requests = res.get("requests")
        if requests is None:
            requests = res["requests"] = {}
        if isinstance(requests, dict):
            for name, value in limits.items():
                requests.setdefault(name, value)


def gated_condition(pod: dict[str, Any]) -> None:
    """A new pod with scheduling gates reads PodScheduled=False/SchedulingGated until released."""
    if not (pod.get("spec") or {}).get("schedulingGates"):
        return
    conds = pod.setdefault("status", {}).setdefault("conditions", [])
    if not any(isinstance(c, dict) and c.get("type") == "PodScheduled" for c in conds):
        conds.append({"type": "PodScheduled", "status": "False", "lastProbeTime": None, "lastTransitionTime": None,
                      "reason": GATED_REASON, "message": GATED_MESSAGE})


def keep_priority(new: dict[str, Any], old: dict[str, Any]) -> None:
    """An update that leaves out spec.priority / spec.preemptionPolicy keeps the stored ones."""
    spec, old_spec = new.get("spec"), old.get("spec") or {}
    if not isinstance(spec, dict):
        return
    for key in ("priority", "preemptionPolicy"):
        if spec.get(key) is None and old_spec.get(key) is not None:
            spec[key] = old_spec[key]


# --- validation -------------------------------------------------------------------------------

def _is_native(name: str) -> bool:
    return "/" not in name or name.split("/", 1)[0].endswith("kubernetes.io")


def _overcommit_allowed(name: str) -> bool:
    """helper.IsOvercommitAllowed: native resources other than huge pages."""
    return _is_native(name) and not name.startswith("hugepages-")


def _resources(path: str, res: Any) -> Causes:
    """ValidateResourceRequirements: non-negative quantities, requests <= limits (== for extended)."""
    if res is None:
        return []
    if not isinstance(res, dict):
        return [(f"{path}.resources", "Invalid value: expected an object")]
    causes: Causes = []
    parsed: dict[str, dict[str, Fraction]] = {}
    for key in ("limits", "requests"):
        values = res.get(key) or {}
        if not isinstance(values, dict):
            causes.append((f"{path}.resources.{key}", "Invalid value: expected a map of resource name to quantity"))
            continue
        parsed[key] = {}
        for name, q in values.items():
            fpath = f"{path}.resources.{key}[{name}]"
            why = label_key_error(name)
            if why:
                causes.append((fpath, f"Invalid value: {show(name)}: {why}"))
                continue
            try:
                amount = _parse(q)
            except QuantityError:
                causes.append((fpath, f"Invalid value: {show(q)}: quantities must match the regular expression "
                                      f"'{QUANTITY_PATTERN}'"))
                continue
            parsed[key][name] = amount
            if amount < 0:
                causes.append((fpath, f"Invalid value: {show(q)}: must be greater than or equal to 0"))
            elif not _is_native(name) and amount.denominator != 1:
                causes.append((fpath, f"Invalid value: {show(q)}: must be an integer"))
    limits, requests = parsed.get("limits", {}), parsed.get("requests", {})
    req_path = f"{path}.resources.requests"
    for name, amount in requests.items():
        limit = limits.get(name)
        text = (res.get("requests") or {}).get(name)
        if _overcommit_allowed(name):
            if limit is not None and amount > limit:
                causes.append((req_path, f"Invalid value: {show(text)}: must be less than or equal to {name} limit of "
                                         f"{(res.get('limits') or {}).get(name)}"))
        elif limit is None:
            causes.append((f"{req_path}[{name}]", "Forbidden: Limit must be set for non overcommitable resources"))
        elif amount != limit:
            causes.append((req_path, f"Invalid value: {show(text)}: must be equal to {name} limit of "
                                     f"{(res.get('limits') or {}).get(name)}"))
    return causes


def _parse(q: Any) -> Fraction:
    """The quantity's value, accepted by the same rule as the defaulting step (QuantityError if not)."""
    return parse_quantity(canonical(q))


def _gates(gates: Any) -> Causes:
    if gates is None:
        return []
    if not isinstance(gates, list):
        return [("spec.schedulingGates", "Invalid value: expected a list of {name} objects")]
    causes: Causes = []
    seen: set[str] = set()
    for i, gate in enumerate(gates):
        name = gate.get("name") if isinstance(gate, dict) else None
        path = f"spec.schedulingGates[{i}]"
        why = label_key_error(name)  # a qualified name: [<dns subdomain>/]<name>
        if why:
            causes.append((path, f"Invalid value: {show(name)}: {why}"))
        elif name in seen:
            causes.append((path, f"Duplicate value: {show(name)}"))
        if isinstance(name, str):
            seen.add(name)
    return causes


def _priority_fields(spec: dict[str, Any]) -> Causes:
    causes: Causes = []
    priority = spec.get("priority")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)
                                 or not _INT32[0] <= priority <= _INT32[1]):
        causes.append(("spec.priority", f"Invalid value: {show(priority)}: must be a 32-bit integer"))
    policy = spec.get("preemptionPolicy")
    if policy is not None and policy not in PREEMPTION_POLICIES:
        causes.append(("spec.preemptionPolicy",
                       f"Unsupported value: {show(policy)}: supported values: \"PreemptLowerPriority\", \"Never\""))
    name = spec.get("priorityClassName")
    if name and not is_dns_subdomain(name):
        causes.append(("spec.priorityClassName", f"Invalid value: {show(name)}: a lowercase RFC 1123 subdomain must "
                                                 "consist of lower case alphanumeric characters, '-' or '.'"))
    return causes


def validate_spec(spec: Any, template: bool = False) -> Causes:
    """A pod spec on create (also a workload's pod template: then no nodeName/gates rule)."""
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    causes: Causes = []
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        causes.append(("spec.containers", "Required value"))
    for path, c in _containers(spec):
        if not is_dns_label(c.get("name")):
            causes.append((f"{path}.name", f"Invalid value: {show(c.get('name'))}: must be a DNS-1123 label"))
        if not c.get("image"):
            causes.append((f"{path}.image", "Required value"))
        causes += _resources(path, c.get("resources"))
    for i, c in enumerate(containers if isinstance(containers, list) else []):
        if not isinstance(c, dict):
            causes.append((f"spec.containers[{i}]", "Invalid value: expected an object"))
    for i, rc in enumerate(spec.get("resourceClaims") or []):
        path = f"spec.resourceClaims[{i}]"
        if not isinstance(rc, dict) or not is_dns_label(rc.get("name")):
            causes.append((f"{path}.name", "Invalid value: must be a DNS-1123 label"))
            continue
        sources = [k for k in ("resourceClaimName", "resourceClaimTemplateName") if rc.get(k)]
        if len(sources) != 1:
            causes.append((path, "Invalid value: must specify exactly one of resourceClaimName, resourceClaimTemplateName"))
    causes += _gates(spec.get("schedulingGates"))
    causes += _priority_fields(spec)
    if not template and spec.get("nodeName") and spec.get("schedulingGates"):
        causes.append(("spec.nodeName", "Forbidden: cannot be set until all schedulingGates have been cleared"))
    return causes


def _only_deleted_gates(new: list[Any], old: list[Any]) -> Causes:
    old_names = {g.get("name") for g in old if isinstance(g, dict)}
    causes: Causes = []
    for i, gate in enumerate(new):
        name = gate.get("name") if isinstance(gate, dict) else None
        if name not in old_names:
            causes.append((f"spec.schedulingGates[{i}].name",
                           f"Forbidden: only deletion is allowed, but found new scheduling gate '{name}'"))
    return causes


def _strip_images(containers: Any) -> list[Any]:
    return [{k: v for k, v in c.items() if k != "image"} for c in containers or [] if isinstance(c, dict)]


def validate_update(spec: Any, old_spec: dict[str, Any]) -> Causes:
    """What a pod update may change (see the module docstring)."""
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    causes = _only_deleted_gates(spec.get("schedulingGates") or [], old_spec.get("schedulingGates") or [])
    new, old = dict(spec), dict(old_spec)
    for key in _MUTABLE_SPEC:
        new.pop(key, None)
        old.pop(key, None)
    for key in ("containers", "initContainers"):
        if key in new or key in old:
            new[key], old[key] = _strip_images(new.get(key)), _strip_images(old.get(key))
    gated = bool(old_spec.get("schedulingGates"))
    if gated and new.get("nodeSelector") != old.get("nodeSelector"):
        selector, before = new.get("nodeSelector") or {}, old.get("nodeSelector") or {}
        if isinstance(selector, dict) and all(selector.get(k) == v for k, v in before.items()):
            new.pop("nodeSelector", None)
            old.pop("nodeSelector", None)
        else:
            causes.append(("spec.nodeSelector", f"Invalid value: {show(selector)}: only additions to spec.nodeSelector "
                                                "are allowed (no mutations or deletions)"))
            new.pop("nodeSelector", None)
            old.pop("nodeSelector", None)
    if new != old:
        causes.append(("spec", _IMMUTABLE_MESSAGE))
    return causes + _gates(spec.get("schedulingGates"))


def _extended_claim_status(ext: Any, spec: dict[str, Any]) -> Causes:
    path = "status.extendedResourceClaimStatus"
    if not isinstance(ext, dict):
        return [(path, "Invalid value: expected an object")]
    causes: Causes = []
    name = ext.get("resourceClaimName")
    if not name:
        causes.append((f"{path}.resourceClaimName", "Required value"))
    elif not is_dns_subdomain(name):
        causes.append((f"{path}.resourceClaimName", f"Invalid value: {show(name)}: must be a DNS subdomain"))
    mappings = ext.get("requestMappings")
    if not isinstance(mappings, list) or not mappings:
        return causes + [(f"{path}.requestMappings", "Required value")]
    containers = {c.get("name") for _, c in _containers(spec)}
    for i, m in enumerate(mappings):
        mpath = f"{path}.requestMappings[{i}]"
        if not isinstance(m, dict):
            causes.append((mpath, "Invalid value: expected an object"))
            continue
        if m.get("containerName") not in containers:
            causes.append((f"{mpath}.containerName", f"Invalid value: {show(m.get('containerName'))}: must match the name "
                                                     "of an entry in `spec.initContainers.name` or `spec.containers.name`"))
        why = label_key_error(m.get("resourceName"))
        if why:
            causes.append((f"{mpath}.resourceName", f"Invalid value: {show(m.get('resourceName'))}: {why}"))
        if not is_dns_label(m.get("requestName")):
            causes.append((f"{mpath}.requestName", f"Invalid value: {show(m.get('requestName'))}: must be a DNS-1123 label"))
    return causes


def validate_status(status: Any, spec: dict[str, Any]) -> Causes:
    """The status fields a scheduler writes (nominatedNodeName, extendedResourceClaimStatus)."""
    if status is None:
        return []
    if not isinstance(status, dict):
        return [("status", "Invalid value: expected an object")]
    causes: Causes = []
    nominated = status.get("nominatedNodeName")
    if nominated and not is_dns_subdomain(nominated):
        causes.append(("status.nominatedNodeName", f"Invalid value: {show(nominated)}: a lowercase RFC 1123 subdomain"))
    if status.get("extendedResourceClaimStatus") is not None:
        causes += _extended_claim_status(status["extendedResourceClaimStatus"], spec)
    conds = status.get("conditions")
    if conds is not None and not isinstance(conds, list):
        causes.append(("status.conditions", "Invalid value: expected a list"))
    for i, c in enumerate(conds or []):
        if not isinstance(c, dict) or not c.get("type"):
            causes.append((f"status.conditions[{i}].type", "Required value"))
    return causes


def validate(pod: dict[str, Any], old: dict[str, Any] | None) -> Causes:
    """Causes for a pod create (`old` None) or update (spec and status)."""
    spec = pod.get("spec")
    if old is None:
        return validate_spec(spec)
    causes = validate_update(spec, old.get("spec") or {})
    return causes + validate_status(pod.get("status"), spec if isinstance(spec, dict) else {})
