"""`gpu-dra discover`: print the ResourceSlices a node would publish.

    gpu-dra discover --nvml mock:a100-80gb-mixed --node node-a --mode dynamic --replicas 2 -o yaml
    gpu-dra discover --nvml real --config /etc/gpu-dra/config.yaml     # on a GPU node

The slices are validated (package validator) before printing; exit status 1 if any is invalid,
2 for bad arguments or input files, 3 when NVML cannot be used.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from typing import Any

import yaml

from driver.devices.nodeconfig import MODES


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add this part's subcommands to `gpu-dra`."""
    p = sub.add_parser(
        "discover",
        help="print the ResourceSlices this node would publish",
        description="Discover GPUs through NVML (real or mock) and print the node's ResourceSlices.",
    )
    p.add_argument("--nvml", default="real", help="'real' or 'mock:<profile name | node file>' (default real)")
    p.add_argument("--node", default=None, help="node name (default $NODE_NAME or the host name)")
    p.add_argument("--node-uid", default=None, help="Node UID for ownerReferences (optional)")
    p.add_argument("--config", default=None, help="node config YAML (sharing mode per GPU)")
    p.add_argument("--mode", choices=MODES, default=None, help="override the config's default sharing mode")
    p.add_argument("--replicas", type=int, default=None, help="replicas for timeslicing/dynamic")
    p.add_argument("--driver-name", default=None, help="driver name (default from config, gpu.nvidia.com)")
    p.add_argument("--layout", choices=("1.34", "1.35"), default="1.35", help="counter layout (default 1.35)")
    p.add_argument("--generation", type=int, default=1, help="pool generation (default 1)")
    p.add_argument("-o", "--output", choices=("yaml", "json", "summary"), default="yaml")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from driver import log
    from driver.devices.inventory import discover
    from driver.cliinput import load_yaml
    from driver.devices.nodeconfig import load_node_config, parse_node_config, with_mode
    from driver.devices.slices import build_slices
    from driver.devices.validate import validate_pool
    from driver.nvml import NvmlError, open_backend
    from driver.nvml.strict import DataError

    logger = log.get(__name__)
    node = args.node or os.environ.get("NODE_NAME") or socket.gethostname().split(".")[0].lower()
    try:
        # Read here, not by load_node_config, so that a binary or broken file gets the shared one-line error.
        raw = load_yaml(args.config, "--config") if args.config else None
        config = with_mode(parse_node_config(raw, f"node config {args.config}") if args.config
                           else load_node_config(None), args.mode, args.replicas)
        backend = open_backend(args.nvml, node_name=node)
    except (DataError, ValueError) as exc:
        print(f"gpu-dra discover: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"gpu-dra discover: NVML binding not available: {exc}", file=sys.stderr)
        return 3
    try:
        inventory = discover(backend, config, node)
    except NvmlError as exc:
        print(f"gpu-dra discover: {exc}", file=sys.stderr)
        return 3
    finally:
        try:
            backend.shutdown()
        except NvmlError:
            pass
    try:
        slices = build_slices(inventory, node, args.node_uid, args.driver_name or config.driver_name,
                              args.generation, args.layout)
    except ValueError as exc:
        print(f"gpu-dra discover: {exc}", file=sys.stderr)
        return 2
    problems = validate_pool(slices, args.layout)
    for problem in problems:
        logger.error("invalid_slice", problem=problem)
    _print(slices, inventory, args.output)
    return 1 if problems else 0


def _print(slices: list[dict[str, Any]], inventory: Any, fmt: str) -> None:
    if fmt == "json":
        json.dump({"apiVersion": "v1", "kind": "List", "items": slices}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif fmt == "summary":
        print(f"node {inventory.node_name}: {len(inventory.gpus)} GPU(s), {len(inventory.devices)} device(s), "
              f"{len(inventory.counter_sets)} counter set(s), {len(slices)} slice(s)")
        for index, err in sorted(inventory.errors.items()):
            print(f"  GPU {index}: left out: {err}")
        for d in inventory.devices:
            extra = d.mig_profile or (f"replica {d.replica_index}/{d.replicas}" if d.kind == "replica" else "")
            print(f"  {d.name:<32} {d.kind:<10} {d.uuid or '-':<42} {extra}")
    else:
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: ~10x faster on big nodes
        yaml.dump_all(slices, sys.stdout, Dumper=dumper, sort_keys=False, default_flow_style=False)
