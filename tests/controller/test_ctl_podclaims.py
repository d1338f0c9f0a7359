"""Pure claim resolution, and the pin of a pod to the node of its allocated claims."""

from __future__ import annotations

from driver.controller.podclaims import plan_claims, resolve_claims


def pod(claims: list[dict], statuses: list[dict] | None = None, **spec: object) -> dict:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "pod-uid"},
            "spec": {"resourceClaims": claims, **spec}, "status": {"resourceClaimStatuses": statuses or []}}


def claim(name: str, owner: str | None = None, deleting: bool = False) -> dict:
    meta: dict = {"name": name, "namespace": "ns"}
    if owner:
        meta["ownerReferences"] = [{"kind": "Pod", "uid": owner}]
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta}


def test_named_and_generated_claims_resolve() -> None:
    store = {"ns/direct": claim("direct"), "ns/gen-abc": claim("gen-abc", owner="pod-uid")}
    p = pod([{"name": "a", "resourceClaimName": "direct"}, {"name": "b", "resourceClaimTemplateName": "t"},
             {"name": "c", "resourceClaimTemplateName": "t2"}],
            [{"name": "b", "resourceClaimName": "gen-abc"}, {"name": "c", "resourceClaimName": None}])
    claims, why, _ = resolve_claims(p, store.get)
    assert why is None and [c["metadata"]["name"] for c in claims] == ["direct", "gen-abc"]


def test_waiting_and_user_errors_are_told_apart() -> None:
    cases = [
        (pod([{"name": "b", "resourceClaimTemplateName": "t"}]), {}, "to be created from its template", False),
        (pod([{"name": "b", "resourceClaimTemplateName": "t"}], [{"name": "b", "resourceClaimName": "g"}]), {},
         "waiting for resourceclaim ns/g", False),
        (pod([{"name": "a", "resourceClaimName": "x"}]), {}, "resourceclaim ns/x not found", True),
        (pod([{"name": "b", "resourceClaimTemplateName": "t"}], [{"name": "b", "resourceClaimName": "g"}]),
         {"ns/g": claim("g", owner="someone-else")}, "was not created for this pod", True),
        (pod([{"name": "a", "resourceClaimName": "x"}]), {"ns/x": claim("x", deleting=True)}, "being deleted", True),
        (pod([{"name": "a"}]), {}, "neither resourceClaimName nor resourceClaimTemplateName", True),
    ]
    for p, store, text, user in cases:
        claims, why, user_error = resolve_claims(p, store.get)
        assert claims == [] and why is not None and text in why and user_error is user, why


def test_a_claim_pinned_to_a_node_still_lets_topology_spread_count_every_domain() -> None:
    """The pin is a filter beside the pod's constraints (rewriting its node affinity would make
    nodeAffinityPolicy Honor count only the pinned node's zone: skew could never exceed 1)."""
    from driver.scheduler.cycle import Placement, Unschedulable, schedule
    from driver.scheduler.podinfo import pod_info
    from driver.scheduler.state import ClusterState

    state = ClusterState({})
    for name, zone in (("a1", "za"), ("b1", "zb")):
        state.add_node({"metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone}},
                        "status": {"allocatable": {"cpu": "32", "memory": "64Gi", "pods": "110"}}})
    for i in range(3):
        state.pods.add(pod_info({"metadata": {"name": f"s{i}", "uid": f"s{i}", "namespace": "ns",
                                              "labels": {"app": "s"}}, "spec": {}}, node="a1"))
    spread = [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "s"}}}]
    new = pod([], topologySpreadConstraints=spread)
    new["metadata"].update(uid="new", labels={"app": "s"})
    held = {"metadata": {"name": "held", "namespace": "ns", "uid": "h"}, "spec": {}}
    plan = plan_claims([held], lambda c: {"devices": {"results": []}}, lambda c: "a1")
    assert plan.nodes == ("a1",) and len(plan.allocated) == 1
    got = schedule(new, plan.pending, state, allocated=plan.allocated)
    assert isinstance(got, Unschedulable)
    assert got.rejections["a1"].reason == "node(s) didn't match pod topology spread constraints"
    assert got.rejections["b1"].reason == "node(s) not where the pod's allocated claim is"
    # without the spread constraint the pin alone decides
    plain = pod([])
    plain["metadata"]["uid"] = "plain"
    placed = schedule(plain, plan.pending, state, allocated=plan.allocated)
    assert isinstance(placed, Placement) and placed.node == "a1"


def test_missing_template_is_a_user_error() -> None:
    p = pod([{"name": "b", "resourceClaimTemplateName": "nope"}])
    claims, why, user_error = resolve_claims(p, {}.get, {"ns/other": {}}.get)
    assert why == "resourceclaimtemplate ns/nope not found" and user_error
    claims, why, user_error = resolve_claims(p, {}.get, {"ns/nope": {}}.get)
    assert why is not None and "to be created from its template" in why and not user_error
