"""`gpu-dra local bench-list`: how fast the local API server lists many large ResourceSlices.

The controller lists every slice of the cluster on start and after each 410, so this is the read
path that bounds its start-up. Slices are loaded in-process (through the same create path and
validation as HTTP), then listed over HTTP with the official client, raw (`_preload_content=False`
+ json.loads, what the project's components do) and optionally into client models.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from kubernetes import client

from driver.local.server import ApiServer


def _slice(i: int, devices: int) -> dict[str, Any]:
    node = f"node-{i:04d}"
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": f"{node}-gpu.nvidia.com"},
        "spec": {
            "driver": "gpu.nvidia.com",
            "nodeName": node,
            "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
            "devices": [{
                "name": f"gpu-{d}",
                "attributes": {"type": {"string": "gpu"}, "uuid": {"string": f"GPU-{i:04d}-{d:04d}"},
                               "productName": {"string": "NVIDIA A100-SXM4-80GB"},
                               "cudaComputeCapability": {"version": "8.0.0"}},
                "capacity": {"memory": {"value": "80Gi"}},
            } for d in range(devices)],
        },
    }


def run(slices: int = 1000, devices: int = 100, repeats: int = 5, models: bool = False) -> dict[str, Any]:
    """Load `slices` slices of `devices` devices and time full lists; returns the figures."""
    if slices <= 0 or devices <= 0 or repeats <= 0:
        raise ValueError("slices, devices and repeats must be positive")
    with ApiServer() as api:
        res = api.store.resource("resource.k8s.io/resourceslices")
        t0 = time.perf_counter()
        for i in range(slices):
            api.store.create(res, "", _slice(i, devices))
        load_s = time.perf_counter() - t0
        conf = client.Configuration(host=api.url)
        with client.ApiClient(conf) as api_client:
            dra = client.ResourceV1Api(api_client)
            raw_times, transfer_times, bytes_len = [], [], 0
            for _ in range(repeats):
                t = time.perf_counter()
                resp = dra.list_resource_slice(_preload_content=False)
                data = resp.data
                transfer_times.append(time.perf_counter() - t)
                body = json.loads(data)
                raw_times.append(time.perf_counter() - t)
                bytes_len = len(data)
                if len(body["items"]) != slices:
                    raise RuntimeError(f"listed {len(body['items'])} slices, expected {slices}")
            sel_t = time.perf_counter()
            one = json.loads(dra.list_resource_slice(field_selector="spec.nodeName=node-0007", _preload_content=False).data)
            selected_s = time.perf_counter() - sel_t
            if len(one["items"]) != 1:
                raise RuntimeError("the field selector did not select exactly one slice")
            model_s = None
            if models:
                t = time.perf_counter()
                dra.list_resource_slice()
                model_s = time.perf_counter() - t
    return {
        "slices": slices, "devices_per_slice": devices, "response_bytes": bytes_len,
        "load_s": round(load_s, 3),
        "list_bytes_received_median_s": round(statistics.median(transfer_times), 3),
        "list_raw_median_s": round(statistics.median(raw_times), 3),
        "list_raw_min_s": round(min(raw_times), 3),
        "list_field_selector_s": round(selected_s, 4),
        "list_models_s": None if model_s is None else round(model_s, 3),
    }
