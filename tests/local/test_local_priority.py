"""PriorityClasses and pod priority admission on the local API server, as kube-apiserver does them.

Cases follow upstream's tables: pkg/apis/scheduling/validation (TestValidatePriorityClass,
TestValidatePriorityClassUpdate) and plugin/pkg/admission/priority (TestPriorityClassAdmission,
TestDefaultPriority, TestPodAdmission), run through the official client over HTTP; `kubectl get pc`
against the same server.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from driver.local import scheduling
from driver.local.server import ApiServer
from local_helpers import kubectl, pod_body, status_of


@pytest.fixture
def sched(kube: client.ApiClient) -> client.SchedulingV1Api:
    return client.SchedulingV1Api(kube)


def _pc(name: str, value: int, **fields: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "value": value, **fields}


def _refused(call: Any, *args: Any) -> dict[str, Any]:
    with pytest.raises(ApiException) as err:
        call(*args)
    return {"code": err.value.status, **status_of(err.value)}


# --- the system classes ---------------------------------------------------------------------------

def test_system_classes_exist_from_the_start_and_cannot_be_deleted(sched: client.SchedulingV1Api) -> None:
    classes = {pc.metadata.name: pc for pc in sched.list_priority_class().items}
    assert classes["system-cluster-critical"].value == 2000000000
    assert classes["system-node-critical"].value == 2000001000
    assert all(pc.preemption_policy == "PreemptLowerPriority" and not pc.global_default for pc in classes.values())
    out = _refused(sched.delete_priority_class, "system-node-critical")
    assert out["code"] == 403 and out["reason"] == "Forbidden"
    assert out["message"] == ('priorityclasses.scheduling.k8s.io "system-node-critical" is forbidden: '
                              "this is a system priority class and cannot be deleted")


# --- TestValidatePriorityClass ---------------------------------------------------------------------

def test_valid_classes_get_the_default_preemption_policy(sched: client.SchedulingV1Api) -> None:
    plain = sched.create_priority_class(_pc("tier1", 100))
    described = sched.create_priority_class(_pc("tier2", 200, description="Used for the highest priority pods."))
    assert plain.preemption_policy == "PreemptLowerPriority" and plain.value == 100 and not plain.global_default
    assert described.description == "Used for the highest priority pods."
    never = sched.create_priority_class(_pc("batch", 10, preemptionPolicy="Never"))
    assert never.preemption_policy == "Never"


@pytest.mark.parametrize(("body", "field", "message"), [
    (_pc("tier&1", 100), "metadata.name", "Invalid value"),
    (_pc("system-something", 2000001000), "metadata.name",
     "Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: "
     "system-something is not a known system priority class"),
    (_pc("huge", 1000000001), "value", "Forbidden: maximum allowed value of a user defined priority is 1000000000"),
    (_pc("bad-policy", 1, preemptionPolicy="Sometimes"), "preemptionPolicy",
     'Unsupported value: "Sometimes": supported values: "PreemptLowerPriority", "Never"'),
])
def test_invalid_classes_are_refused_naming_the_field(sched: client.SchedulingV1Api, body: dict[str, Any], field: str,
                                                      message: str) -> None:
    out = _refused(sched.create_priority_class, body)
    assert out["code"] == 422 and out["reason"] == "Invalid"
    assert any(c["field"] == field and c["message"].startswith(message) for c in out["details"]["causes"]), out


def test_a_system_name_needs_the_system_value() -> None:
    causes = scheduling.validate(_pc("system-node-critical", 0), None)
    assert causes == [("metadata.name", "Forbidden: priority class names with 'system-' prefix are reserved for "
                                         "system use only. error: value of system-node-critical PriorityClass must be "
                                         "2000001000")]
    assert scheduling.validate(_pc("system-node-critical", 2000001000), None) == []


# --- TestValidatePriorityClassUpdate ---------------------------------------------------------------

def test_description_and_global_default_may_change(sched: client.SchedulingV1Api) -> None:
    sched.create_priority_class(_pc("tier1", 100, description="first"))
    changed = sched.patch_priority_class("tier1", {"description": "A different description.", "globalDefault": True})
    assert changed.description == "A different description." and changed.global_default is True
    removed = sched.patch_priority_class("tier1", {"description": None})
    assert removed.description is None


def test_value_and_preemption_policy_are_immutable(sched: client.SchedulingV1Api) -> None:
    sched.create_priority_class(_pc("tier1", 100))
    out = _refused(sched.patch_priority_class, "tier1", {"value": 101})
    assert out["code"] == 422
    assert {"field": "value", "message": "Forbidden: may not be changed in an update.",
            "reason": "FieldValueInvalid"} in out["details"]["causes"]
    out = _refused(sched.patch_priority_class, "tier1", {"preemptionPolicy": "Never"})
    assert [c["message"] for c in out["details"]["causes"] if c["field"] == "preemptionPolicy"] == [
        'Invalid value: "Never": field is immutable']
    assert sched.read_priority_class("tier1").value == 100


# --- TestPriorityClassAdmission --------------------------------------------------------------------

def test_only_one_global_default(sched: client.SchedulingV1Api) -> None:
    sched.create_priority_class(_pc("default1", 1000, globalDefault=True))
    out = _refused(sched.create_priority_class, _pc("default2", 2000, globalDefault=True))
    assert out["code"] == 403 and out["message"] == (
        'priorityclasses.scheduling.k8s.io "default2" is forbidden: PriorityClass default1 is already marked as '
        "default. Only one default can exist")
    sched.create_priority_class(_pc("other", 2000))
    out = _refused(sched.patch_priority_class, "other", {"globalDefault": True})
    assert out["code"] == 403 and "PriorityClass default1 is already marked as default" in out["message"]
    assert sched.patch_priority_class("default1", {"description": "still the default"}).global_default is True


# --- TestDefaultPriority ---------------------------------------------------------------------------

def test_several_defaults_resolve_to_the_lowest_value() -> None:
    classes = [_pc("default1", 1000, globalDefault=True), _pc("default2", 2000, globalDefault=True), _pc("x", 1)]
    chosen = scheduling.default_class(classes)
    assert chosen is not None and chosen["metadata"]["name"] == "default1"
    assert scheduling.default_class([_pc("x", 1)]) is None


def test_deleting_or_unmarking_the_default_brings_priority_zero(core: client.CoreV1Api,
                                                               sched: client.SchedulingV1Api) -> None:
    sched.create_priority_class(_pc("default1", 1000, globalDefault=True))
    assert core.create_namespaced_pod("default", pod_body("a")).spec.priority == 1000
    sched.patch_priority_class("default1", {"globalDefault": False})
    b = core.create_namespaced_pod("default", pod_body("b"))
    assert b.spec.priority == 0 and b.spec.priority_class_name is None
    sched.patch_priority_class("default1", {"globalDefault": True})
    sched.delete_priority_class("default1")
    assert core.create_namespaced_pod("default", pod_body("c")).spec.priority == 0


# --- TestPodAdmission ------------------------------------------------------------------------------

def test_pod_gets_its_class_value_and_policy(core: client.CoreV1Api, sched: client.SchedulingV1Api) -> None:
    sched.create_priority_class(_pc("default1", 1000, globalDefault=True))
    sched.create_priority_class(_pc("nondefault1", 2000, description="Just a test priority class"))
    sched.create_priority_class(_pc("never", 500, preemptionPolicy="Never"))
    named = core.create_namespaced_pod("default", pod_body("named", priorityClassName="nondefault1"))
    assert (named.spec.priority, named.spec.preemption_policy) == (2000, "PreemptLowerPriority")
    unnamed = core.create_namespaced_pod("default", pod_body("unnamed"))
    assert (unnamed.spec.priority_class_name, unnamed.spec.priority) == ("default1", 1000)
    never = core.create_namespaced_pod("default", pod_body("never", priorityClassName="never"))
    assert (never.spec.priority, never.spec.preemption_policy) == (500, "Never")


def test_no_classes_means_priority_zero_and_preempt_lower(core: client.CoreV1Api) -> None:
    pod = core.create_namespaced_pod("default", pod_body("plain"))
    assert (pod.spec.priority, pod.spec.preemption_policy, pod.spec.priority_class_name) == (0, "PreemptLowerPriority", None)


@pytest.mark.parametrize("namespace", ["kube-system", "default"])
def test_system_classes_resolve_in_any_namespace(core: client.CoreV1Api, namespace: str) -> None:
    pod = core.create_namespaced_pod(namespace, pod_body("critical", priorityClassName="system-cluster-critical"))
    assert pod.spec.priority == 2000000000


def test_unknown_class_is_forbidden(core: client.CoreV1Api) -> None:
    out = _refused(core.create_namespaced_pod, "default", pod_body("p", priorityClassName="non-existing"))
    assert out["code"] == 403 and out["reason"] == "Forbidden"
    assert out["message"] == 'pods "p" is forbidden: no PriorityClass with name non-existing was found'
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("p", "default")
    assert err.value.status == 404


def test_a_priority_that_disagrees_with_the_class_is_forbidden(core: client.CoreV1Api,
                                                             sched: client.SchedulingV1Api) -> None:
    sched.create_priority_class(_pc("default1", 1000, globalDefault=True))
    out = _refused(core.create_namespaced_pod, "default", pod_body("p", priorityClassName="default1", priority=5))
    assert out["code"] == 403 and out["message"] == (
        'pods "p" is forbidden: the integer value of priority (5) must not be provided in pod spec; priority '
        "admission controller computed 1000 from the given PriorityClass name")
    # a value that matches the resolved (here: default) priority is accepted
    assert core.create_namespaced_pod("default", pod_body("q", priority=1000)).spec.priority == 1000


def test_a_priority_matching_zero_without_default_is_accepted(core: client.CoreV1Api) -> None:
    assert core.create_namespaced_pod("default", pod_body("zero", priority=0)).spec.priority == 0


def test_a_preemption_policy_that_disagrees_is_forbidden(core: client.CoreV1Api, sched: client.SchedulingV1Api) -> None:
    sched.create_priority_class(_pc("lower", 2000))
    ok = core.create_namespaced_pod("default", pod_body("ok", priorityClassName="lower", priority=2000,
                                                        preemptionPolicy="PreemptLowerPriority"))
    assert ok.spec.preemption_policy == "PreemptLowerPriority"
    out = _refused(core.create_namespaced_pod, "default", pod_body("bad", priorityClassName="lower", priority=2000,
                                                                   preemptionPolicy="Never"))
    assert out["code"] == 403 and out["message"] == (
        'pods "bad" is forbidden: the string value of PreemptionPolicy (Never) must not be provided in pod spec; '
        "priority admission controller computed PreemptLowerPriority from the given PriorityClass name")


def test_updates_keep_priority_and_may_not_change_it(core: client.CoreV1Api, sched: client.SchedulingV1Api) -> None:
    sched.create_priority_class(_pc("high", 1000))
    pod = core.create_namespaced_pod("default", pod_body("p", priorityClassName="high"))
    body = core.api_client.sanitize_for_serialization(pod)
    del body["spec"]["priority"], body["spec"]["preemptionPolicy"]
    body["metadata"]["labels"] = {"touched": "yes"}
    kept = core.replace_namespaced_pod("p", "default", body)
    assert (kept.spec.priority, kept.spec.preemption_policy, kept.metadata.labels) == (1000, "PreemptLowerPriority",
                                                                                       {"touched": "yes"})
    out = _refused(core.patch_namespaced_pod, "p", "default", {"spec": {"priority": 7}})
    assert out["code"] == 422 and [c["field"] for c in out["details"]["causes"]] == ["spec"]


# --- kubectl ---------------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_get_pc_prints_the_servers_columns(api: ApiServer, sched: client.SchedulingV1Api) -> None:
    sched.create_priority_class(_pc("batch-low", 100, globalDefault=True, preemptionPolicy="Never"))
    rows = [line.split() for line in kubectl(api.kubeconfig_path, "get", "pc").stdout.splitlines()]
    assert rows[0] == ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
    by_name = {r[0]: r for r in rows[1:]}
    assert by_name["batch-low"][1:3] == ["100", "true"] and by_name["batch-low"][4] == "Never"
    assert by_name["system-node-critical"][1:3] == ["2000001000", "false"]
    assert by_name["system-node-critical"][4] == "PreemptLowerPriority"
    applied = kubectl(api.kubeconfig_path, "apply", "-f", "-", stdin=(
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: from-yaml\nvalue: 42\n"))
    assert "priorityclass.scheduling.k8s.io/from-yaml created" in applied.stdout
    refused = kubectl(api.kubeconfig_path, "apply", "-f", "-", check=False, stdin=(
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: system-mine\nvalue: 42\n"))
    assert refused.returncode != 0 and "reserved for system use only" in refused.stderr
