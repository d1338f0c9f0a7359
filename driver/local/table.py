"""Server-side printing (meta.k8s.io/v1 Table) so that `kubectl get` shows useful columns.

kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints the cells the server
computes; without this it falls back to NAME and AGE only. Columns follow kube-apiserver's
printers for the built-in types (pods: READY/STATUS/RESTARTS, claims: STATE, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from driver.local.volumes import BETA_CLASS_ANNOTATION, access_modes_text, is_default_class, pv_class

Column = tuple[str, str, int, Callable[[dict[str, Any]], Any]]  # name, type, priority, cell


def human_duration(seconds: float) -> str:
    """kubectl's short age format: 45s, 3m12s, 25m, 4h10m, 30h, 3d4h, 120d, 3y."""
    s = int(max(seconds, 0))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    return f"{d // 365}y"


def _age(obj: dict[str, Any]) -> str:
    ts = (obj.get("metadata") or {}).get("creationTimestamp")
    if not ts:
        return "<unknown>"
    created = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return human_duration((datetime.now(timezone.utc) - created).total_seconds())


def _name(obj: dict[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("name", "")


def _pod_ready(pod: dict[str, Any]) -> str:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    total = len((pod.get("spec") or {}).get("containers") or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _pod_status(pod: dict[str, Any]) -> str:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            return "SchedulingGated"
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            return str(waiting["reason"])
    return str(status.get("phase") or "Unknown")


def _readiness_gates(pod: dict[str, Any]) -> str:
    """kube-apiserver's READINESS GATES cell: "<true gates>/<gates>", or <none> when the pod names none.

    A gate counts when the first pod condition of its type has status "True"; a gate whose condition
    is missing counts as not passed.
    """
    gates = (pod.get("spec") or {}).get("readinessGates") or []
    if not gates:
        return "<none>"
    conditions = (pod.get("status") or {}).get("conditions") or []
    passed = 0
    for gate in gates:
        first = next((c for c in conditions if c.get("type") == gate.get("conditionType")), None)
        if first is not None and first.get("status") == "True":
            passed += 1
    return f"{passed}/{len(gates)}"


def _restarts(pod: dict[str, Any]) -> int:
    return sum(int(s.get("restartCount") or 0) for s in (pod.get("status") or {}).get("containerStatuses") or [])


def _node_status(node: dict[str, Any]) -> str:
    ready = next((c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)
    text = "Ready" if ready and ready.get("status") == "True" else "NotReady"
    if (node.get("spec") or {}).get("unschedulable"):
        text += ",SchedulingDisabled"
    return text


def _claim_state(claim: dict[str, Any]) -> str:
    status = claim.get("status") or {}
    states = []
    if (claim.get("metadata") or {}).get("deletionTimestamp"):
        states.append("deleted")
    states.append("allocated" if status.get("allocation") else "pending")
    if status.get("reservedFor"):
        states.append("reserved")
    return ",".join(states)


def _int_or_percent(value: Any) -> str:
    return "N/A" if value is None else str(value)


def _pv_claim(pv: dict[str, Any]) -> str:
    ref = (pv.get("spec") or {}).get("claimRef")
    return f"{ref.get('namespace', '')}/{ref.get('name', '')}" if isinstance(ref, dict) else ""


def _phase(obj: dict[str, Any]) -> str:
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    return str((obj.get("status") or {}).get("phase") or "")


def _pvc_class(pvc: dict[str, Any]) -> str:
    annotations = (pvc.get("metadata") or {}).get("annotations") or {}
    if BETA_CLASS_ANNOTATION in annotations:
        return str(annotations[BETA_CLASS_ANNOTATION])
    return str((pvc.get("spec") or {}).get("storageClassName") or "")


def _pvc_bound(pvc: dict[str, Any], what: str) -> str:
    """Capacity and access modes come from status, and only once the claim names its volume."""
    if not (pvc.get("spec") or {}).get("volumeName"):
        return ""
    status = pvc.get("status") or {}
    return access_modes_text(status.get("accessModes")) if what == "modes" else str((status.get("capacity") or {}).get("storage", ""))


def _sc_name(sc: dict[str, Any]) -> str:
    return _name(sc) + (" (default)" if is_default_class(sc) else "")


def _involved(ev: dict[str, Any]) -> str:
    ref = ev.get("involvedObject") or {}
    return f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"


_NAME: Column = ("Name", "string", 0, _name)
_AGE: Column = ("Age", "string", 0, _age)

COLUMNS: dict[str, list[Column]] = {
    "pods": [_NAME, ("Ready", "string", 0, _pod_ready), ("Status", "string", 0, _pod_status),
             ("Restarts", "integer", 0, _restarts), _AGE,
             ("IP", "string", 1, lambda p: (p.get("status") or {}).get("podIP") or "<none>"),
             ("Node", "string", 1, lambda p: (p.get("spec") or {}).get("nodeName") or "<none>"),
             ("Nominated Node", "string", 1, lambda p: (p.get("status") or {}).get("nominatedNodeName") or "<none>"),
             ("Readiness Gates", "string", 1, _readiness_gates)],
    "nodes": [_NAME, ("Status", "string", 0, _node_status), ("Roles", "string", 0, lambda n: "<none>"), _AGE,
              ("Version", "string", 0, lambda n: ((n.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", ""))],
    "namespaces": [_NAME, ("Status", "string", 0, lambda n: (n.get("status") or {}).get("phase", "")), _AGE],
    "resource.k8s.io/resourceclaims": [_NAME, ("State", "string", 0, _claim_state), _AGE],
    "resource.k8s.io/resourceslices": [
        _NAME, ("Node", "string", 0, lambda s: (s.get("spec") or {}).get("nodeName") or "<none>"),
        ("Driver", "string", 0, lambda s: (s.get("spec") or {}).get("driver", "")),
        ("Pool", "string", 0, lambda s: ((s.get("spec") or {}).get("pool") or {}).get("name", "")), _AGE,
        ("Devices", "integer", 1, lambda s: len((s.get("spec") or {}).get("devices") or []))],
    "apps/deployments": [
        _NAME, ("Ready", "string", 0, lambda d: f"{(d.get('status') or {}).get('readyReplicas', 0)}/{(d.get('spec') or {}).get('replicas', 0)}"),
        ("Up-to-date", "integer", 0, lambda d: (d.get("status") or {}).get("updatedReplicas", 0)),
        ("Available", "integer", 0, lambda d: (d.get("status") or {}).get("availableReplicas", 0)), _AGE],
    "apps/replicasets": [
        _NAME, ("Desired", "integer", 0, lambda r: (r.get("spec") or {}).get("replicas", 0)),
        ("Current", "integer", 0, lambda r: (r.get("status") or {}).get("replicas", 0)),
        ("Ready", "integer", 0, lambda r: (r.get("status") or {}).get("readyReplicas", 0)), _AGE],
    "batch/jobs": [
        _NAME, ("Completions", "string", 0,
                lambda j: f"{(j.get('status') or {}).get('succeeded', 0)}/{(j.get('spec') or {}).get('completions', 1)}"),
        _AGE],
    "secrets": [_NAME, ("Type", "string", 0, lambda s: s.get("type", "")),
                ("Data", "integer", 0, lambda s: len(s.get("data") or {})), _AGE],
    "serviceaccounts": [_NAME, ("Secrets", "integer", 0, lambda s: len(s.get("secrets") or [])), _AGE],
    "scheduling.k8s.io/priorityclasses": [
        _NAME, ("Value", "integer", 0, lambda c: int(c.get("value") or 0)),
        ("Global-Default", "boolean", 0, lambda c: bool(c.get("globalDefault"))), _AGE,
        ("PreemptionPolicy", "string", 0, lambda c: c.get("preemptionPolicy") or "")],
    "policy/poddisruptionbudgets": [
        _NAME, ("Min Available", "string", 0, lambda b: _int_or_percent((b.get("spec") or {}).get("minAvailable"))),
        ("Max Unavailable", "string", 0, lambda b: _int_or_percent((b.get("spec") or {}).get("maxUnavailable"))),
        ("Allowed Disruptions", "integer", 0, lambda b: int((b.get("status") or {}).get("disruptionsAllowed") or 0)),
        _AGE],
    "persistentvolumes": [
        _NAME, ("Capacity", "string", 0, lambda v: str(((v.get("spec") or {}).get("capacity") or {}).get("storage", ""))),
        ("Access Modes", "string", 0, lambda v: access_modes_text((v.get("spec") or {}).get("accessModes"))),
        ("Reclaim Policy", "string", 0, lambda v: (v.get("spec") or {}).get("persistentVolumeReclaimPolicy", "")),
        ("Status", "string", 0, _phase), ("Claim", "string", 0, _pv_claim), ("StorageClass", "string", 0, pv_class),
        ("VolumeAttributesClass", "string", 0, lambda v: (v.get("spec") or {}).get("volumeAttributesClassName") or "<unset>"),
        ("Reason", "string", 0, lambda v: (v.get("status") or {}).get("reason", "")), _AGE,
        ("VolumeMode", "string", 1, lambda v: (v.get("spec") or {}).get("volumeMode") or "<unset>")],
    "persistentvolumeclaims": [
        _NAME, ("Status", "string", 0, _phase), ("Volume", "string", 0, lambda c: (c.get("spec") or {}).get("volumeName", "")),
        ("Capacity", "string", 0, lambda c: _pvc_bound(c, "capacity")),
        ("Access Modes", "string", 0, lambda c: _pvc_bound(c, "modes")), ("StorageClass", "string", 0, _pvc_class),
        ("VolumeAttributesClass", "string", 0, lambda c: (c.get("spec") or {}).get("volumeAttributesClassName") or "<unset>"),
        _AGE, ("VolumeMode", "string", 1, lambda c: (c.get("spec") or {}).get("volumeMode") or "<unset>")],
    "storage.k8s.io/storageclasses": [
        ("Name", "string", 0, _sc_name), ("Provisioner", "string", 0, lambda c: c.get("provisioner", "")),
        ("ReclaimPolicy", "string", 0, lambda c: c.get("reclaimPolicy") or "Delete"),
        ("VolumeBindingMode", "string", 0, lambda c: c.get("volumeBindingMode") or "Immediate"),
        ("AllowVolumeExpansion", "string", 0, lambda c: bool(c.get("allowVolumeExpansion"))), _AGE],
    "events": [("Last Seen", "string", 0, _age), ("Type", "string", 0, lambda e: e.get("type", "")),
               ("Reason", "string", 0, lambda e: e.get("reason", "")), ("Object", "string", 0, _involved),
               ("Message", "string", 0, lambda e: e.get("message", ""))],
}


def wants_table(accept: str | None) -> bool:
    return bool(accept) and "as=Table" in accept and "g=meta.k8s.io" in accept


def _columns(resource_key: str) -> list[Column]:
    return COLUMNS.get(resource_key, [_NAME, _AGE])


def definitions(resource_key: str) -> list[dict[str, Any]]:
    return [{"name": name, "type": typ, "format": "name" if name == "Name" else "", "description": "", "priority": prio}
            for name, typ, prio, _ in _columns(resource_key)]


def row(resource_key: str, obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    return {"cells": [cell(obj) for _, _, _, cell in _columns(resource_key)],
            "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}}


def table(resource_key: str, objects: list[dict[str, Any]], meta: dict[str, Any], with_columns: bool = True) -> dict[str, Any]:
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
            "columnDefinitions": definitions(resource_key) if with_columns else [],
            "rows": [row(resource_key, o) for o in objects]}
