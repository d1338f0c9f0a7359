"""policy/v1 PodDisruptionBudget: validation, and the status the disruption controller computes.

A scheduler that preempts reads a PDB's `status.disruptionsAllowed` to prefer victims whose loss
violates no budget, so that number must mean what kube-controller-manager's disruption
controller (pkg/controller/disruption) makes it mean:

- the pods are those of the PDB's namespace its selector matches (`{}` matches all, a missing
  selector none); a pod counts as healthy when it is Ready, not being deleted, and not listed in
  `status.disruptedPods` within the last two minutes;
- integer `minAvailable`: desired = that number, expected = the number of matching pods;
- percentage `minAvailable` or any `maxUnavailable`: expected = the sum of the scales of the
  pods' controllers (a Deployment's replicas for its ReplicaSets' pods, else the ReplicaSet's);
  percentages round up. Locally, each pod without a controller counts one towards that sum
  (upstream counts them zero, which leaves such budgets at 0 allowed disruptions); a controller
  with no scale (a Job, say) fails the sync, and the status fails safe to 0 allowed with
  `DisruptionAllowed=False/SyncFailed`, as upstream;
- disruptionsAllowed = max(0, healthy - desired), and 0 while expected is 0.

`compute_status` is pure: the controller (`disruption.py`) feeds it the PDB, its pods and a
scale lookup.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from driver.local.validation import Causes, show
from driver.scheduler import labels

DELETION_TIMEOUT = timedelta(minutes=2)
CONDITION = "DisruptionAllowed"
_PERCENT = re.compile(r"^[0-9]+%$")
_EVICTION_POLICIES = ("AlwaysAllow", "IfHealthyBudget")
_PERCENT_MESSAGE = ("a valid percent string must be a numeric string followed by an ending '%' "
                    "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")

# (namespace, controller ownerReference) -> the controller's scale, or None when it has none
ScaleLookup = Callable[[str, dict[str, Any]], "int | None"]


# --- validation -------------------------------------------------------------------------------

def _int_or_percent(path: str, value: Any) -> Causes:
    """ValidatePositiveIntOrPercent + IsNotMoreThan100Percent."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return [(path, f"Invalid value: {show(value)}: must be an integer or percentage (e.g '5%')")]
    if isinstance(value, int):
        return [(path, f"Invalid value: {value}: must be greater than or equal to 0")] if value < 0 else []
    if not _PERCENT.match(value):
        return [(path, f"Invalid value: {show(value)}: {_PERCENT_MESSAGE}")]
    if int(value[:-1]) > 100:
        return [(path, f"Invalid value: {show(value)}: must not be greater than 100%")]
    return []


