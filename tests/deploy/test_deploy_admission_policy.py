"""The ValidatingAdmissionPolicy that confines each kubelet plugin to its own node's
ResourceSlices, evaluated the way the API server does: match conditions, then the variables in
order, then every validation (message expressions for the failures), with a real CEL runtime
(Google's cel-expr-python) on the rendered policy text."""

from __future__ import annotations

from typing import Any

import pytest
from cel_expr_python import cel
from google.protobuf import descriptor_pool

from deploy_support import NAMESPACE, of_kind, render

PLUGIN_USER = f"system:serviceaccount:{NAMESPACE}:gpu-dra-kubelet-plugin"
NODE_KEY = "authentication.kubernetes.io/node-name"

_ENV = cel.NewEnv(
    descriptor_pool.Default(),
    variables={name: cel.Type.DYN for name in ("request", "object", "oldObject", "variables")},
)


def _eval(expression: str, data: dict[str, Any]) -> Any:
    result = _ENV.compile(expression).eval(data=data)
    assert result.type() != cel.Type.ERROR, f"{expression!r}: {result.value()}"
    return result.value()


def admit(policy: dict[str, Any], operation: str, user: str, node: str | None,
          new: dict[str, Any] | None, old: dict[str, Any] | None) -> list[str]:
    """The denial messages for one request (empty: admitted)."""
    extra = {NODE_KEY: [node]} if node else {}
    data: dict[str, Any] = {
        "request": {"operation": operation, "userInfo": {"username": user, "extra": extra}},
        "object": new, "oldObject": old, "variables": {},
    }
    spec = policy["spec"]
    if not all(_eval(c["expression"], data) for c in spec["matchConditions"]):
        return []
    for variable in spec["variables"]:
        data["variables"] = {**data["variables"], variable["name"]: _eval(variable["expression"], data)}
    return [
        _eval(v["messageExpression"], data) if "messageExpression" in v else v["message"]
        for v in spec["validations"] if not _eval(v["expression"], data)
    ]


def slice_on(node: str | None, driver: str = "gpu.nvidia.com") -> dict[str, Any]:
    spec: dict[str, Any] = {"driver": driver, "pool": {"name": node or "shared", "generation": 1, "resourceSliceCount": 1}}
    if node:
        spec["nodeName"] = node
    else:
        spec["allNodes"] = True
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice", "metadata": {"name": "s"}, "spec": spec}


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    (found,) = of_kind(render(), "ValidatingAdmissionPolicy")
    (binding,) = of_kind(render(), "ValidatingAdmissionPolicyBinding")
    assert binding["spec"] == {"policyName": found["metadata"]["name"], "validationActions": ["Deny"]}
    assert found["spec"]["failurePolicy"] == "Fail"
    rule = found["spec"]["matchConstraints"]["resourceRules"][0]
    assert (rule["apiGroups"], rule["resources"]) == (["resource.k8s.io"], ["resourceslices"])
    assert set(rule["operations"]) == {"CREATE", "UPDATE", "DELETE"}
    return found


def test_plugin_may_write_its_own_nodes_slices(policy: dict[str, Any]) -> None:
    assert admit(policy, "CREATE", PLUGIN_USER, "node-a", slice_on("node-a"), None) == []
    assert admit(policy, "UPDATE", PLUGIN_USER, "node-a", slice_on("node-a"), slice_on("node-a")) == []
    assert admit(policy, "DELETE", PLUGIN_USER, "node-a", None, slice_on("node-a")) == []


def test_plugin_may_not_write_another_nodes_slices(policy: dict[str, Any]) -> None:
    assert admit(policy, "CREATE", PLUGIN_USER, "node-a", slice_on("node-b"), None) == [
        "the kubelet plugin on node node-a may only write ResourceSlices with spec.nodeName node-a, not node-b"]
    assert admit(policy, "DELETE", PLUGIN_USER, "node-a", None, slice_on("node-b")) == [
        "the kubelet plugin on node node-a may not change or delete ResourceSlices of node node-b"]
    denied = admit(policy, "UPDATE", PLUGIN_USER, "node-a", slice_on("node-a"), slice_on("node-b"))
    assert denied == ["the kubelet plugin on node node-a may not change or delete ResourceSlices of node node-b"]


def test_plugin_may_not_publish_cluster_wide_or_foreign_driver_slices(policy: dict[str, Any]) -> None:
    assert admit(policy, "CREATE", PLUGIN_USER, "node-a", slice_on(None), None) == [
        "the kubelet plugin on node node-a may only write ResourceSlices with spec.nodeName node-a, not slices without a node"]
    assert admit(policy, "CREATE", PLUGIN_USER, "node-a", slice_on("node-a", "other.example.com"), None) == [
        "the kubelet plugin may only publish ResourceSlices of driver gpu.nvidia.com, not other.example.com"]


def test_a_token_without_a_node_is_refused(policy: dict[str, Any]) -> None:
    denied = admit(policy, "CREATE", PLUGIN_USER, None, slice_on("node-a"), None)
    assert denied[0].startswith("the kubelet plugin's service account token names no node")


@pytest.mark.parametrize("user", [
    "system:kube-controller-manager",
    f"system:serviceaccount:{NAMESPACE}:gpu-dra-controller",
    "system:serviceaccount:other:gpu-dra-kubelet-plugin",
])
def test_other_users_are_not_affected(policy: dict[str, Any], user: str) -> None:
    assert admit(policy, "CREATE", user, None, slice_on("node-b"), None) == []
    assert admit(policy, "DELETE", user, "node-a", None, slice_on("node-b")) == []
