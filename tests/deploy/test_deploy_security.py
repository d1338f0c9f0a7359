"""Pod security of the two workloads: the controller runs as a locked-down non-root process; the
plugin runs as root (the kubelet's host directories belong to root) and privileged only when it
drives real GPUs."""

from __future__ import annotations

from typing import Any

import pytest

from deploy_support import of_kind, one, render

KUBELET = "/var/lib/kubelet"


def _pod(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def test_controller_is_non_root_read_only_without_capabilities() -> None:
    deployment = one(render(), "Deployment", "gpu-dra-controller")
    pod = _pod(deployment)
    assert deployment["spec"]["replicas"] == 2
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert not any("hostPath" in v for v in pod["volumes"])
    assert not pod.get("hostNetwork") and not pod.get("hostPID")
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert "--leader-elect" in container["args"]


@pytest.mark.parametrize("values,privileged", [
    ({}, True),                                          # real NVML: device nodes, compute policy, MIG, MPS
    ({"nvml": "mock:a100-80gb-x8"}, False),
    ({"plugin": {"privileged": False}}, False),          # e.g. a runtime class injects the devices
    ({"nvml": "mock:t4-x2", "plugin": {"privileged": True}}, True),
])
def test_plugin_is_privileged_only_when_needed(values: dict[str, Any], privileged: bool) -> None:
    (ds,) = of_kind(render(values), "DaemonSet")
    pod = _pod(ds)
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = pod["containers"][0]["securityContext"]
    assert sc["privileged"] is privileged
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsUser"] == 0
    if not privileged:
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}


def test_plugin_mounts_exactly_the_host_paths_it_needs_at_the_same_paths() -> None:
    for values, driver_root in (({}, True), ({"nvml": "mock:t4-x2"}, False)):
        (ds,) = of_kind(render(values), "DaemonSet")
        pod = _pod(ds)
        host = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
        expected = {
            "plugin-dir": f"{KUBELET}/plugins/gpu.nvidia.com",
            "registry-dir": f"{KUBELET}/plugins_registry",
            "cdi-root": "/var/run/cdi",
            "state-dir": "/var/lib/gpu-dra",
        }
        if driver_root:
            expected["driver-root"] = "/"
        assert host == expected
        mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
        for name, path in expected.items():
            if name == "driver-root":
                assert mounts[name]["mountPath"] == "/driver-root" and mounts[name]["readOnly"] is True
            else:
                assert mounts[name]["mountPath"] == path, name


def test_plugin_paths_follow_kubelet_dir_and_driver_name() -> None:
    (ds,) = of_kind(render({"driverName": "gpu.example.com", "kubeletDir": "/var/lib/k0s/kubelet/"}), "DaemonSet")
    args = _pod(ds)["containers"][0]["args"]
    assert "--plugin-dir=/var/lib/k0s/kubelet/plugins/gpu.example.com" in args
    assert "--registry-dir=/var/lib/k0s/kubelet/plugins_registry" in args


def test_plugin_identity_comes_from_the_downward_api_and_health_is_probed() -> None:
    (ds,) = of_kind(render(), "DaemonSet")
    container = _pod(ds)["containers"][0]
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in container["env"]}
    assert env["NODE_NAME"] == "spec.nodeName"
    assert env["POD_UID"] == "metadata.uid"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8081, "protocol": "TCP"}]
    assert "--health-port=8081" in container["args"]
    assert _pod(ds)["priorityClassName"] == "system-node-critical"
