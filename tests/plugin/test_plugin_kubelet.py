"""The plugin as kubelet meets it: registration, prepare/unprepare over the real sockets, CDI,
sharing side effects, restarts, per-claim errors (local API server, mock NVML, fake binaries)."""

from __future__ import annotations

import json
import stat
import urllib.request
from pathlib import Path
from typing import Any, Callable

import grpc
import jsonschema
import pytest
import referencing

from driver.plugin import checkpoint as ckpt
from driver.plugin.kube import DRA_PATH
from driver.plugin.proto import grpc_health_v1_pb2, grpc_health_v1_pb2_grpc, health_v1alpha1_pb2, health_v1alpha1_pb2_grpc

from plugin_harness import create_claim, delete_claim, fake_claim, opaque, result
from wait_helpers import wait_for

NVML = "mock:a100-80gb-mixed"  # GPUs 0-3 without MIG, 4-6 with static MIG layouts
CONFIG = {"sharing": {"mode": "whole"},
          "gpus": {"1": {"mode": "timeslicing", "replicas": 4}, "2": {"mode": "fractional"}, "3": {"mode": "dynamic"}}}
API = "resource.nvidia.com/v1beta1"
SCHEMA_DIR = Path(__file__).parents[1] / "data" / "cdi"


def _schema_validator() -> jsonschema.Draft7Validator:
    registry = referencing.Registry().with_resource(
        "defs.json", referencing.Resource.from_contents(json.loads((SCHEMA_DIR / "defs.json").read_text()),
                                                        default_specification=referencing.jsonschema.DRAFT7))
    return jsonschema.Draft7Validator(json.loads((SCHEMA_DIR / "schema.json").read_text()), registry=registry)


VALIDATOR = _schema_validator()


def read_spec(node: Any, uid: str) -> dict[str, Any]:
    spec = json.loads((node.cdi_root / f"k8s.gpu.nvidia.com-claim_{uid}.json").read_text())
    errors = sorted(e.message for e in VALIDATOR.iter_errors(spec))
    assert not errors, errors
    return spec


def uid(c: dict[str, Any]) -> str:
    return c["metadata"]["uid"]


@pytest.fixture
def node(start_node: Callable[..., Any]) -> Any:
    return start_node(CONFIG, nvml=NVML)


