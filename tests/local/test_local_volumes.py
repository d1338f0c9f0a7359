"""PersistentVolumes, PersistentVolumeClaims and StorageClasses on the local API server (defaults and
validation of pkg/apis/core and pkg/apis/storage, DefaultStorageClass admission, printer columns),
and the volume binding controller running in a LocalCluster.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from driver.local import volumebinding
from driver.local.cluster import LocalCluster
from driver.local.clusterfile import parse_cluster
from driver.local.server import ApiServer
from local_helpers import kubectl, status_of
from wait_helpers import wait_for

DEFAULT = {"storageclass.kubernetes.io/is-default-class": "true"}


@pytest.fixture
def storage(kube: client.ApiClient) -> client.StorageV1Api:
    return client.StorageV1Api(kube)


def _sc(name: str, annotations: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "annotations": annotations or {}}, "provisioner": "example.com/disk", **fields}


def _pv(name: str, size: str = "10Gi", modes: tuple[str, ...] = ("ReadWriteOnce",), **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "spec": {"accessModes": list(modes), "capacity": {"storage": size}, "hostPath": {"path": f"/data/{name}"},
                     **spec}}


def _pvc(name: str, size: str = "1Gi", modes: tuple[str, ...] = ("ReadWriteOnce",), **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "spec": {"accessModes": list(modes), "resources": {"requests": {"storage": size}}, **spec}}


def _causes(call: Any, *args: Any) -> list[tuple[str, str]]:
    with pytest.raises(ApiException) as err:
        call(*args)
    assert err.value.status == 422, err.value.body
    return [(c["field"], c["message"]) for c in status_of(err.value)["details"]["causes"]]


# --- StorageClass --------------------------------------------------------------------------------

def test_storage_class_defaults(storage: client.StorageV1Api) -> None:
    sc = storage.create_storage_class(_sc("standard"))
    assert (sc.volume_binding_mode, sc.reclaim_policy) == ("Immediate", "Delete")
    late = storage.create_storage_class(_sc("late", volumeBindingMode="WaitForFirstConsumer", reclaimPolicy="Retain"))
    assert (late.volume_binding_mode, late.reclaim_policy) == ("WaitForFirstConsumer", "Retain")


@pytest.mark.parametrize(("body", "field", "message"), [
    (_sc("x", provisioner=""), "provisioner", "Required value"),
    (_sc("x", volumeBindingMode="Later"), "volumeBindingMode",
     'Unsupported value: "Later": supported values: "Immediate", "WaitForFirstConsumer"'),
    (_sc("x", reclaimPolicy="Recycle"), "reclaimPolicy", 'Unsupported value: "Recycle": supported values: "Delete", "Retain"'),
    (_sc("x", provisioner="not a name"), "provisioner", 'Invalid value: "not a name"'),
])
def test_invalid_storage_classes(storage: client.StorageV1Api, body: dict[str, Any], field: str, message: str) -> None:
    assert any(f == field and m.startswith(message) for f, m in _causes(storage.create_storage_class, body))


def test_storage_class_fields_that_never_change(storage: client.StorageV1Api) -> None:
    storage.create_storage_class(_sc("fast", parameters={"type": "ssd"}))
    for patch, field, message in [
        ({"provisioner": "example.com/other"}, "provisioner", "Forbidden: updates to provisioner are forbidden."),
        ({"parameters": {"type": "hdd"}}, "parameters", "Forbidden: updates to parameters are forbidden."),
        ({"reclaimPolicy": "Retain"}, "reclaimPolicy", "Forbidden: updates to reclaimPolicy are forbidden."),
        ({"volumeBindingMode": "WaitForFirstConsumer"}, "volumeBindingMode",
         'Invalid value: "WaitForFirstConsumer": field is immutable'),
    ]:
        assert _causes(storage.patch_storage_class, "fast", patch) == [(field, message)]
    assert storage.patch_storage_class("fast", {"allowVolumeExpansion": True}).allow_volume_expansion is True


# --- PersistentVolume ----------------------------------------------------------------------------

def test_volume_defaults_and_canonical_capacity(core: client.CoreV1Api) -> None:
    pv = core.create_persistent_volume(_pv("v1", size="1024Mi"))
    assert (pv.spec.persistent_volume_reclaim_policy, pv.spec.volume_mode) == ("Retain", "Filesystem")
    assert pv.spec.capacity == {"storage": "1Gi"} and pv.status.phase == "Pending"
    assert pv.status.last_phase_transition_time is not None


@pytest.mark.parametrize(("spec", "field", "message"), [
    ({"accessModes": []}, "spec.accessModes", "Required value"),
    ({"accessModes": ["ReadWriteSometimes"]}, "spec.accessModes", 'Unsupported value: "ReadWriteSometimes"'),
    ({"accessModes": ["ReadWriteOncePod", "ReadWriteOnce"]}, "spec.accessModes",
     "Forbidden: may not use ReadWriteOncePod with other access modes"),
    ({"capacity": {"storage": "1Gi", "cpu": "1"}}, "spec.capacity", "Unsupported value"),
    ({"nfs": {"server": "s", "path": "/"}}, "spec.nfs", "Forbidden: may not specify more than 1 volume type"),
    ({"hostPath": None, "local": {"path": "/mnt"}}, "spec.nodeAffinity", "Required value: Local volume requires node affinity"),
    ({"hostPath": None}, "spec", "Required value: must specify a volume type"),
    ({"persistentVolumeReclaimPolicy": "Keep"}, "spec.persistentVolumeReclaimPolicy",
     'Unsupported value: "Keep": supported values: "Delete", "Recycle", "Retain"'),
    ({"storageClassName": "Not_A_Class"}, "spec.storageClassName", 'Invalid value: "Not_A_Class"'),
    ({"volumeMode": "Raw"}, "spec.volumeMode", 'Unsupported value: "Raw": supported values: "Block", "Filesystem"'),
])
def test_invalid_volumes(core: client.CoreV1Api, spec: dict[str, Any], field: str, message: str) -> None:
    body = _pv("bad")
    body["spec"].update(spec)
    body["spec"] = {k: v for k, v in body["spec"].items() if v is not None}
    assert any(f == field and m.startswith(message) for f, m in _causes(core.create_persistent_volume, body))


def test_a_volume_source_never_changes(core: client.CoreV1Api) -> None:
    core.create_persistent_volume(_pv("v1"))
    causes = _causes(core.patch_persistent_volume, "v1", {"spec": {"hostPath": {"path": "/elsewhere"}}})
    assert causes == [("spec.persistentvolumesource", "Forbidden: spec.persistentvolumesource is forbidden")]
    assert core.patch_persistent_volume("v1", {"spec": {"capacity": {"storage": "20Gi"}}}).spec.capacity == {
        "storage": "20Gi"}


# --- PersistentVolumeClaim -----------------------------------------------------------------------

def test_claims_get_the_newest_default_class(core: client.CoreV1Api, storage: client.StorageV1Api) -> None:
    assert core.create_namespaced_persistent_volume_claim("default", _pvc("before")).spec.storage_class_name is None
    storage.create_storage_class(_sc("b-default", DEFAULT))
    storage.create_storage_class(_sc("a-default", DEFAULT))  # same second: the first name wins
    claim = core.create_namespaced_persistent_volume_claim("default", _pvc("c"))
    assert claim.spec.storage_class_name == "a-default"
    assert (claim.spec.volume_mode, claim.status.phase) == ("Filesystem", "Pending")
    explicit = core.create_namespaced_persistent_volume_claim("default", _pvc("none", storageClassName=""))
    assert explicit.spec.storage_class_name == ""


@pytest.mark.parametrize(("spec", "field", "message"), [
    ({"resources": {}}, "spec.resources[storage]", "Required value"),
    ({"resources": {"requests": {"storage": "0"}}}, "spec.resources[storage]", 'Invalid value: "0": must be greater than zero'),
    ({"accessModes": None}, "spec.accessModes", "Required value"),
    ({"selector": {"matchExpressions": [{"key": "tier", "operator": "Exists", "values": ["x"]}]}},
     "spec.selector.matchExpressions[0].values", "Forbidden: may not be specified when `operator` is 'Exists'"),
])
def test_invalid_claims(core: client.CoreV1Api, spec: dict[str, Any], field: str, message: str) -> None:
    body = _pvc("bad")
    body["spec"] = {k: v for k, v in {**body["spec"], **spec}.items() if v is not None}
    causes = _causes(core.create_namespaced_persistent_volume_claim, "default", body)
    assert any(f == field and m.startswith(message) for f, m in causes), causes


def test_a_claim_spec_is_immutable_but_binding_and_expansion(core: client.CoreV1Api) -> None:
    core.create_namespaced_persistent_volume_claim("default", _pvc("c"))
    assert _causes(core.patch_namespaced_persistent_volume_claim, "c", "default", {"spec": {"accessModes": ["ReadWriteMany"]}}) == [
        ("spec", "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName "
                 "for bound claims")]
    bound = core.patch_namespaced_persistent_volume_claim("c", "default", {"spec": {"volumeName": "v1"}})
    grown = core.patch_namespaced_persistent_volume_claim("c", "default", {"spec": {"resources": {"requests": {"storage": "2Gi"}}}})
    assert bound.spec.volume_name == "v1" and grown.spec.resources.requests == {"storage": "2Gi"}
    assert [f for f, _ in _causes(core.patch_namespaced_persistent_volume_claim, "c", "default",
                                  {"spec": {"volumeName": "v2"}})] == ["spec"]
    status = core.patch_namespaced_persistent_volume_claim_status("c", "default", {"status": {
        "phase": "Bound", "capacity": {"storage": "2048Mi"}, "accessModes": ["ReadWriteOnce"]}})
    assert status.status.capacity == {"storage": "2Gi"} and status.spec.volume_name == "v1"


# --- kubectl -------------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_columns_for_volumes(api: ApiServer, core: client.CoreV1Api, storage: client.StorageV1Api) -> None:
    storage.create_storage_class(_sc("fast", DEFAULT, volumeBindingMode="WaitForFirstConsumer"))
    pv = _pv("v1", modes=("ReadWriteOnce", "ReadOnlyMany"), storageClassName="fast",
             claimRef={"namespace": "default", "name": "c"})
    core.create_persistent_volume(pv)
    core.create_namespaced_persistent_volume_claim("default", _pvc("c"))
    kc = api.kubeconfig_path
    sc_rows = [line.split() for line in kubectl(kc, "get", "sc").stdout.splitlines()]
    assert sc_rows[0] == ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION", "AGE"]
    assert sc_rows[1][:6] == ["fast", "(default)", "example.com/disk", "Delete", "WaitForFirstConsumer", "false"]
    pv_rows = [line.split() for line in kubectl(kc, "get", "pv").stdout.splitlines()]
    assert pv_rows[0] == ["NAME", "CAPACITY", "ACCESS", "MODES", "RECLAIM", "POLICY", "STATUS", "CLAIM", "STORAGECLASS",
                          "VOLUMEATTRIBUTESCLASS", "REASON", "AGE"]
    assert pv_rows[1][:8] == ["v1", "10Gi", "RWO,ROX", "Retain", "Pending", "default/c", "fast", "<unset>"]
    pvc_rows = [line.split() for line in kubectl(kc, "get", "pvc").stdout.splitlines()]
    assert pvc_rows[0] == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES", "STORAGECLASS",
                           "VOLUMEATTRIBUTESCLASS", "AGE"]
    assert pvc_rows[1][:4] == ["c", "Pending", "fast", "<unset>"]


# --- binding -------------------------------------------------------------------------------------

def _with_uid(obj: dict[str, Any], uid: str = "u1", phase: str = "Available") -> dict[str, Any]:
    obj["metadata"].update(namespace="default", uid=uid)
    obj["status"] = {"phase": phase}
    return obj


def test_best_match_picks_the_smallest_fitting_available_volume() -> None:
    claim = _with_uid(_pvc("c", size="5Gi", storageClassName="fast"))
    volumes = [_with_uid(_pv(name, size, storageClassName=cls, **extra), uid=name)
               for name, size, cls, extra in [("big", "100Gi", "fast", {}), ("small", "5Gi", "fast", {}),
                                              ("tiny", "1Gi", "fast", {}), ("other-class", "5Gi", "slow", {}),
                                              ("block", "5Gi", "fast", {"volumeMode": "Block"})]]
    chosen = volumebinding.best_match(claim, volumes)
    assert chosen is not None and chosen["metadata"]["name"] == "small"
    volumes[1]["status"]["phase"] = "Pending"
    chosen = volumebinding.best_match(claim, volumes)
    assert chosen is not None and chosen["metadata"]["name"] == "big"
    rwx = _with_uid(_pvc("c", size="5Gi", modes=("ReadWriteMany",), storageClassName="fast"))
    assert volumebinding.best_match(rwx, volumes) is None
    selective = _with_uid(_pvc("c", storageClassName="fast", selector={"matchLabels": {"tier": "gold"}}))
    volumes[0]["metadata"]["labels"] = {"tier": "gold"}
    assert volumebinding.best_match(selective, volumes)["metadata"]["name"] == "big"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    spec = parse_cluster({"nodes": [{"name": "node-a", "cpu": "8", "memory": "16Gi"}]})
    with LocalCluster(spec, workdir=tmp_path, plugin_factory=None, kubelets=False, claim_controller=False,
                      workloads=False, default_scheduler=False, disruption=False) as running:
        yield running


def _phase(read: Any, *args: Any) -> str:
    return str(read(*args).status.phase)


def test_the_volume_controller_binds_immediate_claims(cluster: LocalCluster) -> None:
    core = client.CoreV1Api(cluster.api_client())
    core.create_persistent_volume(_pv("small", "5Gi"))
    core.create_persistent_volume(_pv("large", "50Gi", persistentVolumeReclaimPolicy="Delete"))
    wait_for(lambda: _phase(core.read_persistent_volume, "small") == "Available", what="small available")
    core.create_namespaced_persistent_volume_claim("default", _pvc("c", size="10Gi"))
    claim = wait_for(lambda: (c := core.read_namespaced_persistent_volume_claim("c", "default")).status.phase == "Bound"
                     and c, what="claim bound")
    assert claim.spec.volume_name == "large" and claim.status.capacity == {"storage": "50Gi"}
    assert claim.metadata.annotations[volumebinding.BIND_COMPLETED] == "yes"
    pv = wait_for(lambda: (v := core.read_persistent_volume("large")).status.phase == "Bound" and v, what="pv bound")
    assert (pv.spec.claim_ref.name, pv.spec.claim_ref.uid) == ("c", claim.metadata.uid)
    core.delete_namespaced_persistent_volume_claim("c", "default")

    def deleted() -> bool:
        try:
            core.read_persistent_volume("large")
        except ApiException as exc:
            return exc.status == 404
        return False
    wait_for(deleted, what="the Delete-policy volume removed with its claim")


def test_wait_for_first_consumer_claims_bind_what_a_scheduler_prebinds(cluster: LocalCluster) -> None:
    api = cluster.api_client()
    core, storage = client.CoreV1Api(api), client.StorageV1Api(api)
    storage.create_storage_class(_sc("local", volumeBindingMode="WaitForFirstConsumer"))
    core.create_persistent_volume(_pv("v1", storageClassName="local"))
    wait_for(lambda: _phase(core.read_persistent_volume, "v1") == "Available", what="v1 available")
    claim = core.create_namespaced_persistent_volume_claim("default", _pvc("data", storageClassName="local"))

    def waiting_event() -> bool:
        events = core.list_namespaced_event("default").items
        return any(e.reason == "WaitForFirstConsumer" and e.involved_object.name == "data" for e in events)
    wait_for(waiting_event, what="the WaitForFirstConsumer event")
    assert core.read_namespaced_persistent_volume_claim("data", "default").spec.volume_name is None
    # what the scheduler's volume binder does in PreBind: point the volume at the claim
    core.patch_persistent_volume("v1", {"metadata": {"annotations": {volumebinding.BOUND_BY_CONTROLLER: "yes"}},
                                        "spec": {"claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                                                              "namespace": "default", "name": "data",
                                                              "uid": claim.metadata.uid}}})
    bound = wait_for(lambda: (c := core.read_namespaced_persistent_volume_claim("data", "default")).status.phase == "Bound"
                     and c, what="claim bound by the controller")
    assert bound.spec.volume_name == "v1" and bound.status.access_modes == ["ReadWriteOnce"]
    core.delete_namespaced_persistent_volume_claim("data", "default")
    wait_for(lambda: _phase(core.read_persistent_volume, "v1") == "Released", what="Retain volume released")


def test_a_waiting_claim_binds_when_a_volume_appears(cluster: LocalCluster) -> None:
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespaced_persistent_volume_claim("default", _pvc("early", size="2Gi"))

    def failed_binding() -> bool:
        return any(e.reason == "FailedBinding" and e.involved_object.name == "early"
                   for e in core.list_namespaced_event("default").items)
    wait_for(failed_binding, what="the FailedBinding event")
    core.create_persistent_volume(_pv("late", "3Gi"))
    claim = wait_for(lambda: (c := core.read_namespaced_persistent_volume_claim("early", "default")).status.phase == "Bound"
                     and c, what="claim bound once the volume exists")
    assert claim.spec.volume_name == "late"
