"""Server-side validation of ResourceSlices, before publishing.

The OpenAPI schema (kubernetes-validate) checks shapes and types; the API server additionally
enforces limits the schema cannot express: how many devices per slice, attribute key formats and
value lengths, one value per attribute, strict semver, DNS-label names, counter limits and
consumable-capacity request policies. A slice that breaks one of these is rejected whole at
publish time, taking every device of the node off the market — so the publisher runs this first
and refuses to publish. Messages name the field by its JSON path.

`validate_slice` checks one slice; `validate_pool` adds the checks that need every slice of a
pool (unique device names, counter-set references, `resourceSliceCount`).

Speed: the API server runs this on every slice write and a node publishes up to 128 devices per
slice that repeat a few shapes. Each device first goes through `_device_ok`, a strictly narrower
check (exact types, cached answers for repeated key sets, quantity strings and versions) that
says only "certainly valid"; anything it does not accept goes through `_check_device`, the one
place that words the errors. So the fast path can make a valid slice cheaper but never changes
what is reported.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from typing import Any

from driver.devices.apinames import (  # noqa: F401 - is_semver, label_key_error: re-exported
    _SEMVER, is_dns_label, is_dns_subdomain, is_label_value, is_semver, label_key_error, qualified_name_error,
)
from driver.dra.quantity import QuantityError, parse_quantity

VERSIONS = ("1.34", "1.35", "1.36", "1.37")
_DEVICE_KEYS = {"name", "attributes", "capacity", "consumesCounters", "taints", "allowMultipleAllocations",
                "nodeName", "nodeSelector", "allNodes", "bindsToNode", "bindingConditions", "bindingFailureConditions"}
_SPEC_KEYS = {"driver", "pool", "nodeName", "nodeSelector", "allNodes", "perDeviceNodeSelection", "devices",
              "sharedCounters"}
MAX_STRING = 64
MAX_ATTRS_AND_CAPACITIES = 32


def _version_tuple(version: str) -> tuple[int, int]:
    parts = version.lstrip("v").split(".")
    return int(parts[0]), int(parts[1])


@lru_cache(maxsize=4096)
def _parsed(text: str) -> Fraction | str:
    """Parse cache: a node's slices repeat the same few quantity strings thousands of times."""
    try:
        return parse_quantity(text)
    except QuantityError as exc:
        return str(exc)


def _quantity(value: Any, where: str, errors: list[str]) -> Fraction | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        errors.append(f"{where}: expected a quantity string such as '10Gi', got {type(value).__name__}")
        return None
    parsed = _parsed(value)
    if isinstance(parsed, str):
        errors.append(f"{where}: {value!r} is not a quantity (expected e.g. '10Gi', '250m', '1.5', '1e3')")
        return None
    return parsed


