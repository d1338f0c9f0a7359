"""The shared polling wait: returns what the condition found, fails saying what it last saw."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from wait_helpers import wait_for


def _after(calls: int, value: Any, before: Any = None, error: BaseException | None = None) -> Callable[[], Any]:
    """A condition that is met on its `calls`-th call; before that it returns `before` or raises `error`."""
    seen = [0]

    def condition() -> Any:
        seen[0] += 1
        if seen[0] >= calls:
            return value
        if error is not None:
            raise error
        return before

    return condition


def test_returns_the_first_truthy_value() -> None:
    assert wait_for(_after(3, {"node": "n1"}, before={})) == {"node": "n1"}


def test_timeout_names_what_the_timeout_and_the_last_value() -> None:
    with pytest.raises(AssertionError) as failure:
        wait_for(lambda: [], timeout=0.05, what="pod p bound")
    assert str(failure.value) == "timed out after 0.05s waiting for pod p bound; last value []"


class _Unready:
    """Falsy, with a long repr, like a big object that does not meet the condition yet."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "x" * 1000


def test_long_last_values_are_shortened() -> None:
    with pytest.raises(AssertionError) as failure:
        wait_for(_Unready, timeout=0.02)
    message = str(failure.value)
    assert message.endswith("last value " + "x" * 300 + "...")


def test_ignored_exceptions_are_retried_and_the_last_one_reported() -> None:
    assert wait_for(_after(3, "ready", error=KeyError("spec")), ignore=(KeyError,)) == "ready"
    with pytest.raises(AssertionError) as failure:
        wait_for(_after(10**9, "never", error=KeyError("spec")), timeout=0.05, what="spec", ignore=(KeyError,))
    assert str(failure.value).endswith("last exception KeyError: 'spec'")


def test_other_exceptions_propagate_at_once() -> None:
    calls = []

    def broken() -> Any:
        calls.append(1)
        raise KeyError("spec")

    with pytest.raises(KeyError):
        wait_for(broken, ignore=(ValueError,))
    with pytest.raises(KeyError):
        wait_for(broken)
    assert len(calls) == 2  # one call each: neither wait retried


@pytest.mark.parametrize("kwargs, message", [
    (dict(timeout=0), "timeout must be > 0 seconds, got 0"),
    (dict(timeout=-1.0), "timeout must be > 0 seconds, got -1.0"),
    (dict(interval=0), "interval must be > 0 seconds, got 0"),
])
def test_bad_timing_arguments_are_refused_before_polling(kwargs: dict[str, Any], message: str) -> None:
    calls = []
    with pytest.raises(ValueError, match=message):
        wait_for(lambda: calls.append(1) or True, **kwargs)
    assert calls == []
