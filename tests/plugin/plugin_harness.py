"""Test harness for the kubelet plugin: a kubelet emulation over the real sockets, and claims.

The kubelet emulation does what kubelet's plugin manager and DRA manager do on the wire:
GetInfo on the registration socket, pick the first advertised version it knows, notify the
registration status, then call NodePrepareResources / NodeUnprepareResources with only
namespace/name/UID. Claims are created through the official client in the local API server,
allocation status included, exactly as a scheduler would leave them.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from driver.plugin.kube import DRA_PATH, Kube
from driver.plugin.proto import (
    dra_v1_pb2,
    dra_v1_pb2_grpc,
    dra_v1beta1_pb2,
    dra_v1beta1_pb2_grpc,
    pluginregistration_pb2,
    pluginregistration_pb2_grpc,
)

BIN_DIR = Path(__file__).parent / "bin"
KNOWN_VERSIONS = {"v1.DRAPlugin": (dra_v1_pb2, dra_v1_pb2_grpc), "v1beta1.DRAPlugin": (dra_v1beta1_pb2, dra_v1beta1_pb2_grpc)}
CALL_TIMEOUT = 45.0  # kubelet's per-call timeout


@dataclass
class Kubelet:
    """Kubelet's side of the registration and DRA gRPC protocols."""

    registration_socket: str
    accepted: tuple[str, ...] = ("v1.DRAPlugin", "v1beta1.DRAPlugin")
    info: Any = None
    version: str = ""
    _channels: list[grpc.Channel] = field(default_factory=list)

    def _channel(self, path: str) -> grpc.Channel:
        ch = grpc.insecure_channel(f"unix://{path}")
        self._channels.append(ch)
        return ch

    def register(self) -> Any:
        reg = pluginregistration_pb2_grpc.RegistrationStub(self._channel(self.registration_socket))
        self.info = reg.GetInfo(pluginregistration_pb2.InfoRequest(), timeout=5)
        chosen = next((v for v in self.info.supported_versions if v in self.accepted), "")
        ok = self.info.type == "DRAPlugin" and bool(chosen)
        reg.NotifyRegistrationStatus(pluginregistration_pb2.RegistrationStatus(
            plugin_registered=ok, error="" if ok else "no supported version"), timeout=5)
        self.version = chosen
        return self.info

    def stub(self, version: str | None = None) -> tuple[Any, Any]:
        pb2, pb2_grpc = KNOWN_VERSIONS[version or self.version]
        return pb2, pb2_grpc.DRAPluginStub(self._channel(self.info.endpoint))

    def prepare(self, claims: list[dict[str, Any]], version: str | None = None) -> Any:
        pb2, stub = self.stub(version)
        req = pb2.NodePrepareResourcesRequest(claims=[
            pb2.Claim(namespace=c["metadata"]["namespace"], name=c["metadata"]["name"], uid=c["metadata"]["uid"])
            for c in claims])
        return stub.NodePrepareResources(req, timeout=CALL_TIMEOUT)

    def unprepare(self, claims: list[dict[str, Any]], version: str | None = None) -> Any:
        pb2, stub = self.stub(version)
        req = pb2.NodeUnprepareResourcesRequest(claims=[
            pb2.Claim(namespace=c["metadata"]["namespace"], name=c["metadata"]["name"], uid=c["metadata"]["uid"])
            for c in claims])
        return stub.NodeUnprepareResources(req, timeout=CALL_TIMEOUT)

    def close(self) -> None:
        for ch in self._channels:
            ch.close()


def opaque(params: dict[str, Any], requests: list[str] | None = None, source: str = "FromClaim",
           driver: str = "gpu.nvidia.com") -> dict[str, Any]:
    """One `status.allocation.devices.config[]` entry."""
    entry: dict[str, Any] = {"source": source, "opaque": {"driver": driver, "parameters": params}}
    if requests:
        entry["requests"] = requests
    return entry


def result(device: str, request: str = "gpu", pool: str = "node-a", driver: str = "gpu.nvidia.com",
           **extra: Any) -> dict[str, Any]:
    return {"request": request, "driver": driver, "pool": pool, "device": device, **extra}


def create_claim(kube: Kube, name: str, results: list[dict[str, Any]], configs: list[dict[str, Any]] | None = None,
                 namespace: str = "default", allocated: bool = True, reserved: bool = True) -> dict[str, Any]:
    """Create a claim and write its allocation status, as the scheduler would."""
    requests = sorted({r["request"].split("/")[0] for r in results}) or ["gpu"]
    body = {
        "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"devices": {"requests": [{"name": n, "exactly": {"deviceClassName": "gpu.nvidia.com"}}
                                          for n in requests]}},
    }
    claim = kube.request("POST", f"{DRA_PATH}/namespaces/{namespace}/resourceclaims", body=body)
    if not allocated:
        return claim
    claim["status"] = {"allocation": {"devices": {"results": results, "config": configs or []}}}
    if reserved:
        claim["status"]["reservedFor"] = [{"resource": "pods", "name": f"pod-{name}", "uid": str(uuidlib.uuid4())}]
    return kube.request("PUT", f"{DRA_PATH}/namespaces/{namespace}/resourceclaims/{name}/status", body=claim)


def delete_claim(kube: Kube, claim: dict[str, Any]) -> None:
    meta = claim["metadata"]
    kube.request("DELETE", f"{DRA_PATH}/namespaces/{meta['namespace']}/resourceclaims/{meta['name']}")


def fake_claim(name: str = "c", namespace: str = "default", uid: str | None = None) -> dict[str, Any]:
    """A claim reference that exists only on kubelet's side (for not-found / mismatch cases)."""
    return {"metadata": {"name": name, "namespace": namespace, "uid": uid or str(uuidlib.uuid4())}}
