"""Extended resources backed by DRA (KEP-5004): the class mapping, the per-node split between device
plugin and DRA, the special claim and the pod status, and the emulated kubelet preparing that claim.

Request and mapping cases are kube-scheduler's Test_createRequestsAndMappings_requests /
_mappings (dynamicresources/extendeddynamicresources_test.go): upstream's st.MakePod names regular
containers con<n>, init containers init-con<n> and sidecars sidecar-con<n>, n counting the
containers of that list. The mapping cases follow extended/deviceclassresolver_test.go and the
tie rule of DeviceClassSpec.extendedResourceName; the allocatable cases noderesources/fit.go and
filterExtendedResources.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driver.scheduler.plugins import extendedresources as er
from driver.scheduler.plugins.noderesources import PodSpecError

GPU = "example.com/gpu"
GPU1 = GPU + "1"
INIT = GPU + "init"
IMPLICIT_INIT = "deviceclass.resource.kubernetes.io/classInit"
IMPLICIT = er.IMPLICIT_PREFIX


def container(name: str, requests: dict[str, str] | None = None, limits: dict[str, str] | None = None,
              restart: str | None = None) -> dict[str, Any]:
    res: dict[str, Any] = {}
    if requests is not None:
        res["requests"] = requests
    if limits is not None:
        res["limits"] = limits
    out: dict[str, Any] = {"name": name, "image": "busybox", "resources": res}
    if restart:
        out["restartPolicy"] = restart
    return out


def pod(containers: list[dict[str, Any]], inits: list[dict[str, Any]] = (), name: str = "pod",
        uid: str = "pod-uid") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": list(containers)}
    if inits:
        spec["initContainers"] = list(inits)
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid}, "spec": spec}


def requests_of(r: er.ExtendedRequests) -> list[tuple[str, str, int]]:
    return [(q.name, q.device_class, q.count) for q in r.requests]


def mappings_of(r: er.ExtendedRequests) -> list[tuple[str, str, str]]:
    """Sorted by request name, then container, as upstream's mapping test compares them."""
    return sorted(((m.container, m.resource, m.request) for m in r.mappings), key=lambda m: (m[2], m[0]))


# --- names -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, extended, dra", [
    ("nvidia.com/gpu", True, True),
    ("nvidia.com/mig-1g.10gb.me", True, True),
    ("example.com/gpu_a", True, True),
    ("cpu", False, False),
    ("hugepages-2Mi", False, False),
    ("kubernetes.io/foo", False, False),
    ("foo.kubernetes.io/bar", False, False),
    ("requests.example.com/gpu", False, False),
    ("Example.com/gpu", False, False),
    ("example.com/", False, False),
    ("example.com/-gpu", False, False),
    ("deviceclass.resource.kubernetes.io/gpu.nvidia.com", False, True),
])
def test_extended_resource_names(name: str, extended: bool, dra: bool) -> None:
    assert er.is_extended_name(name) is extended
    assert er.is_dra_extended_name(name) is dra


# --- mapping -----------------------------------------------------------------------------------

