"""End-to-end scenarios: the controller against the in-memory API server over HTTP, official client.

Each checks what upstream's structured allocation would do (FACTS.md §6) as seen from outside: the
claim status written (allocation, reservedFor, finalizer), the binding, and for failures the
PodScheduled condition and the FailedScheduling event.
"""

from __future__ import annotations

from ctl_helpers import (
    D, Api, claim, claim_spec, controller, gpu_devices, mig_devices, node, pod, resource_slice,
)
from wait_helpers import wait_for

FINALIZER = "resource.kubernetes.io/delete-protection"


def bound(api: Api, name: str, timeout: float = 20.0) -> str:
    return wait_for(lambda: api.pod(name)["spec"].get("nodeName"), timeout, f"pod {name} bound")


def devices_of(api: Api, name: str) -> list[tuple[str, str, str]]:
    alloc = api.claim(name)["status"]["allocation"]
    return [(r["pool"], r["device"], r["request"]) for r in alloc["devices"]["results"]]


def test_two_pods_each_with_own_gpu(server, api: Api) -> None:
    api.create(node("n1"))
    api.create(resource_slice("n1", gpu_devices("n1", 2)))
    for i in range(2):
        api.create(claim(f"c{i}", claim_spec()))
        api.create(pod(f"p{i}", {"gpu": f"c{i}"}))
    with controller(server):
        assert bound(api, "p0") == "n1" and bound(api, "p1") == "n1"
    d0, d1 = devices_of(api, "c0"), devices_of(api, "c1")
    assert len(d0) == len(d1) == 1 and d0 != d1
    for name, p in (("c0", "p0"), ("c1", "p1")):
        c = api.claim(name)
        assert FINALIZER in c["metadata"]["finalizers"]
        assert [(r["resource"], r["name"], r["uid"]) for r in c["status"]["reservedFor"]] == [
            ("pods", p, api.pod(p)["metadata"]["uid"])]
        assert c["status"]["allocation"]["nodeSelector"]["nodeSelectorTerms"][0]["matchFields"][0]["values"] == ["n1"]


def test_two_containers_share_one_claim(server, api: Api) -> None:
    api.create(node("n1"))
    api.create(resource_slice("n1", gpu_devices("n1", 1)))
    api.create(claim("shared", claim_spec()))
    api.create(pod("p", {"gpu": "shared"}, containers=2))
    with controller(server):
        assert bound(api, "p") == "n1"
    assert devices_of(api, "shared") == [("n1", "gpu-0", "gpu")]


def test_one_claim_shared_by_two_pods_lands_both_on_its_node(server, api: Api) -> None:
    for n in ("n1", "n2"):
        api.create(node(n))
        api.create(resource_slice(n, gpu_devices(n, 1)))
    api.create(claim("shared", claim_spec()))
    api.create(pod("a", {"gpu": "shared"}))
    api.create(pod("b", {"gpu": "shared"}))
    with controller(server):
        na, nb = bound(api, "a"), bound(api, "b")
    assert na == nb
    c = api.claim("shared")
    assert sorted(r["name"] for r in c["status"]["reservedFor"]) == ["a", "b"]
    assert len(c["status"]["allocation"]["devices"]["results"]) == 1


def test_four_mig_requests_match_parent_uuid(server, api: Api) -> None:
    # n1 has two GPUs with 4 MIG devices each; the claim asks for 4 MIG devices of one parent.
    api.create(node("n1"))
    api.create(resource_slice("n1", mig_devices("n1", gpus=2)))
    spec = {"devices": {
        "requests": [{"name": f"mig{i}", "exactly": {"deviceClassName": "mig.nvidia.com"}} for i in range(4)],
        "constraints": [{"requests": [f"mig{i}" for i in range(4)], "matchAttribute": f"{D}/parentUUID"}],
    }}
    api.create(claim("migs", spec))
    api.create(pod("p", {"mig": "migs"}))
    with controller(server):
        bound(api, "p")
    devs = devices_of(api, "migs")
    assert len(devs) == 4 and len({d[1] for d in devs}) == 4
    assert len({d[1].split("-mig-")[0] for d in devs}) == 1  # one parent GPU


