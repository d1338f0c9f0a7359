"""The PersistentVolume controller's binding loop (kube-controller-manager's), for static volumes.

A volume-aware scheduler relies on it twice: it only considers volumes whose phase is
`Available`, and when it picks a volume for a `WaitForFirstConsumer` claim it writes the volume's
`claimRef` and waits for this controller to finish the bind (the claim's `volumeName`, both
phases `Bound`, annotation `pv.kubernetes.io/bind-completed`). What this controller does:

- a new volume without a `claimRef` becomes Available; a volume whose bound claim is gone becomes
  Released (reclaim policy Retain) or is deleted (Delete: there is no backing storage to clean);
- a claim naming a volume (`spec.volumeName`), or one a volume is pre-bound to (`claimRef`), is
  bound to it;
- an unbound claim of an `Immediate` class (or with no class) is bound to the smallest Available
  volume that matches: same class, the claim's access modes, volume mode and selector, enough
  capacity. A `WaitForFirstConsumer` claim waits until a scheduler pre-binds a volume (or picks a
  node, `volume.kubernetes.io/selected-node`, for the same search).

Not emulated: dynamic provisioning (a claim no volume fits stays Pending with an Event saying so),
protection finalizers, recycling.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client

from driver import log
from driver.dra.quantity import parse_quantity
from driver.local import volumes
from driver.local.controllerloop import ControllerLoop, read_or_none
from driver.local.events import post_event
from driver.local.informer import Cache, Informer
from driver.local.workqueue import WorkQueue
from driver.scheduler import labels

logger = log.get(__name__)

BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
COMPONENT = "persistentvolume-controller"


def _raw(resp: Any) -> dict[str, Any]:
    return json.loads(resp.data)


def claim_class(pvc: dict[str, Any]) -> str:
    annotations = (pvc.get("metadata") or {}).get("annotations") or {}
    if volumes.BETA_CLASS_ANNOTATION in annotations:
        return str(annotations[volumes.BETA_CLASS_ANNOTATION])
    return str((pvc.get("spec") or {}).get("storageClassName") or "")


def _storage(obj: dict[str, Any], *path: str) -> Any:
    cur: Any = obj
    for part in path:
        cur = cur.get(part) if isinstance(cur, dict) else None
    return parse_quantity(cur) if cur is not None else None


def prebound_to(pv: dict[str, Any], pvc: dict[str, Any]) -> bool:
    """Whether the volume's claimRef names this claim (a uid, when set, must match too)."""
    ref = (pv.get("spec") or {}).get("claimRef")
    meta = pvc.get("metadata") or {}
    return isinstance(ref, dict) and ref.get("name") == meta.get("name") and \
        ref.get("namespace") == meta.get("namespace") and ref.get("uid") in (None, "", meta.get("uid"))


def matches(pv: dict[str, Any], pvc: dict[str, Any]) -> bool:
    """checkVolumeSatisfyClaim + the selector/class filters of findMatchingVolume."""
    spec, claim = pv.get("spec") or {}, pvc.get("spec") or {}
    if volumes.pv_class(pv) != claim_class(pvc):
        return False
    if not set(claim.get("accessModes") or []) <= set(spec.get("accessModes") or []):
        return False
    if (spec.get("volumeMode") or "Filesystem") != (claim.get("volumeMode") or "Filesystem"):
        return False
    want, have = _storage(pvc, "spec", "resources", "requests", "storage"), _storage(pv, "spec", "capacity", "storage")
    if want is None or have is None or have < want:
        return False
    try:
        selector = labels.parse(claim["selector"], "spec.selector") if claim.get("selector") is not None else labels.EVERYTHING
    except labels.SelectorError:
        return False
    return selector.matches((pv.get("metadata") or {}).get("labels") or {})


