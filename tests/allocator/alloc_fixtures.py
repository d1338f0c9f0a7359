"""Hand-written ResourceSlice / DeviceClass / ResourceClaim dicts for allocator tests.

They follow the NVIDIA driver's conventions (FACTS §8) so that scenarios read like real claims.
"""

from __future__ import annotations

from typing import Any

DRIVER = "gpu.nvidia.com"
GI = 2**30

GPU_CLASS = "gpu.nvidia.com"
MIG_CLASS = "mig.nvidia.com"
FRACTIONAL_CLASS = "fractional.gpu.nvidia.com"


def device_class(name: str, type_: str, config: list[dict] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"selectors": [{"cel": {"expression": f"device.driver == '{DRIVER}' && "
                                                    f"device.attributes['{DRIVER}'].type == '{type_}'"}}]}
    if config:
        spec["config"] = config
    return {"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass", "metadata": {"name": name}, "spec": spec}


def classes(**extra: dict) -> dict[str, dict]:
    out = {
        GPU_CLASS: device_class(GPU_CLASS, "gpu"),
        MIG_CLASS: device_class(MIG_CLASS, "mig"),
        FRACTIONAL_CLASS: device_class(FRACTIONAL_CLASS, "fractional"),
    }
    out.update(extra)
    return out


def gpu(minor: int, memory_gi: int = 80, driver_version: str = "550.54.15", product: str = "NVIDIA A100-SXM4-80GB",
        taints: list[dict] | None = None, **attrs: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": f"gpu-{minor}",
        "attributes": {
            "type": {"string": "gpu"},
            "uuid": {"string": f"GPU-{minor:08d}"},
            "productName": {"string": product},
            "index": {"int": minor},
            "driverVersion": {"version": driver_version},
            "cudaComputeCapability": {"version": "8.0.0"},
            **{k: v if isinstance(v, dict) else {"string": v} for k, v in attrs.items()},
        },
        "capacity": {"memory": {"value": f"{memory_gi}Gi"}},
    }
    if taints:
        d["taints"] = taints
    return d


def mig(parent: int, profile: str, gi_id: int, start: int, memory_gi: int, slices: int,
        counter_set: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": f"gpu-{parent}-mig-{profile.replace('.', '')}-{gi_id}-{start}",
        "attributes": {
            "type": {"string": "mig"},
            "parentUUID": {"string": f"GPU-{parent:08d}"},
            "profile": {"string": profile},
        },
        "capacity": {"memory": {"value": f"{memory_gi}Gi"}},
    }
    if counter_set:
        d["consumesCounters"] = [{
            "counterSet": f"gpu-{parent}-counter-set",
            "counters": {f"memory-slice-{i}": {"value": "1"} for i in range(start, start + slices)},
        }]
    return d


def fractional_gpu(minor: int, memory_gi: int = 80, policy: dict | None = None) -> dict[str, Any]:
    compute: dict[str, Any] = {"value": "1"}
    if policy:
        compute["requestPolicy"] = policy
    return {
        "name": f"gpu-{minor}",
        "allowMultipleAllocations": True,
        "attributes": {"type": {"string": "fractional"}, "uuid": {"string": f"GPU-{minor:08d}"}},
        "capacity": {"memory": {"value": f"{memory_gi}Gi"}, "compute": compute},
    }


def slice_(node: str, devices: list[dict], *, name: str | None = None, generation: int = 1, count: int = 1,
           shared_counters: list[dict] | None = None, pool: str | None = None, driver: str = DRIVER) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "driver": driver,
        "pool": {"name": pool or node, "generation": generation, "resourceSliceCount": count},
        "nodeName": node,
        "devices": devices,
    }
    if shared_counters is not None:
        spec["sharedCounters"] = shared_counters
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
            "metadata": {"name": name or f"{node}-{driver}-{generation}"}, "spec": spec}


def counter_set(minor: int, slices: int = 8) -> dict[str, Any]:
    return {"name": f"gpu-{minor}-counter-set", "counters": {f"memory-slice-{i}": {"value": "1"} for i in range(slices)}}


def request(name: str, device_class: str = GPU_CLASS, count: int | None = None, selectors: list[str] | None = None,
            mode: str | None = None, admin: bool = False, tolerations: list[dict] | None = None,
            capacity: dict[str, str] | None = None) -> dict[str, Any]:
    exactly: dict[str, Any] = {"deviceClassName": device_class}
    if count is not None:
        exactly["count"] = count
    if selectors:
        exactly["selectors"] = [{"cel": {"expression": e}} for e in selectors]
    if mode:
        exactly["allocationMode"] = mode
    if admin:
        exactly["adminAccess"] = True
    if tolerations:
        exactly["tolerations"] = tolerations
    if capacity:
        exactly["capacity"] = {"requests": capacity}
    return {"name": name, "exactly": exactly}


def first_available(name: str, *subs: dict) -> dict[str, Any]:
    return {"name": name, "firstAvailable": [{"name": s["name"], **s["exactly"]} for s in subs]}


def claim(name: str, *requests: dict, constraints: list[dict] | None = None, config: list[dict] | None = None,
          namespace: str = "default", uid: str | None = None) -> dict[str, Any]:
    devices: dict[str, Any] = {"requests": list(requests)}
    if constraints:
        devices["constraints"] = constraints
    if config:
        devices["config"] = config
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"name": name, "namespace": namespace, "uid": uid or f"uid-{name}"},
            "spec": {"devices": devices}}


def gpu_config(strategy: str = "TimeSlicing", interval: str = "Long") -> dict[str, Any]:
    params: dict[str, Any] = {"apiVersion": "resource.nvidia.com/v1beta1", "kind": "GpuConfig",
                              "sharing": {"strategy": strategy}}
    if strategy == "TimeSlicing":
        params["sharing"]["timeSlicingConfig"] = {"interval": interval}
    return {"driver": DRIVER, "parameters": params}


def devices_of(result: Any) -> list[list[str]]:
    """Device names per claim of an AllocationResult."""
    return [[r["device"] for r in a["devices"]["results"]] for a in result.allocations]


def pod_with_claim(i: int, device_class: str, selector: str | None = None, cpu: str = "1") -> tuple[dict, dict]:
    """Pod `p<i>` (one container requesting `cpu`) using ResourceClaim `c<i>`: one device of the class."""
    req: dict = {"name": "gpu", "exactly": {"deviceClassName": device_class}}
    if selector:
        req["exactly"]["selectors"] = [{"cel": {"expression": selector}}]
    pod_claim = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
                 "metadata": {"name": f"c{i}", "namespace": "default", "uid": f"uid-c{i}"},
                 "spec": {"devices": {"requests": [req]}}}
    pod = {"metadata": {"name": f"p{i}", "namespace": "default", "uid": f"uid-p{i}"},
           "spec": {"containers": [{"name": "x", "resources": {"requests": {"cpu": cpu}}}],
                    "resourceClaims": [{"name": "gpu", "resourceClaimName": f"c{i}"}]}}
    return pod, pod_claim