def device_class(name: str, extended: str | None = None, created: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if created:
        meta["creationTimestamp"] = created
    spec: dict[str, Any] = {"selectors": []}
    if extended is not None:
        spec["extendedResourceName"] = extended
    return {"metadata": meta, "spec": spec}


def classes(*items: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["metadata"]["name"]: c for c in items}


def test_every_class_has_its_implicit_name_and_explicit_names_map() -> None:
    got = er.mapping(classes(device_class("class1", "example.com/gpu1"), device_class("class2", "example.com/gpu2"),
                             device_class("class3")))
    assert got == {"example.com/gpu1": "class1", "example.com/gpu2": "class2", IMPLICIT + "class1": "class1",
                   IMPLICIT + "class2": "class2", IMPLICIT + "class3": "class3"}


def test_no_classes_no_mapping() -> None:
    assert er.mapping({}) == {}


def test_the_newest_class_wins_a_shared_name() -> None:
    got = er.mapping(classes(device_class("a-old", GPU, "2026-01-01T00:00:00Z"),
                             device_class("z-new", GPU, "2026-01-02T00:00:00Z")))
    assert got[GPU] == "z-new"
    assert got[IMPLICIT + "a-old"] == "a-old"  # the loser keeps its implicit name


def test_classes_created_at_the_same_time_go_to_the_first_name() -> None:
    got = er.mapping(classes(device_class("zeta", GPU, "2026-01-01T00:00:00Z"),
                             device_class("alpha", GPU, "2026-01-01T00:00:00Z")))
    assert got[GPU] == "alpha"


def test_a_class_without_creation_time_is_the_oldest() -> None:
    got = er.mapping(classes(device_class("a", GPU), device_class("b", GPU, "2020-01-01T00:00:00Z")))
    assert got[GPU] == "b"
    assert er.mapping(classes(device_class("b", GPU), device_class("a", GPU)))[GPU] == "a"


@pytest.mark.parametrize("cls, field", [
    (device_class("c", "gpu"), "deviceclass c spec.extendedResourceName"),
    (device_class("c", IMPLICIT + "other"), "deviceclass c spec.extendedResourceName"),
    (device_class("c", GPU, "yesterday"), "deviceclass c metadata.creationTimestamp"),
])
def test_bad_class_fields_are_named(cls: dict[str, Any], field: str) -> None:
    with pytest.raises(er.DeviceClassError, match=field):
        er.mapping(classes(cls))


def test_the_shipped_classes_serve_the_device_plugin_names() -> None:
    from driver.devices.classes import device_classes

    got = er.mapping({c["metadata"]["name"]: c for c in device_classes()})
    assert got["nvidia.com/gpu"] == "unit.gpu.nvidia.com"
    assert got["nvidia.com/mig-1g.10gb"] == "mig-1g.10gb.nvidia.com"
    assert got["nvidia.com/mig-1g.10gb.me"] == "mig-1g.10gb.me.nvidia.com"
    assert got[IMPLICIT + "gpu.nvidia.com"] == "gpu.nvidia.com"


# --- requests and mappings (upstream's tables) -------------------------------------------------

POD1 = pod([container("con0", {GPU: "1", GPU1: "2"})])
POD2 = pod([container("con0", {GPU: "1"}), container("con1", {GPU1: "2"})])
POD_INIT = pod([container("con0", {GPU: "1"})], [container("init-con0", {INIT: "2"})])
POD_INIT2 = pod([container("con0", {GPU: "1"})], [container("init-con0", {INIT: "1"}), container("init-con1", {INIT: "2"})])
POD_INIT3 = pod([container("con0", {GPU: "1"})],
                [container("init-con0", {INIT: "1"}), container("sidecar-con1", {INIT: "1"}, restart="Always"),
                 container("init-con2", {INIT: "2"})])
POD1_INIT_IMPLICIT = pod([], [container("init-con0", {INIT: "1", IMPLICIT_INIT: "2"})])
POD_INIT_IMPLICIT = pod([container("con0", {GPU: "1"})],
                        [container("init-con0", {INIT: "1"}), container("init-con1", {IMPLICIT_INIT: "2"})])
MAP = {GPU: "class"}
MAP2 = {GPU: "class", GPU1: "class1"}
MAP_INIT = {GPU: "class", INIT: "classInit", IMPLICIT_INIT: "classInit"}


@pytest.mark.parametrize("the_pod, by_resource, want", [
    pytest.param(POD1, {}, [], id="nil"),
    pytest.param(POD1, MAP, [("container-0-request-0", "class", 1)], id="one resource match"),
    pytest.param(POD1, MAP2, [("container-0-request-0", "class", 1), ("container-0-request-1", "class1", 2)],
                 id="two resources match"),
    pytest.param(POD2, MAP2, [("container-0-request-0", "class", 1), ("container-1-request-0", "class1", 2)],
                 id="two containers match"),
    pytest.param(POD_INIT, MAP_INIT, [("container-0-request-0", "classInit", 2), ("container-1-request-0", "class", 1)],
                 id="one init container, one regular container"),
    pytest.param(POD_INIT2, MAP_INIT, [("container-1-request-0", "classInit", 2), ("container-2-request-0", "class", 1)],
                 id="two init containers, one regular container"),
    pytest.param(POD_INIT3, MAP_INIT, [("container-1-request-0", "classInit", 1), ("container-2-request-0", "classInit", 2),
                                       ("container-3-request-0", "class", 1)],
                 id="three init containers, one sidecar, one regular container"),
])
def test_device_requests(the_pod: dict[str, Any], by_resource: dict[str, str], want: list[tuple[str, str, int]]) -> None:
    got = er.dra_requests(the_pod, by_resource, {})
    assert requests_of(got) == want
    assert bool(got) is bool(want)


def test_a_resource_no_class_maps_is_missing_and_gets_no_request() -> None:
    got = er.dra_requests(POD1, MAP, {})
    assert requests_of(got) == [("container-0-request-0", "class", 1)]
    assert got.missing == (GPU1,)
    assert dict(got.dra) == {GPU: "class"}


@pytest.mark.parametrize("the_pod, by_resource, want", [
    pytest.param(POD1, MAP2, [("con0", GPU, "container-0-request-0"), ("con0", GPU1, "container-0-request-1")],
                 id="one container, two requests"),
    pytest.param(POD1_INIT_IMPLICIT, MAP_INIT, [("init-con0", IMPLICIT_INIT, "container-0-request-0"),
                                                ("init-con0", INIT, "container-0-request-1")],
                 id="one container, one explicit and one implicit request"),
    pytest.param(POD2, MAP2, [("con0", GPU, "container-0-request-0"), ("con1", GPU1, "container-1-request-0")],
                 id="two containers, two requests"),
    pytest.param(POD_INIT, MAP_INIT, [("init-con0", INIT, "container-0-request-0"), ("con0", GPU, "container-1-request-0")],
                 id="one init container, one regular container, one request"),
    pytest.param(POD_INIT2, MAP_INIT, [("init-con0", INIT, "container-1-request-0"), ("init-con1", INIT, "container-1-request-0"),
                                       ("con0", GPU, "container-2-request-0")],
                 id="three containers (two are init container), two requests"),
    pytest.param(POD_INIT_IMPLICIT, MAP_INIT, [("init-con0", INIT, "container-0-request-0"),
                                               ("init-con1", IMPLICIT_INIT, "container-1-request-0"),
                                               ("con0", GPU, "container-2-request-0")],
                 id="three containers (two are init container), both explicit and implicit resources"),
    pytest.param(POD_INIT3, MAP_INIT, [("init-con0", INIT, "container-1-request-0"),
                                       ("sidecar-con1", INIT, "container-1-request-0"),
                                       ("init-con2", INIT, "container-2-request-0"), ("con0", GPU, "container-3-request-0")],
                 id="four containers (two are init container, one sidecar), three requests"),
])
def test_request_mappings(the_pod: dict[str, Any], by_resource: dict[str, str], want: list[tuple[str, str, str]]) -> None:
    got = er.dra_requests(the_pod, by_resource, {})
    assert mappings_of(got) == sorted(want, key=lambda m: (m[2], m[0]))
    assert er.request_mappings(got) == [{"containerName": m.container, "resourceName": m.resource,
                                         "requestName": m.request} for m in got.mappings]


def test_the_request_index_counts_every_request_name_of_the_container() -> None:
    the_pod = pod([container("main", {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "2"})])
    got = er.dra_requests(the_pod, {"nvidia.com/gpu": "unit.gpu.nvidia.com"}, {})
    assert requests_of(got) == [("container-0-request-2", "unit.gpu.nvidia.com", 2)]


def test_a_limit_without_a_request_is_the_request() -> None:
    """The API defaults requests from limits; the index counts the defaulted names too."""
    the_pod = pod([container("main", {"cpu": "1"}, {"nvidia.com/gpu": "1", "memory": "1Gi"})])
    got = er.dra_requests(the_pod, {"nvidia.com/gpu": "c"}, {})
    assert requests_of(got) == [("container-0-request-2", "c", 1)]


def test_an_init_container_reuses_the_devices_of_a_later_larger_container() -> None:
    the_pod = pod([container("main", {GPU: "2"})], [container("setup", {GPU: "1"})])
    got = er.dra_requests(the_pod, MAP, {})
    assert requests_of(got) == [("container-1-request-0", "class", 2)]
    assert mappings_of(got) == [("main", GPU, "container-1-request-0"), ("setup", GPU, "container-1-request-0")]
    assert er.pod_extended(the_pod).totals == {GPU: 2}


def test_an_init_container_asks_only_for_what_later_containers_do_not_cover() -> None:
    the_pod = pod([container("main", {GPU: "1"})], [container("setup", {GPU: "3"})])
    got = er.dra_requests(the_pod, MAP, {})
    assert requests_of(got) == [("container-0-request-0", "class", 2), ("container-1-request-0", "class", 1)]
    assert mappings_of(got) == [("setup", GPU, "container-0-request-0"), ("main", GPU, "container-1-request-0"),
                                ("setup", GPU, "container-1-request-0")]
    assert er.pod_extended(the_pod).totals == {GPU: 3}


def test_requests_are_sorted_by_name_as_strings() -> None:
    the_pod = pod([container(f"c{i}", {GPU: "1"}) for i in range(11)])
    names = [q.name for q in er.dra_requests(the_pod, MAP, {}).requests]
    assert names[:4] == ["container-0-request-0", "container-1-request-0", "container-10-request-0", "container-2-request-0"]


def test_pod_totals_follow_pod_requests() -> None:
    """max(Σ regular + Σ sidecars, each init container + the sidecars before it)."""
    the_pod = pod([container("a", {GPU: "1"}), container("b", {GPU: "1"})],
                  [container("side", {GPU: "1"}, restart="Always"), container("big", {GPU: "4"})])
    assert er.pod_extended(the_pod).totals == {GPU: 5}
    small = pod([container("a", {GPU: "2"})], [container("i", {GPU: "1"})])
    assert er.pod_extended(small).totals == {GPU: 2}


# --- per node: device plugin first, DRA for what the node does not list ------------------------

def test_a_node_that_lists_the_resource_serves_it_by_device_plugin() -> None:
    the_pod = pod([container("main", {"nvidia.com/gpu": "2"})])
    by_resource = {"nvidia.com/gpu": "unit.gpu.nvidia.com"}
    plugin_node = er.dra_requests(the_pod, by_resource, {"cpu": "8", "nvidia.com/gpu": "8"})
    assert not plugin_node and plugin_node.requests == () and dict(plugin_node.dra) == {}
    assert dict(plugin_node.by_allocatable) == {"nvidia.com/gpu": 2}
    dra_node = er.dra_requests(the_pod, by_resource, {"cpu": "8"})
    assert dra_node and requests_of(dra_node) == [("container-0-request-0", "unit.gpu.nvidia.com", 2)]
    assert dict(dra_node.by_allocatable) == {}


def test_a_listed_zero_is_still_the_device_plugins() -> None:
    """Upstream's fit checks any name the node lists (Insufficient when 0), so DRA does not take it."""
    got = er.dra_requests(pod([container("main", {GPU: "1"})]), MAP, {GPU: "0"})
    assert not got and dict(got.by_allocatable) == {GPU: 1}


def test_one_pod_split_between_device_plugin_and_dra() -> None:
    the_pod = pod([container("main", {GPU: "1", GPU1: "2"})])
    got = er.dra_requests(the_pod, MAP2, frozenset({GPU}))
    assert requests_of(got) == [("container-0-request-1", "class1", 2)]
    assert dict(got.by_allocatable) == {GPU: 1} and dict(got.dra) == {GPU1: "class1"}


def test_standard_resources_are_left_out() -> None:
    the_pod = pod([container("main", {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "1Gi", "hugepages-2Mi": "2Mi"})])
    assert er.pod_extended(the_pod) is er.EMPTY
    assert er.dra_requests(the_pod, MAP, {}) is er.EMPTY_REQUESTS


def test_nodes_that_serve_a_pod_alike_share_one_result() -> None:
    ext = er.pod_extended(pod([container("main", {GPU: "1"})]))
    a = er.dra_requests(ext, MAP, {"cpu": "4"})
    b = er.dra_requests(ext, MAP, {"cpu": "64", "memory": "1Ti"})
    assert a is b
    assert er.dra_requests(ext, MAP, {GPU: "1"}) is not a


def test_unknown_resources_are_those_no_class_and_no_node_provide() -> None:
    the_pod = pod([container("main", {GPU: "1", "example.com/fpga": "1", "example.com/nic": "1"})])
    nodes = [{"cpu": "4"}, {"example.com/nic": "2"}]
    assert er.unknown(the_pod, MAP, nodes) == ["example.com/fpga"]
    assert er.unknown(the_pod, MAP, nodes + [{"example.com/fpga": "1"}]) == []


def test_unknown_looks_at_no_node_when_every_resource_is_mapped() -> None:
    def nodes() -> Iterator[dict[str, str]]:
        raise AssertionError("nodes read")
        yield {}

    assert er.unknown(pod([container("main", {GPU: "1"})]), MAP, nodes()) == []
    assert er.unknown(pod([container("main", {"cpu": "1"})]), {}, nodes()) == []


def test_allocatable_names_fall_back_to_capacity() -> None:
    assert er.allocatable_names({"status": {"allocatable": {"cpu": "1", GPU: "2"}}}) == {"cpu", GPU}
    assert er.allocatable_names({"status": {"capacity": {GPU: "2"}}}) == {GPU}
    assert er.allocatable_names({}) == frozenset()


@pytest.mark.parametrize("the_container, field", [
    (container("main", {GPU: "500m"}), r"spec.containers\[0\].resources.requests\[example.com/gpu\]"),
    (container("main", {GPU: "lots"}), r"spec.containers\[0\].resources.requests\[example.com/gpu\]"),
    (container("main", limits={GPU: "1.5"}), r"spec.containers\[0\].resources.limits\[example.com/gpu\]"),
    (container("main", {"cpu": "1"}, {GPU: "-1"}), r"spec.containers\[0\].resources.limits\[example.com/gpu\]"),
])
def test_bad_quantities_name_the_field(the_container: dict[str, Any], field: str) -> None:
    with pytest.raises(er.ExtendedResourceError, match=field) as info:
        er.pod_extended(pod([the_container]))
    assert isinstance(info.value, PodSpecError)  # the cycle's PreFilter rejection catches it


# --- the special claim and the pod status ------------------------------------------------------

def test_the_claim_has_upstreams_shape() -> None:
    the_pod = pod([container("main", {"nvidia.com/gpu": "2"})], name="train", uid="uid-1")
    reqs = er.dra_requests(the_pod, {"nvidia.com/gpu": "unit.gpu.nvidia.com"}, {})
    assert er.claim_for(the_pod, reqs) == {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {
            "name": "<extended-resources>",
            "generateName": "train-extended-resources-",
            "namespace": "ns",
            "annotations": {"resource.kubernetes.io/extended-resource-claim": "true"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "train", "uid": "uid-1", "controller": True}],
        },
        "spec": {"devices": {"requests": [{"name": "container-0-request-0", "exactly": {
            "deviceClassName": "unit.gpu.nvidia.com", "allocationMode": "ExactCount", "count": 2}}]}},
    }
    body = er.claim_for(the_pod, reqs, name=None, uid="tmp")
    assert "name" not in body["metadata"] and body["metadata"]["uid"] == "tmp"


