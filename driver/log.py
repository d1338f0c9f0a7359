"""Logging set up once for every gpu-dra process.

Everything goes out as structlog key-value events, as JSON lines by default (what log
collectors on a node expect) or as console text for people. Stdlib loggers of the libraries we
use (grpc, kubernetes, urllib3) are routed through the same processors so that one process
never writes two formats. Tracebacks are rendered without local variables: locals can hold
bearer tokens and claim parameters.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_configured = False


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at emit time, not at setup time.

    Threads outlive the code that configured logging (a test's captured stderr, a CLI wrapper that
    swaps streams); binding the stream once would make their last log lines fail on a closed file.
    """

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ assigns it; ignore
        pass


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        ),
    ]


def setup(level: str = "info", fmt: str = "json", stream: Any = None) -> None:
    """Configure structlog and the stdlib root logger. Safe to call more than once."""
    global _configured
    renderer: Any
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    else:
        renderer = structlog.processors.JSONRenderer()
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"log level: expected one of debug, info, warning, error; got {level!r}")

    structlog.configure(
        processors=[*_shared_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream) if stream is not None else _CurrentStderrHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_gpu_dra", False):
            root.removeHandler(old)
    handler._gpu_dra = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(numeric)
    # Chatty libraries: keep their warnings, drop their debug noise unless asked for.
    for name in ("urllib3", "kubernetes", "grpc"):
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING) if numeric < logging.WARNING else numeric)
    _configured = True


def get(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A structlog logger; configures defaults on first use so library code never logs raw."""
    if not _configured:
        setup()
    return structlog.get_logger(name)
