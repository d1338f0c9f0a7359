"""Per-device checks of a ResourceSlice: the one place that words a device's errors.

A device breaks the API server's rules in many small ways the OpenAPI schema cannot see: name
formats, attribute kinds and lengths, quantity strings, request policies, counter consumption,
taints. Each problem is reported with the JSON path of the field, because the publisher refuses a
slice with any error and the operator has to find the field. `validate.validate_slice` calls
`check_device` only for devices the fast check (`fastcheck.device_ok`) did not already accept, so
these messages are the only ones a user sees.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from typing import AbstractSet, Any

from driver.devices.apinames import is_dns_label, is_label_value, is_semver, label_key_error, qualified_name_error
from driver.dra.quantity import QuantityError, parse_quantity

DEVICE_KEYS = {"name", "attributes", "capacity", "consumesCounters", "taints", "allowMultipleAllocations",
               "nodeName", "nodeSelector", "allNodes", "bindsToNode", "bindingConditions", "bindingFailureConditions"}
MAX_STRING = 64
MAX_ATTRS_AND_CAPACITIES = 32


@lru_cache(maxsize=4096)
def parsed_quantity(text: str) -> Fraction | str:
    """The quantity `text` stands for, or why it is none (a string).

    Cached: a node's slices repeat the same few quantity strings thousands of times.
    """
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
    parsed = parsed_quantity(value)
    if isinstance(parsed, str):
        errors.append(f"{where}: {value!r} is not a quantity (expected e.g. '10Gi', '250m', '1.5', '1e3')")
        return None
    return parsed


def check_fields(obj: dict[str, Any], allowed: AbstractSet[str], where: str, errors: list[str]) -> None:
    """Append an error naming the fields of `obj` (at `where`) that are not in `allowed`."""
    unknown = set(obj) - allowed
    if unknown:
        errors.append(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")


def check_object(value: Any, allowed: AbstractSet[str], where: str, errors: list[str]) -> bool:
    """Whether `value` is an object (else an error says it must be); its unknown fields are reported."""
    if not isinstance(value, dict):
        errors.append(f"{where}: must be an object")
        return False
    check_fields(value, allowed, where, errors)
    return True


def check_policy(policy: Any, capacity: Fraction | None, where: str, errors: list[str]) -> None:
    """Append to `errors` what is wrong with a capacity's requestPolicy (`capacity` None: unknown)."""
    if not check_object(policy, {"default", "validValues", "validRange"}, where, errors):
        return
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
        if not check_object(vr, {"min", "max", "step"}, rw, errors):
            return
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
    check_fields(value, {"int", "bool", "string", "version"}, where, errors)
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


def check_device(dev: Any, where: str, driver: str, errors: list[str], version: tuple[int, int]) -> None:
    """Append to `errors` every rule device `dev` (at JSON path `where`) breaks under API `version`."""
    if not check_object(dev, DEVICE_KEYS, where, errors):
        return
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
        check_fields(cap, {"value", "requestPolicy"}, cw, errors)
        total = _quantity(cap["value"], f"{cw}.value", errors)
        if total is not None and total < 0:
            errors.append(f"{cw}.value: must not be negative")
        if "requestPolicy" in cap:
            if multi is not True:
                errors.append(f"{cw}.requestPolicy: only allowed when allowMultipleAllocations is true")
            check_policy(cap["requestPolicy"], total, f"{cw}.requestPolicy", errors)
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
        check_counters(c.get("counters"), f"{cw}.counters", errors)
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


def check_counters(counters: Any, where: str, errors: list[str]) -> int:
    """Append to `errors` what is wrong with a counters map; returns how many counters it has."""
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
