"""Packing configuration: strategy, weights, thresholds; the per-pod strategy annotation.

Parsed strictly (unknown keys and out-of-range values are errors naming the field) because a
typo in a scheduler config should fail loudly at start, not silently schedule with defaults.

Annotation: `gpu-dra.nvidia.com/scheduling-strategy: <strategy>` on a pod overrides the default;
Run:ai's `scheduling.run.ai/scheduling-strategy` is accepted too (ours wins when both are set).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

STRATEGIES = ("fragmentation", "fgd", "binpack", "spread")
ANNOTATION = "gpu-dra.nvidia.com/scheduling-strategy"
RUNAI_ANNOTATION = "scheduling.run.ai/scheduling-strategy"
RESOURCES = ("gpu", "cpu", "memory")


class ConfigError(ValueError):
    """A packing configuration or annotation that is not valid; the message names the field."""


@dataclass(frozen=True)
class PackingConfig:
    """How the scheduler scores placements.

    `weights` say how much each resource counts in the binpack/spread utilisation score;
    `thresholds` say when a node counts as full for a resource (utilisation after the placement
    above the fraction): a full node is used only when no other node fits, under every strategy.
    `coverage` is the share of observed pods whose shapes form FGD's target workload (the paper: 95 %).
    """

    strategy: str = "fragmentation"
    weights: Mapping[str, float] = field(default_factory=lambda: {"gpu": 1.0, "cpu": 0.25, "memory": 0.25})
    thresholds: Mapping[str, float] = field(default_factory=lambda: {"gpu": 1.0, "cpu": 1.0, "memory": 1.0})
    coverage: float = 0.95

    def __post_init__(self) -> None:
        check_strategy(self.strategy, "strategy")


def check_strategy(value: Any, where: str) -> str:
    """The strategy name, or ConfigError naming `where` and the accepted names."""
    if not isinstance(value, str) or value not in STRATEGIES:
        raise ConfigError(f"{where}: unknown scheduling strategy {value!r}; expected one of {', '.join(STRATEGIES)}")
    return value


def _number(value: Any, where: str, lo: float, hi: float | None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise ConfigError(f"{where}: expected a number {bound}, got {value}")
    return float(value)


def _per_resource(raw: Any, where: str, defaults: Mapping[str, float], hi: float | None) -> dict[str, float]:
    if raw is None:
        return dict(defaults)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping with keys {', '.join(RESOURCES)}")
    unknown = sorted(set(raw) - set(RESOURCES))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown resource; expected one of {', '.join(RESOURCES)}")
    out = dict(defaults)
    for key, value in raw.items():
        out[key] = _number(value, f"{where}.{key}", 0.0, hi)
    return out


def parse_config(raw: Any, where: str = "packing") -> PackingConfig:
    """A PackingConfig from a YAML-loaded dict; unknown keys and bad values are errors naming the field.

    Accepted keys: strategy, weights {gpu, cpu, memory} (≥ 0, not all 0), thresholds {gpu, cpu, memory}
    (0..1), coverage (0..1].
    """
    if raw is None:
        return PackingConfig()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    allowed = {"strategy", "weights", "thresholds", "coverage"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown field; expected one of {', '.join(sorted(allowed))}")
    base = PackingConfig()
    strategy = check_strategy(raw.get("strategy", base.strategy), f"{where}.strategy")
    weights = _per_resource(raw.get("weights"), f"{where}.weights", base.weights, None)
    if not any(weights.values()):
        raise ConfigError(f"{where}.weights: at least one weight must be positive")
    thresholds = _per_resource(raw.get("thresholds"), f"{where}.thresholds", base.thresholds, 1.0)
    coverage = _number(raw.get("coverage", base.coverage), f"{where}.coverage", 0.0, 1.0)
    if coverage <= 0:
        raise ConfigError(f"{where}.coverage: expected a number above 0 and at most 1, got {coverage}")
    return PackingConfig(strategy, weights, thresholds, coverage)


def strategy_for(pod: Mapping[str, Any], config: PackingConfig) -> str:
    """The pod's strategy: our annotation, else Run:ai's, else the configured default.

    An unknown value is a ConfigError (the pod is reported unschedulable with that message rather
    than silently scheduled with a strategy its owner did not ask for).
    """
    annotations = ((pod.get("metadata") or {}).get("annotations")) or {}
    for key in (ANNOTATION, RUNAI_ANNOTATION):
        if key in annotations:
            return check_strategy(annotations[key], f"pod annotation {key}")
    return config.strategy