def test_the_claim_passes_the_api_servers_validation() -> None:
    from driver.local.validation import validate_dra

    valid_names = {GPU: "gpu.example.com", INIT: "init.example.com"}  # upstream's classInit is no DNS name
    reqs = er.dra_requests(POD_INIT3, valid_names, {})
    assert len(reqs.requests) == 3
    assert validate_dra("ResourceClaim", er.claim_for(POD_INIT3, reqs), None) == []


def test_no_claim_without_dra_requests_or_pod_identity() -> None:
    with pytest.raises(ValueError, match="none of the pod's extended resources"):
        er.claim_for(POD1, er.dra_requests(POD1, MAP, {GPU: "1"}))
    nameless = {"metadata": {"name": "p", "namespace": "ns"}, "spec": POD1["spec"]}
    with pytest.raises(er.ExtendedResourceError, match="metadata.uid"):
        er.claim_for(nameless, er.dra_requests(nameless, MAP, {}))


def test_the_pod_status_names_the_claim_and_the_mappings() -> None:
    reqs = er.dra_requests(POD2, MAP2, {})
    assert er.pod_status("pod-extended-resources-x7k2p", reqs) == {"extendedResourceClaimStatus": {
        "requestMappings": [
            {"containerName": "con0", "resourceName": GPU, "requestName": "container-0-request-0"},
            {"containerName": "con1", "resourceName": GPU1, "requestName": "container-1-request-0"},
        ],
        "resourceClaimName": "pod-extended-resources-x7k2p",
    }}
    with pytest.raises(ValueError, match="claim_name"):
        er.pod_status("", reqs)
    with pytest.raises(ValueError, match="no request mappings"):
        er.pod_status("c", er.EMPTY_REQUESTS)


