"""PersistentVolumeClaims, PersistentVolumes and StorageClasses, as the scheduler's snapshot sees
them: what the VolumeBinding plugin reads (plugins/volumebinding.py).

The controller's view feeds it from its watches (`set_pvc(key, obj)` with key "namespace/name",
`set_pv(name, obj)`, `set_storage_class(name, obj)`; None: gone) and the lead attaches it as
`ClusterState.volumes`. Objects are the API's wire dicts, kept as given.
"""

from __future__ import annotations

from typing import Any, Mapping


class VolumeIndex:
    """PVCs by "namespace/name", PVs and StorageClasses by name. Not thread-safe: the caller
    holds the state's lock, as for the rest of the snapshot."""

    def __init__(self) -> None:
        self.pvcs: dict[str, Mapping[str, Any]] = {}
        self.pvs: dict[str, Mapping[str, Any]] = {}
        self.storage_classes: dict[str, Mapping[str, Any]] = {}

    @staticmethod
    def _set(into: dict[str, Mapping[str, Any]], kind: str, name: str, obj: Mapping[str, Any] | None) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{kind}: expected a non-empty name, got {name!r}")
        if obj is None:
            into.pop(name, None)
        elif not isinstance(obj, Mapping):
            raise ValueError(f"{kind} {name}: expected an object, got {type(obj).__name__}")
        else:
            into[name] = obj

    def set_pvc(self, key: str, obj: Mapping[str, Any] | None) -> None:
        """Record (or, with None, forget) the PVC "namespace/name"."""
        if not isinstance(key, str) or key.count("/") != 1 or key.startswith("/") or key.endswith("/"):
            raise ValueError(f"persistentvolumeclaim: expected a 'namespace/name' key, got {key!r}")
        self._set(self.pvcs, "persistentvolumeclaim", key, obj)

    def set_pv(self, name: str, obj: Mapping[str, Any] | None) -> None:
        self._set(self.pvs, "persistentvolume", name, obj)

    def set_storage_class(self, name: str, obj: Mapping[str, Any] | None) -> None:
        self._set(self.storage_classes, "storageclass", name, obj)

    def pvc(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.pvcs.get(f"{namespace}/{name}")

    def pv(self, name: str) -> Mapping[str, Any] | None:
        return self.pvs.get(name)

    def storage_class(self, name: str) -> Mapping[str, Any] | None:
        return self.storage_classes.get(name)