def validate_selector(path: str, selector: Any) -> Causes:
    """metav1 LabelSelector validation with upstream's paths (None is valid: it selects nothing)."""
    if selector is None:
        return []
    if not isinstance(selector, dict):
        return [(path, "Invalid value: expected a label selector object")]
    causes: Causes = []
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, dict):
        causes.append((f"{path}.matchLabels", "Invalid value: expected a map of label to value"))
    exprs = selector.get("matchExpressions") or []
    if not isinstance(exprs, list):
        return causes + [(f"{path}.matchExpressions", "Invalid value: expected a list")]
    for i, expr in enumerate(exprs):
        epath = f"{path}.matchExpressions[{i}]"
        if not isinstance(expr, dict):
            causes.append((epath, "Invalid value: expected an object"))
            continue
        op, values = expr.get("operator"), expr.get("values") or []
        if not expr.get("key"):
            causes.append((f"{epath}.key", "Required value"))
        if op in ("In", "NotIn") and not values:
            causes.append((f"{epath}.values", "Required value: must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist") and values:
            causes.append((f"{epath}.values", "Forbidden: may not be specified when `operator` is 'Exists' or "
                                              "'DoesNotExist'"))
        elif op not in labels.OPERATORS:
            causes.append((f"{epath}.operator", f"Invalid value: {show(op)}: not a valid selector operator"))
    return causes


def validate(pdb: dict[str, Any], old: dict[str, Any] | None) -> Causes:
    """ValidatePodDisruptionBudget (+ the status rules on updates)."""
    spec = pdb.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        return [("spec", "Invalid value: expected an object")]
    causes: Causes = []
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        causes.append(("spec", "Invalid value: minAvailable and maxUnavailable cannot be both set"))
    for key in ("minAvailable", "maxUnavailable"):
        if spec.get(key) is not None:
            causes += _int_or_percent(f"spec.{key}", spec[key])
    causes += validate_selector("spec.selector", spec.get("selector"))
    policy = spec.get("unhealthyPodEvictionPolicy")
    if policy is not None and policy not in _EVICTION_POLICIES:
        causes.append(("spec.unhealthyPodEvictionPolicy",
                       f"Unsupported value: {show(policy)}: supported values: \"AlwaysAllow\", \"IfHealthyBudget\""))
    if old is not None:
        causes += _validate_status(pdb.get("status"))
    return causes


def _validate_status(status: Any) -> Causes:
    if status is None:
        return []
    if not isinstance(status, dict):
        return [("status", "Invalid value: expected an object")]
    causes: Causes = []
    for key in ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"):
        value = status.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int):
            causes.append((f"status.{key}", f"Invalid value: {show(value)}: must be an integer"))
        elif value < 0:
            causes.append((f"status.{key}", f"Invalid value: {value}: must be greater than or equal to 0"))
    for i, cond in enumerate(status.get("conditions") or []):
        cpath = f"status.conditions[{i}]"
        if not isinstance(cond, dict):
            causes.append((cpath, "Invalid value: expected an object"))
            continue
        if cond.get("status") not in ("True", "False", "Unknown"):
            causes.append((f"{cpath}.status", f"Unsupported value: {show(cond.get('status'))}: supported values: "
                                              "\"False\", \"True\", \"Unknown\""))
        if not cond.get("reason"):
            causes.append((f"{cpath}.reason", "Required value"))
        if not cond.get("lastTransitionTime"):
            causes.append((f"{cpath}.lastTransitionTime", "Required value: must be set"))
    return causes


# --- status -----------------------------------------------------------------------------------

class SyncFailed(Exception):
    """The expected pod count cannot be computed (e.g. a controller without a scale)."""


@dataclass
class Status:
    """The counters of a PodDisruptionBudgetStatus the controller owns."""

    expected_pods: int
    desired_healthy: int
    current_healthy: int
    disruptions_allowed: int
    disrupted_pods: dict[str, str] = field(default_factory=dict)
    recheck_after_s: float | None = None  # when a disrupted pod's 2-minute window ends


def _controller_ref(pod: dict[str, Any]) -> dict[str, Any] | None:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller") is True:
            return ref
    return None


