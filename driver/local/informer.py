"""List-then-watch through the official client, with 410 re-lists and a stoppable stream.

The emulated controllers (claim controller, kubelets) observe the API server exactly as real
ones do: list, watch from the list's resourceVersion with bookmarks, re-list on 410 Expired.
Reading is raw (`_preload_content=False` + json) because model deserialization is ~10x slower
(FACTS §10). The open watch response is kept so that `stop()` can shut it down at once instead
of waiting for the next event.

An informer can keep a `Cache` (client-go's indexer): the objects as last seen, by namespace/name
and by any index the owner declares (e.g. claims by owning pod UID), so that a controller looks
up what it needs in O(1) instead of listing per sync.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from driver import log

logger = log.get(__name__)

ListFn = Callable[..., Any]
Handler = Callable[[str, dict[str, Any]], None]  # (event type, object); "SYNC" for listed objects
IndexFn = Callable[[dict[str, Any]], Iterable[str]]
Key = tuple[str, str]  # (namespace, name)
_MAX_TOMBSTONES = 10000


def _key(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", "")


def _rv(obj: dict[str, Any]) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):  # opaque resourceVersions: treat as unordered
        return 0


class Cache:
    """Thread-safe objects by (namespace, name) plus named secondary indexes.

    `upsert` also serves writers as a mutation cache (client-go's MutationCache): a controller
    that has just created or updated an object puts the server's answer in at once, so its next
    sync sees it even before the watch event arrives; an older version never replaces a newer one.
    """

    def __init__(self, indexers: dict[str, IndexFn] | None = None) -> None:
        self._lock = threading.Lock()
        self._objects: dict[Key, dict[str, Any]] = {}
        self._indexers = dict(indexers or {})
        self._indexes: dict[str, dict[str, set[Key]]] = {name: {} for name in self._indexers}
        # resourceVersions of recent deletions, so that a writer's late upsert cannot resurrect one
        self._tombstones: dict[Key, int] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._objects)

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._objects.get((namespace, name))

    def by_index(self, index: str, value: str) -> list[dict[str, Any]]:
        """Objects whose `index` function yields `value` (KeyError for an undeclared index)."""
        with self._lock:
            return [self._objects[k] for k in self._indexes[index].get(value, ())]

    def upsert(self, obj: dict[str, Any]) -> None:
        """Store `obj` unless the cache already holds a newer resourceVersion of it."""
        key = _key(obj)
        with self._lock:
            old = self._objects.get(key)
            rv = _rv(obj)
            if (old is not None and _rv(old) > rv) or self._tombstones.get(key, -1) >= rv > 0:
                return
            self._put(key, old, obj)

    def delete(self, obj: dict[str, Any]) -> None:
        key = _key(obj)
        with self._lock:
            old = self._objects.get(key)
            if old is not None and _rv(old) <= _rv(obj):
                self._put(key, old, None)
            if len(self._tombstones) >= _MAX_TOMBSTONES:
                self._tombstones.clear()
            self._tombstones[key] = _rv(obj)

    def replace(self, objs: list[dict[str, Any]], list_rv: int) -> None:
        """A fresh list: its objects, plus any upserted after the list's snapshot (newer than `list_rv`)."""
        with self._lock:
            keep = {k: o for k, o in self._objects.items() if _rv(o) > list_rv}
            self._tombstones = {k: rv for k, rv in self._tombstones.items() if rv > list_rv}
            self._objects = {}
            self._indexes = {name: {} for name in self._indexers}
            for obj in objs:
                self._put(_key(obj), None, obj)
            for key, obj in keep.items():
                old = self._objects.get(key)
                if old is None or _rv(old) < _rv(obj):
                    self._put(key, old, obj)

    def _put(self, key: Key, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        for name, fn in self._indexers.items():
            index = self._indexes[name]
            for value in fn(old) if old is not None else ():
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]
            for value in fn(new) if new is not None else ():
                index.setdefault(value, set()).add(key)
        if new is None:
            self._objects.pop(key, None)
        else:
            self._objects[key] = new


class Informer:
    """Calls `handler` for every object listed and every watch event of `list_fn`.

    With a `cache`, the cache is updated before the handler runs, so a handler (or a worker it
    queues) always finds at least the version the event carried.
    """

    def __init__(self, name: str, list_fn: ListFn, handler: Handler, watch_timeout_s: int = 300,
                 retry_s: float = 0.5, cache: Cache | None = None, **list_kwargs: Any) -> None:
        self.name, self.list_fn, self.handler, self.cache = name, list_fn, handler, cache
        self.watch_timeout_s, self.retry_s, self.list_kwargs = watch_timeout_s, retry_s, list_kwargs
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._response: Any = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"informer-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wait_synced(self, timeout: float) -> bool:
        """True once the first list has been delivered."""
        return self._synced.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            resp = self._response
        if resp is not None:
            try:
                resp.shutdown()
            except Exception:  # already closed
                pass
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rv = self._list()
                self._watch(rv)
            except ApiException as exc:
                if exc.status != 410:
                    logger.warning("informer_error", informer=self.name, status=exc.status, reason=exc.reason)
                    self._stop.wait(self.retry_s)
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
                if not self._stop.is_set():
                    logger.debug("informer_retry", informer=self.name, error=str(exc))
                    self._stop.wait(self.retry_s)

    def _list(self) -> str:
        resp = self.list_fn(_preload_content=False, **self.list_kwargs)
        body = json.loads(resp.data)
        rv = str(body["metadata"]["resourceVersion"])
        items = body.get("items") or []
        if self.cache is not None:
            self.cache.replace(items, _rv(body))
        for obj in items:
            self._deliver("SYNC", obj)
        self._synced.set()
        return rv

    def _deliver(self, etype: str, obj: dict[str, Any]) -> None:
        try:
            self.handler(etype, obj)
        except Exception:  # a handler bug must not end the watch
            logger.exception("informer_handler_failed", informer=self.name, event=etype)

    def _watch(self, rv: str) -> None:
        """Watch from `rv` until the stream ends; raises ApiException(410) when expired."""
        while not self._stop.is_set():
            resp = self.list_fn(watch=True, resource_version=rv, allow_watch_bookmarks=True,
                                timeout_seconds=self.watch_timeout_s, _preload_content=False, **self.list_kwargs)
            with self._lock:
                self._response = resp
            if self._stop.is_set():
                resp.shutdown()
                return
            try:
                buffer = b""
                for chunk in resp.stream(65536, decode_content=False):
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        obj = event.get("object") or {}
                        etype = event.get("type")
                        if etype == "ERROR":
                            code = obj.get("code")
                            raise ApiException(status=code or 500, reason=obj.get("message", "watch error"))
                        rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                        if etype != "BOOKMARK":
                            if self.cache is not None:
                                if etype == "DELETED":
                                    self.cache.delete(obj)
                                else:
                                    self.cache.upsert(obj)
                            self._deliver(etype, obj)
            finally:
                with self._lock:
                    self._response = None
                resp.release_conn()
