"""Thin raw-JSON layer over the official `kubernetes` client.

Everything goes through the generated API classes over real HTTP, but with
`_preload_content=False`: the client then returns the urllib3 response and we decode the JSON
ourselves. Why: the controller works on plain wire dicts (docs/ARCHITECTURE.md), and decoding big
lists into the client's pydantic models is ~10x slower (FACTS.md §10). Errors still come back as
the client's `ApiException` (status + Status body), which `api_error` turns into something short.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config


@dataclass(frozen=True)
class Resource:
    """One watched collection: how to list it across namespaces with the official client."""

    kind: str  # "Pod", "Node", "ResourceSlice", ...
    api: str  # "core" | "resource" | "storage" | "policy"
    method: str  # list method of the API class, all namespaces
    namespaced: bool


PODS = Resource("Pod", "core", "list_pod_for_all_namespaces", True)
NODES = Resource("Node", "core", "list_node", False)
SLICES = Resource("ResourceSlice", "resource", "list_resource_slice", False)
CLAIMS = Resource("ResourceClaim", "resource", "list_resource_claim_for_all_namespaces", True)
CLASSES = Resource("DeviceClass", "resource", "list_device_class", False)
TEMPLATES = Resource("ResourceClaimTemplate", "resource", "list_resource_claim_template_for_all_namespaces", True)
# Read by the scheduler's constraints (namespaceSelector, VolumeBinding) and preemption (PDBs).
NAMESPACES = Resource("Namespace", "core", "list_namespace", False)
PVCS = Resource("PersistentVolumeClaim", "core", "list_persistent_volume_claim_for_all_namespaces", True)
PVS = Resource("PersistentVolume", "core", "list_persistent_volume", False)
STORAGE_CLASSES = Resource("StorageClass", "storage", "list_storage_class", False)
PDBS = Resource("PodDisruptionBudget", "policy", "list_pod_disruption_budget_for_all_namespaces", True)


# What the controller watches: each informer holds one pooled connection open for its watch.
WATCHED = (PODS, NODES, SLICES, CLAIMS, CLASSES, TEMPLATES, NAMESPACES, PVCS, PVS, STORAGE_CLASSES, PDBS)
# Other threads that write at the same time as the binders: the scheduling loop (claim
# writes, preemption), the releaser, the leader elector, and one spare for callers like a demo.
OTHER_WRITERS = 4


def controller_pool_size(binders: int) -> int:
    """Connections the controller can use at once: one per watch, one per binder thread, the other
    writers. A smaller pool makes urllib3 drop the surplus ("Connection pool is full, discarding
    connection") and reconnect on every request."""
    return len(WATCHED) + max(binders, 0) + OTHER_WRITERS


def new_client(kubeconfig: str | None = None, pool_size: int = 32) -> client.ApiClient:
    """An ApiClient from a kubeconfig file, or in-cluster config when none is given and we run in a pod."""
    cfg = client.Configuration()
    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    else:
        try:
            config.load_incluster_config(client_configuration=cfg)
        except config.ConfigException:
            config.load_kube_config(client_configuration=cfg)
    # Watches hold connections open: one per watched resource, plus writers.
    cfg.connection_pool_maxsize = pool_size
    return client.ApiClient(cfg)


@dataclass
class Kube:
    """The API classes the controller uses, sharing one ApiClient (one connection pool)."""

    api_client: client.ApiClient

    def __post_init__(self) -> None:
        self.core = client.CoreV1Api(self.api_client)
        self.resource = client.ResourceV1Api(self.api_client)
        self.coordination = client.CoordinationV1Api(self.api_client)
        self.storage = client.StorageV1Api(self.api_client)
        self.policy = client.PolicyV1Api(self.api_client)

    def _api(self, res: Resource) -> Any:
        return {"core": self.core, "resource": self.resource, "storage": self.storage, "policy": self.policy}[res.api]

    def list_raw(self, res: Resource, **kw: Any) -> dict:
        """One LIST as a dict (items + metadata.resourceVersion), following `continue` pages."""
        fn = getattr(self._api(res), res.method)
        items: list[dict] = []
        token: str | None = None
        while True:
            extra = {"_continue": token} if token else {}
            doc = decode(fn(_preload_content=False, **kw, **extra))
            items.extend(doc.get("items") or [])
            token = (doc.get("metadata") or {}).get("continue")
            if not token:
                doc["items"] = items
                return doc

    def open_watch(self, res: Resource, resource_version: str, timeout_seconds: int, **kw: Any) -> Any:
        """Start a watch from `resource_version` (bookmarks on); returns the raw streaming response.

        Read it with `watch_events(resp)`; `resp.shutdown()` from another thread ends a blocked read,
        which is how informers stop promptly.
        """
        fn = getattr(self._api(res), res.method)
        return fn(
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout_seconds,
            _preload_content=False,
            _request_timeout=(10, timeout_seconds + 30),
            **kw,
        )

    def call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> dict:
        """Call any generated method raw and decode its JSON answer."""
        return decode(fn(*args, _preload_content=False, **kw))


def decode(resp: Any) -> dict:
    """The JSON body of a raw urllib3 response."""
    data = resp.data
    return json.loads(data) if data else {}


def watch_events(resp: Any) -> Iterator[dict]:
    """Split a streamed watch body into JSON objects (one per line), as chunks arrive."""
    buf = b""
    chunks = resp.read_chunked(decode_content=True) if getattr(resp, "chunked", False) else resp.stream(65536)
    for chunk in chunks:
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)
    if buf.strip():
        yield json.loads(buf)


def api_error(exc: BaseException) -> tuple[int, str]:
    """(HTTP status, short message) of an ApiException; (0, text) for transport errors."""
    status = getattr(exc, "status", 0) or 0
    body = getattr(exc, "body", None)
    message = ""
    if body:
        try:
            doc = json.loads(body)
            message = doc.get("message") or doc.get("reason") or ""
        except (ValueError, AttributeError):
            message = str(body)[:300]
    return int(status), message or str(getattr(exc, "reason", "") or exc)[:300]


def key_of(obj: dict) -> str:
    """`namespace/name` (or `name` for cluster-scoped objects)."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))