def test_find_claim_wants_the_annotation_and_the_pod_as_controller() -> None:
    the_pod = pod([container("main", {GPU: "1"})], name="p", uid="u")

    def claim(name: str, annotated: bool = True, uid: str = "u", controller: bool = True) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "ownerReferences": [{"kind": "Pod", "name": "p", "uid": uid,
                                                                   "controller": controller}]}
        if annotated:
            meta["annotations"] = {er.CLAIM_ANNOTATION: "true"}
        return {"metadata": meta}

    others = [claim("plain", annotated=False), claim("old-pod", uid="other"), claim("not-controller", controller=False)]
    assert er.find_claim(the_pod, others) is None
    assert er.find_claim(the_pod, others + [claim("mine")])["metadata"]["name"] == "mine"
    assert er.is_extended_claim(claim("x")) and not er.is_extended_claim(claim("y", annotated=False))


# --- the emulated kubelet prepares the claim ---------------------------------------------------

class RecordingPreparer:
    def __init__(self) -> None:
        self.calls: list[list[Any]] = []

    def prepare(self, claims: list[Any]) -> dict[str, str]:
        self.calls.append(list(claims))
        return {c.uid: "" for c in claims}

    def unprepare(self, claims: list[Any]) -> dict[str, str]:
        return {c.uid: "" for c in claims}


