"""URL → resource routing for the local API server.

Kubernetes URLs are /api/v1/... for the core group and /apis/<group>/<version>/... otherwise,
optionally under namespaces/<ns>/, then <plural>[/<name>[/<subresource>]]. The one ambiguity,
/api/v1/namespaces/<name>/<x>, is a namespaced resource when <x> names one, else a namespace
subresource.
"""

from __future__ import annotations

from driver.local import resources
from driver.local.resources import Resource


class Route:
    """A parsed resource URL."""

    def __init__(self, res: Resource, ns: str | None, name: str, sub: str) -> None:
        self.res, self.ns, self.name, self.sub = res, ns, name, sub
        self.storage = resources.storage_resource(res)
        self.compat = self.storage is not res

    @property
    def fault_key(self) -> str:
        return f"{self.res.plural}/{self.sub}" if self.sub else self.res.plural


def parse(path: str) -> Route | None:
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api" and parts[1] == "v1":
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return None
    ns: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        inner = resources.lookup(group, version, rest[2])
        if inner is not None and inner.namespaced:
            ns, rest = rest[1], rest[2:]
    res = resources.lookup(group, version, rest[0])
    if res is None or len(rest) > 3:
        return None
    name = rest[1] if len(rest) >= 2 else ""
    sub = rest[2] if len(rest) == 3 else ""
    if sub and sub not in res.subresources:
        return None
    if res.namespaced and name and ns is None:
        return None
    return Route(res, ns if res.namespaced else None, name, sub)
