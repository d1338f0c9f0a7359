"""The fast check of a ResourceSlice device: "certainly valid", or "look closer".

The API server validates every slice write and a node publishes up to 128 devices per slice that
repeat a few shapes, so wording errors for every device (`devicechecks.check_device`) is the slow
part of validation. `device_ok` is a strictly narrower check — exact types, cached answers for
repeated key sets, quantity strings, versions and request policies — that only ever says "certainly
valid"; a device it does not accept goes through `check_device`, which words the errors. So the
fast path can make a valid slice cheaper but never changes what is reported
(tests/devices/test_validate_fastpath.py holds it to that).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from driver.devices.apinames import is_dns_label, is_semver, qualified_name_error
from driver.devices.devicechecks import DEVICE_KEYS, MAX_ATTRS_AND_CAPACITIES, MAX_STRING, check_policy, parsed_quantity

_INT_MIN, _INT_MAX = -(2**63), 2**63


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
    parsed = parsed_quantity(text)
    return not isinstance(parsed, str) and parsed >= 0


@lru_cache(maxsize=1024)
def _semver_cached(text: str) -> bool:
    return is_semver(text)


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
    """`check_policy` (the one implementation) on the policy `key` was made from, remembered."""
    cap, default, has_default, values, has_values, rng, has_range = key
    policy: dict[str, Any] = {}
    if has_default:
        policy["default"] = default
    if has_values:
        policy["validValues"] = list(values)
    if has_range:
        policy["validRange"] = {k: v for k, v in zip(("min", "max", "step"), rng) if v is not None}
    capacity = parsed_quantity(cap)
    errors: list[str] = []
    check_policy(policy, None if isinstance(capacity, str) else capacity, "requestPolicy", errors)
    return not errors


def device_ok(dev: Any, driver: str, version: tuple[int, int]) -> bool:
    """True only when `check_device` would report nothing; False means "look closer", not "invalid"."""
    if type(dev) is not dict or not dev.keys() <= DEVICE_KEYS or not is_dns_label(dev.get("name")):
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
