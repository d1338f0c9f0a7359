"""GPU models as data: driver/nvml/profiles/<model>.yaml.

The MIG profile tables, memory sizes and SM counts come from NVIDIA's MIG user guide and live in
data files so that adding a GPU model is a YAML file, not code. The mock NVML answers from these
models; discovery never reads them directly (it asks the backend, as it would ask real NVML).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from driver.nvml.interface import Engines, MigProfile
from driver.nvml.strict import DataError, integer, load_yaml, mapping, sequence, string

PROFILE_DIR = Path(__file__).parent / "profiles"
_VERSION_RE = re.compile(r"^\d+\.\d+$")
_ENGINE_KEYS = {"copyEngines", "decoders", "encoders", "jpegEngines", "ofaEngines"}
_MIG_PROFILE_KEYS = {
    "name", "giProfileId", "nvmlProfile", "memorySlices", "computeSlices", "memoryMiB",
    "multiprocessors", "maxCount", "placements", *_ENGINE_KEYS,
}


@dataclass(frozen=True)
class GpuModel:
    """One GPU model: what NVML reports for it, and its MIG geometry (None without MIG)."""

    key: str  # file stem, e.g. "A100-SXM4-80GB"
    product_name: str
    brand: str
    architecture: str
    compute_capability: tuple[int, int]
    memory_mib: int
    multiprocessors: int
    engines: Engines
    pci_device_id: int
    pci_subsystem_id: int
    bus_ids: tuple[int, ...]
    memory_slices: int = 0
    compute_slices: int = 0
    mig_profiles: tuple[MigProfile, ...] = ()
    mig_configs: dict[str, tuple[str, ...] | None] | None = None

    @property
    def mig_capable(self) -> bool:
        return bool(self.mig_profiles)

    def mig_profile(self, name: str) -> MigProfile:
        for p in self.mig_profiles:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.mig_profiles) or "none (no MIG)"
        raise DataError(f"MIG profile {name!r} does not exist on {self.key} (known: {known})")


def _engines(raw: dict[str, Any], where: str) -> Engines:
    return Engines(
        copy_engines=integer(raw.get("copyEngines", 0), f"{where}.copyEngines", 0),
        decoders=integer(raw.get("decoders", 0), f"{where}.decoders", 0),
        encoders=integer(raw.get("encoders", 0), f"{where}.encoders", 0),
        jpeg_engines=integer(raw.get("jpegEngines", 0), f"{where}.jpegEngines", 0),
        ofa_engines=integer(raw.get("ofaEngines", 0), f"{where}.ofaEngines", 0),
    )


def _mig_profile(raw: Any, where: str, memory_slices: int, compute_slices: int, gpu_mib: int) -> MigProfile:
    mapping(raw, where, _MIG_PROFILE_KEYS, _MIG_PROFILE_KEYS - _ENGINE_KEYS)
    name = string(raw["name"], f"{where}.name")
    if not re.fullmatch(r"\d+g\.\d+gb(\+me)?", name):
        raise DataError(f"{where}.name: expected a MIG profile name like '1g.10gb', got {name!r}")
    mem_slices = integer(raw["memorySlices"], f"{where}.memorySlices", 1, memory_slices)
    placements = tuple(
        integer(v, f"{where}.placements[{i}]", 0, memory_slices - mem_slices)
        for i, v in enumerate(sequence(raw["placements"], f"{where}.placements"))
    )
    if not placements:
        raise DataError(f"{where}.placements: must list at least one start slice")
    if len(set(placements)) != len(placements):
        raise DataError(f"{where}.placements: duplicate start slices {list(placements)}")
    return MigProfile(
        name=name,
        gi_profile_id=integer(raw["giProfileId"], f"{where}.giProfileId", 0),
        nvml_profile=integer(raw["nvmlProfile"], f"{where}.nvmlProfile", 0),
        memory_slices=mem_slices,
        compute_slices=integer(raw["computeSlices"], f"{where}.computeSlices", 1, compute_slices),
        memory_mib=integer(raw["memoryMiB"], f"{where}.memoryMiB", 1, gpu_mib),
        multiprocessors=integer(raw["multiprocessors"], f"{where}.multiprocessors", 1),
        engines=_engines(raw, where),
        max_count=integer(raw["maxCount"], f"{where}.maxCount", 1, len(placements)),
        placements=placements,
    )


def parse_model(raw: Any, key: str) -> GpuModel:
    """Build a GpuModel from its YAML dict; DataError names the wrong field."""
    where = f"GPU model {key}"
    top = {"productName", "brand", "architecture", "cudaComputeCapability", "memoryMiB", "multiprocessors",
           "engines", "pciDeviceId", "pciSubsystemId", "busIds", "mig", "migConfigs"}
    mapping(raw, where, top, top - {"mig", "migConfigs", "busIds", "pciSubsystemId"})
    cc = raw["cudaComputeCapability"]
    if not isinstance(cc, str) or not _VERSION_RE.match(cc):
        raise DataError(f"{where}: cudaComputeCapability: expected a string like \"8.0\", got {cc!r}")
    memory_mib = integer(raw["memoryMiB"], f"{where}: memoryMiB", 1)
    engines_raw = mapping(raw["engines"], f"{where}: engines", _ENGINE_KEYS)
    bus_ids = tuple(
        integer(b, f"{where}: busIds[{i}]", 1, 255)
        for i, b in enumerate(sequence(raw.get("busIds", list(range(1, 9))), f"{where}: busIds"))
    )
    model = dict(
        key=key,
        product_name=string(raw["productName"], f"{where}: productName"),
        brand=string(raw["brand"], f"{where}: brand"),
        architecture=string(raw["architecture"], f"{where}: architecture"),
        compute_capability=tuple(int(x) for x in cc.split(".")),
        memory_mib=memory_mib,
        multiprocessors=integer(raw["multiprocessors"], f"{where}: multiprocessors", 1),
        engines=_engines(engines_raw, f"{where}: engines"),
        pci_device_id=integer(raw["pciDeviceId"], f"{where}: pciDeviceId", 0),
        pci_subsystem_id=integer(raw.get("pciSubsystemId", 0), f"{where}: pciSubsystemId", 0),
        bus_ids=bus_ids,
    )
    if raw.get("mig") is not None:
        mig = mapping(raw["mig"], f"{where}: mig", {"memorySlices", "computeSlices", "profiles"},
                      {"memorySlices", "computeSlices", "profiles"})
        ms = integer(mig["memorySlices"], f"{where}: mig.memorySlices", 1, 16)
        cs = integer(mig["computeSlices"], f"{where}: mig.computeSlices", 1, 16)
        profiles = tuple(
            _mig_profile(p, f"{where}: mig.profiles[{i}]", ms, cs, memory_mib)
            for i, p in enumerate(sequence(mig["profiles"], f"{where}: mig.profiles"))
        )
        names = [p.name for p in profiles]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise DataError(f"{where}: mig.profiles: duplicate profile name(s) {', '.join(dup)}")
        model.update(memory_slices=ms, compute_slices=cs, mig_profiles=profiles)
    configs: dict[str, tuple[str, ...] | None] = {}
    raw_configs = raw.get("migConfigs") or {}
    mapping(raw_configs, f"{where}: migConfigs", set(raw_configs))
    for name, devices in raw_configs.items():
        cwhere = f"{where}: migConfigs.{name}"
        configs[str(name)] = None if devices is None else tuple(
            string(d, f"{cwhere}[{i}]") for i, d in enumerate(sequence(devices, cwhere))
        )
    result = GpuModel(**model, mig_configs=configs)  # type: ignore[arg-type]
    # Every shipped config must be placeable, or the node description using it could never load.
    from driver.nvml.placement import PlacementError, place

    for name, devices in configs.items():
        if devices is None:
            continue
        if devices and not result.mig_capable:
            raise DataError(f"{where}: migConfigs.{name}: {key} has no MIG profiles")
        try:
            place(result, list(devices))
        except (PlacementError, DataError) as exc:
            raise DataError(f"{where}: migConfigs.{name}: {exc}") from None
    return result


def available_models() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


@lru_cache(maxsize=None)
def load_model(name_or_path: str) -> GpuModel:
    """A GPU model by profile name ("A100-SXM4-80GB") or by the path of a model YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return parse_model(load_yaml(path, "GPU model"), path.stem)
    candidate = PROFILE_DIR / f"{name_or_path}.yaml"
    if not candidate.exists():
        raise DataError(
            f"GPU model {name_or_path!r}: no such profile (available: {', '.join(available_models())})"
        )
    return parse_model(load_yaml(candidate, "GPU model"), name_or_path)
