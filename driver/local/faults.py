"""Fault injection for tests: added latency, 500s and forced 409s, per verb and resource.

Clients must survive a slow or flaky apiserver (retries on conflicts, backoff on 500s); these
rules let a test switch such behaviour on at runtime, scoped to e.g. `update` of
`resourceclaims`, for a number of requests or until cleared. Draws come from a seeded RNG so a
failing test replays the same sequence.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from driver.local import errors

VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")


@dataclass
class Fault:
    """One rule; `verb`/`resource` None match everything; `count` None means unlimited."""

    verb: str | None = None
    resource: str | None = None  # plural, optionally with subresource: "resourceclaims/status"
    latency: float = 0.0
    error_rate: float = 0.0
    conflict_rate: float = 0.0
    count: int | None = None

    def matches(self, verb: str, resource: str) -> bool:
        if self.verb is not None and self.verb != verb:
            return False
        if self.resource is None:
            return True
        return self.resource == resource or self.resource == resource.split("/", 1)[0] and "/" not in self.resource


class Faults:
    """The server's active rules (thread-safe)."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = []
        self._rng = random.Random(seed)

    def set(self, verb: str | None = None, resource: str | None = None, latency: float = 0.0,
            error_rate: float = 0.0, conflict_rate: float = 0.0, count: int | None = None) -> Fault:
        """Add a rule; returns it (pass it to `remove`)."""
        if verb is not None and verb not in VERBS:
            raise ValueError(f"fault verb: expected one of {', '.join(VERBS)}; got {verb!r}")
        for name, rate in (("error_rate", error_rate), ("conflict_rate", conflict_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"fault {name}: expected a probability in [0, 1]; got {rate}")
        if latency < 0:
            raise ValueError(f"fault latency: expected seconds >= 0; got {latency}")
        if count is not None and count <= 0:
            raise ValueError(f"fault count: expected a positive number of requests; got {count}")
        rule = Fault(verb, resource, latency, error_rate, conflict_rate, count)
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule: Fault) -> None:
        with self._lock:
            if rule in self._rules:
                self._rules.remove(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def decide(self, verb: str, resource: str, name: str = "") -> tuple[float, errors.ApiError | None]:
        """(seconds to delay, error to answer instead) for one request."""
        delay, failure = 0.0, None
        with self._lock:
            for rule in list(self._rules):
                if not rule.matches(verb, resource):
                    continue
                if rule.count is not None:
                    rule.count -= 1
                    if rule.count <= 0:
                        self._rules.remove(rule)
                delay += rule.latency
                if failure is None and rule.error_rate and self._rng.random() < rule.error_rate:
                    failure = errors.internal(f"injected fault for {verb} {resource}")
                if failure is None and rule.conflict_rate and self._rng.random() < rule.conflict_rate:
                    failure = errors.conflict(resource, name, why="injected conflict")
        return delay, failure
