"""The kind e2e setup: the cluster config enables what the driver needs, every node group of the
kind values selects exactly one kind worker, and e2e/run.sh skips cleanly without Docker."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

import yaml

from deploy_support import REPO, of_kind, render

KIND = yaml.safe_load((REPO / "e2e" / "kind-config.yaml").read_text())
VALUES = yaml.safe_load((REPO / "e2e" / "values-kind.yaml").read_text())


def test_kind_config_enables_dra_features_and_cdi() -> None:
    assert KIND["apiVersion"] == "kind.x-k8s.io/v1alpha4" and KIND["kind"] == "Cluster"
    gates = KIND["featureGates"]
    for gate in ("DRAPartitionableDevices", "DRAConsumableCapacity", "DRADeviceTaints", "ResourceHealthStatus"):
        assert gates[gate] is True, gate
    (patch,) = KIND["containerdConfigPatches"]
    cri = tomllib.loads(patch)["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["enable_cdi"] is True and "/var/run/cdi" in cri["cdi_spec_dirs"]
    for node in KIND["nodes"]:
        if node["role"] == "worker":
            assert {m["containerPath"] for m in node["extraMounts"]} == {"/var/run/cdi", "/var/lib/gpu-dra"}


def test_every_node_group_selects_exactly_one_kind_worker() -> None:
    workers = [n.get("labels", {}) for n in KIND["nodes"] if n["role"] == "worker"]
    for group in VALUES["plugin"]["nodeGroups"]:
        selector = group["nodeSelector"]
        matching = [w for w in workers if all(w.get(k) == v for k, v in selector.items())]
        assert len(matching) == 1, (group["name"], matching)
    daemonsets = of_kind(render(VALUES), "DaemonSet")
    assert len(daemonsets) == len(workers)
    assert all(ds["spec"]["template"]["spec"]["containers"][0]["image"] == "gpu-dra:e2e" for ds in daemonsets)


def test_run_script_skips_cleanly_without_docker(tmp_path: Path) -> None:
    # A PATH with the basic tools but no docker, kind or helm.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "env"):
        found = subprocess.run(["bash", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        (bin_dir / tool).symlink_to(found)
    done = subprocess.run([str(REPO / "e2e" / "run.sh")], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": str(bin_dir)})
    assert done.returncode == 0
    assert done.stderr.strip() == "skipping: docker not available (no docker command)"
