"""Owner-reference garbage collection for the store (the kube-controller-manager GC's job).

Background: when an owner goes, dependents whose owners are all gone are deleted. Foreground:
the owner waits (finalizer `foregroundDeletion`) until no dependent with blockOwnerDeletion is
left. Orphan: dependents lose the reference and stay. Every function runs with the store lock
held, from the store's GC thread or from a delete.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from driver import log
from driver.local import errors

if TYPE_CHECKING:
    from driver.local.store import Store

logger = log.get(__name__)
FOREGROUND = "foregroundDeletion"


def orphan(store: "Store", owner_uid: str) -> None:
    """propagationPolicy=Orphan: dependents drop their reference to the owner and stay."""
    for res_key, key in list(store._dependents.get(owner_uid, ())):
        coll = store._collections[res_key]
        old = coll.objects.get(key)
        if old is None:
            continue
        new = copy.deepcopy(old)
        refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != owner_uid]
        new["metadata"]["ownerReferences"] = refs
        if not refs:
            del new["metadata"]["ownerReferences"]
        store._commit(coll, key, new, "MODIFIED", old)


def collect(store: "Store", owner_uid: str) -> None:
    """The owner is gone: delete each dependent none of whose owners exists any more."""
    for res_key, key in list(store._dependents.pop(owner_uid, ())):
        coll = store._collections[res_key]
        obj = coll.objects.get(key)
        if obj is None:
            continue
        owners = [r.get("uid") for r in obj["metadata"].get("ownerReferences") or []]
        if any(u in store._uids for u in owners):
            continue
        logger.debug("gc_delete", resource=res_key, namespace=key[0], name=key[1], owner_uid=owner_uid)
        try:
            store.delete(coll.resource, key[0], key[1])
        except errors.ApiError:
            pass


def delete_dependents(store: "Store", owner_uid: str) -> None:
    """Foreground: delete the dependents now; ones with another live owner only lose the reference."""
    for res_key, key in list(store._dependents.get(owner_uid, ())):
        coll = store._collections[res_key]
        obj = coll.objects.get(key)
        if obj is None:
            continue
        others = [r.get("uid") for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != owner_uid]
        if any(u in store._uids for u in others):
            new = copy.deepcopy(obj)
            new["metadata"]["ownerReferences"] = [r for r in new["metadata"]["ownerReferences"]
                                                  if r.get("uid") != owner_uid]
            store._commit(coll, key, new, "MODIFIED", obj)
            continue
        try:
            store.delete(coll.resource, key[0], key[1])
        except errors.ApiError:
            pass


def finish_foreground(store: "Store", owner_uid: str) -> None:
    """Remove the foregroundDeletion finalizer once no dependent blocks its owner."""
    where = store._uids.get(owner_uid)
    if where is None:
        return
    coll = store._collections[where[0]]
    owner = coll.objects[where[1]]
    if FOREGROUND not in (owner["metadata"].get("finalizers") or []):
        return
    for res_key, key in store._dependents.get(owner_uid, ()):
        dep = store._collections[res_key].objects.get(key)
        refs = (dep or {}).get("metadata", {}).get("ownerReferences") or []
        if any(r.get("uid") == owner_uid and r.get("blockOwnerDeletion") for r in refs):
            return
    new = copy.deepcopy(owner)
    new["metadata"]["finalizers"] = [f for f in new["metadata"]["finalizers"] if f != FOREGROUND]
    store._finish_update(coll, where[1], owner, new, False)
