"""List-then-watch through the official client, with 410 re-lists and a stoppable stream.

The emulated controllers (claim controller, kubelets) observe the API server exactly as real
ones do: list, watch from the list's resourceVersion with bookmarks, re-list on 410 Expired.
Reading is raw (`_preload_content=False` + json) because model deserialization is ~10x slower
(FACTS §10). The open watch response is kept so that `stop()` can shut it down at once instead
of waiting for the next event.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from driver import log

logger = log.get(__name__)

ListFn = Callable[..., Any]
Handler = Callable[[str, dict[str, Any]], None]  # (event type, object); "SYNC" for listed objects


class Informer:
    """Calls `handler` for every object listed and every watch event of `list_fn`."""

    def __init__(self, name: str, list_fn: ListFn, handler: Handler, watch_timeout_s: int = 300,
                 retry_s: float = 0.5, **list_kwargs: Any) -> None:
        self.name, self.list_fn, self.handler = name, list_fn, handler
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
        for obj in body.get("items") or []:
            self._deliver("SYNC", obj)
        self._synced.set()
        return str(body["metadata"]["resourceVersion"])

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
                            self._deliver(etype, obj)
            finally:
                with self._lock:
                    self._response = None
                resp.release_conn()
