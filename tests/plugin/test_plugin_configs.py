"""Opaque config decoding and resolution (NVIDIA semantics), and claim planning: good inputs
resolve as documented, and every malformed config or claim gets its own specific error."""

from __future__ import annotations

import copy
from fractions import Fraction
from typing import Any

import pytest

from driver.dra.configs import ConfigError, decode_allocation_configs, decode_config, select_config
from driver.plugin.claims import ClaimError, plan_claim
from driver.plugin.inventory import AllocatableDevice

API = "resource.nvidia.com/v1beta1"
DRIVER = "gpu.nvidia.com"
GPU_UUID = "GPU-11111111-2222-3333-4444-555555555555"
DEVICES = {
    "gpu-0": AllocatableDevice("gpu-0", "gpu", 0, 0, GPU_UUID),
    "gpu-1": AllocatableDevice("gpu-1", "gpu", 1, 1, "GPU-11111111-2222-3333-4444-666666666666"),
    "gpu-2-mig-1g10gb-19-0": AllocatableDevice("gpu-2-mig-1g10gb-19-0", "mig", 2, 2, "MIG-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
                                              "GPU-22222222-2222-3333-4444-555555555555", "1g.10gb", 0),
    "gpu-3-ts-0": AllocatableDevice("gpu-3-ts-0", "replica", 3, 3, "GPU-3", "GPU-3", replica_index=0),
    "gpu-4": AllocatableDevice("gpu-4", "fractional", 4, 4, "GPU-4"),
    "gpu-5": AllocatableDevice("gpu-5", "gpu", 5, 5, "GPU-5", lost=True),
}


def gpu_cfg(**sharing: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "GpuConfig", "sharing": sharing}


def mig_cfg(**sharing: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "MigDeviceConfig", "sharing": sharing}


# ---- good configs -------------------------------------------------------------------------------

def test_decode_gpu_timeslicing_and_defaults() -> None:
    c = decode_config(gpu_cfg(strategy="TimeSlicing", timeSlicingConfig={"interval": "Medium"}))
    assert (c.kind, c.sharing.strategy, c.sharing.interval, c.sharing.interval_value) == ("GpuConfig", "TimeSlicing", "Medium", 2)
    c = decode_config(gpu_cfg(strategy="TimeSlicing"))
    assert c.sharing.interval == "Default" and c.sharing.interval_value == 0
    assert decode_config({"apiVersion": API, "kind": "GpuConfig"}).sharing is None


def test_decode_mps_limits() -> None:
    c = decode_config(mig_cfg(strategy="MPS", mpsConfig={
        "defaultActiveThreadPercentage": 0, "defaultPinnedDeviceMemoryLimit": "1.5Gi",
        "defaultPerDevicePinnedMemoryLimit": {"0": "1Gi", GPU_UUID: "512Mi"}}))
    mps = c.sharing.mps
    assert mps.default_active_thread_percentage == 0
    assert mps.default_pinned_device_memory_limit == Fraction(3 * 2**29)
    assert mps.default_per_device_pinned_memory_limit == {"0": 2**30, GPU_UUID: 2**29}
    assert c.sharing.interval is None


def test_our_kinds() -> None:
    assert decode_config({"apiVersion": API, "kind": "ReplicaConfig"}).sharing.interval == "Default"
    r = decode_config({"apiVersion": API, "kind": "ReplicaConfig", "timeSlicingConfig": {"interval": "Short"}})
    assert r.sharing.interval_value == 1
    assert decode_config({"apiVersion": API, "kind": "FractionalConfig"}).enforcement == "Env"
    assert decode_config({"apiVersion": API, "kind": "FractionalConfig", "enforcement": "MPS"}).enforcement == "MPS"


def _entry(params: Any, requests: list[str] | None = None, source: str = "FromClaim", driver: str = DRIVER) -> dict:
    e: dict[str, Any] = {"source": source, "opaque": {"driver": driver, "parameters": params}}
    if requests is not None:
        e["requests"] = requests
    return e


