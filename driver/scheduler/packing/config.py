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

# Score weights beside the packing strategy, kube-scheduler's defaults (default_plugins.go):
# NodeResourcesFit 1 — whose place our packing strategy takes — TaintToleration 3, NodeAffinity 2,
# PodTopologySpread 2, InterPodAffinity 2. A soft preference the user wrote therefore outweighs
# the packing choice between nodes that both satisfy it equally, as it would with kube-scheduler.
PLUGIN_WEIGHTS = {"Packing": 1.0, "TaintToleration": 3.0, "NodeAffinity": 2.0, "PodTopologySpread": 2.0,
                  "InterPodAffinity": 2.0}
SPREAD_DEFAULTING = ("List", "System")


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
    plugin_weights: Mapping[str, float] = field(default_factory=lambda: dict(PLUGIN_WEIGHTS))
    spread_defaulting: str = "List"  # "System": kube-scheduler's built-in default constraints
    spread_defaults: tuple[Mapping[str, Any], ...] = ()  # defaultConstraints (defaultingType List)
    hard_pod_affinity_weight: int = 1  # InterPodAffinity's hardPodAffinityWeight (0..100)

    def weight(self, plugin: str) -> float:
        return float(self.plugin_weights.get(plugin, 0.0))

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
    allowed = {"strategy", "weights", "thresholds", "coverage", "pluginWeights", "topologySpread",
               "interPodAffinity"}
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
    plugin_weights = dict(PLUGIN_WEIGHTS)
    raw_pw = raw.get("pluginWeights")
    if raw_pw is not None:
        if not isinstance(raw_pw, Mapping):
            raise ConfigError(f"{where}.pluginWeights: expected a mapping with keys {', '.join(PLUGIN_WEIGHTS)}")
        for key, value in raw_pw.items():
            if key not in PLUGIN_WEIGHTS:
                raise ConfigError(f"{where}.pluginWeights.{key}: unknown plugin; expected one of {', '.join(PLUGIN_WEIGHTS)}")
            plugin_weights[key] = _number(value, f"{where}.pluginWeights.{key}", 0.0, 100.0)
    defaulting, defaults = _spread_config(raw.get("topologySpread"), f"{where}.topologySpread")
    hard = 1
    ipa = raw.get("interPodAffinity")
    if ipa is not None:
        if not isinstance(ipa, Mapping) or set(ipa) - {"hardPodAffinityWeight"}:
            raise ConfigError(f"{where}.interPodAffinity: expected a mapping with the one key hardPodAffinityWeight")
        hard = ipa.get("hardPodAffinityWeight", 1)
        if isinstance(hard, bool) or not isinstance(hard, int) or not 0 <= hard <= 100:
            raise ConfigError(f"{where}.interPodAffinity.hardPodAffinityWeight: expected an integer in 0..100, got {hard!r}")
    return PackingConfig(strategy, weights, thresholds, coverage, plugin_weights, defaulting, defaults, hard)


def _spread_config(raw: Any, where: str) -> tuple[str, tuple[Mapping[str, Any], ...]]:
    """PodTopologySpread's args: defaultingType List (our default, with no default constraints:
    kube-scheduler's System defaults would spread every ReplicaSet's pods and undo binpacking) or
    System; defaultConstraints for List (no labelSelector; DoNotSchedule ones filter, ScheduleAnyway ones score)."""
    if raw is None:
        return "List", ()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping with keys defaultingType, defaultConstraints")
    unknown = sorted(set(raw) - {"defaultingType", "defaultConstraints"})
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown field; expected defaultingType or defaultConstraints")
    defaulting = raw.get("defaultingType", "List")
    if defaulting not in SPREAD_DEFAULTING:
        raise ConfigError(f"{where}.defaultingType: expected List or System, got {defaulting!r}")
    constraints = raw.get("defaultConstraints") or []
    if not isinstance(constraints, list):
        raise ConfigError(f"{where}.defaultConstraints: expected a list of topology spread constraints")
    if defaulting == "System" and constraints:
        raise ConfigError(f"{where}.defaultConstraints: must be empty when defaultingType is System")
    for i, c in enumerate(constraints):
        at = f"{where}.defaultConstraints[{i}]"
        if not isinstance(c, Mapping):
            raise ConfigError(f"{at}: expected a topology spread constraint object")
        if "labelSelector" in c:
            raise ConfigError(f"{at}.labelSelector: not allowed in default constraints (derived from the pod's owner)")
        if not c.get("topologyKey"):
            raise ConfigError(f"{at}.topologyKey: required")
        skew = c.get("maxSkew")
        if not isinstance(skew, int) or isinstance(skew, bool) or skew < 1:
            raise ConfigError(f"{at}.maxSkew: expected an integer of at least 1, got {skew!r}")
        if c.get("whenUnsatisfiable") not in ("DoNotSchedule", "ScheduleAnyway"):
            raise ConfigError(f"{at}.whenUnsatisfiable: expected DoNotSchedule or ScheduleAnyway")
    return defaulting, tuple(dict(c) for c in constraints)


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
