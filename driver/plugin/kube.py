"""Every Kubernetes API call the plugin makes, through the official client.

Objects stay plain wire dicts (ARCHITECTURE.md): requests go through the client's public
`param_serialize` / `call_api` with JSON bodies and responses are `json.loads`-ed, which keeps
fields the generated models do not know (and is ~10x faster on big lists, FACTS.md §10).
Authentication, TLS and the API server address come from the kubeconfig or the in-cluster
service account exactly as for any other client.
"""

from __future__ import annotations

import datetime
import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

DRA_PATH = "/apis/resource.k8s.io/v1"
TIMEOUT_S = 10.0


def api_client(kubeconfig: str | None) -> client.ApiClient:
    """A client from a kubeconfig file, or in-cluster config when None."""
    cfg = client.Configuration()  # never the process-wide default: several plugins may share a process
    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    else:
        config.load_incluster_config(client_configuration=cfg)  # refreshes the rotating SA token
    return client.ApiClient(cfg)


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ApiException) and exc.status == 404


def is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, ApiException) and exc.status in (409,)


@dataclass
class Kube:
    """The plugin's API access: claims (read), ResourceSlices (write), Events (write)."""

    api: client.ApiClient

    def request(self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> Any:
        """One JSON request; raises ApiException on a non-2xx answer."""
        if query:
            path = f"{path}?{urlencode(query)}"
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        params = self.api.param_serialize(
            method, path, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        resp = self.api.call_api(*params, _request_timeout=TIMEOUT_S)
        data = resp.read()
        if not 200 <= resp.status <= 299:
            raise ApiException(http_resp=resp)
        return json.loads(data) if data else None

    # -- ResourceClaims -------------------------------------------------------------------
    def get_claim(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The claim, or None when it does not exist."""
        try:
            return self.request("GET", f"{DRA_PATH}/namespaces/{quote(namespace)}/resourceclaims/{quote(name)}")
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list_claims(self) -> list[dict[str, Any]]:
        """All claims of the cluster (used only to rebuild a lost checkpoint)."""
        return self.request("GET", f"{DRA_PATH}/resourceclaims").get("items") or []

    # -- ResourceSlices -------------------------------------------------------------------
    def list_slices(self, driver: str, node: str) -> list[dict[str, Any]]:
        selector = f"spec.driver={driver},spec.nodeName={node}"
        return self.request("GET", f"{DRA_PATH}/resourceslices", query={"fieldSelector": selector}).get("items") or []

    def create_slice(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", f"{DRA_PATH}/resourceslices", body=obj)

    def replace_slice(self, obj: dict[str, Any]) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        return self.request("PUT", f"{DRA_PATH}/resourceslices/{quote(name)}", body=obj)

    def delete_slice(self, name: str) -> None:
        try:
            self.request("DELETE", f"{DRA_PATH}/resourceslices/{quote(name)}")
        except ApiException as exc:
            if exc.status != 404:
                raise

    # -- Nodes and Events -----------------------------------------------------------------
    def node_uid(self, node: str) -> str | None:
        """The Node's UID (slices are owned by it so they go away with the node), or None."""
        try:
            return self.request("GET", f"/api/v1/nodes/{quote(node)}")["metadata"]["uid"]
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def event(self, involved: dict[str, Any], reason: str, message: str, type_: str = "Warning",
              component: str = "gpu-dra-kubelet-plugin", host: str = "") -> None:
        """Record an Event about an object (best effort: an Event must never fail the caller)."""
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        namespace = involved.get("namespace") or "default"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{involved.get('name', 'node')}.{uuid.uuid4().hex[:16]}", "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": component, "host": host},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.request("POST", f"/api/v1/namespaces/{quote(namespace)}/events", body=body)
        except Exception:  # noqa: BLE001 - events are advisory
            pass