def test_precedence_class_then_claim_specific_beats_catch_all() -> None:
    short = gpu_cfg(strategy="TimeSlicing", timeSlicingConfig={"interval": "Short"})
    long_ = gpu_cfg(strategy="TimeSlicing", timeSlicingConfig={"interval": "Long"})
    medium = gpu_cfg(strategy="TimeSlicing", timeSlicingConfig={"interval": "Medium"})
    # Given out of order on purpose: class configs must come first whatever the list order.
    entries = decode_allocation_configs([
        _entry(long_, ["a"]),  # claim, names request a
        _entry(medium),  # claim catch-all (later than class catch-all: wins among catch-alls)
        _entry(short, source="FromClass"),  # class catch-all
        _entry({"whatever": 1}, driver="other.example.com"),  # another driver's config: ignored
    ], DRIVER)
    assert [e.source for e in entries] == ["FromClass", "FromClaim", "FromClaim"]
    assert select_config(entries, "a", "gpu").config.sharing.interval == "Long"
    assert select_config(entries, "a/sub", "gpu").config.sharing.interval == "Long"  # subrequest of a
    assert select_config(entries, "b", "gpu").config.sharing.interval == "Medium"
    # A GpuConfig catch-all does not apply to a MIG device: default (None) instead of an error.
    assert select_config(entries, "b", "mig") is None


def test_later_claim_config_for_same_request_wins() -> None:
    entries = decode_allocation_configs([
        _entry(gpu_cfg(strategy="TimeSlicing", timeSlicingConfig={"interval": "Short"}), ["a"], "FromClass"),
        _entry(gpu_cfg(strategy="MPS"), ["a"]),
    ], DRIVER)
    assert select_config(entries, "a", "gpu").config.sharing.strategy == "MPS"


# ---- malformed configs: each with its own message ------------------------------------------------

