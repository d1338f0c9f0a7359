"""The packing config's accepted shapes besides our own: the KAI Scheduler recipe's `scheduling:`
block ("GPU Sharing and Bin Packing with KAI Scheduler", Step 6), KAI's SchedulingShard
(`placementStrategy: {gpu, cpu}`, KAI-Scheduler pkg/apis/kai/v1/schedulingshard_types.go: both
default to binpack; the nodeplacement plugin places GPU pods by `gpu`, CPU-only pods by `cpu`),
KAI's Helm value `scheduler.placementStrategy` (deployments/kai-scheduler: one value for both), and a
ConfigMap holding any of them. Each is mapped onto PackingConfig or refused with the field named;
the chart takes our shape or the recipe's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from driver.allocator.inventory import build_inventories
from driver.cli import main
from driver.scheduler.cycle import ClusterState, Placement, schedule
from driver.scheduler.packing.config import (
    ANNOTATION, ConfigError, ConfigShape, PackingConfig, config_shape, parse_config,
)
from driver.sim import trace as tr

# The recipe's Step 6 file, bin-packing-config.yaml, with its comments: a ConfigMap whose
# config.yaml holds the scheduling: block.
SEED_CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: kai-scheduler-config
  namespace: kai-scheduler
data:
  config.yaml: |
    scheduling:
      strategy: binpack  # Pack pods onto fewest nodes
      binpacking:
        weights:
          gpu: 10        # Highest priority to pack GPUs
          cpu: 2
          memory: 1
        thresholds:
          gpu: 0.8       # Consider node "full" at 80% GPU
          cpu: 0.9
          memory: 0.9
"""
SEED_BLOCK = yaml.safe_load(yaml.safe_load(SEED_CONFIGMAP)["data"]["config.yaml"])
SEED_CONFIG = PackingConfig(strategy="binpack", weights={"gpu": 10.0, "cpu": 2.0, "memory": 1.0},
                            thresholds={"gpu": 0.8, "cpu": 0.9, "memory": 0.9})


def _error(raw: Any, where: str = "packing") -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(raw, where)
    return str(err.value)


# ---- the recipe's scheduling: block --------------------------------------------------------------


def test_recipe_step6_block_as_written():
    assert config_shape(SEED_BLOCK) is ConfigShape.RECIPE
    assert parse_config(SEED_BLOCK) == SEED_CONFIG


def test_recipe_step6_configmap_file_as_written():
    raw = yaml.safe_load(SEED_CONFIGMAP)
    assert config_shape(raw) is ConfigShape.OBJECT
    assert parse_config(raw, "bin-packing-config.yaml") == SEED_CONFIG


def test_spreading_block_goes_with_spread_and_omitted_values_keep_our_defaults():
    cfg = parse_config({"scheduling": {"strategy": "spread", "spreading": {"weights": {"gpu": 3},
                                                                           "thresholds": {"cpu": 0.7}}}})
    assert cfg == PackingConfig(strategy="spread", weights={"gpu": 3.0, "cpu": 0.25, "memory": 0.25},
                                thresholds={"gpu": 1.0, "cpu": 0.7, "memory": 1.0})


@pytest.mark.parametrize("block, strategy", [
    ({"strategy": "binpack"}, "binpack"),
    ({"strategy": "fgd"}, "fgd"),
    ({"strategy": "spread", "spreading": None}, "spread"),  # `spreading:` left empty
    ({}, "fragmentation"),
    (None, "fragmentation"),  # `scheduling:` left empty
])
def test_recipe_block_without_settings_keeps_our_defaults(block, strategy):
    assert parse_config({"scheduling": block}) == PackingConfig(strategy=strategy)


@pytest.mark.parametrize("block, field, owner", [
    ({"strategy": "spread", "binpacking": {"weights": {"gpu": 10}}}, "binpacking", "binpack"),
    ({"strategy": "binpack", "spreading": {}}, "spreading", "spread"),
    ({"binpacking": {}}, "binpacking", "binpack"),  # no strategy: ours, fragmentation
    ({"strategy": "binpack", "binpacking": {}, "spreading": {}}, "spreading", "spread"),
])
def test_block_of_another_strategy_is_refused_not_ignored(block, field, owner):
    message = _error({"scheduling": block})
    assert message.startswith(f"packing.scheduling.{field}: applies only with strategy {owner}"), message


