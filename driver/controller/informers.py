"""Watch-based caches of the objects the controller reads (client-go's informer, in small).

Each informer LISTs its collection once, then WATCHes from the list's resourceVersion, keeping
the newest version it has seen (bookmarks included) so that a dropped connection resumes where
it stopped. A 410 Gone (history expired) — as an HTTP status or as an ERROR event — means we
missed events: re-list, and diff the new list against the cache so handlers see the deletions
they missed. Handlers run on the informer's thread, in event order, after the cache is updated.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from driver import log
from driver.controller.kube import Kube, Resource, api_error, key_of, watch_events

logger = log.get(__name__)

# (event, old, new): event in ADDED | MODIFIED | DELETED; old is None on ADDED, new is None on DELETED.
Handler = Callable[[str, dict | None, dict | None], None]


class Informer:
    """Cache of one collection kept current by a watch; see module docstring."""

    def __init__(self, kube: Kube, res: Resource, watch_timeout: int = 300, **selectors: Any) -> None:
        self.kube = kube
        self.res = res
        self.selectors = selectors
        self.watch_timeout = watch_timeout
        self._cache: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._handlers: list[Handler] = []
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._resp: Any = None
        self._thread: threading.Thread | None = None
        self.resource_version = ""
        self.relists = 0  # lists after the first (410 Gone, or a watch that could not resume)
        self.failures = 0  # watch requests that failed (transport or API errors)

    # ---- reading ---------------------------------------------------------------------------

    def get(self, key: str) -> dict | None:
        with self._lock:
            return self._cache.get(key)

    def items(self) -> list[dict]:
        with self._lock:
            return list(self._cache.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)

    def add_handler(self, handler: Handler) -> None:
        """Register before `start`; handlers must be quick and must not raise."""
        self._handlers.append(handler)

    def wait_synced(self, timeout: float | None = None) -> bool:
        return self._synced.wait(timeout)

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"informer-{self.res.kind}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        resp = self._resp
        if resp is not None:
            try:
                resp.shutdown()
            except Exception:  # noqa: BLE001 - best effort: the socket may be gone already
                pass
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        delay = 0.2
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list:
                    self._relist()
                    need_list = False
                need_list = self._watch_once()
                delay = 0.2
            except Exception as exc:  # noqa: BLE001 - an informer must survive any API trouble
                if self._stop.is_set():
                    return
                status, message = api_error(exc)
                if status == 410:
                    need_list = True
                    continue
                self.failures += 1
                logger.warning("watch_failed", kind=self.res.kind, status=status, error=message, retry_in=delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
                need_list = need_list or not self.resource_version

    def _relist(self) -> None:
        doc = self.kube.list_raw(self.res, **self.selectors)
        fresh = {key_of(o): o for o in doc.get("items") or []}
        kind = self.res.kind
        for o in fresh.values():
            o.setdefault("kind", kind)
        with self._lock:
            old = self._cache
            self._cache = fresh
            self.resource_version = (doc.get("metadata") or {}).get("resourceVersion") or ""
        if self._synced.is_set():
            self.relists += 1
        for key, before in old.items():
            if key not in fresh:
                self._dispatch("DELETED", before, None)
        for key, now in fresh.items():
            before = old.get(key)
            if before is None:
                self._dispatch("ADDED", None, now)
            elif _rv(before) != _rv(now):
                self._dispatch("MODIFIED", before, now)
        self._synced.set()
        logger.debug("informer_listed", kind=kind, items=len(fresh), resource_version=self.resource_version)

    def _watch_once(self) -> bool:
        """Watch until the server ends the stream; True when a re-list is needed (410)."""
        resp = self.kube.open_watch(self.res, self.resource_version, self.watch_timeout, **self.selectors)
        self._resp = resp
        try:
            if self._stop.is_set():
                return False
            for event in watch_events(resp):
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    code = obj.get("code")
                    if code == 410:
                        return True
                    raise RuntimeError(f"watch of {self.res.kind}: error event {obj.get('code')}: {obj.get('message')}")
                rv = (obj.get("metadata") or {}).get("resourceVersion")
                if kind == "BOOKMARK":
                    if rv:
                        self.resource_version = rv
                    continue
                self._apply(kind, obj)
                if rv:
                    self.resource_version = rv
            return False
        finally:
            self._resp = None
            resp.release_conn()

    def _apply(self, kind: str, obj: dict) -> None:
        obj.setdefault("kind", self.res.kind)
        key = key_of(obj)
        with self._lock:
            before = self._cache.get(key)
            if kind == "DELETED":
                self._cache.pop(key, None)
            else:
                self._cache[key] = obj
        if kind == "DELETED":
            self._dispatch("DELETED", before or obj, None)
        else:
            self._dispatch("MODIFIED" if before is not None else "ADDED", before, obj)

    def _dispatch(self, kind: str, old: dict | None, new: dict | None) -> None:
        for handler in self._handlers:
            try:
                handler(kind, old, new)
            except Exception:  # noqa: BLE001 - one bad handler must not stop the cache
                logger.exception("informer_handler_failed", kind=self.res.kind, event=kind)


def _rv(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("resourceVersion") or ""


def wait_all_synced(informers: list[Informer], timeout: float) -> bool:
    """Block until every informer has listed once (or `timeout` passes)."""
    deadline = time.monotonic() + timeout
    for inf in informers:
        left = deadline - time.monotonic()
        if left <= 0 or not inf.wait_synced(left):
            return False
    return True
