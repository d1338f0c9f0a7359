"""Shared builders for device-model tests."""

from __future__ import annotations

from driver.devices import NodeInventory, discover, load_node_config
from driver.nvml import open_backend
from driver.nvml.mock import NODE_DIR

NODE_FILES = sorted(p.name for p in NODE_DIR.glob("*.yaml"))
MODES = {
    "whole": {"mode": "whole"},
    "mig": {"mode": "mig"},
    "timeslicing": {"mode": "timeslicing", "replicas": 4},
    "dynamic": {"mode": "dynamic"},
    "dynamic-replicas": {"mode": "dynamic", "replicas": 3},
    "fractional": {"mode": "fractional"},
}


def inventory(node_file: str, sharing: dict, node: str = "node-a", **config) -> NodeInventory:
    backend = open_backend(f"mock:{node_file}", node)
    return discover(backend, load_node_config({"sharing": sharing, **config}), node)
