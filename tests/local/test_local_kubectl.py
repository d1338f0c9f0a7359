"""The real kubectl binary against `gpu-dra local up` started as a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from wait_helpers import wait_for

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

MANIFESTS = """
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata:
  name: gpu.nvidia.com
spec:
  selectors:
  - cel:
      expression: "device.driver == 'gpu.nvidia.com'"
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata:
  name: one-gpu
spec:
  spec:
    devices:
      requests:
      - name: gpu
        exactly:
          deviceClassName: gpu.nvidia.com
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata:
  name: shared-gpu
spec:
  devices:
    requests:
    - name: gpu
      exactly:
        deviceClassName: gpu.nvidia.com
---
apiVersion: v1
kind: Pod
metadata:
  name: trainer
spec:
  containers:
  - name: main
    image: cuda:12.4
  resourceClaims:
  - name: gpu
    resourceClaimTemplateName: one-gpu
"""


class Local:
    def __init__(self, kubeconfig: Path, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.kubeconfig, self.proc, self.log = kubeconfig, proc, log

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), "--request-timeout=20s", *args],
                                input=stdin, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    tmp = tmp_path_factory.mktemp("local-up")
    kubeconfig = tmp / "kubeconfig"
    log = (tmp / "local-up.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "driver", "local", "up", "--no-plugins", "--no-device-classes", "--kubeconfig", str(kubeconfig),
                             "--workdir", str(tmp / "work")], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_for(lambda: kubeconfig.exists() or proc.poll() is not None, timeout=30, what="the kubeconfig")
        assert proc.poll() is None, (tmp / "local-up.log").read_text()
        yield Local(kubeconfig, proc, tmp / "local-up.log")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        log.close()


def test_local_up_runs_the_gpu_dra_scheduler(local: Local) -> None:
    """`local up` is a cluster with its scheduler: a pod naming gpu-dra-scheduler gets bound."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "cpu-only", "namespace": "default"},
           "spec": {"schedulerName": "gpu-dra-scheduler", "nodeSelector": {"kubernetes.io/hostname": "gpu-l4"},
                    "containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": 1}}}]}}
    local.kubectl("apply", "--validate=false", "-f", "-", stdin=json.dumps(pod))
    try:
        node = wait_for(lambda: local.kubectl("get", "pod", "cpu-only", "-o", "jsonpath={.spec.nodeName}").stdout,
                        timeout=30, what="cpu-only bound by the in-process scheduler")
        assert node == "gpu-l4"
    finally:
        local.kubectl("delete", "pod", "cpu-only", "--wait=false")


def test_get_nodes_of_the_default_cluster(local: Local) -> None:
    out = local.kubectl("get", "nodes", "-o", "json").stdout
    names = sorted(n["metadata"]["name"] for n in json.loads(out)["items"])
    assert names == ["gpu-a100-frac", "gpu-a100-mig", "gpu-a100-whole", "gpu-h100-ts", "gpu-l4"]
    assert "gpu-l4" in local.kubectl("get", "nodes").stdout


def test_apply_get_describe_delete(local: Local) -> None:
    created = local.kubectl("apply", "-f", "-", stdin=MANIFESTS).stdout  # default validation: server-side
    for line in ("deviceclass.resource.k8s.io/gpu.nvidia.com created",
                 "resourceclaimtemplate.resource.k8s.io/one-gpu created",
                 "resourceclaim.resource.k8s.io/shared-gpu created", "pod/trainer created"):
        assert line in created
    again = local.kubectl("apply", "--validate=false", "-f", "-", stdin=MANIFESTS).stdout
    assert "deviceclass.resource.k8s.io/gpu.nvidia.com unchanged" in again

    changed = MANIFESTS.replace("cuda:12.4", "cuda:12.6").replace(
        "device.driver == 'gpu.nvidia.com'", "device.driver == 'gpu.nvidia.com' && true")
    out = local.kubectl("apply", "--validate=false", "-f", "-", stdin=changed).stdout
    assert "pod/trainer configured" in out and "deviceclass.resource.k8s.io/gpu.nvidia.com configured" in out
    image = local.kubectl("get", "pod", "trainer", "-o", "jsonpath={.spec.containers[0].image}").stdout
    assert image == "cuda:12.6"
    expr = local.kubectl("get", "deviceclass", "gpu.nvidia.com", "-o", "jsonpath={.spec.selectors[0].cel.expression}")
    assert expr.stdout.endswith("&& true")

    # the claim controller made the pod's claim from the template
    claims = wait_for(lambda: [c for c in json.loads(local.kubectl("get", "resourceclaims", "-o", "json").stdout)["items"]
                               if c["metadata"]["name"].startswith("trainer-gpu-")], what="generated claim")
    listing = local.kubectl("get", "resourceclaims,resourceclaimtemplates,deviceclasses,pods").stdout
    assert "shared-gpu" in listing and claims[0]["metadata"]["name"] in listing and "one-gpu" in listing
    pods = local.kubectl("get", "pods", "-o", "wide").stdout.splitlines()
    assert pods[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
                                "NOMINATED", "NODE", "READINESS", "GATES"]
    assert pods[1].split()[:4] == ["trainer", "0/1", "Pending", "0"]
    assert pods[1].split()[-2:] == ["<none>", "<none>"]  # not nominated, no readiness gates
    claim_rows = [line.split() for line in local.kubectl("get", "resourceclaims").stdout.splitlines()]
    assert claim_rows[0] == ["NAME", "STATE", "AGE"] and ["shared-gpu", "pending"] in [r[:2] for r in claim_rows]

    described = local.kubectl("describe", "resourceclaim", "shared-gpu").stdout
    assert "Name:" in described and "shared-gpu" in described and "gpu.nvidia.com" in described
    assert "cuda:12.6" in local.kubectl("describe", "pod", "trainer").stdout

    local.kubectl("delete", "-f", "-", stdin=changed)
    left = json.loads(local.kubectl("get", "pods,resourceclaimtemplates,deviceclasses", "-o", "json").stdout)["items"]
    assert left == []
    wait_for(lambda: not json.loads(local.kubectl("get", "resourceclaims", "-o", "json").stdout)["items"],
             what="the generated claim to be collected with its pod")


def test_invalid_object_is_rejected_with_the_field(local: Local) -> None:
    bad = MANIFESTS.split("---")[2].replace("name: gpu\n", "name: Not_A_Label\n")
    result = local.kubectl("apply", "--validate=false", "-f", "-", stdin=bad, check=False)
    assert result.returncode != 0
    assert "spec.devices.requests[0].name" in result.stderr and "is invalid" in result.stderr


def test_get_missing_object_says_not_found(local: Local) -> None:
    result = local.kubectl("get", "resourceclaim", "nope", check=False)
    assert result.returncode != 0 and 'resourceclaims.resource.k8s.io "nope" not found' in result.stderr


def test_unknown_top_level_field_fails_kubectl_validation(local: Local) -> None:
    typo = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\ndatta:\n  a: b\n"
    result = local.kubectl("apply", "-f", "-", stdin=typo, check=False)
    assert result.returncode != 0 and 'unknown field "datta"' in result.stderr
    ignored = local.kubectl("apply", "--validate=false", "-f", "-", stdin=typo)
    assert "configmap/typo created" in ignored.stdout


def test_sigterm_stops_cleanly(local: Local) -> None:
    """Last in this module: it stops the shared `local up` process."""
    local.proc.send_signal(signal.SIGTERM)
    try:
        code = local.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError("local up did not stop on SIGTERM:\n" + local.log.read_text()[-3000:]) from None
    assert code == 0
    assert not local.kubeconfig.exists()
