"""DeviceClasses of the driver, shared by the local cluster, the Helm chart and tests.

Names and selectors match NVIDIA's driver where it has them (`gpu.nvidia.com` with
extendedResourceName `nvidia.com/gpu`, `mig.nvidia.com`), so manifests written for it keep
working; replica and fractional classes follow the same pattern. For another driver name the
class names keep their first label (gpu, mig, replica.gpu, fractional.gpu) under that domain.
"""

from __future__ import annotations

from typing import Any

# class-name prefix (before the vendor domain) -> device type attribute
_CLASSES = (("gpu", "gpu"), ("mig", "mig"), ("replica.gpu", "replica"), ("fractional.gpu", "fractional"))


def _domain(driver_name: str) -> str:
    """"gpu.nvidia.com" -> "nvidia.com": the vendor domain class names are built on."""
    first, _, rest = driver_name.partition(".")
    return rest if first == "gpu" and rest else driver_name


def class_name(kind: str, driver_name: str = "gpu.nvidia.com") -> str:
    """The DeviceClass name for device type `kind` (gpu, mig, replica, fractional)."""
    for prefix, k in _CLASSES:
        if k == kind:
            return f"{prefix}.{_domain(driver_name)}"
    raise ValueError(f"kind: expected one of gpu, mig, replica, fractional; got {kind!r}")


def device_classes(driver_name: str = "gpu.nvidia.com") -> list[dict[str, Any]]:
    """The four DeviceClass dicts (resource.k8s.io/v1)."""
    out = []
    for prefix, kind in _CLASSES:
        expr = f"device.driver == '{driver_name}' && device.attributes['{driver_name}'].type == '{kind}'"
        spec: dict[str, Any] = {"selectors": [{"cel": {"expression": expr}}]}
        if kind == "gpu":
            spec["extendedResourceName"] = "nvidia.com/gpu" if driver_name == "gpu.nvidia.com" else f"{_domain(driver_name)}/gpu"
        out.append({
            "apiVersion": "resource.k8s.io/v1",
            "kind": "DeviceClass",
            "metadata": {"name": f"{prefix}.{_domain(driver_name)}"},
            "spec": spec,
        })
    return out
