"""The object store behind the local API server: resourceVersions, watches, finalizers, GC.

Objects are kept as the wire dicts clients sent (plus server-set metadata) together with their
serialized JSON, so a list of thousands of ResourceSlices is a byte join, not a re-encode.
Stored dicts are never mutated in place: every write builds a new dict, which is what lets
readers (and watch events) hand them out without copying.

One re-entrant lock guards everything; writes are short (validation runs before the commit,
inside the lock, so two writers can never both pass a resourceVersion check). Every committed
change is appended to a bounded per-type history that watches read from; a watch or continue
token older than what that history still holds gets 410 Expired, like etcd compaction.

Which metadata fields the server sets and keeps on a write is decided by `objectmeta`; watch
cursors are in `watches`, garbage collection in `gc`.
"""

from __future__ import annotations

import base64
import binascii
import collections
import copy
import json
import queue
import random
import threading
from dataclasses import dataclass, field
from typing import Any

from driver import log
from driver.local import admission, errors, gc, scheduling, strategy
from driver.local.objectmeta import (
    create_body_meta, drop_carried_rv, generated_name, merge_update, meta_of, now_rfc3339, stamp_created,
    update_body_meta,
)
from driver.local.resources import RESOURCES, Resource
from driver.local.selectors import Predicate

logger = log.get(__name__)

Key = tuple[str, str]  # (namespace or "", name)
FOREGROUND = gc.FOREGROUND


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class Event:
    """One committed change: what watchers receive."""

    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    obj: dict[str, Any]
    prev: dict[str, Any] | None  # the object before (for selector transitions)
    raw: bytes  # serialized obj


@dataclass
class Collection:
    """All objects of one resource type, plus its bounded change history."""

    resource: Resource
    objects: dict[Key, dict[str, Any]] = field(default_factory=dict)
    raw: dict[Key, bytes] = field(default_factory=dict)
    events: collections.deque[Event] = field(default_factory=collections.deque)
    compacted_rv: int = 0  # events at or below this may have been dropped
    changed: threading.Condition | None = None  # on the store's lock; wakes this collection's watchers only


@dataclass
class ListResult:
    items: list[bytes]
    objects: list[dict[str, Any]]  # the same items as stored dicts (do not mutate)
    resource_version: int
    continue_token: str
    remaining: int | None