BAD_CONFIGS: list[tuple[str, Any, str]] = [
    ("not-an-object", "GpuConfig", "parameters: expected an object, got str"),
    ("list", [], "parameters: expected an object, got list"),
    ("no-apiversion", {"kind": "GpuConfig"}, "apiVersion: expected 'resource.nvidia.com/v1beta1', got None"),
    ("old-apiversion", {"apiVersion": "resource.nvidia.com/v1alpha1", "kind": "GpuConfig"},
     "apiVersion: expected 'resource.nvidia.com/v1beta1', got 'resource.nvidia.com/v1alpha1'"),
    ("foreign-apiversion", {"apiVersion": "gpu.resource.intel.com/v1alpha1", "kind": "GpuConfig"},
     "apiVersion: expected 'resource.nvidia.com/v1beta1', got 'gpu.resource.intel.com/v1alpha1'"),
    ("no-kind", {"apiVersion": API},
     "kind: expected one of GpuConfig, MigDeviceConfig, ReplicaConfig, FractionalConfig, got None"),
    ("wrong-kind", {"apiVersion": API, "kind": "GPUConfig"},
     "kind: expected one of GpuConfig, MigDeviceConfig, ReplicaConfig, FractionalConfig, got 'GPUConfig'"),
    ("imex-kind", {"apiVersion": API, "kind": "ComputeDomainChannelConfig"},
     "kind: expected one of GpuConfig, MigDeviceConfig, ReplicaConfig, FractionalConfig, got 'ComputeDomainChannelConfig'"),
    ("unknown-top-field", {"apiVersion": API, "kind": "GpuConfig", "sharingg": {}},
     "parameters: unknown field 'sharingg' (allowed: apiVersion, kind, sharing)"),
    ("metadata-field", {"apiVersion": API, "kind": "GpuConfig", "metadata": {"name": "x"}},
     "parameters: unknown field 'metadata' (allowed: apiVersion, kind, sharing)"),
    ("sharing-not-object", gpu_cfg() | {"sharing": "TimeSlicing"}, "sharing: expected an object, got str"),
    ("sharing-list", gpu_cfg() | {"sharing": ["MPS"]}, "sharing: expected an object, got list"),
    ("no-strategy", gpu_cfg(timeSlicingConfig={"interval": "Long"}), "sharing.strategy: required (one of TimeSlicing, MPS)"),
    ("bad-strategy", gpu_cfg(strategy="SpacePartitioning"),
     "sharing.strategy: expected one of TimeSlicing, MPS, got 'SpacePartitioning'"),
    ("lowercase-strategy", gpu_cfg(strategy="mps"), "sharing.strategy: expected one of TimeSlicing, MPS, got 'mps'"),
    ("strategy-number", gpu_cfg(strategy=1), "sharing.strategy: expected one of TimeSlicing, MPS, got 1"),
    ("unknown-sharing-field", gpu_cfg(strategy="MPS", mps={}),
     "sharing: unknown field 'mps' (allowed: mpsConfig, strategy, timeSlicingConfig)"),
    ("ts-with-mps", gpu_cfg(strategy="TimeSlicing", mpsConfig={}), "sharing.mpsConfig: not allowed with strategy TimeSlicing"),
    ("mps-with-ts", gpu_cfg(strategy="MPS", timeSlicingConfig={"interval": "Long"}),
     "sharing.timeSlicingConfig: not allowed with strategy MPS"),
    ("bad-interval", gpu_cfg(strategy="TimeSlicing", timeSlicingConfig={"interval": "Fast"}),
     "sharing.timeSlicingConfig.interval: expected one of Default, Short, Medium, Long, got 'Fast'"),
    ("numeric-interval", gpu_cfg(strategy="TimeSlicing", timeSlicingConfig={"interval": 3}),
     "sharing.timeSlicingConfig.interval: expected one of Default, Short, Medium, Long, got 3"),
    ("lowercase-interval", gpu_cfg(strategy="TimeSlicing", timeSlicingConfig={"interval": "long"}),
     "sharing.timeSlicingConfig.interval: expected one of Default, Short, Medium, Long, got 'long'"),
    ("interval-null", gpu_cfg(strategy="TimeSlicing", timeSlicingConfig={"interval": None}),
     "sharing.timeSlicingConfig.interval: expected one of Default, Short, Medium, Long, got None"),
    ("ts-config-not-object", gpu_cfg(strategy="TimeSlicing", timeSlicingConfig="Long"),
     "sharing.timeSlicingConfig: expected an object, got str"),
    ("ts-unknown-field", gpu_cfg(strategy="TimeSlicing", timeSlicingConfig={"interval": "Long", "slice": 1}),
     "sharing.timeSlicingConfig: unknown field 'slice' (allowed: interval)"),
    ("mig-timeslicing-interval", mig_cfg(strategy="TimeSlicing", timeSlicingConfig={"interval": "Long"}),
     "sharing: unknown field 'timeSlicingConfig' (allowed: mpsConfig, strategy)"),
    ("mps-config-not-object", gpu_cfg(strategy="MPS", mpsConfig=50), "sharing.mpsConfig: expected an object, got int"),
    ("mps-unknown-field", gpu_cfg(strategy="MPS", mpsConfig={"activeThreadPercentage": 50}),
     "sharing.mpsConfig: unknown field 'activeThreadPercentage' (allowed: defaultActiveThreadPercentage, "
     "defaultPerDevicePinnedMemoryLimit, defaultPinnedDeviceMemoryLimit)"),
    ("mps-pct-negative", gpu_cfg(strategy="MPS", mpsConfig={"defaultActiveThreadPercentage": -1}),
     "sharing.mpsConfig.defaultActiveThreadPercentage: must be between 0 and 100, got -1"),
    ("mps-pct-over", gpu_cfg(strategy="MPS", mpsConfig={"defaultActiveThreadPercentage": 101}),
     "sharing.mpsConfig.defaultActiveThreadPercentage: must be between 0 and 100, got 101"),
    ("mps-pct-string", gpu_cfg(strategy="MPS", mpsConfig={"defaultActiveThreadPercentage": "50"}),
     "sharing.mpsConfig.defaultActiveThreadPercentage: expected an integer from 0 to 100, got '50'"),
    ("mps-pct-float", gpu_cfg(strategy="MPS", mpsConfig={"defaultActiveThreadPercentage": 50.5}),
     "sharing.mpsConfig.defaultActiveThreadPercentage: expected an integer from 0 to 100, got 50.5"),
    ("mps-pct-bool", gpu_cfg(strategy="MPS", mpsConfig={"defaultActiveThreadPercentage": True}),
     "sharing.mpsConfig.defaultActiveThreadPercentage: expected an integer from 0 to 100, got True"),
    ("mps-limit-garbage", gpu_cfg(strategy="MPS", mpsConfig={"defaultPinnedDeviceMemoryLimit": "ten gigs"}),
     "sharing.mpsConfig.defaultPinnedDeviceMemoryLimit: 'ten gigs' is not a quantity (expected e.g. '10Gi', '250m', '1.5', '1e3')"),
    ("mps-limit-negative", gpu_cfg(strategy="MPS", mpsConfig={"defaultPinnedDeviceMemoryLimit": "-1Gi"}),
     "sharing.mpsConfig.defaultPinnedDeviceMemoryLimit: must not be negative, got '-1Gi'"),
    ("mps-limit-bool", gpu_cfg(strategy="MPS", mpsConfig={"defaultPinnedDeviceMemoryLimit": False}),
     "sharing.mpsConfig.defaultPinnedDeviceMemoryLimit: expected a quantity such as '10Gi' or '250m', got a boolean"),
    ("mps-limit-list", gpu_cfg(strategy="MPS", mpsConfig={"defaultPinnedDeviceMemoryLimit": ["1Gi"]}),
     "sharing.mpsConfig.defaultPinnedDeviceMemoryLimit: expected a quantity string such as '10Gi', got list"),
    ("mps-per-device-not-map", gpu_cfg(strategy="MPS", mpsConfig={"defaultPerDevicePinnedMemoryLimit": ["1Gi"]}),
     "sharing.mpsConfig.defaultPerDevicePinnedMemoryLimit: expected an object, got list"),
    ("mps-per-device-bad-key", gpu_cfg(strategy="MPS", mpsConfig={"defaultPerDevicePinnedMemoryLimit": {"gpu-0": "1Gi"}}),
     "sharing.mpsConfig.defaultPerDevicePinnedMemoryLimit: key 'gpu-0' is neither a device index (0, 1, ...) nor a GPU/MIG UUID"),
    ("mps-per-device-negative-index", gpu_cfg(strategy="MPS", mpsConfig={"defaultPerDevicePinnedMemoryLimit": {"-1": "1Gi"}}),
     "sharing.mpsConfig.defaultPerDevicePinnedMemoryLimit: key '-1' is neither a device index (0, 1, ...) nor a GPU/MIG UUID"),
    ("mps-per-device-bad-value", gpu_cfg(strategy="MPS", mpsConfig={"defaultPerDevicePinnedMemoryLimit": {"0": "lots"}}),
     "sharing.mpsConfig.defaultPerDevicePinnedMemoryLimit[0]: 'lots' is not a quantity (expected e.g. '10Gi', '250m', '1.5', '1e3')"),
    ("mps-per-device-negative", gpu_cfg(strategy="MPS", mpsConfig={"defaultPerDevicePinnedMemoryLimit": {GPU_UUID: "-5Mi"}}),
     f"sharing.mpsConfig.defaultPerDevicePinnedMemoryLimit[{GPU_UUID}]: must not be negative, got '-5Mi'"),
    ("replica-unknown-field", {"apiVersion": API, "kind": "ReplicaConfig", "replicas": 4},
     "parameters: unknown field 'replicas' (allowed: apiVersion, kind, timeSlicingConfig)"),
    ("replica-sharing-field", {"apiVersion": API, "kind": "ReplicaConfig", "sharing": {"strategy": "MPS"}},
     "parameters: unknown field 'sharing' (allowed: apiVersion, kind, timeSlicingConfig)"),
    ("replica-bad-interval", {"apiVersion": API, "kind": "ReplicaConfig", "timeSlicingConfig": {"interval": "Forever"}},
     "timeSlicingConfig.interval: expected one of Default, Short, Medium, Long, got 'Forever'"),
    ("fractional-bad-enforcement", {"apiVersion": API, "kind": "FractionalConfig", "enforcement": "Strict"},
     "enforcement: expected one of Env, MPS, got 'Strict'"),
    ("fractional-unknown-field", {"apiVersion": API, "kind": "FractionalConfig", "memory": "10Gi"},
     "parameters: unknown field 'memory' (allowed: apiVersion, enforcement, kind)"),
    ("non-string-key", {"apiVersion": API, "kind": "GpuConfig", 1: "x"}, "parameters: field names must be strings, got 1"),
]


