"""`gpu-dra bench prepare`: plugin latencies as kubelet sees them (BENCHMARKS.md §3).

Everything is real except the GPU: an in-process local API server reached over HTTP by the
official client, the plugin's gRPC server on a unix socket called through the generated stubs,
CDI and checkpoint files fsync'ed to a temp dir, and `nvidia-smi` / `nvidia-cuda-mps-control`
as subprocesses (no-op scripts here, so the figures include the fork/exec a real node pays but
not the driver's own time). NVML is the mock, so dynamic MIG create/destroy costs what the mock
costs, not what a GPU reset costs.

Scenarios: claims of 1, 4 and 8 devices, (a) whole GPUs with a TimeSlicing GpuConfig (one
nvidia-smi call per GPU on prepare and one on unprepare), (b) dynamic MIG 1g.10gb devices on
distinct GPUs with a MigDeviceConfig (instance created on prepare, destroyed on unprepare).
Also: time from plugin start to all slices published, for an 8-GPU node in each sharing mode.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from driver.local.server import ApiServer
from driver.plugin.driver import Plugin, PluginOptions
from driver.plugin.kube import DRA_PATH, Kube, api_client
from driver.plugin.proto import dra_v1_pb2, dra_v1_pb2_grpc

API = "resource.nvidia.com/v1beta1"
NOOP = "#!/bin/sh\ncat >/dev/null 2>&1 <&- || true\nexit 0\n"


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def _claim(kube: Kube, name: str, devices: list[str], config: dict[str, Any]) -> dict[str, Any]:
    body = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"devices": {"requests": [{"name": "r", "exactly": {"deviceClassName": "gpu.nvidia.com",
                                                                           "count": len(devices)}}]}}}
    claim = kube.request("POST", f"{DRA_PATH}/namespaces/default/resourceclaims", body=body)
    claim["status"] = {
        "allocation": {"devices": {
            "results": [{"request": "r", "driver": "gpu.nvidia.com", "pool": "node-a", "device": d} for d in devices],
            "config": [{"source": "FromClaim", "requests": ["r"],
                        "opaque": {"driver": "gpu.nvidia.com", "parameters": config}}]}},
        "reservedFor": [{"resource": "pods", "name": name, "uid": "00000000-0000-0000-0000-000000000001"}]}
    return kube.request("PUT", f"{DRA_PATH}/namespaces/default/resourceclaims/{name}/status", body=claim)


def _plugin(root: Path, kubeconfig: Path, node_config: dict[str, Any], nvml: str, tag: str) -> Plugin:
    for name in ("nvidia-smi", "mps-control"):
        path = root / name
        path.write_text(NOOP)
        path.chmod(0o755)
    return Plugin(PluginOptions(
        node_name="node-a", nvml=nvml, node_config=node_config, kubeconfig=str(kubeconfig),
        plugin_dir=str(root / tag / "plugin"), registry_dir=str(root / tag / "registry"),
        cdi_root=str(root / tag / "cdi"), nvidia_smi=str(root / "nvidia-smi"), mps_control=str(root / "mps-control")))


def _scenario(root: Path, api: ApiServer, kubeconfig: Path, kind: str, size: int, iterations: int) -> dict[str, Any]:
    kube = Kube(api_client(str(kubeconfig)))
    if kind == "timeslicing":
        node_config: dict[str, Any] = {"sharing": {"mode": "whole"}}
        devices = [f"gpu-{i}" for i in range(size)]
        config = {"apiVersion": API, "kind": "GpuConfig",
                  "sharing": {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": "Long"}}}
    else:
        node_config = {"sharing": {"mode": "dynamic"}}
        devices = [f"gpu-{i}-mig-1g10gb-19-0" for i in range(size)]
        config = {"apiVersion": API, "kind": "MigDeviceConfig", "sharing": {"strategy": "TimeSlicing"}}
    tag = f"{kind}-{size}"
    plugin = _plugin(root, kubeconfig, node_config, "mock:a100-80gb-x8", tag).start()
    try:
        plugin.wait_published(30)
        claim = _claim(kube, tag, devices, config)
        ref = dra_v1_pb2.Claim(namespace="default", name=tag, uid=claim["metadata"]["uid"])
        import grpc

        with grpc.insecure_channel(f"unix://{plugin.dra_socket}") as channel:
            stub = dra_v1_pb2_grpc.DRAPluginStub(channel)
            prep, unprep = [], []
            for _ in range(iterations):
                t0 = time.perf_counter()
                resp = stub.NodePrepareResources(dra_v1_pb2.NodePrepareResourcesRequest(claims=[ref]), timeout=45)
                t1 = time.perf_counter()
                stub.NodeUnprepareResources(dra_v1_pb2.NodeUnprepareResourcesRequest(claims=[ref]), timeout=45)
                t2 = time.perf_counter()
                error = resp.claims[ref.uid].error
                if error:
                    raise RuntimeError(f"{tag}: prepare failed: {error}")
                prep.append(t1 - t0)
                unprep.append(t2 - t1)
    finally:
        plugin.stop()
    ms = 1000.0
    return {"scenario": kind, "devices": size, "iterations": iterations,
            "prepare_p50_ms": round(statistics.median(prep) * ms, 2),
            "prepare_p99_ms": round(_percentile(prep, 99) * ms, 2),
            "unprepare_p50_ms": round(statistics.median(unprep) * ms, 2),
            "unprepare_p99_ms": round(_percentile(unprep, 99) * ms, 2)}


def _publish_times(root: Path, api: ApiServer, kubeconfig: Path) -> list[dict[str, Any]]:
    modes = [("whole", "mock:a100-80gb-x8", {"sharing": {"mode": "whole"}}),
             ("mig", "mock:a100-80gb-mig", {"sharing": {"mode": "mig"}}),
             ("timeslicing", "mock:a100-80gb-x8", {"sharing": {"mode": "timeslicing", "replicas": 8}}),
             ("dynamic", "mock:a100-80gb-x8", {"sharing": {"mode": "dynamic", "replicas": 4}}),
             ("fractional", "mock:a100-80gb-x8", {"sharing": {"mode": "fractional"}})]
    kube = Kube(api_client(str(kubeconfig)))
    out = []
    for mode, nvml, node_config in modes:
        for s in kube.list_slices("gpu.nvidia.com", "node-a"):
            kube.delete_slice(s["metadata"]["name"])
        plugin = _plugin(root, kubeconfig, node_config, nvml, f"publish-{mode}")
        t0 = time.perf_counter()
        plugin.start()
        ok = plugin.wait_published(60)
        elapsed = time.perf_counter() - t0
        slices = kube.list_slices("gpu.nvidia.com", "node-a")
        plugin.stop()
        out.append({"mode": mode, "published": ok, "seconds": round(elapsed, 3), "slices": len(slices),
                    "devices": sum(len(s["spec"].get("devices") or []) for s in slices)})
    return out


def main(iterations: int = 200, sizes: list[int] | None = None, as_json: bool = False) -> int:
    sizes = sizes or [1, 4, 8]
    if iterations < 1 or any(not 1 <= s <= 8 for s in sizes):
        raise SystemExit("bench prepare: --iterations must be >= 1 and --sizes between 1 and 8 (an 8-GPU node)")
    with tempfile.TemporaryDirectory(prefix="gpu-dra-bench-") as tmp, ApiServer() as api:
        root = Path(tmp)
        kubeconfig = api.write_kubeconfig(root / "kubeconfig")
        rows = [_scenario(root, api, kubeconfig, kind, size, iterations)
                for kind in ("timeslicing", "mig") for size in sizes]
        publish = _publish_times(root, api, kubeconfig)
    if as_json:
        print(json.dumps({"prepare": rows, "publish": publish}, indent=2))
        return 0
    print(f"{'scenario':<12} {'devices':>7} {'prep p50':>9} {'prep p99':>9} {'unprep p50':>11} {'unprep p99':>11}  (ms)")
    for r in rows:
        print(f"{r['scenario']:<12} {r['devices']:>7} {r['prepare_p50_ms']:>9} {r['prepare_p99_ms']:>9} "
              f"{r['unprepare_p50_ms']:>11} {r['unprepare_p99_ms']:>11}")
    print(f"\n{'mode':<12} {'slices':>6} {'devices':>7} {'start->published (s)':>21}")
    for p in publish:
        print(f"{p['mode']:<12} {p['slices']:>6} {p['devices']:>7} {p['seconds']:>21}")
    return 0
