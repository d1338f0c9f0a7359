"""Server-side validation: object names and labels, and the resource.k8s.io/v1 rules (FACTS §4).

Every check returns (field path, message) pairs so the API server can answer one 422 that names
each offending field, the way kube-apiserver's field.ErrorList does. Names, label keys and values,
attribute names and versions are checked by the device model's helpers
(`driver.devices.apinames`), and ResourceSlices by `driver.devices.validate.validate_slice`, so that the driver and the
server agree on every rule; the checks here add claims, templates and classes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from driver.devices.apinames import (
    is_dns_label,
    is_dns_subdomain,
    is_label_value,
    label_key_error,
    qualified_name_error,
)
from driver.devices.validate import validate_slice

__all__ = ["Causes", "show", "is_dns_label", "is_dns_subdomain", "validate_metadata", "validate_claim_spec", "validate_dra",
           "unknown_fields", "validate_device_class"]

Causes = list[tuple[str, str]]
_FIELD_PATH = re.compile(r"^[A-Za-z]\S*$")

MAX_ITEMS = 32  # selectors, requests, constraints, configs
MAX_SUBREQUESTS = 8
MAX_OPAQUE_BYTES = 10 * 1024
MAX_CEL_BYTES = 10 * 1024
MAX_RESERVED_FOR = 256


def show(value: Any) -> str:
    """A value as field.Invalid renders it: strings quoted ("Never"), numbers bare, objects as JSON."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def validate_metadata(meta: dict[str, Any], dns_label: bool = False) -> Causes:
    """Name, labels and annotations, as ObjectMeta validation does."""
    causes: Causes = []
    name = meta.get("name")
    if not name:
        causes.append(("metadata.name", "Required value: name or generateName is required"))
    elif dns_label and not is_dns_label(name):
        causes.append(("metadata.name", f"Invalid value: {name!r}: a lowercase RFC 1123 label must consist of lower case "
                                        "alphanumeric characters or '-', and must start and end with an alphanumeric character"))
    elif not dns_label and not is_dns_subdomain(name):
        causes.append(("metadata.name", f"Invalid value: {name!r}: a lowercase RFC 1123 subdomain must consist of lower "
                                        "case alphanumeric characters, '-' or '.', and must start and end with an "
                                        "alphanumeric character"))
    labels = meta.get("labels")
    if labels is not None and not isinstance(labels, dict):
        causes.append(("metadata.labels", "Invalid value: expected a map of strings"))
    for key, value in (labels or {}).items() if isinstance(labels, dict) else ():
        why = label_key_error(key)
        if why:
            causes.append(("metadata.labels", f"Invalid value: {key!r}: {why}"))
        if not is_label_value(value):
            causes.append(("metadata.labels", f"Invalid value: {value!r}: a label value must be at most 63 characters, "
                                               "alphanumeric, '-', '_' or '.', starting and ending alphanumeric"))
    annotations = meta.get("annotations")
    if annotations is not None:
        if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
            causes.append(("metadata.annotations", "Invalid value: expected a map of strings"))
        elif sum(len(k) + len(v) for k, v in annotations.items()) > 256 * 1024:
            causes.append(("metadata.annotations", "Too long: must have at most 262144 bytes"))
    return causes


# --- ResourceSlice ---------------------------------------------------------------------------

def _slice(obj: dict[str, Any]) -> Causes:
    causes: Causes = []
    for message in validate_slice(obj):
        path, sep, rest = message.partition(": ")
        if sep and _FIELD_PATH.match(path):
            causes.append((path, rest))
        else:
            causes.append(("spec", message))
    return causes


# --- claims, templates, classes --------------------------------------------------------------

def _selectors(path: str, selectors: Any) -> Causes:
    if selectors is None:
        return []
    if not isinstance(selectors, list):
        return [(path, "Invalid value: expected a list")]
    causes: Causes = []
    if len(selectors) > MAX_ITEMS:
        causes.append((path, f"Too many: {len(selectors)}: must have at most {MAX_ITEMS} items"))
    for i, sel in enumerate(selectors):
        expr = sel.get("cel", {}).get("expression") if isinstance(sel, dict) and isinstance(sel.get("cel"), dict) else None
        if not isinstance(expr, str) or not expr.strip():
            causes.append((f"{path}[{i}].cel.expression", "Required value"))
        elif len(expr.encode()) > MAX_CEL_BYTES:
            causes.append((f"{path}[{i}].cel.expression", f"Too long: must have at most {MAX_CEL_BYTES} bytes"))
        else:
            why = _cel_compile_error(expr)
            if why:
                causes.append((f"{path}[{i}].cel.expression", f"Invalid value: {why}"))
    return causes


