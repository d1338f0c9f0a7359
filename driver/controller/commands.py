"""Subcommands of this part (registered by driver.cli): controller, status, demo, and
`bench controller` (through `register_bench`, called by driver/sim/commands.py).

Heavy imports happen inside the handlers so that `gpu-dra --help` stays fast.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import sys
import threading
from typing import Any


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add this part's subcommands to `gpu-dra`."""
    p = sub.add_parser("controller", help="run the allocation controller (scheduler for DRA GPU pods)")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster config, then ~/.kube/config)")
    p.add_argument("--scheduler-name", default="gpu-dra-scheduler", help="pods with this spec.schedulerName are ours")
    p.add_argument("--config", help="packing config YAML: our fields (strategy, weights, thresholds, coverage, "
                                    "pluginWeights, ...), the KAI recipe's scheduling: block, a KAI SchedulingShard "
                                    "or scheduler.placementStrategy, or a ConfigMap holding one")
    p.add_argument("--leader-elect", action="store_true", help="run only while holding the leader Lease")
    p.add_argument("--lease-name", default="gpu-dra-controller")
    p.add_argument("--lease-namespace", default=os.environ.get("POD_NAMESPACE", "kube-system"))
    p.add_argument("--identity", default=os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}",
                   help="leader election identity (default: $POD_NAME or host-pid)")
    p.add_argument("--metrics-port", type=int, default=8080, help="port of /metrics and /healthz (0: off)")
    p.add_argument("--binders", type=int, default=8, help="threads writing allocations and bindings")
    p.add_argument("--no-release", action="store_true",
                   help="leave dropping reservations of finished pods to the resourceclaim controller")
    p.set_defaults(func=_controller)

    s = sub.add_parser("status", help="per node and GPU: what is allocated to which claim and pod; packing figures")
    s.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster config, then ~/.kube/config)")
    s.add_argument("-o", "--output", choices=["table", "json"], default="table")
    s.add_argument("--driver", default="gpu.nvidia.com", help="driver whose devices to show ('' for all)")
    s.add_argument("--used-only", action="store_true", help="hide GPUs nothing is allocated on")
    s.set_defaults(func=_status)

    d = sub.add_parser("demo", help="local cluster + controller + the seed's workloads, placed with binpack and spread")
    d.add_argument("--strategy", default="binpack,spread",
                   help="comma-separated strategies to run one after the other (binpack, spread, fragmentation, fgd)")
    d.add_argument("--keep", action="store_true", help="leave the (last) cluster up and print its kubeconfig path")
    d.add_argument("--cluster", help="cluster description YAML (default: the shipped default cluster)")
    d.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the pods to be placed")
    d.set_defaults(func=_demo)


CONSTRAINTS = ("none", "anti-affinity", "spread", "mixed")


