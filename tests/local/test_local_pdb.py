"""PodDisruptionBudgets: validation (pkg/apis/policy/validation), the status the disruption controller
computes (pkg/controller/disruption disruption_test.go cases), and the controller running in a
LocalCluster, checked through the official client and kubectl.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from driver.local import policy
from driver.local.cluster import LocalCluster
from driver.local.clusterfile import parse_cluster
from local_helpers import kubectl, pod_body, status_of
from wait_helpers import wait_for

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
FOO_BAR = {"matchLabels": {"foo": "bar"}}


def _pdb(selector: Any = FOO_BAR, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "foobar", "namespace": "default", "generation": 1},
            "spec": {"selector": selector, **spec}}


def _pod(name: str, ready: bool = True, owner: dict[str, Any] | None = None, labels: dict[str, str] | None = None,
         deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "labels": labels or {"foo": "bar"}}
    if owner is not None:
        meta["ownerReferences"] = [{**owner, "controller": True}]
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T11:59:00Z"
    conds = [{"type": "Ready", "status": "True"}] if ready else []
    return {"metadata": meta, "status": {"phase": "Running", "conditions": conds}}


def _rs(uid: str = "rs-uid") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "foobar", "uid": uid}


def _scales(**by_uid: int) -> policy.ScaleLookup:
    return lambda ns, ref: by_uid.get(str(ref.get("uid")).replace("-", "_"))


def _counts(status: policy.Status) -> tuple[int, int, int, int]:
    """(disruptionsAllowed, currentHealthy, desiredHealthy, expectedPods), VerifyPdbStatus's order."""
    return status.disruptions_allowed, status.current_healthy, status.desired_healthy, status.expected_pods


def _none(ns: str, ref: dict[str, Any]) -> None:
    return None


# --- the status computation --------------------------------------------------------------------

def test_an_empty_selector_matches_all_pods() -> None:  # TestNoSelector
    pdb = _pdb(selector={}, minAvailable=3)
    assert _counts(policy.compute_status(pdb, [], _none, NOW)) == (0, 0, 3, 0)
    assert _counts(policy.compute_status(pdb, [_pod("yo", labels={"other": "x"})], _none, NOW)) == (0, 1, 3, 1)


def test_a_missing_selector_matches_nothing() -> None:
    assert _counts(policy.compute_status(_pdb(selector=None, minAvailable=1), [_pod("a")], _none, NOW)) == (0, 0, 1, 0)


def test_counts_follow_pod_readiness() -> None:  # TestUnavailable
    pdb = _pdb(minAvailable=3)
    pods = [_pod(f"yo-{i}") for i in range(4)]
    assert _counts(policy.compute_status(pdb, pods, _none, NOW)) == (1, 4, 3, 4)
    pods[0] = _pod("yo-0", ready=False)
    assert _counts(policy.compute_status(pdb, pods, _none, NOW)) == (0, 3, 3, 4)


def test_integer_max_unavailable_follows_the_replicaset_scale() -> None:  # TestIntegerMaxUnavailableWithScaling
    pods = [_pod("pod", owner=_rs())]
    assert _counts(policy.compute_status(_pdb(maxUnavailable=2), pods, _scales(rs_uid=7), NOW)) == (0, 1, 5, 7)
    assert _counts(policy.compute_status(_pdb(maxUnavailable=2), pods, _scales(rs_uid=5), NOW)) == (0, 1, 3, 5)


def test_percentage_max_unavailable_rounds_up() -> None:  # TestPercentageMaxUnavailableWithScaling
    pods = [_pod("pod", owner=_rs())]
    assert _counts(policy.compute_status(_pdb(maxUnavailable="30%"), pods, _scales(rs_uid=7), NOW)) == (0, 1, 4, 7)
    assert _counts(policy.compute_status(_pdb(maxUnavailable="30%"), pods, _scales(rs_uid=3), NOW)) == (0, 1, 2, 3)


