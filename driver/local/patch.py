"""The three patch formats clients send: JSON patch, JSON merge patch, strategic merge patch.

Strategic merge is implemented for what kubectl and controllers patch on built-in types: lists
named in `MERGE_KEYS` merge element-wise by their key (containers by `name`, conditions by
`type`, ...), primitive lists with a merge strategy (finalizers) are unioned, and the `$patch`
(replace/delete), `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>` directives are
honoured. Any other list is replaced whole, which is also what the apiserver does for lists that
have no patch strategy.
"""

from __future__ import annotations

import copy
from typing import Any

from driver.local.errors import ApiError, bad_request

# List fields merged by key in strategic merge patches (field name -> merge key), from the
# patchMergeKey tags of the core/v1 and meta/v1 types.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "ports": "containerPort",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "volumes": "name",
    "conditions": "type",
    "resourceClaims": "name",
    "ownerReferences": "uid",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
    "resourceClaimStatuses": "name",
    "addresses": "type",
    "taints": "key",
    "topologySpreadConstraints": "topologyKey",
    "schedulingGates": "name",
}
# Primitive lists with patchStrategy=merge: patch entries are added to the existing ones.
MERGE_PRIMITIVE_LISTS = {"finalizers"}


# --- JSON patch (RFC 6902) -------------------------------------------------------------------

def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"json patch: path {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str) -> Any:
    cur = doc
    for part in parts[:-1]:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            raise ApiError(422, "Invalid", f"json patch: path {path!r} does not exist")
    return cur


def _index(container: list[Any], part: str, path: str, insert: bool) -> int:
    if part == "-" and insert:
        return len(container)
    if not part.isdigit():
        raise ApiError(422, "Invalid", f"json patch: {part!r} in {path!r} is not an array index")
    idx = int(part)
    if idx > len(container) or (idx == len(container) and not insert):
        raise ApiError(422, "Invalid", f"json patch: index {idx} out of range in {path!r}")
    return idx


def _get(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise ApiError(422, "Invalid", f"json patch: path {path!r} does not exist")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, path, False)]
    raise ApiError(422, "Invalid", f"json patch: path {path!r} does not exist")


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        raise ApiError(422, "Invalid", "json patch: cannot remove the whole document")
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise ApiError(422, "Invalid", f"json patch: cannot remove {path!r}: it does not exist")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, path, False))
    raise ApiError(422, "Invalid", f"json patch: cannot remove {path!r}")


def _add(doc: Any, path: str, value: Any, replace: bool = False) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise ApiError(422, "Invalid", f"json patch: cannot replace {path!r}: it does not exist")
        parent[last] = value
    elif isinstance(parent, list):
        idx = _index(parent, last, path, not replace)
        if replace:
            parent[idx] = value
        else:
            parent.insert(idx, value)
    else:
        raise ApiError(422, "Invalid", f"json patch: cannot add at {path!r}")
    return doc


def json_patch(doc: dict[str, Any], ops: Any) -> dict[str, Any]:
    """Apply an RFC 6902 patch to a copy of `doc`; a failed `test` is a 422, like the apiserver."""
    if not isinstance(ops, list):
        raise bad_request("json patch: the body must be a JSON array of operations")
    out: Any = copy.deepcopy(doc)
    for i, op in enumerate(ops):
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"json patch: operation {i} needs 'op' and 'path'")
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise bad_request(f"json patch: operation {i} ({kind}) needs 'value'")
        if kind == "add":
            out = _add(out, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            _remove(out, path)
        elif kind == "replace":
            out = _add(out, path, copy.deepcopy(op["value"]), replace=True)
        elif kind in ("move", "copy"):
            if "from" not in op:
                raise bad_request(f"json patch: operation {i} ({kind}) needs 'from'")
            value = _remove(out, op["from"]) if kind == "move" else copy.deepcopy(_get(out, op["from"]))
            out = _add(out, path, value)
        elif kind == "test":
            if _get(out, path) != op["value"]:
                raise ApiError(422, "Invalid", f"json patch: test operation failed at {path!r}")
        else:
            raise bad_request(f"json patch: unknown operation {kind!r} in operation {i}")
    if not isinstance(out, dict):
        raise bad_request("json patch: the result is not an object")
    return out


# --- JSON merge patch (RFC 7386) -------------------------------------------------------------

def merge_patch(doc: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


# --- strategic merge patch -------------------------------------------------------------------

def _merge_keyed_list(field: str, old: list[Any], patch: list[Any], key: str) -> list[Any]:
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [copy.deepcopy(p) for p in patch if not (isinstance(p, dict) and p.get("$patch") == "replace")]
    out = [copy.deepcopy(o) for o in old]
    for item in patch:
        if not isinstance(item, dict):
            raise bad_request(f"strategic merge patch: items of {field!r} must be objects with {key!r}")
        if key not in item:
            raise bad_request(f"strategic merge patch: an item of {field!r} lacks its merge key {key!r}")
        pos = next((i for i, o in enumerate(out) if isinstance(o, dict) and o.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if pos is not None:
                out.pop(pos)
            continue
        if pos is None:
            out.append(strategic_merge({}, item))
        else:
            out[pos] = strategic_merge(out[pos], item)
    return out


def strategic_merge(doc: Any, patch: Any) -> Any:
    """Strategic merge of `patch` into a copy of `doc` (see the module docstring for the rules)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    out = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    deletions: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key == "$patch" or key == "$retainKeys":
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            deletions[key.split("/", 1)[1]] = value if isinstance(value, list) else []
            continue
        if value is None:
            out.pop(key, None)
        elif isinstance(value, list) and key in MERGE_KEYS and isinstance(out.get(key), list):
            out[key] = _merge_keyed_list(key, out[key], value, MERGE_KEYS[key])
        elif isinstance(value, list) and key in MERGE_KEYS:
            out[key] = _merge_keyed_list(key, [], value, MERGE_KEYS[key])
        elif isinstance(value, list) and key in MERGE_PRIMITIVE_LISTS:
            merged = list(out.get(key) or [])
            merged += [v for v in value if v not in merged]
            out[key] = merged
        elif isinstance(value, dict):
            merged_value = strategic_merge(out.get(key), value)
            if merged_value is None:
                out.pop(key, None)
            else:
                out[key] = merged_value
        else:
            out[key] = copy.deepcopy(value)
    for key, drop in deletions.items():
        if isinstance(out.get(key), list):
            out[key] = [v for v in out[key] if v not in drop]
    return out


JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


def apply(content_type: str, doc: dict[str, Any], body: Any) -> dict[str, Any]:
    """Apply a patch body of `content_type` to `doc`; the caller validates the result."""
    if content_type == JSON_PATCH:
        return json_patch(doc, body)
    if not isinstance(body, dict):
        raise bad_request("patch body must be a JSON object")
    if content_type == MERGE_PATCH:
        return merge_patch(doc, body)
    if content_type == STRATEGIC_PATCH:
        out = strategic_merge(doc, body)
        return out if isinstance(out, dict) else {}
    raise ApiError(415, "UnsupportedMediaType",
                   f"patch type {content_type!r} is not supported; use {JSON_PATCH}, {MERGE_PATCH} or {STRATEGIC_PATCH}")
