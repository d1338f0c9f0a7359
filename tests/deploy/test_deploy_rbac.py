"""Least privilege: each component's service account gets exactly the verbs on exactly the
resources it uses, never a wildcard, and nothing else is bound to it."""

from __future__ import annotations

from typing import Any

import pytest

from deploy_support import NAMESPACE, of_kind, one, render
from value_sets import VALUE_SETS

# The API calls each component makes (driver/plugin/kube.py; driver/controller/{kube,writer,leader}.py).
PLUGIN_RULES = {
    ("resource.k8s.io", "resourceclaims"): {"get", "list"},
    ("resource.k8s.io", "resourceslices"): {"list", "create", "update", "delete"},
    ("", "nodes"): {"get"},
    ("", "events"): {"create"},
}

CONTROLLER_RULES = {
    ("", "pods"): {"get", "list", "watch", "delete"},
    ("", "pods/binding"): {"create"},
    ("", "pods/status"): {"update", "patch"},
    ("", "nodes"): {"list", "watch"},
    ("", "namespaces"): {"list", "watch"},
    ("", "persistentvolumeclaims"): {"list", "watch"},
    ("", "persistentvolumes"): {"list", "watch"},
    ("storage.k8s.io", "storageclasses"): {"list", "watch"},
    ("policy", "poddisruptionbudgets"): {"list", "watch"},
    ("resource.k8s.io", "resourceclaims"): {"get", "list", "watch", "update", "create", "delete"},
    ("resource.k8s.io", "resourceclaims/status"): {"update"},
    ("resource.k8s.io", "resourceslices"): {"list", "watch"},
    ("resource.k8s.io", "deviceclasses"): {"list", "watch"},
    ("resource.k8s.io", "resourceclaimtemplates"): {"list", "watch"},
    ("", "events"): {"create"},
}


def _grants(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> verbs, for rules not limited to named objects."""
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        if rule.get("resourceNames"):
            continue
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    return grants


def _bound_roles(objects: list[dict[str, Any]], account: str) -> list[dict[str, Any]]:
    roles = []
    for binding in of_kind(objects, "ClusterRoleBinding") + of_kind(objects, "RoleBinding"):
        for subject in binding["subjects"]:
            if subject == {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}:
                kind = binding["roleRef"]["kind"]
                roles.append(one(objects, kind, binding["roleRef"]["name"]))
    return roles


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_no_wildcards_and_no_non_resource_urls(value_set: str) -> None:
    for role in of_kind(render(VALUE_SETS[value_set]), "ClusterRole") + of_kind(render(VALUE_SETS[value_set]), "Role"):
        for rule in role["rules"]:
            assert "nonResourceURLs" not in rule
            for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert all("*" not in item for item in rule.get(key, [])), (role["metadata"]["name"], rule)


def test_plugin_gets_exactly_what_it_uses() -> None:
    objects = render()
    roles = _bound_roles(objects, "gpu-dra-kubelet-plugin")
    assert [r["kind"] for r in roles] == ["ClusterRole"]
    assert _grants(roles[0]) == PLUGIN_RULES
    for ds in of_kind(objects, "DaemonSet"):
        assert ds["spec"]["template"]["spec"]["serviceAccountName"] == "gpu-dra-kubelet-plugin"


def test_controller_gets_exactly_what_it_uses() -> None:
    objects = render()
    roles = _bound_roles(objects, "gpu-dra-controller")
    assert sorted(r["kind"] for r in roles) == ["ClusterRole", "Role"]
    cluster_role = next(r for r in roles if r["kind"] == "ClusterRole")
    assert _grants(cluster_role) == CONTROLLER_RULES
    deployment = one(objects, "Deployment", "gpu-dra-controller")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "gpu-dra-controller"


def test_leader_election_is_limited_to_one_lease_in_the_release_namespace() -> None:
    objects = render()
    role = one(objects, "Role", "gpu-dra-controller-leader-election")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["gpu-dra-controller"],
         "verbs": ["get", "update"]},
    ]
    args = one(objects, "Deployment", "gpu-dra-controller")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--lease-name=gpu-dra-controller" in args and f"--lease-namespace={NAMESPACE}" in args


def test_no_leader_election_rights_without_leader_election() -> None:
    objects = render({"controller": {"leaderElect": False, "replicas": 1}})
    assert of_kind(objects, "Role") == []
    args = one(objects, "Deployment", "gpu-dra-controller")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not any(a.startswith("--lease") or a == "--leader-elect" for a in args)