def test_percentage_min_available_rounds_up() -> None:  # TestReplicaSet, TestReplicationController (34% of 3 is 2)
    one = [_pod("pod", owner=_rs())]
    assert _counts(policy.compute_status(_pdb(minAvailable="20%"), one, _scales(rs_uid=10), NOW)) == (0, 1, 2, 10)
    pods: list[dict[str, Any]] = []
    for i, want in enumerate([(0, 1, 2, 3), (0, 2, 2, 3), (1, 3, 2, 3)]):
        pods.append(_pod(f"foobar-{i}", owner=_rs()))
        assert _counts(policy.compute_status(_pdb(minAvailable="34%"), pods, _scales(rs_uid=3), NOW)) == want
    pods.append(_pod("rogue"))
    assert policy.compute_status(_pdb(minAvailable="34%"), pods, _scales(rs_uid=3), NOW).disruptions_allowed == 2


def test_naked_pods_count_one_each_towards_a_scale() -> None:  # TestNakedPod; local rule for max unavailable
    naked = [_pod("naked")]
    assert policy.compute_status(_pdb(minAvailable="28%"), naked, _none, NOW).disruptions_allowed == 0
    assert _counts(policy.compute_status(_pdb(maxUnavailable=1), naked, _none, NOW)) == (1, 1, 0, 1)
    two = [_pod("a"), _pod("b", ready=False)]
    assert _counts(policy.compute_status(_pdb(maxUnavailable="50%"), two, _none, NOW)) == (0, 1, 1, 2)


def test_a_controller_without_a_scale_fails_the_sync() -> None:  # TestUnsupportedControllerPod
    owner = {"apiVersion": "apps.test.io/v1", "kind": "TestWorkload", "name": "fake-controller", "uid": "b7329742"}
    with pytest.raises(policy.SyncFailed, match='found no controllers for pod "naked"'):
        policy.compute_status(_pdb(minAvailable="28%"), [_pod("naked", owner=owner)], _none, NOW)
    # an integer minAvailable needs no scale
    assert _counts(policy.compute_status(_pdb(minAvailable=1), [_pod("naked", owner=owner)], _none, NOW)) == (0, 1, 1, 1)


def test_pods_of_other_namespaces_and_being_deleted_do_not_count() -> None:
    other = _pod("elsewhere")
    other["metadata"]["namespace"] = "team-b"
    pods = [_pod("a"), _pod("b", deleting=True), other]
    assert _counts(policy.compute_status(_pdb(minAvailable=1), pods, _none, NOW)) == (0, 1, 1, 2)


def test_recently_disrupted_pods_are_not_healthy_for_two_minutes() -> None:
    pdb = _pdb(minAvailable=1)
    pdb["status"] = {"disruptedPods": {"a": "2026-01-01T11:59:30Z", "b": "2026-01-01T11:50:00Z"}}
    status = policy.compute_status(pdb, [_pod("a"), _pod("b"), _pod("c")], _none, NOW)
    assert _counts(status) == (1, 2, 1, 3)
    assert status.disrupted_pods == {"a": "2026-01-01T11:59:30Z"} and status.recheck_after_s == 90


def test_neither_bound_allows_nothing() -> None:
    assert _counts(policy.compute_status(_pdb(), [_pod("a")], _none, NOW)) == (0, 1, 0, 0)


def test_status_body_condition_and_its_transition_time() -> None:
    pdb = _pdb(minAvailable=1)
    allowed = policy.status_body(pdb, policy.compute_status(pdb, [_pod("a"), _pod("b")], _none, NOW), "", "T1")
    assert allowed["conditions"] == [{"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods",
                                      "message": "", "observedGeneration": 1, "lastTransitionTime": "T1"}]
    assert (allowed["observedGeneration"], allowed["disruptionsAllowed"]) == (1, 1)
    pdb["status"] = allowed
    same = policy.status_body(pdb, policy.compute_status(pdb, [_pod("a"), _pod("b"), _pod("c")], _none, NOW), "", "T2")
    assert same["conditions"][0]["lastTransitionTime"] == "T1" and same["disruptionsAllowed"] == 2
    failed = policy.status_body(pdb, None, "found no controllers for pod \"x\"", "T3")
    assert failed["disruptionsAllowed"] == 0 and failed["currentHealthy"] == 2
    assert {k: failed["conditions"][0][k] for k in ("status", "reason", "message", "lastTransitionTime")} == {
        "status": "False", "reason": "SyncFailed", "message": "found no controllers for pod \"x\"",
        "lastTransitionTime": "T3"}