@pytest.mark.parametrize("params, message", [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS])
def test_malformed_config(params: Any, message: str) -> None:
    before = copy.deepcopy(params)
    with pytest.raises(ConfigError) as err:
        decode_config(params)
    assert str(err.value) == message
    assert params == before  # decoding never changes its input


# ---- malformed claims ----------------------------------------------------------------------------

UID = "0b6c5f36-5d8e-4bd3-9c39-8c0c4a0e4d11"
REF = "ResourceClaim default/c"


def claim(results: Any = None, config: Any = None, uid: str = UID, **status: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"metadata": {"name": "c", "namespace": "default", "uid": uid}, "status": {}}
    if results is not None or config is not None:
        c["status"]["allocation"] = {"devices": {"results": results if results is not None else [], "config": config}}
    c["status"].update(status)
    return c


def res(device: str = "gpu-0", request: str = "gpu", **kw: Any) -> dict[str, Any]:
    return {"request": request, "driver": DRIVER, "pool": "node-a", "device": device} | kw


BAD_CLAIMS: list[tuple[str, Any, str]] = [
    ("not-found", None, f"{REF}: not found in the API server"),
    ("no-metadata", {"status": {}}, f"{REF}: the API server returned an object without metadata"),
    ("uid-mismatch", claim([res()], uid="other-uid"),
     f"{REF}: UID mismatch: kubelet asked for {UID}, the API server has other-uid (the claim was deleted and recreated)"),
    ("not-allocated", claim(), f"{REF}: not allocated (status.allocation is empty)"),
    ("deleting-unreserved", claim([res()]) | {"metadata": {"name": "c", "namespace": "default", "uid": UID,
                                                           "deletionTimestamp": "2026-01-01T00:00:00Z"}},
     f"{REF}: is being deleted and reserved for no pod"),
    ("allocation-devices-missing", {"metadata": {"name": "c", "namespace": "default", "uid": UID},
                                    "status": {"allocation": {"nodeSelector": {}}}},
     f"{REF}: status.allocation.devices: expected an object"),
    ("results-not-list", claim({"gpu": "gpu-0"}),
     f"{REF}: status.allocation.devices.results: expected a list, got dict"),
    ("result-not-object", claim(["gpu-0"]), f"{REF}: status.allocation.devices.results[0]: expected an object, got str"),
    ("result-no-device", claim([{"request": "gpu", "driver": DRIVER, "pool": "node-a"}]),
     f"{REF}: status.allocation.devices.results[0].device: required non-empty string, got None"),
    ("result-no-request", claim([{"driver": DRIVER, "pool": "node-a", "device": "gpu-0"}]),
     f"{REF}: status.allocation.devices.results[0].request: required non-empty string, got None"),
    ("result-no-pool", claim([{"request": "gpu", "driver": DRIVER, "device": "gpu-0"}]),
     f"{REF}: status.allocation.devices.results[0].pool: required non-empty string, got None"),
    ("unknown-device", claim([res("gpu-9")]),
     f"{REF}: status.allocation.devices.results[0].device: 'gpu-9' is not a device this node publishes in pool 'node-a'"),
    ("lost-gpu", claim([res("gpu-5")]),
     f"{REF}: status.allocation.devices.results[0].device: 'gpu-5' is on GPU GPU-5, which has fallen off the bus "
     "(tainted gpu-lost); it cannot be prepared"),
    ("foreign-driver-only", claim([res(driver="gpu.intel.com")]),
     f"{REF}: no device of driver 'gpu.nvidia.com' allocated in pool 'node-a'"),
    ("other-node-pool", claim([res(pool="node-b")]),
     f"{REF}: no device of driver 'gpu.nvidia.com' allocated in pool 'node-a' (its results are for pools ['node-b'])"),
    ("empty-results", claim([]), f"{REF}: no device of driver 'gpu.nvidia.com' allocated in pool 'node-a'"),
    ("duplicate-device", claim([res(), res(request="other")]),
     f"{REF}: status.allocation.devices.results[1]: device 'gpu-0' is allocated twice in the same claim"),
    ("share-id-not-string", claim([res("gpu-4", shareID=7)]),
     f"{REF}: status.allocation.devices.results[0].shareID: expected a string, got 7"),
    ("consumed-not-map", claim([res("gpu-4", consumedCapacity=["1Gi"])]),
     f"{REF}: status.allocation.devices.results[0].consumedCapacity: expected a map of quantities"),
    ("consumed-bad-quantity", claim([res("gpu-4", consumedCapacity={"memory": "10 GB"})]),
     f"{REF}: status.allocation.devices.results[0].consumedCapacity.memory: '10 GB' is not a quantity "
     "(expected e.g. '10Gi', '250m', '1.5', '1e3')"),
    ("config-not-list", claim([res()], {"opaque": {}}), f"{REF}: status.allocation.devices.config: expected a list, got dict"),
    ("config-entry-not-object", claim([res()], ["GpuConfig"]),
     f"{REF}: status.allocation.devices.config[0]: expected an object, got str"),
    ("config-requests-not-list", claim([res()], [_entry(gpu_cfg(strategy="MPS")) | {"requests": "gpu"}]),
     f"{REF}: status.allocation.devices.config[0].requests: expected a list of request names"),
    ("config-bad-params", claim([res()], [_entry({"apiVersion": API, "kind": "GpuConfig", "extra": 1})]),
     f"{REF}: status.allocation.devices.config[0] (FromClaim): parameters: unknown field 'extra' "
     "(allowed: apiVersion, kind, sharing)"),
    ("class-config-bad", claim([res()], [_entry(gpu_cfg(strategy="Nope"), source="FromClass")]),
     f"{REF}: status.allocation.devices.config[0] (FromClass): sharing.strategy: expected one of TimeSlicing, MPS, got 'Nope'"),
    ("gpu-config-on-mig", claim([res("gpu-2-mig-1g10gb-19-0", "mig")], [_entry(gpu_cfg(strategy="MPS"), ["mig"])]),
     f"{REF}: status.allocation.devices.config[0] (FromClaim): a GpuConfig cannot be applied to request 'mig': "
     "its device is of type 'mig' (expected kind MigDeviceConfig)"),
    ("mig-config-on-gpu", claim([res()], [_entry(mig_cfg(strategy="MPS"), ["gpu"])]),
     f"{REF}: status.allocation.devices.config[0] (FromClaim): a MigDeviceConfig cannot be applied to request 'gpu': "
     "its device is of type 'gpu' (expected kind GpuConfig)"),
    ("gpu-config-on-replica", claim([res("gpu-3-ts-0", "r")], [_entry(gpu_cfg(strategy="MPS"), ["r"])]),
     f"{REF}: status.allocation.devices.config[0] (FromClaim): a GpuConfig cannot be applied to request 'r': "
     "its device is of type 'replica' (expected kind ReplicaConfig)"),
    ("replica-config-on-fractional",
     claim([res("gpu-4", "f")], [_entry({"apiVersion": API, "kind": "ReplicaConfig"}, ["f"])]),
     f"{REF}: status.allocation.devices.config[0] (FromClaim): a ReplicaConfig cannot be applied to request 'f': "
     "its device is of type 'fractional' (expected kind FractionalConfig)"),
    ("mps-index-out-of-range",
     claim([res()], [_entry(gpu_cfg(strategy="MPS", mpsConfig={"defaultPerDevicePinnedMemoryLimit": {"1": "1Gi"}}))]),
     f"{REF}: status.allocation.devices.config[0] (FromClaim): sharing.mpsConfig.defaultPerDevicePinnedMemoryLimit: "
     "index 1 is out of range: the config applies to 1 device(s)"),
    ("mps-foreign-uuid",
     claim([res()], [_entry(gpu_cfg(strategy="MPS", mpsConfig={"defaultPerDevicePinnedMemoryLimit": {
         "GPU-99999999-2222-3333-4444-555555555555": "1Gi"}}))]),
     f"{REF}: status.allocation.devices.config[0] (FromClaim): sharing.mpsConfig.defaultPerDevicePinnedMemoryLimit: "
     "UUID GPU-99999999-2222-3333-4444-555555555555 is not one of the devices the config applies to"),
]


