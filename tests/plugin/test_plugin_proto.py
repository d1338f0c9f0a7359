"""The generated stubs match proto/*.proto, and the protos match the kubelet's wire names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from driver.plugin.proto import (
    dra_v1_pb2,
    dra_v1beta1_pb2,
    grpc_health_v1_pb2,
    health_v1alpha1_pb2,
    pluginregistration_pb2,
)

ROOT = Path(__file__).parents[2]


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    subprocess.run([sys.executable, str(ROOT / "proto" / "generate.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True)
    fresh = sorted(p.name for p in (tmp_path / "driver/plugin/proto").glob("*.py"))
    committed = sorted(p.name for p in (ROOT / "driver/plugin/proto").glob("*.py"))
    assert fresh == committed
    drift = [name for name in fresh if (tmp_path / "driver/plugin/proto" / name).read_text()
             != (ROOT / "driver/plugin/proto" / name).read_text()]
    assert drift == [], f"stale stubs, run `make proto`: {drift}"


def _fields(msg) -> dict[str, int]:
    return {f.name: f.number for f in msg.DESCRIPTOR.fields}


@pytest.mark.parametrize("pb2, package", [(dra_v1_pb2, "k8s.io.kubelet.pkg.apis.dra.v1"),
                                          (dra_v1beta1_pb2, "k8s.io.kubelet.pkg.apis.dra.v1beta1")])
def test_dra_wire_format(pb2, package: str) -> None:
    assert pb2.DESCRIPTOR.package == package
    svc = pb2.DESCRIPTOR.services_by_name["DRAPlugin"]
    assert svc.full_name == f"{package}.DRAPlugin"
    assert {m.name: (m.input_type.name, m.output_type.name) for m in svc.methods} == {
        "NodePrepareResources": ("NodePrepareResourcesRequest", "NodePrepareResourcesResponse"),
        "NodeUnprepareResources": ("NodeUnprepareResourcesRequest", "NodeUnprepareResourcesResponse"),
    }
    assert _fields(pb2.Claim) == {"namespace": 1, "uid": 2, "name": 3}
    assert _fields(pb2.NodePrepareResourcesRequest) == {"claims": 1}
    assert _fields(pb2.NodePrepareResourceResponse) == {"devices": 1, "error": 2}
    device = {"request_names": 1, "pool_name": 2, "device_name": 3, "cdi_device_ids": 4}
    if package.endswith("v1"):
        device["share_id"] = 5
        assert pb2.Device.DESCRIPTOR.fields_by_name["share_id"].has_presence  # `optional`
    assert _fields(pb2.Device) == device
    assert _fields(pb2.NodeUnprepareResourcesRequest) == {"claims": 1}
    assert _fields(pb2.NodeUnprepareResourceResponse) == {"error": 1}
    for resp in (pb2.NodePrepareResourcesResponse, pb2.NodeUnprepareResourcesResponse):
        field = resp.DESCRIPTOR.fields_by_name["claims"]
        assert field.number == 1 and field.message_type.GetOptions().map_entry


def test_registration_wire_format() -> None:
    pb2 = pluginregistration_pb2
    assert pb2.DESCRIPTOR.package == "pluginregistration"
    assert pb2.DESCRIPTOR.services_by_name["Registration"].full_name == "pluginregistration.Registration"
    assert _fields(pb2.PluginInfo) == {"type": 1, "name": 2, "endpoint": 3, "supported_versions": 4}
    assert _fields(pb2.RegistrationStatus) == {"plugin_registered": 1, "error": 2}
    assert _fields(pb2.InfoRequest) == {} and _fields(pb2.RegistrationStatusResponse) == {}


def test_health_wire_format() -> None:
    pb2 = health_v1alpha1_pb2
    assert pb2.DESCRIPTOR.package == "v1alpha1"
    method = pb2.DESCRIPTOR.services_by_name["DRAResourceHealth"].methods_by_name["NodeWatchResources"]
    assert method.server_streaming and not method.client_streaming
    assert {v.name: v.number for v in pb2.HealthStatus.DESCRIPTOR.values} == {"UNKNOWN": 0, "HEALTHY": 1, "UNHEALTHY": 2}
    assert _fields(pb2.DeviceIdentifier) == {"pool_name": 1, "device_name": 2}
    assert _fields(pb2.DeviceHealth) == {"device": 1, "health": 2, "last_updated_time": 3,
                                         "health_check_timeout_seconds": 4, "message": 5}
    assert _fields(pb2.NodeWatchResourcesResponse) == {"devices": 1}
    assert grpc_health_v1_pb2.DESCRIPTOR.package == "grpc.health.v1"
