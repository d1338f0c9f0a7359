"""What the controller reads off wire objects: allocation identity and node, resourceVersion order,
pod state, the claims a pod uses, and the fields whose change matters to the scheduler.

Pure functions over Kubernetes wire dicts, shared by the view, the controller's worker, the
releaser and preemption.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def allocation_signature(allocation: Mapping[str, Any] | None) -> tuple:
    """What identifies an allocation (devices and shares), ignoring timestamps and formatting."""
    if not allocation:
        return ()
    out = []
    for r in ((allocation.get("devices") or {}).get("results")) or []:
        consumed = tuple(sorted((r.get("consumedCapacity") or {}).items()))
        out.append((r.get("request"), r.get("driver"), r.get("pool"), r.get("device"), r.get("shareID"), consumed))
    return tuple(sorted(out, key=repr))


def allocation_node(allocation: Mapping[str, Any] | None) -> str | None:
    """The node an allocation is bound to: its nodeSelector's metadata.name / hostname, else None."""
    if not allocation:
        return None
    for term in ((allocation.get("nodeSelector") or {}).get("nodeSelectorTerms")) or []:
        for expr in (term.get("matchFields") or []) + (term.get("matchExpressions") or []):
            if expr.get("key") in ("metadata.name", "kubernetes.io/hostname") and expr.get("operator") == "In":
                values = expr.get("values") or []
                if len(values) == 1:
                    return str(values[0])
    return None


def rv_newer(a: str | None, b: str | None) -> bool:
    """resourceVersion a is newer than b (they are opaque, but integers on etcd and our server)."""
    try:
        return int(a or 0) > int(b or 0)
    except ValueError:
        return a != b


def pod_is_done(pod: Mapping[str, Any]) -> bool:
    return ((pod.get("status") or {}).get("phase")) in ("Succeeded", "Failed")


def node_labels(node: Mapping[str, Any]) -> dict[str, str]:
    return dict((node.get("metadata") or {}).get("labels") or {})


def pool_of(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(driver, pool name) of a slice; a slice without a pool name stands alone (it cannot parse)."""
    spec = obj.get("spec") or {}
    pool = (spec.get("pool") or {}).get("name") or (obj.get("metadata") or {}).get("name", "")
    return str(spec.get("driver") or ""), str(pool)


def pools_of(allocation: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(driver, pool) of every device an allocation names."""
    return {(str(r.get("driver", "")), str(r.get("pool", "")))
            for r in ((allocation.get("devices") or {}).get("results")) or []}


def pod_claim_keys(pod: Mapping[str, Any]) -> list[str]:
    """"namespace/name" of every ResourceClaim a pod uses: its resourceClaimStatuses, the claims it
    names, and its DRA extended-resource claim."""
    ns = (pod.get("metadata") or {}).get("namespace", "")
    status = pod.get("status") or {}
    names = [s.get("resourceClaimName") for s in status.get("resourceClaimStatuses") or []]
    names += [c.get("resourceClaimName") for c in (pod.get("spec") or {}).get("resourceClaims") or []]
    names.append((status.get("extendedResourceClaimStatus") or {}).get("resourceClaimName"))
    return list(dict.fromkeys(f"{ns}/{n}" for n in names if n))


def pod_resources(pod: Mapping[str, Any]) -> str:
    """What a pod reserves, as written (in-place resize changes it on a running pod)."""
    spec = pod.get("spec") or {}
    parts = [(c.get("name"), c.get("resources")) for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])]
    return repr((parts, spec.get("overhead"), spec.get("resources")))


def pod_index_fields(pod: Mapping[str, Any]) -> tuple:
    meta = pod.get("metadata") or {}
    return repr(sorted((meta.get("labels") or {}).items())), bool(meta.get("deletionTimestamp"))


def node_fields(node: dict) -> tuple:
    """The parts of a Node the scheduler uses (a heartbeat must not trigger a rebuild)."""
    meta = node.get("metadata") or {}
    status = node.get("status") or {}
    spec = node.get("spec") or {}
    return (
        repr(sorted((meta.get("labels") or {}).items())),
        repr(status.get("allocatable") or status.get("capacity")),
        repr(spec.get("taints")),
        bool(spec.get("unschedulable")),
    )
