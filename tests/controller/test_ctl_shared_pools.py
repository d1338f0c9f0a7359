"""End to end: network-attached pools (`allNodes`, `nodeSelector`) through the controller.

The controller runs against the in-memory API server over HTTP. What must hold, as in upstream's
structured allocation: a selector pool is offered only to nodes whose labels it selects; the
written allocation carries the pool's nodeSelector (none for an allNodes device); one exclusive
device goes to one claim across all nodes; a claim already allocated from a selector pool lets
other pods go to any node it selects; a deallocated device is offered again; and a restarted
controller counts what is allocated before deciding anything.
"""

from __future__ import annotations

from ctl_helpers import Api, claim, claim_spec, controller, node, pod
from wait_helpers import wait_for

NET = "net.example.com"
RACK_A = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "rack", "operator": "In", "values": ["a"]}]}]}


def net_class(name: str, kind: str) -> dict:
    expr = f"device.driver == '{NET}' && device.attributes['{NET}'].kind == '{kind}'"
    return {"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass", "metadata": {"name": name},
            "spec": {"selectors": [{"cel": {"expression": expr}}]}}


def net_slice(name: str, device: str, kind: str, **placement: object) -> dict:
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice", "metadata": {"name": name},
            "spec": {"driver": NET, "pool": {"name": name, "generation": 1, "resourceSliceCount": 1},
                     "devices": [{"name": device, "attributes": {"kind": {"string": kind}}}], **placement}}


def bound(api: Api, name: str) -> str:
    return wait_for(lambda: api.pod(name)["spec"].get("nodeName"), 20, f"pod {name} bound")


def unschedulable(api: Api, name: str) -> str:
    def message() -> str | None:
        for c in (api.pod(name).get("status") or {}).get("conditions") or []:
            if c.get("type") == "PodScheduled" and c.get("status") == "False":
                return c.get("message") or "?"
        return None
    return wait_for(message, 20, f"pod {name} reported unschedulable")


def allocation(api: Api, name: str) -> dict:
    return api.claim(name)["status"]["allocation"]


def setup(api: Api) -> None:
    for name, rack in (("n1", "a"), ("n2", "a"), ("n3", "b")):
        api.create(node(name, cpu="4", labels={"rack": rack}))
    api.create(net_class("fabric", "fabric"))
    api.create(net_class("switch", "switch"))
    api.create(net_slice("fabric", "nic-0", "fabric", allNodes=True))
    api.create(net_slice("rack-a", "sw-0", "switch", nodeSelector=RACK_A))


def test_selector_pool_pins_pods_to_matching_nodes_and_its_claim_follows_the_selector(server, api: Api) -> None:
    setup(api)
    api.create(claim("c-sw", claim_spec("switch")))
    api.create(pod("first", {"net": "c-sw"}, cpu="3"))
    with controller(server):
        first = bound(api, "first")
        assert first in ("n1", "n2")
        alloc = allocation(api, "c-sw")
        assert alloc["nodeSelector"] == RACK_A
        assert [(r["driver"], r["pool"], r["device"]) for r in alloc["devices"]["results"]] == [(NET, "rack-a", "sw-0")]
        # Another pod of the same claim: 3 more cpus fit neither beside "first" nor (by the
        # claim's nodeSelector) on n3, so it must take the other rack-a node.
        api.create(pod("follower", {"net": "c-sw"}, cpu="3"))
        assert bound(api, "follower") == ({"n1", "n2"} - {first}).pop()
        # A second claim for a switch: the only one is taken for every node, so it waits.
        api.create(claim("c-sw2", claim_spec("switch")))
        api.create(pod("second", {"net": "c-sw2"}, cpu="1"))
        unschedulable(api, "second")
    assert sorted(r["name"] for r in api.claim("c-sw")["status"]["reservedFor"]) == ["first", "follower"]
    assert not (api.claim("c-sw2").get("status") or {}).get("allocation")


def test_all_nodes_device_is_exclusive_across_nodes_offered_again_after_release_and_after_restart(
        server, api: Api) -> None:
    setup(api)
    api.create(claim("c1", claim_spec("fabric")))
    api.create(pod("p1", {"net": "c1"}, cpu="1"))
    with controller(server):
        bound(api, "p1")
        alloc = allocation(api, "c1")
        assert "nodeSelector" not in alloc or alloc["nodeSelector"] is None
        assert [r["device"] for r in alloc["devices"]["results"]] == ["nic-0"]
        api.create(claim("c2", claim_spec("fabric")))
        api.create(pod("p2", {"net": "c2"}, cpu="1"))
        unschedulable(api, "p2")  # nic-0 is taken on every node, not only on p1's
        api.delete_pod("p1")  # the controller drops the reservation and deallocates c1
        bound(api, "p2")
        assert [r["device"] for r in allocation(api, "c2")["devices"]["results"]] == ["nic-0"]
        wait_for(lambda: not (api.claim("c1").get("status") or {}).get("allocation"), 20, "c1 deallocated")
    # A new controller rebuilds its view from the API: c2 holds nic-0, so p3 must wait.
    api.create(claim("c3", claim_spec("fabric")))
    api.create(pod("p3", {"net": "c3"}, cpu="1"))
    with controller(server):
        unschedulable(api, "p3")
        assert not (api.claim("c3").get("status") or {}).get("allocation")
        assert [r["device"] for r in allocation(api, "c2")["devices"]["results"]] == ["nic-0"]