def _cel_compile_error(expr: str) -> str:
    try:
        from driver.dra.cel import compile_selector
    except ImportError:
        return ""
    try:
        compile_selector(expr)
    except ValueError as exc:
        return f"compilation failed: {exc}"
    return ""


def _configs(path: str, configs: Any, request_names: set[str] | None) -> Causes:
    if configs is None:
        return []
    if not isinstance(configs, list):
        return [(path, "Invalid value: expected a list")]
    causes: Causes = []
    if len(configs) > MAX_ITEMS:
        causes.append((path, f"Too many: {len(configs)}: must have at most {MAX_ITEMS} items"))
    for i, cfg in enumerate(configs):
        cpath = f"{path}[{i}]"
        opaque = cfg.get("opaque") if isinstance(cfg, dict) else None
        if not isinstance(opaque, dict):
            causes.append((f"{cpath}.opaque", "Required value"))
            continue
        if not is_dns_subdomain(opaque.get("driver")):
            causes.append((f"{cpath}.opaque.driver", "Invalid value: must be a DNS subdomain"))
        params = opaque.get("parameters")
        if not isinstance(params, dict):
            causes.append((f"{cpath}.opaque.parameters", "Required value: an object"))
        elif len(json.dumps(params, separators=(",", ":"))) > MAX_OPAQUE_BYTES:
            causes.append((f"{cpath}.opaque.parameters", f"Too long: must have at most {MAX_OPAQUE_BYTES} bytes"))
        if request_names is not None:
            for j, req in enumerate(cfg.get("requests") or []):
                if req not in request_names:
                    causes.append((f"{cpath}.requests[{j}]", f"Invalid value: {req!r}: must be the name of a request in the claim"))
    return causes


def _exact(path: str, req: dict[str, Any]) -> Causes:
    causes: Causes = []
    if not is_dns_subdomain(req.get("deviceClassName")):
        causes.append((f"{path}.deviceClassName", "Required value: must be the name of a DeviceClass"))
    mode = req.get("allocationMode", "ExactCount")
    if mode not in ("ExactCount", "All"):
        causes.append((f"{path}.allocationMode", f"Unsupported value: {mode!r}: supported values: \"All\", \"ExactCount\""))
    count = req.get("count")
    if mode == "ExactCount" and count is not None and (not isinstance(count, int) or count <= 0):
        causes.append((f"{path}.count", f"Invalid value: {count!r}: must be greater than zero"))
    if mode == "All" and count not in (None, 0):
        causes.append((f"{path}.count", "Invalid value: must not be specified when allocationMode is All"))
    causes += _selectors(f"{path}.selectors", req.get("selectors"))
    return causes


