"""Per-type rules the apiserver applies on create/update/delete: defaults, status resets, validation.

Kept apart from the store so that the store is only about storage semantics and this file only
about what each kind means (pods get a phase and a grace period, claims start without status,
pod specs are immutable, ...).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from driver.local import errors, podspec, policy, scheduling, validation, volumes
from driver.local.quantities import QuantityError, canonicalize_key
from driver.local.resources import Resource

Causes = list[tuple[str, str]]

_VOLUME_KEYS = ("persistentvolumes", "persistentvolumeclaims", "storage.k8s.io/storageclasses")
_TEMPLATED = ("apps/deployments", "apps/replicasets", "batch/jobs")


def spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    """Everything generation tracks: the object minus metadata, status and type info."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _qos(spec: dict[str, Any]) -> str:
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    any_set, guaranteed = False, bool(containers)
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        any_set = any_set or bool(req) or bool(lim)
        for name in ("cpu", "memory"):
            if name not in lim or req.get(name, lim[name]) != lim[name]:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def prepare_create(res: Resource, obj: dict[str, Any]) -> None:
    """Defaults and status resets of a new object (in place; the store owns `obj`)."""
    normalize(res, obj)
    if res.key == "pods":
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            spec.setdefault("schedulerName", "default-scheduler")
            spec.setdefault("restartPolicy", "Always")
            spec.setdefault("terminationGracePeriodSeconds", 30)
            spec.setdefault("dnsPolicy", "ClusterFirst")
            for c in spec.get("containers") or []:
                if isinstance(c, dict) and isinstance(c.get("image"), str):
                    latest = ":" not in c["image"].rsplit("/", 1)[-1] or c["image"].endswith(":latest")
                    c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
            podspec.default_requests(spec)
            obj["status"] = {"phase": "Pending", "qosClass": _qos(spec)}
            if spec.get("nodeName"):
                set_condition(obj, "PodScheduled", "True")
            podspec.gated_condition(obj)
    elif res.key == "resource.k8s.io/resourceclaims":
        obj.pop("status", None)
    elif res.key in ("apps/deployments", "apps/replicasets"):
        spec = obj.get("spec")
        if isinstance(spec, dict):
            spec.setdefault("replicas", 1)
        # ReplicaSetStatus.replicas has no omitempty: typed clients (the Python one) require it
        obj["status"] = {"replicas": 0} if res.key == "apps/replicasets" else {}
    elif res.key == "namespaces":
        obj["status"] = {"phase": "Active"}
        obj.setdefault("metadata", {}).setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"].get("name", "")
    elif res.key == "batch/jobs":
        _default_job(obj)
    elif res.key in _VOLUME_KEYS:
        volumes.prepare_create(res.key, obj)
    elif res.key == "scheduling.k8s.io/priorityclasses":
        scheduling.default(obj)
    elif res.key == "policy/poddisruptionbudgets":
        # PodDisruptionBudgetStatus counters have no omitempty: a new budget reads all zeros
        obj["status"] = {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}


def prepare_update(res: Resource, new: dict[str, Any], old: dict[str, Any]) -> None:
    """What the apiserver carries over from the stored object on an update (in place)."""
    if res.key == "pods":
        podspec.keep_priority(new, old)
    elif res.key in _VOLUME_KEYS:
        volumes.prepare_update(res.key, new, old)


def normalize(res: Resource, obj: dict[str, Any]) -> None:
    """What the apiserver does on every write of the kind (in place): quantities are rewritten in
    canonical form (400 for one that does not parse, as decoding fails upstream); a Secret's
    write-only `stringData` is merged into `data` (base64) and dropped, and its `type` defaults to
    Opaque."""
    try:
        _canonical_quantities(res, obj)
    except QuantityError as exc:
        raise errors.bad_request(f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: '
                                 f"{exc}") from None
    if res.key != "secrets":
        return
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
        obj["data"] = {**data, **{k: base64.b64encode(str(v).encode()).decode() for k, v in string_data.items()}}
    if not obj.get("type"):
        obj["type"] = "Opaque"


