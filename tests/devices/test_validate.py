"""The package validator catches every server-side limit the schema cannot express."""

from __future__ import annotations

import copy

import pytest

from driver.devices.slices import build_slices
from driver.devices.apinames import qualified_name_error
from driver.devices.validate import validate_pool, validate_slice

from .helpers import inventory


@pytest.fixture(scope="module")
def base():
    inv = inventory("a100-80gb-mixed.yaml", {"mode": "fractional"})
    return build_slices(inv, "node-a", None, None, 1, "1.35")[0]


@pytest.fixture(scope="module")
def dynamic():
    inv = inventory("a100-80gb-x8.yaml", {"mode": "dynamic", "replicas": 2})
    return {v: build_slices(inv, "node-a", None, None, 1, v) for v in ("1.34", "1.35")}


def dev(obj):
    return obj["spec"]["devices"][0]


MUTATIONS = [
    ("device name not a DNS label", lambda o: dev(o).update(name="GPU_0"), "spec.devices[0].name: 'GPU_0' is not a DNS label"),
    ("duplicate device", lambda o: o["spec"]["devices"].append(copy.deepcopy(dev(o))), "duplicate device name 'gpu-0'"),
    ("attribute key too long", lambda o: dev(o)["attributes"].update({"a" * 33: {"int": 1}}), "longer than 32 characters"),
    ("attribute key not C identifier", lambda o: dev(o)["attributes"].update({"pci-bus": {"int": 1}}), "must be a C identifier"),
    ("bad attribute domain", lambda o: dev(o)["attributes"].update({"Bad_Domain/x": {"int": 1}}), "prefix 'Bad_Domain' must be a DNS subdomain"),
    ("two values", lambda o: dev(o)["attributes"].update(x={"int": 1, "string": "a"}), "exactly one of int, bool, string, version must be set, got 2"),
    ("no value", lambda o: dev(o)["attributes"].update(x={}), "got 0"),
    ("string too long", lambda o: dev(o)["attributes"].update(x={"string": "y" * 65}), "65 characters, at most 64"),
    ("bad semver", lambda o: dev(o)["attributes"].update(x={"version": "535.183.01"}), "'535.183.01' is not a semantic version"),
    ("bare and qualified duplicate", lambda o: dev(o)["attributes"].update({"gpu.nvidia.com/type": {"string": "x"}}), "same name as 'gpu.nvidia.com/type'"),
    ("too many attributes", lambda o: dev(o)["attributes"].update({f"a{i}": {"int": i} for i in range(25)}), "at most 32 in total"),
    ("bad quantity", lambda o: dev(o)["capacity"]["memory"].update(value="lots"), "'lots' is not a quantity"),
    ("policy without multi-allocation", lambda o: dev(o).pop("allowMultipleAllocations"), "only allowed when allowMultipleAllocations is true"),
    ("default outside range", lambda o: dev(o)["capacity"]["compute"]["requestPolicy"].update(default="2"), "must be <= validRange.max"),
    ("default off step", lambda o: dev(o)["capacity"]["compute"]["requestPolicy"].update(default="15m"), "must be min + a multiple of step"),
    ("range without default", lambda o: dev(o)["capacity"]["compute"]["requestPolicy"].pop("default"), "required when validRange is set"),
    ("max above capacity", lambda o: dev(o)["capacity"]["compute"]["requestPolicy"]["validRange"].update(max="2"), "max: exceeds the capacity value"),
    ("both policies", lambda o: dev(o)["capacity"]["compute"]["requestPolicy"].update(validValues=["1"]), "at most one of validValues and validRange"),
    ("too many valid values", lambda o: dev(o)["capacity"].update(compute={"value": "1", "requestPolicy": {"default": "1", "validValues": [f"{i}0m" for i in range(1, 11)] + ["1"]}}), "at most 10 entries"),
    ("unsorted valid values", lambda o: dev(o)["capacity"].update(compute={"value": "1", "requestPolicy": {"default": "1", "validValues": ["1", "500m"]}}), "sorted ascending"),
    ("default not a valid value", lambda o: dev(o)["capacity"].update(compute={"value": "1", "requestPolicy": {"default": "300m", "validValues": ["500m", "1"]}}), "must be one of validValues"),
    ("bad taint effect", lambda o: dev(o).update(taints=[{"key": "gpu.nvidia.com/xid", "value": "79", "effect": "PreferNoSchedule"}]), "expected None, NoSchedule or NoExecute"),
    ("bad taint value", lambda o: dev(o).update(taints=[{"key": "gpu.nvidia.com/xid", "value": "x y", "effect": "None"}]), "is not a label value"),
    ("too many taints", lambda o: dev(o).update(taints=[{"key": f"k{i}", "effect": "None"} for i in range(17)]), "taints: at most 16"),
    ("unknown device field", lambda o: dev(o).update(colour="red"), "unknown field(s) colour"),
    ("bad driver", lambda o: o["spec"].update(driver="GPU.nvidia.com"), "spec.driver: 'GPU.nvidia.com' is not a DNS subdomain"),
    ("two node selections", lambda o: o["spec"].update(allNodes=True), "exactly one of nodeName"),
    ("bad pool count", lambda o: o["spec"]["pool"].update(resourceSliceCount=0), "resourceSliceCount: must be an integer >= 1"),
    ("negative generation", lambda o: o["spec"]["pool"].update(generation=-1), "generation: must be an integer >= 0"),
    ("bad slice name", lambda o: o["metadata"].update(name="Node_A"), "metadata.name: 'Node_A' is not a DNS subdomain"),
    ("too many devices", lambda o: o["spec"].update(devices=[{"name": f"d-{i}"} for i in range(129)]), "129 devices, at most 128"),
    ("devices and counters together", lambda o: o["spec"].update(sharedCounters=[{"name": "s", "counters": {"c": {"value": "1"}}}]), "only one of devices and sharedCounters"),
]


