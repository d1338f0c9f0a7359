"""Work queue of pods to schedule: dedup, per-pod exponential backoff, parking of unschedulable pods.

Why not a plain `queue.Queue`: a pod that changes ten times while it waits must be tried once,
not ten times (dedup); a pod that is being scheduled when it changes must be tried again after,
never by two workers at once (dirty/processing, as client-go's workqueue); a pod that failed on
an API error retries with exponential backoff; and a pod that cannot fit right now is *parked*
until something in the cluster changes (a slice, a claim, a node, a pod leaving) — retrying it
in a loop would burn CPU for nothing, which is what kube-scheduler's unschedulable queue avoids.
Parked pods are also retried after `max_park` seconds, in case an event was missed.

The clock is injectable so that tests can drive backoff without sleeping.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Backoff:
    """Exponential backoff per key: initial * 2**(failures-1), capped at `maximum`."""

    initial: float = 0.5
    maximum: float = 10.0
    failures: dict[Hashable, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial:
            raise ValueError(
                f"backoff: expected 0 < initial <= maximum, got initial={self.initial} maximum={self.maximum}"
            )

    def next_delay(self, key: Hashable) -> float:
        """Count one more failure of `key` and return how long to wait before the next try."""
        n = self.failures.get(key, 0) + 1
        self.failures[key] = n
        return min(self.maximum, self.initial * (2 ** (n - 1)))

    def forget(self, key: Hashable) -> None:
        self.failures.pop(key, None)


class WorkQueue:
    """Thread-safe dedup queue with delayed (backoff) and parked (unschedulable) keys."""

    def __init__(
        self,
        backoff: Backoff | None = None,
        max_park: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backoff = backoff or Backoff()
        self._max_park = max_park
        self._clock = clock
        self._cond = threading.Condition()
        self._ready: deque[Hashable] = deque()
        self._queued: set[Hashable] = set()  # in _ready
        self._processing: set[Hashable] = set()
        self._dirty: set[Hashable] = set()  # changed while processing: add again on done()
        self._delayed: list[tuple[float, int, Hashable]] = []  # (due, seq, key) heap
        self._due: dict[Hashable, float] = {}  # key -> earliest due among its heap entries
        self._parked: dict[Hashable, float] = {}  # key -> parked since
        self._deaf: set[Hashable] = set()  # parked keys that cluster_changed() does not wake
        self._seq = 0
        self._closed = False

    # ---- producers -------------------------------------------------------------------------

    def add(self, key: Hashable) -> None:
        """Schedule `key` now (an event about the pod itself)."""
        with self._cond:
            self._add_locked(key)

    def _add_locked(self, key: Hashable) -> None:
        if self._closed:
            return
        self._parked.pop(key, None)
        self._deaf.discard(key)
        self._due.pop(key, None)  # stale heap entries are skipped when popped
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._ready.append(key)
        self._cond.notify()

    def retry_later(self, key: Hashable) -> float:
        """Retry `key` after its backoff (an API error or a conflict). Returns the delay."""
        with self._cond:
            delay = self._backoff.next_delay(key)
            self._delay_locked(key, self._clock() + delay)
            return delay

    def _delay_locked(self, key: Hashable, due: float) -> None:
        if self._closed or key in self._queued:
            return
        current = self._due.get(key)
        if current is not None and current <= due:
            return
        self._due[key] = due
        self._seq += 1
        heapq.heappush(self._delayed, (due, self._seq, key))
        self._cond.notify()

    def park(self, key: Hashable, wake_on_change: bool = True) -> None:
        """`key` cannot be placed now: wait for a cluster event (or `max_park`), with backoff.

        `wake_on_change=False`: only an event about the key itself (`add`) or `max_park` wakes it —
        for pods waiting for their own claim, which no other cluster change can help; waking them
        on every change makes a burst of N new pods cost N² attempts.
        """
        with self._cond:
            if self._closed or key in self._queued or key in self._due or key in self._parked:
                return
            self._backoff.next_delay(key)
            self._parked[key] = self._clock()
            if not wake_on_change:
                self._deaf.add(key)

    def cluster_changed(self) -> int:
        """Something that may make parked pods fit happened: retry them, honouring backoff."""
        with self._cond:
            moved = [k for k in self._parked if k not in self._deaf]
            now = self._clock()
            for key in moved:
                since = self._parked.pop(key)
                n = self._backoff.failures.get(key, 1)
                delay = min(self._backoff.maximum, self._backoff.initial * (2 ** (n - 1)))
                self._delay_locked(key, max(now, since + delay))
            return len(moved)

    def forget(self, key: Hashable) -> None:
        """`key` succeeded or is gone: reset its backoff and drop it from parking."""
        with self._cond:
            self._backoff.forget(key)
            self._parked.pop(key, None)
            self._deaf.discard(key)
            self._due.pop(key, None)

    # ---- consumers -------------------------------------------------------------------------

    def _promote_locked(self) -> float | None:
        """Move due delayed and over-parked keys to ready; return seconds until the next due."""
        now = self._clock()
        while self._delayed and self._delayed[0][0] <= now:
            due, _, key = heapq.heappop(self._delayed)
            if self._due.get(key) != due:
                continue  # superseded entry
            del self._due[key]
            self._add_locked(key)
        for key, since in list(self._parked.items()):
            if now - since >= self._max_park:
                self._add_locked(key)
        waits = []
        if self._delayed:
            waits.append(self._delayed[0][0] - now)
        if self._parked:
            waits.append(min(self._parked.values()) + self._max_park - now)
        return max(0.0, min(waits)) if waits else None

    def get(self, timeout: float | None = None) -> Hashable | None:
        """Next key to process (marked processing until `done`), or None on timeout/shutdown."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closed:
                    return None
                next_due = self._promote_locked()
                if self._ready:
                    key = self._ready.popleft()
                    self._queued.discard(key)
                    self._processing.add(key)
                    return key
                wait = next_due
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)

    def done(self, key: Hashable) -> None:
        """Processing of `key` finished; if it changed meanwhile, queue it again."""
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self._add_locked(key)

    def shutdown(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # ---- introspection ---------------------------------------------------------------------

    def depth(self) -> dict[str, int]:
        """Keys per state, for the queue-depth gauge."""
        with self._cond:
            return {
                "ready": len(self._ready),
                "backoff": len(self._due),
                "parked": len(self._parked),
                "processing": len(self._processing),
            }

    def __len__(self) -> int:
        with self._cond:
            return len(self._ready) + len(self._due) + len(self._parked)

    def idle(self) -> bool:
        """Nothing ready, delayed or in flight (parked keys wait for events, so they don't count)."""
        with self._cond:
            return not self._ready and not self._due and not self._processing


def serve(queue: WorkQueue, stop: threading.Event, leading: threading.Event, handle: Callable[[str], None],
          logger: Any, failed_event: str, key_name: str, after: Callable[[], None] | None = None) -> None:
    """Thread body of a queue worker: while leading, take a key and `handle` it, until `stop`.

    Shared by the scheduling worker and the releaser so that both keep the same contract with
    the queue: a key is always marked done (so a change that arrived meanwhile is seen again), and
    an unexpected exception is logged as `failed_event` and retried with backoff instead of
    killing the thread — one bad object must not stop the controller. Expected outcomes
    (forget, park, retry on an API refusal) are `handle`'s business.
    """
    while not stop.is_set():
        if not leading.wait(0.5):
            continue
        key = queue.get(timeout=0.5)
        if key is None:
            continue
        try:
            handle(str(key))
        except Exception:  # noqa: BLE001 - see docstring
            logger.exception(failed_event, **{key_name: key})
            queue.retry_later(key)
        finally:
            queue.done(key)
            if after is not None:
                after()