@pytest.mark.parametrize("obj, message", [c[1:] for c in BAD_CLAIMS], ids=[c[0] for c in BAD_CLAIMS])
def test_malformed_claim(obj: Any, message: str) -> None:
    with pytest.raises(ClaimError) as err:
        plan_claim(obj, "default", "c", UID, DRIVER, "node-a", DEVICES)
    assert str(err.value) == message


def test_empty_uid_from_kubelet() -> None:
    with pytest.raises(ClaimError, match="kubelet sent an empty claim UID"):
        plan_claim(claim([res()]), "default", "c", "", DRIVER, "node-a", DEVICES)


def test_good_claim_plan_groups_by_config() -> None:
    mps = gpu_cfg(strategy="MPS", mpsConfig={"defaultPerDevicePinnedMemoryLimit": {"1": "1Gi", GPU_UUID: "2Gi"}})
    plan = plan_claim(claim([res("gpu-0", "a"), res("gpu-1", "a"), res("gpu-2-mig-1g10gb-19-0", "m")],
                            [_entry(mps, ["a"])]), "default", "c", UID, DRIVER, "node-a", DEVICES)
    groups = plan.groups()
    assert [[d.device.name for d in g] for _, g in groups] == [["gpu-0", "gpu-1"], ["gpu-2-mig-1g10gb-19-0"]]
    assert groups[0][0].config.sharing.strategy == "MPS" and groups[1][0] is None



