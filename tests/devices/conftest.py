"""Fixtures for device-model tests: a cached official-schema validator (kubernetes-validate).

kubernetes_validate.validate() re-reads and re-resolves its JSON schema on every call (~10 ms);
hundreds of slices per test run make that the slowest part of the suite. The schema files are
the same ones it uses; we build one jsonschema validator per (version, kind) and reuse it.

Validating a 64-device slice still takes ~150 ms in pure-Python jsonschema. The ResourceSlice
schema constrains device entries only by key names and JSON types (no patterns, enums, bounds or
maxItems below `spec.devices`; formats are annotations, as in kubernetes-validate), so two
devices with the same shape — same keys (map keys aside: attributes, capacity and counters are
free-keyed), same leaf types — get the same verdict. We validate each
slice with one device per distinct shape, which is exact and ~20x faster.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from referencing import Registry, Resource

SCHEMA_ROOT = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"


@lru_cache(maxsize=None)
def _validator(version: str, kind: str, api_version: str) -> jsonschema.protocols.Validator:
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    folder = SCHEMA_ROOT / f"v{version}.0-local-strict"
    schema = json.loads((folder / f"{kind.lower()}-{group_version}.json").read_text())
    defs = json.loads((folder / "_definitions.json").read_text())
    registry = Resource.from_contents(defs) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


# Free-keyed maps of the schema (additionalProperties): their keys do not affect validation.
_MAPS = {"attributes", "capacity", "counters"}


def _shape(value: Any, is_map: bool = False) -> Any:
    if isinstance(value, dict):
        if is_map:
            return sorted({json.dumps(_shape(v), sort_keys=True) for v in value.values()})
        return {k: _shape(v, k in _MAPS) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def _one_per_shape(items: list[Any]) -> list[Any]:
    seen: dict[str, Any] = {}
    for item in items:
        seen.setdefault(json.dumps(_shape(item), sort_keys=True), item)
    return list(seen.values())


def schema_errors(obj: dict[str, Any], version: str) -> list[str]:
    """Official-schema (strict) problems of `obj` for Kubernetes `version` ([] = valid)."""
    v = _validator(version, obj["kind"], obj["apiVersion"])
    spec = obj.get("spec")
    if obj.get("kind") == "ResourceSlice" and isinstance(spec, dict):
        reduced = dict(spec)
        for key in ("devices", "sharedCounters"):
            if isinstance(spec.get(key), list):
                reduced[key] = _one_per_shape(spec[key])
        obj = {**obj, "spec": reduced}
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(obj)]


@pytest.fixture(scope="session")
def k8s_schema():
    return schema_errors
