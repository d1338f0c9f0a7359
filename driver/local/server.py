"""The local API server: Kubernetes REST over HTTP/1.1 on loopback, backed by `Store`.

Stdlib only (ThreadingHTTPServer, one thread per connection, keep-alive) so that it starts in
milliseconds inside tests. Watches stream JSON lines with chunked transfer encoding. Lists and
GETs send the store's cached JSON bytes as they are; only the paths that need to (v1beta2
compatibility) re-encode.

This module routes requests to the store and writes the replies (including watch streams);
decoding bodies and query parameters is `request`'s job, URL parsing `routes`'s.
"""

from __future__ import annotations

import json
import select
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from driver import log
from driver.local import discovery, errors, request, routes, scale, selectors, table
from driver.local.routes import Route
from driver.local.faults import Faults
from driver.local.store import Store, dumps

logger = log.get(__name__)

JSON = request.JSON


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms stalls
    server: "_HTTPServer"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("http_request", line=format % args)

    # --- plumbing ------------------------------------------------------------------------

    def _send(self, code: int, body: bytes, content_type: str = JSON) -> None:
        self.send_response(code)
        for warning in getattr(self, "warnings", ()):
            escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
            self.send_header("Warning", f'299 - "{escaped}"')
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.write(body)

    def _send_obj(self, code: int, obj: Any) -> None:
        self._send(code, dumps(obj))

    def _error(self, err: errors.ApiError) -> None:
        self._send_obj(err.code, err.status())

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        self.warnings: list[str] = []
        url = urlsplit(self.path)
        query = request.parse_query(url.query)
        try:
            body = request.read_body(self.headers, self.rfile) if method in ("POST", "PUT", "PATCH", "DELETE") else None
            if method == "GET" and self._discovery(url.path):
                return
            if method == "POST" and self._legacy_binding(url.path, body):
                return
            route = routes.parse(url.path)
            if route is None:
                raise errors.ApiError(404, "NotFound", f"the server could not find the requested resource ({method} {url.path})")
            self._resource(method, route, query, body)
        except errors.ApiError as err:
            self._error(err)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # one bad request must not take the server down
            logger.exception("request_failed", method=method, path=url.path)
            self._error(errors.internal(str(exc)))

    def _discovery(self, path: str) -> bool:
        path = path.rstrip("/") or "/"
        doc: dict[str, Any] | None
        if path == "/version":
            doc = discovery.version()
        elif path in ("/healthz", "/readyz", "/livez"):
            self._send(200, b"ok", "text/plain")
            return True
        elif path == "/api":
            doc = discovery.core_versions(f"{self.server.server_address[0]}:{self.server.server_address[1]}")
        elif path == "/apis":
            doc = discovery.group_list()
        elif path == "/api/v1":
            doc = discovery.resource_list("", "v1")
        elif path == "/openapi/v3":
            doc = discovery.openapi_v3_root()
        elif path.startswith("/openapi/v3/api/") or path.startswith("/openapi/v3/apis/"):
            parts = path[len("/openapi/v3/"):].split("/")
            group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2] if len(parts) > 2 else "")
            doc = discovery.openapi_v3_group_version(group, version)
        elif path.startswith("/apis/") and path.count("/") == 2:
            doc = discovery.group(path.split("/")[2])
        elif path.startswith("/apis/") and path.count("/") == 3:
            _, _, group, version = path.split("/")
            doc = discovery.resource_list(group, version)
        else:
            return False
        if doc is None:
            raise errors.ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
        self._send_obj(200, doc)
        return True

    def _legacy_binding(self, path: str, body: Any) -> bool:
        """POST /api/v1/namespaces/<ns>/bindings: the pre-subresource form of pods/binding."""
        parts = [p for p in path.split("/") if p]
        if len(parts) != 5 or parts[:3] != ["api", "v1", "namespaces"] or parts[4] != "bindings":
            return False
        name = (body.get("metadata") or {}).get("name") if isinstance(body, dict) else None
        if not name:
            raise errors.invalid("Binding", "", [("metadata.name", "Required value: the pod to bind")])
        route = routes.parse(f"/api/v1/namespaces/{parts[3]}/pods/{name}/binding")
        assert route is not None
        self._resource("POST", route, {}, body)
        return True

    # --- resources -----------------------------------------------------------------------

    def _resource(self, method: str, route: Route, query: dict[str, str], body: Any) -> None:
        store: Store = self.server.store
        res, ns, name, sub = route.storage, route.ns or "", route.name, route.sub
        watching = method == "GET" and request.flag(query, "watch")
        verb = {"GET": "watch" if watching else ("get" if name else "list"), "POST": "create", "PUT": "update",
                "PATCH": "patch", "DELETE": "delete"}[method]
        delay, failure = self.server.faults.decide(verb, route.fault_key, name)
        if delay:
            time.sleep(delay)  # injected latency, by request
        if failure is not None:
            raise failure
        dry_run = bool(query.get("dryRun"))
        if route.compat and isinstance(body, dict):
            body["apiVersion"] = res.api_version
        if sub == "binding" and method != "POST":
            raise errors.method_not_allowed(f"{method} is not supported on pods/binding (only create)")
        if sub in ("status", "scale") and method not in ("GET", "PUT", "PATCH"):
            raise errors.method_not_allowed(f"{method} is not supported on {route.res.plural}/{sub}")
        if sub == "scale" and watching:
            raise errors.method_not_allowed(f"watch is not supported on {route.res.plural}/scale")
        if sub == "scale":
            self._scale(method, route, body, dry_run)
        elif watching:
            self._watch(route, query)
        elif method == "GET" and name and table.wants_table(self.headers.get("Accept")):
            obj = store.get(res, ns, name)
            meta = {"resourceVersion": obj["metadata"]["resourceVersion"]}
            self._send_obj(200, table.table(res.key, [obj], meta))
        elif method == "GET" and name:
            if route.compat:
                self._reply(route, 200, store.get(res, ns, name))
            else:
                self._send(200, store.get_raw(res, ns, name))
        elif method == "GET":
            self._list(route, query)
        elif method == "POST" and sub == "binding":
            if not isinstance(body, dict):
                raise errors.bad_request("a Binding object is required")
            store.bind(ns, name, body)
            self._send_obj(201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
        elif method == "POST" and not name:
            self.warnings += request.check_kind(route.res, body, query)
            self._reply(route, 201, store.create(res, ns, body, dry_run))
        elif method == "PUT" and name:
            self.warnings += request.check_kind(route.res, body, query)
            self._reply(route, 200, store.update(res, ns, name, body, sub, dry_run))
        elif method == "PATCH" and name:
            ctype = request.media_type(self.headers)
            if body is None:
                raise errors.bad_request("a patch body is required")
            self._reply(route, 200, store.patch(res, ns, name, ctype, body, sub, dry_run))
        elif method == "DELETE" and name and not sub:
            self._delete(route, query, body)
        elif method == "DELETE" and not name:
            self._delete_collection(route, query, body)
        else:
            raise errors.method_not_allowed(f"{method} is not supported on {self.path}")

    def _scale(self, method: str, route: Route, body: Any, dry_run: bool) -> None:
        """GET/PUT/PATCH of <deployments|replicasets>/<name>/scale (see `scale`)."""
        store: Store = self.server.store
        res, ns, name = route.storage, route.ns or "", route.name
        if method == "GET":
            self._send_obj(200, scale.get(store, res, ns, name))
        elif method == "PUT":
            self._send_obj(200, scale.update(store, res, ns, name, body, dry_run))
        else:
            self._send_obj(200, scale.patch(store, res, ns, name, request.media_type(self.headers), body, dry_run))

    def _reply(self, route: Route, code: int, obj: dict[str, Any]) -> None:
        if route.compat:
            obj = dict(obj, apiVersion=route.res.api_version)
        self._send_obj(code, obj)

    def _predicate(self, route: Route, query: dict[str, str]) -> selectors.Predicate | None:
        return selectors.combine(
            selectors.label_selector(query.get("labelSelector")),
            selectors.field_selector(query.get("fieldSelector"), route.res.field_selectors, route.res.kind),
        )

    def _list(self, route: Route, query: dict[str, str]) -> None:
        store: Store = self.server.store
        pred = self._predicate(route, query)
        limit = request.limit(query)
        rv = request.resource_version(query)
        if rv is not None:
            if rv > store.rv:
                raise errors.timeout(f"Too large resource version: {rv}, current: {store.rv}")
            if query.get("resourceVersionMatch") == "Exact" and rv != store.rv:
                raise errors.expired(f"too old resource version: {rv} ({store.rv}); only the latest state is kept")
        result = store.list(route.storage, route.ns, pred, limit, query.get("continue", ""))
        meta: dict[str, Any] = {"resourceVersion": str(result.resource_version)}
        if result.continue_token:
            meta["continue"] = result.continue_token
        if result.remaining is not None:
            meta["remainingItemCount"] = result.remaining
        if table.wants_table(self.headers.get("Accept")):
            self._send_obj(200, table.table(route.storage.key, result.objects, meta))
            return
        items = result.items
        if route.compat:
            items = [dumps(dict(json.loads(raw), apiVersion=route.res.api_version)) for raw in items]
        head = dumps({"kind": f"{route.res.kind}List", "apiVersion": route.res.api_version, "metadata": meta})
        self._send(200, head[:-1] + b',"items":[' + b",".join(items) + b"]}")

    def _delete(self, route: Route, query: dict[str, str], body: Any) -> None:
        opts = body if isinstance(body, dict) else {}
        grace_s = request.grace_seconds(query, opts)
        obj, gone = self.server.store.delete(
            route.storage, route.ns or "", route.name, grace_s,
            query.get("propagationPolicy") or opts.get("propagationPolicy"),
            opts.get("preconditions"), bool(query.get("dryRun") or opts.get("dryRun")))
        if gone and not route.res.returns_deleted_object:
            meta = obj["metadata"]
            self._send_obj(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                 "details": {"name": meta["name"], "group": route.res.group,
                                             "kind": route.res.plural, "uid": meta["uid"]}})
        else:
            self._reply(route, 200, obj)

    def _delete_collection(self, route: Route, query: dict[str, str], body: Any) -> None:
        store: Store = self.server.store
        pred = self._predicate(route, query)
        for obj in store.list_objects(route.storage, route.ns, pred):
            try:
                store.delete(route.storage, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            except errors.ApiError as err:
                if err.code != 404:
                    raise
        self._send_obj(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})

    # --- watch ---------------------------------------------------------------------------

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _client_gone(self) -> bool:
        """True when the watching client has closed its end (checked while the watch is idle)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _watch(self, route: Route, query: dict[str, str]) -> None:
        store: Store = self.server.store
        pred = self._predicate(route, query)
        if route.name:
            by_name = selectors.field_selector(f"metadata.name={route.name}", ("metadata.name",), route.res.kind)
            pred = selectors.combine(pred, by_name)
        initial = request.flag(query, "sendInitialEvents")
        since = None if initial else request.resource_version(query)
        bookmarks = request.flag(query, "allowWatchBookmarks")
        timeout = request.timeout_seconds(query)
        deadline = time.monotonic() + timeout if timeout else None
        self.send_response(200)
        self.send_header("Content-Type", JSON)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        kind, api_version = route.res.kind, route.res.api_version

        as_table = table.wants_table(self.headers.get("Accept"))
        columns_sent = False

        def send_obj(etype: str, obj: dict[str, Any], raw: bytes) -> None:
            nonlocal columns_sent
            if as_table:
                meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
                raw = dumps(table.table(route.storage.key, [obj], meta, with_columns=not columns_sent))
                columns_sent = True
                self._chunk(b'{"type":"%s","object":%s}\n' % (etype.encode(), raw))
            else:
                send(etype, raw)

        def send(etype: str, raw: bytes) -> None:
            if route.compat and etype != "ERROR":
                raw = dumps(dict(json.loads(raw), apiVersion=api_version))
            self._chunk(b'{"type":"%s","object":%s}\n' % (etype.encode(), raw))

        def bookmark(rv: int, annotations: dict[str, str] | None = None) -> None:
            meta: dict[str, Any] = {"resourceVersion": str(rv)}
            if annotations:
                meta["annotations"] = annotations
            send("BOOKMARK", dumps({"kind": kind, "apiVersion": api_version, "metadata": meta}))

        try:
            try:
                watch = store.watch(route.storage, route.ns, pred, since)
            except errors.ApiError as err:
                send("ERROR", dumps(err.status()))
                return
            for etype, obj, raw in watch.initial:
                send_obj(etype, obj, raw)
            if initial and bookmarks:
                bookmark(watch.last_rv, {"k8s.io/initial-events-end": "true"})
            interval = self.server.bookmark_interval
            next_bookmark = time.monotonic() + interval
            while not self.server.stopping.is_set():
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                wait = next_bookmark - now if bookmarks else 1.0
                if deadline is not None:
                    wait = min(wait, deadline - now)
                try:
                    events = watch.next(max(wait, 0.0))
                except errors.ApiError as err:
                    send("ERROR", dumps(err.status()))
                    break
                if events is None:
                    break
                if not events and self._client_gone():
                    break
                for etype, obj, raw in events:
                    send_obj(etype, obj, raw)
                if bookmarks and time.monotonic() >= next_bookmark:
                    bookmark(watch.last_rv)
                    next_bookmark = time.monotonic() + interval
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        self.close_connection = True


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], store: Store, faults: Faults, bookmark_interval: float) -> None:
        self.store, self.faults, self.bookmark_interval = store, faults, bookmark_interval
        self.stopping = threading.Event()
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up (or stop() closing their sockets) is normal; anything else is logged."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)) or self.stopping.is_set():
            return
        logger.exception("connection_failed", client=str(client_address))

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self.conn_lock:
            self.connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.conn_lock:
                self.connections.discard(request)


class ApiServer:
    """In-memory Kubernetes API server on loopback: `with ApiServer() as api: ... api.url`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, history: int = 10000,
                 bookmark_interval: float = 60.0, fault_seed: int = 0) -> None:
        if bookmark_interval <= 0:
            raise ValueError(f"bookmark_interval: expected seconds > 0; got {bookmark_interval}")
        self.host, self.port = host, port
        self.store = Store(history=history)
        self.faults = Faults(fault_seed)
        self.bookmark_interval = bookmark_interval
        self.kubeconfig_path: Path | None = None
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the API server is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "ApiServer":
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((self.host, self.port), self.store, self.faults, self.bookmark_interval)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="local-apiserver", daemon=True)
        self._thread.start()
        logger.info("apiserver_started", url=self.url)
        return self

    def stop(self) -> None:
        """Stop serving, end watches and close open connections."""
        httpd = self._httpd
        if httpd is None:
            return
        httpd.stopping.set()
        self.store.close()
        httpd.shutdown()
        with httpd.conn_lock:
            for conn in list(httpd.connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        logger.info("apiserver_stopped")

    def __enter__(self) -> "ApiServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kubeconfig(self) -> dict[str, Any]:
        """A kubeconfig document pointing at this server (no auth: loopback only)."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "gpu-dra-local", "cluster": {"server": self.url}}],
            "users": [{"name": "gpu-dra-local", "user": {}}],
            "contexts": [{"name": "gpu-dra-local", "context": {"cluster": "gpu-dra-local", "user": "gpu-dra-local",
                                                                "namespace": "default"}}],
            "current-context": "gpu-dra-local",
            "preferences": {},
        }

    def write_kubeconfig(self, path: str | Path) -> Path:
        """Write the kubeconfig atomically (readers polling for the file never see half of it)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(yaml.safe_dump(self.kubeconfig(), sort_keys=False))
        tmp.replace(target)
        self.kubeconfig_path = target
        return target
