"""The Helm chart, rendered by Helm's own Go engine (helm-python-sdk) for several value sets:
every object is valid Kubernetes (strict OpenAPI, 1.34 and 1.35), every config the chart writes
is accepted by the parser of the component that reads it, and bad values are refused with an
error naming the key."""

from __future__ import annotations

import copy
from typing import Any

import helm_python as helm
import pytest
import yaml

from deploy_support import KUBE_VERSIONS, NAMESPACE, of_kind, one, render, schema_errors
from value_sets import EVERY_MODE, VALUE_SETS


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(copy.deepcopy(VALUE_SETS[request.param]))


def _daemonsets_and_configs(objects: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    pairs = []
    for ds in of_kind(objects, "DaemonSet"):
        volumes = ds["spec"]["template"]["spec"]["volumes"]
        config_name = next(v["configMap"]["name"] for v in volumes if "configMap" in v)
        pairs.append((ds, one(objects, "ConfigMap", config_name)))
    return pairs


def _args(ds_or_deploy: dict[str, Any]) -> list[str]:
    return ds_or_deploy["spec"]["template"]["spec"]["containers"][0]["args"]


def _flag(args: list[str], name: str) -> str:
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    assert len(values) == 1, f"--{name} given {len(values)} times in {args}"
    return values[0]


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_every_object_is_valid_kubernetes(rendered: tuple[str, list[dict[str, Any]]], version: str) -> None:
    _, objects = rendered
    assert objects
    errors = [e for obj in objects for e in schema_errors(obj, version)]
    assert errors == []


def test_names_are_unique_and_namespaced_objects_live_in_the_release_namespace(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    keys = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys))
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "DeviceClass", "ValidatingAdmissionPolicy",
                      "ValidatingAdmissionPolicyBinding"}
    for kind, namespace, name in keys:
        assert namespace == (None if kind in cluster_scoped else NAMESPACE), (kind, name)


