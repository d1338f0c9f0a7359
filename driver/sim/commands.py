"""`gpu-dra bench ...` and `gpu-dra simulate` (registered by driver.cli).

This module owns the `bench` command group. Other parts add their own benchmarks to it without
editing this file: list a module in BENCH_MODULES that defines `register_bench(bench_subparsers)`;
a module that does not exist (yet) is skipped.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

BENCH_MODULES = ("driver.plugin.commands", "driver.controller.commands")


def _seeds(text: str) -> list[int]:
    """'42,43' or '42-51' (or a mix) → [42, 43, ...]."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (part, "")
                a, b = int(lo), int(hi)
                if b < a:
                    raise ValueError
                out.extend(range(a, b + 1))
            elif part:
                out.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"--seeds: {part!r} is not a seed or a range like 42-51") from None
    if not out:
        raise argparse.ArgumentTypeError("--seeds: expected at least one seed, e.g. 42 or 42-51")
    return out


def _load(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 10:
        raise argparse.ArgumentTypeError(f"--load: expected a number in (0, 10], got {text!r}")
    return value


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"--limit: expected a non-negative number of pods, got {text!r}")
    return value


def _strategies(text: str) -> list[str]:
    from driver.scheduler.packing.scoring import STRATEGIES

    names = list(STRATEGIES) if text == "all" else [s.strip() for s in text.split(",") if s.strip()]
    for n in names:
        if n not in STRATEGIES:
            raise argparse.ArgumentTypeError(f"--strategy: unknown strategy {n!r}; expected one of {', '.join(STRATEGIES)} or all")
    return names


def _add_strategy_seeds_config(parser: argparse.ArgumentParser, strategy: str, seeds: str) -> None:
    """--strategy, --seeds and --config, as every packing benchmark takes them."""
    parser.add_argument("--strategy", default=strategy, type=_strategies,
                        help=f"comma-separated strategies or 'all' (fragmentation, fgd, binpack, spread; default {strategy})")
    parser.add_argument("--seeds", default=seeds, type=_seeds, help=f"seeds, e.g. 42,43 or 42-51 (default {seeds})")
    parser.add_argument("--config", help="packing config YAML (weights, thresholds, coverage); --strategy overrides its strategy")


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `bench` (with `bench trace` and hooks) and `simulate`."""
    bench = sub.add_parser("bench", help="benchmarks (packing quality on the Alibaba trace, ...)")
    bsub = bench.add_subparsers(dest="bench_command", metavar="BENCHMARK")
    bench.set_defaults(func=lambda args: (bench.print_help(), 2)[1])

    t = bsub.add_parser("trace", help="replay the Alibaba GPU trace through the scheduler (BENCHMARKS.md §1)",
                        description="Replay the openb trace (FGD paper protocol) through schedule() and the real "
                                    "allocator; report allocation at 130%% / 100%% of capacity arrived.")
    t.add_argument("--nodes", help="node list CSV (default: the bundled openb_node_list_gpu_node.csv)")
    t.add_argument("--pods", action="append", help="pod list CSV (repeatable; default: the bundled default trace)")
    t.add_argument("--trace", action="append", metavar="NAME",
                   help="a bundled pod list: default, gpushare40, multigpu20, gpuspec20 or all (repeatable)")
    _add_strategy_seeds_config(t, "fragmentation", "42")
    t.add_argument("--limit", type=_limit, default=0, help="submit only the first N pods of each arrival order (smoke tests)")
    t.add_argument("--json", action="store_true", help="one JSON object per seed per line")
    t.add_argument("--curve", action="store_true", help="with --json: include the 0..130 curve")
    t.add_argument("--plot", metavar="FILE.png", help="draw allocation vs arrival, mean over seeds, one line per strategy")
    t.set_defaults(func=_bench_trace)

    m = bsub.add_parser("mig", help="pack MIG-profile claims on dynamic-MIG GPUs, per strategy",
                        description="A seeded random stream of MIG-profile (1g..7g) and whole-GPU claims "
                                    "arrives until its demand reaches --load x the cluster's GPUs; report pods "
                                    "placed, GPUs touched, GPU used (larger of memory and compute slices) and "
                                    "fragment failures (pods refused while enough free GPU existed in total).")
    m.add_argument("--cluster", help="cluster description YAML (default: the bundled scenarios/mig-dynamic.yaml)")
    _add_strategy_seeds_config(m, "all", "42-44")
    m.add_argument("--load", type=_load, default=1.3, help="demand that arrives, x the cluster's GPUs (default 1.3)")
    m.add_argument("--json", action="store_true", help="one JSON object per strategy per seed per line")
    m.add_argument("--write-workload", metavar="FILE",
                   help="also write the first seed's pods and claims as a `gpu-dra simulate --workload` YAML")
    m.set_defaults(func=_bench_mig)

    for name in BENCH_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        hook = getattr(mod, "register_bench", None)
        if hook is not None:
            hook(bsub)

    s = sub.add_parser("simulate", help="what-if placement of a workload on a cluster description",
                       description="Place a workload (YAML pods + claims, or a trace pod CSV) on a cluster "
                                   "(cluster description YAML or trace node CSV) with a strategy, through the "
                                   "same scheduler and allocator as the controller.")
    s.add_argument("--cluster", help="cluster description YAML (driver/local format) or a node list CSV "
                                     "(default: the local default cluster)")
    s.add_argument("--workload", required=True, help="YAML with pods, ResourceClaims (and DeviceClasses), or a pod list CSV")
    s.add_argument("--strategy", default=None, help="fragmentation, fgd, binpack or spread (default: config's)")
    s.add_argument("--config", help="packing config YAML")
    s.add_argument("--seed", type=int, default=None, help="CSV workloads: use the benchmark arrival order for this seed")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=_simulate)


class BadInput(SystemExit):
    """Bad input to a sim command: the message (one line, naming the file or flag) goes to stderr
    and the exit status is 2, as for every gpu-dra command; `str()` is the message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = 2
        print(f"gpu-dra: {message}", file=sys.stderr)


