"""The resource types the local API server serves, as one table.

Discovery documents, URL routing, field-selector allowlists, status subresources and delete
responses all read this table, so adding a type is one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass

# Field selectors every type supports (the apiserver adds these to each type's own set).
_META_FIELDS = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True)
class Resource:
    """One served resource (a plural under one group/version)."""

    group: str  # "" for core
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # e.g. ("status", "binding", "scale")
    fields: tuple[str, ...] = ()  # extra field-selector paths
    returns_deleted_object: bool = False  # DELETE answers the object (else a Status)
    categories: tuple[str, ...] = ()  # e.g. ("all",) for `kubectl get all`

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def key(self) -> str:
        """Storage key: one store per group/plural, whatever version is asked."""
        return f"{self.group}/{self.plural}" if self.group else self.plural

    @property
    def field_selectors(self) -> tuple[str, ...]:
        return _META_FIELDS + self.fields

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


DRA = "resource.k8s.io"


def _dra(version: str) -> list[Resource]:
    deleted = True
    return [
        Resource(DRA, version, "deviceclasses", "DeviceClass", False, returns_deleted_object=deleted),
        Resource(DRA, version, "resourceclaims", "ResourceClaim", True, subresources=("status",),
                 returns_deleted_object=deleted),
        Resource(DRA, version, "resourceclaimtemplates", "ResourceClaimTemplate", True, returns_deleted_object=deleted),
        Resource(DRA, version, "resourceslices", "ResourceSlice", False,
                 fields=("spec.nodeName", "spec.driver"), returns_deleted_object=deleted),
    ]


RESOURCES: list[Resource] = [
    Resource("", "v1", "namespaces", "Namespace", False, ("ns",), ("status",), fields=("status.phase",)),
    Resource("", "v1", "nodes", "Node", False, ("no",), ("status",), fields=("spec.unschedulable",)),
    Resource("", "v1", "pods", "Pod", True, ("po",), ("status", "binding"),
             fields=("spec.nodeName", "spec.schedulerName", "status.phase", "spec.serviceAccountName",
                     "status.podIP", "status.nominatedNodeName", "spec.restartPolicy"),
             returns_deleted_object=True, categories=("all",)),
    Resource("", "v1", "events", "Event", True, ("ev",),
             fields=("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                     "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                     "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type")),
    Resource("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    Resource("", "v1", "secrets", "Secret", True, fields=("type",)),
    Resource("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    Resource("coordination.k8s.io", "v1", "leases", "Lease", True),
    Resource("apps", "v1", "deployments", "Deployment", True, ("deploy",), ("status", "scale"), categories=("all",)),
    Resource("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), ("status", "scale"), categories=("all",)),
    Resource("batch", "v1", "jobs", "Job", True, (), ("status",), categories=("all",)),
    Resource("", "v1", "persistentvolumes", "PersistentVolume", False, ("pv",), ("status",), returns_deleted_object=True),
    Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",), ("status",),
             returns_deleted_object=True),
    Resource("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, ("sc",), returns_deleted_object=True),
    Resource("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, ("pc",)),
    Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",), ("status",)),
    *_dra("v1"),
]

# Read/write compatibility for clients still on resource.k8s.io/v1beta2: the v1beta2 wire shape
# of these types is the same as v1's, so they share storage and only apiVersion differs.
COMPAT: list[Resource] = _dra("v1beta2")

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

_BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES + COMPAT}


def lookup(group: str, version: str, plural: str) -> Resource | None:
    """The resource served at /api(s)/<group>/<version>/<plural>, or None."""
    return _BY_PATH.get((group, version, plural))


def storage_resource(res: Resource) -> Resource:
    """The v1 entry that owns storage for `res` (itself for v1 types)."""
    return _BY_PATH.get((res.group, "v1", res.plural), res)


def group_versions() -> dict[str, list[str]]:
    """group -> versions, preferred (v1) first."""
    out: dict[str, list[str]] = {}
    for r in RESOURCES + COMPAT:
        versions = out.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
    return out


def by_group_version(group: str, version: str) -> list[Resource]:
    return [r for r in RESOURCES + COMPAT if r.group == group and r.version == version]


def by_kind(api_version: str, kind: str) -> Resource | None:
    for r in RESOURCES + COMPAT:
        if r.api_version == api_version and r.kind == kind:
            return r
    return None


__all__ = ["Resource", "RESOURCES", "COMPAT", "VERBS", "lookup", "storage_resource", "group_versions",
           "by_group_version", "by_kind"]
