"""Packing configuration: strategy, weights, thresholds; the per-pod strategy annotation.

Parsed strictly (unknown keys and out-of-range values are errors naming the field) because a
typo in a scheduler config should fail loudly at start, not silently schedule with defaults.

Besides our own shape, `parse_config` reads the shapes people bring from KAI Scheduler, so a
config copied from there works unchanged or is refused with the reason: the KAI recipe's
`scheduling:` block (strategy + a `binpacking:`/`spreading:` block of weights and thresholds), KAI's
SchedulingShard (`placementStrategy: {gpu, cpu}`, bare spec or the whole object), KAI's Helm value
`scheduler.placementStrategy`, and a ConfigMap holding any of these. A KAI field with no equivalent
here is an error that names it and what to use instead, never dropped: a scheduler that quietly
ignores half a config places pods differently from what its owner reads in the file.

Annotation: `gpu-dra.nvidia.com/scheduling-strategy: <strategy>` on a pod overrides the default;
Run:ai's `scheduling.run.ai/scheduling-strategy` is accepted too (ours wins when both are set).
"""

from __future__ import annotations

import math

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping

import yaml

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
    if not math.isfinite(value):  # YAML's .nan/.inf: NaN passes every comparison below, inf every upper bound
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
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


OUR_FIELDS = ("strategy", "weights", "thresholds", "coverage", "pluginWeights", "topologySpread", "interPodAffinity")
# The KAI recipe's `scheduling:` block: one block of weights and thresholds per strategy it names.
RECIPE_BLOCKS = {"binpacking": "binpack", "spreading": "spread"}
KAI_API_VERSION = "kai.scheduler/v1"
KAI_STRATEGIES = ("binpack", "spread")  # KAI's placement strategies; both fields default to binpack

# SchedulingShard spec fields (kai-scheduler/KAI-Scheduler pkg/apis/kai/v1/schedulingshard_types.go)
# beside placementStrategy: none has an equivalent here, each is refused with what to use instead.
_KAI_SPEC_NO_EQUIVALENT = {
    "args": "KAI scheduler command-line flags; this controller's flags are set on its own command line "
            "(gpu-dra controller --help)",
    "partitionLabelValue": "KAI shards a cluster by node-pool label; one controller places every pod that names "
                           "its schedulerName here, so keep pods to a node pool with nodeSelector or node affinity",
    "queueDepthPerAction": "KAI's per-queue action depth has no equivalent here (this scheduler has no queues)",
    "minRuntime": "KAI's minimum runtime before preemption or reclaim has no equivalent here "
                  "(preemption follows the pods' PriorityClasses)",
    "kValue": "KAI's fair-share proportion plugin has no equivalent here (no queues or fair share)",
    "usageDBConfig": "KAI's time-based fair share (usage database) has no equivalent here",
    "plugins": "KAI plugin overrides have no equivalent; the score weights of our plugins are pluginWeights "
               "(our own shape)",
    "actions": "KAI actions (allocate, consolidation, reclaim, preempt) cannot be switched here",
    "stuckInReleasingThreshold": "KAI's releasing-pod pipelining has no equivalent here",
}
_KAI_SPEC_FIELDS = ("placementStrategy", *_KAI_SPEC_NO_EQUIVALENT)
_OBJECT_FIELDS = ("apiVersion", "kind", "metadata", "spec", "status", "data", "binaryData", "immutable")
# Top-level keys of neither shape that people bring from KAI or the recipe: said what they are.
_FOREIGN_HINTS = {
    "gpuSharing": "the KAI recipe's install value (helm --set gpuSharing.*), not a scheduler setting; here GPU "
                  "sharing is set per node group in the Helm chart (plugin.nodeGroups[].sharing) and the packing "
                  "strategy with strategy",
    "global": "a KAI Helm value with no equivalent here; of KAI's values only scheduler.placementStrategy is read",
}


class ConfigShape(str, Enum):
    """Which of the accepted shapes a packing config file is written in."""

    OURS = "ours"                    # strategy, weights, thresholds, ... at the top level
    RECIPE = "scheduling"            # the KAI recipe's scheduling: {strategy, binpacking|spreading}
    KAI_SHARD_SPEC = "placementStrategy"  # a KAI SchedulingShard spec: placementStrategy: {gpu, cpu}
    KAI_HELM_VALUES = "scheduler"    # KAI's Helm values: scheduler.placementStrategy
    OBJECT = "object"                # a Kubernetes object: SchedulingShard, or a ConfigMap holding a config


