"""A deduplicating work queue with delayed re-adds, for the emulated controllers.

Like client-go's workqueue: a key waiting in the queue is queued once however many events name
it, a key being processed is not handed to a second worker, and failures are retried later
(`add_after`) instead of spinning.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Hashable


class WorkQueue:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._ready: list[Hashable] = []
        self._queued: set[Hashable] = set()
        self._active: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._later: list[tuple[float, int, Hashable]] = []
        self._seq = 0
        self._closed = False

    def add(self, key: Hashable) -> None:
        with self._cond:
            if key in self._active:
                self._dirty.add(key)
            elif key not in self._queued:
                self._queued.add(key)
                self._ready.append(key)
                self._cond.notify()

    def add_after(self, key: Hashable, delay_s: float) -> None:
        with self._cond:
            self._seq += 1
            heapq.heappush(self._later, (time.monotonic() + delay_s, self._seq, key))
            self._cond.notify()

    def get(self) -> Hashable | None:
        """The next key (blocking); None once closed."""
        with self._cond:
            while True:
                if self._closed:
                    return None
                now = time.monotonic()
                while self._later and self._later[0][0] <= now:
                    _, _, key = heapq.heappop(self._later)
                    if key in self._active:
                        self._dirty.add(key)
                    elif key not in self._queued:
                        self._queued.add(key)
                        self._ready.append(key)
                if self._ready:
                    key = self._ready.pop(0)
                    self._queued.discard(key)
                    self._active.add(key)
                    return key
                self._cond.wait(self._later[0][0] - now if self._later else None)

    def done(self, key: Hashable) -> None:
        with self._cond:
            self._active.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self._queued.add(key)
                self._ready.append(key)
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
