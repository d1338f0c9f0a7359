"""Server-side validation of ResourceSlices, before publishing.

The OpenAPI schema (kubernetes-validate) checks shapes and types; the API server additionally
enforces limits the schema cannot express: how many devices per slice, attribute key formats and
value lengths, one value per attribute, strict semver, DNS-label names, counter limits and
consumable-capacity request policies. A slice that breaks one of these is rejected whole at
publish time, taking every device of the node off the market — so the publisher runs this first
and refuses to publish. Messages name the field by its JSON path.

`validate_slice` checks one slice; `validate_pool` adds the checks that need every slice of a
pool (unique device names, counter-set references, `resourceSliceCount`). This module holds the
slice- and pool-level rules; the rules for one device live in `devicechecks` (the one place that
words a device's errors) and `fastcheck` (a cheaper "certainly valid" answer for the common case,
which never changes what is reported). Name rules are in `apinames`.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from driver.devices.apinames import is_dns_label, is_dns_subdomain
from driver.devices.devicechecks import check_counters, check_device, check_fields, check_object, parsed_quantity
from driver.devices.fastcheck import device_ok

VERSIONS = ("1.34", "1.35", "1.36", "1.37")
_SPEC_KEYS = {"driver", "pool", "nodeName", "nodeSelector", "allNodes", "perDeviceNodeSelection", "devices",
              "sharedCounters"}


def _version_tuple(version: str) -> tuple[int, int]:
    parts = version.lstrip("v").split(".")
    return int(parts[0]), int(parts[1])


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
    check_fields(spec, _SPEC_KEYS, "spec", errors)
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
        if not device_ok(dev, driver, ver):
            check_device(dev, f"spec.devices[{k}]", driver, errors, ver)
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
        if not check_object(cs, {"name", "counters"}, sw, errors):
            continue
        if not is_dns_label(cs.get("name")):
            errors.append(f"{sw}.name: {cs.get('name')!r} is not a DNS label")
        cname = cs.get("name")
        if isinstance(cname, str) and cname in set_names:
            errors.append(f"{sw}.name: duplicate counter set {cname!r}")
        total_counters += check_counters(cs.get("counters"), f"{sw}.counters", errors)
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
            sets[cs["name"]] = {k: parsed_quantity(str(v["value"])) for k, v in cs["counters"].items()}
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
                    elif parsed_quantity(str(cv["value"])) > sets[c["counterSet"]][cn]:
                        errors.append(f"device {d['name']}: consumes {cv['value']} of {cn!r}, more than the set has")
    return errors
