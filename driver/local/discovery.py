"""Discovery documents (/version, /api, /apis, /api/v1, /apis/<g>/<v>) built from the resource table.

kubectl first asks for aggregated discovery (apidiscovery.k8s.io/v2) and falls back to these
plain documents when the answer is plain JSON (FACTS §11), so only the plain forms are served.
"""

from __future__ import annotations

import platform
from typing import Any

from driver import __version__
from driver.local import resources
from driver.local.resources import Resource

KUBE_VERSION = ("1", "34")


def version() -> dict[str, Any]:
    major, minor = KUBE_VERSION
    return {
        "major": major,
        "minor": minor,
        "gitVersion": f"v{major}.{minor}.0-gpu-dra-local+{__version__}",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "python",
        "platform": f"{platform.system().lower()}/{platform.machine()}",
    }


def core_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def group_list() -> dict[str, Any]:
    groups = [_group(g, vs) for g, vs in resources.group_versions().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group(name: str) -> dict[str, Any] | None:
    versions = resources.group_versions().get(name)
    if not name or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}


def _entry(res: Resource) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": res.plural,
        "singularName": res.singular,
        "namespaced": res.namespaced,
        "kind": res.kind,
        "verbs": list(resources.VERBS),
    }
    if res.short_names:
        entry["shortNames"] = list(res.short_names)
    if res.categories:
        entry["categories"] = list(res.categories)
    return entry


def resource_list(group_name: str, version_name: str) -> dict[str, Any] | None:
    served = resources.by_group_version(group_name, version_name)
    if not served:
        return None
    items: list[dict[str, Any]] = []
    for res in served:
        items.append(_entry(res))
        for sub in res.subresources:
            if sub == "binding":
                items.append({"name": f"{res.plural}/binding", "singularName": "", "namespaced": True,
                              "kind": "Binding", "verbs": ["create"]})
            elif sub == "scale":
                # kubectl's scale client takes the Scale's group/version from this entry
                items.append({"name": f"{res.plural}/scale", "singularName": "", "namespaced": res.namespaced,
                              "group": "autoscaling", "version": "v1", "kind": "Scale",
                              "verbs": ["get", "patch", "update"]})
            else:
                items.append({"name": f"{res.plural}/{sub}", "singularName": "", "namespaced": res.namespaced,
                              "kind": res.kind, "verbs": ["get", "patch", "update"]})
    gv = f"{group_name}/{version_name}" if group_name else version_name
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": items}


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_root() -> dict[str, Any]:
    """/openapi/v3: one entry per group/version (kubectl reads it to find server-side field validation)."""
    paths = {}
    for group, versions in resources.group_versions().items():
        for version in versions:
            gv = _gv_path(group, version)
            paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={__version__}"}
    return {"paths": paths}


def openapi_v3_group_version(group: str, version: str) -> dict[str, Any] | None:
    """A minimal OpenAPI v3 document for one group/version: the create/update/patch operations with
    their GVK and the `fieldValidation` parameter, which tells kubectl to leave validation to the
    server (no schemas are published: the server validates)."""
    served = resources.by_group_version(group, version)
    if not served:
        return None
    param = {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}}
    paths: dict[str, Any] = {}
    for res in served:
        gvk = {"group": group, "version": version, "kind": res.kind}
        base = f"/{_gv_path(group, version)}/" + ("namespaces/{namespace}/" if res.namespaced else "")
        op = {"parameters": [param], "x-kubernetes-group-version-kind": gvk, "responses": {}}
        paths[base + res.plural] = {"post": {**op, "x-kubernetes-action": "post"}}
        paths[base + res.plural + "/{name}"] = {"put": {**op, "x-kubernetes-action": "put"},
                                                 "patch": {**op, "x-kubernetes-action": "patch"}}
    return {"openapi": "3.0.0", "info": {"title": "gpu-dra local", "version": version}, "paths": paths,
            "components": {"schemas": {}}}
