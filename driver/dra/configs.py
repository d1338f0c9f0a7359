"""Opaque device configs (`resource.nvidia.com/v1beta1`) and which one applies to each device.

Pure code shared by the kubelet plugin (which applies configs) and the controller (which can
reject bad ones before allocating). Semantics follow NVIDIA's DRA driver so that its manifests
keep working (FACTS.md §8):

- `GpuConfig` applies to whole GPUs, `MigDeviceConfig` to MIG devices; `sharing.strategy` is
  `TimeSlicing` or `MPS`, with `timeSlicingConfig` / `mpsConfig` respectively (MIG devices have
  no time-slice interval).
- Decoding is strict: unknown fields, a wrong apiVersion or kind, or wrongly typed values are
  errors that name the field.
- Precedence: class configs, then claim configs, the later one wins; a config that names the
  request beats a catch-all one (empty `requests`); a config naming a request whose device is of
  the wrong type is an error, a catch-all of the wrong type is skipped.

Our own kinds, same apiVersion, for device types NVIDIA's driver does not have:

- `ReplicaConfig` for time-sliced replicas (`type: replica`):
  `{timeSlicingConfig: {interval: Default|Short|Medium|Long}}`. The interval is a property of
  the parent GPU, so claims sharing a GPU must agree on it (checked by the plugin).
- `FractionalConfig` for fractional GPUs (`type: fractional`):
  `{enforcement: Env|MPS}`; the limits themselves come from the allocation's consumedCapacity.
  `Env` (default) only exposes the limits as environment variables, `MPS` also runs an MPS
  control daemon for the claim so that CUDA enforces them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from driver.dra.quantity import QuantityError, parse_quantity

API_VERSION = "resource.nvidia.com/v1beta1"
INTERVALS = {"Default": 0, "Short": 1, "Medium": 2, "Long": 3}
STRATEGIES = ("TimeSlicing", "MPS")
ENFORCEMENTS = ("Env", "MPS")
_UUID_KEY = re.compile(r"^(GPU|MIG)-[0-9a-fA-F-]{8,}$")

# Which config kind configures which device type (`type` attribute of the published device).
KIND_FOR_TYPE = {
    "gpu": "GpuConfig",
    "mig": "MigDeviceConfig",
    "replica": "ReplicaConfig",
    "fractional": "FractionalConfig",
}


class ConfigError(ValueError):
    """An opaque config that cannot be decoded, or that does not fit the device it targets."""


@dataclass(frozen=True)
class MpsConfig:
    """MPS control-daemon defaults; None means "leave the daemon's default"."""

    default_active_thread_percentage: int | None = None
    default_pinned_device_memory_limit: Fraction | None = None
    # Key: device UUID or index (as a string) among the devices the config applies to.
    default_per_device_pinned_memory_limit: dict[str, Fraction] = field(default_factory=dict)


@dataclass(frozen=True)
class Sharing:
    """How the devices of one config are shared between the claim's containers."""

    strategy: str = "TimeSlicing"
    interval: str | None = None  # TimeSlicing only; None = leave the GPU's setting alone
    mps: MpsConfig | None = None  # MPS only

    @property
    def interval_value(self) -> int | None:
        """The numeric value nvidia-smi takes for --set-timeslice."""
        return None if self.interval is None else INTERVALS[self.interval]


@dataclass(frozen=True)
class DeviceConfig:
    """One decoded opaque config of any of our kinds.

    Why one class: the plugin only needs the sharing settings and the kind (to check it fits
    the device type); a class per kind would add isinstance ladders and nothing else.
    """

    kind: str
    sharing: Sharing | None = None
    enforcement: str = "Env"  # FractionalConfig only


@dataclass(frozen=True)
class ConfigEntry:
    """A decoded `config[]` entry of an allocation, with where it came from (for messages)."""

    source: str  # FromClass | FromClaim
    requests: tuple[str, ...]
    config: DeviceConfig
    index: int


