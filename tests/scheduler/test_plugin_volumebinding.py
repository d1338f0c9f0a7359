"""VolumeBinding: cases from kube-scheduler's volume_binding_test.go (TestVolumeBinding) and
binder_test.go, as far as a scheduler that never binds or provisions volumes goes: unbound
WaitForFirstConsumer claims reject the pod instead of being matched or provisioned."""

from __future__ import annotations

from typing import Any

import pytest

from driver.scheduler.framework import Checks, CycleContext, Rejection
from driver.scheduler.packing.config import PackingConfig
from driver.scheduler.plugins import volumebinding as vb
from driver.scheduler.podinfo import pod_info
from driver.scheduler.state import ClusterState
from driver.scheduler.volumes import VolumeIndex

WAIT_SC, IMMEDIATE_SC = "wait-sc", "immediate-sc"


def make_pod(*claims: str, ephemeral: tuple[str, ...] = (), name: str = "pod-a") -> dict:
    vols: list[dict[str, Any]] = [{"name": c, "persistentVolumeClaim": {"claimName": c}} for c in claims]
    vols += [{"name": e, "ephemeral": {"volumeClaimTemplate": {"spec": {}}}} for e in ephemeral]
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"}, "spec": {"volumes": vols}}


def make_pvc(name: str, sc: str | None = WAIT_SC, bound_to: str = "", **extra: Any) -> dict:
    spec: dict[str, Any] = {}
    if sc is not None:
        spec["storageClassName"] = sc
    if bound_to:
        spec["volumeName"] = bound_to
    pvc: dict[str, Any] = {"metadata": {"name": name, "namespace": "default"}, "spec": spec}
    for k, v in extra.items():
        if k == "phase":
            pvc["status"] = {"phase": v}
        else:
            pvc["metadata"][k] = v
    return pvc


def make_pv(name: str, affinity: dict[str, list[str]] | None = None) -> dict:
    pv: dict[str, Any] = {"metadata": {"name": name}, "spec": {"storageClassName": WAIT_SC}}
    if affinity is not None:
        pv["spec"]["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": k, "operator": "In", "values": v} for k, v in affinity.items()]}]}}
    return pv


def run(pod: dict, pvcs: list[dict] = (), pvs: list[dict] = (), nodes: list[tuple[str, dict]] = (("node-a", {}),),
        index: bool = True):
    state = ClusterState({})
    for n, labels in nodes:
        state.add_node({"metadata": {"name": n, "labels": labels}})
    state.volumes = VolumeIndex() if index else None  # type: ignore[assignment]
    if index:
        state.volumes.set_storage_class(WAIT_SC, {"metadata": {"name": WAIT_SC}, "volumeBindingMode": "WaitForFirstConsumer"})
        state.volumes.set_storage_class(IMMEDIATE_SC, {"metadata": {"name": IMMEDIATE_SC}, "volumeBindingMode": "Immediate"})
        for c in pvcs:
            state.volumes.set_pvc(f"default/{c['metadata']['name']}", c)
        for v in pvs:
            state.volumes.set_pv(v["metadata"]["name"], v)
    return state, vb.prefilter(CycleContext(pod, pod_info(pod), state, PackingConfig()))


def rejected(reason: str) -> Rejection:
    return Rejection("VolumeBinding", reason, unresolvable=True)


def per_node(state: ClusterState, checks: Checks) -> dict[str, str | None]:
    out = {}
    for name, n in state.nodes.items():
        r = checks.filter(n)
        out[name] = r.reason if r else None
        assert r is None or (r.unresolvable and r.plugin == "VolumeBinding")
    return out


def test_pod_has_no_pvcs() -> None:
    assert run({"metadata": {"name": "p"}, "spec": {"volumes": [{"name": "x", "emptyDir": {}}]}})[1] is None


def test_all_bound() -> None:
    _, got = run(make_pod("pvc-a"), [make_pvc("pvc-a", bound_to="pv-a")], [make_pv("pv-a")])
    assert got is None  # bound to a PV without node affinity: nothing to check per node