@pytest.mark.parametrize("block, field", [
    ({"strategy": "binpak"}, "packing.scheduling.strategy"),
    ({"strategy": "binpack", "binpacking": {"weights": {"gpu": "high"}}},
     "packing.scheduling.binpacking.weights.gpu"),
    ({"strategy": "binpack", "binpacking": {"weights": {"disk": 1}}}, "packing.scheduling.binpacking.weights.disk"),
    ({"strategy": "binpack", "binpacking": {"weights": {"gpu": 0, "cpu": 0, "memory": 0}}},
     "packing.scheduling.binpacking.weights"),
    ({"strategy": "binpack", "binpacking": {"thresholds": {"gpu": 1.5}}}, "packing.scheduling.binpacking.thresholds.gpu"),
    ({"strategy": "spread", "spreading": {"thresholds": [0.8]}}, "packing.scheduling.spreading.thresholds"),
    ({"strategy": "binpack", "binpacking": {"weight": {}}}, "packing.scheduling.binpacking.weight"),
    ({"strategy": "binpack", "binpacking": [1]}, "packing.scheduling.binpacking"),
    ({"strategy": "binpack", "preemption": True}, "packing.scheduling.preemption"),
])
def test_recipe_errors_name_the_field(block, field):
    message = _error({"scheduling": block})
    assert message.startswith(field + ":"), message


def test_scheduling_must_be_a_mapping():
    assert _error({"scheduling": "binpack"}).startswith("packing.scheduling: expected a mapping")


@pytest.mark.parametrize("field", ["weights", "thresholds", "coverage", "pluginWeights"])
def test_our_field_inside_the_recipe_block_points_to_our_shape(field):
    message = _error({"scheduling": {"strategy": "binpack", field: {}}})
    assert message.startswith(f"packing.scheduling.{field}: not part of the scheduling: block")
    assert "our own shape" in message


def test_mixing_our_shape_with_the_recipe_block_names_both():
    message = _error({"strategy": "spread", "coverage": 0.9, **SEED_BLOCK}, "packing.yaml")
    assert message.startswith("packing.yaml: mixes")
    assert "strategy, coverage" in message and "scheduling" in message


# ---- KAI's SchedulingShard ----------------------------------------------------------------------


@pytest.mark.parametrize("placement, strategy", [
    ({"gpu": "binpack", "cpu": "binpack"}, "binpack"),  # KAI docs, "Advanced Shard Configuration"
    ({"gpu": "spread", "cpu": "spread"}, "spread"),
    ({}, "binpack"),  # both unset: KAI's default
    (None, "binpack"),
])
def test_shard_spec_placement_strategy(placement, strategy):
    raw = {"placementStrategy": placement}
    assert config_shape(raw) is ConfigShape.KAI_SHARD_SPEC
    assert parse_config(raw) == PackingConfig(strategy=strategy)


def test_shard_object_and_the_default_shard_without_spec():
    shard = {"apiVersion": "kai.scheduler/v1", "kind": "SchedulingShard", "metadata": {"name": "gpu-shard"},
             "spec": {"placementStrategy": {"gpu": "spread", "cpu": "spread"}},
             "status": {"conditions": []}}  # as `kubectl get -o yaml` returns it
    assert parse_config(shard) == PackingConfig(strategy="spread")
    default_shard = {"apiVersion": "kai.scheduler/v1", "kind": "SchedulingShard", "metadata": {"name": "default"}}
    assert parse_config(default_shard) == PackingConfig(strategy="binpack")


@pytest.mark.parametrize("placement, field, said", [
    ({"gpu": "spread"}, "cpu", "unset, which KAI reads as binpack"),  # KAI docs' own example
    ({"cpu": "spread"}, "gpu", "unset, which KAI reads as binpack"),
    ({"gpu": "binpack", "cpu": "spread"}, "cpu", "spread"),
])
def test_different_gpu_and_cpu_strategies_have_no_equivalent(placement, field, said):
    message = _error({"placementStrategy": placement})
    assert message.startswith(f"packing.placementStrategy.{field}: {said}, while"), message
    assert ANNOTATION in message  # what to use instead: a per-workload strategy