def _load_config(path: str | None):
    from driver.cliinput import InputFileError, load_yaml
    from driver.scheduler.packing.scoring import ConfigError, PackingConfig, parse_config

    if not path:
        return PackingConfig()
    try:
        raw = load_yaml(path, "--config")
    except InputFileError as exc:
        raise BadInput(str(exc)) from None
    try:
        return parse_config(raw, f"--config {path}")
    except ConfigError as exc:
        raise BadInput(str(exc)) from None


def _progress_bar(label: str):
    def show(done: int, total: int) -> None:
        width = 30
        filled = int(width * done / total) if total else width
        sys.stderr.write(f"\r{label:<36} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def _bench_trace(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    from driver.sim import replay as rp
    from driver.sim import report
    from driver.sim import trace as tr

    try:
        nodes = tr.load_nodes(args.nodes or tr.DEFAULT_NODES)
        pod_files: list[tuple[str, Path]] = []
        for name in args.trace or []:
            if name == "all":
                pod_files.extend(tr.TRACES.items())
            elif name in tr.TRACES:
                pod_files.append((name, tr.TRACES[name]))
            else:
                raise BadInput(f"--trace: unknown trace {name!r}; expected one of {', '.join(tr.TRACES)} or all")
        for path in args.pods or []:
            pod_files.append((Path(path).stem.replace("openb_pod_list_", ""), Path(path)))
        if not pod_files:
            pod_files = [("default", tr.DEFAULT_PODS)]
        traces = [(name, tr.load_pods(path)) for name, path in pod_files]
    except tr.TraceError as exc:
        raise BadInput(str(exc))
    base = _load_config(args.config)
    cluster = rp.build_cluster(nodes)
    results: list[report.SeedResult] = []
    for trace_name, pods in traces:
        for strategy in args.strategy:
            config = replace(base, strategy=strategy)
            for seed in args.seeds:
                progress = None if args.json else _progress_bar(f"{trace_name} {strategy} seed {seed}")
                result = rp.replay(cluster, pods, seed, config, trace_name, progress, limit=args.limit)
                results.append(result)
                if args.json:
                    print(report.json_line(result, args.curve), flush=True)
    if not args.json:
        print(report.table(results))
    if args.plot:
        series = {}
        for trace_name, _ in traces:
            for strategy in args.strategy:
                rs = [r for r in results if r.trace == trace_name and r.strategy == strategy]
                label = strategy if len(traces) == 1 else f"{trace_name} {strategy}"
                series[label] = report.mean_curve(rs)
        from driver.sim.plot import allocation_plot

        title = "GPU ALLOCATION (%) " + ", ".join(n for n, _ in traces) + f" - SEEDS {','.join(map(str, args.seeds))}"
        allocation_plot(series, args.plot, title=title[:100])
        if not args.json:
            print(f"plot written to {args.plot}")
    return 0


def _bench_mig(args: argparse.Namespace) -> int:
    from driver.sim import migbench
    from driver.sim.simulate import SimulateError

    base = _load_config(args.config)
    results = []
    try:
        cluster = migbench.load_cluster(args.cluster)
        for strategy in args.strategy:
            for seed in args.seeds:
                result = migbench.run(cluster, strategy, seed, args.load, base)
                results.append(result)
                if args.json:
                    print(json.dumps(result.as_json()), flush=True)
    except SimulateError as exc:
        raise BadInput(str(exc))
    if not args.json:
        print(migbench.table(results))
    if args.write_workload:
        n = migbench.write_workload(args.write_workload, args.seeds[0], results[0].gpus, args.load)
        if not args.json:
            print(f"workload of seed {args.seeds[0]} ({n} pods) written to {args.write_workload}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from driver.sim import simulate

    config = _load_config(args.config)
    if args.strategy:
        from dataclasses import replace

        from driver.scheduler.packing.scoring import ConfigError, check_strategy

        try:
            config = replace(config, strategy=check_strategy(args.strategy, "--strategy"))
        except ConfigError as exc:
            raise BadInput(str(exc))
    try:
        outcome = simulate.run(args.cluster, args.workload, config, seed=args.seed)
    except simulate.SimulateError as exc:
        raise BadInput(str(exc))
    if args.json:
        print(json.dumps(outcome.as_json(), indent=2))
    else:
        print(outcome.render())
    return 0
