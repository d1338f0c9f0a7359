"""Watch cursors over a collection's bounded history (see store.py).

A cursor translates each change for its selector the way the apiserver's watch cache does: an
object that starts matching arrives as ADDED, one that stops matching leaves as DELETED, so a
kubelet watching `spec.nodeName=<node>` sees a pod appear when it is bound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from driver.local import errors
from driver.local.objectmeta import meta_of
from driver.local.selectors import Predicate

if TYPE_CHECKING:
    from driver.local.store import Collection, Event, Store


class Watch:
    """A cursor over one collection's history; `next(timeout)` blocks for new events."""

    def __init__(self, store: Store, coll: Collection, ns: str | None, pred: Predicate | None, since: int | None):
        self.store, self.coll, self.ns, self.pred = store, coll, ns, pred
        self.initial: list[tuple[str, dict[str, Any], bytes]] = []
        with store.cond:
            if since is None:
                for key in sorted(coll.objects):
                    obj = coll.objects[key]
                    if self._selected(key[0], obj):
                        self.initial.append(("ADDED", obj, coll.raw[key]))
                self.last_rv = store.rv
            else:
                if since < coll.compacted_rv:
                    raise errors.expired(f"too old resource version: {since} ({coll.compacted_rv})")
                self.last_rv = since

    def _selected(self, ns: str, obj: dict[str, Any]) -> bool:
        return (self.ns is None or ns == self.ns) and (self.pred is None or self.pred(obj))

    def _translate(self, ev: Event) -> tuple[str, dict[str, Any], bytes] | None:
        ns = meta_of(ev.obj).get("namespace", "")
        now = self._selected(ns, ev.obj)
        if ev.type == "MODIFIED" and ev.prev is not None:
            before = self._selected(ns, ev.prev)
            if now and not before:
                return ("ADDED", ev.obj, ev.raw)
            if before and not now:
                return ("DELETED", ev.obj, ev.raw)
        return (ev.type, ev.obj, ev.raw) if now else None

    def next(self, timeout: float) -> list[tuple[str, dict[str, Any], bytes]] | None:
        """Events after the cursor (waiting up to `timeout`); [] on timeout; None once the store stops."""
        with self.store.cond:
            if self.last_rv < self.coll.compacted_rv:
                raise errors.expired(f"too old resource version: {self.last_rv} ({self.coll.compacted_rv})")
            assert self.coll.changed is not None
            self.coll.changed.wait_for(
                lambda: self.store.stopped or (self.coll.events and self.coll.events[-1].rv > self.last_rv), timeout)
            if self.store.stopped:
                return None
            pending: list[Event] = []
            for ev in reversed(self.coll.events):
                if ev.rv <= self.last_rv:
                    break
                pending.append(ev)
            self.last_rv = self.store.rv
        out = []
        for ev in reversed(pending):
            item = self._translate(ev)
            if item is not None:
                out.append(item)
        return out

