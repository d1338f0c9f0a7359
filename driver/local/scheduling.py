"""scheduling.k8s.io/v1 PriorityClass, and the Priority admission plugin's view of pods.

A pod's priority is not written by its author: kube-apiserver's Priority admission plugin
resolves `spec.priorityClassName` (or the one class marked `globalDefault`) into `spec.priority`
and `spec.preemptionPolicy` when the pod is created, and refuses a pod naming a class that does
not exist or carrying a priority that disagrees with its class. Schedulers order and preempt by
these two fields, so the local server resolves them the same way, with upstream's messages
(plugin/pkg/admission/priority, pkg/apis/scheduling/validation).

The two system classes exist from the start (the apiserver's bootstrap creates them), cannot be
deleted, and are the only classes allowed a `system-` name or a value above one billion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from driver.local.validation import Causes, show

HIGHEST_USER_PRIORITY = 1_000_000_000
SYSTEM_CRITICAL = 2 * HIGHEST_USER_PRIORITY
SYSTEM_PREFIX = "system-"
DEFAULT_POLICY = "PreemptLowerPriority"
POLICIES = ("PreemptLowerPriority", "Never")
_INT32 = (-(2**31), 2**31 - 1)

SYSTEM_CLASSES: dict[str, tuple[int, str]] = {
    "system-node-critical": (SYSTEM_CRITICAL + 1000,
                             "Used for system critical pods that must not be moved from their current node."),
    "system-cluster-critical": (SYSTEM_CRITICAL,
                                "Used for system critical pods that must run in the cluster, but can be moved to "
                                "another node if necessary."),
}


def system_class_bodies() -> list[dict[str, Any]]:
    """The PriorityClasses kube-apiserver creates at bootstrap."""
    return [{"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
             "value": value, "description": description, "preemptionPolicy": DEFAULT_POLICY}
            for name, (value, description) in SYSTEM_CLASSES.items()]


def default(pc: dict[str, Any]) -> None:
    """SetDefaults_PriorityClass: preemptionPolicy PreemptLowerPriority; an absent value reads 0."""
    pc.setdefault("value", 0)
    if pc.get("preemptionPolicy") is None:
        pc["preemptionPolicy"] = DEFAULT_POLICY


def _known_system_class_error(name: str, value: Any, global_default: bool) -> str | None:
    known = SYSTEM_CLASSES.get(name)
    if known is None:
        return f"{name} is not a known system priority class"
    if value != known[0]:
        return f"value of {name} PriorityClass must be {known[0]}"
    if global_default:
        return f"globalDefault of {name} PriorityClass must be false"
    return None


def validate(pc: dict[str, Any], old: dict[str, Any] | None) -> Causes:
    """ValidatePriorityClass / ValidatePriorityClassUpdate (metadata is checked by the caller)."""
    causes: Causes = []
    name = str((pc.get("metadata") or {}).get("name") or "")
    value = pc.get("value")
    if value is None:
        value = 0  # an int32 without omitempty: absent decodes as 0
    if isinstance(value, bool) or not isinstance(value, int) or not _INT32[0] <= value <= _INT32[1]:
        causes.append(("value", f"Invalid value: {show(value)}: must be a 32-bit integer"))
        return causes
    global_default = pc.get("globalDefault", False)
    if not isinstance(global_default, bool):
        causes.append(("globalDefault", f"Invalid value: {show(global_default)}: must be a boolean"))
        global_default = False
    if name.startswith(SYSTEM_PREFIX):
        why = _known_system_class_error(name, value, global_default)
        if why:
            causes.append(("metadata.name", f"Forbidden: priority class names with '{SYSTEM_PREFIX}' prefix are "
                                            f"reserved for system use only. error: {why}"))
    elif value > HIGHEST_USER_PRIORITY:
        causes.append(("value", f"Forbidden: maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"))
    policy = pc.get("preemptionPolicy")
    if policy is not None and policy not in POLICIES:
        causes.append(("preemptionPolicy", f"Unsupported value: {show(policy)}: supported values: "
                                           "\"PreemptLowerPriority\", \"Never\""))
    if old is not None:
        if value != (old.get("value") or 0):
            causes.append(("value", "Forbidden: may not be changed in an update."))
        if policy != old.get("preemptionPolicy"):
            causes.append(("preemptionPolicy", f"Invalid value: {show(policy)}: field is immutable"))
    return causes


def default_class(classes: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The globalDefault class; with several (a race upstream tolerates), the lowest value."""
    best = None
    for pc in classes:
        if pc.get("globalDefault") is True and (best is None or (pc.get("value") or 0) < (best.get("value") or 0)):
            best = pc
    return best


def second_default_error(pc: dict[str, Any], classes: list[dict[str, Any]], updating: bool) -> str | None:
    """Why `pc` may not be globalDefault: another class already is (validating admission)."""
    if pc.get("globalDefault") is not True:
        return None
    current = default_class(classes)
    if current is None:
        return None
    name = current["metadata"]["name"]
    if not updating or name != (pc.get("metadata") or {}).get("name"):
        return f"PriorityClass {name} is already marked as default. Only one default can exist"
    return None


@dataclass(frozen=True)
class Resolution:
    """What admission writes into a new pod's spec."""

    class_name: str  # "" when no class applies
    priority: int
    preemption_policy: str


class PriorityRefused(Exception):
    """The Priority admission plugin refuses the pod (HTTP 403 Forbidden upstream)."""


def resolve(spec: dict[str, Any], classes: dict[str, dict[str, Any]]) -> Resolution:
    """admitPod on create: the priority and preemption policy a new pod gets, or PriorityRefused."""
    name = spec.get("priorityClassName") or ""
    if name:
        pc = classes.get(name)
        if pc is None:
            raise PriorityRefused(f"no PriorityClass with name {name} was found")
        resolved = Resolution(name, int(pc.get("value") or 0), pc.get("preemptionPolicy") or DEFAULT_POLICY)
    else:
        pc = default_class(list(classes.values()))
        if pc is None:
            resolved = Resolution("", 0, DEFAULT_POLICY)
        else:
            resolved = Resolution(pc["metadata"]["name"], int(pc.get("value") or 0),
                                  pc.get("preemptionPolicy") or DEFAULT_POLICY)
    given = spec.get("priority")
    if given is not None and given != resolved.priority:
        raise PriorityRefused(f"the integer value of priority ({given}) must not be provided in pod spec; priority "
                              f"admission controller computed {resolved.priority} from the given PriorityClass name")
    policy = spec.get("preemptionPolicy")
    if policy is not None and policy != resolved.preemption_policy:
        raise PriorityRefused(f"the string value of PreemptionPolicy ({policy}) must not be provided in pod spec; "
                              f"priority admission controller computed {resolved.preemption_policy} from the given "
                              "PriorityClass name")
    return resolved


def apply(spec: dict[str, Any], resolved: Resolution) -> None:
    """Write a resolution into a pod spec (in place)."""
    if resolved.class_name:
        spec["priorityClassName"] = resolved.class_name
    spec["priority"] = resolved.priority
    spec["preemptionPolicy"] = resolved.preemption_policy
