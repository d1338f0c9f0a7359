"""`kubectl create priorityclass` and `kubectl create poddisruptionbudget` (typed client: protobuf
bodies) against an in-process local cluster, checked through the official Python client's raw JSON."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from kubernetes import client

from driver.local import errors, protobody
from driver.local.cluster import LocalCluster
from driver.plugin.proto import kube_objects_pb2 as pb
from local_helpers import KubectlOn
from wait_helpers import wait_for

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")


class Kubectl(KubectlOn):
    def __init__(self, cluster: LocalCluster) -> None:
        super().__init__(cluster)
        self.scheduling, self.policy = client.SchedulingV1Api(self.api), client.PolicyV1Api(self.api)

    def priority_class(self, name: str) -> dict[str, Any]:
        return self.raw(self.scheduling.read_priority_class, name)

    def pdb(self, name: str) -> dict[str, Any]:
        return self.raw(self.policy.read_namespaced_pod_disruption_budget, name, "default")

    def pdb_names(self) -> list[str]:
        return [b.metadata.name for b in self.policy.list_namespaced_pod_disruption_budget("default").items]

    def class_names(self) -> list[str]:
        return [c.metadata.name for c in self.scheduling.list_priority_class().items]


@pytest.fixture(scope="module")
def kubectl(one_node: LocalCluster) -> Kubectl:
    return Kubectl(one_node)


def test_create_priorityclass_with_every_flag(kubectl: Kubectl) -> None:
    out = kubectl("create", "priorityclass", "high", "--value=1000", "--description=batch jobs first",
                  "--preemption-policy=Never").stdout
    assert out.strip() == "priorityclass.scheduling.k8s.io/high created"
    pc = kubectl.priority_class("high")
    assert pc["kind"] == "PriorityClass" and pc["apiVersion"] == "scheduling.k8s.io/v1"
    assert (pc["value"], pc["description"], pc["preemptionPolicy"]) == (1000, "batch jobs first", "Never")
    assert not pc.get("globalDefault") and pc["metadata"]["uid"]


def test_create_priorityclass_defaults_and_zero_value(kubectl: Kubectl) -> None:
    # value 0 is on the wire as a zero; it must be stored as 0, and the policy defaults as kubectl sends it
    kubectl("create", "priorityclass", "zero", "--value=0")
    pc = kubectl.priority_class("zero")
    assert pc["value"] == 0 and pc["preemptionPolicy"] == "PreemptLowerPriority"
    kubectl("create", "priorityclass", "low", "--value=-5")
    assert kubectl.priority_class("low")["value"] == -5
    rows = [line.split() for line in kubectl("get", "priorityclass", "low", "zero").stdout.splitlines()]
    assert rows[0][:3] == ["NAME", "VALUE", "GLOBAL-DEFAULT"]
    assert [r[:3] for r in rows[1:]] == [["low", "-5", "false"], ["zero", "0", "false"]]


def test_only_one_global_default_priorityclass(kubectl: Kubectl) -> None:
    kubectl("create", "priorityclass", "default-one", "--value=10", "--global-default")
    assert kubectl.priority_class("default-one")["globalDefault"] is True
    second = kubectl("create", "priorityclass", "default-two", "--value=20", "--global-default", check=False)
    assert second.returncode != 0 and "already marked as default" in second.stderr
    assert "default-two" not in kubectl.class_names()
    kubectl("delete", "priorityclass", "default-one")


def test_invalid_priorityclass_is_refused_with_the_field(kubectl: Kubectl) -> None:
    too_high = kubectl("create", "priorityclass", "huge", "--value=1000000001", check=False)
    assert too_high.returncode != 0 and "value" in too_high.stderr
    reserved = kubectl("create", "priorityclass", "system-mine", "--value=1", check=False)
    assert reserved.returncode != 0 and "system-mine" in reserved.stderr
    assert not {"huge", "system-mine"} & set(kubectl.class_names())


def test_create_pdb_with_min_available(kubectl: Kubectl) -> None:
    out = kubectl("create", "poddisruptionbudget", "web-pdb", "--selector=app=x", "--min-available=1").stdout
    assert out.strip() == "poddisruptionbudget.policy/web-pdb created"
    pdb = kubectl.pdb("web-pdb")
    assert pdb["kind"] == "PodDisruptionBudget" and pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["minAvailable"] == 1 and pdb["spec"]["selector"] == {"matchLabels": {"app": "x"}}
    assert "maxUnavailable" not in pdb["spec"]
    # the disruption controller reports on it: no pods match, so nothing may be disrupted
    status = wait_for(lambda: kubectl.pdb("web-pdb").get("status", {}).get("observedGeneration") and
                      kubectl.pdb("web-pdb")["status"], what="the PDB status")
    assert status["expectedPods"] == 0 and status["disruptionsAllowed"] == 0
    rows = [line.split() for line in kubectl("get", "pdb", "web-pdb").stdout.splitlines()]
    assert rows[1][:4] == ["web-pdb", "1", "N/A", "0"]


def test_create_pdb_with_percent_and_expressions(kubectl: Kubectl) -> None:
    kubectl("create", "pdb", "pct", "--selector=app in (a,b),tier notin (cache)", "--max-unavailable=50%")
    spec = kubectl.pdb("pct")["spec"]
    assert spec["maxUnavailable"] == "50%" and "minAvailable" not in spec
    assert spec["selector"] == {"matchExpressions": [
        {"key": "app", "operator": "In", "values": ["a", "b"]},
        {"key": "tier", "operator": "NotIn", "values": ["cache"]}]}
    kubectl("create", "pdb", "none-left", "--selector=app=y", "--max-unavailable=0")
    assert kubectl.pdb("none-left")["spec"]["maxUnavailable"] == 0


def test_invalid_pdb_is_refused_with_the_field(kubectl: Kubectl) -> None:
    bad = kubectl("create", "pdb", "bad-pct", "--selector=app=x", "--min-available=150%", check=False)
    assert bad.returncode != 0 and "spec.minAvailable" in bad.stderr
    bad_name = kubectl("create", "pdb", "Bad_Name", "--selector=app=x", "--min-available=1", check=False)
    assert bad_name.returncode != 0 and "metadata.name" in bad_name.stderr
    assert not {"bad-pct", "Bad_Name"} & set(kubectl.pdb_names())


def test_pdb_status_conditions_in_a_body_are_refused() -> None:
    """PodDisruptionBudgetStatus #7 (conditions) is not in the schema: such a body is refused, not trimmed."""
    raw = pb.PodDisruptionBudget(metadata=pb.ObjectMeta(name="p")).SerializeToString()
    raw += b"\x1a\x04" + b"\x3a\x02\x0a\x00"  # status { conditions { type: "" } }
    envelope = pb.Unknown(typeMeta=pb.TypeMeta(apiVersion="policy/v1", kind="PodDisruptionBudget"), raw=raw)
    with pytest.raises(errors.ApiError) as caught:
        protobody.decode(protobody.MAGIC + envelope.SerializeToString())
    assert caught.value.code == 415 and "status #7" in caught.value.message


def test_priorityclass_zero_value_on_the_wire_decodes_as_zero() -> None:
    body = pb.PriorityClass(metadata=pb.ObjectMeta(name="z"), value=0, preemptionPolicy="Never")
    envelope = pb.Unknown(typeMeta=pb.TypeMeta(apiVersion="scheduling.k8s.io/v1", kind="PriorityClass"),
                          raw=body.SerializeToString())
    decoded = protobody.decode(protobody.MAGIC + envelope.SerializeToString())
    assert decoded == {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "z"},
                       "value": 0, "preemptionPolicy": "Never"}
