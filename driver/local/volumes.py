"""core/v1 PersistentVolumes and PersistentVolumeClaims, storage.k8s.io/v1 StorageClasses.

Defaults, validation and the DefaultStorageClass admission rule as kube-apiserver applies them
(pkg/apis/core/validation, pkg/apis/storage/validation, plugin/pkg/admission/storage), so that a
volume-aware scheduler meets the same objects here as on a cluster: a class's
`volumeBindingMode` defaults to Immediate and, like its provisioner, parameters and reclaim
policy, never changes; a claim that names no class gets the default one; new volumes and claims
start `Pending`. Which volume a claim binds to is the volume controller's business
(`volumebinding.py`), not the API server's.
"""

from __future__ import annotations

from typing import Any

from driver.devices.apinames import is_dns_subdomain, label_key_error
from driver.dra.quantity import parse_quantity
from driver.local.quantities import QUANTITY_PATTERN, canonical, canonicalize_key
from driver.local.validation import Causes, show

ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
_MODE_SHORT = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}
VOLUME_MODES = ("Block", "Filesystem")
PV_RECLAIM = ("Delete", "Recycle", "Retain")
SC_RECLAIM = ("Delete", "Retain")
BINDING_MODES = ("Immediate", "WaitForFirstConsumer")
DEFAULT_CLASS_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                             "storageclass.beta.kubernetes.io/is-default-class")
BETA_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
# The volume sources a PersistentVolumeSpec may carry (exactly one).
PV_SOURCES = ("gcePersistentDisk", "awsElasticBlockStore", "hostPath", "glusterfs", "nfs", "rbd", "iscsi",
              "cinder", "cephfs", "fc", "flocker", "flexVolume", "azureFile", "vsphereVolume", "quobyte",
              "azureDisk", "photonPersistentDisk", "portworxVolume", "scaleIO", "local", "storageos", "csi")
_MAX_PARAMETERS = 512
_MAX_PARAMETER_BYTES = 256 * 1024


def _supported(values: tuple[str, ...]) -> str:
    return ", ".join(f'"{v}"' for v in values)


def access_modes_text(modes: Any) -> str:
    """kubectl's short access modes (RWO,ROX,RWX,RWOP), in that order."""
    present = set(modes or [])
    return ",".join(short for mode, short in _MODE_SHORT.items() if mode in present)


def pv_class(pv: dict[str, Any]) -> str:
    annotations = (pv.get("metadata") or {}).get("annotations") or {}
    if BETA_CLASS_ANNOTATION in annotations:
        return str(annotations[BETA_CLASS_ANNOTATION])
    return str((pv.get("spec") or {}).get("storageClassName") or "")


def is_default_class(sc: dict[str, Any]) -> bool:
    annotations = (sc.get("metadata") or {}).get("annotations") or {}
    return any(annotations.get(key) == "true" for key in DEFAULT_CLASS_ANNOTATIONS)


def default_class_name(classes: list[dict[str, Any]]) -> str | None:
    """GetDefaultClass: among classes annotated default, the newest (then the first by name)."""
    defaults = [c for c in classes if is_default_class(c)]
    if not defaults:
        return None
    defaults.sort(key=lambda c: c["metadata"]["name"])
    defaults.sort(key=lambda c: c["metadata"].get("creationTimestamp") or "", reverse=True)
    return str(defaults[0]["metadata"]["name"])


# --- defaults ---------------------------------------------------------------------------------

def _now() -> str:
    from driver.local.objectmeta import now_rfc3339  # objectmeta imports strategy, which imports this

    return now_rfc3339()


def prepare_create(key: str, obj: dict[str, Any]) -> None:
    """Defaults and the reset status of a new PV, PVC or StorageClass (in place)."""
    spec = obj.get("spec")
    if key == "persistentvolumes":
        if isinstance(spec, dict):
            spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
            spec.setdefault("volumeMode", "Filesystem")
        obj["status"] = {"phase": "Pending", "lastPhaseTransitionTime": _now()}
    elif key == "persistentvolumeclaims":
        if isinstance(spec, dict):
            spec.setdefault("volumeMode", "Filesystem")
        obj["status"] = {"phase": "Pending"}
    elif key == "storage.k8s.io/storageclasses":
        obj.setdefault("reclaimPolicy", "Delete")
        obj.setdefault("volumeBindingMode", "Immediate")


def prepare_update(key: str, new: dict[str, Any], old: dict[str, Any]) -> None:
    """A PV whose phase changes gets a new lastPhaseTransitionTime."""
    if key != "persistentvolumes":
        return
    status, old_status = new.get("status"), old.get("status") or {}
    if isinstance(status, dict) and status.get("phase") != old_status.get("phase") and \
            status.get("lastPhaseTransitionTime") in (None, old_status.get("lastPhaseTransitionTime")):
        status["lastPhaseTransitionTime"] = _now()


