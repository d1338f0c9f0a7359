"""Claims generated from ResourceClaimTemplates by the resourceclaim controller (driver.local.claims),
scheduled by ours: the packing strategy decides node and device, and releases follow pod deletion."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ctl_helpers import Api, claim_spec, controller, fractional_devices, gpu_devices, node, resource_slice
from wait_helpers import wait_for

from driver.local.claims import ClaimController
from driver.controller.kube import new_client


def template(name: str, spec: dict) -> dict:
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate",
            "metadata": {"name": name, "namespace": "default"}, "spec": {"spec": spec}}


def templ_pod(name: str, tmpl: str, annotations: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "annotations": annotations or {}},
            "spec": {"schedulerName": "gpu-dra-scheduler",
                     "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": tmpl}],
                     "containers": [{"name": "c", "image": "busybox",
                                     "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "claims": [{"name": "gpu"}]}}]}}


@pytest.fixture
def claim_controller(server) -> Iterator[ClaimController]:
    cc = ClaimController(new_client(str(server.kubeconfig_path)))
    cc.start()
    yield cc
    cc.stop()


def placement(api: Api, pod: str) -> tuple[str, list[str]]:
    p = wait_for(lambda: (lambda p: p if p["spec"].get("nodeName") else None)(api.pod(pod)), 20, f"{pod} bound")
    name = p["status"]["resourceClaimStatuses"][0]["resourceClaimName"]
    c = api.claim(name)
    assert c["metadata"]["ownerReferences"][0]["uid"] == p["metadata"]["uid"]
    return p["spec"]["nodeName"], [r["device"] for r in c["status"]["allocation"]["devices"]["results"]]


def setup_cluster(api: Api) -> None:
    for n in ("n1", "n2"):
        api.create(node(n))
    api.create(resource_slice("n1", gpu_devices("n1", 2)))
    api.create(resource_slice("n2", gpu_devices("n2", 2)))
    api.create(node("f1"))
    api.create(resource_slice("f1", fractional_devices("f1", 2)))
    api.create(template("whole", claim_spec()))
    api.create(template("quarter", claim_spec("fractional.gpu.nvidia.com", compute="250m")))


@pytest.mark.parametrize("strategy", ["binpack", "spread"])
def test_strategy_decides_node_and_device(server, api: Api, claim_controller: ClaimController, strategy: str) -> None:
    setup_cluster(api)
    with controller(server, strategy=strategy):
        api.create(templ_pod("w0", "whole"))
        first_node, _ = placement(api, "w0")
        api.create(templ_pod("w1", "whole"))
        second_node, _ = placement(api, "w1")
        api.create(templ_pod("q0", "quarter"))
        _, dev0 = placement(api, "q0")
        api.create(templ_pod("q1", "quarter"))
        _, dev1 = placement(api, "q1")
    if strategy == "binpack":
        assert first_node == second_node and dev0 == dev1
    else:
        assert first_node != second_node and dev0 != dev1


def test_annotation_overrides_default_strategy(server, api: Api, claim_controller: ClaimController) -> None:
    setup_cluster(api)
    spread = {"gpu-dra.nvidia.com/scheduling-strategy": "spread"}
    with controller(server, strategy="binpack"):
        api.create(templ_pod("w0", "whole", spread))
        a, _ = placement(api, "w0")
        api.create(templ_pod("w1", "whole", spread))
        b, _ = placement(api, "w1")
    assert a != b


def test_unknown_strategy_annotation_is_reported(server, api: Api, claim_controller: ClaimController) -> None:
    setup_cluster(api)
    with controller(server):
        api.create(templ_pod("x", "whole", {"gpu-dra.nvidia.com/scheduling-strategy": "random"}))
        cond = wait_for(lambda: next((c for c in (api.pod("x").get("status") or {}).get("conditions") or []
                                      if c["type"] == "PodScheduled" and c["status"] == "False"), None), 10,
                        "PodScheduled=False")
    assert "unknown scheduling strategy 'random'" in cond["message"]


def test_generated_claim_released_and_gpu_reused(server, api: Api, claim_controller: ClaimController) -> None:
    api.create(node("n1"))
    api.create(resource_slice("n1", gpu_devices("n1", 1)))
    api.create(template("whole", claim_spec()))
    with controller(server):
        api.create(templ_pod("a", "whole"))
        placement(api, "a")
        api.create(templ_pod("b", "whole"))
        wait_for(lambda: "Unschedulable" in str(api.pod("b").get("status")), 20, "b unschedulable")
        api.delete_pod("a")
        assert placement(api, "b") == ("n1", ["gpu-0"])


def test_missing_template_reported_then_scheduled_when_it_appears(server, api: Api, claim_controller: ClaimController) -> None:
    api.create(node("n1"))
    api.create(resource_slice("n1", gpu_devices("n1", 1)))
    with controller(server):
        api.create(templ_pod("p", "later"))
        cond = wait_for(lambda: next((c for c in (api.pod("p").get("status") or {}).get("conditions") or []
                                      if c["type"] == "PodScheduled"), None), 20, "PodScheduled condition")
        assert cond["message"] == "resourceclaimtemplate default/later not found"
        api.create(template("later", claim_spec()))
        assert placement(api, "p") == ("n1", ["gpu-0"])