def register_bench(bench: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `gpu-dra bench controller`."""
    b = bench.add_parser("controller",
                       help="controller throughput through the in-memory API server (BENCHMARKS.md §2)")
    b.add_argument("--nodes", default="500", help="node count, or a comma list for the scaling series (100,1000,5000)")
    b.add_argument("--gpus-per-node", type=int, default=8)
    b.add_argument("--pods", type=int, default=5000)
    b.add_argument("--strategy", default="binpack")
    b.add_argument("--binders", type=int, default=8)
    b.add_argument("--runs", type=int, default=1, help="repeat and report the median")
    b.add_argument("--timeout", type=float, default=600.0)
    b.add_argument("--mode", default="scheduling,pipeline",
                   help="comma list: scheduling (claims pre-generated: our controller alone, over HTTP), "
                        "pipeline (pods created while the resourceclaim controller generates claims), "
                        "decide (decisions only, no HTTP)")
    b.add_argument("--constraints", choices=CONSTRAINTS, default="none",
                   help="what every pod carries: none, required anti-affinity on the hostname against the other "
                        "pods of its app (pod i is in app i mod 8), a maxSkew-1 hostname topology spread constraint "
                        "over them, or mixed (half each)")
    b.add_argument("--json", action="store_true", help="one JSON object per measurement")
    b.set_defaults(func=_bench)


def _controller(args: argparse.Namespace) -> int:
    from driver import log
    from driver.cliinput import InputFileError, load_yaml
    from driver.scheduler.packing.scoring import ConfigError, PackingConfig, parse_config
    from driver.controller.kube import Kube, controller_pool_size, new_client
    from driver.controller.leader import LeaseConfig
    from driver.controller.metrics import MetricsServer
    from driver.controller.scheduler import Controller, ControllerConfig

    logger = log.get("driver.controller")
    packing = PackingConfig()
    if args.config:
        try:
            packing = parse_config(load_yaml(args.config, "--config"), f"{args.config}")
        except InputFileError as exc:
            print(f"gpu-dra controller: {exc}", file=sys.stderr)
            return 2
        except ConfigError as exc:
            print(f"gpu-dra controller: --config {args.config}: {exc}", file=sys.stderr)
            return 2
    if args.binders < 1:
        print("gpu-dra controller: --binders: expected at least 1", file=sys.stderr)
        return 2
    if not 0 <= args.metrics_port <= MAX_PORT:
        print(f"gpu-dra controller: --metrics-port {args.metrics_port}: expected 1..{MAX_PORT}, or 0 to turn "
              "metrics off", file=sys.stderr)
        return 2
    lease = None
    if args.leader_elect:
        lease = LeaseConfig(name=args.lease_name, namespace=args.lease_namespace, identity=args.identity)
    cfg = ControllerConfig(scheduler_name=args.scheduler_name, packing=packing, binders=args.binders,
                           leader=lease, release=not args.no_release)
    ctl = Controller(Kube(new_client(args.kubeconfig, pool_size=controller_pool_size(args.binders))), cfg)
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    server = None
    if args.metrics_port:
        try:
            server = MetricsServer(ctl.metrics, ctl.healthy, args.metrics_port)
        except OSError as exc:
            print(f"gpu-dra controller: --metrics-port {args.metrics_port}: {_bind_problem(exc)}; "
                  "choose another port or 0 to turn metrics off", file=sys.stderr)
            return 2
    try:
        try:
            ctl.start(stop=stop)
        except TimeoutError as exc:
            print(f"gpu-dra controller: {exc}", file=sys.stderr)
            return 1
        if stop.is_set():
            # Told to exit before the caches synced: nothing was scheduled, so say so and fail.
            signum = received[0] if received else signal.SIGTERM
            name = signal.Signals(signum).name
            logger.warning("controller_stopped_during_startup", signal=name,
                           reason="signal received before the caches synced; nothing was scheduled")
            return 128 + signum
        logger.info("controller_started", scheduler_name=args.scheduler_name, strategy=packing.strategy,
                    leader_elect=args.leader_elect, metrics_port=server.port if server else None)
        stop.wait()
    finally:
        ctl.stop()
        if server:
            server.stop()
    return 0


MAX_PORT = 65535


def _bind_problem(exc: OSError) -> str:
    """`Address already in use` -> `address already in use` (errno's words, lower-cased)."""
    if exc.errno == errno.EADDRINUSE:
        return "address already in use"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges)"
    return (exc.strerror or str(exc)).lower()


def _status(args: argparse.Namespace) -> int:
    from driver.controller.kube import CLAIMS, PODS, SLICES, Kube, api_error, new_client
    from driver.controller.status import build_report, format_table

    try:
        kube = Kube(new_client(args.kubeconfig))
        slices = kube.list_raw(SLICES)["items"]
        claims = kube.list_raw(CLAIMS)["items"]
        pods = kube.list_raw(PODS)["items"]
    except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback
        status, message = api_error(exc)
        print(f"gpu-dra status: cannot read the cluster: {message or exc}" + (f" (HTTP {status})" if status else ""),
              file=sys.stderr)
        return 1
    report = build_report(slices, claims, pods, driver=args.driver or None)
    print(report.to_json() if args.output == "json" else format_table(report, show_free=not args.used_only))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from driver.scheduler.packing.scoring import ConfigError, check_strategy
    from driver.controller.demo import run_demo

    strategies = [s.strip() for s in args.strategy.split(",") if s.strip()]
    try:
        for s in strategies:
            check_strategy(s, "--strategy")
    except ConfigError as exc:
        print(f"gpu-dra demo: {exc}", file=sys.stderr)
        return 2
    return run_demo(strategies, keep=args.keep, cluster=args.cluster, timeout=args.timeout)


def _bench(args: argparse.Namespace) -> int:
    from driver.controller.bench import run_bench

    try:
        nodes = [int(n) for n in str(args.nodes).split(",") if n.strip()]
    except ValueError:
        print(f"gpu-dra bench controller: --nodes: expected a number or a comma list, got {args.nodes!r}", file=sys.stderr)
        return 2
    if not nodes or min(nodes) < 1 or args.pods < 1 or args.gpus_per_node < 1 or args.runs < 1:
        print("gpu-dra bench controller: --nodes, --pods, --gpus-per-node and --runs must be positive", file=sys.stderr)
        return 2
    modes = tuple(m.strip() for m in args.mode.split(",") if m.strip())
    bad = [m for m in modes if m not in ("scheduling", "pipeline", "decide")]
    if bad or not modes:
        print(f"gpu-dra bench controller: --mode: expected scheduling, pipeline and/or decide, got {args.mode!r}",
              file=sys.stderr)
        return 2
    opts: dict[str, Any] = dict(modes=modes, gpus_per_node=args.gpus_per_node, pods=args.pods, strategy=args.strategy,
                                binders=args.binders, runs=args.runs, timeout=args.timeout, as_json=args.json,
                                constraints=args.constraints)
    return run_bench(nodes, **opts)
