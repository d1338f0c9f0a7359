"""Keeps this node's ResourceSlices in the API server equal to what discovery says.

One reconcile pass lists our slices (field selectors `spec.driver`, `spec.nodeName`), builds the
desired ones, and makes the difference: unchanged slices are left alone, changed ones are
updated in place (PUT with their resourceVersion), missing ones created, obsolete ones deleted
last. The pool generation is bumped only when the set of devices changes (a new device, a lost
GPU), so a schedulers' view of a pool is never a mix of two device sets; attribute or taint
changes keep the generation. Every desired slice is validated against the API limits first:
an invalid slice is an error here, not a rejected write half-way through a pool.

`run()` repeats the pass whenever triggered (NVML change, health taint) and every `resync_s`,
with exponential backoff on API errors.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from driver import log
from driver.plugin.kube import Kube

logger = log.get(__name__)


class PublishError(RuntimeError):
    """The desired slices are invalid; publishing them would be refused by the API server."""


def _device_set(slices: list[dict[str, Any]]) -> set[str]:
    return {d["name"] for s in slices for d in (s.get("spec") or {}).get("devices") or []}


@dataclass
class Publisher:
    """Reconciles one node's slices of one driver."""

    kube: Kube
    driver_name: str
    node_name: str
    build: Callable[[int], list[dict[str, Any]]]  # generation -> desired slice dicts
    validate: Callable[[dict[str, Any]], list[str]] | None = None
    validate_pool: Callable[[list[dict[str, Any]]], list[str]] | None = None
    on_published: Callable[[int], None] = lambda devices: None
    on_error: Callable[[], None] = lambda: None
    resync_s: float = 60.0
    backoff_max_s: float = 30.0
    min_interval_s: float = 0.5
    _trigger: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    published: threading.Event = field(default_factory=threading.Event)  # set after each good pass
    generation: int = 0

    def trigger(self) -> None:
        """Ask for a reconcile pass soon (cheap; many triggers make one pass)."""
        self._trigger.set()

    def stop(self) -> None:
        self._stop.set()
        self._trigger.set()

    def publish_once(self) -> int:
        """One reconcile pass; returns the number of API writes. Raises on API or validation error."""
        existing = {s["metadata"]["name"]: s for s in self.kube.list_slices(self.driver_name, self.node_name)}
        current_gen = max((int((s["spec"].get("pool") or {}).get("generation", 0)) for s in existing.values()),
                          default=0)
        desired = self.build(current_gen)
        if _device_set(desired) != _device_set(list(existing.values())) or len(desired) != len(existing):
            generation = current_gen + 1 if existing else max(current_gen, 1)
            desired = self.build(generation)
        else:
            generation = current_gen
        problems = []
        for i, obj in enumerate(desired):
            if obj["spec"]["pool"]["generation"] != generation:
                raise PublishError(f"slice {i}: built with generation {obj['spec']['pool']['generation']}, "
                                   f"expected {generation}")
            if self.validate:
                problems += [f"slice {i}: {p}" for p in self.validate(obj)]
        if self.validate_pool:
            problems += [f"pool: {p}" for p in self.validate_pool(desired)]
        if problems:
            raise PublishError("refusing to publish invalid ResourceSlices: " + "; ".join(problems[:10]))
        writes = 0
        for obj in desired:
            name = obj["metadata"]["name"]
            old = existing.pop(name, None)
            if old is None:
                self.kube.create_slice(obj)
                writes += 1
            elif old.get("spec") != obj["spec"]:
                obj["metadata"]["resourceVersion"] = old["metadata"].get("resourceVersion")
                self.kube.replace_slice(obj)
                writes += 1
        for name in existing:  # obsolete: removed after the new generation is complete
            self.kube.delete_slice(name)
            writes += 1
        self.generation = generation
        self.on_published(len(_device_set(desired)))
        if writes:
            logger.info("slices_published", node=self.node_name, slices=len(desired), generation=generation,
                        writes=writes)
        self.published.set()
        return writes

    def run(self) -> None:
        """Reconcile until stopped: on trigger, every resync period, and with backoff after errors.

        Passes are at least `min_interval_s` apart so a burst of triggers (many prepares of
        dynamic MIG devices, an XID storm) makes one pass, and a failing API server is retried
        only after the backoff delay, whatever triggers arrive meanwhile.
        """
        delay = 0.0
        failures = 0
        last_pass = float("-inf")
        self._trigger.set()
        while not self._stop.is_set():
            if failures:
                self._stop.wait(delay)
            else:
                self._trigger.wait(timeout=self.resync_s)
            wait_more = self.min_interval_s - (time.monotonic() - last_pass)
            if wait_more > 0:
                self._stop.wait(wait_more)
            if self._stop.is_set():
                return
            self._trigger.clear()
            last_pass = time.monotonic()
            try:
                self.publish_once()
                failures, delay = 0, 0.0
            except Exception as exc:  # noqa: BLE001 - keep trying: the API server may come back
                failures += 1
                delay = min(self.backoff_max_s, 0.2 * 2 ** min(failures, 10)) * (0.5 + random.random() / 2)
                self.on_error()
                logger.warning("publish_failed", node=self.node_name, error=str(exc)[:500], retry_in_s=round(delay, 2))

    def delete_all(self) -> None:
        """Remove every slice of ours for this node (used on deliberate uninstall)."""
        for s in self.kube.list_slices(self.driver_name, self.node_name):
            self.kube.delete_slice(s["metadata"]["name"])