def canonicalize(key: str, obj: dict[str, Any]) -> None:
    """Canonical quantities in capacities and requests (in place; QuantityError on a bad one)."""
    spec, status = obj.get("spec"), obj.get("status")
    if key == "persistentvolumes" and isinstance(spec, dict):
        canonicalize_key(spec, "capacity", "spec.capacity")
    if key == "persistentvolumeclaims":
        res = spec.get("resources") if isinstance(spec, dict) else None
        if isinstance(res, dict):
            for part in ("requests", "limits"):
                canonicalize_key(res, part, f"spec.resources.{part}")
        if isinstance(status, dict):
            for part in ("capacity", "allocatedResources"):
                canonicalize_key(status, part, f"status.{part}")


# --- validation -------------------------------------------------------------------------------

def _access_modes(path: str, modes: Any) -> Causes:
    if not isinstance(modes, list) or not modes:
        return [(path, "Required value")]
    causes: Causes = []
    for mode in modes:
        if mode not in ACCESS_MODES:
            causes.append((path, f"Unsupported value: {show(mode)}: supported values: {_supported(ACCESS_MODES)}"))
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        causes.append((path, "Forbidden: may not use ReadWriteOncePod with other access modes"))
    return causes


def _class_name(path: str, name: Any) -> Causes:
    if name in (None, ""):
        return []
    if not is_dns_subdomain(name):
        return [(path, f"Invalid value: {show(name)}: a lowercase RFC 1123 subdomain must consist of lower case "
                       "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")]
    return []


def _volume_mode(path: str, mode: Any) -> Causes:
    if mode is not None and mode not in VOLUME_MODES:
        return [(path, f"Unsupported value: {show(mode)}: supported values: {_supported(VOLUME_MODES)}")]
    return []


def _quantity(path: str, value: Any, positive: bool) -> Causes:
    try:
        amount = parse_quantity(canonical(value, path))
    except ValueError:
        return [(path, f"Invalid value: {show(value)}: quantities must match the regular expression "
                       f"'{QUANTITY_PATTERN}'")]
    if amount < 0 or (positive and amount == 0):
        word = "greater than zero" if positive else "greater than or equal to 0"
        return [(path, f"Invalid value: {show(value)}: must be {word}")]
    return []


def _node_affinity(path: str, affinity: Any) -> Causes:
    if affinity is None:
        return []
    required = affinity.get("required") if isinstance(affinity, dict) else None
    if not isinstance(required, dict):
        return [(f"{path}.required", "Required value: must specify required node constraints")]
    terms = required.get("nodeSelectorTerms")
    if not isinstance(terms, list) or not terms:
        return [(f"{path}.required.nodeSelectorTerms", "Required value: must have at least one node selector term")]
    return []


def _validate_pv(pv: dict[str, Any], old: dict[str, Any] | None) -> Causes:
    spec = pv.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    causes = _access_modes("spec.accessModes", spec.get("accessModes"))
    capacity = spec.get("capacity")
    if not isinstance(capacity, dict) or not capacity:
        causes.append(("spec.capacity", "Required value"))
    elif set(capacity) != {"storage"}:
        causes.append(("spec.capacity", f"Unsupported value: {show(capacity)}: supported values: \"storage\""))
    else:
        causes += _quantity("spec.capacity[storage]", capacity["storage"], positive=False)
    sources = [s for s in PV_SOURCES if spec.get(s) is not None]
    if not sources:
        causes.append(("spec", "Required value: must specify a volume type"))
    for extra in sources[1:]:
        causes.append((f"spec.{extra}", "Forbidden: may not specify more than 1 volume type"))
    for source in ("hostPath", "local"):
        if isinstance(spec.get(source), dict) and not spec[source].get("path"):
            causes.append((f"spec.{source}.path", "Required value"))
    if spec.get("csi") is not None and not (isinstance(spec["csi"], dict) and spec["csi"].get("driver")):
        causes.append(("spec.csi.driver", "Required value"))
    if spec.get("local") is not None and spec.get("nodeAffinity") is None:
        causes.append(("spec.nodeAffinity", "Required value: Local volume requires node affinity"))
    policy = spec.get("persistentVolumeReclaimPolicy")
    if policy not in PV_RECLAIM:
        causes.append(("spec.persistentVolumeReclaimPolicy",
                       f"Unsupported value: {show(policy)}: supported values: {_supported(PV_RECLAIM)}"))
    causes += _class_name("spec.storageClassName", spec.get("storageClassName"))
    causes += _volume_mode("spec.volumeMode", spec.get("volumeMode"))
    causes += _node_affinity("spec.nodeAffinity", spec.get("nodeAffinity"))
    claim_ref = spec.get("claimRef")
    if claim_ref is not None and not (isinstance(claim_ref, dict) and claim_ref.get("name")):
        causes.append(("spec.claimRef.name", "Required value"))
    if old is not None:
        old_spec = old.get("spec") or {}
        if [spec.get(s) for s in PV_SOURCES] != [old_spec.get(s) for s in PV_SOURCES]:
            causes.append(("spec.persistentvolumesource", "Forbidden: spec.persistentvolumesource is forbidden"))
        if spec.get("volumeMode") != old_spec.get("volumeMode"):
            causes.append(("spec.volumeMode", f"Invalid value: {show(spec.get('volumeMode'))}: field is immutable"))
        if old_spec.get("nodeAffinity") is not None and spec.get("nodeAffinity") != old_spec["nodeAffinity"]:
            causes.append(("spec.nodeAffinity", "Invalid value: field is immutable"))
    return causes