@pytest.mark.parametrize("placement, field", [
    ({"gpu": "fragmentation", "cpu": "fragmentation"}, "packing.placementStrategy.gpu"),
    ({"gpu": "binpack", "cpu": "Spread"}, "packing.placementStrategy.cpu"),
    ({"gpu": "binpack", "memory": "binpack"}, "packing.placementStrategy.memory"),
    ("binpack", "packing.placementStrategy"),  # the CRD's field is an object; the string is the Helm value
])
def test_bad_placement_strategy_names_the_field(placement, field):
    assert _error({"placementStrategy": placement}).startswith(field + ":")


@pytest.mark.parametrize("field, value", [
    ("args", {"v": "3"}), ("partitionLabelValue", "gpu-nodes"), ("queueDepthPerAction", {"allocate": 25}),
    ("minRuntime", {"preemptMinRuntime": "10m"}), ("kValue", 2.0), ("usageDBConfig", {"clientType": "prometheus"}),
    ("plugins", {"elastic": {"enabled": False}}), ("actions", {"consolidation": {"enabled": False}}),
    ("stuckInReleasingThreshold", "2m"),
])
def test_shard_fields_without_equivalent_are_refused_by_name(field, value):
    message = _error({"placementStrategy": {"gpu": "binpack", "cpu": "binpack"}, field: value})
    assert message.startswith(f"packing.{field}: ")
    assert "only placementStrategy is read" in message
    # inside the object, the path goes through spec
    shard = {"apiVersion": "kai.scheduler/v1", "kind": "SchedulingShard", "spec": {field: value}}
    assert _error(shard).startswith(f"packing.spec.{field}: ")


def test_shard_spec_field_unknown_to_kai():
    assert _error({"placementStrategy": {}, "placement": "spread"}).startswith("packing.placement: unknown field")


# ---- KAI's Helm values ------------------------------------------------------------------------------


@pytest.mark.parametrize("scheduler, strategy", [
    ({"placementStrategy": "spread"}, "spread"), ({"placementStrategy": "binpack"}, "binpack"), ({}, "binpack"),
])
def test_kai_helm_value_placement_strategy(scheduler, strategy):
    raw = {"scheduler": scheduler}
    assert config_shape(raw) is ConfigShape.KAI_HELM_VALUES
    assert parse_config(raw) == PackingConfig(strategy=strategy)


@pytest.mark.parametrize("raw, field", [
    ({"scheduler": {"placementStrategy": "spread", "image": {"name": "scheduler"}}}, "packing.scheduler.image"),
    ({"scheduler": {"placementStrategy": "fgd"}}, "packing.scheduler.placementStrategy"),
    ({"scheduler": {"placementStrategy": "spread"}, "global": {"gpuSharing": True}}, "packing.global"),
    ({"scheduler": ["binpack"]}, "packing.scheduler"),
])
def test_kai_helm_values_errors_name_the_field(raw, field):
    assert _error(raw).startswith(field + ":")


# ---- Kubernetes objects ---------------------------------------------------------------------------


def test_configmap_may_hold_any_shape_and_errors_go_through_its_key():
    kai = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"shard.yaml": yaml.safe_dump(
        {"apiVersion": "kai.scheduler/v1", "kind": "SchedulingShard", "spec": {"placementStrategy": {
            "gpu": "spread", "cpu": "spread"}}})}}
    assert parse_config(kai) == PackingConfig(strategy="spread")
    ours = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"packing.yaml": "strategy: fgd\ncoverage: 0.9\n"}}
    assert parse_config(ours) == PackingConfig(strategy="fgd", coverage=0.9)
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"config.yaml": "scheduling:\n  strategy: tight\n"}}
    assert _error(bad, "f.yaml").startswith("f.yaml.data[config.yaml].scheduling.strategy: unknown scheduling strategy")