@pytest.fixture
def kubelet(tmp_path: Path) -> Iterator[Any]:
    from kubernetes import config

    from driver.local.clusterfile import parse_cluster
    from driver.local.nodes import Kubelet
    from driver.local.server import ApiServer

    server = ApiServer()
    server.start()
    try:
        server.write_kubeconfig(tmp_path / "kubeconfig")
        api = config.new_client_from_config(str(tmp_path / "kubeconfig"))
        spec = parse_cluster({"nodes": [{"name": "node-a", "cpu": "8", "memory": "16Gi"}]}).nodes[0]
        k = Kubelet(spec, 0, api, preparer=RecordingPreparer())
        k.register()
        from kubernetes import client
        client.CoreV1Api(api).create_namespace({"metadata": {"name": "ns"}})
        yield k
        api.close()
    finally:
        server.stop()


def _raw(resp: Any) -> dict[str, Any]:
    import json
    return json.loads(resp.data)


def _allocate(k: Any, claim: dict[str, Any], the_pod: dict[str, Any], requests: list[str]) -> None:
    meta = claim["metadata"]
    claim = dict(claim, status={
        "allocation": {"devices": {"results": [{"request": r, "driver": "gpu.nvidia.com", "pool": "node-a",
                                                "device": f"gpu-{i}"} for i, r in enumerate(requests)]}},
        "reservedFor": [{"resource": "pods", "name": the_pod["metadata"]["name"], "uid": the_pod["metadata"]["uid"]}]})
    k.resource.replace_namespaced_resource_claim_status(meta["name"], meta["namespace"], claim, _preload_content=False)


