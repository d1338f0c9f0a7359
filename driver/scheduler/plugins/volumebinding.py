"""VolumeBinding, as far as a scheduler that never binds or provisions volumes can go.

The pod's claims are its `persistentVolumeClaim` volumes and its generic ephemeral volumes (the
PVC "<pod>-<volume>" the ephemeral volume controller creates, owned by the pod). Before any node
is looked at (kube-scheduler's PreFilter), in volume order, the pod is rejected, unresolvable, if a
claim is missing ('persistentvolumeclaim "x" not found'; for an ephemeral volume "waiting for
ephemeral volume controller to create the persistentvolumeclaim"), lost (bound to a PV that is
gone), being deleted, or an ephemeral volume's claim not owned by the pod.

A claim is bound when it names its volume (spec.volumeName). Unbound claims:

- Immediate binding (the StorageClass's volumeBindingMode, the default; no class or an unknown
  class counts as Immediate, as upstream): the PV controller binds them, not the scheduler —
  "pod has unbound immediate PersistentVolumeClaims";
- WaitForFirstConsumer: kube-scheduler would pick a PV or have one provisioned for the chosen
  node; this scheduler does neither, so the pod is rejected, naming the claims.

Bound claims are checked per node, in order, stopping at the first failure (upstream's
checkBoundClaims): a PV that does not exist → "node(s) unavailable due to one or more pvc(s)
bound to non-existent pv(s)"; a PV whose spec.nodeAffinity.required does not match the node's
labels → "node(s) had volume node affinity conflict" (both unresolvable). Like upstream's
CheckNodeAffinity, only labels are matched (matchFields on metadata.name are not checked).

The snapshot of claims, volumes and classes is `ctx.state.volumes` (a volumes.VolumeIndex); a
state without one has nothing to check against, and the plugin does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from driver.scheduler.framework import Checks, CycleContext, Rejection
from driver.scheduler.plugins.nodeaffinity import NodeSelector, parse_node_selector
from driver.scheduler.volumes import VolumeIndex

PLUGIN = "VolumeBinding"
REASON_NODE_CONFLICT = "node(s) had volume node affinity conflict"
REASON_PV_NOT_EXIST = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
REASON_UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
BETA_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
WAIT = "WaitForFirstConsumer"


@dataclass(frozen=True, slots=True)
class ClaimRef:
    name: str
    ephemeral: bool


def claim_refs(pod: Mapping[str, Any]) -> list[ClaimRef] | str:
    """The PVCs the pod's volumes use, in volume order (or the error, naming the field)."""
    meta = pod.get("metadata") or {}
    volumes = (pod.get("spec") or {}).get("volumes") or []
    if not isinstance(volumes, list):
        return "spec.volumes: expected a list of volumes"
    out = []
    for i, v in enumerate(volumes):
        if not isinstance(v, Mapping):
            return f"spec.volumes[{i}]: expected a volume object"
        if v.get("persistentVolumeClaim") is not None:
            name = (v["persistentVolumeClaim"] or {}).get("claimName")
            if not isinstance(name, str) or not name:
                return f"spec.volumes[{i}].persistentVolumeClaim.claimName: a claim name is required"
            out.append(ClaimRef(name, False))
        elif v.get("ephemeral") is not None:
            out.append(ClaimRef(f"{meta.get('name', '')}-{v.get('name', '')}", True))
    return out


def claim_class(pvc: Mapping[str, Any]) -> str:
    """The claim's StorageClass name: the beta annotation first, then spec.storageClassName."""
    annotations = (pvc.get("metadata") or {}).get("annotations") or {}
    if BETA_CLASS_ANNOTATION in annotations:
        return str(annotations[BETA_CLASS_ANNOTATION] or "")
    return str((pvc.get("spec") or {}).get("storageClassName") or "")


def _owned_by(pvc: Mapping[str, Any], pod: Mapping[str, Any], namespace: str) -> bool:
    meta = pvc.get("metadata") or {}
    uid = (pod.get("metadata") or {}).get("uid")
    if (meta.get("namespace") or namespace) != namespace or not uid:
        return False
    return any(isinstance(o, Mapping) and o.get("controller") is True and o.get("uid") == uid
               for o in meta.get("ownerReferences") or [])


def _reject(reason: str) -> Rejection:
    return Rejection(PLUGIN, reason, unresolvable=True)


def _waiting(names: list[str]) -> Rejection:
    quoted = ", ".join(f'"{n}"' for n in names)
    if len(names) == 1:
        head = f"persistentvolumeclaim {quoted} is unbound and waits for its first consumer"
    else:
        head = f"persistentvolumeclaims {quoted} are unbound and wait for their first consumer"
    return _reject(f"{head} (volumeBindingMode {WAIT}); this scheduler does not bind or provision volumes")


def _pv_selector(pv: Mapping[str, Any]) -> NodeSelector | None:
    required = (((pv.get("spec") or {}).get("nodeAffinity")) or {}).get("required")
    if required is None:
        return None
    name = (pv.get("metadata") or {}).get("name", "")
    return parse_node_selector(required, f"persistentvolume {name} spec.nodeAffinity.required")


def prefilter(ctx: CycleContext) -> Checks | Rejection | None:
    refs = claim_refs(ctx.pod)
    if isinstance(refs, str):
        return _reject(refs)
    if not refs:
        return None
    index = getattr(ctx.state, "volumes", None)
    if not isinstance(index, VolumeIndex):
        return None
    pod = ctx.pod
    namespace = ctx.info.namespace
    bound: list[str] = []
    immediate: list[str] = []
    waiting: list[str] = []
    for ref in refs:
        pvc = index.pvc(namespace, ref.name)
        if pvc is None:
            if ref.ephemeral:
                return _reject(f'waiting for ephemeral volume controller to create the persistentvolumeclaim "{ref.name}"')
            return _reject(f'persistentvolumeclaim "{ref.name}" not found')
        spec = pvc.get("spec") or {}
        if (pvc.get("status") or {}).get("phase") == "Lost":
            return _reject(f'persistentvolumeclaim "{ref.name}" bound to non-existent persistentvolume '
                           f'"{spec.get("volumeName", "")}"')
        if (pvc.get("metadata") or {}).get("deletionTimestamp"):
            return _reject(f'persistentvolumeclaim "{ref.name}" is being deleted')
        if ref.ephemeral and not _owned_by(pvc, pod, namespace):
            return _reject(f"PVC {namespace}/{ref.name} was not created for pod {namespace}/{ctx.info.name} "
                           "(pod is not owner)")
        if spec.get("volumeName"):
            bound.append(str(spec["volumeName"]))
            continue
        klass = index.storage_class(claim_class(pvc)) if claim_class(pvc) else None
        if klass is not None and klass.get("volumeBindingMode") == WAIT:
            waiting.append(ref.name)
        else:
            immediate.append(ref.name)
    if immediate:
        return _reject(REASON_UNBOUND_IMMEDIATE)
    if waiting:
        return _waiting(waiting)

    volumes: list[tuple[Mapping[str, Any] | None, NodeSelector | None]] = []
    for name in bound:
        pv = index.pv(name)
        volumes.append((pv, _pv_selector(pv) if pv is not None else None))
    if all(pv is not None and sel is None for pv, sel in volumes):
        return None
    missing = _reject(REASON_PV_NOT_EXIST)
    conflict = _reject(REASON_NODE_CONFLICT)

    def volumes_fit(node: Any) -> Rejection | None:
        for pv, sel in volumes:
            if pv is None:
                return missing
            if sel is not None and not sel.matches("", node.labels):
                return conflict
        return None
    return Checks(PLUGIN, filter=volumes_fit)
