"""The one polling wait shared by every test folder.

Tests that watch another thread or process bring something about (a pod bound, a slice
published, a taint applied) need a bounded wait instead of a sleep. Each folder used to carry its
own copy with slightly different messages; this one keeps them alike and says, on failure, what it
last saw, which is usually the first thing one needs to debug a timeout.

Importable as `wait_helpers` from any folder under tests/: pytest's default (prepend) import mode
puts tests/ on sys.path when it loads tests/conftest.py, as it does for the per-folder helper
modules next to their own conftest.py files.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

_FIRST_PAUSE = 0.005  # most waits are met within a few milliseconds; start short
_GROWTH = 1.5
_SHOWN = 300  # characters of the last value kept in the failure message


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition",
             interval: float = 0.05, ignore: tuple[type[BaseException], ...] = ()) -> Any:
    """Call `condition` until it returns something truthy and return that value.

    The pause between calls starts at a few milliseconds and grows up to `interval`, so quick
    conditions are seen at once without busy-polling slow ones. The condition is called one last
    time at the deadline. Exceptions of the types in `ignore` count as "not yet" (and are reported
    if the wait fails); any other exception propagates at once, as a broken condition should.

    Raises AssertionError naming `what`, the timeout and the last value or exception seen.
    """
    if timeout <= 0:
        raise ValueError(f"wait_for: timeout must be > 0 seconds, got {timeout!r}")
    if interval <= 0:
        raise ValueError(f"wait_for: interval must be > 0 seconds, got {interval!r}")
    deadline = time.monotonic() + timeout
    pause = min(_FIRST_PAUSE, interval)
    while True:
        try:
            value = condition()
        except ignore as exc:  # noqa: PERF203 - retrying is the point
            last = f"exception {type(exc).__name__}: {exc}"
        else:
            if value:
                return value
            last = f"value {_shorten(repr(value))}"
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last {last}")
        time.sleep(min(pause, left))
        pause = min(pause * _GROWTH, interval)


def _shorten(text: str) -> str:
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."
