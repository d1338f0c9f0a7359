"""Helpers for the deploy checks: render the chart with Helm's Go engine, load manifests, and
validate objects against the Kubernetes OpenAPI schemas of kubernetes-validate.

kubernetes_validate.validate() re-reads and re-compiles its JSON schemas on every call (~10 ms);
the chart and examples make hundreds of calls per run, so validators are compiled once per
(Kubernetes version, kind, apiVersion) here, from the same schema files and the same
Draft 2020-12 validator that kubernetes_validate uses.
"""

from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import referencing
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "deploy" / "helm" / "gpu-dra"
EXAMPLES_DIR = REPO / "deploy" / "examples"
KUBE_VERSIONS = ("1.34", "1.35")
RELEASE = "gpu-dra"
NAMESPACE = "gpu-dra-system"


@lru_cache(maxsize=1)
def chart() -> helm.Chart:
    return helm.Chart.load(CHART_DIR)


def render(values: dict[str, Any] | None = None, *, name: str = RELEASE, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """Every object the chart renders for `values`, in template order (a fresh copy per call)."""
    return copy.deepcopy(_render(json.dumps(values or {}, sort_keys=True), name, namespace))


@lru_cache(maxsize=64)
def _render(values_json: str, name: str, namespace: str) -> list[dict[str, Any]]:
    # Rendering is deterministic; tests render the same value sets many times.
    rendered = chart().render(values=json.loads(values_json), name=name, namespace=namespace, is_install=True)
    objects: list[dict[str, Any]] = []
    for path in sorted(rendered):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(rendered[path]) if doc)
    return objects


def load_manifests(path: Path) -> list[dict[str, Any]]:
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def example_files() -> list[Path]:
    return sorted(EXAMPLES_DIR.rglob("*.yaml"))


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj.get("kind") == kind]


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [obj for obj in objects if obj.get("kind") == kind and obj["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def _schema_dir(version: str) -> Path:
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    candidates = sorted(p for p in root.glob(f"v{version}.*-local-strict"))
    if not candidates:
        raise LookupError(f"kubernetes-validate ships no strict schemas for Kubernetes {version}")
    return candidates[-1]


@lru_cache(maxsize=None)
def _definitions(version: str) -> referencing.Resource:
    with (_schema_dir(version) / "_definitions.json").open() as handle:
        return referencing.Resource.from_contents(json.load(handle))


@lru_cache(maxsize=None)
def _validator(version: str, kind: str, api_version: str) -> jsonschema.protocols.Validator:
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = _schema_dir(version) / f"{kind.lower()}-{group_version}.json"
    if not path.exists():
        raise LookupError(f"no {version} schema for {api_version} {kind}")
    with path.open() as handle:
        schema = json.load(handle)
    resource = referencing.Resource.from_contents(schema)
    registry = _definitions(version) @ (resource @ referencing.Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def schema_errors(obj: dict[str, Any], version: str) -> list[str]:
    """Strict OpenAPI validation errors of `obj` for Kubernetes `version` (empty: valid)."""
    validator = _validator(version, obj["kind"], obj["apiVersion"])
    name = obj.get("metadata", {}).get("name", "?")
    return [
        f"{obj['kind']} {name}: {'/'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}"
        for err in validator.iter_errors(obj)
    ]
