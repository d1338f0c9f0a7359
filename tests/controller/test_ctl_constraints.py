"""Pod constraints end to end: the controller against the in-memory API server over HTTP.

What a user sees with kubectl: required anti-affinity puts replicas on distinct nodes, pod affinity
on the same node, maxSkew 1 spreads evenly, a gated pod stays unbound with no claim allocated until
its gates are removed, and a higher-priority pod preempts a lower-priority one on a full node.
"""

from __future__ import annotations

from collections import Counter

from ctl_helpers import Api, claim, claim_spec, controller, gpu_devices, node, pod, resource_slice
from wait_helpers import wait_for

HOST = "kubernetes.io/hostname"


def _nodes(api: Api, count: int, gpus: int = 4, zone=None) -> None:
    for i in range(count):
        name = f"n{i}"
        labels = {HOST: name}
        if zone:
            labels["topology.kubernetes.io/zone"] = zone(i)
        api.create(node(name, labels=labels))
        api.create(resource_slice(name, gpu_devices(name, gpus)))


def _all_device_classes(api: Api) -> None:
    """Every class the driver ships (the extended-resource ones too), beside the fixture's."""
    from driver.devices.classes import device_classes
    have = {c["metadata"]["name"] for c in api.kube.call(api.kube.resource.list_device_class)["items"]}
    for cls in device_classes():
        if cls["metadata"]["name"] not in have:
            api.create(cls)


def _gpu_pod(api: Api, name: str, labels: dict, **spec) -> None:
    api.create(claim(f"{name}-gpu", claim_spec()))
    obj = pod(name, {"gpu": f"{name}-gpu"}, **spec)
    obj["metadata"]["labels"] = labels
    api.create(obj)


def _bound(api: Api, names: list[str]) -> dict[str, str]:
    def all_bound():
        got = {n: api.pod(n)["spec"].get("nodeName") for n in names}
        return got if all(got.values()) else None
    return wait_for(all_bound, 30, f"pods {names} bound")


def _term(app: str) -> dict:
    return {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": HOST}


def test_required_anti_affinity_puts_replicas_on_distinct_nodes(server, api: Api) -> None:
    _nodes(api, 3)
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [_term("web")]}}
    names = [f"web-{i}" for i in range(3)]
    for n in names:
        _gpu_pod(api, n, {"app": "web"}, affinity=anti)
    with controller(server, strategy="binpack"):  # binpack alone would stack all three on one node
        placed = _bound(api, names)
        assert len(set(placed.values())) == 3
        _gpu_pod(api, "web-3", {"app": "web"}, affinity=anti)
        msg = wait_for(lambda: next((c.get("message") for c in (api.pod("web-3").get("status") or {}).get("conditions") or []
                                     if c.get("type") == "PodScheduled" and c.get("status") == "False"), None),
                       30, "web-3 reported unschedulable")
    assert "3 node(s) didn't match pod anti-affinity rules" in msg
    assert not api.pod("web-3")["spec"].get("nodeName")
    assert not (api.claim("web-3-gpu").get("status") or {}).get("allocation")


def test_pod_affinity_lands_on_the_same_node(server, api: Api) -> None:
    _nodes(api, 3)
    _gpu_pod(api, "db", {"app": "db"})
    with controller(server, strategy="spread"):  # spread alone would pick another node
        db = _bound(api, ["db"])["db"]
        aff = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [_term("db")]}}
        for i in range(2):
            _gpu_pod(api, f"cache-{i}", {"app": "cache"}, affinity=aff)
        placed = _bound(api, ["cache-0", "cache-1"])
    assert set(placed.values()) == {db}