def validate_claim_spec(path: str, spec: Any) -> Causes:
    """ResourceClaim.spec (also the spec of a template's claim)."""
    if spec is None:
        return []
    if not isinstance(spec, dict):
        return [(path, "Invalid value: expected an object")]
    devices = spec.get("devices") or {}
    if not isinstance(devices, dict):
        return [(f"{path}.devices", "Invalid value: expected an object")]
    causes: Causes = []
    requests = devices.get("requests") or []
    if len(requests) > MAX_ITEMS:
        causes.append((f"{path}.devices.requests", f"Too many: {len(requests)}: must have at most {MAX_ITEMS} items"))
    names: set[str] = set()
    for i, req in enumerate(requests):
        rpath = f"{path}.devices.requests[{i}]"
        if not isinstance(req, dict):
            causes.append((rpath, "Invalid value: expected an object"))
            continue
        name = req.get("name")
        if not is_dns_label(name):
            causes.append((f"{rpath}.name", f"Invalid value: {name!r}: must be a DNS-1123 label"))
        elif name in names:
            causes.append((f"{rpath}.name", f"Duplicate value: {name!r}"))
        names.add(str(name))
        exactly, first = req.get("exactly"), req.get("firstAvailable")
        if (exactly is None) == (first is None):
            causes.append((rpath, "Invalid value: exactly one of `exactly` or `firstAvailable` is required"))
        elif exactly is not None:
            causes += _exact(f"{rpath}.exactly", exactly) if isinstance(exactly, dict) else [(f"{rpath}.exactly", "Invalid value: expected an object")]
        else:
            if not isinstance(first, list) or not first:
                causes.append((f"{rpath}.firstAvailable", "Required value: at least one subrequest"))
                continue
            if len(first) > MAX_SUBREQUESTS:
                causes.append((f"{rpath}.firstAvailable", f"Too many: {len(first)}: must have at most {MAX_SUBREQUESTS} items"))
            for j, sub in enumerate(first):
                spath = f"{rpath}.firstAvailable[{j}]"
                if not isinstance(sub, dict):
                    causes.append((spath, "Invalid value: expected an object"))
                    continue
                if not is_dns_label(sub.get("name")):
                    causes.append((f"{spath}.name", f"Invalid value: {sub.get('name')!r}: must be a DNS-1123 label"))
                else:
                    names.add(f"{name}/{sub['name']}")
                causes += _exact(spath, sub)
    constraints = devices.get("constraints") or []
    if len(constraints) > MAX_ITEMS:
        causes.append((f"{path}.devices.constraints", f"Too many: {len(constraints)}: must have at most {MAX_ITEMS} items"))
    for i, con in enumerate(constraints):
        cpath = f"{path}.devices.constraints[{i}]"
        if not isinstance(con, dict):
            causes.append((cpath, "Invalid value: expected an object"))
            continue
        kinds = [k for k in ("matchAttribute", "distinctAttribute") if con.get(k)]
        if len(kinds) != 1:
            causes.append((cpath, "Invalid value: exactly one of `matchAttribute` or `distinctAttribute` is required"))
        for k in kinds:
            why = qualified_name_error(con[k])
            if why or "/" not in con[k]:
                causes.append((f"{cpath}.{k}", f"Invalid value: {con[k]!r}: must be a fully qualified attribute name (<domain>/<name>)"))
        for j, req in enumerate(con.get("requests") or []):
            if req not in names:
                causes.append((f"{cpath}.requests[{j}]", f"Invalid value: {req!r}: must be the name of a request in the claim"))
    causes += _configs(f"{path}.devices.config", devices.get("config"), names)
    return causes


def _claim_status(status: Any, old_status: Any) -> Causes:
    if status is None:
        return []
    if not isinstance(status, dict):
        return [("status", "Invalid value: expected an object")]
    causes: Causes = []
    alloc = status.get("allocation")
    old_alloc = old_status.get("allocation") if isinstance(old_status, dict) else None
    if old_alloc is not None and alloc is not None and alloc != old_alloc:
        causes.append(("status.allocation", "Invalid value: field is immutable: an allocation can be set or cleared, never changed"))
    if isinstance(alloc, dict):
        results = (alloc.get("devices") or {}).get("results") or []
        for i, res in enumerate(results):
            rpath = f"status.allocation.devices.results[{i}]"
            if not isinstance(res, dict):
                causes.append((rpath, "Invalid value: expected an object"))
                continue
            for key in ("request", "driver", "pool", "device"):
                if not res.get(key):
                    causes.append((f"{rpath}.{key}", "Required value"))
            if res.get("device") and not is_dns_label(res["device"]):
                causes.append((f"{rpath}.device", f"Invalid value: {res['device']!r}: must be a DNS-1123 label"))
        causes += _configs("status.allocation.devices.config", (alloc.get("devices") or {}).get("config"), None)
    reserved = status.get("reservedFor") or []
    if not isinstance(reserved, list):
        return causes + [("status.reservedFor", "Invalid value: expected a list")]
    if reserved and alloc is None:
        causes.append(("status.reservedFor", "Forbidden: may not be specified when `allocation` is not set"))
    if len(reserved) > MAX_RESERVED_FOR:
        causes.append(("status.reservedFor", f"Too many: {len(reserved)}: must have at most {MAX_RESERVED_FOR} items"))
    uids: set[str] = set()
    for i, ref in enumerate(reserved):
        rpath = f"status.reservedFor[{i}]"
        if not isinstance(ref, dict):
            causes.append((rpath, "Invalid value: expected an object"))
            continue
        for key in ("resource", "name", "uid"):
            if not ref.get(key):
                causes.append((f"{rpath}.{key}", "Required value"))
        if ref.get("uid") in uids:
            causes.append((f"{rpath}.uid", f"Duplicate value: {ref.get('uid')!r}"))
        uids.add(str(ref.get("uid")))
    return causes


