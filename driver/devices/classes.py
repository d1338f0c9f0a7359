"""DeviceClasses of the driver, shared by the local cluster, the Helm chart and tests.

Names and selectors match NVIDIA's driver where it has them (`gpu.nvidia.com`, `mig.nvidia.com`,
each selecting one device `type`), so ResourceClaims written for it keep working; replica and
fractional classes follow the same pattern. For another driver name the class names keep their
first label (gpu, mig, replica.gpu, fractional.gpu) under that domain.

Extended resources backed by DRA (KEP-5004): pods written for NVIDIA's device plugin keep their
`resources.limits` and are served from our devices.

- `nvidia.com/gpu` is held by `unit.gpu.nvidia.com`, which selects whole GPUs and time-sliced
  replicas: one unit is a whole GPU on whole-GPU nodes and one replica on time-sliced nodes, as the
  device plugin's time-slicing counts it (on a dynamic GPU that publishes replicas, either one).
  A resource name resolves to a single class cluster-wide (the newest class naming it wins), so
  it cannot stay on `gpu.nvidia.com` (NVIDIA puts it there) without that class also selecting
  replicas, which would change what claims for `gpu.nvidia.com` get. Whole GPUs only:
  `deviceclass.resource.kubernetes.io/gpu.nvidia.com`, the class's implicit name.
- `nvidia.com/mig-<profile>` (the device plugin's mixed strategy, `+` spelt `.`:
  `nvidia.com/mig-1g.10gb.me`) is held by `mig-<profile>.nvidia.com`, one class per MIG profile of
  the GPU models in driver/nvml/profiles, selecting MIG devices by their `profile` attribute.
- fractional GPUs have no device-plugin counterpart; their implicit name is
  `deviceclass.resource.kubernetes.io/fractional.gpu.nvidia.com`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

# class-name prefix (before the vendor domain) -> device type attribute
_CLASSES = (("gpu", "gpu"), ("mig", "mig"), ("replica.gpu", "replica"), ("fractional.gpu", "fractional"))
UNIT_PREFIX = "unit"  # unit.<gpu class>: the class that holds <domain>/gpu
UNIT_TYPES = ("gpu", "replica")


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


def _profile_key(profile: str) -> tuple[int, int, str]:
    m = re.fullmatch(r"(\d+)g\.(\d+)gb(.*)", profile)
    return (int(m.group(1)), int(m.group(2)), m.group(3)) if m else (0, 0, profile)


@lru_cache(maxsize=1)
def mig_profiles() -> tuple[str, ...]:
    """Every MIG profile of the GPU models we know (driver/nvml/profiles), smallest first."""
    from driver.nvml.gpumodels import available_models, load_model

    names = {p.name for model in available_models() for p in load_model(model).mig_profiles}
    return tuple(sorted(names, key=_profile_key))


def profile_token(profile: str) -> str:
    """"1g.10gb+me" -> "1g.10gb.me": the profile as resource and class names spell it."""
    return profile.replace("+", ".")


def extended_resource_name(driver_name: str = "gpu.nvidia.com", profile: str | None = None) -> str:
    """`<domain>/gpu`, or `<domain>/mig-<profile>` for a MIG profile (nvidia.com for gpu.nvidia.com)."""
    suffix = "gpu" if profile is None else f"mig-{profile_token(profile)}"
    return f"{_domain(driver_name)}/{suffix}"


def _expression(driver_name: str, condition: str) -> str:
    return f"device.driver == '{driver_name}' && {condition}"


def _type_is(driver_name: str, kind: str) -> str:
    return f"device.attributes['{driver_name}'].type == '{kind}'"


def _device_class(name: str, expression: str, extended: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"selectors": [{"cel": {"expression": expression}}]}
    if extended is not None:
        spec["extendedResourceName"] = extended
    return {"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass", "metadata": {"name": name}, "spec": spec}


def unit_class(driver_name: str = "gpu.nvidia.com") -> dict[str, Any]:
    """The class holding `<domain>/gpu`: whole GPUs and time-sliced replicas."""
    either = " || ".join(_type_is(driver_name, t) for t in UNIT_TYPES)
    return _device_class(f"{UNIT_PREFIX}.{class_name('gpu', driver_name)}", _expression(driver_name, f"({either})"),
                         extended_resource_name(driver_name))


def mig_profile_class(profile: str, driver_name: str = "gpu.nvidia.com") -> dict[str, Any]:
    """The class holding `<domain>/mig-<profile>`: MIG devices of that profile."""
    condition = f"{_type_is(driver_name, 'mig')} && device.attributes['{driver_name}'].profile == '{profile}'"
    return _device_class(f"mig-{profile_token(profile)}.{_domain(driver_name)}", _expression(driver_name, condition),
                         extended_resource_name(driver_name, profile))


def device_classes(driver_name: str = "gpu.nvidia.com") -> list[dict[str, Any]]:
    """Every DeviceClass of the driver (resource.k8s.io/v1): one per device type (gpu, mig,
    replica, fractional), the unit class, and one per MIG profile."""
    out = [_device_class(f"{prefix}.{_domain(driver_name)}", _expression(driver_name, _type_is(driver_name, kind)))
           for prefix, kind in _CLASSES]
    out.append(unit_class(driver_name))
    out.extend(mig_profile_class(p, driver_name) for p in mig_profiles())
    return out