def test_topology_spread_max_skew_1_over_three_nodes(server, api: Api) -> None:
    _nodes(api, 3)
    spread = [{"maxSkew": 1, "topologyKey": HOST, "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "train"}}}]
    names = [f"train-{i}" for i in range(6)]
    with controller(server, strategy="binpack"):
        for n in names:  # one at a time: each decision sees the previous ones
            _gpu_pod(api, n, {"app": "train"}, topologySpreadConstraints=spread)
            _bound(api, [n])
        placed = _bound(api, names)
    assert sorted(Counter(placed.values()).values()) == [2, 2, 2]


def test_gated_pod_stays_unbound_with_no_claim_allocated(server, api: Api) -> None:
    _nodes(api, 1)
    _gpu_pod(api, "gated", {}, schedulingGates=[{"name": "example.com/quota"}])
    _gpu_pod(api, "free", {})
    with controller(server) as ctl:
        _bound(api, ["free"])
        assert ctl.wait_idle(10)
        assert not api.pod("gated")["spec"].get("nodeName")
        assert not (api.claim("gated-gpu").get("status") or {}).get("allocation")
        body = api.pod("gated")
        body["spec"]["schedulingGates"] = []
        api.kube.call(api.kube.core.replace_namespaced_pod, "gated", "default", body)
        _bound(api, ["gated"])
    assert (api.claim("gated-gpu").get("status") or {}).get("allocation")


def test_extended_resource_pod_gets_an_allocated_claim_and_its_status(server, api: Api) -> None:
    _all_device_classes(api)
    _nodes(api, 1, gpus=2)
    obj = pod("seed-step3")
    obj["spec"]["containers"][0]["resources"]["limits"] = {"nvidia.com/gpu": "1"}
    api.create(obj)
    with controller(server):
        _bound(api, ["seed-step3"])
        status = wait_for(lambda: (api.pod("seed-step3").get("status") or {}).get("extendedResourceClaimStatus"),
                          20, "extendedResourceClaimStatus written")
    assert status["requestMappings"] == [{"containerName": "c0", "resourceName": "nvidia.com/gpu",
                                          "requestName": "container-0-request-2"}]  # cpu, memory count (upstream)
    claim_obj = api.claim(status["resourceClaimName"])
    assert claim_obj["metadata"]["annotations"]["resource.kubernetes.io/extended-resource-claim"] == "true"
    assert claim_obj["metadata"]["ownerReferences"][0]["uid"] == api.pod("seed-step3")["metadata"]["uid"]
    (result,) = claim_obj["status"]["allocation"]["devices"]["results"]
    assert result["pool"] == "n0" and result["request"] == "container-0-request-2"
    assert [r["name"] for r in claim_obj["status"]["reservedFor"]] == ["seed-step3"]


def test_unknown_extended_resource_is_unschedulable_naming_it(server, api: Api) -> None:
    _nodes(api, 2)
    obj = pod("wants-foo")
    obj["spec"]["containers"][0]["resources"]["limits"] = {"example.com/foo": "1"}
    api.create(obj)
    with controller(server):
        msg = wait_for(lambda: next((c.get("message") for c in (api.pod("wants-foo").get("status") or {}).get("conditions") or []
                                     if c.get("type") == "PodScheduled" and c.get("status") == "False"), None),
                       20, "reported unschedulable")
    assert msg.startswith("0/2 nodes are available: 2 Insufficient example.com/foo.")


def _priority_class(api: Api, name: str, value: int) -> None:
    from kubernetes import client
    body = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name}, "value": value}
    api.kube.call(client.SchedulingV1Api(api.kube.api_client).create_priority_class, body)


