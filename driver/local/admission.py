"""The admission plugins of kube-apiserver that need other objects than the one written.

Mutating plugins run on a create before validation: Priority resolves a new pod's priority from
PriorityClasses, DefaultStorageClass gives a claim without a class the default StorageClass.
Validating plugins run after validation: Priority allows one `globalDefault` PriorityClass.
Deletion of the system PriorityClasses is refused, as their registry does. Refusals are 403
Forbidden with upstream's messages. Every function runs under the store's lock (the store calls
them while it holds it), so what they read cannot change before the write commits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from driver.local import errors, scheduling, volumes
from driver.local.resources import Resource

if TYPE_CHECKING:
    from driver.local.store import Store

PRIORITY_CLASSES = "scheduling.k8s.io/priorityclasses"
STORAGE_CLASSES = "storage.k8s.io/storageclasses"


def _name(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _objects(store: "Store", key: str) -> list[dict[str, Any]]:
    return store.list_objects(store.resource(key))


def mutate_create(store: "Store", res: Resource, obj: dict[str, Any]) -> None:
    """Mutating admission of a new object (in place); ApiError 403 when a plugin refuses it."""
    spec = obj.get("spec")
    if res.key == "pods" and isinstance(spec, dict):
        classes = {_name(pc): pc for pc in _objects(store, PRIORITY_CLASSES)}
        try:
            resolved = scheduling.resolve(spec, classes)
        except scheduling.PriorityRefused as exc:
            raise errors.forbidden(res.plural, _name(obj), str(exc), res.group) from None
        scheduling.apply(spec, resolved)
    elif res.key == "persistentvolumeclaims" and isinstance(spec, dict) and spec.get("storageClassName") is None:
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if volumes.BETA_CLASS_ANNOTATION not in annotations:
            default = volumes.default_class_name(_objects(store, STORAGE_CLASSES))
            if default is not None:
                spec["storageClassName"] = default


def validate_write(store: "Store", res: Resource, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """Validating admission of a create (`old` None) or update; ApiError 403 when refused."""
    if res.key != PRIORITY_CLASSES:
        return
    others = [pc for pc in _objects(store, PRIORITY_CLASSES) if _name(pc) != _name(obj) or old is None]
    why = scheduling.second_default_error(obj, others, updating=old is not None)
    if why:
        raise errors.forbidden(res.plural, _name(obj), why, res.group)


def check_delete(res: Resource, obj: dict[str, Any]) -> None:
    """The system PriorityClasses cannot be deleted."""
    if res.key == PRIORITY_CLASSES and _name(obj) in scheduling.SYSTEM_CLASSES:
        raise errors.forbidden(res.plural, _name(obj), "this is a system priority class and cannot be deleted",
                               res.group)
