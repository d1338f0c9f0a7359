"""The controller's view of the cluster: the pure `ClusterState`, kept current from informer events.

The allocator's `ClusterState` knows nodes, their device inventories and what is in use. This
module feeds it: Node and ResourceSlice events (re)build a node, allocated claims and bound pods
are *accounted* on their node, and everything the scheduler itself decided is *assumed* until the
informers confirm it (kube-scheduler's assume cache). Accounting is keyed by object UID and
remembers exactly what it added, so every event can be applied idempotently: the same allocation
seen twice counts once; a changed allocation is released and re-added; a node whose slices change
is rebuilt and everything on it re-added against the new inventory.

Pools not tied to one node (`allNodes`, `nodeSelector`: network-attached devices) are offered to
every node they select: a node's inventory is its own slices plus those pools, re-evaluated when
its labels or such a slice change. A claim's allocation is accounted in two parts: devices of its
node (lost with the node) and shared-pool devices, whose use is global (`ClusterState.shared`)
and outlives any one node — a claim allocated only from shared pools belongs to no node at all.

Why assumptions: between our decision and the informer's echo of our writes, a stale event (the
claim as it was before we allocated it) must not free devices we just handed out — that is how a
scheduler double-allocates. An assumed claim ignores such stale events until the informer shows
our allocation, or shows a newer resourceVersion than our write (then the API is the truth).

One re-entrant lock guards the state: informer threads apply events, the scheduler reads it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

from driver import log
from driver.controller.objects import (
    allocation_node, allocation_signature, node_fields, node_labels, pod_claim_keys, pod_index_fields, pod_is_done,
    pod_resources, pool_of, pools_of, rv_newer,
)
from driver.scheduler.labels import SelectorError
from driver.scheduler.plugins import noderesources as nodefit
from driver.scheduler.podinfo import PodInfo, pod_info
from driver.allocator.inventory import NodeInventory, SliceError, build_inventories, build_shared_inventory, slice_nodes
from driver.scheduler.cycle import ClusterState, Placement
from driver.scheduler.packing.scoring import PackingConfig
from driver.allocator.usage import UsageError, picks_from_allocation

logger = log.get(__name__)


@dataclass
class _Acct:
    """One thing counted on a node: a claim's devices or a pod's cpu/memory."""

    node: str
    signature: tuple
    obj: dict  # the claim allocation or the pod, to recompute picks after a node rebuild
    placement: Placement | None = None  # what was committed to the state (None: node unknown)
    shared: Placement | None = None  # a claim's shared-pool devices, committed globally


@dataclass
class _Assumed:
    signature: tuple
    written_rv: str | None = None  # set once our write succeeded


@dataclass
class ClusterView:
    """See module docstring. `classes` is shared with the ClusterState (same dict object)."""

    config: PackingConfig = field(default_factory=PackingConfig)

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.classes: dict[str, dict] = {}
        self.state = ClusterState(self.classes, self.config)
        self.nodes: dict[str, dict] = {}
        self.slices: dict[str, dict[str, dict]] = {}  # node -> slice name -> slice
        self.shared_slices: dict[str, dict] = {}  # slice name -> slice of a pool not tied to one node
        self.shared_usable: list[dict] = []  # shared_slices minus pools that cannot be parsed
        self.shared_inventory = NodeInventory("")  # every shared-pool device, to resolve allocations
        self.inventories: dict[str, Any] = {}  # node -> parsed NodeInventory (kept while its slices stay)
        self.claims: dict[str, _Acct] = {}  # claim uid -> devices accounted
        self.pods: dict[str, _Acct] = {}  # pod uid -> cpu/memory accounted
        self.assumed_claims: dict[str, _Assumed] = {}
        self.assumed_pods: dict[str, str] = {}  # pod uid -> node
        self.allocations: dict[str, dict] = {}  # claim uid -> allocation we assume
        self.errors: list[str] = []  # accounting conflicts seen (kept short)
        self._by_node: dict[str, set[tuple[str, str]]] = {}  # node -> {("claim"|"pod", uid)} counted there

    # ---- informer handlers -----------------------------------------------------------------

    def on_class(self, event: str, old: dict | None, new: dict | None) -> None:
        with self.lock:
            if new is None:
                self.classes.pop((old or {}).get("metadata", {}).get("name", ""), None)
            else:
                self.classes[new["metadata"]["name"]] = new

    def on_node(self, event: str, old: dict | None, new: dict | None) -> bool:
        """Apply a Node event; True when something the scheduler reads changed (a status
        heartbeat is not: parked pods need not be woken for it)."""
        with self.lock:
            if new is None:
                name = (old or {}).get("metadata", {}).get("name", "")
                self.nodes.pop(name, None)
                self.inventories.pop(name, None)
                self.state.remove_node(name)
                for kind, uid in self._by_node.get(name, ()):
                    acct = (self.claims if kind == "claim" else self.pods)[uid]
                    acct.placement = None
                return True
            name = new["metadata"]["name"]
            before = self.nodes.get(name)
            self.nodes[name] = new
            if before is not None and node_fields(before) == node_fields(new):
                return False  # status heartbeats etc.: nothing the scheduler uses changed
            if before is not None and node_labels(before) != node_labels(new):
                self.inventories.pop(name, None)  # nodeSelector pools may now (not) match
            self._rebuild(name)
            return True

    def on_slice(self, event: str, old: dict | None, new: dict | None) -> None:
        obj = new or old or {}
        spec = obj.get("spec") or {}
        node = spec.get("nodeName")
        name = obj["metadata"]["name"]
        with self.lock:
            if not node or name in self.shared_slices:  # (or was: a slice may move to one node)
                still_shared = new is not None and not (new.get("spec") or {}).get("nodeName")
                self._on_shared_slice(name, new if still_shared else None)
                if not node:
                    return
            per_node = self.slices.setdefault(node, {})
            if new is None:
                per_node.pop(name, None)
            else:
                per_node[name] = new
            self.inventories.pop(node, None)
            if node in self.nodes:
                self._rebuild(node)

    def _on_shared_slice(self, name: str, new: dict | None) -> None:
        """A slice of an allNodes / nodeSelector pool changed (new None: it is gone): rebuild the
        nodes any slice of its pool reaches, before or after, and re-account the claims that use
        the pool (a device may have been withdrawn, or appeared for an allocation seen earlier)."""
        old = self.shared_slices.get(name)
        pools = {pool_of(s) for s in (old, new) if s is not None}
        labels = {n: node_labels(obj) for n, obj in self.nodes.items()}
        affected: set[str] = set()
        for s in self.shared_slices.values():
            if pool_of(s) in pools:
                affected |= slice_nodes(s, labels)
        if new is None:
            self.shared_slices.pop(name, None)
        else:
            self.shared_slices[name] = new
        for s in self.shared_slices.values():
            if pool_of(s) in pools:
                affected |= slice_nodes(s, labels)
        users = [(uid, acct) for uid, acct in self.claims.items() if pools & pools_of(acct.obj)]
        for _, acct in users:
            self._uncount_shared(acct)
        self._reparse_shared()
        for n in sorted(affected):
            self.inventories.pop(n, None)
            if n in self.nodes:
                self._rebuild(n)
        for uid, acct in users:
            self._place_shared(uid, acct)

    def _reparse_shared(self) -> None:
        """The shared-pool inventory from every slice not tied to a node; a pool that cannot be
        parsed is left out (and logged) rather than taking every other pool with it."""
        by_pool: dict[tuple[str, str], list[dict]] = {}
        for s in self.shared_slices.values():
            by_pool.setdefault(pool_of(s), []).append(s)
        usable: list[dict] = []
        for pool, slices in sorted(by_pool.items()):
            try:
                build_shared_inventory(slices)
            except SliceError as exc:
                logger.error("bad_slice", pool="/".join(pool), error=str(exc))
                continue
            usable.extend(slices)
        self.shared_usable = usable
        self.shared_inventory = build_shared_inventory(usable)

    def on_claim(self, event: str, old: dict | None, new: dict | None) -> None:
        obj = new or old or {}
        meta = obj.get("metadata") or {}
        uid = meta.get("uid", "")
        alloc = ((new or {}).get("status") or {}).get("allocation") if new is not None else None
        sig = allocation_signature(alloc)
        with self.lock:
            assumed = self.assumed_claims.get(uid)
            if assumed is not None:
                if sig == assumed.signature or (
                    assumed.written_rv is not None and rv_newer(meta.get("resourceVersion"), assumed.written_rv)
                ):
                    del self.assumed_claims[uid]  # confirmed, or superseded by a newer truth
                    self.allocations.pop(uid, None)
                else:
                    return  # stale view of a claim we are writing: ignore
            acct = self.claims.get(uid)
            if acct is not None and acct.signature == sig:
                return
            if acct is not None:
                self._uncount(self._pop("claim", uid))
            if alloc:
                self._count_claim(uid, self._claim_node(alloc), sig, alloc)

    def on_pod(self, event: str, old: dict | None, new: dict | None) -> None:
        obj = new or old or {}
        uid = (obj.get("metadata") or {}).get("uid", "")
        node = ((new or {}).get("spec") or {}).get("nodeName") if new is not None else None
        if new is not None and pod_is_done(new):
            node = None
        with self.lock:
            assumed = self.assumed_pods.get(uid)
            if assumed is not None:
                if node == assumed or new is None or (new is not None and pod_is_done(new)):
                    del self.assumed_pods[uid]
                else:
                    return  # informer has not seen our binding yet
            acct = self.pods.get(uid)
            if acct is not None and acct.node == node:
                if new is not None:
                    if pod_resources(new) != pod_resources(acct.obj):  # resized in place: count it anew
                        self._uncount(self._pop("pod", uid))
                        self._count_pod(uid, node, new)  # type: ignore[arg-type]
                        return
                    changed = pod_index_fields(new) != pod_index_fields(acct.obj)
                    acct.obj = new
                    info = self.state.pods.get(uid)
                    if changed or info is None:  # labels or termination: what the inter-pod constraints see
                        self._index_pod(uid, node, new)
                    else:
                        info.obj = new  # e.g. its claim statuses, which preemption reads
                return
            if acct is not None:
                self._uncount(self._pop("pod", uid))
            if node:
                self._count_pod(uid, node, new)  # type: ignore[arg-type]

    # ---- assumptions made by the scheduler -------------------------------------------------

    def assume(self, pod: dict, node: str, allocations: dict[str, tuple[str, dict]]) -> None:
        """Count a decision now: `allocations` maps claim uid -> (claim name, allocation)."""
        with self.lock:
            for uid, (_, alloc) in allocations.items():
                sig = allocation_signature(alloc)
                self.assumed_claims[uid] = _Assumed(sig)
                self.allocations[uid] = alloc
                old = self._pop("claim", uid)
                if old is not None:
                    self._uncount(old)
                self._count_claim(uid, self._claim_node(alloc), sig, alloc)
            uid = pod["metadata"]["uid"]
            self.assumed_pods[uid] = node
            old = self._pop("pod", uid)
            if old is not None:
                self._uncount(old)
            self._count_pod(uid, node, pod)

    def keep_counting(self, claim_uid: str) -> None:
        """A rollback we could not confirm: the claim's devices stay counted (they may still be
        allocated in the API) but our allocation is no longer assumed, so the pod is decided anew
        rather than pinned to it; the claim's next event from the informer is the truth."""
        with self.lock:
            a = self.assumed_claims.get(claim_uid)
            if a is not None:
                a.written_rv = "0"
            self.allocations.pop(claim_uid, None)

    def is_assumed_bound(self, pod_uid: str) -> bool:
        """Did we decide (and bind) this pod, with the informer yet to show its node?"""
        with self.lock:
            return pod_uid in self.assumed_pods

    def rekey_claim(self, old_uid: str, new_uid: str) -> None:
        """An assumed claim got its real uid (we created it): move the assumption, atomically."""
        with self.lock:
            if old_uid in self.assumed_claims:
                self.assumed_claims[new_uid] = self.assumed_claims.pop(old_uid)
            if old_uid in self.allocations:
                self.allocations[new_uid] = self.allocations.pop(old_uid)
            acct = self.claims.pop(old_uid, None)
            if acct is not None:
                self.claims[new_uid] = acct
                on_node = self._by_node.get(acct.node)
                if on_node is not None and ("claim", old_uid) in on_node:
                    on_node.discard(("claim", old_uid))
                    on_node.add(("claim", new_uid))

    def written(self, claim_uid: str, resource_version: str | None) -> None:
        """Our write of an assumed claim succeeded at `resource_version`."""
        with self.lock:
            a = self.assumed_claims.get(claim_uid)
            if a is not None:
                a.written_rv = resource_version or "0"

    def forget(self, pod: dict, claim_uids: list[str]) -> None:
        """Undo `assume` (a write or the binding failed and was rolled back)."""
        with self.lock:
            for uid in claim_uids:
                if self.assumed_claims.pop(uid, None) is not None:
                    self.allocations.pop(uid, None)
                    acct = self._pop("claim", uid)
                    if acct is not None:
                        self._uncount(acct)
            uid = pod["metadata"]["uid"]
            if self.assumed_pods.pop(uid, None) is not None:
                acct = self._pop("pod", uid)
                if acct is not None:
                    self._uncount(acct)

    def allocation_of(self, claim: dict) -> dict | None:
        """The claim's allocation as we know it (our assumption beats a stale cache)."""
        uid = claim["metadata"].get("uid", "")
        with self.lock:
            if uid in self.allocations:
                return self.allocations[uid]
        return (claim.get("status") or {}).get("allocation")

    def node_of(self, claim: dict) -> str | None:
        """The one node an allocated claim is bound to; None when unallocated or when its
        allocation is usable from several nodes (shared pools only: see its nodeSelector)."""
        alloc = self.allocation_of(claim)
        if not alloc:
            return None
        uid = claim["metadata"].get("uid", "")
        with self.lock:
            acct = self.claims.get(uid)
            return (acct.node if acct else self._claim_node(alloc)) or None

    def freed_by(self, victim: PodInfo, claim: Callable[[str], dict | None]) -> list[Placement]:
        """What evicting `victim` frees (preemption): its cpu/memory/pod slot and the node-local
        devices of the claims it alone reserves (a claim another pod also uses stays allocated).
        `claim` looks a claim up by "namespace/name"."""
        with self.lock:
            out = []
            acct = self.pods.get(victim.uid)
            if acct is not None and acct.placement is not None:
                out.append(acct.placement)
            for key in pod_claim_keys(victim.obj):
                obj = claim(key)
                if obj is None:
                    continue
                reserved = {r.get("uid") for r in (obj.get("status") or {}).get("reservedFor") or []}
                if reserved - {victim.uid}:
                    continue
                cacct = self.claims.get(obj["metadata"].get("uid", ""))
                if cacct is not None and cacct.placement is not None:
                    out.append(cacct.placement)
            return out

    # ---- internals -------------------------------------------------------------------------

    def _claim_node(self, alloc: Mapping[str, Any]) -> str:
        """The node an allocation pins its claim to, or "" (shared-pool devices only)."""
        return allocation_node(alloc) or self._node_of_results(alloc) or ""

    def _pop(self, kind: str, uid: str) -> _Acct | None:
        acct = (self.claims if kind == "claim" else self.pods).pop(uid, None)
        if kind == "pod":
            self.state.pods.remove(uid)
        if acct is not None:
            on_node = self._by_node.get(acct.node)
            if on_node is not None:
                on_node.discard((kind, uid))
                if not on_node:
                    del self._by_node[acct.node]
        return acct

    def _node_of_results(self, alloc: Mapping[str, Any]) -> str | None:
        for r in ((alloc.get("devices") or {}).get("results")) or []:
            for node, per in self.slices.items():
                for s in per.values():
                    if (s.get("spec") or {}).get("pool", {}).get("name") == r.get("pool"):
                        return node
        return None

    def _commit(self, node: str, requests: nodefit.Resources, picks: tuple, label: str) -> Placement | None:
        if node not in self.state.nodes:
            return None
        placement = Placement(label, node, {}, (), "", requests, picks)
        try:
            self.state.commit(placement)
        except UsageError as exc:
            # Two allocations of one device in the API: not ours to fix, but never hide it.
            logger.error("accounting_conflict", node=node, what=label, error=str(exc))
            self.errors = (self.errors + [f"{label}: {exc}"])[-50:]
            return None
        return placement

    def _count_claim(self, uid: str, node: str, sig: tuple, alloc: dict) -> None:
        acct = _Acct(node, sig, alloc)
        self.claims[uid] = acct
        if node:
            self._by_node.setdefault(node, set()).add(("claim", uid))
            self._place_claim(uid, acct)
        self._place_shared(uid, acct)

    def _place_claim(self, uid: str, acct: _Acct) -> None:
        """Commit the claim's devices local to its node (its shared-pool ones: `_place_shared`)."""
        state = self.state.nodes.get(acct.node)
        if state is None:
            return
        try:
            picks = tuple(p for p in picks_from_allocation(state.inventory, acct.obj) if not p.device.shared_pool)
        except UsageError as exc:
            logger.error("bad_allocation", claim_uid=uid, error=str(exc))
            return
        acct.placement = self._commit(acct.node, nodefit.Resources(0, 0, 0), picks, f"claim {uid}")

    def _place_shared(self, uid: str, acct: _Acct) -> None:
        """Commit the claim's shared-pool devices globally: in use for every node that sees them."""
        try:
            picks = tuple(picks_from_allocation(self.shared_inventory, acct.obj))
        except UsageError as exc:
            logger.error("bad_allocation", claim_uid=uid, error=str(exc))
            return
        if not picks:
            return
        try:
            self.state.commit_shared(picks)
        except UsageError as exc:
            logger.error("accounting_conflict", what=f"claim {uid}", error=str(exc))
            self.errors = (self.errors + [f"claim {uid}: {exc}"])[-50:]
            return
        acct.shared = Placement(f"claim {uid}", "", {}, (), "", nodefit.Resources(0, 0, 0), picks)

    def _uncount_shared(self, acct: _Acct) -> None:
        if acct.shared is not None:
            try:
                self.state.release_shared(acct.shared.picks)
            except UsageError as exc:
                logger.error("accounting_release_failed", what=acct.shared.pod, error=str(exc))
            acct.shared = None

    def _count_pod(self, uid: str, node: str, pod: dict) -> None:
        acct = _Acct(node, (), pod)
        self.pods[uid] = acct
        self._by_node.setdefault(node, set()).add(("pod", uid))
        self._index_pod(uid, node, pod)
        self._place_pod(acct)

    def _index_pod(self, uid: str, node: str, pod: dict) -> None:
        """Put the pod in the snapshot's pod index (affinity, spread, ports, preemption)."""
        try:
            info = pod_info(pod, node)
        except (nodefit.PodSpecError, SelectorError) as exc:
            logger.error("bad_pod", pod=(pod.get("metadata") or {}).get("name"), error=str(exc))
            info = None
        self.state.pods.remove(uid)
        if info is not None:
            info.uid = uid
            self.state.pods.add(info)

    def on_namespace(self, event: str, old: dict | None, new: dict | None) -> None:
        obj = new or old or {}
        name = (obj.get("metadata") or {}).get("name", "")
        with self.lock:
            self.state.pods.set_namespace(name, None if new is None else (new["metadata"].get("labels") or {}))

    def on_volume(self, kind: str, event: str, old: dict | None, new: dict | None) -> None:
        """A PersistentVolumeClaim, PersistentVolume or StorageClass changed (VolumeBinding reads them)."""
        obj = new or old or {}
        meta = obj.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}" if kind == "pvc" else str(meta.get("name", ""))
        setter = {"pvc": self.state.volumes.set_pvc, "pv": self.state.volumes.set_pv,
                  "storageclass": self.state.volumes.set_storage_class}[kind]
        with self.lock:
            setter(key, new)

    def _place_pod(self, acct: _Acct) -> None:
        info = self.state.pods.get((acct.obj.get("metadata") or {}).get("uid", ""))
        if info is not None and info.node == acct.node:
            requests = info.requests  # parsed once, when the pod entered the index
        else:
            try:
                requests = nodefit.pod_requests(acct.obj)
            except nodefit.PodSpecError:
                requests = nodefit.Resources(0, 0, 1)
        acct.placement = self._commit(acct.node, requests, (), f"pod {acct.obj['metadata'].get('name')}")

    def _uncount(self, acct: _Acct) -> None:
        if acct.placement is not None and acct.node in self.state.nodes:
            try:
                self.state.release(acct.placement)
            except UsageError as exc:
                logger.error("accounting_release_failed", node=acct.node, error=str(exc))
        acct.placement = None
        self._uncount_shared(acct)

    def _rebuild(self, name: str) -> None:
        """(Re)create a node in the state from its Node and slices, then re-add what runs there."""
        node = self.nodes[name]
        inventory = self.inventories.get(name)
        if inventory is None:
            try:
                slices = list(self.slices.get(name, {}).values()) + self.shared_usable
                inventory = build_inventories(slices, {name: node_labels(node)}).get(name) or NodeInventory(name)
                self.inventories[name] = inventory
            except SliceError as exc:
                logger.error("bad_slice", node=name, error=str(exc))
                inventory = None
        try:
            self.state.add_node(node, inventory)
        except nodefit.PodSpecError as exc:
            logger.error("bad_node", node=name, error=str(exc))
            self.state.remove_node(name)
            return
        for kind, uid in sorted(self._by_node.get(name, ())):
            if kind == "claim":
                acct = self.claims[uid]
                acct.placement = None
                self._place_claim(uid, acct)
            else:
                acct = self.pods[uid]
                acct.placement = None
                self._place_pod(acct)
