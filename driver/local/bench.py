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


def _claim_pod(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"pod-{i:05d}", "namespace": "bench"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}],
                     "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "one-gpu"}]}}


def run_claims(pods: int = 800, workers: int | None = None, timeout: float = 600.0) -> dict[str, Any]:
    """Time the resourceclaim controller alone: `pods` pods created, until each records its claim.

    Pods are created in-process (the HTTP path is not what is measured); the controller works
    over HTTP as in a cluster. The figure to watch is claims/s as `pods` grows: it stays flat
    when per-pod work does not depend on how many claims exist.
    """
    import threading

    from driver.local.claims import ClaimController

    if pods <= 0:
        raise ValueError("pods must be positive")
    with ApiServer(history=max(10000, 8 * pods)) as api:
        store = api.store
        store.create(store.resource("namespaces"), "", {"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": "bench"}})
        store.create(store.resource("resource.k8s.io/resourceclaimtemplates"), "bench", {
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate",
            "metadata": {"name": "one-gpu", "namespace": "bench"},
            "spec": {"spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com"}}]}}}})
        pod_res = store.resource("pods")
        done = threading.Event()
        recorded: set[str] = set()

        cursor = store.watch(pod_res, "bench", None, store.rv)

        def count() -> None:
            while not done.is_set():
                for _etype, obj, _raw in cursor.next(0.5) or []:
                    if (obj.get("status") or {}).get("resourceClaimStatuses"):
                        recorded.add(obj["metadata"]["name"])
                if len(recorded) >= pods:
                    done.set()

        conf = client.Configuration(host=api.url)
        with client.ApiClient(conf) as api_client:
            kwargs = {} if workers is None else {"workers": workers}
            ctl = ClaimController(api_client, **kwargs)
            ctl.start()
            try:
                counter = threading.Thread(target=count, daemon=True)
                counter.start()
                t0 = time.perf_counter()
                for i in range(pods):
                    store.create(pod_res, "bench", _claim_pod(i))
                finished = done.wait(timeout)
                elapsed = time.perf_counter() - t0
            finally:
                done.set()
                ctl.stop()
        claims = len(store.list_objects(store.resource("resource.k8s.io/resourceclaims"), "bench"))
    return {"pods": pods, "workers": workers, "finished": finished, "claims": claims,
            "seconds": round(elapsed, 3), "claims_per_second": round(len(recorded) / elapsed, 1)}