def test_registration_info_and_socket_modes(node: Any) -> None:
    info = node.kubelet.info
    assert info.type == "DRAPlugin" and info.name == "gpu.nvidia.com"
    assert info.endpoint == node.plugin.dra_socket and Path(info.endpoint).is_absolute()
    assert list(info.supported_versions) == ["v1.DRAPlugin", "v1beta1.DRAPlugin", "v1alpha1.DRAResourceHealth"]
    assert node.kubelet.version == "v1.DRAPlugin"
    wait_for(lambda: node.plugin.registration.registered, what="registration status")
    for path in (node.plugin.dra_socket, node.plugin.registration_socket):
        mode = Path(path).stat().st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) & 0o007 == 0, oct(mode)
    ch = grpc.insecure_channel(f"unix://{node.plugin.dra_socket}")
    health = grpc_health_v1_pb2_grpc.HealthStub(ch)
    assert health.Check(grpc_health_v1_pb2.HealthCheckRequest(), timeout=5).status == \
        grpc_health_v1_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as err:
        health.Check(grpc_health_v1_pb2.HealthCheckRequest(service="nope"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    ch.close()


def test_old_kubelet_picks_v1beta1(node: Any) -> None:
    node.kubelet.accepted = ("v1beta1.DRAPlugin",)
    node.kubelet.register()
    assert node.kubelet.version == "v1beta1.DRAPlugin"
    claim = create_claim(node.kube, "beta", [result("gpu-0")])
    resp = node.kubelet.prepare([claim])
    dev = resp.claims[uid(claim)].devices[0]
    assert not resp.claims[uid(claim)].error
    assert (dev.pool_name, dev.device_name) == ("node-a", "gpu-0")
    assert not hasattr(dev, "share_id")  # v1beta1 has no share_id field
    assert list(node.kubelet.unprepare([claim]).claims) == [uid(claim)]


@pytest.mark.parametrize("version", ["v1.DRAPlugin", "v1beta1.DRAPlugin"])
def test_whole_gpu_with_timeslicing(node: Any, version: str) -> None:
    cfg = {"apiVersion": API, "kind": "GpuConfig",
           "sharing": {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": "Long"}}}
    claim = create_claim(node.kube, "ts", [result("gpu-0")], [opaque(cfg, ["gpu"])])
    resp = node.kubelet.prepare([claim], version)
    entry = resp.claims[uid(claim)]
    assert entry.error == ""
    assert [(d.device_name, list(d.request_names), list(d.cdi_device_ids)) for d in entry.devices] == [
        ("gpu-0", ["gpu"], [f"k8s.gpu.nvidia.com/claim={uid(claim)}-gpu-0"])]
    gpu0 = node.plugin.devices()["gpu-0"].uuid
    assert node.log("nvidia-smi.log") == [f"compute-policy -i {gpu0} --set-timeslice 3"]
    spec = read_spec(node, uid(claim))
    assert spec["kind"] == "k8s.gpu.nvidia.com/claim"
    assert [d["name"] for d in spec["devices"]] == [f"{uid(claim)}-gpu-0"]
    assert f"NVIDIA_VISIBLE_DEVICES={gpu0}" in spec["containerEdits"]["env"]
    assert spec["cdiVersion"] == ("0.5.0" if not uid(claim)[0].isalpha() else "0.3.0")
    # Idempotent: kubelet retries after a timeout and gets the same answer, no second nvidia-smi call.
    again = node.kubelet.prepare([claim], version).claims[uid(claim)]
    assert list(again.devices) == list(entry.devices)
    assert len(node.log("nvidia-smi.log")) == 1
    unprep = node.kubelet.unprepare([claim], version)
    assert unprep.claims[uid(claim)].error == ""
    assert node.cdi_files() == []
    assert node.log("nvidia-smi.log")[-1] == f"compute-policy -i {gpu0} --set-timeslice 0"


def test_static_mig_with_mps(node: Any) -> None:
    cfg = {"apiVersion": API, "kind": "MigDeviceConfig",
           "sharing": {"strategy": "MPS", "mpsConfig": {"defaultActiveThreadPercentage": 50,
                                                         "defaultPinnedDeviceMemoryLimit": "5Gi"}}}
    claim = create_claim(node.kube, "mig", [result("gpu-4-mig-1g10gb-19-2", "mig")], [opaque(cfg)])
    entry = node.kubelet.prepare([claim]).claims[uid(claim)]
    assert entry.error == "" and entry.devices[0].device_name == "gpu-4-mig-1g10gb-19-2"
    mig_uuid = node.plugin.devices()["gpu-4-mig-1g10gb-19-2"].uuid
    assert mig_uuid.startswith("MIG-")
    mps_dir = node.state_dir / "mps" / uid(claim)
    assert node.log("mps.log") == [
        f"start {mps_dir}/pipe {mig_uuid}",
        f"cmd {mps_dir}/pipe set_default_active_thread_percentage 50",
        f"cmd {mps_dir}/pipe set_default_device_pinned_mem_limit {mig_uuid} 5120M",
    ]
    spec = read_spec(node, uid(claim))
    edits = spec["devices"][0]["containerEdits"]
    assert "CUDA_MPS_PIPE_DIRECTORY=/tmp/nvidia-mps" in edits["env"]
    assert {(m["hostPath"], m["containerPath"]) for m in edits["mounts"]} == {
        (f"{mps_dir}/pipe", "/tmp/nvidia-mps"), (f"{mps_dir}/shm", "/dev/shm")}
    assert f"NVIDIA_VISIBLE_DEVICES={mig_uuid}" in spec["containerEdits"]["env"]
    assert node.kubelet.unprepare([claim]).claims[uid(claim)].error == ""
    assert node.log("mps.log")[-1] == f"cmd {mps_dir}/pipe quit"
    assert not mps_dir.exists() and node.cdi_files() == []


def test_dynamic_mig_created_and_destroyed(node: Any) -> None:
    backend = node.plugin.backend
    claim = create_claim(node.kube, "dyn", [result("gpu-3-mig-3g40gb-9-4", "mig")])
    entry = node.kubelet.prepare([claim]).claims[uid(claim)]
    assert entry.error == ""
    instances = backend.mig_instances(3)
    assert [(m.profile, m.placement_start) for m in instances] == [("3g.40gb", 4)]
    spec = read_spec(node, uid(claim))
    assert f"NVIDIA_VISIBLE_DEVICES={instances[0].uuid}" in spec["containerEdits"]["env"]
    # The whole GPU overlaps the MIG device: another claim must not get it prepared.
    other = create_claim(node.kube, "whole3", [result("gpu-3")])
    err = node.kubelet.prepare([other]).claims[uid(other)].error
    assert "gpu-3 overlaps gpu-3-mig-3g40gb-9-4" in err and "default/dyn" in err
    assert node.kubelet.unprepare([claim]).claims[uid(claim)].error == ""
    assert backend.mig_instances(3) == [] and not backend.gpu(3).mig_enabled
    assert node.kubelet.prepare([other]).claims[uid(other)].error == ""


def test_replicas_share_a_gpu_and_agree_on_interval(node: Any) -> None:
    medium = {"apiVersion": API, "kind": "ReplicaConfig", "timeSlicingConfig": {"interval": "Medium"}}
    long_ = {"apiVersion": API, "kind": "ReplicaConfig", "timeSlicingConfig": {"interval": "Long"}}
    a = create_claim(node.kube, "rep-a", [result("gpu-1-ts-0")], [opaque(medium)])
    b = create_claim(node.kube, "rep-b", [result("gpu-1-ts-1")], [opaque(medium)])
    c = create_claim(node.kube, "rep-c", [result("gpu-1-ts-2")], [opaque(long_)])
    resp = node.kubelet.prepare([a, b, c])
    assert resp.claims[uid(a)].error == "" and resp.claims[uid(b)].error == ""
    assert "time-sliced with interval Medium" in resp.claims[uid(c)].error
    gpu1 = node.plugin.devices()["gpu-1-ts-0"].parent_uuid
    assert read_spec(node, uid(a))["containerEdits"]["env"] == [f"NVIDIA_VISIBLE_DEVICES={gpu1}"]
    node.kubelet.unprepare([a])
    assert node.log("nvidia-smi.log").count(f"compute-policy -i {gpu1} --set-timeslice 0") == 0  # b still runs
    node.kubelet.unprepare([b])
    assert node.log("nvidia-smi.log")[-1] == f"compute-policy -i {gpu1} --set-timeslice 0"
    assert node.kubelet.prepare([c]).claims[uid(c)].error == ""


def test_fractional_claims_share_a_gpu_with_limits(node: Any) -> None:
    a = create_claim(node.kube, "frac-a", [result("gpu-2", shareID="11111111-aaaa-4aaa-8aaa-000000000001",
                                                  consumedCapacity={"memory": "10Gi", "compute": "250m"})])
    b = create_claim(node.kube, "frac-b", [result("gpu-2", shareID="11111111-aaaa-4aaa-8aaa-000000000002",
                                                  consumedCapacity={"memory": "20Gi", "compute": "500m"})])
    resp = node.kubelet.prepare([a, b])
    assert resp.claims[uid(a)].error == "" and resp.claims[uid(b)].error == ""
    assert resp.claims[uid(a)].devices[0].share_id == "11111111-aaaa-4aaa-8aaa-000000000001"
    env_a = read_spec(node, uid(a))["containerEdits"]["env"]
    assert "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=10240M" in env_a and "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=25" in env_a
    env_b = read_spec(node, uid(b))["containerEdits"]["env"]
    assert "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=20480M" in env_b and "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=50" in env_b


def test_fractional_with_mps_enforcement(node: Any) -> None:
    cfg = {"apiVersion": API, "kind": "FractionalConfig", "enforcement": "MPS"}
    a = create_claim(node.kube, "frac-mps", [result("gpu-2", consumedCapacity={"compute": "300m"})], [opaque(cfg)])
    assert node.kubelet.prepare([a]).claims[uid(a)].error == ""
    gpu2 = node.plugin.devices()["gpu-2"].uuid
    assert node.log("mps.log") == [f"start {node.state_dir}/mps/{uid(a)}/pipe {gpu2}"]
    edits = read_spec(node, uid(a))["devices"][0]["containerEdits"]
    assert "CUDA_MPS_PIPE_DIRECTORY=/tmp/nvidia-mps" in edits["env"]


def test_multi_device_claim_config_precedence(node: Any) -> None:
    """Class catch-all GpuConfig, claim configs per request; MIG devices skip the GPU catch-all."""
    class_cfg = {"apiVersion": API, "kind": "GpuConfig",
                 "sharing": {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": "Short"}}}
    claim_gpu = {"apiVersion": API, "kind": "GpuConfig",
                 "sharing": {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": "Long"}}}
    claim_mig = {"apiVersion": API, "kind": "MigDeviceConfig", "sharing": {"strategy": "MPS"}}
    results = [result("gpu-0", "train"), result("gpu-3", "train"), result("gpu-6-mig-1g10gb-19-0", "infer"),
               result("gpu-6-mig-1g10gb-19-1", "infer"), result("gpu-0", "x", driver="other.example.com")]
    configs = [opaque(class_cfg, source="FromClass"), opaque(claim_gpu, ["train"]), opaque(claim_mig, ["infer"]),
               opaque({"anything": True}, driver="other.example.com")]
    claim = create_claim(node.kube, "multi", results, configs)
    entry = node.kubelet.prepare([claim]).claims[uid(claim)]
    assert entry.error == ""
    assert [d.device_name for d in entry.devices] == ["gpu-0", "gpu-3", "gpu-6-mig-1g10gb-19-0",
                                                      "gpu-6-mig-1g10gb-19-1"]
    devs = node.plugin.devices()
    assert node.log("nvidia-smi.log") == [f"compute-policy -i {devs[n].uuid} --set-timeslice 3"
                                          for n in ("gpu-0", "gpu-3")]
    migs = [devs[n].uuid for n in ("gpu-6-mig-1g10gb-19-0", "gpu-6-mig-1g10gb-19-1")]
    assert node.log("mps.log") == [f"start {node.state_dir}/mps/{uid(claim)}/pipe {','.join(migs)}"]
    spec = read_spec(node, uid(claim))
    assert len(spec["devices"]) == 4


def test_batch_errors_are_per_claim(node: Any) -> None:
    good = create_claim(node.kube, "good", [result("gpu-0")])
    unallocated = create_claim(node.kube, "pending", [result("gpu-5")], allocated=False)
    missing = fake_claim("ghost")
    recreated = fake_claim("good")  # same name, another UID
    foreign = create_claim(node.kube, "elsewhere", [result("gpu-0", pool="node-b")])
    resp = node.kubelet.prepare([good, unallocated, missing, recreated, foreign])
    assert resp.claims[uid(good)].error == "" and len(resp.claims[uid(good)].devices) == 1
    assert resp.claims[uid(unallocated)].error == "ResourceClaim default/pending: not allocated (status.allocation is empty)"
    assert resp.claims[uid(missing)].error == "ResourceClaim default/ghost: not found in the API server"
    assert "UID mismatch" in resp.claims[uid(recreated)].error
    assert "no device of driver 'gpu.nvidia.com' allocated in pool 'node-a'" in resp.claims[uid(foreign)].error
    for failed in (unallocated, missing, recreated, foreign):
        assert list(resp.claims[uid(failed)].devices) == []
    assert node.cdi_files() == [f"k8s.gpu.nvidia.com-claim_{uid(good)}.json"]


def test_device_of_another_claim_is_refused(node: Any) -> None:
    first = create_claim(node.kube, "first", [result("gpu-0")])
    second = create_claim(node.kube, "second", [result("gpu-0")])
    assert node.kubelet.prepare([first]).claims[uid(first)].error == ""
    err = node.kubelet.prepare([second]).claims[uid(second)].error
    assert err == (f"ResourceClaim default/second: device gpu-0 is already prepared for claim default/first "
                   f"({uid(first)})")
    admin = create_claim(node.kube, "admin", [result("gpu-0", adminAccess=True)])
    assert node.kubelet.prepare([admin]).claims[uid(admin)].error == ""  # admin access shares legitimately


def test_failed_sharing_rolls_back(node: Any) -> None:
    (node.root / "bin-logs" / "nvidia-smi.fail").touch()
    cfg = {"apiVersion": API, "kind": "GpuConfig",
           "sharing": {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": "Short"}}}
    claim = create_claim(node.kube, "fails", [result("gpu-3-mig-1g10gb-19-0", "mig"), result("gpu-0")],
                         [opaque(cfg, ["gpu"])])
    err = node.kubelet.prepare([claim]).claims[uid(claim)].error
    assert "nvidia-smi" in err and "Insufficient Permissions" in err
    assert node.cdi_files() == [] and node.plugin.backend.mig_instances(3) == []
    assert ckpt.load(node.state_dir).claims == {}
    (node.root / "bin-logs" / "nvidia-smi.fail").unlink()
    assert node.kubelet.prepare([claim]).claims[uid(claim)].error == ""


def test_unprepare_after_restart_and_claim_deletion(node: Any, start_node: Callable[..., Any]) -> None:
    cfg = {"apiVersion": API, "kind": "GpuConfig",
           "sharing": {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": "Medium"}}}
    claim = create_claim(node.kube, "gone", [result("gpu-0")], [opaque(cfg)])
    assert node.kubelet.prepare([claim]).claims[uid(claim)].error == ""
    node.plugin.stop()
    delete_claim(node.kube, claim)
    node2 = start_node(CONFIG, nvml=NVML)
    assert node2.plugin.state.prepared_device_count() == 1
    resp = node2.kubelet.unprepare([claim])
    assert resp.claims[uid(claim)].error == ""
    assert node2.cdi_files() == []
    assert node2.log("nvidia-smi.log")[-1].endswith("--set-timeslice 0")
    assert node2.kubelet.unprepare([claim]).claims[uid(claim)].error == ""  # idempotent


def test_corrupted_checkpoint_is_reported_and_rebuilt(node: Any, start_node: Callable[..., Any]) -> None:
    kept = create_claim(node.kube, "kept", [result("gpu-0")])
    done = create_claim(node.kube, "done", [result("gpu-3")], reserved=False)
    assert node.kubelet.prepare([kept, done]).claims[uid(kept)].error == ""
    node.plugin.stop()
    path = node.state_dir / ckpt.FILE_NAME
    path.write_text(path.read_text().replace('"PrepareCompleted"', '"PrepareCompleteX"', 1))
    node2 = start_node(CONFIG, nvml=NVML)
    events = node2.kube.request("GET", "/api/v1/namespaces/default/events")["items"]
    assert [e["reason"] for e in events] == ["CheckpointCorrupt"]
    assert "checksum mismatch" in events[0]["message"]
    rebuilt = ckpt.load(node2.state_dir)
    assert sorted(r.name for r in rebuilt.claims.values()) == ["kept"]  # "done" is reserved for no pod
    assert node2.cdi_files() == [f"k8s.gpu.nvidia.com-claim_{uid(kept)}.json"]
    assert node2.kubelet.unprepare([kept, done]).claims[uid(kept)].error == ""
    assert node2.cdi_files() == []


def test_health_events_taint_slices_and_stream(node: Any) -> None:
    ch = grpc.insecure_channel(f"unix://{node.plugin.dra_socket}")
    stream = health_v1alpha1_pb2_grpc.DRAResourceHealthStub(ch).NodeWatchResources(
        health_v1alpha1_pb2.NodeWatchResourcesRequest(), timeout=20)
    first = next(stream)
    assert {d.device.device_name for d in first.devices} == set(node.plugin.devices())
    assert all(d.health == health_v1alpha1_pb2.HEALTHY and d.device.pool_name == "node-a" for d in first.devices)
    node.plugin.backend.inject_xid(0, 79)
    update = next(stream)
    bad = {d.device.device_name: d for d in update.devices if d.health == health_v1alpha1_pb2.UNHEALTHY}
    assert list(bad) == ["gpu-0"] and "XID 79" in bad["gpu-0"].message

    def taints() -> dict[str, list[dict[str, Any]]]:
        slices = node.kube.list_slices("gpu.nvidia.com", "node-a")
        return {d["name"]: d["taints"] for s in slices for d in s["spec"].get("devices", []) if d.get("taints")}

    got = wait_for(taints, what="xid taint")
    assert list(got) == ["gpu-0"]
    assert [(t["key"], t["value"], t["effect"]) for t in got["gpu-0"]] == [("gpu.nvidia.com/xid", "79", "NoSchedule")]
    node.plugin.backend.inject_xid(2, 13)  # application error: informational taint, device stays healthy
    got = wait_for(lambda: "gpu-2" in taints() and taints(), what="application xid taint")
    assert [(t["key"], t["effect"]) for t in got["gpu-2"]] == [("gpu.nvidia.com/xid", "None")]
    assert node.plugin.board.unhealthy() == ["gpu-0"]
    stream.cancel()
    ch.close()


def test_lost_gpu_stays_published_with_a_taint(node: Any) -> None:
    def pool() -> tuple[set[int], dict[str, list]]:
        slices = node.kube.list_slices("gpu.nvidia.com", "node-a")
        return ({s["spec"]["pool"]["generation"] for s in slices},
                {d["name"]: d.get("taints", []) for s in slices for d in s["spec"].get("devices", [])})

    gens, devices = pool()
    assert gens == {1} and devices["gpu-0"] == []
    claim = create_claim(node.kube, "on-lost", [result("gpu-0")])
    node.plugin.backend.lose_gpu(0)
    gens2, devices2 = wait_for(lambda: (p := pool())[1]["gpu-0"] and p, what="gpu-lost taint")
    assert gens2 == {1} and set(devices2) == set(devices)  # same device set: same generation
    assert [(t["key"], t["value"], t["effect"]) for t in devices2["gpu-0"]] == [("gpu.nvidia.com/gpu-lost", "true", "NoSchedule")]
    assert all(not taints for name, taints in devices2.items() if name != "gpu-0")
    assert node.plugin.board.unhealthy() == ["gpu-0"]
    err = node.kubelet.prepare([claim]).claims[uid(claim)].error
    assert err.endswith("'gpu-0' is on GPU " + node.plugin.devices()["gpu-0"].uuid +
                        ", which has fallen off the bus (tainted gpu-lost); it cannot be prepared")


def test_publisher_survives_api_errors(node: Any, api: Any) -> None:
    rule = api.faults.set(verb="list", resource="resourceslices", error_rate=1.0)
    node.plugin.publisher.published.clear()
    node.plugin.publisher.trigger()
    wait_for(lambda: node.plugin.metrics.publish_errors._value.get() >= 2, what="failed publish attempts")
    api.faults.remove(rule)
    assert node.plugin.publisher.published.wait(15)


def test_http_metrics_and_healthz(start_node: Callable[..., Any]) -> None:
    node = start_node(CONFIG, nvml=NVML, health_port=0)
    claim = create_claim(node.kube, "m", [result("gpu-0")])
    node.kubelet.prepare([claim, fake_claim("missing")])
    base = f"http://127.0.0.1:{node.plugin.health_port}"
    assert urllib.request.urlopen(f"{base}/healthz", timeout=5).status == 200
    text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
    assert "gpu_dra_prepare_seconds_count 2.0" in text
    assert 'gpu_dra_claim_errors_total{operation="prepare"} 1.0' in text
    assert "gpu_dra_prepared_devices 1.0" in text


def test_stale_socket_replaced_live_socket_refused(node: Any, start_node: Callable[..., Any], tmp_path: Path) -> None:
    from driver.plugin.server import SocketInUse

    with pytest.raises(SocketInUse, match="another process is serving"):
        start_node(CONFIG, nvml=NVML)  # same socket paths as the running plugin
    node.plugin.stop()
    import socket as socketlib

    stale = socketlib.socket(socketlib.AF_UNIX)
    stale.bind(node.plugin.dra_socket)  # bound, never listening: what a crashed process leaves
    stale.close()
    node2 = start_node(CONFIG, nvml=NVML)
    claim = create_claim(node2.kube, "after-stale", [result("gpu-0")])
    assert node2.kubelet.prepare([claim]).claims[uid(claim)].error == ""


def test_claim_status_written_by_api_is_read_raw(node: Any) -> None:
    """The plugin reads claims as wire dicts: fields unknown to the client models survive."""
    claim = create_claim(node.kube, "raw", [result("gpu-0")])
    got = node.kube.request("GET", f"{DRA_PATH}/namespaces/default/resourceclaims/raw")
    assert got["status"]["allocation"]["devices"]["results"][0]["device"] == "gpu-0"
    assert node.kubelet.prepare([claim]).claims[uid(claim)].error == ""


def test_mock_node_simulates_nvidia_tools(start_node: Callable[..., Any]) -> None:
    """Without tool paths a mock-NVML node (local cluster, kind) logs the commands and runs none."""
    node = start_node(CONFIG, nvml=NVML, nvidia_smi=None, mps_control=None)
    cfg = {"apiVersion": API, "kind": "GpuConfig", "sharing": {"strategy": "MPS"}}
    claim = create_claim(node.kube, "sim", [result("gpu-0")], [opaque(cfg)])
    assert node.kubelet.prepare([claim]).claims[uid(claim)].error == ""
    assert node.log("nvidia-smi.log") == [] and node.log("mps.log") == []
    mounts = read_spec(node, uid(claim))["devices"][0]["containerEdits"]["mounts"]
    assert all(Path(m["hostPath"]).is_dir() for m in mounts)  # the runtime can still bind them
    assert node.kubelet.unprepare([claim]).claims[uid(claim)].error == ""
    assert not (node.state_dir / "mps" / uid(claim)).exists()


def test_socket_path_too_long_is_a_clear_error(tmp_path: Path) -> None:
    from driver.plugin.server import prepare_socket_path

    with pytest.raises(ValueError, match=r"at most 107 bytes, this one has 1\d\d; choose a shorter"):
        prepare_socket_path("/tmp/" + "d" * 100 + "/dra.sock")


def test_failed_unprepare_is_reported_and_retried(node: Any) -> None:
    backend = node.plugin.backend
    claim = create_claim(node.kube, "stuck", [result("gpu-3-mig-1g10gb-19-0", "mig")])
    assert node.kubelet.prepare([claim]).claims[uid(claim)].error == ""
    backend.lose_gpu(3)
    err = node.kubelet.unprepare([claim]).claims[uid(claim)].error
    assert err.startswith("unpreparing ResourceClaim default/stuck: ") and "GPU has fallen off the bus" in err
    assert ckpt.load(node.state_dir).claims[uid(claim)].state == ckpt.PREPARE_STARTED  # kept for the retry
    backend.restore_gpu(3)
    assert node.kubelet.unprepare([claim]).claims[uid(claim)].error == ""
    assert backend.mig_instances(3) == [] and ckpt.load(node.state_dir).claims == {}


def test_two_gpus_with_mps_per_device_limits(node: Any) -> None:
    devs = node.plugin.devices()
    gpu0, gpu3 = devs["gpu-0"].uuid, devs["gpu-3"].uuid
    cfg = {"apiVersion": API, "kind": "GpuConfig", "sharing": {"strategy": "MPS", "mpsConfig": {
        "defaultPinnedDeviceMemoryLimit": "8Gi", "defaultPerDevicePinnedMemoryLimit": {"1": "2Gi"}}}}
    claim = create_claim(node.kube, "mps2", [result("gpu-0"), result("gpu-3")], [opaque(cfg, ["gpu"])])
    assert node.kubelet.prepare([claim]).claims[uid(claim)].error == ""
    pipe = node.state_dir / "mps" / uid(claim) / "pipe"
    assert node.log("mps.log") == [
        f"start {pipe} {gpu0},{gpu3}",
        f"cmd {pipe} set_default_device_pinned_mem_limit {gpu0} 8192M",  # the default
        f"cmd {pipe} set_default_device_pinned_mem_limit {gpu3} 2048M",  # index 1 overrides it
    ]
    spec = read_spec(node, uid(claim))
    assert all("CUDA_MPS_PIPE_DIRECTORY=/tmp/nvidia-mps" in d["containerEdits"]["env"] for d in spec["devices"])