def _ready(pod: dict[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def _parse_time(text: Any) -> datetime | None:
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def selected_pods(pdb: dict[str, Any], pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pods of the PDB's namespace its selector matches (an unreadable selector: SyncFailed)."""
    ns = (pdb.get("metadata") or {}).get("namespace")
    try:
        sel = labels.parse((pdb.get("spec") or {}).get("selector"), "spec.selector")
    except labels.SelectorError as exc:
        raise SyncFailed(str(exc)) from None
    return [p for p in pods if (p.get("metadata") or {}).get("namespace") == ns
            and sel.matches((p.get("metadata") or {}).get("labels") or {})]


def expected_scale(pods: list[dict[str, Any]], scale_of: ScaleLookup) -> int:
    """Sum of the scales of the pods' controllers (one per pod without a controller)."""
    scales: dict[str, int] = {}
    unmanaged = 0
    for pod in pods:
        ref = _controller_ref(pod)
        if ref is None:
            unmanaged += 1
            continue
        uid = str(ref.get("uid") or "")
        if uid in scales:
            continue
        scale = scale_of(str((pod.get("metadata") or {}).get("namespace") or ""), ref)
        if scale is None:
            raise SyncFailed(f"found no controllers for pod {show((pod.get('metadata') or {}).get('name'))}")
        scales[uid] = scale
    return sum(scales.values()) + unmanaged


def _scaled(value: int | str, total: int) -> int:
    """GetScaledValueFromIntOrPercent with rounding up."""
    if isinstance(value, int):
        return value
    return math.ceil(int(value[:-1]) * total / 100)


def compute_status(pdb: dict[str, Any], pods: list[dict[str, Any]], scale_of: ScaleLookup,
                   now: datetime) -> Status:
    """The status counters for `pdb` given its namespace's pods (raises SyncFailed)."""
    spec = pdb.get("spec") or {}
    matched = selected_pods(pdb, pods)
    expected = desired = 0
    if spec.get("maxUnavailable") is not None:
        expected = expected_scale(matched, scale_of)
        desired = max(0, expected - _scaled(spec["maxUnavailable"], expected))
    elif isinstance(spec.get("minAvailable"), int):
        desired, expected = spec["minAvailable"], len(matched)
    elif spec.get("minAvailable") is not None:
        expected = expected_scale(matched, scale_of)
        desired = _scaled(spec["minAvailable"], expected)
    disrupted, recheck = _disrupted(pdb, matched, now)
    healthy = sum(1 for p in matched if not (p.get("metadata") or {}).get("deletionTimestamp")
                  and (p.get("metadata") or {}).get("name") not in disrupted and _ready(p))
    allowed = healthy - desired if expected > 0 else 0
    return Status(expected, desired, healthy, max(allowed, 0), disrupted, recheck)


def _disrupted(pdb: dict[str, Any], pods: list[dict[str, Any]], now: datetime) -> tuple[dict[str, str], float | None]:
    """buildDisruptedPodMap: entries for live pods still inside their deletion window."""
    listed = (pdb.get("status") or {}).get("disruptedPods") or {}
    kept: dict[str, str] = {}
    recheck: float | None = None
    for pod in pods:
        meta = pod.get("metadata") or {}
        when = _parse_time(listed.get(meta.get("name"))) if meta.get("name") in listed else None
        if when is None or meta.get("deletionTimestamp"):
            continue
        left = (when + DELETION_TIMEOUT - now).total_seconds()
        if left > 0:
            kept[meta["name"]] = listed[meta["name"]]
            recheck = left if recheck is None else min(recheck, left)
    return kept, recheck


def status_body(pdb: dict[str, Any], status: Status | None, failure: str, now_text: str) -> dict[str, Any]:
    """The PodDisruptionBudgetStatus to write: counters (kept as they were on failure) and the condition."""
    old = pdb.get("status") or {}
    generation = (pdb.get("metadata") or {}).get("generation", 1)
    if status is None:
        body = {k: v for k, v in old.items() if k != "conditions"}
        body["disruptionsAllowed"] = 0
        observed = old.get("observedGeneration", 0)
        cond = {"type": CONDITION, "status": "False", "reason": "SyncFailed", "message": failure}
    else:
        body = {"observedGeneration": generation, "disruptionsAllowed": status.disruptions_allowed,
                "currentHealthy": status.current_healthy, "desiredHealthy": status.desired_healthy,
                "expectedPods": status.expected_pods}
        if status.disrupted_pods:
            body["disruptedPods"] = status.disrupted_pods
        observed = generation
        allowed = status.disruptions_allowed > 0
        cond = {"type": CONDITION, "status": "True" if allowed else "False",
                "reason": "SufficientPods" if allowed else "InsufficientPods", "message": ""}
    cond["observedGeneration"] = observed
    conds = [c for c in old.get("conditions") or [] if isinstance(c, dict)]
    previous = next((c for c in conds if c.get("type") == CONDITION), None)
    cond["lastTransitionTime"] = (previous.get("lastTransitionTime") if previous is not None
                                  and previous.get("status") == cond["status"] else now_text)
    body["conditions"] = [cond if c is previous else c for c in conds] if previous is not None else conds + [cond]
    return body
