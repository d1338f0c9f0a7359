"""A deduplicating work queue with delayed re-adds, for the emulated controllers.

Like client-go's workqueue: a key waiting in the queue is queued once however many events name
it, a key being processed is not handed to a second worker, and failures are retried later
(`add_after`) instead of spinning. `Workers` is the loop every emulated controller runs around
its queue: hand each key to a sync function, retry failures, let 404s go.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Hashable

from kubernetes.client.exceptions import ApiException

from driver import log

logger = log.get(__name__)


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


class Workers:
    """`count` threads that call `sync(key)` for each key of `queue` until it is closed.

    A key that fails is retried after `retry_s` — except on 404 (the object is gone: its
    DELETED event brings whatever follows). 409 conflicts are retried without a warning: they
    are how optimistic concurrency works. The queue never hands one key to two workers, so
    `sync` need only be safe for different keys running at once.
    """

    def __init__(self, name: str, queue: WorkQueue, sync: Callable[[Hashable], None], count: int = 1,
                 retry_s: float = 0.5) -> None:
        if count < 1:
            raise ValueError(f"workers: expected at least 1, got {count}")
        self.name, self.queue, self.sync, self.retry_s = name, queue, sync, retry_s
        self._threads = [threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True) for i in range(count)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Close the queue and wait for the workers to finish their current keys."""
        self.queue.close()
        for thread in self._threads:
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout=timeout)

    def _run(self) -> None:
        while True:
            key = self.queue.get()
            if key is None:
                return
            try:
                self.sync(key)
            except ApiException as exc:
                if exc.status != 404:
                    if exc.status != 409:
                        logger.warning("sync_failed", worker=self.name, key=repr(key), status=exc.status,
                                       reason=exc.reason)
                    self.queue.add_after(key, self.retry_s)
            except Exception:
                logger.exception("sync_crashed", worker=self.name, key=repr(key))
                self.queue.add_after(key, self.retry_s)
            finally:
                self.queue.done(key)
