"""Which ResourceClaims a pod uses, and pinning a pod to the node its allocated claims live on (pure).

A pod names claims directly (`resourceClaimName`) or through a template; for a template, the
resourceclaim controller records the generated claim's name in `pod.status.resourceClaimStatuses`
(FACTS.md §7), and until then the pod must wait. A generated claim must be owned by the pod (else
another pod's claim with the same name would be used). A claim that is already allocated — shared
with other pods — fixes the node: the pod is scheduled as if it had a required node affinity on
`metadata.name`, the way kube-scheduler pins DaemonSet pods.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass


def resolve_claims(pod: dict, get_claim: Callable[[str], dict | None],
                   get_template: Callable[[str], dict | None] | None = None) -> tuple[list[dict], str | None, bool]:
    """The pod's ResourceClaims (via `get_claim("ns/name")`), or ([], why it must wait, whether that is
    the user's to fix: a missing named claim or template is, a template claim not generated yet is not)."""
    meta = pod["metadata"]
    ns = meta.get("namespace", "")
    statuses = {s.get("name"): s for s in (pod.get("status") or {}).get("resourceClaimStatuses") or []}
    out = []
    for pc in (pod.get("spec") or {}).get("resourceClaims") or []:
        pname = pc.get("name", "")
        if pc.get("resourceClaimName"):
            name, from_template = pc["resourceClaimName"], False
        elif pc.get("resourceClaimTemplateName"):
            st = statuses.get(pname)
            if st is None:
                tkey = f"{ns}/{pc['resourceClaimTemplateName']}"
                if get_template is not None and get_template(tkey) is None:
                    return [], f"resourceclaimtemplate {tkey} not found", True
                return [], f"waiting for the claim of {pname!r} to be created from its template", False
            name, from_template = st.get("resourceClaimName"), True
            if not name:
                continue  # the template needs no claim
        else:
            return [], f"spec.resourceClaims[{pname}]: neither resourceClaimName nor resourceClaimTemplateName", True
        claim = get_claim(f"{ns}/{name}")
        if claim is None:
            if from_template:
                return [], f"waiting for resourceclaim {ns}/{name}", False
            return [], f"resourceclaim {ns}/{name} not found", True
        cmeta = claim["metadata"]
        if from_template and not any(r.get("uid") == meta.get("uid") for r in cmeta.get("ownerReferences") or []):
            return [], f"resourceclaim {ns}/{name} was not created for this pod", True
        if cmeta.get("deletionTimestamp"):
            return [], f"resourceclaim {ns}/{name} is being deleted", True
        out.append(claim)
    return out, None, False


def pinned_to(pod: dict, node: str) -> dict:
    """A copy of the pod that may only go to `node` (a claim of it is allocated there)."""
    pinned = copy.deepcopy(pod)
    spec = pinned.setdefault("spec", {})
    affinity = spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    field_term = {"key": "metadata.name", "operator": "In", "values": [node]}
    if not required or not required.get("nodeSelectorTerms"):
        affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [{"matchFields": [field_term]}]}
    else:
        for term in required["nodeSelectorTerms"]:
            term.setdefault("matchFields", []).append(field_term)
    return pinned


@dataclass(frozen=True, slots=True)
class ClaimPlan:
    """A pod's claims as `_schedule_one` splits them: `pending` for the cycle to allocate; the
    nodes already-allocated claims are bound to (the pod must go there); `floating`: allocated
    claims usable from several nodes (shared pools), passed to the cycle as `allocated`."""

    pending: list[dict]
    nodes: tuple[str, ...]
    floating: list[dict]

    @property
    def conflict(self) -> str | None:
        if len(self.nodes) > 1:
            return f"claims of the pod are allocated on different nodes: {', '.join(self.nodes)}"
        return None

    def target(self, pod: dict) -> dict:
        """The pod as scheduled: pinned to the node of its allocated claims, if any."""
        return pinned_to(pod, self.nodes[0]) if self.nodes else pod

    def explain(self, reason: str) -> str:
        return f"{reason} (a claim of the pod is already allocated on node {self.nodes[0]})" if self.nodes else reason


def plan_claims(claims: list[dict], allocation_of: Callable[[dict], dict | None],
                node_of: Callable[[dict], str | None]) -> ClaimPlan:
    """Split a pod's resolved claims (pure; `view.allocation_of` / `view.node_of` in the controller)."""
    pending = [c for c in claims if not allocation_of(c)]
    nodes: set[str] = set()
    floating = []
    for c in claims:
        alloc = allocation_of(c)
        if alloc:
            node = node_of(c)
            if node:
                nodes.add(str(node))
            else:
                floating.append({**c, "status": {**(c.get("status") or {}), "allocation": alloc}})
    return ClaimPlan(pending, tuple(sorted(nodes)), floating)