def test_components_follow_the_enabled_flags(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, objects = rendered
    values = VALUE_SETS[name]
    groups = values.get("plugin", {}).get("nodeGroups", [{"name": "default"}])
    plugin_on = values.get("plugin", {}).get("enabled", True)
    controller_on = values.get("controller", {}).get("enabled", True)
    assert len(of_kind(objects, "DaemonSet")) == (len(groups) if plugin_on else 0)
    assert len(of_kind(objects, "Deployment")) == (1 if controller_on else 0)
    policy_on = plugin_on and values.get("admissionPolicy", {}).get("enabled", True)
    assert len(of_kind(objects, "ValidatingAdmissionPolicy")) == (1 if policy_on else 0)
    assert len(of_kind(objects, "ValidatingAdmissionPolicyBinding")) == (1 if policy_on else 0)
    replicas = values.get("controller", {}).get("replicas", 2)
    assert len(of_kind(objects, "PodDisruptionBudget")) == (1 if controller_on and replicas > 1 else 0)


def test_node_configs_are_accepted_by_the_plugin_parser(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    from driver.devices.nodeconfig import parse_node_config

    name, objects = rendered
    driver = VALUE_SETS[name].get("driverName", "gpu.nvidia.com")
    for ds, config in _daemonsets_and_configs(objects):
        parsed = parse_node_config(yaml.safe_load(config["data"]["node-config.yaml"]), ds["metadata"]["name"])
        assert parsed.driver_name == driver
        assert _flag(_args(ds), "driver-name") == driver


def test_mock_backends_name_descriptions_the_mock_can_load(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    from driver.nvml.mock import load_node, parse_node

    _, objects = rendered
    for ds, config in _daemonsets_and_configs(objects):
        nvml = _flag(_args(ds), "nvml")
        if nvml == "real":
            continue
        assert nvml.startswith("mock:")
        if nvml == "mock:/etc/gpu-dra/mock-node.yaml":
            parse_node(yaml.safe_load(config["data"]["mock-node.yaml"]), ds["metadata"]["name"])
        else:
            load_node(nvml.removeprefix("mock:"))


def test_mig_group_carries_its_mig_config_into_the_mock_node_only() -> None:
    objects = render(copy.deepcopy(EVERY_MODE))
    config = one(objects, "ConfigMap", "gpu-dra-kubelet-plugin-mig")
    assert yaml.safe_load(config["data"]["node-config.yaml"]) == {
        "driverName": "gpu.nvidia.com", "sharing": {"mode": "mig"}}
    assert yaml.safe_load(config["data"]["mock-node.yaml"]) == {
        "profile": "A100-SXM4-80GB", "gpuCount": 8, "migConfig": "all-1g.10gb"}
    timeslicing = one(objects, "ConfigMap", "gpu-dra-kubelet-plugin-timeslicing")
    assert yaml.safe_load(timeslicing["data"]["node-config.yaml"]) == {
        "driverName": "gpu.nvidia.com", "sharing": {"mode": "timeslicing", "replicas": 4},
        "gpus": {"0": {"mode": "whole"}}}


def test_node_groups_select_their_nodes_and_keep_their_own_tolerations() -> None:
    objects = render(copy.deepcopy(EVERY_MODE))
    for group in EVERY_MODE["plugin"]["nodeGroups"]:
        pod = one(objects, "DaemonSet", f"gpu-dra-kubelet-plugin-{group['name']}")["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == group["nodeSelector"]
        expected = group.get("tolerations", [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
        assert pod["tolerations"] == expected


def test_packing_config_is_accepted_by_the_controller(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    from driver.scheduler.packing.scoring import parse_config

    name, objects = rendered
    for deployment in of_kind(objects, "Deployment"):
        assert _flag(_args(deployment), "config") == "/etc/gpu-dra/packing.yaml"
        config_name = deployment["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"]
        raw = yaml.safe_load(one(objects, "ConfigMap", config_name)["data"]["packing.yaml"])
        parsed = parse_config(raw)
        expected = VALUE_SETS[name].get("controller", {}).get("packing", {}).get("strategy", "fragmentation")
        assert parsed.strategy == expected


@pytest.mark.parametrize("values,layout", [({}, "1.35"), ({"plugin": {"sliceLayout": "1.34"}}, "1.34")])
def test_slice_layout_follows_the_cluster_unless_set(values: dict[str, Any], layout: str) -> None:
    (ds,) = of_kind(render(values), "DaemonSet")
    assert _flag(_args(ds), "slice-layout") == layout


def test_config_changes_roll_the_pods() -> None:
    def checksums(values: dict[str, Any]) -> dict[str, str]:
        return {
            o["metadata"]["name"]: o["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for o in render(values) if o["kind"] in ("DaemonSet", "Deployment")
        }

    base = checksums({})
    changed = checksums({"controller": {"packing": {"strategy": "binpack"}},
                         "plugin": {"nodeGroups": [{"name": "default", "sharing": {"mode": "fractional"}}]}})
    assert base.keys() == changed.keys()
    assert all(base[name] != changed[name] for name in base)
    assert checksums({}) == base


def test_component_arguments_are_accepted_by_the_cli(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    """The chart's command lines parse with the real `gpu-dra` parser (flags exist, values valid)."""
    from driver.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    _, objects = rendered
    for obj in of_kind(objects, "DaemonSet") + of_kind(objects, "Deployment"):
        args = _args(obj)
        command = next(a for a in args if not a.startswith("-"))
        if command not in commands:
            pytest.skip(f"`gpu-dra {command}` is not implemented yet")
        parsed = parser.parse_args(args)
        assert parsed.command == command


# Values that must be refused, with the text the error must contain (the key's path and what is wrong).
BAD_VALUES = [
    ({"controller": {"packing": {"strategy": "bnpack"}}}, "/controller/packing/strategy"),
    ({"controller": {"packing": {"strategy": "spread", "thresholds": {"gpu": 1.5}}}}, "/controller/packing/thresholds/gpu"),
    ({"controller": {"packing": {"strategy": "spread", "weights": {"disk": 1}}}}, "/controller/packing/weights"),
    ({"controller": {"replicas": 0}}, "/controller/replicas"),
    ({"nvml": "fake"}, "/nvml"),
    ({"controler": {}}, "controler"),
    ({"driverName": "GPU_Vendor"}, "/driverName"),
    ({"kubeletDir": "var/lib/kubelet"}, "/kubeletDir"),
    ({"plugin": {"nodeGroups": []}}, "/plugin/nodeGroups"),
    ({"plugin": {"nodeGroups": [{"name": "a", "sharing": {"mode": "timeslicing"}}]}}, "replicas"),
    ({"plugin": {"nodeGroups": [{"name": "a", "sharing": {"mode": "timeslicing", "replicas": 1}}]}}, "/plugin/nodeGroups/0/sharing"),
    ({"plugin": {"nodeGroups": [{"name": "a", "sharing": {"mode": "whole", "replicas": 2}}]}}, "/plugin/nodeGroups/0/sharing"),
    ({"plugin": {"nodeGroups": [{"name": "a", "sharing": {"mode": "shared"}}]}}, "/plugin/nodeGroups/0/sharing/mode"),
    ({"plugin": {"nodeGroups": [{"name": "a", "sharing": {"mode": "whole"}, "gpus": {"x": {"mode": "whole"}}}]}}, "/plugin/nodeGroups/0/gpus"),
    ({"plugin": {"nodeGroups": [{"name": "a", "sharing": {"mode": "whole"},
                                 "gpus": {"1": {"mode": "mig", "migConfig": "all-1g.10gb"}}}]}}, "/plugin/nodeGroups/0/gpus/1"),
    ({"plugin": {"nodeGroups": [{"name": "Bad_Name", "sharing": {"mode": "whole"}}]}}, "/plugin/nodeGroups/0/name"),
]


@pytest.mark.parametrize("values,where", BAD_VALUES)
def test_bad_values_are_refused_with_the_key(values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        render(values)
    assert where in str(caught.value)


BAD_GROUPS = [
    ([{"name": "a", "sharing": {"mode": "whole"}}, {"name": "a", "nodeSelector": {"x": "y"}, "sharing": {"mode": "whole"}}],
     'plugin.nodeGroups[1]: the name "a" is used twice'),
    ([{"name": "a", "nodeSelector": {"x": "y"}, "sharing": {"mode": "whole"}},
      {"name": "b", "nodeSelector": {"x": "y"}, "sharing": {"mode": "fractional"}}],
     "plugin.nodeGroups[1] (b): same nodeSelector as node group a"),
    ([{"name": "a", "nvml": "mock", "sharing": {"mode": "whole"}}],
     "plugin.nodeGroups[a]: nvml is \"mock\" but neither the group nor the chart has a mockNode"),
]


@pytest.mark.parametrize("groups,message", BAD_GROUPS)
def test_conflicting_node_groups_are_refused(groups: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(helm.HelmRenderError) as caught:
        render({"plugin": {"nodeGroups": groups}})
    assert message in str(caught.value)


def test_chart_lints_clean() -> None:
    from deploy_support import CHART_DIR

    report = helm.lint(CHART_DIR, strict=True, namespace=NAMESPACE)
    assert report["errors"] == [], report
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