def test_high_priority_gpu_pod_preempts_a_low_priority_one_on_a_full_node(server, api: Api) -> None:
    _priority_class(api, "batch-low", 10)
    _priority_class(api, "prod-high", 1000)
    _nodes(api, 1, gpus=2)
    for n in ("low-0", "low-1"):
        _gpu_pod(api, n, {"app": "batch"}, priorityClassName="batch-low")
    with controller(server) as ctl:
        _bound(api, ["low-0", "low-1"])
        held = {api.claim(f"{n}-gpu")["status"]["allocation"]["devices"]["results"][0]["device"]: n
                for n in ("low-0", "low-1")}
        _gpu_pod(api, "urgent", {"app": "prod"}, priorityClassName="prod-high")
        assert api.pod("urgent")["spec"]["priority"] == 1000  # set by the priority admission
        nominated = wait_for(lambda: (api.pod("urgent").get("status") or {}).get("nominatedNodeName"),
                             30, "urgent nominated")
        assert nominated == "n0"

        def evicted():
            for n in ("low-0", "low-1"):
                try:
                    p = api.pod(n)
                except Exception:  # noqa: BLE001 - deleted: that is the victim
                    return n
                if p["metadata"].get("deletionTimestamp"):
                    return n
            return None
        victim = wait_for(evicted, 30, "one low-priority pod evicted")
        conds = {c["type"]: c for c in (api.pod(victim).get("status") or {}).get("conditions") or []}
        assert conds["DisruptionTarget"]["reason"] == "PreemptionByScheduler"
        api.delete_pod(victim)  # what the kubelet does once the victim's containers stopped
        events = [e for e in api.events() if e.get("reason") == "Preempted"]
        assert events and events[0]["involvedObject"]["name"] == victim
        assert _bound(api, ["urgent"])["urgent"] == "n0"
        device = api.claim("urgent-gpu")["status"]["allocation"]["devices"]["results"][0]["device"]
        assert held[device] == victim  # the GPU the victim held
        assert ctl.wait_idle(10)
    survivor = ({"low-0", "low-1"} - {victim}).pop()
    assert api.pod(survivor)["spec"].get("nodeName") == "n0" and not api.pod(survivor)["metadata"].get("deletionTimestamp")


def test_a_failed_bind_leaves_no_extended_claim_behind(server, api: Api) -> None:
    _all_device_classes(api)
    _nodes(api, 1, gpus=1)
    server.faults.set(verb="create", resource="pods/binding", error_rate=1.0, count=2)
    obj = pod("retry")
    obj["spec"]["containers"][0]["resources"]["limits"] = {"nvidia.com/gpu": "1"}
    api.create(obj)
    with controller(server):
        _bound(api, ["retry"])
        name = wait_for(lambda: ((api.pod("retry").get("status") or {}).get("extendedResourceClaimStatus") or {})
                        .get("resourceClaimName"), 20, "extendedResourceClaimStatus written")

        def only_one():
            special = [c for c in api.claims()
                       if (c["metadata"].get("annotations") or {}).get("resource.kubernetes.io/extended-resource-claim")]
            return special if len(special) == 1 else None
        (special,) = wait_for(only_one, 20, "the failed attempts' claims deleted")
    assert special["metadata"]["name"] == name and special["status"]["allocation"]


def test_a_special_claim_left_by_an_unfinished_cycle_is_deleted_before_deciding_again(server, api: Api) -> None:
    from driver.controller.writer import Writer
    _all_device_classes(api)
    _nodes(api, 1, gpus=1)
    obj = pod("crashed")
    obj["spec"]["containers"][0]["resources"]["limits"] = {"nvidia.com/gpu": "1"}
    created = api.create(obj)
    # what a controller that crashed after creating and allocating the claim leaves behind
    left = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"name": "crashed-extended-resources-old", "namespace": "default",
                         "annotations": {"resource.kubernetes.io/extended-resource-claim": "true"},
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "crashed",
                                              "uid": created["metadata"]["uid"], "controller": True}]},
            "spec": {"devices": {"requests": [{"name": "container-0-request-2", "exactly": {
                "deviceClassName": "unit.gpu.nvidia.com", "allocationMode": "ExactCount", "count": 1}}]}}}
    stale = api.create(left)
    alloc = {"devices": {"results": [{"request": "container-0-request-2", "driver": "gpu.nvidia.com",
                                      "pool": "n0", "device": "gpu-0"}]},
             "nodeSelector": {"nodeSelectorTerms": [{"matchFields": [
                 {"key": "metadata.name", "operator": "In", "values": ["n0"]}]}]}}
    Writer(api.kube, "gpu-dra-scheduler").reserve(stale, created, alloc)  # holds the only GPU
    with controller(server):
        _bound(api, ["crashed"])  # possible only once the stale claim's GPU is free again
        name = wait_for(lambda: ((api.pod("crashed").get("status") or {}).get("extendedResourceClaimStatus") or {})
                        .get("resourceClaimName"), 20, "extendedResourceClaimStatus written")
    special = [c["metadata"]["name"] for c in api.claims()
               if (c["metadata"].get("annotations") or {}).get("resource.kubernetes.io/extended-resource-claim")]
    assert special == [name] and name != "crashed-extended-resources-old"