def best_match(pvc: dict[str, Any], pvs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A volume pre-bound to the claim, else the smallest Available unclaimed one that matches."""
    for pv in pvs:
        if prebound_to(pv, pvc) and matches(pv, pvc):
            return pv
    fits = [pv for pv in pvs if not (pv.get("spec") or {}).get("claimRef")
            and (pv.get("status") or {}).get("phase") == "Available" and not (pv.get("metadata") or {}).get("deletionTimestamp")
            and matches(pv, pvc)]
    fits.sort(key=lambda pv: (_storage(pv, "spec", "capacity", "storage"), pv["metadata"]["name"]))
    return fits[0] if fits else None


class VolumeBinder:
    """Start/stop component; see the module docstring."""

    def __init__(self, api_client: client.ApiClient, retry_s: float = 0.5) -> None:
        self.core = client.CoreV1Api(api_client)
        self.storage = client.StorageV1Api(api_client)
        self.queue = WorkQueue()
        self.pvs = Cache({"all": lambda _: ["all"]})
        self.claims = Cache({"unbound": lambda c: [] if (c.get("spec") or {}).get("volumeName") else ["unbound"]})
        self._warned: set[tuple[str, str]] = set()
        informers = [
            Informer("pv-volumes", self.core.list_persistent_volume, self._on_volume, cache=self.pvs),
            Informer("pv-claims", self.core.list_persistent_volume_claim_for_all_namespaces, self._on_claim,
                     cache=self.claims),
        ]
        self._loop = ControllerLoop("persistentvolume-controller", self.queue, informers, self._sync, retry_s=retry_s)

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def _on_volume(self, etype: str, pv: dict[str, Any]) -> None:
        if etype != "DELETED":
            self.queue.add(("volume", "", pv["metadata"]["name"]))
        ref = (pv.get("spec") or {}).get("claimRef")
        if isinstance(ref, dict) and ref.get("name"):
            self.queue.add(("claim", str(ref.get("namespace") or ""), str(ref["name"])))
        elif etype != "DELETED":  # a volume that may now fit a waiting claim
            for pvc in self.claims.by_index("unbound", "unbound"):
                self.queue.add(("claim", pvc["metadata"]["namespace"], pvc["metadata"]["name"]))

    def _on_claim(self, etype: str, pvc: dict[str, Any]) -> None:
        meta = pvc["metadata"]
        if etype != "DELETED":
            self.queue.add(("claim", meta["namespace"], meta["name"]))
        volume = (pvc.get("spec") or {}).get("volumeName")
        if volume:
            self.queue.add(("volume", "", volume))

    def _sync(self, key: Any) -> None:
        kind, ns, name = key
        if kind == "volume":
            self.sync_volume(name)
        else:
            self.sync_claim(ns, name)

    # --- volumes -------------------------------------------------------------------------

    def _read_claim(self, ns: str, name: str) -> dict[str, Any] | None:
        return read_or_none(self.core.read_namespaced_persistent_volume_claim, name, ns)

    def _set_volume_phase(self, pv: dict[str, Any], phase: str) -> dict[str, Any]:
        if (pv.get("status") or {}).get("phase") == phase:
            return pv
        pv["status"] = {**(pv.get("status") or {}), "phase": phase}
        return _raw(self.core.replace_persistent_volume_status(pv["metadata"]["name"], pv, _preload_content=False))

    def sync_volume(self, name: str) -> None:
        pv = _raw(self.core.read_persistent_volume(name, _preload_content=False))
        if pv["metadata"].get("deletionTimestamp"):
            return
        ref = (pv.get("spec") or {}).get("claimRef")
        if not isinstance(ref, dict) or not ref.get("name"):
            self._set_volume_phase(pv, "Available")
            return
        pvc = self._read_claim(str(ref.get("namespace") or ""), str(ref["name"]))
        if pvc is None or (ref.get("uid") and pvc["metadata"]["uid"] != ref["uid"]):
            if not ref.get("uid"):
                self._set_volume_phase(pv, "Available")  # pre-bound to a claim that does not exist yet
            elif (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") == "Delete":
                self.core.delete_persistent_volume(name, _preload_content=False)
                logger.info("volume_deleted", volume=name, reason="claim gone, reclaim policy Delete")
            else:
                self._set_volume_phase(pv, "Released")
            return
        if (pvc.get("spec") or {}).get("volumeName") == name:
            self._set_volume_phase(pv, "Bound")
        else:
            self._set_volume_phase(pv, "Available")  # the claim's sync completes the bind

    # --- claims --------------------------------------------------------------------------

    def _binding_mode(self, pvc: dict[str, Any]) -> str:
        """The claim's class's binding mode, read now: a class created just before its claim may not
        have reached a cache yet, and binding a WaitForFirstConsumer claim early cannot be undone."""
        name = claim_class(pvc)
        if not name:
            return "Immediate"
        sc = read_or_none(self.storage.read_storage_class, name)
        return str((sc or {}).get("volumeBindingMode") or "Immediate")

    def _event_once(self, pvc: dict[str, Any], etype: str, reason: str, message: str) -> None:
        key = (pvc["metadata"]["uid"], reason)
        if key not in self._warned:
            self._warned.add(key)
            post_event(self.core, pvc, etype, reason, message, COMPONENT)

    def sync_claim(self, ns: str, name: str) -> None:
        pvc = self._read_claim(ns, name)
        if pvc is None or pvc["metadata"].get("deletionTimestamp"):
            return
        volume = (pvc.get("spec") or {}).get("volumeName")
        if volume:
            pv = self.pvs.get("", volume)
            if pv is None:
                if (pvc.get("status") or {}).get("phase") == "Bound":
                    self._claim_status(pvc, "Lost", None)
                    self._event_once(pvc, "Warning", "ClaimLost",
                                     "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!")
                return
            ref = (pv.get("spec") or {}).get("claimRef")
            if ref and not prebound_to(pv, pvc):
                self._event_once(pvc, "Warning", "FailedBinding", f"volume \"{volume}\" already bound to a different claim.")
                return
            self._bind(pv, pvc)
            return
        pvs = self.pvs.by_index("all", "all")
        prebound = next((pv for pv in pvs if prebound_to(pv, pvc)), None)
        if prebound is None and self._binding_mode(pvc) == "WaitForFirstConsumer" and \
                SELECTED_NODE not in ((pvc["metadata"].get("annotations")) or {}):
            self._event_once(pvc, "Normal", "WaitForFirstConsumer",
                             "waiting for first consumer to be created before binding")
            return
        pv = prebound or best_match(pvc, pvs)
        if pv is None:
            cls = claim_class(pvc)
            message = ("no persistent volumes available for this claim and no storage class is set" if not cls else
                       f"no persistent volumes available for this claim of storage class \"{cls}\" (dynamic "
                       "provisioning is not emulated by the local cluster)")
            self._event_once(pvc, "Normal", "FailedBinding", message)
            return
        self._bind(pv, pvc)

    def _claim_status(self, pvc: dict[str, Any], phase: str, pv: dict[str, Any] | None) -> None:
        status = dict(pvc.get("status") or {})
        status["phase"] = phase
        if pv is not None:
            status["accessModes"] = list((pv.get("spec") or {}).get("accessModes") or [])
            status["capacity"] = dict((pv.get("spec") or {}).get("capacity") or {})
        if status != (pvc.get("status") or {}):
            pvc["status"] = status
            self.core.replace_namespaced_persistent_volume_claim_status(pvc["metadata"]["name"], pvc["metadata"]["namespace"],
                                                                        pvc, _preload_content=False)

    def _bind(self, pv: dict[str, Any], pvc: dict[str, Any]) -> None:
        """bindVolumeToClaim, bindClaimToVolume, then both statuses (each step re-run safely on retry)."""
        meta = pvc["metadata"]
        pv = _raw(self.core.read_persistent_volume(pv["metadata"]["name"], _preload_content=False))
        ref = (pv.get("spec") or {}).get("claimRef")
        if ref and not prebound_to(pv, pvc):
            return  # taken meanwhile: the volume's event brings the claim back to sync
        if not ref or not ref.get("uid"):
            pv["spec"]["claimRef"] = {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": meta["namespace"],
                                      "name": meta["name"], "uid": meta["uid"], "resourceVersion": meta["resourceVersion"]}
            if not ref:
                pv["metadata"].setdefault("annotations", {})[BOUND_BY_CONTROLLER] = "yes"
            pv = _raw(self.core.replace_persistent_volume(pv["metadata"]["name"], pv, _preload_content=False))
        pv = self._set_volume_phase(pv, "Bound")
        annotations = meta.get("annotations") or {}
        if pvc["spec"].get("volumeName") != pv["metadata"]["name"] or annotations.get(BIND_COMPLETED) != "yes":
            extra = {BIND_COMPLETED: "yes"}
            if pvc["spec"].get("volumeName") != pv["metadata"]["name"]:
                extra[BOUND_BY_CONTROLLER] = "yes"
            pvc["spec"]["volumeName"] = pv["metadata"]["name"]
            meta["annotations"] = {**annotations, **extra}
            pvc = _raw(self.core.replace_namespaced_persistent_volume_claim(meta["name"], meta["namespace"], pvc,
                                                                            _preload_content=False))
        self._claim_status(pvc, "Bound", pv)
        logger.info("claim_bound", namespace=meta["namespace"], claim=meta["name"], volume=pv["metadata"]["name"])
