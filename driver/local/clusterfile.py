"""The local cluster description: which nodes exist, their size, mock GPUs and sharing mode.

    driverName: gpu.nvidia.com          # optional, default gpu.nvidia.com
    nodes:
      - name: gpu-a100-whole            # DNS subdomain
        cpu: "64"                       # quantity
        memory: 512Gi                   # quantity
        pods: 110                       # optional, default 110
        labels: {pool: training}        # optional; kubernetes.io/hostname is added
        nvml: a100-80gb-x8              # mock node description: shipped name, path, or inline mapping
        sharing: {mode: whole}          # the plugin node config's `sharing` block
        gpus: {"1": {mode: timeslicing, replicas: 2}}   # optional per-GPU overrides

Parsing is strict and every error names the field (`nodes[2].memory: ...`): a typo in a cluster
file would otherwise silently give a different cluster. The NVML description and the sharing
config are checked by the parsers their consumers use (driver.nvml.mock, driver.devices.nodeconfig).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any


from driver.dra.quantity import format_quantity, parse_quantity
from driver.local.validation import is_dns_subdomain, validate_metadata

DEFAULT_CLUSTER = Path(__file__).parent / "clusters" / "default.yaml"
DEFAULT_DRIVER = "gpu.nvidia.com"

_TOP_KEYS = {"driverName", "nodes"}
_NODE_KEYS = {"name", "cpu", "memory", "pods", "labels", "nvml", "sharing", "gpus"}


class ClusterFileError(ValueError):
    """A cluster description that cannot be used; the message names the field."""


@dataclass
class NodeSpec:
    """One emulated node."""

    name: str
    cpu: Fraction
    memory: Fraction
    pods: int = 110
    labels: dict[str, str] = field(default_factory=dict)
    nvml: str | dict[str, Any] | None = None  # None: a node without GPUs
    sharing: dict[str, Any] = field(default_factory=lambda: {"mode": "whole"})
    gpus: dict[str, Any] = field(default_factory=dict)

    def node_config(self, driver_name: str) -> dict[str, Any]:
        """The kubelet plugin's node config (driver.devices.nodeconfig format) for this node."""
        config: dict[str, Any] = {"driverName": driver_name, "sharing": dict(self.sharing)}
        if self.gpus:
            config["gpus"] = dict(self.gpus)
        return config

    def nvml_spec(self) -> str | dict[str, Any] | None:
        return self.nvml

    def capacity(self) -> dict[str, str]:
        return {"cpu": format_quantity(self.cpu), "memory": format_quantity(self.memory), "pods": str(self.pods)}


@dataclass
class ClusterSpec:
    driver_name: str
    nodes: list[NodeSpec]


def _quantity(raw: Any, where: str) -> Fraction:
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise ClusterFileError(f"{where}: expected a quantity such as '64' or '512Gi', got {raw!r}")
    try:
        value = parse_quantity(raw, where)
    except ValueError as exc:
        raise ClusterFileError(str(exc)) from None
    if value <= 0:
        raise ClusterFileError(f"{where}: must be greater than zero, got {raw!r}")
    return value


def _check_nvml(raw: Any, where: str) -> None:
    from driver.nvml.mock import load_node, parse_node

    if not isinstance(raw, (str, dict)):
        raise ClusterFileError(f"{where}: expected a node description name, path or mapping, got {raw!r}")
    try:
        if isinstance(raw, dict):
            parse_node(raw, where)
        else:
            load_node(raw)
    except (ValueError, OSError) as exc:
        raise ClusterFileError(f"{where}: {exc}") from None


def _check_sharing(node: NodeSpec, driver: str, where: str) -> None:
    from driver.devices.nodeconfig import parse_node_config

    try:
        parse_node_config(node.node_config(driver), where)
    except ValueError as exc:
        raise ClusterFileError(str(exc)) from None