@pytest.mark.parametrize("raw, field", [
    ({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a.yaml": "{}", "b.yaml": "{}"}}, "packing.data"),
    ({"apiVersion": "v1", "kind": "ConfigMap"}, "packing.data"),
    ({"apiVersion": "v1", "kind": "ConfigMap", "data": {"config.yaml": "scheduling: [unclosed"}},
     "packing.data[config.yaml]"),
    ({"apiVersion": "v1", "kind": "ConfigMap", "data": {"config.yaml": SEED_CONFIGMAP}}, "packing.data[config.yaml]"),
    ({"apiVersion": "v1", "kind": "ConfigMap", "binaryData": {}, "data": {"c": "{}"}}, "packing.binaryData"),
    ({"apiVersion": "apps/v1", "kind": "ConfigMap", "data": {"c": "{}"}}, "packing.apiVersion"),
    ({"apiVersion": "scheduling.run.ai/v1", "kind": "SchedulingShard"}, "packing.apiVersion"),
    ({"apiVersion": "kai.scheduler/v1", "kind": "SchedulingShard", "spec": {}, "data": {}}, "packing.data"),
    ({"apiVersion": "kai.scheduler/v1", "kind": "SchedulingShard", "metadata": "default"}, "packing.metadata"),
    ({"apiVersion": "kai.scheduler/v1", "kind": "Config", "spec": {"global": {}}}, "packing.kind"),
    ({"apiVersion": "scheduling.run.ai/v2", "kind": "Queue", "spec": {}}, "packing.kind"),
    ({"spec": {"placementStrategy": {"gpu": "spread"}}}, "packing.kind"),
])
def test_object_errors_name_the_field(raw, field):
    message = _error(raw)
    assert message.startswith(field + ":"), message


# ---- shapes and mixing ------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, kinds", [
    ({"placementStrategy": {}, **SEED_BLOCK}, ("a KAI SchedulingShard spec (placementStrategy)", "scheduling")),
    ({"strategy": "binpack", "scheduler": {}}, ("our top-level fields (strategy)", "KAI's Helm values (scheduler)")),
    ({"kind": "SchedulingShard", "strategy": "spread"}, ("a Kubernetes object (kind)", "strategy")),
])
def test_any_two_shapes_in_one_file_are_refused_naming_both(raw, kinds):
    message = _error(raw)
    assert message.startswith("packing: mixes")
    assert all(k in message for k in kinds), message


def test_our_shape_is_unchanged():
    raw = {"strategy": "spread", "weights": {"gpu": 2}, "thresholds": {"memory": 0.9}, "coverage": 0.8,
           "pluginWeights": {"InterPodAffinity": 5}, "interPodAffinity": {"hardPodAffinityWeight": 3},
           "topologySpread": {"defaultingType": "System"}}
    assert config_shape(raw) is ConfigShape.OURS and config_shape({}) is ConfigShape.OURS
    cfg = parse_config(raw)
    assert (cfg.strategy, cfg.weights["gpu"], cfg.thresholds["memory"], cfg.coverage) == ("spread", 2.0, 0.9, 0.8)
    assert (cfg.plugin_weights["InterPodAffinity"], cfg.hard_pod_affinity_weight,
            cfg.spread_defaulting) == (5.0, 3, "System")
    assert parse_config({}) == parse_config(None) == PackingConfig()
    assert _error({"stratgy": "binpack"}).startswith("packing.stratgy: unknown field; expected one of coverage")


def test_the_recipes_install_value_is_explained():
    message = _error({"gpuSharing": {"enabled": True, "strategy": "binpack"}})
    assert message.startswith("packing.gpuSharing: the KAI recipe's install value")


# ---- what the recipe's thresholds do ----------------------------------------------------------------


def _place_all(config: PackingConfig, pods: int) -> list[str]:
    """Nodes chosen for `pods` pods of 200m GPU each on two idle nodes with two T4s (2000m) each."""
    nodes = [tr.TraceNode("node-a", 32000, 131072, 2, "T4"), tr.TraceNode("node-b", 32000, 131072, 2, "T4")]
    cls = tr.fractional_class()
    state = ClusterState({cls["metadata"]["name"]: cls}, config)
    inventories = build_inventories([s for s in map(tr.node_slice, nodes) if s])
    for n in nodes:
        state.add_node(tr.node_dict(n), inventories.get(n.name))
    chosen = []
    for i in range(pods):
        pod, claims = tr.pod_objects(tr.TracePod(f"p{i}", 1000, 1024, 1, 200, ()), f"p{i}")
        result = schedule(pod, claims, state)
        assert isinstance(result, Placement), result
        state.commit(result)
        chosen.append(result.node)
    return chosen


def test_recipe_gpu_threshold_keeps_the_last_fifth_of_a_node_in_reserve():
    """Binpack with the recipe's gpu: 0.8: eight 200m pods fill the first node to 80 % (not above
    the threshold); the ninth, which would take it to 90 %, goes to the idle node although the first
    still has room. With our default threshold (1.0) the ninth stays on the first node."""
    seeded = _place_all(parse_config(yaml.safe_load(SEED_CONFIGMAP)), 9)
    assert len(set(seeded[:8])) == 1 and seeded[8] != seeded[0]
    plain = _place_all(PackingConfig(strategy="binpack"), 9)
    assert len(set(plain)) == 1