def validate_dra(kind: str, obj: dict[str, Any], old: dict[str, Any] | None) -> Causes:
    """Causes for a resource.k8s.io object of `kind` (`old` set on updates)."""
    if kind == "ResourceSlice":
        return _slice(obj)
    if kind == "ResourceClaim":
        causes = validate_claim_spec("spec", obj.get("spec"))
        if old is not None and obj.get("spec") != old.get("spec"):
            causes.append(("spec", "Invalid value: field is immutable"))
        return causes + _claim_status(obj.get("status"), (old or {}).get("status"))
    if kind == "ResourceClaimTemplate":
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [("spec", "Required value")]
        causes = validate_claim_spec("spec.spec", spec.get("spec"))
        if old is not None and spec != old.get("spec"):
            causes.append(("spec", "Invalid value: field is immutable"))
        return causes
    if kind == "DeviceClass":
        return validate_device_class(obj)
    return []


# --- DeviceClass ------------------------------------------------------------------------------
# DeviceClassSpec is small and closed (selectors, config, extendedResourceName), and a class that
# carries a field it does not have is a class that silently does not do what its author meant (a
# `driver:` or `parameters:` copied from a device-plugin era guide selects every device and applies
# no config). So every unknown field of a class is a cause of the same 422 as the semantic errors,
# all at once, and the usual mistakes say what to write instead.

OUR_DRIVER = "gpu.nvidia.com"
CONFIG_API_VERSION = "resource.nvidia.com/v1beta1"
_CLASS_SPEC = ("selectors", "config", "extendedResourceName")
_SELECTOR_KEYS = ("cel",)
_CEL_KEYS = ("expression",)
_CONFIG_KEYS = ("opaque",)
_OPAQUE_KEYS = ("driver", "parameters")
_SPEC_HINTS = {
    "driver": (f"DeviceClass has no driver field; select the driver with spec.selectors: "
               f"[{{cel: {{expression: \"device.driver == '{OUR_DRIVER}'\"}}}}] "
               f"(the driver is {OUR_DRIVER}, not nvidia.com/gpu)"),
    "parameters": (f"DeviceClass has no parameters field; use spec.config: [{{opaque: {{driver: {OUR_DRIVER}, "
                   f"parameters: {{apiVersion: {CONFIG_API_VERSION}, kind: GpuConfig, "
                   f"sharing: {{strategy: TimeSlicing, ...}}}}}}}}]; time-slice replicas come from the node's "
                   f"sharing mode and the class replica.{OUR_DRIVER}, not from a class parameter"),
}


def _unknown(path: str, obj: dict[str, Any], known: tuple[str, ...], what: str,
             hints: dict[str, str] | None = None) -> Causes:
    causes: Causes = []
    for key in obj:
        if key in known:
            continue
        hint = (hints or {}).get(key) or f"{what} has only {', '.join(known)}"
        causes.append((f"{path}.{key}", f"unknown field {show(f'{path}.{key}')}: {hint}"))
    return causes


def _class_shapes(spec: dict[str, Any]) -> Causes:
    """Unknown fields anywhere in a DeviceClassSpec (opaque parameters are free-form, not checked)."""
    causes = _unknown("spec", spec, _CLASS_SPEC, "DeviceClass.spec", _SPEC_HINTS)
    selectors = spec.get("selectors")
    for i, sel in enumerate(selectors if isinstance(selectors, list) else []):
        if not isinstance(sel, dict):
            continue
        hints = {"expression": "a selector is {cel: {expression: ...}}"} if "cel" not in sel else None
        causes += _unknown(f"spec.selectors[{i}]", sel, _SELECTOR_KEYS, "a selector", hints)
        if isinstance(sel.get("cel"), dict):
            causes += _unknown(f"spec.selectors[{i}].cel", sel["cel"], _CEL_KEYS, "cel")
    configs = spec.get("config")
    for i, cfg in enumerate(configs if isinstance(configs, list) else []):
        if not isinstance(cfg, dict):
            continue
        cpath = f"spec.config[{i}]"
        hints = {"requests": "a DeviceClass config applies to every request of the class; "
                             "`requests` belongs to a ResourceClaim's config"}
        if "opaque" not in cfg:
            hints.update({k: "a config is {opaque: {driver: ..., parameters: ...}}" for k in _OPAQUE_KEYS})
        causes += _unknown(cpath, cfg, _CONFIG_KEYS, "a config", hints)
        if isinstance(cfg.get("opaque"), dict):
            causes += _unknown(f"{cpath}.opaque", cfg["opaque"], _OPAQUE_KEYS, "opaque")
    return causes