def _node(raw: Any, where: str, driver: str) -> NodeSpec:
    if not isinstance(raw, dict):
        raise ClusterFileError(f"{where}: expected a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _NODE_KEYS)
    if unknown:
        raise ClusterFileError(f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(_NODE_KEYS))})")
    for key in ("name", "cpu", "memory"):
        if key not in raw:
            raise ClusterFileError(f"{where}.{key}: required")
    name = raw["name"]
    if not is_dns_subdomain(name):
        raise ClusterFileError(f"{where}.name: expected a DNS subdomain (lowercase letters, digits, '-', '.'), got {name!r}")
    pods = raw.get("pods", 110)
    if isinstance(pods, bool) or not isinstance(pods, int) or pods <= 0:
        raise ClusterFileError(f"{where}.pods: expected a positive integer, got {pods!r}")
    labels = raw.get("labels") or {}
    if not isinstance(labels, dict):
        raise ClusterFileError(f"{where}.labels: expected a mapping of strings, got {labels!r}")
    labels = {str(k): str(v) for k, v in labels.items()}
    causes = validate_metadata({"name": name, "labels": labels})
    if causes:
        raise ClusterFileError(f"{where}.labels: {causes[0][1]}")
    node = NodeSpec(name=name, cpu=_quantity(raw["cpu"], f"{where}.cpu"), memory=_quantity(raw["memory"], f"{where}.memory"),
                    pods=pods, labels=labels)
    if raw.get("nvml") is not None:
        _check_nvml(raw["nvml"], f"{where}.nvml")
        node.nvml = raw["nvml"]
    if "sharing" in raw:
        if not isinstance(raw["sharing"], dict):
            raise ClusterFileError(f"{where}.sharing: expected a mapping such as {{mode: whole}}, got {raw['sharing']!r}")
        node.sharing = dict(raw["sharing"])
    if "gpus" in raw:
        if not isinstance(raw["gpus"], dict):
            raise ClusterFileError(f"{where}.gpus: expected a mapping of GPU index to sharing, got {raw['gpus']!r}")
        node.gpus = {str(k): v for k, v in raw["gpus"].items()}
    if node.nvml is not None:
        _check_sharing(node, driver, f"{where}")
    return node


def parse_cluster(raw: Any, source: str = "cluster description") -> ClusterSpec:
    """Validate a cluster description dict (see the module docstring)."""
    if not isinstance(raw, dict):
        raise ClusterFileError(f"{source}: expected a mapping with `nodes`, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise ClusterFileError(f"{source}: unknown field(s) {', '.join(unknown)} (known: driverName, nodes)")
    driver = raw.get("driverName", DEFAULT_DRIVER)
    if not is_dns_subdomain(driver):
        raise ClusterFileError(f"{source}: driverName: expected a DNS subdomain, got {driver!r}")
    nodes_raw = raw.get("nodes")
    if not isinstance(nodes_raw, list) or not nodes_raw:
        raise ClusterFileError(f"{source}: nodes: expected a non-empty list of nodes")
    nodes = [_node(n, f"{source}: nodes[{i}]", driver) for i, n in enumerate(nodes_raw)]
    seen: set[str] = set()
    for i, node in enumerate(nodes):
        if node.name in seen:
            raise ClusterFileError(f"{source}: nodes[{i}].name: duplicate node name {node.name!r}")
        seen.add(node.name)
    return ClusterSpec(driver, nodes)


def load_cluster(path: str | Path | None = None) -> ClusterSpec:
    """Read a cluster description file (default: the shipped default cluster)."""
    target = Path(path) if path is not None else DEFAULT_CLUSTER
    from driver.cliinput import BAD_YAML, InputFileError, load_yaml

    try:
        raw = load_yaml(target)
    except InputFileError as exc:
        # This file's errors have always said "cannot read" / "not valid YAML".
        why = f"not valid YAML{exc.position}: {exc.problem}" if exc.kind == BAD_YAML else f"cannot read: {exc.detail}"
        raise ClusterFileError(f"cluster description {target}: {why}") from None
    return parse_cluster(raw, f"cluster description {target}")
