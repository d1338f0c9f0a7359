"""`gpu-dra`: subcommands that wire the parts together, nothing else.

Each part of the product registers its own subcommands from a `commands.py` module next to its
code (`register(subparsers)`), so this file never grows with the parts and never imports their
heavy dependencies before a subcommand is chosen.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from driver import __version__, log

# Order = order in `gpu-dra --help`.
COMMAND_MODULES = (
    "driver.devices.commands",  # discover
    "driver.plugin.commands",  # kubelet-plugin
    "driver.allocator.commands",  # allocate (offline dry run)
    "driver.scheduler.commands",  # schedule (offline dry run of the controller)
    "driver.controller.commands",  # controller, status, demo
    "driver.local.commands",  # local up
    "driver.sim.commands",  # bench trace, simulate
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpu-dra", description="Kubernetes DRA driver for NVIDIA GPUs")
    parser.add_argument("--version", action="version", version=f"gpu-dra {__version__}")
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error (default info)")
    parser.add_argument("--log-format", default="json", choices=["json", "console"], help="log output format")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        log.setup(args.log_level, args.log_format)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
