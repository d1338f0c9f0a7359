"""Subcommands of this part (registered by driver.cli): `kubelet-plugin`, and `bench prepare`.

`gpu-dra bench` is created by driver/sim/commands.py, which calls `register_bench` here.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else None


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add this part's subcommands to `gpu-dra`."""
    p = sub.add_parser("kubelet-plugin", help="run the node's kubelet plugin (DRA gRPC, slices, health)")
    p.add_argument("--node-name", default=os.environ.get("NODE_NAME", ""), help="this node (env NODE_NAME)")
    p.add_argument("--driver-name", default=os.environ.get("DRIVER_NAME", "gpu.nvidia.com"))
    p.add_argument("--nvml", default=os.environ.get("NVML", "real"), help="'real' or 'mock:<profile|node file>'")
    p.add_argument("--config", dest="node_config", default=os.environ.get("NODE_CONFIG") or None,
                   help="node sharing config (YAML file)")
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG") or None,
                   help="kubeconfig file (default: in-cluster service account)")
    p.add_argument("--plugin-dir", default=None, help="DRA socket directory (default /var/lib/kubelet/plugins/<driver>)")
    p.add_argument("--registry-dir", default="/var/lib/kubelet/plugins_registry", help="kubelet plugin registry dir")
    p.add_argument("--cdi-root", default="/var/run/cdi", help="where CDI specs are written")
    p.add_argument("--state-dir", default=None, help="checkpoint directory (default: plugin dir)")
    p.add_argument("--health-port", type=int, default=_env_int("HEALTH_PORT"),
                   help="HTTP port for /healthz and /metrics (0 = any free port; default off)")
    p.add_argument("--nvidia-smi", default=None,
                   help="path of nvidia-smi (default: nvidia-smi; with mock NVML simulated; '' = simulated)")
    p.add_argument("--mps-control", default=None,
                   help="path of nvidia-cuda-mps-control (default as for --nvidia-smi)")
    p.add_argument("--slice-layout", default="1.35", choices=["1.34", "1.35"],
                   help="ResourceSlice counter layout of the cluster's Kubernetes version")
    p.set_defaults(func=_run_plugin)


def register_bench(bench: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `gpu-dra bench prepare`."""
    b = bench.add_parser("prepare", help="NodePrepareResources/NodeUnprepareResources latency over the socket")
    b.add_argument("--iterations", type=int, default=200, help="claims prepared per scenario (default 200)")
    b.add_argument("--sizes", default="1,4,8", help="devices per claim (default 1,4,8)")
    b.add_argument("--json", action="store_true", help="print JSON instead of a table")
    b.set_defaults(func=_run_bench)


def _run_plugin(args: argparse.Namespace) -> int:
    from driver import log
    from driver.plugin.driver import Plugin, PluginOptions

    logger = log.get("driver.plugin")
    try:
        options = PluginOptions(
            node_name=args.node_name, driver_name=args.driver_name, nvml=args.nvml, node_config=args.node_config,
            kubeconfig=args.kubeconfig, plugin_dir=args.plugin_dir, registry_dir=args.registry_dir,
            cdi_root=args.cdi_root, state_dir=args.state_dir, health_port=args.health_port,
            nvidia_smi=args.nvidia_smi, mps_control=args.mps_control, slice_layout=args.slice_layout)
    except ValueError as exc:
        logger.error("bad_options", error=str(exc))
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    plugin = Plugin(options)
    try:
        plugin.start()
    except Exception as exc:  # noqa: BLE001 - one clear line, not a traceback, for a bad start
        logger.error("plugin_start_failed", error=str(exc))
        try:
            plugin.stop()  # release whatever started (sockets, threads) before exiting
        except Exception as stop_exc:  # noqa: BLE001 - the start error is the one to report
            logger.warning("plugin_stop_after_failed_start", error=str(stop_exc))
        return 1
    stop.wait()
    plugin.stop()
    return 0


def _run_bench(args: argparse.Namespace) -> int:
    from driver.plugin.bench import main

    sizes = [int(s) for s in args.sizes.split(",") if s]
    return main(iterations=args.iterations, sizes=sizes, as_json=args.json)