def test_count_two(server, api: Api) -> None:
    api.create(node("n1"))
    api.create(resource_slice("n1", gpu_devices("n1", 1)))
    api.create(node("n2"))
    api.create(resource_slice("n2", gpu_devices("n2", 2)))
    api.create(claim("two", claim_spec(count=2)))
    api.create(pod("p", {"gpu": "two"}))
    with controller(server):
        assert bound(api, "p") == "n2"
    assert sorted(d[1] for d in devices_of(api, "two")) == ["gpu-0", "gpu-1"]


def test_cel_on_capacity_and_version(server, api: Api) -> None:
    api.create(node("small"))
    api.create(resource_slice("small", gpu_devices("small", 2, product="NVIDIA L4", memory="24Gi")))
    api.create(node("big"))
    api.create(resource_slice("big", gpu_devices("big", 2, driver_version="535.104.5")))
    api.create(node("big-new"))
    api.create(resource_slice("big-new", gpu_devices("big-new", 2, driver_version="560.35.3")))
    sel = [f"device.capacity['{D}'].memory.compareTo(quantity('40Gi')) >= 0",
           f"device.attributes['{D}'].driverVersion.isGreaterThan(semver('550.0.0'))"]
    api.create(claim("big", claim_spec(selectors=sel)))
    api.create(pod("p", {"gpu": "big"}))
    with controller(server):
        assert bound(api, "p") == "big-new"


def test_first_available_falls_back(server, api: Api) -> None:
    api.create(node("n1"))
    api.create(resource_slice("n1", gpu_devices("n1", 1, product="NVIDIA L4", memory="24Gi")))
    spec = {"devices": {"requests": [{"name": "gpu", "firstAvailable": [
        {"name": "big", "deviceClassName": "gpu.nvidia.com",
         "selectors": [{"cel": {"expression": f"device.capacity['{D}'].memory.compareTo(quantity('40Gi')) >= 0"}}]},
        {"name": "any", "deviceClassName": "gpu.nvidia.com"},
    ]}]}}
    api.create(claim("fa", spec))
    api.create(pod("p", {"gpu": "fa"}))
    with controller(server):
        bound(api, "p", timeout=3)
    assert devices_of(api, "fa") == [("n1", "gpu-0", "gpu/any")]


def test_unknown_attribute_keeps_pod_pending_with_reason(server, api: Api) -> None:
    api.create(node("n1"))
    api.create(resource_slice("n1", gpu_devices("n1", 1)))
    api.create(claim("bad", claim_spec(selectors=[f"device.attributes['{D}'].noSuchAttribute == 'x'"])))
    api.create(pod("p", {"gpu": "bad"}))
    with controller(server):
        cond = wait_for(lambda: next((c for c in (api.pod("p").get("status") or {}).get("conditions") or []
                                      if c["type"] == "PodScheduled"), None), 20, "PodScheduled condition")
        events = wait_for(lambda: [e for e in api.events() if e["reason"] == "FailedScheduling"], 20, "event")
    assert cond["status"] == "False" and cond["reason"] == "Unschedulable"
    assert "noSuchAttribute" in cond["message"]
    assert "noSuchAttribute" in events[0]["message"] and events[0]["involvedObject"]["name"] == "p"
    assert not api.pod("p")["spec"].get("nodeName")
    assert not (api.claim("bad").get("status") or {}).get("allocation")


def test_missing_claim_reported_then_scheduled_once_created(server, api: Api) -> None:
    api.create(node("n1"))
    api.create(resource_slice("n1", gpu_devices("n1", 1)))
    api.create(pod("p", {"gpu": "later"}))
    with controller(server):
        cond = wait_for(lambda: next((c for c in (api.pod("p").get("status") or {}).get("conditions") or []
                                      if c["type"] == "PodScheduled"), None), 20, "PodScheduled condition")
        assert "default/later not found" in cond["message"]
        api.create(claim("later", claim_spec()))
        assert bound(api, "p") == "n1"


def test_node_fit_cpu_and_selector(server, api: Api) -> None:
    api.create(node("tiny", cpu="1"))
    api.create(resource_slice("tiny", gpu_devices("tiny", 1)))
    api.create(node("other", labels={"pool": "b"}))
    api.create(resource_slice("other", gpu_devices("other", 1)))
    api.create(node("right", labels={"pool": "a"}))
    api.create(resource_slice("right", gpu_devices("right", 1)))
    api.create(claim("c", claim_spec()))
    api.create(pod("p", {"gpu": "c"}, cpu="2", nodeSelector={"pool": "a"}))
    with controller(server):
        assert bound(api, "p") == "right"


