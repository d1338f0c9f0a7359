"""Which ResourceClaims a pod uses, and pinning a pod to the node its allocated claims live on (pure).

A pod names claims directly (`resourceClaimName`) or through a template; for a template, the
resourceclaim controller records the generated claim's name in `pod.status.resourceClaimStatuses`
(FACTS.md §7), and until then the pod must wait. A generated claim must be owned by the pod (else
another pod's claim with the same name would be used). A claim that is already allocated — shared
with other pods — fixes the node: the pod is scheduled as if it had a required node affinity on
`metadata.name`, the way kube-scheduler pins DaemonSet pods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


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


@dataclass(frozen=True, slots=True)
class ClaimPlan:
    """A pod's claims as `_schedule_one` splits them: `pending` for the cycle to allocate; the
    nodes already-allocated claims are bound to (the pod must go there); `floating`: allocated
    claims usable from several nodes (shared pools); `pinned`: allocated claims bound to one node,
    their allocation's nodeSelector naming it. The cycle gets `allocated` (both) and sends the pod
    only where every one of them can be used — a filter beside the pod's own constraints, so its
    topology spread still counts every domain (rewriting the pod's node affinity would not)."""

    pending: list[dict]
    nodes: tuple[str, ...]
    floating: list[dict]
    pinned: list[dict] = field(default_factory=list)

    @property
    def allocated(self) -> list[dict]:
        return self.floating + self.pinned

    @property
    def conflict(self) -> str | None:
        if len(self.nodes) > 1:
            return f"claims of the pod are allocated on different nodes: {', '.join(self.nodes)}"
        return None

    def explain(self, reason: str) -> str:
        return f"{reason} (a claim of the pod is already allocated on node {self.nodes[0]})" if self.nodes else reason


def plan_claims(claims: list[dict], allocation_of: Callable[[dict], dict | None],
                node_of: Callable[[dict], str | None]) -> ClaimPlan:
    """Split a pod's resolved claims (pure; `view.allocation_of` / `view.node_of` in the controller)."""
    pending = [c for c in claims if not allocation_of(c)]
    nodes: set[str] = set()
    floating, pinned = [], []
    for c in claims:
        alloc = allocation_of(c)
        if alloc:
            node = node_of(c)
            if node:
                nodes.add(str(node))
                here = {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                                "values": [str(node)]}]}]}
                # (its own nodeSelector when it has one: that is where the allocation is usable)
                pinned.append({**c, "status": {**(c.get("status") or {}),
                                               "allocation": {**alloc, "nodeSelector": alloc.get("nodeSelector") or here}}})
            else:
                floating.append({**c, "status": {**(c.get("status") or {}), "allocation": alloc}})
    return ClaimPlan(pending, tuple(sorted(nodes)), floating, pinned)