class Store:
    """Thread-safe in-memory storage with Kubernetes semantics (see module docstring)."""

    def __init__(self, history: int = 10000) -> None:
        self.history = history
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)  # `with store.cond` = hold the store lock
        self.rv = 1
        self.stopped = False
        self._collections = {r.key: Collection(r, changed=threading.Condition(self.lock)) for r in RESOURCES}
        self._uids: dict[str, tuple[str, Key]] = {}
        self._dependents: dict[str, set[tuple[str, Key]]] = collections.defaultdict(set)
        self._gc_queue: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._gc_thread = threading.Thread(target=self._gc_loop, name="local-gc", daemon=True)
        self._gc_thread.start()
        self._rand = random.Random()
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create(self.resource("namespaces"), "", {"metadata": {"name": ns}})
        for pc in scheduling.system_class_bodies():  # the apiserver's bootstrap creates these
            self.create(self.resource("scheduling.k8s.io/priorityclasses"), "", pc)

    def close(self) -> None:
        """Stop the GC worker and wake every watcher so that they end."""
        with self.cond:
            self.stopped = True
            for coll in self._collections.values():
                assert coll.changed is not None
                coll.changed.notify_all()
        self._gc_queue.put(None)
        self._gc_thread.join(timeout=5)

    def resource(self, key: str) -> Resource:
        return self._collections[key].resource

    def collection(self, res: Resource) -> Collection:
        return self._collections[res.key]

    # --- reads ---------------------------------------------------------------------------

    def get(self, res: Resource, ns: str, name: str) -> dict[str, Any]:
        """The stored object (do not mutate it)."""
        with self.cond:
            obj = self.collection(res).objects.get((ns, name))
        if obj is None:
            raise errors.not_found(res.plural, name, res.group)
        return obj

    def get_raw(self, res: Resource, ns: str, name: str) -> bytes:
        with self.cond:
            raw = self.collection(res).raw.get((ns, name))
        if raw is None:
            raise errors.not_found(res.plural, name, res.group)
        return raw

    def list(
        self,
        res: Resource,
        ns: str | None,
        pred: Predicate | None = None,
        limit: int = 0,
        continue_token: str = "",
    ) -> ListResult:
        """Objects sorted by namespace/name, from `continue_token` on, at most `limit` of them."""
        start: Key | None = None
        token_rv = 0
        if continue_token:
            token_rv, start = self._decode_continue(continue_token)
        with self.cond:
            coll = self.collection(res)
            if token_rv and token_rv < coll.compacted_rv:
                raise errors.expired(
                    "The provided continue parameter is too old to display a consistent list result. "
                    "You can start a new list without the continue parameter."
                )
            rv = token_rv or self.rv
            keys = sorted(k for k in coll.objects if (ns is None or k[0] == ns) and (start is None or k > start))
            items: list[bytes] = []
            objects: list[dict[str, Any]] = []
            last_index = -1
            for i, key in enumerate(keys):
                if pred is not None and not pred(coll.objects[key]):
                    continue
                if limit and len(items) >= limit:
                    break
                items.append(coll.raw[key])
                objects.append(coll.objects[key])
                last_index = i
            token, remaining = "", None
            if limit and len(items) >= limit and last_index + 1 < len(keys):
                rest = keys[last_index + 1:]
                if pred is None or any(pred(coll.objects[k]) for k in rest):
                    token = self._encode_continue(rv, keys[last_index])
                    if pred is None:
                        remaining = len(rest)
        return ListResult(items, objects, rv, token, remaining)

    def list_objects(self, res: Resource, ns: str | None = None, pred: Predicate | None = None) -> list[dict[str, Any]]:
        """Stored objects (do not mutate), sorted by namespace/name: for in-process callers."""
        with self.cond:
            coll = self.collection(res)
            return [
                coll.objects[k]
                for k in sorted(coll.objects)
                if (ns is None or k[0] == ns) and (pred is None or pred(coll.objects[k]))
            ]

    @staticmethod
    def _encode_continue(rv: int, key: Key) -> str:
        return base64.urlsafe_b64encode(dumps({"v": 1, "rv": rv, "start": list(key)})).decode()

    @staticmethod
    def _decode_continue(token: str) -> tuple[int, Key]:
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode()))
            rv, start = int(data["rv"]), data["start"]
            return rv, (str(start[0]), str(start[1]))
        except (ValueError, KeyError, TypeError, IndexError, binascii.Error) as exc:
            raise errors.bad_request(f"continue key is not valid: {exc}") from None

    # --- writes --------------------------------------------------------------------------

    def _commit(self, coll: Collection, key: Key, obj: dict[str, Any] | None, etype: str,
                prev: dict[str, Any] | None) -> dict[str, Any]:
        """Store (or remove, obj=None) under a fresh resourceVersion and record the event."""
        self.rv += 1
        if obj is None:
            assert prev is not None
            gone = copy.copy(prev)
            gone["metadata"] = dict(meta_of(prev), resourceVersion=str(self.rv))
            del coll.objects[key]
            del coll.raw[key]
            uid = meta_of(prev).get("uid")
            self._uids.pop(uid, None)
            self._index_owners(coll.resource, key, prev, None)
            event_obj = gone
            raw = dumps(gone)
            self._gc_queue.put(("gone", uid))
            for ref in meta_of(prev).get("ownerReferences") or []:
                if isinstance(ref, dict) and ref.get("uid"):
                    self._gc_queue.put(("check", ref["uid"]))
        else:
            obj["metadata"]["resourceVersion"] = str(self.rv)
            raw = dumps(obj)
            coll.objects[key] = obj
            coll.raw[key] = raw
            self._uids[obj["metadata"]["uid"]] = (coll.resource.key, key)
            self._index_owners(coll.resource, key, prev, obj)
            event_obj = obj
            for ref in obj["metadata"].get("ownerReferences") or []:
                if isinstance(ref, dict) and ref.get("uid") and ref["uid"] not in self._uids:
                    self._gc_queue.put(("gone", ref["uid"]))  # a dangling owner: collect like a deleted one
        coll.events.append(Event(self.rv, etype, event_obj, prev, raw))
        if len(coll.events) > self.history:
            coll.compacted_rv = coll.events.popleft().rv
        assert coll.changed is not None
        coll.changed.notify_all()
        return event_obj

    def _index_owners(self, res: Resource, key: Key, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        for obj, add in ((old, False), (new, True)):
            if obj is None:
                continue
            for ref in meta_of(obj).get("ownerReferences") or []:
                uid = ref.get("uid") if isinstance(ref, dict) else None
                if not uid:
                    continue
                if add:
                    self._dependents[uid].add((res.key, key))
                else:
                    self._dependents[uid].discard((res.key, key))

    def create(self, res: Resource, ns: str, obj: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        """Create `obj` (a fresh dict the store takes over) in namespace `ns`."""
        meta = create_body_meta(res, ns, obj)
        with self.cond:
            if res.namespaced and ("", ns) not in self._collections["namespaces"].objects:
                raise errors.not_found("namespaces", ns)
            if res.namespaced and meta_of(self._collections["namespaces"].objects[("", ns)]).get("deletionTimestamp"):
                raise errors.ApiError(403, "Forbidden", f"unable to create new content in namespace {ns} because it is being terminated")
            if not meta.get("name") and meta.get("generateName"):
                objects = self.collection(res).objects
                meta["name"] = generated_name(str(meta["generateName"]), lambda name: (ns, name) in objects, self._rand)
            stamp_created(meta)
            strategy.prepare_create(res, obj)
            admission.mutate_create(self, res, obj)
            causes = strategy.validate(res, obj, None)
            if causes:
                raise errors.invalid(res.kind, str(meta.get("name") or ""), causes, res.group)
            coll = self.collection(res)
            key = (ns if res.namespaced else "", meta["name"])
            if key in coll.objects:
                raise errors.already_exists(res.plural, meta["name"], res.group)
            admission.validate_write(self, res, obj, None)
            if dry_run:
                return obj
            return self._commit(coll, key, obj, "ADDED", None)

    def update(
        self, res: Resource, ns: str, name: str, obj: dict[str, Any], subresource: str = "", dry_run: bool = False
    ) -> dict[str, Any]:
        """Replace an object (PUT); `subresource="status"` changes only status."""
        meta = update_body_meta(res, ns, name, obj)
        with self.cond:
            coll = self.collection(res)
            key = (ns if res.namespaced else "", name)
            old = coll.objects.get(key)
            if old is None:
                raise errors.not_found(res.plural, name, res.group)
            want_rv = meta.get("resourceVersion")
            if want_rv and str(want_rv) != old["metadata"]["resourceVersion"]:
                raise errors.conflict(res.plural, name, res.group)
            strategy.normalize(res, obj)  # before merging: canonical quantities decide whether the spec changed
            new = merge_update(res, old, obj, subresource)
            strategy.prepare_update(res, new, old)
            causes = strategy.validate(res, new, old)
            if causes:
                raise errors.invalid(res.kind, name, causes, res.group)
            if not subresource:
                admission.validate_write(self, res, new, old)
            return self._finish_update(coll, key, old, new, dry_run)

    def _finish_update(self, coll: Collection, key: Key, old: dict[str, Any], new: dict[str, Any],
                       dry_run: bool) -> dict[str, Any]:
        if new == old:
            return old  # a no-op write keeps the resourceVersion, as the apiserver does
        if dry_run:
            return new
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not meta.get("deletionGracePeriodSeconds"):
            return self._commit(coll, key, None, "DELETED", new)
        return self._commit(coll, key, new, "MODIFIED", old)

    def patch(self, res: Resource, ns: str, name: str, content_type: str, body: Any, subresource: str = "",
              dry_run: bool = False) -> dict[str, Any]:
        """Apply a patch to the current object atomically and store the result."""
        from driver.local import patch as patches

        with self.cond:
            old = self.get(res, ns, name)
            patched = patches.apply(content_type, old, body)
            if not isinstance(patched.get("metadata"), dict):
                raise errors.bad_request("the patched object has no metadata")
            patched["metadata"] = dict(patched["metadata"])  # a merge patch shares it with the stored object
            patched["metadata"].setdefault("name", name)
            drop_carried_rv(patched["metadata"], old["metadata"]["resourceVersion"], body)
            return self.update(res, ns, name, patched, subresource, dry_run)

    def bind(self, ns: str, name: str, binding: dict[str, Any]) -> dict[str, Any]:
        """pods/binding: set spec.nodeName once and mark the pod scheduled."""
        pods = self.resource("pods")
        target = binding.get("target") if isinstance(binding, dict) else None
        node = target.get("name") if isinstance(target, dict) else None
        if not node:
            raise errors.invalid("Binding", name, [("target.name", "Required value: the node to bind to")])
        with self.cond:
            old = self.get(pods, ns, name)
            uid = meta_of(binding).get("uid")
            if uid and uid != old["metadata"]["uid"]:
                raise errors.conflict("pods/binding", name, why=f"the UID in the binding ({uid}) does not match the pod's")
            if old["metadata"].get("deletionTimestamp"):
                raise errors.conflict("pods/binding", name, why=f"pod {name} is being deleted, cannot be assigned to a host")
            current = (old.get("spec") or {}).get("nodeName")
            if current:
                raise errors.conflict("pods/binding", name, why=f'pod {name} is already assigned to node "{current}"')
            if (old.get("spec") or {}).get("schedulingGates"):
                raise errors.conflict("pods/binding", name, why=f"pod {name} has non-empty .spec.schedulingGates")
            new = copy.deepcopy(old)
            new["spec"]["nodeName"] = node
            status = new.setdefault("status", {})
            status.pop("nominatedNodeName", None)  # ClearingNominatedNodeNameAfterBinding
            status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"
                                    or c.get("status") == "True"]  # the condition is replaced, reason and all
            extra = meta_of(binding).get("annotations")
            if isinstance(extra, dict) and extra:
                new["metadata"]["annotations"] = {**(new["metadata"].get("annotations") or {}), **extra}
            strategy.set_condition(new, "PodScheduled", "True")
            coll = self.collection(pods)
            return self._finish_update(coll, (ns, name), old, new, False)

    def delete(
        self,
        res: Resource,
        ns: str,
        name: str,
        grace_seconds: int | None = None,
        propagation: str | None = None,
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Delete, or start deleting (finalizers, pod grace). Returns (object, gone now)."""
        if propagation not in (None, "", "Orphan", "Background", "Foreground"):
            raise errors.bad_request(f"propagationPolicy: unsupported value {propagation!r}: expected Orphan, Background or Foreground")
        with self.cond:
            coll = self.collection(res)
            key = (ns if res.namespaced else "", name)
            old = self.get(res, ns, name)
            meta = old["metadata"]
            admission.check_delete(res, old)
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != meta["uid"]:
                raise errors.conflict(res.plural, name, res.group,
                                      f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {meta['uid']}")
            if pre.get("resourceVersion") and str(pre["resourceVersion"]) != meta["resourceVersion"]:
                raise errors.conflict(res.plural, name, res.group,
                                      f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                                      f"ResourceVersion in object meta: {meta['resourceVersion']}")
            if dry_run:
                return old, False
            if propagation == "Orphan":
                gc.orphan(self, meta["uid"])
            if propagation == "Foreground" and self._dependents.get(meta["uid"]) and not meta.get("deletionTimestamp"):
                new = copy.deepcopy(old)
                new["metadata"]["deletionTimestamp"] = now_rfc3339()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                new["metadata"]["finalizers"] = [*(meta.get("finalizers") or []), FOREGROUND]
                self._gc_queue.put(("foreground", meta["uid"]))
                return self._commit(coll, key, new, "MODIFIED", old), False
            grace = strategy.grace_period(res, old, grace_seconds)
            if not meta.get("finalizers") and grace == 0:
                if res.key == "namespaces":
                    self._delete_namespace_contents(name)
                return self._commit(coll, key, None, "DELETED", old), True
            if meta.get("deletionTimestamp") and grace >= int(meta.get("deletionGracePeriodSeconds") or 0):
                return old, False
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = now_rfc3339(grace)
            new["metadata"]["deletionGracePeriodSeconds"] = grace
            if res.key == "namespaces":
                new.setdefault("status", {})["phase"] = "Terminating"
                self._delete_namespace_contents(name)
            return self._commit(coll, key, new, "MODIFIED", old), False

    def _delete_namespace_contents(self, ns: str) -> None:
        for coll in self._collections.values():
            if not coll.resource.namespaced:
                continue
            for key in [k for k in coll.objects if k[0] == ns]:
                try:
                    self.delete(coll.resource, ns, key[1], grace_seconds=0)
                except errors.ApiError:
                    pass

    # --- garbage collection --------------------------------------------------------------

    def _gc_loop(self) -> None:
        """Background propagation (owner gone → dependents deleted) and foreground deletion."""
        while True:
            item = self._gc_queue.get()
            if item is None:
                return
            kind, uid = item
            try:
                with self.cond:
                    if self.stopped:
                        return
                    if kind == "gone":
                        gc.collect(self, uid)
                    elif kind == "foreground":
                        gc.delete_dependents(self, uid)
                        gc.finish_foreground(self, uid)
                    else:
                        gc.finish_foreground(self, uid)
            except Exception:  # the collector must outlive one bad object
                logger.exception("gc_failed", owner_uid=uid, step=kind)

    def exists_uid(self, uid: str) -> bool:
        with self.cond:
            return uid in self._uids

    # --- watches -------------------------------------------------------------------------

    def compact(self) -> int:
        """Drop all kept history (tests use this to provoke 410); returns the compaction rv."""
        with self.cond:
            for coll in self._collections.values():
                coll.events.clear()
                coll.compacted_rv = self.rv
            return self.rv

    def watch(self, res: Resource, ns: str | None, pred: Predicate | None, since: int | None) -> Any:
        """A `watches.Watch` from `since` (None: send the current objects as ADDED first)."""
        from driver.local.watches import Watch

        return Watch(self, self.collection(res), ns, pred, since)

