"""Rolling back a write whose outcome was unknown must never undo somebody else's allocation."""

from __future__ import annotations

from ctl_helpers import Api, claim, claim_spec

from driver.controller.writer import Writer, Written


def _allocation(device: str) -> dict:
    return {"devices": {"results": [{"request": "gpu", "driver": "gpu.nvidia.com", "pool": "n1", "device": device}]},
            "nodeSelector": {"nodeSelectorTerms": [{"matchFields": [
                {"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}


def test_rollback_of_a_write_that_never_landed_keeps_the_other_writers_allocation(server, api: Api) -> None:
    created = api.create(claim("c", claim_spec()))
    writer = Writer(api.kube, "gpu-dra-scheduler")
    other_pod = {"metadata": {"name": "other", "namespace": "default", "uid": "other-uid"}}
    writer.reserve(created, other_pod, _allocation("gpu-1"))  # another decision, which landed
    after = api.claim("c")
    after["status"]["reservedFor"] = []  # its pod went away; the allocation stays until released
    api.kube.call(api.kube.resource.replace_namespaced_resource_claim_status, "c", "default", after)
    ours = Written("default", "c", created["metadata"]["uid"], allocated=True, allocation=_allocation("gpu-0"))
    me = {"metadata": {"name": "me", "namespace": "default", "uid": "me-uid"}}
    assert writer.rollback([ours], me) == []
    assert api.claim("c")["status"]["allocation"]["devices"]["results"][0]["device"] == "gpu-1"
    # our own allocation, unreserved, is cleared
    mine = Written("default", "c", created["metadata"]["uid"], allocated=True, allocation=_allocation("gpu-1"))
    writer.rollback([mine], me)
    assert not (api.claim("c").get("status") or {}).get("allocation")
