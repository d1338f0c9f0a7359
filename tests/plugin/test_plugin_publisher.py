"""ResourceSlice publishing against the local API server: in-place updates, generations,
obsolete slices, validation before any write."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from driver.devices.validate import validate_pool
from driver.plugin.kube import Kube
from driver.plugin.publisher import Publisher, PublishError

DRIVER = "gpu.nvidia.com"


def device(name: str, memory: str = "80Gi") -> dict[str, Any]:
    return {"name": name, "attributes": {"type": {"string": "gpu"}}, "capacity": {"memory": {"value": memory}}}


class Desired:
    """What discovery would say; the test edits `per_slice` between passes."""

    def __init__(self, per_slice: list[list[dict[str, Any]]]):
        self.per_slice = per_slice

    def __call__(self, generation: int) -> list[dict[str, Any]]:
        return [{"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
                 "metadata": {"name": f"node-a-gpu-nvidia-com-{i}"},
                 "spec": {"driver": DRIVER, "nodeName": "node-a", "devices": copy.deepcopy(devs),
                          "pool": {"name": "node-a", "generation": generation, "resourceSliceCount": len(self.per_slice)}}}
                for i, devs in enumerate(self.per_slice)]


def slices(kube: Kube) -> dict[str, dict[str, Any]]:
    return {s["metadata"]["name"]: s for s in kube.list_slices(DRIVER, "node-a")}


def test_create_update_in_place_bump_and_delete(kube: Kube) -> None:
    desired = Desired([[device("gpu-0"), device("gpu-1")], [device("gpu-2")]])
    pub = Publisher(kube, DRIVER, "node-a", desired, validate_pool=validate_pool)
    assert pub.publish_once() == 2
    first = slices(kube)
    assert sorted(first) == ["node-a-gpu-nvidia-com-0", "node-a-gpu-nvidia-com-1"]
    assert {s["spec"]["pool"]["generation"] for s in first.values()} == {1}
    assert pub.publish_once() == 0  # nothing changed: no writes

    desired.per_slice[1][0]["capacity"]["memory"]["value"] = "79Gi"  # same devices, new content
    assert pub.publish_once() == 1
    second = slices(kube)
    assert second["node-a-gpu-nvidia-com-1"]["metadata"]["uid"] == first["node-a-gpu-nvidia-com-1"]["metadata"]["uid"]
    assert second["node-a-gpu-nvidia-com-1"]["metadata"]["resourceVersion"] != \
        first["node-a-gpu-nvidia-com-1"]["metadata"]["resourceVersion"]
    assert {s["spec"]["pool"]["generation"] for s in second.values()} == {1}  # device set unchanged

    desired.per_slice = [[device("gpu-0"), device("gpu-1")]]  # gpu-2 is gone: one slice fewer
    assert pub.publish_once() == 2  # update slice 0 to generation 2, delete slice 1
    third = slices(kube)
    assert list(third) == ["node-a-gpu-nvidia-com-0"]
    assert third["node-a-gpu-nvidia-com-0"]["spec"]["pool"] == {"name": "node-a", "generation": 2, "resourceSliceCount": 1}


def test_invalid_slices_are_refused_before_any_write(kube: Kube) -> None:
    pub = Publisher(kube, DRIVER, "node-a", Desired([[device("gpu-0")]]), validate_pool=validate_pool)
    pub.publish_once()
    bad = Publisher(kube, DRIVER, "node-a", Desired([[device("GPU_0")], [device("gpu-1")]]), validate_pool=validate_pool)
    with pytest.raises(PublishError, match="refusing to publish invalid ResourceSlices: .*GPU_0"):
        bad.publish_once()
    assert [d["name"] for s in slices(kube).values() for d in s["spec"]["devices"]] == ["gpu-0"]


def test_other_nodes_and_drivers_are_left_alone(kube: Kube) -> None:
    Publisher(kube, DRIVER, "node-a", Desired([[device("gpu-0")]])).publish_once()
    other = Desired([[device("gpu-0")]])(1)[0]
    other["metadata"]["name"] = "node-b-gpu-nvidia-com-0"
    other["spec"].update(nodeName="node-b", pool={"name": "node-b", "generation": 1, "resourceSliceCount": 1})
    kube.create_slice(other)
    Publisher(kube, DRIVER, "node-a", Desired([])).publish_once()  # node-a now publishes nothing
    assert list(slices(kube)) == []
    assert [s["metadata"]["name"] for s in kube.list_slices(DRIVER, "node-b")] == ["node-b-gpu-nvidia-com-0"]
