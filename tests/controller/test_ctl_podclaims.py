"""Pure claim resolution and node pinning."""

from __future__ import annotations

from driver.scheduler.plugins.noderesources import label_requirements, labels_match
from driver.controller.podclaims import pinned_to, resolve_claims


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


def test_pinning_adds_node_name_to_every_affinity_term_without_touching_the_original() -> None:
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]}}}
    original = pod([], affinity=affinity)
    pinned = pinned_to(original, "n1")
    sel, aff = label_requirements(pinned)
    assert labels_match(sel, aff, "n1", {"zone": "b"})
    assert not labels_match(sel, aff, "n2", {"zone": "b"})
    assert not labels_match(sel, aff, "n1", {"zone": "c"})
    assert "matchFields" not in str(original)
    sel, aff = label_requirements(pinned_to(pod([]), "n1"))
    assert labels_match(sel, aff, "n1", {}) and not labels_match(sel, aff, "n2", {})


def test_missing_template_is_a_user_error() -> None:
    p = pod([{"name": "b", "resourceClaimTemplateName": "nope"}])
    claims, why, user_error = resolve_claims(p, {}.get, {"ns/other": {}}.get)
    assert why == "resourceclaimtemplate ns/nope not found" and user_error
    claims, why, user_error = resolve_claims(p, {}.get, {"ns/nope": {}}.get)
    assert why is not None and "to be created from its template" in why and not user_error