_FAMILY = {
    **{k: ConfigShape.OURS for k in OUR_FIELDS},
    "scheduling": ConfigShape.RECIPE,
    **{k: ConfigShape.KAI_SHARD_SPEC for k in _KAI_SPEC_FIELDS},
    "scheduler": ConfigShape.KAI_HELM_VALUES,
    **{k: ConfigShape.OBJECT for k in _OBJECT_FIELDS},
}
_DESCRIBE = {
    ConfigShape.OURS: "our top-level fields",
    ConfigShape.RECIPE: "the KAI recipe's scheduling: block",
    ConfigShape.KAI_SHARD_SPEC: "a KAI SchedulingShard spec",
    ConfigShape.KAI_HELM_VALUES: "KAI's Helm values",
    ConfigShape.OBJECT: "a Kubernetes object",
}


def _expected_top_level() -> str:
    return (f"expected one of {', '.join(sorted(OUR_FIELDS))}; or, as a whole file in another accepted shape, "
            "scheduling (the KAI recipe's block), placementStrategy (a KAI SchedulingShard spec), "
            "scheduler.placementStrategy (KAI's Helm values), or a SchedulingShard or ConfigMap object")


def config_shape(raw: Mapping[str, Any], where: str = "packing") -> ConfigShape:
    """The shape a config mapping is written in; ConfigError when it mixes two shapes (naming both)."""
    found: dict[ConfigShape, list[str]] = {}
    for key in raw:
        family = _FAMILY.get(key)
        if family is not None:
            found.setdefault(family, []).append(str(key))
    if len(found) > 1:
        (a, a_keys), (b, b_keys) = list(found.items())[:2]
        raise ConfigError(f"{where}: mixes {_DESCRIBE[a]} ({', '.join(a_keys)}) with {_DESCRIBE[b]} "
                          f"({', '.join(b_keys)}); a file is in one shape: keep one and rewrite the other in it")
    return next(iter(found), ConfigShape.OURS)  # no known key: ours, whose parser names the unknown ones


def parse_config(raw: Any, where: str = "packing") -> PackingConfig:
    """A PackingConfig from a YAML-loaded value; unknown keys and bad values are errors naming the field.

    Our shape: strategy, weights {gpu, cpu, memory} (≥ 0, not all 0), thresholds {gpu, cpu, memory}
    (0..1), coverage (0..1], pluginWeights, topologySpread, interPodAffinity. Also read: the KAI
    recipe's `scheduling:` block, a KAI SchedulingShard (spec or object), KAI's Helm value
    `scheduler.placementStrategy`, and a ConfigMap with one data key holding any of these.
    """
    return _parse(raw, where, inside_configmap=False)


def _parse(raw: Any, where: str, inside_configmap: bool) -> PackingConfig:
    if raw is None:
        return PackingConfig()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    shape = config_shape(raw, where)
    if shape is ConfigShape.RECIPE:
        return _parse_recipe(raw, where)
    if shape is ConfigShape.KAI_SHARD_SPEC:
        return _parse_kai_spec(raw, where)
    if shape is ConfigShape.KAI_HELM_VALUES:
        return _parse_kai_values(raw, where)
    if shape is ConfigShape.OBJECT:
        return _parse_object(raw, where, inside_configmap)
    return _parse_ours(raw, where)