def _where(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _expect_mapping(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{path or 'parameters'}: expected an object, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(f"{path or 'parameters'}: field names must be strings, got {key!r}")
    return value


def _reject_unknown(obj: dict[str, Any], allowed: set[str], path: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        where = path or "parameters"
        raise ConfigError(
            f"{where}: unknown field {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )


def _decode_interval(obj: Any, path: str) -> str:
    tsc = _expect_mapping(obj, path)
    _reject_unknown(tsc, {"interval"}, path)
    interval = tsc.get("interval", "Default")
    if interval not in INTERVALS:
        raise ConfigError(
            f"{_where(path, 'interval')}: expected one of {', '.join(INTERVALS)}, got {interval!r}"
        )
    return interval


def _decode_limit(value: Any, path: str) -> Fraction:
    try:
        amount = parse_quantity(value, path)
    except QuantityError as exc:
        raise ConfigError(str(exc)) from None
    if amount < 0:
        raise ConfigError(f"{path}: must not be negative, got {value!r}")
    return amount


def _decode_mps(obj: Any, path: str) -> MpsConfig:
    mps = _expect_mapping(obj, path)
    _reject_unknown(
        mps,
        {"defaultActiveThreadPercentage", "defaultPinnedDeviceMemoryLimit", "defaultPerDevicePinnedMemoryLimit"},
        path,
    )
    pct = mps.get("defaultActiveThreadPercentage")
    if pct is not None:
        key = _where(path, "defaultActiveThreadPercentage")
        if isinstance(pct, bool) or not isinstance(pct, int):
            raise ConfigError(f"{key}: expected an integer from 0 to 100, got {pct!r}")
        if not 0 <= pct <= 100:
            raise ConfigError(f"{key}: must be between 0 and 100, got {pct}")
    limit = mps.get("defaultPinnedDeviceMemoryLimit")
    pinned = None if limit is None else _decode_limit(limit, _where(path, "defaultPinnedDeviceMemoryLimit"))
    per_device: dict[str, Fraction] = {}
    raw = mps.get("defaultPerDevicePinnedMemoryLimit")
    if raw is not None:
        pd_path = _where(path, "defaultPerDevicePinnedMemoryLimit")
        for key, value in _expect_mapping(raw, pd_path).items():
            if not (key.isdigit() or _UUID_KEY.match(key)):
                raise ConfigError(
                    f"{pd_path}: key {key!r} is neither a device index (0, 1, ...) nor a GPU/MIG UUID"
                )
            per_device[key] = _decode_limit(value, f"{pd_path}[{key}]")
    return MpsConfig(pct, pinned, per_device)


def _decode_sharing(obj: Any, path: str, allow_interval: bool) -> Sharing:
    sharing = _expect_mapping(obj, path)
    allowed = {"strategy", "mpsConfig"} | ({"timeSlicingConfig"} if allow_interval else set())
    _reject_unknown(sharing, allowed, path)
    strategy = sharing.get("strategy")
    if strategy is None:
        raise ConfigError(f"{_where(path, 'strategy')}: required (one of {', '.join(STRATEGIES)})")
    if strategy not in STRATEGIES:
        raise ConfigError(f"{_where(path, 'strategy')}: expected one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if strategy == "TimeSlicing":
        if sharing.get("mpsConfig") is not None:
            raise ConfigError(f"{_where(path, 'mpsConfig')}: not allowed with strategy TimeSlicing")
        interval = None
        if allow_interval:
            tsc = sharing.get("timeSlicingConfig")
            interval = "Default" if tsc is None else _decode_interval(tsc, _where(path, "timeSlicingConfig"))
        return Sharing("TimeSlicing", interval, None)
    if sharing.get("timeSlicingConfig") is not None:
        raise ConfigError(f"{_where(path, 'timeSlicingConfig')}: not allowed with strategy MPS")
    mps_raw = sharing.get("mpsConfig")
    mps = MpsConfig() if mps_raw is None else _decode_mps(mps_raw, _where(path, "mpsConfig"))
    return Sharing("MPS", None, mps)


def decode_config(parameters: Any) -> DeviceConfig:
    """Strictly decode the `opaque.parameters` of one config entry of our driver."""
    obj = _expect_mapping(parameters, "")
    api_version = obj.get("apiVersion")
    if api_version != API_VERSION:
        raise ConfigError(f"apiVersion: expected {API_VERSION!r}, got {api_version!r}")
    kind = obj.get("kind")
    if kind not in KIND_FOR_TYPE.values():
        raise ConfigError(f"kind: expected one of {', '.join(KIND_FOR_TYPE.values())}, got {kind!r}")
    if kind in ("GpuConfig", "MigDeviceConfig"):
        _reject_unknown(obj, {"apiVersion", "kind", "sharing"}, "")
        raw = obj.get("sharing")
        sharing = None if raw is None else _decode_sharing(raw, "sharing", allow_interval=kind == "GpuConfig")
        return DeviceConfig(kind, sharing)
    if kind == "ReplicaConfig":
        _reject_unknown(obj, {"apiVersion", "kind", "timeSlicingConfig"}, "")
        raw = obj.get("timeSlicingConfig")
        interval = "Default" if raw is None else _decode_interval(raw, "timeSlicingConfig")
        return DeviceConfig(kind, Sharing("TimeSlicing", interval, None))
    _reject_unknown(obj, {"apiVersion", "kind", "enforcement"}, "")
    enforcement = obj.get("enforcement", "Env")
    if enforcement not in ENFORCEMENTS:
        raise ConfigError(f"enforcement: expected one of {', '.join(ENFORCEMENTS)}, got {enforcement!r}")
    return DeviceConfig(kind, None, enforcement)


def decode_allocation_configs(configs: Any, driver_name: str) -> list[ConfigEntry]:
    """Decode `status.allocation.devices.config[]`, keeping only our driver's opaque configs.

    The API server already ordered them (FromClass before FromClaim); order is precedence.
    """
    if configs is None:
        return []
    if not isinstance(configs, list):
        raise ConfigError(f"allocation.devices.config: expected a list, got {type(configs).__name__}")
    entries: list[ConfigEntry] = []
    for i, entry in enumerate(configs):
        where = f"allocation.devices.config[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected an object, got {type(entry).__name__}")
        opaque = entry.get("opaque")
        if not isinstance(opaque, dict):
            continue  # not an opaque config: nothing for a driver to apply
        if opaque.get("driver") != driver_name:
            continue  # another driver's config
        requests = entry.get("requests") or []
        if not isinstance(requests, list) or not all(isinstance(r, str) for r in requests):
            raise ConfigError(f"{where}.requests: expected a list of request names")
        source = entry.get("source", "FromClaim")
        try:
            config = decode_config(opaque.get("parameters"))
        except ConfigError as exc:
            raise ConfigError(f"{where} ({source}): {exc}") from None
        entries.append(ConfigEntry(source, tuple(requests), config, i))
    # Class configs first, then claim configs, keeping the order within each source.
    return sorted(entries, key=lambda e: (e.source != "FromClass", e.index))


def _names_request(entry: ConfigEntry, request: str) -> bool:
    """A config names a result's request directly, or the parent of its subrequest ("main/sub")."""
    return request in entry.requests or request.split("/", 1)[0] in entry.requests


def select_config(entries: list[ConfigEntry], request: str, device_type: str) -> ConfigEntry | None:
    """The config that applies to one allocated device, or None for the type's default.

    Raises ConfigError when the winning config names the request but is of the wrong kind for
    the device type.
    """
    wanted = KIND_FOR_TYPE.get(device_type)
    for entry in reversed(entries):
        if _names_request(entry, request):
            if entry.config.kind != wanted:
                raise ConfigError(
                    f"allocation.devices.config[{entry.index}] ({entry.source}): a {entry.config.kind} "
                    f"cannot be applied to request {request!r}: its device is of type {device_type!r} "
                    f"(expected kind {wanted})"
                )
            return entry
    for entry in reversed(entries):
        if not entry.requests and entry.config.kind == wanted:
            return entry
    return None