# ---- through the command line -----------------------------------------------------------------------


def test_schedule_reads_the_recipes_configmap_file(capsys, tmp_path: Path):
    from test_schedule_cli import DRIVER, H100, gpu_claim, gpu_cluster, pod

    def write(name: str, docs: list[dict]) -> str:
        (tmp_path / name).write_text(yaml.safe_dump_all(docs))
        return str(tmp_path / name)

    cluster = write("cluster.yaml", gpu_cluster())
    want = write("pod.yaml", [pod("job", {"gpu": "job-gpu"}),
                              gpu_claim("job-gpu", 7, [f"device.attributes['{DRIVER}'].productName != '{H100}'"])])
    config = tmp_path / "bin-packing-config.yaml"
    config.write_text(SEED_CONFIGMAP)
    rc = main(["schedule", "--now", "2025-06-01T00:00:00Z", "-f", cluster, "-f", want, "--config", str(config)])
    out, err = capsys.readouterr()
    assert (rc, err) == (0, "")
    assert out.splitlines()[0] == "default/job: scheduled on node a100-1 (strategy binpack)"

    config.write_text(SEED_CONFIGMAP.replace("strategy: binpack", "strategy: spread"))
    rc = main(["schedule", "-f", cluster, "-f", want, "--config", str(config)])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert err.strip() == (f"gpu-dra schedule: --config {config}: {config}.data[config.yaml].scheduling.binpacking: "
                           f"applies only with strategy binpack, but {config}.data[config.yaml].scheduling.strategy "
                           "is spread; remove it or set strategy: binpack")


# ---- the Helm chart ---------------------------------------------------------------------------------


helm = pytest.importorskip("helm_python")
CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "gpu-dra"


def _packing_yaml(values: dict[str, Any]) -> Any:
    rendered = helm.Chart.load(CHART).render(values=values, name="gpu-dra", namespace="gpu-dra-system",
                                             is_install=True)
    for path, text in rendered.items():
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc and doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] == "gpu-dra-controller":
                return yaml.safe_load(doc["data"]["packing.yaml"])
    raise AssertionError("no controller ConfigMap rendered")


def test_chart_defaults_write_an_empty_config_the_controller_fills_in():
    assert parse_config(_packing_yaml({})) == PackingConfig()


def test_chart_takes_the_recipe_block_unchanged():
    raw = _packing_yaml({"controller": {"packing": SEED_BLOCK}})
    assert raw == SEED_BLOCK
    assert parse_config(raw) == SEED_CONFIG


@pytest.mark.parametrize("packing, words", [
    ({"strategy": "spread", **SEED_BLOCK}, "controller.packing: mixes our fields (strategy)"),
    ({"scheduling": {"strategy": "spread", "binpacking": {}}},
     "controller.packing.scheduling.binpacking: applies only with strategy binpack"),
    ({"scheduling": {"binpacking": {"weights": {"gpu": 1}}}},
     "controller.packing.scheduling.binpacking: applies only with strategy binpack"),
])
def test_chart_refuses_what_the_controller_would(packing, words):
    with pytest.raises(helm.HelmError) as err:
        _packing_yaml({"controller": {"packing": packing}})
    assert words in str(err.value)
    with pytest.raises(ConfigError):
        parse_config(packing)


@pytest.mark.parametrize("packing, where", [
    ({"scheduling": {"strategy": "binpak"}}, "/controller/packing/scheduling/strategy"),
    ({"scheduling": {"strategy": "binpack", "binpacking": {"thresholds": {"gpu": 1.5}}}},
     "/controller/packing/scheduling/binpacking/thresholds/gpu"),
    ({"scheduling": {"strategy": "binpack", "binpacking": {"weights": {"disk": 1}}}},
     "/controller/packing/scheduling/binpacking/weights"),
    ({"scheduling": {"strategy": "binpack", "coverage": 0.9}}, "/controller/packing/scheduling"),
])
def test_chart_schema_checks_the_recipe_block(packing, where):
    with pytest.raises(helm.HelmValuesError) as err:
        _packing_yaml({"controller": {"packing": packing}})
    assert where in str(err.value)