# ---- fuzz: whatever arrives, the answer is a decoded config or a ConfigError/ClaimError -------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 200), st.floats(allow_nan=False, width=32),
                     st.sampled_from(["TimeSlicing", "MPS", "Long", "Default", "1Gi", "-1", "50", "GPU-1", "0", API,
                                      "GpuConfig", "MigDeviceConfig", "ReplicaConfig", "FractionalConfig", "Env"]))
_keys = st.sampled_from(["apiVersion", "kind", "sharing", "strategy", "timeSlicingConfig", "interval", "mpsConfig",
                         "defaultActiveThreadPercentage", "defaultPinnedDeviceMemoryLimit",
                         "defaultPerDevicePinnedMemoryLimit", "enforcement", "0", "GPU-11111111-2222", "x"])
_json = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(_keys, inner, max_size=5)), max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(st.fixed_dictionaries({"apiVersion": st.just(API), "kind": st.sampled_from(
    ["GpuConfig", "MigDeviceConfig", "ReplicaConfig", "FractionalConfig"])},
    optional={"sharing": _json, "timeSlicingConfig": _json, "enforcement": _json, "x": _json}))
def test_fuzzed_configs_decode_or_fail_cleanly(params: dict) -> None:
    try:
        decode_config(params)
    except ConfigError as exc:
        assert str(exc)


@settings(max_examples=100, deadline=None)
@given(results=st.lists(st.one_of(_json, st.fixed_dictionaries(
    {"request": st.sampled_from(["gpu", "mig", ""]), "driver": st.just(DRIVER), "pool": st.just("node-a"),
     "device": st.sampled_from(list(DEVICES) + ["gpu-9"])}, optional={"shareID": _scalars, "consumedCapacity": _json})),
    max_size=3), config=_json)
def test_fuzzed_claims_plan_or_fail_cleanly(results: list, config: object) -> None:
    try:
        plan_claim(claim(results, config), "default", "c", UID, DRIVER, "node-a", DEVICES)
    except ClaimError as exc:
        assert str(exc).startswith(REF)