def _check_policy(policy: Any, capacity: Fraction | None, where: str, errors: list[str]) -> None:
    if not isinstance(policy, dict):
        errors.append(f"{where}: must be an object")
        return
    unknown = set(policy) - {"default", "validValues", "validRange"}
    if unknown:
        errors.append(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    default = _quantity(policy["default"], f"{where}.default", errors) if "default" in policy else None
    if default is not None and default < 0:
        errors.append(f"{where}.default: must not be negative")
    if default is not None and capacity is not None and default > capacity:
        errors.append(f"{where}.default: {policy['default']} exceeds the capacity value")
    if "validValues" in policy and "validRange" in policy:
        errors.append(f"{where}: set at most one of validValues and validRange")
    if "validValues" in policy:
        vv = policy["validValues"]
        if not isinstance(vv, list) or not vv:
            errors.append(f"{where}.validValues: must be a non-empty list")
            return
        if len(vv) > 10:
            errors.append(f"{where}.validValues: at most 10 entries, got {len(vv)}")
        values = [_quantity(x, f"{where}.validValues[{k}]", errors) for k, x in enumerate(vv)]
        nums = [x for x in values if x is not None]
        if len(nums) == len(values):
            if any(b <= a for a, b in zip(nums, nums[1:])):
                errors.append(f"{where}.validValues: must be sorted ascending without duplicates")
            if capacity is not None and any(x > capacity for x in nums):
                errors.append(f"{where}.validValues: values must not exceed the capacity value")
            if default is None:
                errors.append(f"{where}.default: required when validValues is set")
            elif default not in nums:
                errors.append(f"{where}.default: {policy['default']} must be one of validValues")
    if "validRange" in policy:
        vr = policy["validRange"]
        rw = f"{where}.validRange"
        if not isinstance(vr, dict):
            errors.append(f"{rw}: must be an object")
            return
        unknown = set(vr) - {"min", "max", "step"}
        if unknown:
            errors.append(f"{rw}: unknown field(s) {', '.join(sorted(unknown))}")
        if "min" not in vr:
            errors.append(f"{rw}.min: required")
            return
        lo = _quantity(vr["min"], f"{rw}.min", errors)
        hi = _quantity(vr["max"], f"{rw}.max", errors) if "max" in vr else None
        step = _quantity(vr["step"], f"{rw}.step", errors) if "step" in vr else None
        if lo is None:
            return
        if lo < 0:
            errors.append(f"{rw}.min: must be >= 0")
        if capacity is not None and lo > capacity:
            errors.append(f"{rw}.min: exceeds the capacity value")
        if hi is not None:
            if hi < lo:
                errors.append(f"{rw}.max: must be >= min")
            if capacity is not None and hi > capacity:
                errors.append(f"{rw}.max: exceeds the capacity value")
        if default is None:
            errors.append(f"{where}.default: required when validRange is set")
        else:
            if default < lo:
                errors.append(f"{where}.default: must be >= validRange.min")
            if hi is not None and default > hi:
                errors.append(f"{where}.default: must be <= validRange.max")
        if step is not None:
            if step <= 0:
                errors.append(f"{rw}.step: must be > 0")
                return
            if capacity is not None and lo + step > capacity:
                errors.append(f"{rw}.step: min + step must not exceed the capacity value")
            if hi is not None and (hi - lo) % step != 0:
                errors.append(f"{rw}.max: must be min + a multiple of step")
            if default is not None and (default - lo) % step != 0:
                errors.append(f"{where}.default: must be min + a multiple of step")


def _check_attribute(key: str, value: Any, where: str, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append(f"{where}: must be an object with exactly one of int, bool, string, version")
        return
    kinds = [k for k in ("int", "bool", "string", "version") if value.get(k) is not None]
    unknown = set(value) - {"int", "bool", "string", "version"}
    if unknown:
        errors.append(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    if len(kinds) != 1:
        errors.append(f"{where}: exactly one of int, bool, string, version must be set, got {len(kinds)}")
        return
    kind = kinds[0]
    val = value[kind]
    if kind == "int" and (isinstance(val, bool) or not isinstance(val, int) or not -(2**63) <= val < 2**63):
        errors.append(f"{where}.int: must be a 64-bit integer")
    elif kind == "bool" and not isinstance(val, bool):
        errors.append(f"{where}.bool: must be true or false")
    elif kind in ("string", "version"):
        if not isinstance(val, str):
            errors.append(f"{where}.{kind}: must be a string")
        elif len(val) > MAX_STRING:
            errors.append(f"{where}.{kind}: {len(val)} characters, at most {MAX_STRING}")
        elif kind == "version" and not is_semver(val):
            errors.append(f"{where}.version: {val!r} is not a semantic version (e.g. 1.2.3)")


def _check_device(dev: Any, where: str, driver: str, errors: list[str], version: tuple[int, int]) -> None:
    if not isinstance(dev, dict):
        errors.append(f"{where}: must be an object")
        return
    unknown = set(dev) - _DEVICE_KEYS
    if unknown:
        errors.append(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    if not is_dns_label(dev.get("name")):
        errors.append(f"{where}.name: {dev.get('name')!r} is not a DNS label (lower-case alphanumerics and '-', <= 63)")
    attrs = dev.get("attributes") or {}
    caps = dev.get("capacity") or {}
    if not isinstance(attrs, dict) or not isinstance(caps, dict):
        errors.append(f"{where}: attributes and capacity must be maps")
        return
    if len(attrs) + len(caps) > MAX_ATTRS_AND_CAPACITIES:
        errors.append(f"{where}: {len(attrs)} attributes + {len(caps)} capacities, at most {MAX_ATTRS_AND_CAPACITIES} in total")
    seen: dict[str, str] = {}
    for section, entries in (("attributes", attrs), ("capacity", caps)):
        for key in entries:
            err = qualified_name_error(key)
            if err:
                errors.append(f"{where}.{section}[{key!r}]: {err}")
                continue
            full = key if "/" in key else f"{driver}/{key}"
            if full in seen and seen[full] == section:
                errors.append(f"{where}.{section}[{key!r}]: same name as {full!r} (a bare name is in the driver's domain)")
            seen[full] = section
    for key, value in attrs.items():
        _check_attribute(key, value, f"{where}.attributes[{key!r}]", errors)
    multi = dev.get("allowMultipleAllocations")
    if multi is not None and not isinstance(multi, bool):
        errors.append(f"{where}.allowMultipleAllocations: must be true or false")
    for key, cap in caps.items():
        cw = f"{where}.capacity[{key!r}]"
        if not isinstance(cap, dict) or "value" not in cap:
            errors.append(f"{cw}: must be an object with a value")
            continue
        unknown = set(cap) - {"value", "requestPolicy"}
        if unknown:
            errors.append(f"{cw}: unknown field(s) {', '.join(sorted(unknown))}")
        total = _quantity(cap["value"], f"{cw}.value", errors)
        if total is not None and total < 0:
            errors.append(f"{cw}.value: must not be negative")
        if "requestPolicy" in cap:
            if multi is not True:
                errors.append(f"{cw}.requestPolicy: only allowed when allowMultipleAllocations is true")
            _check_policy(cap["requestPolicy"], total, f"{cw}.requestPolicy", errors)
    consumes = dev.get("consumesCounters") or []
    if not isinstance(consumes, list):
        errors.append(f"{where}.consumesCounters: must be a list")
        consumes = []
    if version >= (1, 35) and len(consumes) > 2:
        errors.append(f"{where}.consumesCounters: at most 2 entries, got {len(consumes)}")
    sets_seen: set[str] = set()
    for k, c in enumerate(consumes):
        cw = f"{where}.consumesCounters[{k}]"
        if not isinstance(c, dict):
            errors.append(f"{cw}: must be an object")
            continue
        name = c.get("counterSet")
        if not is_dns_label(name):
            errors.append(f"{cw}.counterSet: {name!r} is not a DNS label")
        if isinstance(name, str):  # anything else was reported just above (and may not be hashable)
            if name in sets_seen:
                errors.append(f"{cw}.counterSet: {name!r} listed twice (one entry per counter set)")
            sets_seen.add(name)
        _check_counters(c.get("counters"), f"{cw}.counters", errors)
    taints = dev.get("taints") or []
    if not isinstance(taints, list):
        errors.append(f"{where}.taints: must be a list")
        taints = []
    max_taints = 16 if version >= (1, 35) else 4
    if len(taints) > max_taints:
        errors.append(f"{where}.taints: at most {max_taints}, got {len(taints)}")
    taint_keys: set[tuple[str, str]] = set()
    for k, t in enumerate(taints):
        tw = f"{where}.taints[{k}]"
        if not isinstance(t, dict):
            errors.append(f"{tw}: must be an object")
            continue
        err = label_key_error(t.get("key"))
        if err:
            errors.append(f"{tw}.key: {err}")
        value = t.get("value", "")
        if not is_label_value(value):
            errors.append(f"{tw}.value: {value!r} is not a label value (<= 63 alphanumerics, '-', '_', '.')")
        if t.get("effect") not in ("None", "NoSchedule", "NoExecute"):
            errors.append(f"{tw}.effect: expected None, NoSchedule or NoExecute, got {t.get('effect')!r}")
        pair = (str(t.get("key")), str(t.get("effect")))
        if pair in taint_keys:
            errors.append(f"{tw}: duplicate key and effect {pair}")
        taint_keys.add(pair)


def _check_counters(counters: Any, where: str, errors: list[str]) -> int:
    if not isinstance(counters, dict) or not counters:
        errors.append(f"{where}: must be a non-empty map")
        return 0
    if len(counters) > 32:
        errors.append(f"{where}: at most 32 counters, got {len(counters)}")
    for name, c in counters.items():
        if not is_dns_label(name):
            errors.append(f"{where}[{name!r}]: counter name is not a DNS label")
        if not isinstance(c, dict) or "value" not in c or set(c) - {"value"}:
            errors.append(f"{where}[{name!r}]: must be an object with only a value")
            continue
        q = _quantity(c["value"], f"{where}[{name!r}].value", errors)
        if q is not None and q < 0:
            errors.append(f"{where}[{name!r}].value: must not be negative")
    return len(counters)


_INT_MIN, _INT_MAX = -(2**63), 2**63
_ATTR_KINDS = ("int", "bool", "string", "version")


@lru_cache(maxsize=1024)
def _keys_ok(attr_keys: tuple[str, ...], cap_keys: tuple[str, ...], driver: str) -> bool:
    """Attribute and capacity names valid and not repeated (bare name = driver's domain) within a section."""
    for keys in (attr_keys, cap_keys):
        full = set()
        for key in keys:
            if qualified_name_error(key) is not None:
                return False
            full.add(key if "/" in key else f"{driver}/{key}")
        if len(full) != len(keys):
            return False
    return True


@lru_cache(maxsize=4096)
def _nonnegative_quantity(text: str) -> bool:
    parsed = _parsed(text)
    return not isinstance(parsed, str) and parsed >= 0


@lru_cache(maxsize=1024)
def _semver_cached(text: str) -> bool:
    return bool(_SEMVER.match(text))


@lru_cache(maxsize=4096)
def _label_cached(name: str) -> bool:
    """is_dns_label for names that repeat on every device (counter and counter-set names)."""
    return is_dns_label(name)


def _counters_ok(counters: Any) -> bool:
    if type(counters) is not dict or not counters or len(counters) > 32:
        return False
    for name, c in counters.items():
        if type(name) is not str or not _label_cached(name) or type(c) is not dict or len(c) != 1:
            return False
        value = c.get("value")
        if type(value) is not str or not _nonnegative_quantity(value):
            return False
    return True


def _policy_key(cap: str, policy: Any) -> tuple[Any, ...] | None:
    """A hashable form of a requestPolicy whose every quantity is a string (else None: not cached)."""
    if type(policy) is not dict or not policy.keys() <= {"default", "validValues", "validRange"}:
        return None
    default = policy.get("default")
    if default is not None and type(default) is not str:
        return None
    values = policy.get("validValues")
    if "validValues" in policy:
        if type(values) is not list or not all(type(v) is str for v in values):
            return None
        values = tuple(values)
    rng = policy.get("validRange")
    if "validRange" in policy:
        if type(rng) is not dict or not rng.keys() <= {"min", "max", "step"} \
                or not all(type(v) is str for v in rng.values()):
            return None
        rng = (rng.get("min"), rng.get("max"), rng.get("step"))
    return cap, default, "default" in policy, values, "validValues" in policy, rng, "validRange" in policy


@lru_cache(maxsize=1024)
def _policy_ok(key: tuple[Any, ...]) -> bool:
    """`_check_policy` (the one implementation) on the policy `key` was made from, remembered."""
    cap, default, has_default, values, has_values, rng, has_range = key
    policy: dict[str, Any] = {}
    if has_default:
        policy["default"] = default
    if has_values:
        policy["validValues"] = list(values)
    if has_range:
        policy["validRange"] = {k: v for k, v in zip(("min", "max", "step"), rng) if v is not None}
    capacity = _parsed(cap)
    errors: list[str] = []
    _check_policy(policy, None if isinstance(capacity, str) else capacity, "requestPolicy", errors)
    return not errors


def _device_ok(dev: Any, driver: str, version: tuple[int, int]) -> bool:
    """True only when `_check_device` would report nothing; False means "look closer", not "invalid"."""
    if type(dev) is not dict or not dev.keys() <= _DEVICE_KEYS or not is_dns_label(dev.get("name")):
        return False
    attrs = dev.get("attributes") or {}
    caps = dev.get("capacity") or {}
    if type(attrs) is not dict or type(caps) is not dict or len(attrs) + len(caps) > MAX_ATTRS_AND_CAPACITIES:
        return False
    if not _keys_ok(tuple(attrs), tuple(caps), driver):
        return False
    for value in attrs.values():
        if type(value) is not dict or len(value) != 1:
            return False
        [(kind, val)] = value.items()
        if kind == "string":
            if type(val) is not str or len(val) > MAX_STRING:
                return False
        elif kind == "int":
            if type(val) is not int or not _INT_MIN <= val < _INT_MAX:
                return False
        elif kind == "bool":
            if type(val) is not bool:
                return False
        elif kind != "version" or type(val) is not str or len(val) > MAX_STRING or not _semver_cached(val):
            return False
    multi = dev.get("allowMultipleAllocations")
    if multi is not None and type(multi) is not bool:
        return False
    for cap in caps.values():
        if type(cap) is not dict:
            return False
        value = cap.get("value")
        if type(value) is not str or not _nonnegative_quantity(value):
            return False
        if len(cap) != 1:
            if len(cap) != 2 or multi is not True:
                return False
            key = _policy_key(value, cap.get("requestPolicy"))
            if key is None or not _policy_ok(key):
                return False
    consumes = dev.get("consumesCounters")
    if consumes:
        if type(consumes) is not list or (version >= (1, 35) and len(consumes) > 2):
            return False
        sets: set[str] = set()
        for c in consumes:
            if type(c) is not dict:
                return False
            name = c.get("counterSet")
            if type(name) is not str or not _label_cached(name) or name in sets or not _counters_ok(c.get("counters")):
                return False
            sets.add(name)
    return not dev.get("taints")


def validate_slice(obj: Any, version: str = "1.35") -> list[str]:
    """Problems the API server of Kubernetes `version` would reject `obj` for ([] = valid)."""
    if version.lstrip("v")[:4] not in VERSIONS:
        raise ValueError(f"version: expected one of {', '.join(VERSIONS)}, got {version!r}")
    ver = _version_tuple(version)
    errors: list[str] = []
    if not isinstance(obj, dict):
        return ["ResourceSlice: must be an object"]
    if obj.get("apiVersion") != "resource.k8s.io/v1":
        errors.append(f"apiVersion: expected resource.k8s.io/v1, got {obj.get('apiVersion')!r}")
    if obj.get("kind") != "ResourceSlice":
        errors.append(f"kind: expected ResourceSlice, got {obj.get('kind')!r}")
    meta = obj.get("metadata") or {}
    name = meta.get("name") if isinstance(meta, dict) else None
    if not is_dns_subdomain(name) and not meta.get("generateName"):
        errors.append(f"metadata.name: {name!r} is not a DNS subdomain (<= 253 characters)")
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return errors + ["spec: required object"]
    unknown = set(spec) - _SPEC_KEYS
    if unknown:
        errors.append(f"spec: unknown field(s) {', '.join(sorted(unknown))}")
    driver = spec.get("driver")
    if not is_dns_subdomain(driver, 63):
        errors.append(f"spec.driver: {driver!r} is not a DNS subdomain of at most 63 characters")
        driver = "invalid.driver"
    pool = spec.get("pool")
    if not isinstance(pool, dict):
        errors.append("spec.pool: required object")
    else:
        pname = pool.get("name")
        if not isinstance(pname, str) or not pname or len(pname) > 253 or not all(is_dns_subdomain(p) for p in pname.split("/")):
            errors.append(f"spec.pool.name: {pname!r} must be one or more DNS subdomains separated by '/', <= 253 characters")
        gen = pool.get("generation")
        if isinstance(gen, bool) or not isinstance(gen, int) or gen < 0:
            errors.append(f"spec.pool.generation: must be an integer >= 0, got {gen!r}")
        count = pool.get("resourceSliceCount")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            errors.append(f"spec.pool.resourceSliceCount: must be an integer >= 1, got {count!r}")
    selectors = [k for k in ("nodeName", "nodeSelector", "allNodes", "perDeviceNodeSelection") if spec.get(k) not in (None, False, "")]
    if len(selectors) != 1:
        errors.append(f"spec: exactly one of nodeName, nodeSelector, allNodes, perDeviceNodeSelection must be set, got {selectors or 'none'}")
    if spec.get("nodeName") and not is_dns_subdomain(spec["nodeName"]):
        errors.append(f"spec.nodeName: {spec['nodeName']!r} is not a DNS subdomain")
    devices = spec.get("devices") or []
    shared = spec.get("sharedCounters") or []
    if not isinstance(devices, list) or not isinstance(shared, list):
        return errors + ["spec.devices and spec.sharedCounters must be lists"]
    if ver >= (1, 35) and devices and shared:
        errors.append("spec: only one of devices and sharedCounters may be set (Kubernetes >= 1.35)")
    limited = any(isinstance(d, dict) and (d.get("consumesCounters") or d.get("taints")) for d in devices)
    limit = 64 if (limited and ver >= (1, 35)) else 128
    if len(devices) > limit:
        why = " (a device has counters or taints)" if limit == 64 else ""
        errors.append(f"spec.devices: {len(devices)} devices, at most {limit}{why}")
    names: set[str] = set()
    for k, dev in enumerate(devices):
        if not _device_ok(dev, driver, ver):
            _check_device(dev, f"spec.devices[{k}]", driver, errors, ver)
        n = dev.get("name") if isinstance(dev, dict) else None
        if not isinstance(n, str):
            continue  # reported by the device check
        if n in names:
            errors.append(f"spec.devices[{k}].name: duplicate device name {n!r}")
        names.add(n)
    if ver >= (1, 35) and len(shared) > 8:
        errors.append(f"spec.sharedCounters: at most 8 counter sets, got {len(shared)}")
    set_names: dict[str, set[str]] = {}
    total_counters = 0
    for k, cs in enumerate(shared):
        sw = f"spec.sharedCounters[{k}]"
        if not isinstance(cs, dict):
            errors.append(f"{sw}: must be an object")
            continue
        if set(cs) - {"name", "counters"}:
            errors.append(f"{sw}: unknown field(s) {', '.join(sorted(set(cs) - {'name', 'counters'}))}")
        if not is_dns_label(cs.get("name")):
            errors.append(f"{sw}.name: {cs.get('name')!r} is not a DNS label")
        cname = cs.get("name")
        if isinstance(cname, str) and cname in set_names:
            errors.append(f"{sw}.name: duplicate counter set {cname!r}")
        total_counters += _check_counters(cs.get("counters"), f"{sw}.counters", errors)
        if isinstance(cname, str):
            counters = cs.get("counters")
            set_names[cname] = set(counters) if isinstance(counters, dict) else set()
    if ver < (1, 35):
        if total_counters > 32:
            errors.append(f"spec.sharedCounters: {total_counters} counters over all sets, at most 32 (Kubernetes 1.34)")
        consumptions = 0
        for k, dev in enumerate(devices):
            consumes = dev.get("consumesCounters") if isinstance(dev, dict) else None
            for j, c in enumerate(consumes if isinstance(consumes, list) else []):
                if not isinstance(c, dict) or isinstance(c.get("counterSet"), (list, dict)):
                    continue  # malformed (and unhashable): reported by the device check
                counters = c.get("counters") or {}
                if not isinstance(counters, dict):
                    counters = {}  # reported by the device check
                consumptions += len(counters)
                cset = c.get("counterSet")
                if cset not in set_names:
                    errors.append(f"spec.devices[{k}].consumesCounters[{j}].counterSet: {cset!r} is not defined in this slice (Kubernetes 1.34)")
                else:
                    missing = sorted(set(counters) - set_names[cset])
                    if missing:
                        errors.append(f"spec.devices[{k}].consumesCounters[{j}].counters: {', '.join(missing)} not in counter set {cset!r}")
        if consumptions > 1024:
            errors.append(f"spec.devices: {consumptions} counter consumptions in the slice, at most 1024 (Kubernetes 1.34)")
    return errors


def validate_pool(slices: list[dict[str, Any]], version: str = "1.35") -> list[str]:
    """`validate_slice` for each slice plus the checks across one pool's slices."""
    errors: list[str] = []
    for k, obj in enumerate(slices):
        errors.extend(f"slice {k} ({(obj.get('metadata') or {}).get('name')}): {e}" for e in validate_slice(obj, version))
    if errors:
        return errors
    names: set[str] = set()
    devices: set[str] = set()
    sets: dict[str, dict[str, Fraction]] = {}
    pools = {(s["spec"]["driver"], s["spec"]["pool"]["name"], s["spec"]["pool"]["generation"], s["spec"]["pool"]["resourceSliceCount"]) for s in slices}
    if len(pools) > 1:
        errors.append(f"pool: slices disagree on driver/pool/generation/resourceSliceCount: {sorted(pools)}")
    elif pools and next(iter(pools))[3] != len(slices):
        errors.append(f"pool: resourceSliceCount is {next(iter(pools))[3]} but {len(slices)} slices were given")
    for s in slices:
        n = s["metadata"].get("name")
        if n in names:
            errors.append(f"metadata.name: duplicate slice name {n!r}")
        names.add(n)
        for cs in s["spec"].get("sharedCounters") or []:
            if cs["name"] in sets:
                errors.append(f"sharedCounters: counter set {cs['name']!r} defined twice in the pool")
            sets[cs["name"]] = {k: _parsed(str(v["value"])) for k, v in cs["counters"].items()}
    for s in slices:
        for d in s["spec"].get("devices") or []:
            if d["name"] in devices:
                errors.append(f"devices: device {d['name']!r} published twice in the pool")
            devices.add(d["name"])
            for c in d.get("consumesCounters") or []:
                if c["counterSet"] not in sets:
                    errors.append(f"device {d['name']}: consumes unknown counter set {c['counterSet']!r}")
                    continue
                for cn, cv in c["counters"].items():
                    if cn not in sets[c["counterSet"]]:
                        errors.append(f"device {d['name']}: counter {cn!r} not in set {c['counterSet']!r}")
                    elif _parsed(str(cv["value"])) > sets[c["counterSet"]][cn]:
                        errors.append(f"device {d['name']}: consumes {cv['value']} of {cn!r}, more than the set has")
    return errors
