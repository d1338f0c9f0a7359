"""Subcommands of this part (registered by driver.cli): `gpu-dra local up|bench-list|bench-claims`."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add this part's subcommands to `gpu-dra`."""
    local = sub.add_parser("local", help="the embedded local cluster (in-memory API server + emulated nodes)")
    local_sub = local.add_subparsers(dest="local_command", metavar="COMMAND")
    up = local_sub.add_parser("up", help="run a local cluster until interrupted")
    up.add_argument("--cluster", default=None, help="cluster description YAML (default: the shipped default cluster)")
    up.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig once the cluster is ready")
    up.add_argument("--port", type=int, default=0, help="API server port on 127.0.0.1 (default: any free port)")
    up.add_argument("--workdir", default=None, help="directory for node state and sockets (default: a temp dir)")
    up.add_argument("--no-plugins", action="store_true", help="do not start the kubelet plugins in-process")
    up.add_argument("--no-device-classes", action="store_true",
                    help="do not create the driver's DeviceClasses (apply your own, e.g. from the Helm chart)")
    up.add_argument("--no-scheduler", action="store_true",
                    help="do not run the gpu-dra scheduler (allocation controller) in-process; pods naming "
                         "gpu-dra-scheduler then wait for one you start yourself (`gpu-dra controller`)")
    up.add_argument("--strategy", default="fragmentation",
                    help="packing strategy of the in-process scheduler (fragmentation, fgd, binpack, spread)")
    up.set_defaults(func=_up)
    bench = local_sub.add_parser("bench-list", help="time lists of many large ResourceSlices over HTTP")
    bench.add_argument("--slices", type=int, default=1000, help="number of slices (default 1000)")
    bench.add_argument("--devices", type=int, default=100, help="devices per slice (default 100)")
    bench.add_argument("--repeats", type=int, default=5, help="lists timed (default 5)")
    bench.add_argument("--models", action="store_true", help="also time one list into client models (slow)")
    bench.set_defaults(func=_bench)
    claims = local_sub.add_parser("bench-claims", help="time the resourceclaim controller generating claims for many pods")
    claims.add_argument("--pods", default="800", help="pod count, or a comma list for a scaling series (default 800)")
    claims.add_argument("--workers", type=int, default=None, help="controller worker threads (default: its default)")
    claims.set_defaults(func=_bench_claims)

    def _help(_args: argparse.Namespace) -> int:
        local.print_help()
        return 2

    local.set_defaults(func=_help)


def _bench(args: argparse.Namespace) -> int:
    import json

    from driver.local.bench import run

    try:
        figures = run(args.slices, args.devices, args.repeats, args.models)
    except ValueError as exc:
        print(f"gpu-dra local bench-list: {exc}")
        return 2
    print(json.dumps(figures, indent=2))
    return 0


def _bench_claims(args: argparse.Namespace) -> int:
    import json

    from driver.local.bench import run_claims

    try:
        try:
            counts = [int(p) for p in str(args.pods).split(",")]
        except ValueError:
            raise ValueError(f"--pods: expected a number or a comma list of numbers, got {args.pods!r}") from None
        if args.workers is not None and args.workers < 1:
            raise ValueError(f"--workers: expected at least 1, got {args.workers}")
        for pods in counts:
            print(json.dumps(run_claims(pods, args.workers)), flush=True)
    except ValueError as exc:
        print(f"gpu-dra local bench-claims: {exc}")
        return 2
    return 0


def _up(args: argparse.Namespace) -> int:
    from driver import log
    from driver.local.cluster import LocalCluster, driver_plugin_factory
    from driver.local.clusterfile import ClusterFileError, load_cluster

    logger = log.get("driver.local")
    if not 0 <= args.port <= 65535:
        logger.error("bad_options", error=f"--port: expected 0..65535, got {args.port}")
        return 2
    try:
        spec = load_cluster(args.cluster)
    except ClusterFileError as exc:
        logger.error("bad_cluster_file", error=str(exc))
        return 2
    factories = []
    if not args.no_scheduler:
        from driver.controller.demo import ControllerComponent
        from driver.scheduler.packing.config import ConfigError, check_strategy

        try:
            strategy = check_strategy(args.strategy, "--strategy")
        except ConfigError as exc:
            logger.error("bad_options", error=str(exc))
            return 2
        # Without it, pods for gpu-dra-scheduler (every example, the seed's manifests) wait forever.
        factories.append(lambda c: ControllerComponent(c, strategy))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    cluster = LocalCluster(spec, workdir=args.workdir, port=args.port,
                           plugin_factory=None if args.no_plugins else driver_plugin_factory,
                           device_classes=not args.no_device_classes, component_factories=factories)
    try:
        cluster.start()
    except OSError as exc:
        logger.error("local_cluster_start_failed", error=str(exc))
        return 1
    kubeconfig = Path(args.kubeconfig)
    try:
        cluster.api.write_kubeconfig(kubeconfig)
        logger.info("local_cluster_up", url=cluster.api.url, kubeconfig=str(kubeconfig.resolve()),
                    hint=f"kubectl --kubeconfig {kubeconfig} get nodes")
        stop.wait()
        logger.info("local_cluster_stopping")
    finally:
        cluster.stop()
        kubeconfig.unlink(missing_ok=True)
    return 0