_PVC_MUTABLE = ("resources", "volumeAttributesClassName")
_PVC_IMMUTABLE = "Forbidden: spec is immutable after creation except resources.requests and " \
                 "volumeAttributesClassName for bound claims"


def _validate_pvc(pvc: dict[str, Any], old: dict[str, Any] | None) -> Causes:
    from driver.local.policy import validate_selector

    spec = pvc.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    causes = _access_modes("spec.accessModes", spec.get("accessModes"))
    requests = (spec.get("resources") or {}).get("requests") if isinstance(spec.get("resources"), dict) else None
    if not isinstance(requests, dict) or "storage" not in requests:
        causes.append(("spec.resources[storage]", "Required value"))
    else:
        causes += _quantity("spec.resources[storage]", requests["storage"], positive=True)
    causes += _class_name("spec.storageClassName", spec.get("storageClassName"))
    causes += _volume_mode("spec.volumeMode", spec.get("volumeMode"))
    causes += validate_selector("spec.selector", spec.get("selector"))
    if old is not None:
        new_spec, old_spec = dict(spec), dict(old.get("spec") or {})
        for key in _PVC_MUTABLE:
            new_spec.pop(key, None)
            old_spec.pop(key, None)
        if not old_spec.get("volumeName"):  # binding sets the volume once
            new_spec.pop("volumeName", None)
            old_spec.pop("volumeName", None)
        if old_spec.get("storageClassName") is None:  # a default class may be set later
            new_spec.pop("storageClassName", None)
            old_spec.pop("storageClassName", None)
        if new_spec != old_spec:
            causes.append(("spec", _PVC_IMMUTABLE))
    return causes


def _validate_storage_class(sc: dict[str, Any], old: dict[str, Any] | None) -> Causes:
    causes: Causes = []
    provisioner = sc.get("provisioner")
    if not provisioner:
        causes.append(("provisioner", "Required value"))
    else:
        why = label_key_error(str(provisioner).lower())
        if why:
            causes.append(("provisioner", f"Invalid value: {show(provisioner)}: {why}"))
    params = sc.get("parameters")
    if params is not None:
        if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
            causes.append(("parameters", "Invalid value: expected a map of strings"))
        elif len(params) > _MAX_PARAMETERS:
            causes.append(("parameters", f"Too long: may not be more than {_MAX_PARAMETERS} items"))
        elif sum(len(k) + len(v) for k, v in params.items()) > _MAX_PARAMETER_BYTES:
            causes.append(("parameters", f"Too long: may not be more than {_MAX_PARAMETER_BYTES} bytes"))
        elif "" in params:
            causes.append(("parameters", "Invalid value: \"\": field can not be empty."))
    policy = sc.get("reclaimPolicy")
    if policy not in SC_RECLAIM:
        causes.append(("reclaimPolicy", f"Unsupported value: {show(policy)}: supported values: {_supported(SC_RECLAIM)}"))
    mode = sc.get("volumeBindingMode")
    if mode is None:
        causes.append(("volumeBindingMode", "Required value"))
    elif mode not in BINDING_MODES:
        causes.append(("volumeBindingMode", f"Unsupported value: {show(mode)}: supported values: "
                                            f"{_supported(BINDING_MODES)}"))
    expand = sc.get("allowVolumeExpansion")
    if expand is not None and not isinstance(expand, bool):
        causes.append(("allowVolumeExpansion", f"Invalid value: {show(expand)}: must be a boolean"))
    if old is not None:
        if (sc.get("parameters") or {}) != (old.get("parameters") or {}):
            causes.append(("parameters", "Forbidden: updates to parameters are forbidden."))
        if provisioner != old.get("provisioner"):
            causes.append(("provisioner", "Forbidden: updates to provisioner are forbidden."))
        if policy != old.get("reclaimPolicy"):
            causes.append(("reclaimPolicy", "Forbidden: updates to reclaimPolicy are forbidden."))
        if mode != old.get("volumeBindingMode"):
            causes.append(("volumeBindingMode", f"Invalid value: {show(mode)}: field is immutable"))
    return causes


def validate(key: str, obj: dict[str, Any], old: dict[str, Any] | None) -> Causes:
    """Causes for a PV, PVC or StorageClass (`old` on updates); metadata is checked by the caller."""
    if key == "persistentvolumes":
        return _validate_pv(obj, old)
    if key == "persistentvolumeclaims":
        return _validate_pvc(obj, old)
    if key == "storage.k8s.io/storageclasses":
        return _validate_storage_class(obj, old)
    return []


__all__ = ["ACCESS_MODES", "BINDING_MODES", "access_modes_text", "pv_class", "is_default_class", "default_class_name",
           "prepare_create", "prepare_update", "canonicalize", "validate"]