def _canonical_quantities(res: Resource, obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    if res.key == "pods" and isinstance(spec, dict):
        podspec.canonicalize(spec)
    elif res.key in _TEMPLATED and isinstance(spec, dict):
        template = spec.get("template")
        if isinstance(template, dict) and isinstance(template.get("spec"), dict):
            podspec.canonicalize(template["spec"])
    elif res.key in _VOLUME_KEYS:
        volumes.canonicalize(res.key, obj)
    elif res.key == "nodes" and isinstance(obj.get("status"), dict):
        for key in ("capacity", "allocatable"):
            canonicalize_key(obj["status"], key, f"status.{key}")


_JOB_UID_LABELS = ("batch.kubernetes.io/controller-uid", "controller-uid")
_JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")


def _default_job(obj: dict[str, Any]) -> None:
    """batch/v1 Job defaults, and the selector the apiserver generates unless `manualSelector`."""
    spec = obj.get("spec")
    obj["status"] = {}
    if not isinstance(spec, dict):
        return
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    template = spec.get("template")
    if spec.get("manualSelector") is True or not isinstance(template, dict):
        return
    meta = obj["metadata"]
    spec["selector"] = {"matchLabels": {_JOB_UID_LABELS[0]: meta["uid"]}}
    tmeta = template.setdefault("metadata", {})
    if isinstance(tmeta, dict):
        labels = tmeta.setdefault("labels", {})
        if isinstance(labels, dict):
            labels.update({key: meta["uid"] for key in _JOB_UID_LABELS})
            labels.update({key: meta.get("name", "") for key in _JOB_NAME_LABELS})


def validate(res: Resource, obj: dict[str, Any], old: dict[str, Any] | None) -> Causes:
    """Field errors of `obj` (an update when `old` is given): an empty list means valid."""
    causes = validation.validate_metadata(obj.get("metadata") or {}, dns_label=res.key == "namespaces")
    if res.group == "resource.k8s.io":
        causes += validation.validate_dra(res.kind, obj, old)
    elif res.key == "pods":
        causes += podspec.validate(obj, old)
    elif res.key in _VOLUME_KEYS:
        causes += volumes.validate(res.key, obj, old)
    elif res.key == "scheduling.k8s.io/priorityclasses":
        causes += scheduling.validate(obj, old)
    elif res.key == "policy/poddisruptionbudgets":
        causes += policy.validate(obj, old)
    elif res.key in ("apps/deployments", "apps/replicasets"):
        causes += _validate_workload(obj)
    elif res.key == "batch/jobs":
        causes += _validate_job(obj)
    elif res.key == "secrets":
        causes += _validate_secret(obj)
    return causes


def _validate_secret(obj: dict[str, Any]) -> Causes:
    data = obj.get("data")
    if data is None:
        return []
    if not isinstance(data, dict):
        return [("data", "Invalid value: expected a map of base64 strings")]
    causes: Causes = []
    for key, value in data.items():
        try:
            base64.b64decode(value, validate=True)
        except (TypeError, ValueError, binascii.Error):
            causes.append((f"data[{key}]", f"Invalid value: {value!r}: must be base64-encoded"))
    return causes


def _validate_job(obj: dict[str, Any]) -> Causes:
    """Jobs: a pod template whose restartPolicy is Never or OnFailure, a selector matching it."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    causes: Causes = []
    for key in ("parallelism", "completions", "backoffLimit"):
        value = spec.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            causes.append((f"spec.{key}", f"Invalid value: {value!r}: must be greater than or equal to 0"))
    template = _template(spec)
    if template is None:
        return causes + [("spec.template", "Required value")]
    policy = template["spec"].get("restartPolicy")
    if policy not in ("Never", "OnFailure"):
        causes.append(("spec.template.spec.restartPolicy",
                       f"Unsupported value: {policy!r}: supported values: \"OnFailure\", \"Never\""))
    match = _match_labels(spec)
    if match is None:
        causes.append(("spec.selector", "Required value: matchLabels (or leave manualSelector unset)"))
    return causes + _validate_template(template, match)


def _validate_workload(obj: dict[str, Any]) -> Causes:
    """Deployments and ReplicaSets: a selector that selects the template's pods, a pod template."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    causes: Causes = []
    replicas = spec.get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        causes.append(("spec.replicas", f"Invalid value: {replicas!r}: must be greater than or equal to 0"))
    match = _match_labels(spec)
    if match is None:
        causes.append(("spec.selector", "Required value: matchLabels"))
    template = _template(spec)
    if template is None:
        return causes + [("spec.template", "Required value")]
    return causes + _validate_template(template, match)


def _match_labels(spec: dict[str, Any]) -> dict[str, Any] | None:
    """`spec.selector.matchLabels` of a workload, or None when absent, empty or not a map."""
    selector = spec.get("selector")
    match = selector.get("matchLabels") if isinstance(selector, dict) else None
    return match if isinstance(match, dict) and match else None


def _template(spec: dict[str, Any]) -> dict[str, Any] | None:
    """`spec.template` of a workload when it is an object with a `spec` object, else None."""
    template = spec.get("template")
    return template if isinstance(template, dict) and isinstance(template.get("spec"), dict) else None


def _validate_template(template: dict[str, Any], match: dict[str, Any] | None) -> Causes:
    """A workload's pod template: its labels selected by `match` (when there is one), its pod spec."""
    causes: Causes = []
    labels = (template.get("metadata") or {}).get("labels") or {}
    if match is not None and any(labels.get(k) != v for k, v in match.items()):
        causes.append(("spec.template.metadata.labels",
                       f"Invalid value: {labels!r}: `selector` does not match template `labels`"))
    return causes + [(f"spec.template.{f}", m) for f, m in podspec.validate_spec(template["spec"], template=True)]


def grace_period(res: Resource, obj: dict[str, Any], requested: int | None) -> int:
    """Seconds the object stays (with a deletionTimestamp) before it goes: pods only."""
    if res.key != "pods":
        return 0
    spec = obj.get("spec") or {}
    phase = (obj.get("status") or {}).get("phase")
    if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
        return 0  # nothing runs it: a kubelet would never finish it
    grace = int(requested if requested is not None else spec.get("terminationGracePeriodSeconds", 30))
    return 1 if grace < 0 else grace  # CheckGracefulDelete: a negative period means 1 second


def set_condition(obj: dict[str, Any], ctype: str, status: str, reason: str = "", message: str = "") -> None:
    """Set one entry of status.conditions (by type), stamping lastTransitionTime on change."""
    from driver.local.objectmeta import now_rfc3339

    conds = obj.setdefault("status", {}).setdefault("conditions", [])
    for c in conds:
        if c.get("type") == ctype:
            if c.get("status") != status:
                c["lastTransitionTime"] = now_rfc3339()
            c["status"] = status
            if reason:
                c["reason"] = reason
            if message:
                c["message"] = message
            return
    cond = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": now_rfc3339()}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    conds.append(cond)
