"""`validate_slice`'s fast path (`fastcheck.device_ok`) may only ever say "certainly valid".

Devices of every sharing mode are mutated at random — one field at a time, anywhere in the
device — and for each the fast answer is compared with the full check
(`devicechecks.check_device`, which words the errors): a device the fast path accepts must get no
error from the full check, and `validate_slice` must report exactly what the full check reports.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driver.devices import discover, load_node_config
from driver.devices.slices import build_slices
from driver.devices.devicechecks import check_device
from driver.devices.fastcheck import device_ok
from driver.devices.validate import validate_slice
from driver.nvml.mock import MockNvml, parse_node

MODES = ({"mode": "whole"}, {"mode": "dynamic", "replicas": 2}, {"mode": "timeslicing", "replicas": 3},
         {"mode": "fractional"}, {"mode": "mig"})
ODD_VALUES = [None, True, False, 0, -1, 2**63, 1.5, "", "x" * 65, "1.2.3", "01.2.3", "10Gi", "-1", "250m", "abc",
              "Not_A_Label", "a/b", "gpu.nvidia.com/x", [], [1], {}, {"value": "1"}, {"string": "s"},
              {"int": 1, "bool": True}, {"version": "1.0.0"}, {"value": "-5"}, {"value": 3},
              [{"key": "k", "effect": "Evict"}], [{"counterSet": f"s{i}", "counters": {"c": {"value": "1"}}} for i in range(3)]]


@lru_cache(maxsize=None)
def _devices() -> tuple[tuple[dict[str, Any], ...], ...]:
    plain = MockNvml(parse_node({"profile": "A100-SXM4-80GB", "gpuCount": 2}), "n")
    mig = MockNvml(parse_node({"profile": "A100-SXM4-80GB", "gpuCount": 2, "migConfig": "mixed-workload"}), "n")
    out = []
    for mode in MODES:
        inv = discover(mig if mode["mode"] == "mig" else plain, load_node_config({"sharing": mode}), "n")
        out.append(tuple(d for s in build_slices(inv, "n") for d in s["spec"].get("devices") or []))
    return tuple(out)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in `obj` a value sits (dict keys and list indexes), plus new keys in each dict."""
    found = [prefix] if prefix else []
    if isinstance(obj, dict):
        found += [prefix + ("newKey",), prefix + ("bad key!",)]
        if prefix in (("attributes",), ("capacity",)):  # the same name twice: bare and in the driver's domain
            found += [prefix + (f"gpu.nvidia.com/{k}",) for k in obj if "/" not in k][:1]
        if not prefix:  # device fields a generated device may lack
            found += [(k,) for k in ("taints", "consumesCounters", "allowMultipleAllocations") if k not in obj]
        for k, v in obj.items():
            found += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found += _paths(v, prefix + (i,))
    return found


def _set(obj: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        obj = obj[step]
    obj[path[-1]] = value


def _changed(dev: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A copy of `dev` with `value` at `path`; only the dicts and lists along the path are copied."""
    top = copy.copy(dev)
    obj = top
    for step in path[:-1]:
        obj[step] = copy.copy(obj[step])
        obj = obj[step]
    obj[path[-1]] = copy.deepcopy(value)
    return top


def _check(dev: dict[str, Any]) -> None:
    for version in ((1, 34), (1, 35)):
        errors: list[str] = []
        check_device(dev, "d", "gpu.nvidia.com", errors, version)
        if device_ok(dev, "gpu.nvidia.com", version):
            assert errors == [], f"fast path accepted {dev} but: {errors}"


def test_every_single_change_of_every_kind_of_device() -> None:
    for devices in _devices():
        one_per_type = {d["attributes"]["type"]["string"]: d for d in reversed(devices)}
        for original in one_per_type.values():
            for path in _paths(original):
                for value in ODD_VALUES:
                    _check(_changed(original, path, value))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_changes_anywhere_in_a_device(data: st.DataObject) -> None:
    devices = data.draw(st.sampled_from([d for d in _devices() if d]))
    dev = copy.deepcopy(data.draw(st.sampled_from(devices)))
    for _ in range(data.draw(st.integers(0, 2))):
        path = data.draw(st.sampled_from(_paths(dev)))
        _set(dev, path, copy.deepcopy(data.draw(st.sampled_from(ODD_VALUES))))
    _check(dev)


def test_validate_slice_reports_what_the_full_check_reports() -> None:
    for devices in _devices():
        for dev in devices[:3]:
            bad = copy.deepcopy(dev)
            bad["attributes"]["productName"] = {"string": "x" * 70}
            bad["capacity"]["memory"] = {"value": "-1"}
            expected: list[str] = []
            check_device(bad, "spec.devices[0]", "gpu.nvidia.com", expected, (1, 35))
            body = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice", "metadata": {"name": "s"},
                    "spec": {"driver": "gpu.nvidia.com", "nodeName": "n",
                             "pool": {"name": "n", "generation": 1, "resourceSliceCount": 1}, "devices": [bad]}}
            assert expected and validate_slice(body) == expected
            assert validate_slice({**body, "spec": {**body["spec"], "devices": [dev]}}) == []