# --- validation through the API ----------------------------------------------------------------

@pytest.fixture
def pdbs(kube: client.ApiClient) -> client.PolicyV1Api:
    return client.PolicyV1Api(kube)


def _body(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "b"}, "spec": {"selector": FOO_BAR, **spec}}


@pytest.mark.parametrize("spec", [{"minAvailable": 0}, {"minAvailable": 10}, {"minAvailable": "0%"},
                                  {"minAvailable": "100%"}, {"maxUnavailable": "10%"}, {"maxUnavailable": 3}, {},
                                  {"unhealthyPodEvictionPolicy": "AlwaysAllow"}])
def test_valid_budgets_start_with_zero_counters(pdbs: client.PolicyV1Api, spec: dict[str, Any]) -> None:
    made = pdbs.create_namespaced_pod_disruption_budget("default", _body(**spec))
    status = made.status
    assert (status.disruptions_allowed, status.current_healthy, status.desired_healthy, status.expected_pods) == (0, 0, 0, 0)
    assert made.metadata.generation == 1


@pytest.mark.parametrize(("spec", "field", "message"), [
    ({"minAvailable": -1}, "spec.minAvailable", "Invalid value: -1: must be greater than or equal to 0"),
    ({"minAvailable": "-10%"}, "spec.minAvailable", 'Invalid value: "-10%": a valid percent string must be'),
    ({"minAvailable": "1.1%"}, "spec.minAvailable", 'Invalid value: "1.1%": a valid percent string must be'),
    ({"maxUnavailable": "101%"}, "spec.maxUnavailable", 'Invalid value: "101%": must not be greater than 100%'),
    ({"minAvailable": 1, "maxUnavailable": 1}, "spec", "Invalid value: minAvailable and maxUnavailable cannot be both set"),
    ({"unhealthyPodEvictionPolicy": "Sometimes"}, "spec.unhealthyPodEvictionPolicy", 'Unsupported value: "Sometimes"'),
    ({"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}, "spec.selector.matchExpressions[0].values",
     "Required value: must be specified when `operator` is 'In' or 'NotIn'"),
    ({"selector": {"matchExpressions": [{"key": "a", "operator": "Near", "values": ["x"]}]}},
     "spec.selector.matchExpressions[0].operator", 'Invalid value: "Near": not a valid selector operator'),
])
def test_invalid_budgets_name_the_field(pdbs: client.PolicyV1Api, spec: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ApiException) as err:
        pdbs.create_namespaced_pod_disruption_budget("default", _body(**spec))
    out = status_of(err.value)
    assert err.value.status == 422
    assert any(c["field"] == field and c["message"].startswith(message) for c in out["details"]["causes"]), out


def test_status_updates_are_validated_and_keep_the_spec(pdbs: client.PolicyV1Api) -> None:
    pdbs.create_namespaced_pod_disruption_budget("default", _body(minAvailable=1))
    with pytest.raises(ApiException) as err:
        pdbs.patch_namespaced_pod_disruption_budget_status("b", "default", {"status": {"disruptionsAllowed": -1}})
    assert [c["field"] for c in status_of(err.value)["details"]["causes"]] == ["status.disruptionsAllowed"]
    updated = pdbs.patch_namespaced_pod_disruption_budget_status(
        "b", "default", {"spec": {"minAvailable": 5}, "status": {"disruptionsAllowed": 2}})
    assert updated.status.disruptions_allowed == 2 and updated.spec.min_available == 1
    respec = pdbs.patch_namespaced_pod_disruption_budget("b", "default", {"spec": {"minAvailable": "50%"}})
    assert respec.metadata.generation == 2 and respec.status.disruptions_allowed == 2


# --- the controller in a LocalCluster ----------------------------------------------------------

@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    spec = parse_cluster({"nodes": [{"name": "node-a", "cpu": "32", "memory": "64Gi"}]})
    with LocalCluster(spec, workdir=tmp_path, plugin_factory=None, claim_controller=False, volumes=False) as running:
        yield running


def _settled(pdbs: client.PolicyV1Api, want: tuple[int, int, int, int], generation: int = 1) -> Any:
    def read() -> Any:
        b = pdbs.read_namespaced_pod_disruption_budget("web", "default")
        s = b.status
        got = (s.disruptions_allowed, s.current_healthy, s.desired_healthy, s.expected_pods)
        return b if got == want and s.observed_generation == generation else None
    return wait_for(read, what=f"pdb status {want}")


def test_the_controller_follows_pods_scale_and_spec(cluster: LocalCluster) -> None:
    api = cluster.api_client()
    apps, pdbs = client.AppsV1Api(api), client.PolicyV1Api(api)
    template = {"metadata": {"labels": {"app": "web"}}, "spec": pod_body("x")["spec"]}
    apps.create_namespaced_deployment("default", {"metadata": {"name": "web"}, "spec": {
        "replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template}})
    pdbs.create_namespaced_pod_disruption_budget("default", {"metadata": {"name": "web"}, "spec": {
        "maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}})
    budget = _settled(pdbs, (1, 3, 2, 3))
    cond = budget.status.conditions[0]
    assert (cond.type, cond.status, cond.reason, cond.observed_generation) == ("DisruptionAllowed", "True",
                                                                               "SufficientPods", 1)
    apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 5}})
    _settled(pdbs, (1, 5, 4, 5))
    pdbs.patch_namespaced_pod_disruption_budget("web", "default", {"spec": {"maxUnavailable": None, "minAvailable": "100%"}})
    budget = _settled(pdbs, (0, 5, 5, 5), generation=2)
    assert (budget.status.conditions[0].status, budget.status.conditions[0].reason) == ("False", "InsufficientPods")
    if shutil.which("kubectl"):
        rows = [line.split() for line in kubectl(cluster.kubeconfig, "get", "pdb").stdout.splitlines()]
        assert rows[0] == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"]
        assert rows[1][:4] == ["web", "100%", "N/A", "0"]


def test_a_job_pod_fails_safe(cluster: LocalCluster) -> None:
    api = cluster.api_client()
    core, pdbs, batch = client.CoreV1Api(api), client.PolicyV1Api(api), client.BatchV1Api(api)
    job = batch.create_namespaced_job("default", {"metadata": {"name": "j"}, "spec": {"template": {
        "spec": {**pod_body("x")["spec"], "restartPolicy": "Never"}}}})
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": job.metadata.uid, "controller": True}
    pod = pod_body("job-pod")
    pod["metadata"].update(labels={"app": "web"}, ownerReferences=[owner])
    core.create_namespaced_pod("default", pod)
    pdbs.create_namespaced_pod_disruption_budget("default", {"metadata": {"name": "web"}, "spec": {
        "minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}})

    def failed() -> Any:
        conds = pdbs.read_namespaced_pod_disruption_budget("web", "default").status.conditions or []
        return conds and conds[0].reason == "SyncFailed" and conds[0]
    cond = wait_for(failed, what="the SyncFailed condition")
    assert cond.status == "False" and cond.message == 'found no controllers for pod "job-pod"'
    assert pdbs.read_namespaced_pod_disruption_budget("web", "default").status.disruptions_allowed == 0


def test_status_counters_read_before_the_first_sync_are_zero() -> None:
    assert policy.Status(0, 0, 0, 0).disrupted_pods == {}
    assert (NOW + policy.DELETION_TIMEOUT) - NOW == timedelta(minutes=2)
