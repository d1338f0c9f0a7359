"""The `scale` subresource of Deployments and ReplicaSets (autoscaling/v1 Scale).

`kubectl scale` (and autoscalers) never write the parent object: they read and write a Scale view
of it — metadata of the parent, `spec.replicas`, `status.replicas` and the pod selector as a label
selector string. A write through it changes only the parent's `spec.replicas`; everything else about
the write (resourceVersion precondition, 409 on conflict, no-op writes keeping the version, the
watch event the workload controllers react to) is the parent's ordinary update in the store.
"""

from __future__ import annotations

import copy
from typing import Any

from driver.local import errors
from driver.local import patch as patches
from driver.local.objectmeta import drop_carried_rv, meta_of
from driver.local.resources import Resource
from driver.local.store import Store

API_VERSION = "autoscaling/v1"
KIND = "Scale"
_INT32_MAX = 2**31 - 1
_META_KEYS = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")


def selector_string(selector: Any) -> str:
    """A LabelSelector as the apiserver prints it: `k=v`, `k in (a,b)`, `k notin (a)`, `k`, `!k`."""
    if not isinstance(selector, dict):
        return ""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        if not isinstance(expr, dict):
            continue
        key, op, values = expr.get("key", ""), expr.get("operator"), ",".join(sorted(expr.get("values") or []))
        terms.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                      "Exists": key, "DoesNotExist": f"!{key}"}.get(op, f"{key} {op} ({values})"))
    return ",".join(terms)


def scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The Scale view of a stored Deployment or ReplicaSet."""
    meta = obj["metadata"]
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    scale_status: dict[str, Any] = {"replicas": int(status.get("replicas") or 0)}
    selector = selector_string(spec.get("selector"))
    if selector:
        scale_status["selector"] = selector
    return {"kind": KIND, "apiVersion": API_VERSION,
            "metadata": {k: meta[k] for k in _META_KEYS if k in meta},
            "spec": {"replicas": spec.get("replicas", 1)},
            "status": scale_status}


def _wanted(name: str, body: Any) -> tuple[int, str | None]:
    """(replicas, resourceVersion precondition or None) of a Scale body, or the 400/422 it earns."""
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be an autoscaling/v1 Scale object")
    if body.get("kind") not in (None, "", KIND):
        raise errors.bad_request(f"the kind of the object ({body['kind']}) does not match the URL (Scale)")
    if body.get("apiVersion") not in (None, "", API_VERSION):
        raise errors.bad_request(f"apiVersion: expected {API_VERSION} for a Scale, got {body['apiVersion']!r}")
    meta = body.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise errors.bad_request("metadata: expected an object")
    meta = meta or {}
    if meta.get("name") not in (None, "", name):
        raise errors.bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
    spec = body.get("spec")
    if spec is not None and not isinstance(spec, dict):
        raise errors.invalid(KIND, name, [("spec", f"Invalid value: {spec!r}: expected an object")], "autoscaling")
    # Go clients omit a zero `replicas` (omitempty), so an absent value means 0, as in the apiserver.
    replicas = (spec or {}).get("replicas", 0)
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        raise errors.invalid(KIND, name, [("spec.replicas", f"Invalid value: {replicas!r}: must be an integer")],
                             "autoscaling")
    if replicas < 0 or replicas > _INT32_MAX:
        raise errors.invalid(KIND, name, [(
            "spec.replicas",
            f"Invalid value: {replicas}: must be greater than or equal to 0" if replicas < 0
            else f"Invalid value: {replicas}: must be at most {_INT32_MAX}")], "autoscaling")
    rv = meta.get("resourceVersion")
    return replicas, (str(rv) if rv not in (None, "") else None)


def get(store: Store, res: Resource, ns: str, name: str) -> dict[str, Any]:
    return scale_of(store.get(res, ns, name))


def update(store: Store, res: Resource, ns: str, name: str, body: Any, dry_run: bool = False) -> dict[str, Any]:
    """PUT of a Scale: set the parent's spec.replicas (under the Scale's resourceVersion, if any)."""
    replicas, rv = _wanted(name, body)
    with store.cond:  # read and write as one step: no other writer in between
        parent = copy.deepcopy(store.get(res, ns, name))
        parent.setdefault("spec", {})["replicas"] = replicas
        if rv is None:
            parent["metadata"].pop("resourceVersion", None)
        else:  # the store's update checks it: 409 Conflict when stale
            parent["metadata"]["resourceVersion"] = rv
        return scale_of(store.update(res, ns, name, parent, "", dry_run))


def patch(store: Store, res: Resource, ns: str, name: str, content_type: str, body: Any,
          dry_run: bool = False) -> dict[str, Any]:
    """PATCH of a Scale (JSON, merge or strategic merge), applied to the current Scale view."""
    if body is None:
        raise errors.bad_request("a patch body is required")
    with store.cond:
        current = get(store, res, ns, name)
        patched = patches.apply(content_type, current, body)
        drop_carried_rv(meta_of(patched), current["metadata"]["resourceVersion"], body)
        return update(store, res, ns, name, patched, dry_run)