def _our_config_kinds(configs: Any) -> Causes:
    """Opaque parameters for this driver must say which config they are (the driver decodes by kind)."""
    causes: Causes = []
    for i, cfg in enumerate(configs if isinstance(configs, list) else []):
        opaque = cfg.get("opaque") if isinstance(cfg, dict) else None
        if not isinstance(opaque, dict):
            continue
        driver, params = opaque.get("driver"), opaque.get("parameters")
        ppath = f"spec.config[{i}].opaque"
        if driver == "nvidia.com/gpu":
            causes.append((f"{ppath}.driver", f"Invalid value: {show(driver)}: the driver is {OUR_DRIVER}, "
                                              "not nvidia.com/gpu (that is the device plugin's resource name)"))
        if driver != OUR_DRIVER or not isinstance(params, dict):
            continue
        missing = [k for k in ("apiVersion", "kind") if not params.get(k)]
        if missing:
            causes.append((f"{ppath}.parameters", f"Required value: {' and '.join(missing)}: the parameters of "
                                                  f"{OUR_DRIVER} are a typed config, e.g. apiVersion: "
                                                  f"{CONFIG_API_VERSION}, kind: GpuConfig"))
    return causes


def validate_device_class(obj: dict[str, Any]) -> Causes:
    """Every cause a DeviceClass is refused for: unknown fields (with the fix for the usual ones),
    selectors that do not compile, malformed configs and extended resource names."""
    spec = obj.get("spec") or {}
    if not isinstance(spec, dict):
        return [("spec", "Invalid value: expected an object")]
    causes = _class_shapes(spec)
    causes += _selectors("spec.selectors", spec.get("selectors")) + _configs("spec.config", spec.get("config"), None)
    causes += _our_config_kinds(spec.get("config"))
    ext = spec.get("extendedResourceName")
    why = label_key_error(ext) if ext is not None else None
    if why:
        causes.append(("spec.extendedResourceName", f"Invalid value: {ext!r}: {why}"))
    return causes


# --- field validation (unknown fields) --------------------------------------------------------

_OBJECT_META = {"name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
                "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
                "ownerReferences", "finalizers", "managedFields"}
_TOP_LEVEL = {
    "ConfigMap": {"data", "binaryData", "immutable"},
    "Secret": {"data", "stringData", "type", "immutable"},
    "ServiceAccount": {"secrets", "imagePullSecrets", "automountServiceAccountToken"},
    "Event": {"involvedObject", "reason", "message", "source", "firstTimestamp", "lastTimestamp", "count", "type",
              "eventTime", "series", "action", "related", "reportingComponent", "reportingInstance"},
    "DeviceClass": {"spec"}, "ResourceClaimTemplate": {"spec"}, "ResourceSlice": {"spec"}, "Lease": {"spec"},
    "PriorityClass": {"value", "globalDefault", "description", "preemptionPolicy"},
    "StorageClass": {"provisioner", "parameters", "reclaimPolicy", "mountOptions", "allowVolumeExpansion",
                     "volumeBindingMode", "allowedTopologies"},
}


def unknown_fields(kind: str, obj: dict[str, Any]) -> list[str]:
    """Top-level and metadata fields the kind does not have (what `fieldValidation` reports).

    Only these two levels are checked: deeper schemas are not published by this server, and a
    typo at the top (`sepc:`) is the one that silently drops a whole spec.
    """
    allowed = {"apiVersion", "kind", "metadata"} | _TOP_LEVEL.get(kind, {"spec", "status"})
    found = [f'unknown field "{key}"' for key in obj if key not in allowed]
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        found += [f'unknown field "metadata.{key}"' for key in meta if key not in _OBJECT_META]
    return found