def test_release_when_pod_deleted(server, api: Api) -> None:
    api.create(node("n1"))
    api.create(resource_slice("n1", gpu_devices("n1", 1)))
    api.create(claim("c", claim_spec()))
    api.create(pod("first", {"gpu": "c"}))
    api.create(claim("c2", claim_spec()))
    with controller(server):
        bound(api, "first")
        api.create(pod("second", {"gpu": "c2"}))  # no free GPU: waits
        wait_for(lambda: "Unschedulable" in str(api.pod("second").get("status")), 20, "second unschedulable")
        api.delete_pod("first")
        c = wait_for(lambda: (lambda c: c if not c.get("status", {}).get("allocation")
                              and FINALIZER not in (c["metadata"].get("finalizers") or []) else None)(api.claim("c")),
                     10, "claim released")
        assert not c["status"].get("reservedFor")
        assert bound(api, "second") == "n1"


def test_pod_without_claims_and_cordoned_or_tainted_nodes(server, api: Api) -> None:
    cordoned = node("cordoned")
    cordoned["spec"]["unschedulable"] = True
    api.create(cordoned)
    api.create(node("tainted", taints=[{"key": "gpu", "value": "reserved", "effect": "NoSchedule"}]))
    api.create(node("open", cpu="2"))
    api.create(pod("plain", cpu="1"))
    api.create(pod("tolerant", cpu="4", tolerations=[{"key": "gpu", "operator": "Equal", "value": "reserved",
                                                     "effect": "NoSchedule"}]))
    api.create(pod("too-big", cpu="8"))
    with controller(server):
        assert bound(api, "plain") == "open"
        assert bound(api, "tolerant") == "tainted"
        cond = wait_for(lambda: next((c for c in (api.pod("too-big").get("status") or {}).get("conditions") or []
                                      if c["type"] == "PodScheduled"), None), 20, "too-big reported")
    assert "Insufficient cpu" in cond["message"] and "unschedulable" in cond["message"]


def test_other_schedulers_pods_are_left_alone(server, api: Api) -> None:
    api.create(node("n1"))
    api.create(resource_slice("n1", gpu_devices("n1", 1)))
    api.create(claim("c", claim_spec()))
    api.create(pod("theirs", {"gpu": "c"}, scheduler="default-scheduler"))
    api.create(pod("ours"))
    with controller(server):
        bound(api, "ours")
    assert not api.pod("theirs")["spec"].get("nodeName")
    assert not (api.claim("c").get("status") or {}).get("allocation")


def test_per_request_gpu_config_is_copied_into_the_allocation(server, api: Api) -> None:
    api.create(node("n1"))
    api.create(resource_slice("n1", gpu_devices("n1", 2)))
    ts = {"apiVersion": "resource.nvidia.com/v1beta1", "kind": "GpuConfig",
          "sharing": {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": "Long"}}}
    spec = {"devices": {
        "requests": [{"name": "a", "exactly": {"deviceClassName": "gpu.nvidia.com"}},
                     {"name": "b", "exactly": {"deviceClassName": "gpu.nvidia.com"}}],
        "config": [{"requests": ["b"], "opaque": {"driver": D, "parameters": ts}}],
    }}
    api.create(claim("cfg", spec))
    api.create(pod("p", {"gpu": "cfg"}))
    with controller(server):
        bound(api, "p")
    alloc = api.claim("cfg")["status"]["allocation"]
    assert sorted(r["request"] for r in alloc["devices"]["results"]) == ["a", "b"]
    assert alloc["devices"]["config"] == [{"source": "FromClaim", "requests": ["b"],
                                           "opaque": {"driver": D, "parameters": ts}}]


def test_all_mode_takes_every_matching_device_of_the_node(server, api: Api) -> None:
    api.create(node("n1"))
    api.create(resource_slice("n1", gpu_devices("n1", 3)))
    spec = {"devices": {"requests": [{"name": "all", "exactly": {"deviceClassName": "gpu.nvidia.com",
                                                                 "allocationMode": "All"}}]}}
    api.create(claim("everything", spec))
    api.create(pod("p", {"gpu": "everything"}))
    with controller(server):
        bound(api, "p")
    assert sorted(d[1] for d in devices_of(api, "everything")) == ["gpu-0", "gpu-1", "gpu-2"]
