"""The kubelet plugin's node config: which sharing mode each GPU is published in.

    driverName: gpu.nvidia.com        # optional
    sharing:                          # default for every GPU
      mode: whole                     # whole | mig | timeslicing | dynamic | fractional
      replicas: 4                     # timeslicing (required, 2..64) / dynamic (optional, 0..64)
    gpus:                             # optional per-GPU override, by index (minor)
      "1": {mode: timeslicing, replicas: 2}

Parsing is strict: an unknown key, a mode that does not exist or a replica count that makes no
sense is an error naming the field, because a typo here silently changes what a whole node
offers to the cluster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driver.nvml.strict import DataError, integer, load_yaml, mapping, string

MODES = ("whole", "mig", "timeslicing", "dynamic", "fractional")
MAX_REPLICAS = 64  # 8 GPUs x 64 replicas stays within a few slices; more is never useful
DEFAULT_DRIVER = "gpu.nvidia.com"
_DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class NodeConfigError(DataError):
    """A node config that cannot be used; the message names the field."""


@dataclass(frozen=True)
class Sharing:
    """How one GPU is published."""

    mode: str = "whole"
    replicas: int = 0  # timeslicing: devices per GPU; dynamic: replica devices (0 = none)


@dataclass(frozen=True)
class NodeConfig:
    driver_name: str = DEFAULT_DRIVER
    sharing: Sharing = field(default_factory=Sharing)
    gpus: dict[int, Sharing] = field(default_factory=dict)

    def for_gpu(self, index: int) -> Sharing:
        """The sharing mode of GPU `index` (its override, else the node default)."""
        return self.gpus.get(index, self.sharing)


def _sharing(raw: Any, where: str) -> Sharing:
    mapping(raw, where, {"mode", "replicas"}, {"mode"})
    try:
        mode = string(raw["mode"], f"{where}.mode", MODES)
    except DataError as exc:
        raise NodeConfigError(str(exc)) from None
    replicas = raw.get("replicas")
    if mode == "timeslicing":
        if replicas is None:
            raise NodeConfigError(f"{where}.replicas: required for mode timeslicing (2..{MAX_REPLICAS})")
        return Sharing(mode, integer(replicas, f"{where}.replicas", 2, MAX_REPLICAS))
    if mode == "dynamic":
        return Sharing(mode, 0 if replicas is None else integer(replicas, f"{where}.replicas", 0, MAX_REPLICAS))
    if replicas is not None:
        raise NodeConfigError(f"{where}.replicas: only valid with mode timeslicing or dynamic, not {mode}")
    return Sharing(mode)


def parse_node_config(raw: Any, source: str = "node config") -> NodeConfig:
    """Validate a node-config dict (None or {} = every GPU whole)."""
    if raw is None:
        return NodeConfig()
    try:
        mapping(raw, source, {"driverName", "sharing", "gpus"})
        driver = DEFAULT_DRIVER
        if "driverName" in raw:
            driver = string(raw["driverName"], f"{source}: driverName")
            if not _DNS_SUBDOMAIN.match(driver) or len(driver) > 63:
                raise NodeConfigError(f"{source}: driverName: {driver!r} is not a DNS subdomain of at most 63 characters")
        sharing = _sharing(raw["sharing"], f"{source}: sharing") if raw.get("sharing") is not None else Sharing()
        gpus: dict[int, Sharing] = {}
        per_gpu = raw.get("gpus") or {}
        mapping(per_gpu, f"{source}: gpus", set(per_gpu))
        for key, value in per_gpu.items():
            text = str(key)
            if isinstance(key, bool) or not text.isdigit():
                raise NodeConfigError(f"{source}: gpus.{key}: keys are GPU indexes (0, 1, ...), got {key!r}")
            gpus[int(text)] = _sharing(value, f"{source}: gpus.{text}")
    except NodeConfigError:
        raise
    except DataError as exc:
        raise NodeConfigError(str(exc)) from None
    return NodeConfig(driver, sharing, gpus)


def load_node_config(source: str | Path | dict[str, Any] | None) -> NodeConfig:
    """A NodeConfig from a dict, a YAML file path, or None (defaults)."""
    if source is None or isinstance(source, dict):
        return parse_node_config(source)
    try:
        raw = load_yaml(source, "node config")
    except DataError as exc:
        raise NodeConfigError(str(exc)) from None
    return parse_node_config(raw, f"node config {source}")


def with_mode(config: NodeConfig, mode: str | None, replicas: int | None) -> NodeConfig:
    """`config` with its default sharing replaced (the CLI's --mode/--replicas); validated alike."""
    if mode is None and replicas is None:
        return config
    raw: dict[str, Any] = {"mode": mode or config.sharing.mode}
    if replicas is not None:
        raw["replicas"] = replicas
    elif raw["mode"] == "timeslicing":
        raw["replicas"] = config.sharing.replicas or 4
    return NodeConfig(config.driver_name, _sharing(raw, "--mode/--replicas"), config.gpus)