@pytest.mark.parametrize("label, mutate, message", MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_each_limit_is_reported_with_its_field(base, label, mutate, message):
    assert validate_slice(base) == []
    broken = copy.deepcopy(base)
    mutate(broken)
    errors = validate_slice(broken)
    assert any(message in e for e in errors), errors


def test_counter_limits_135(dynamic):
    devices_slice = copy.deepcopy(dynamic["1.35"][0])
    devices_slice["spec"]["devices"].append({**copy.deepcopy(devices_slice["spec"]["devices"][1]), "name": "extra"})
    assert any("65 devices, at most 64 (a device has counters or taints)" in e for e in validate_slice(devices_slice))
    d = copy.deepcopy(dynamic["1.35"][0])
    entry = d["spec"]["devices"][0]["consumesCounters"][0]
    d["spec"]["devices"][0]["consumesCounters"] = [entry, {**entry, "counterSet": "b"}, {**entry, "counterSet": "c"}]
    assert any("consumesCounters: at most 2 entries" in e for e in validate_slice(d))
    d["spec"]["devices"][0]["consumesCounters"] = [entry, entry]
    assert any("listed twice" in e for e in validate_slice(d))
    counters_slice = copy.deepcopy(dynamic["1.35"][-1])
    sets = counters_slice["spec"]["sharedCounters"]
    sets.append({**copy.deepcopy(sets[0]), "name": "gpu-9-counter-set"})
    assert any("at most 8 counter sets" in e for e in validate_slice(counters_slice))
    sets[0]["counters"].update({f"c{i}": {"value": "1"} for i in range(20)})
    assert any("at most 32 counters" in e for e in validate_slice(counters_slice))
    sets[1]["counters"]["Memory_Slice"] = {"value": "1"}
    assert any("counter name is not a DNS label" in e for e in validate_slice(counters_slice))


def test_counter_rules_134(dynamic):
    first = dynamic["1.34"][0]
    assert "sharedCounters" in first["spec"] and "devices" in first["spec"]
    assert validate_slice(first, "1.34") == []
    assert any("only one of devices and sharedCounters" in e for e in validate_slice(first, "1.35"))
    d = copy.deepcopy(first)
    d["spec"]["sharedCounters"] = d["spec"]["sharedCounters"][:1]
    assert any("is not defined in this slice (Kubernetes 1.34)" in e for e in validate_slice(d, "1.34"))
    d = copy.deepcopy(first)
    d["spec"]["sharedCounters"].append({"name": "gpu-9-counter-set", "counters": {f"c{i}": {"value": "1"} for i in range(3)}})
    assert any("counters over all sets, at most 32" in e for e in validate_slice(d, "1.34"))


def test_pool_checks(dynamic):
    slices = copy.deepcopy(dynamic["1.35"])
    assert validate_pool(slices) == []
    assert any("resourceSliceCount is" in e for e in validate_pool(slices[:-1]))
    slices[3]["spec"]["devices"].append(copy.deepcopy(slices[0]["spec"]["devices"][0]))
    assert any("published twice in the pool" in e for e in validate_pool(slices))
    slices = copy.deepcopy(dynamic["1.35"])
    slices[-1]["spec"]["sharedCounters"] = slices[-1]["spec"]["sharedCounters"][1:]
    assert any("consumes unknown counter set 'gpu-0-counter-set'" in e for e in validate_pool(slices))
    slices = copy.deepcopy(dynamic["1.35"])
    slices[-1]["spec"]["sharedCounters"][0]["counters"]["multiprocessors"]["value"] = "10"
    assert any("more than the set has" in e for e in validate_pool(slices))


def test_qualified_names_and_versions():
    assert qualified_name_error("memorySlice7") is None
    assert qualified_name_error("resource.kubernetes.io/pciBusID") is None
    assert "C identifier" in qualified_name_error("7slices")
    with pytest.raises(ValueError, match="version: expected one of"):
        validate_slice({}, "1.20")
    assert validate_slice("nope") == ["ResourceSlice: must be an object"]
