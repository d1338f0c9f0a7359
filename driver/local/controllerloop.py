"""What the emulated controllers share: informers feeding a work queue, workers draining it, and
reads where a 404 means "gone".

Every controller of the local cluster (deployments, disruption budgets, volume binding, claims, the
default scheduler) is the same machine around its own sync function: watch-fed informers turn
events into keys on a `WorkQueue`, `Workers` hand each key to the sync. The order of starting and
stopping matters and is the same for all of them, so it lives here once: informers start first
(their lists fill the caches the sync reads and the first keys), workers after; on stop the
informers go first, so no new keys arrive while the workers finish the keys they hold.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from kubernetes.client.exceptions import ApiException

from driver.local.informer import Informer
from driver.local.workqueue import WorkQueue, Workers


class ControllerLoop:
    """`informers` feeding `queue`, and `count` workers calling `sync(key)`; see the module docstring."""

    def __init__(self, name: str, queue: WorkQueue, informers: Sequence[Informer], sync: Callable[[Hashable], None],
                 count: int = 1, retry_s: float = 0.5) -> None:
        self.queue = queue
        self.informers = list(informers)
        self.workers = Workers(name, queue, sync, count=count, retry_s=retry_s)

    def start(self) -> None:
        for informer in self.informers:
            informer.start()
        self.workers.start()

    def stop(self) -> None:
        for informer in self.informers:
            informer.stop()
        self.workers.stop()


def read_or_none(read: Callable[..., Any], *args: Any) -> dict[str, Any] | None:
    """`read(*args)` (a client `read_*` method) as a JSON dict, or None when the object does not exist.

    Any other API error propagates, so that the worker retries the key.
    """
    try:
        resp = read(*args, _preload_content=False)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    result: dict[str, Any] = json.loads(resp.data)
    return result
