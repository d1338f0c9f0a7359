"""Object metadata on writes: which fields the server sets and owns, as kube-apiserver does.

A create fills in uid, creationTimestamp and generation and drops what clients may not set; an
update keeps the server-owned fields of the stored object whatever the body says, bumps
`generation` only when the spec changed, and forbids new finalizers on an object being deleted.
Clients (the official client, kubectl, controllers that read-modify-write) rely on these rules,
e.g. a PUT of a stale copy must not resurrect a deletionTimestamp or reset the uid.

These are pure functions of the request and the stored object; the store (`store.py`) calls them
under its lock and owns resourceVersions, history and indexes.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from driver.local import errors, strategy
from driver.local.resources import Resource

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_CLIENT_MAY_NOT_SET = ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink")
_KEPT_ON_UPDATE = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                   "resourceVersion", "namespace", "name", "generation")


def now_rfc3339(offset_s: float = 0) -> str:
    """The apiserver's timestamp format: seconds precision, UTC, `Z`."""
    return (datetime.now(timezone.utc) + timedelta(seconds=offset_s)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta_of(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj.metadata`, or {} when a client sent none or something that is not an object."""
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def create_body_meta(res: Resource, ns: str, obj: Any) -> dict[str, Any]:
    """Check a create body against the URL and set its type; returns its metadata (made if absent)."""
    if not isinstance(obj, dict):
        raise errors.bad_request("the request body must be a JSON object")
    obj.setdefault("apiVersion", res.api_version)
    obj["kind"] = res.kind
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = obj["metadata"] = {}
    if res.namespaced:
        if meta.get("namespace") not in (None, "", ns):
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request")
        meta["namespace"] = ns
    else:
        meta.pop("namespace", None)
    return meta


def generated_name(prefix: str, taken: Callable[[str], bool], rand: random.Random) -> str:
    """`generateName`: the prefix plus five random characters, retried a few times on a clash.

    Like the apiserver, a name that is still taken after the retries is returned anyway and the
    create then fails with AlreadyExists, which clients retry.
    """
    for _ in range(16):
        name = prefix + "".join(rand.choice(_NAME_CHARS) for _ in range(5))
        if not taken(name):
            break
    return name


def stamp_created(meta: dict[str, Any]) -> None:
    """Replace whatever the client sent for server-owned fields with a new object's values."""
    for drop in _CLIENT_MAY_NOT_SET:
        meta.pop(drop, None)
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now_rfc3339()
    meta["generation"] = 1


def update_body_meta(res: Resource, ns: str, name: str, obj: Any) -> dict[str, Any]:
    """Check a replace (PUT) body against the URL; returns its metadata (made if absent)."""
    if not isinstance(obj, dict):
        raise errors.bad_request("the request body must be a JSON object")
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = obj["metadata"] = {}
    if meta.get("name") not in (None, name):
        raise errors.bad_request(
            f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
    if res.namespaced and meta.get("namespace") not in (None, "", ns):
        raise errors.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request")
    return meta


def merge_update(res: Resource, old: dict[str, Any], obj: dict[str, Any], subresource: str) -> dict[str, Any]:
    """The object to store: server-owned metadata from `old`, the rest from `obj`."""
    old_meta = old["metadata"]
    if subresource == "status":
        new = copy.deepcopy(old)
        if "status" in obj:
            new["status"] = obj["status"]
        else:
            new.pop("status", None)
        return new
    new = dict(obj)
    new["apiVersion"] = old.get("apiVersion", res.api_version)
    new["kind"] = res.kind
    meta = dict(obj["metadata"])
    for keep in _KEPT_ON_UPDATE:
        if keep in old_meta:
            meta[keep] = old_meta[keep]
        else:
            meta.pop(keep, None)
    if old_meta.get("deletionTimestamp"):
        added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
        if added:
            raise errors.invalid(res.kind, old_meta["name"], [(
                "metadata.finalizers",
                f"Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {sorted(added)}",
            )], res.group)
    new["metadata"] = meta
    if res.has_status:
        if "status" in old:
            new["status"] = old["status"]
        else:
            new.pop("status", None)
    if strategy.spec_of(new) != strategy.spec_of(old):
        meta["generation"] = int(old_meta.get("generation", 1)) + 1
    return new


def drop_carried_rv(patched_meta: dict[str, Any], current_rv: str, body: Any) -> None:
    """After a patch, remove a resourceVersion that only came over from the current object: only
    one the patch body itself names is a precondition of the update that follows."""
    if patched_meta.get("resourceVersion") == current_rv and not _patch_sets_rv(body):
        patched_meta.pop("resourceVersion", None)


def _patch_sets_rv(body: Any) -> bool:
    """Whether a patch body itself names a resourceVersion (then it is a precondition)."""
    if isinstance(body, dict):
        return "resourceVersion" in meta_of(body)
    if isinstance(body, list):
        return any(isinstance(op, dict) and str(op.get("path", "")).startswith("/metadata/resourceVersion") for op in body)
    return False