def test_all_bound_with_local_volumes() -> None:
    state, got = run(make_pod("pvc-a", "pvc-b"),
                     [make_pvc("pvc-a", bound_to="pv-a"), make_pvc("pvc-b", bound_to="pv-b")],
                     [make_pv("pv-a", {"kubernetes.io/hostname": ["node-a"]}),
                      make_pv("pv-b", {"kubernetes.io/hostname": ["node-a"]})],
                     nodes=[("node-a", {"kubernetes.io/hostname": "node-a"}), ("node-b", {"kubernetes.io/hostname": "node-b"})])
    assert isinstance(got, Checks)
    assert per_node(state, got) == {"node-a": None, "node-b": vb.REASON_NODE_CONFLICT}


def test_pvc_does_not_exist() -> None:
    assert run(make_pod("pvc-a"))[1] == rejected('persistentvolumeclaim "pvc-a" not found')


def test_part_of_pvcs_do_not_exist() -> None:
    got = run(make_pod("pvc-a", "pvc-b"), [make_pvc("pvc-a", bound_to="pv-a")], [make_pv("pv-a")])[1]
    assert got == rejected('persistentvolumeclaim "pvc-b" not found')


def test_immediate_claims_not_bound() -> None:
    assert run(make_pod("pvc-a"), [make_pvc("pvc-a", IMMEDIATE_SC)])[1] == rejected(vb.REASON_UNBOUND_IMMEDIATE)


@pytest.mark.parametrize("sc", [None, "", "no-such-class"], ids=["no class", "empty class", "unknown class"])
def test_claims_without_a_known_class_bind_immediately(sc: str | None) -> None:
    assert run(make_pod("pvc-a"), [make_pvc("pvc-a", sc)])[1] == rejected(vb.REASON_UNBOUND_IMMEDIATE)


def test_beta_class_annotation_wins_over_the_spec() -> None:
    pvc = make_pvc("pvc-a", IMMEDIATE_SC, annotations={vb.BETA_CLASS_ANNOTATION: WAIT_SC})
    got = run(make_pod("pvc-a"), [pvc])[1]
    assert got is not None and got.reason.startswith('persistentvolumeclaim "pvc-a" is unbound')


def test_unbound_claims_waiting_for_first_consumer_reject_the_pod() -> None:
    got = run(make_pod("pvc-a"), [make_pvc("pvc-a")])[1]
    assert got == rejected('persistentvolumeclaim "pvc-a" is unbound and waits for its first consumer '
                           '(volumeBindingMode WaitForFirstConsumer); this scheduler does not bind or provision volumes')
    got = run(make_pod("pvc-a", "pvc-b"), [make_pvc("pvc-a"), make_pvc("pvc-b")])[1]
    assert got is not None and got.reason.startswith('persistentvolumeclaims "pvc-a", "pvc-b" are unbound')


def test_bound_and_unbound_unsatisfied() -> None:
    got = run(make_pod("pvc-a", "pvc-b"), [make_pvc("pvc-a", bound_to="pv-a"), make_pvc("pvc-b")],
              [make_pv("pv-a", {"foo": ["barbar"]})], nodes=[("node-a", {"foo": "barbar"})])[1]
    assert isinstance(got, Rejection) and '"pvc-b" is unbound' in got.reason


def test_immediate_unbound_is_reported_before_waiting_ones() -> None:
    got = run(make_pod("pvc-a", "pvc-b"), [make_pvc("pvc-a"), make_pvc("pvc-b", IMMEDIATE_SC)])[1]
    assert got == rejected(vb.REASON_UNBOUND_IMMEDIATE)


def test_pv_not_found() -> None:
    state, got = run(make_pod("pvc-a"), [make_pvc("pvc-a", bound_to="pv-a")])
    assert isinstance(got, Checks)
    assert per_node(state, got) == {"node-a": vb.REASON_PV_NOT_EXIST}


def test_pv_not_found_claim_lost() -> None:
    got = run(make_pod("pvc-a"), [make_pvc("pvc-a", bound_to="pv-a", phase="Lost")])[1]
    assert got == rejected('persistentvolumeclaim "pvc-a" bound to non-existent persistentvolume "pv-a"')


def test_pvc_being_deleted() -> None:
    got = run(make_pod("pvc-a"), [make_pvc("pvc-a", bound_to="pv-a", deletionTimestamp="2024-01-01T00:00:00Z")],
              [make_pv("pv-a")])[1]
    assert got == rejected('persistentvolumeclaim "pvc-a" is being deleted')