def _mapping(raw: Any, where: str, what: str) -> Mapping[str, Any]:
    """`raw` as a mapping (None, as YAML gives for an empty block, is an empty one)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping with {what}, got {type(raw).__name__}")
    return raw


def _weights_and_thresholds(raw: Mapping[str, Any], where: str) -> tuple[dict[str, float], dict[str, float]]:
    """`weights` and `thresholds` under `where`, over our defaults."""
    base = PackingConfig()
    weights = _per_resource(raw.get("weights"), f"{where}.weights", base.weights, None)
    if not any(weights.values()):
        raise ConfigError(f"{where}.weights: at least one weight must be positive")
    thresholds = _per_resource(raw.get("thresholds"), f"{where}.thresholds", base.thresholds, 1.0)
    return weights, thresholds


def _parse_recipe(raw: Mapping[str, Any], where: str) -> PackingConfig:
    """The KAI recipe's block: scheduling: {strategy, binpacking: {weights, thresholds}} (spreading for spread).

    Only the block of the strategy in effect is read, so a block for another strategy is an error
    rather than a setting that silently does nothing.
    """
    at = f"{where}.scheduling"
    block = _mapping(raw["scheduling"], at, "strategy, binpacking, spreading")
    for key in block:
        if key in ("strategy", *RECIPE_BLOCKS):
            continue
        if key in OUR_FIELDS:
            raise ConfigError(f"{at}.{key}: not part of the scheduling: block, which takes strategy, binpacking and "
                              f"spreading; {key} belongs to our own shape, at the top level beside strategy: write "
                              "the whole file in that shape instead")
        raise ConfigError(f"{at}.{key}: unknown field; expected strategy, binpacking or spreading")
    strategy = check_strategy(block.get("strategy", PackingConfig().strategy), f"{at}.strategy")
    for name, owner in RECIPE_BLOCKS.items():
        if name in block and strategy != owner:
            raise ConfigError(f"{at}.{name}: applies only with strategy {owner}, but {at}.strategy is {strategy}; "
                              f"remove it or set strategy: {owner}")
    name = next((n for n, owner in RECIPE_BLOCKS.items() if owner == strategy), None)
    if name is None or name not in block:
        return PackingConfig(strategy=strategy)
    settings = _mapping(block[name], f"{at}.{name}", "weights, thresholds")
    unknown = sorted(set(settings) - {"weights", "thresholds"})
    if unknown:
        raise ConfigError(f"{at}.{name}.{unknown[0]}: unknown field; expected weights or thresholds")
    weights, thresholds = _weights_and_thresholds(settings, f"{at}.{name}")
    return PackingConfig(strategy=strategy, weights=weights, thresholds=thresholds)


def _kai_strategy(value: Any, where: str) -> str:
    if value not in KAI_STRATEGIES:
        raise ConfigError(f"{where}: expected binpack or spread (KAI's placement strategies), got {value!r}; "
                          "fragmentation and fgd are set in our own shape (strategy: fragmentation)")
    return str(value)


def _parse_kai_spec(spec: Mapping[str, Any], where: str) -> PackingConfig:
    """A SchedulingShard spec: placementStrategy {gpu, cpu}, each binpack or spread, unset = binpack.

    KAI places GPU pods by `gpu` and CPU-only pods by `cpu`; here one strategy places both, so the two
    must agree (an unset one counts as KAI's default binpack, as KAI reads it).
    """
    for key in spec:
        if key in _KAI_SPEC_NO_EQUIVALENT:
            raise ConfigError(f"{where}.{key}: {_KAI_SPEC_NO_EQUIVALENT[key]}; of a SchedulingShard spec only "
                              "placementStrategy is read (as strategy)")
        if key != "placementStrategy":
            raise ConfigError(f"{where}.{key}: unknown field of a KAI SchedulingShard spec; expected placementStrategy")
    at = f"{where}.placementStrategy"
    placement = _mapping(spec.get("placementStrategy"), at, "gpu and cpu (binpack or spread)")
    unknown = sorted(set(placement) - {"gpu", "cpu"})
    if unknown:
        raise ConfigError(f"{at}.{unknown[0]}: unknown field; expected gpu or cpu")
    gpu = _kai_strategy(placement.get("gpu", "binpack"), f"{at}.gpu")
    cpu = _kai_strategy(placement.get("cpu", "binpack"), f"{at}.cpu")
    if gpu != cpu:
        chosen = {"gpu": gpu, "cpu": cpu}
        field, other = ("gpu", "cpu") if "gpu" not in placement else ("cpu", "gpu")
        said = chosen[field] if field in placement else f"unset, which KAI reads as {chosen[field]}"
        raise ConfigError(f"{at}.{field}: {said}, while {other} is {chosen[other]}; here one strategy places GPU "
                          f"and CPU-only pods alike: set {field}: {chosen[other]} too, or choose per workload with "
                          f"the pod annotation {ANNOTATION}")
    return PackingConfig(strategy=gpu)


def _parse_kai_values(raw: Mapping[str, Any], where: str) -> PackingConfig:
    """KAI's Helm values: scheduler.placementStrategy (binpack or spread, for GPU and CPU pods alike)."""
    for key in raw:
        if key != "scheduler":
            raise ConfigError(f"{where}.{key}: a KAI Helm value with no equivalent here; of KAI's values only "
                              "scheduler.placementStrategy is read")
    at = f"{where}.scheduler"
    scheduler = _mapping(raw["scheduler"], at, "placementStrategy")
    for key in scheduler:
        if key != "placementStrategy":
            raise ConfigError(f"{at}.{key}: KAI's scheduler value {key} has no equivalent here; only "
                              "scheduler.placementStrategy (binpack or spread) is read")
    return PackingConfig(strategy=_kai_strategy(scheduler.get("placementStrategy", "binpack"),
                                                f"{at}.placementStrategy"))


def _parse_object(raw: Mapping[str, Any], where: str, inside_configmap: bool) -> PackingConfig:
    """A SchedulingShard (kai.scheduler/v1), or a ConfigMap whose one data key holds a config.

    metadata names the object and status is what KAI observed: neither configures anything.
    """
    kind, api = raw.get("kind"), raw.get("apiVersion")
    if kind == "SchedulingShard":
        if api != KAI_API_VERSION:
            raise ConfigError(f"{where}.apiVersion: expected {KAI_API_VERSION} for a SchedulingShard, got {api!r}")
        _object_fields(raw, where, ("metadata", "spec", "status"))
        return _parse_kai_spec(_mapping(raw.get("spec"), f"{where}.spec", "placementStrategy"), f"{where}.spec")
    if kind == "ConfigMap":
        if inside_configmap:
            raise ConfigError(f"{where}: a ConfigMap inside a ConfigMap; its data key holds the config itself")
        if api != "v1":
            raise ConfigError(f"{where}.apiVersion: expected v1 for a ConfigMap, got {api!r}")
        _object_fields(raw, where, ("metadata", "data", "immutable"))
        data = _mapping(raw.get("data"), f"{where}.data", "one key holding the packing config")
        if len(data) != 1:
            raise ConfigError(f"{where}.data: expected exactly one key holding the packing config, got "
                              f"{len(data)}{' (' + ', '.join(map(str, data)) + ')' if data else ''}")
        ((key, text),) = data.items()
        at = f"{where}.data[{key}]"
        if not isinstance(text, str):
            raise ConfigError(f"{at}: expected the config as a YAML string, got {type(text).__name__}")
        try:
            inner = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{at}: not valid YAML: {exc}") from None
        return _parse(inner, at, inside_configmap=True)
    if kind == "Config" and isinstance(api, str) and api.startswith("kai.scheduler/"):
        raise ConfigError(f"{where}.kind: KAI's Config holds no placement strategy (KAI sets it per SchedulingShard, "
                          "spec.placementStrategy); give the SchedulingShard, or our own shape")
    if kind is None:
        raise ConfigError(f"{where}.kind: required for a Kubernetes object (apiVersion, kind, metadata, spec); "
                          "expected SchedulingShard or ConfigMap")
    raise ConfigError(f"{where}.kind: expected SchedulingShard ({KAI_API_VERSION}) or a ConfigMap holding one packing "
                      f"config, got {kind!r}")


def _object_fields(raw: Mapping[str, Any], where: str, allowed: tuple[str, ...]) -> None:
    fields = ("apiVersion", "kind", *allowed)
    for key in raw:
        if key not in fields:
            raise ConfigError(f"{where}.{key}: unexpected in a {raw['kind']}; expected {', '.join(fields)}")
    if "metadata" in raw:
        _mapping(raw["metadata"], f"{where}.metadata", "name, namespace, labels, ...")


def _parse_ours(raw: Mapping[str, Any], where: str) -> PackingConfig:
    """Our own shape: strategy, weights, thresholds, coverage, pluginWeights, topologySpread, interPodAffinity."""
    unknown = sorted(str(k) for k in set(raw) - set(OUR_FIELDS))
    if unknown:
        hint = _FOREIGN_HINTS.get(unknown[0])
        raise ConfigError(f"{where}.{unknown[0]}: {hint or 'unknown field; ' + _expected_top_level()}")
    base = PackingConfig()
    strategy = check_strategy(raw.get("strategy", base.strategy), f"{where}.strategy")
    weights, thresholds = _weights_and_thresholds(raw, where)
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