def test_the_kubelet_prepares_the_extended_resource_claim_with_the_pods_other_claims(kubelet: Any) -> None:
    core = kubelet.core
    template_claim = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
                      "metadata": {"name": "shared", "namespace": "ns"},
                      "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com"}}]}}}
    body = {"metadata": {"name": "train", "namespace": "ns"},
            "spec": {"nodeName": "node-a", "resourceClaims": [{"name": "shared", "resourceClaimName": "shared"}],
                     "containers": [container("main", limits={"nvidia.com/gpu": "2"})]}}
    created = _raw(core.create_namespaced_pod("ns", body, _preload_content=False))
    name, uid = created["metadata"]["name"], created["metadata"]["uid"]
    reqs = er.dra_requests(created, {"nvidia.com/gpu": "unit.gpu.nvidia.com"}, {})

    # the scheduler records the claim's name before the claim is allocated: the pod waits
    core.patch_namespaced_pod_status(name, "ns", {"status": er.pod_status("train-extended-resources-abcde", reqs)},
                                     _preload_content=False)
    shared = _raw(kubelet.resource.create_namespaced_resource_claim("ns", template_claim, _preload_content=False))
    _allocate(kubelet, shared, created, ["gpu"])
    kubelet.sync_pod("ns", name, uid)
    waiting = _raw(core.read_namespaced_pod(name, "ns", _preload_content=False))["status"]["containerStatuses"][0]
    assert waiting["state"]["waiting"]["message"] == 'resourceclaim "train-extended-resources-abcde" not found'
    assert kubelet.preparer.calls == []

    # the claim as the scheduler creates it (generateName), allocated and reserved for the pod
    extended = _raw(kubelet.resource.create_namespaced_resource_claim(
        "ns", er.claim_for(created, reqs, name=None), _preload_content=False))
    assert extended["metadata"]["name"].startswith("train-extended-resources-")
    _allocate(kubelet, extended, created, [q.name for q in reqs.requests])
    core.patch_namespaced_pod_status(name, "ns", {"status": er.pod_status(extended["metadata"]["name"], reqs)},
                                     _preload_content=False)
    kubelet.sync_pod("ns", name, uid)

    (call,) = kubelet.preparer.calls
    assert [(c.name, c.uid) for c in call] == [("shared", shared["metadata"]["uid"]),
                                               (extended["metadata"]["name"], extended["metadata"]["uid"])]
    assert _raw(core.read_namespaced_pod(name, "ns", _preload_content=False))["status"]["phase"] == "Running"
    assert [c.name for c in kubelet.prepared[uid]] == ["shared", extended["metadata"]["name"]]
