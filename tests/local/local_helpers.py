"""Helpers shared by the local cluster tests (object bodies); waits come from tests/wait_helpers.py."""

from __future__ import annotations

from typing import Any


def pod_body(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}], **spec}}


def slice_body(name: str, devices: list[dict[str, Any]], node: str = "node-a") -> dict[str, Any]:
    return {"metadata": {"name": name},
            "spec": {"driver": "gpu.nvidia.com", "nodeName": node, "pool": {"name": node, "generation": 1,
                                                                             "resourceSliceCount": 1},
                     "devices": devices}}


def claim_body(name: str, requests: int = 1) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "spec": {"devices": {"requests": [{"name": f"r{i}", "exactly": {"deviceClassName": "gpu.nvidia.com"}}
                                              for i in range(requests)]}}}


def allocation(node: str = "node-a", device: str = "gpu-0") -> dict[str, Any]:
    return {"devices": {"results": [{"request": "r0", "driver": "gpu.nvidia.com", "pool": node, "device": device}]},
            "nodeSelector": {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                                       "values": [node]}]}]}}