def test_bound_claims_are_checked_in_order_and_stop_at_the_first_failure() -> None:
    state, got = run(make_pod("pvc-a", "pvc-b"),
                     [make_pvc("pvc-a", bound_to="pv-a"), make_pvc("pvc-b", bound_to="pv-missing")],
                     [make_pv("pv-a", {"zone": ["a"]})], nodes=[("node-a", {"zone": "a"}), ("node-b", {"zone": "b"})])
    assert per_node(state, got) == {"node-a": vb.REASON_PV_NOT_EXIST, "node-b": vb.REASON_NODE_CONFLICT}


def test_pv_node_affinity_matches_labels_only() -> None:
    pv = make_pv("pv-a")
    pv["spec"]["nodeAffinity"] = {"required": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["elsewhere"]}]}]}}
    state, got = run(make_pod("pvc-a"), [make_pvc("pvc-a", bound_to="pv-a")], [pv])
    assert per_node(state, got) == {"node-a": None}


def owned(name: str, uid: str = "uid-pod-a") -> dict:
    return make_pvc(name, bound_to="pv-a", ownerReferences=[{"kind": "Pod", "name": "pod-a", "uid": uid, "controller": True}])


def test_ephemeral_volume_missing() -> None:
    got = run(make_pod(ephemeral=("xyz",)))[1]
    assert got == rejected('waiting for ephemeral volume controller to create the persistentvolumeclaim "pod-a-xyz"')


def test_ephemeral_volume_not_owned() -> None:
    got = run(make_pod(ephemeral=("xyz",)), [owned("pod-a-xyz", uid="someone-else")], [make_pv("pv-a")])[1]
    assert got == rejected("PVC default/pod-a-xyz was not created for pod default/pod-a (pod is not owner)")
    got = run(make_pod(ephemeral=("xyz",)), [make_pvc("pod-a-xyz", bound_to="pv-a")], [make_pv("pv-a")])[1]
    assert got is not None and "(pod is not owner)" in got.reason


def test_ephemeral_volume_owned_and_bound() -> None:
    state, got = run(make_pod(ephemeral=("xyz",)), [owned("pod-a-xyz")], [make_pv("pv-a", {"zone": ["a"]})],
                     nodes=[("node-a", {"zone": "a"}), ("node-b", {"zone": "b"})])
    assert per_node(state, got) == {"node-a": None, "node-b": vb.REASON_NODE_CONFLICT}


def test_ephemeral_volume_unbound_waits_for_first_consumer() -> None:
    pvc = owned("pod-a-xyz")
    del pvc["spec"]["volumeName"]
    got = run(make_pod(ephemeral=("xyz",)), [pvc])[1]
    assert got is not None and got.reason.startswith('persistentvolumeclaim "pod-a-xyz" is unbound')


def test_without_a_volume_index_there_is_nothing_to_check() -> None:
    assert run(make_pod("pvc-a"), index=False)[1] is None


@pytest.mark.parametrize("volumes,field", [
    ("x", "spec.volumes"), (["x"], "spec.volumes[0]"),
    ([{"name": "v", "persistentVolumeClaim": {}}], "spec.volumes[0].persistentVolumeClaim.claimName"),
])
def test_unreadable_volumes_name_the_field(volumes: object, field: str) -> None:
    p = {"metadata": {"name": "p"}, "spec": {"volumes": volumes}}
    got = vb.prefilter(CycleContext(p, pod_info({"metadata": {"name": "p"}}), ClusterState({}), PackingConfig()))
    assert got is not None and got.reason.startswith(field + ":") and got.unresolvable


def test_volume_index_set_and_forget() -> None:
    index = VolumeIndex()
    index.set_pvc("ns/a", {"metadata": {"name": "a"}})
    index.set_pv("pv", {"metadata": {"name": "pv"}})
    index.set_storage_class("sc", {"metadata": {"name": "sc"}})
    assert index.pvc("ns", "a") and index.pv("pv") and index.storage_class("sc")
    index.set_pvc("ns/a", None)
    index.set_pv("pv", None)
    index.set_storage_class("sc", None)
    assert index.pvc("ns", "a") is None and index.pv("pv") is None and index.storage_class("sc") is None
    for bad in ("a", "/a", "ns/"):
        with pytest.raises(ValueError, match="namespace/name"):
            index.set_pvc(bad, {})
    with pytest.raises(ValueError, match="persistentvolume pv: expected an object"):
        index.set_pv("pv", "x")  # type: ignore[arg-type]
