"""Pure pieces of the local cluster: patches, selectors, cluster files, validation, informer caches, workers."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from driver.local import patch, selectors, table, validation
from driver.local.controllerloop import ControllerLoop, read_or_none
from driver.local.informer import Cache
from driver.local.workqueue import WorkQueue, Workers
from driver.local.clusterfile import ClusterFileError, load_cluster, parse_cluster
from driver.local.errors import ApiError


def test_merge_patch_rfc7386() -> None:
    doc = {"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]}
    assert patch.merge_patch(doc, {"b": {"c": None, "e": 4}, "l": [3]}) == {"a": 1, "b": {"d": 3, "e": 4}, "l": [3]}
    assert doc == {"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]}  # the input is not modified


def test_json_patch_operations() -> None:
    doc = {"a": {"b": [1, 2]}, "c": "x"}
    ops = [{"op": "add", "path": "/a/b/-", "value": 3}, {"op": "move", "from": "/c", "path": "/d"},
           {"op": "copy", "from": "/a/b/0", "path": "/e"}, {"op": "replace", "path": "/a/b/1", "value": 9},
           {"op": "remove", "path": "/a/b/0"}, {"op": "test", "path": "/d", "value": "x"}]
    assert patch.json_patch(doc, ops) == {"a": {"b": [9, 3]}, "d": "x", "e": 1}
    with pytest.raises(ApiError) as err:
        patch.json_patch(doc, [{"op": "remove", "path": "/missing"}])
    assert err.value.code == 422
    with pytest.raises(ApiError) as err:
        patch.json_patch(doc, [{"op": "jump", "path": "/a"}])
    assert err.value.code == 400
    with pytest.raises(ApiError):
        patch.json_patch(doc, {"op": "add"})


def test_strategic_merge_directives() -> None:
    doc = {"metadata": {"finalizers": ["a"]},
           "spec": {"containers": [{"name": "x", "image": "1"}, {"name": "y", "image": "1"}], "tolerations": [{"key": "k"}]}}
    out = patch.strategic_merge(doc, {
        "metadata": {"finalizers": ["b"], "$deleteFromPrimitiveList/finalizers": ["a"]},
        "spec": {"containers": [{"name": "y", "$patch": "delete"}, {"name": "z", "image": "2"}],
                 "$setElementOrder/containers": [{"name": "x"}, {"name": "z"}],
                 "tolerations": [{"key": "other"}]}})
    assert out["metadata"]["finalizers"] == ["b"]
    assert out["spec"]["containers"] == [{"name": "x", "image": "1"}, {"name": "z", "image": "2"}]
    assert out["spec"]["tolerations"] == [{"key": "other"}]  # no merge key: replaced
    replaced = patch.strategic_merge(doc, {"spec": {"$patch": "replace", "containers": []}})
    assert replaced["spec"] == {"containers": []}
    with pytest.raises(ApiError):
        patch.strategic_merge(doc, {"spec": {"containers": [{"image": "no-name"}]}})


def test_unsupported_patch_type_is_415() -> None:
    with pytest.raises(ApiError) as err:
        patch.apply("application/apply-patch+yaml", {}, {})
    assert err.value.code == 415


def test_selector_parsing_errors_are_400() -> None:
    for bad in ("a in (", "a in ()", "!a=b", "=x"):
        with pytest.raises(ApiError) as err:
            selectors.label_selector(bad)
        assert err.value.code == 400, bad
    with pytest.raises(ApiError):
        selectors.field_selector("spec.nodeName", ("spec.nodeName",), "Pod")
    match = selectors.field_selector("spec.unschedulable=true", ("spec.unschedulable",), "Node")
    assert match is not None and match({"spec": {"unschedulable": True}}) and not match({"spec": {}})


def test_slices_are_checked_by_the_device_models_validator() -> None:
    head = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice", "metadata": {"name": "s"}}
    good = {**head, "spec": {"driver": "gpu.nvidia.com", "nodeName": "n",
                             "pool": {"name": "n", "generation": 0, "resourceSliceCount": 1},
                             "devices": [{"name": "gpu-0", "attributes": {"cudaComputeCapability": {"version": "8.0.0"}}}]}}
    assert validation.validate_dra("ResourceSlice", good, None) == []
    bad = {**head, "spec": {"driver": "Bad", "allNodes": True, "nodeName": "n",
                            "pool": {"name": "n", "generation": 0, "resourceSliceCount": 0},
                            "devices": [{"name": "gpu-0", "attributes": {"x/y/z": {"version": "8.0"}}},
                                        {"name": "gpu-0"}]}}
    fields = [f for f, _ in validation.validate_dra("ResourceSlice", bad, None)]
    assert fields == ["spec.driver", "spec.pool.resourceSliceCount", "spec", "spec.devices[0].attributes['x/y/z']",
                      "spec.devices[0].attributes['x/y/z'].version", "spec.devices[1].name"]


def test_default_cluster_description() -> None:
    spec = load_cluster()
    modes = {n.name: n.sharing for n in spec.nodes}
    assert modes == {"gpu-a100-whole": {"mode": "whole"}, "gpu-a100-mig": {"mode": "mig"},
                     "gpu-h100-ts": {"mode": "timeslicing", "replicas": 4}, "gpu-a100-frac": {"mode": "fractional"},
                     "gpu-l4": {"mode": "whole"}}
    assert spec.driver_name == "gpu.nvidia.com"
    assert spec.nodes[0].node_config(spec.driver_name) == {"driverName": "gpu.nvidia.com", "sharing": {"mode": "whole"}}


@pytest.mark.parametrize("raw, field", [
    ([], "expected a mapping"),
    ({"nodes": []}, "nodes: expected a non-empty list"),
    ({"nodes": [{"name": "a", "cpu": "1", "memory": "1Gi", "gpu": 1}]}, "nodes[0]: unknown field(s) gpu"),
    ({"nodes": [{"name": "A", "cpu": "1", "memory": "1Gi"}]}, "nodes[0].name"),
    ({"nodes": [{"name": "a", "memory": "1Gi"}]}, "nodes[0].cpu: required"),
    ({"nodes": [{"name": "a", "cpu": "-1", "memory": "1Gi"}]}, "nodes[0].cpu: must be greater than zero"),
    ({"nodes": [{"name": "a", "cpu": "1", "memory": "lots"}]}, "nodes[0].memory"),
    ({"nodes": [{"name": "a", "cpu": "1", "memory": "1Gi", "pods": 0}]}, "nodes[0].pods"),
    ({"nodes": [{"name": "a", "cpu": "1", "memory": "1Gi", "nvml": "no-such-node"}]}, "nodes[0].nvml"),
    ({"nodes": [{"name": "a", "cpu": "1", "memory": "1Gi", "nvml": "l4-x4", "sharing": {"mode": "magic"}}]},
     "sharing.mode"),
    ({"nodes": [{"name": "a", "cpu": "1", "memory": "1Gi"}, {"name": "a", "cpu": "1", "memory": "1Gi"}]},
     "nodes[1].name: duplicate"),
    ({"driverName": "Not Valid", "nodes": [{"name": "a", "cpu": "1", "memory": "1Gi"}]}, "driverName"),
])
def test_cluster_file_errors_name_the_field(raw: object, field: str) -> None:
    with pytest.raises(ClusterFileError) as err:
        parse_cluster(raw)
    assert field in str(err.value)


def test_cluster_file_read_errors(tmp_path) -> None:
    with pytest.raises(ClusterFileError, match="cannot read"):
        load_cluster(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("nodes: [")
    with pytest.raises(ClusterFileError, match="not valid YAML"):
        load_cluster(broken)


def test_human_duration_matches_kubectl() -> None:
    cases = {5: "5s", 119: "119s", 150: "2m30s", 600: "10m", 7500: "125m", 4 * 3600 + 600: "4h10m",
             30 * 3600: "30h", 3 * 86400 + 4 * 3600: "3d4h", 120 * 86400: "120d", 3 * 365 * 86400: "3y"}
    assert {s: table.human_duration(s) for s in cases} == cases


def test_claim_state_column() -> None:
    claim = {"metadata": {"name": "c"}, "status": {"allocation": {}, "reservedFor": [{"uid": "u"}]}}
    assert table.row("resource.k8s.io/resourceclaims", claim)["cells"][:2] == ["c", "pending,reserved"]
    claim["status"]["allocation"] = {"devices": {}}
    assert table.row("resource.k8s.io/resourceclaims", claim)["cells"][1] == "allocated,reserved"


def _wide_pod_cells(pod: dict) -> list:
    """The cells after AGE: IP, NODE, NOMINATED NODE, READINESS GATES."""
    return table.row("pods", pod)["cells"][5:]


def test_pod_wide_columns_are_kube_apiservers() -> None:
    names = [d["name"] for d in table.definitions("pods")]
    assert names[5:] == ["IP", "Node", "Nominated Node", "Readiness Gates"]
    assert [d["priority"] for d in table.definitions("pods")][5:] == [1, 1, 1, 1]


def test_pod_wide_cells_of_an_empty_pod_are_none() -> None:
    assert _wide_pod_cells({}) == ["<none>", "<none>", "<none>", "<none>"]


def test_pod_wide_cells_nominated_node_and_gates() -> None:
    # upstream TestConvertToTableList pod1: gates condition1 (False) and condition2 (True) -> 1/2
    pod = {"metadata": {"name": "foo"},
           "spec": {"nodeName": "test-node", "containers": [{"name": "ctr1"}, {"name": "ctr2"}],
                    "readinessGates": [{"conditionType": "condition1"}, {"conditionType": "condition2"}]},
           "status": {"podIP": "10.1.2.3", "nominatedNodeName": "nominated-node",
                      "conditions": [{"type": "condition1", "status": "False"},
                                     {"type": "condition2", "status": "True"}]}}
    assert _wide_pod_cells(pod) == ["10.1.2.3", "test-node", "nominated-node", "1/2"]


def test_pod_readiness_gate_without_its_condition_does_not_count() -> None:
    pod = {"spec": {"readinessGates": [{"conditionType": "a"}, {"conditionType": "b"}]},
           "status": {"conditions": [{"type": "b", "status": "True"}, {"type": "b", "status": "False"}]}}
    assert _wide_pod_cells(pod)[3] == "1/2"  # a has no condition; b's first condition decides
    pod["status"]["conditions"] = []
    assert _wide_pod_cells(pod)[3] == "0/2"


def test_local_up_rejects_a_bad_cluster_file(tmp_path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "cluster.yaml"
    bad.write_text("nodes:\n  - {name: n1, cpu: '4', memory: lots}\n")
    kubeconfig = tmp_path / "kubeconfig"
    done = subprocess.run([sys.executable, "-m", "driver", "local", "up", "--cluster", str(bad), "--kubeconfig",
                           str(kubeconfig)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "nodes[0].memory" in done.stderr and not kubeconfig.exists()


def test_local_up_rejects_an_unknown_scheduler_strategy(tmp_path) -> None:
    import subprocess
    import sys

    kubeconfig = tmp_path / "kubeconfig"
    done = subprocess.run([sys.executable, "-m", "driver", "local", "up", "--strategy", "bestfit", "--kubeconfig",
                           str(kubeconfig)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and not kubeconfig.exists()
    assert "--strategy" in done.stderr and "binpack" in done.stderr


def _obj(name: str, rv: int, owner: str = "", ns: str = "default") -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name, "resourceVersion": str(rv), "labels": {"owner": owner}}}


def _owners(obj: dict[str, Any]) -> list[str]:
    owner = obj["metadata"]["labels"]["owner"]
    return [owner] if owner else []


def test_cache_index_follows_updates_deletes_and_relists() -> None:
    cache = Cache({"owner": _owners})
    cache.upsert(_obj("a", 5, "u1"))
    cache.upsert(_obj("b", 6, "u1"))
    assert sorted(o["metadata"]["name"] for o in cache.by_index("owner", "u1")) == ["a", "b"]
    cache.upsert(_obj("a", 7, "u2"))  # the owner changed: moved between index entries
    assert [o["metadata"]["name"] for o in cache.by_index("owner", "u1")] == ["b"]
    assert [o["metadata"]["name"] for o in cache.by_index("owner", "u2")] == ["a"]
    cache.upsert(_obj("a", 6, "u3"))  # older than what the cache holds (a late event): ignored
    assert cache.get("default", "a")["metadata"]["resourceVersion"] == "7"
    cache.delete(_obj("b", 8, "u1"))
    assert cache.by_index("owner", "u1") == [] and cache.get("default", "b") is None
    cache.upsert(_obj("b", 6, "u1"))  # a writer's late copy must not bring a deleted object back
    assert cache.get("default", "b") is None
    cache.upsert(_obj("c", 20, "u4"))  # written after the list below was taken
    cache.replace([_obj("d", 9, "u1")], list_rv=10)  # a re-list: "a" is gone, "c" is newer than the list
    assert sorted(o["metadata"]["name"] for o in cache.by_index("owner", "u1")) == ["d"]
    assert cache.get("default", "a") is None and cache.get("default", "c") is not None and len(cache) == 2
    with pytest.raises(KeyError):
        cache.by_index("no-such-index", "x")


def test_workers_retry_failures_skip_404_and_never_share_a_key() -> None:
    queue = WorkQueue()
    lock = threading.Lock()
    active: set[Any] = set()
    seen: dict[Any, int] = {}
    overlap: list[Any] = []
    done = threading.Event()

    def sync(key: Any) -> None:
        with lock:
            if key in active:
                overlap.append(key)
            active.add(key)
            seen[key] = seen.get(key, 0) + 1
            count = seen[key]
        try:
            if key == "gone":
                raise ApiException(status=404)
            if key == "flaky" and count < 3:
                raise ApiException(status=409) if count == 1 else RuntimeError("boom")
            if key == "flaky":
                done.set()
        finally:
            with lock:
                active.discard(key)

    workers = Workers("test", queue, sync, count=3, retry_s=0.01)
    workers.start()
    try:
        for _ in range(50):
            for key in ("a", "b", "gone", "flaky"):
                queue.add(key)
        assert done.wait(5), "a failing key is retried until it succeeds"
    finally:
        workers.stop()
    assert overlap == []
    assert seen["flaky"] == 3 and 1 <= seen["gone"] <= 50  # 404: not retried on its own
    with pytest.raises(ValueError, match="at least 1"):
        Workers("none", WorkQueue(), sync, count=0)


class _FakeInformer:
    """Records start/stop and whether the loop's worker thread was running at that moment."""

    def __init__(self, name: str, events: list[tuple[str, str, bool]], queue: WorkQueue) -> None:
        self.name, self.events, self.queue = name, events, queue

    @staticmethod
    def _worker_alive() -> bool:
        return any(t.name == "loop-test-0" and t.is_alive() for t in threading.enumerate())

    def start(self) -> None:
        self.events.append(("start", self.name, self._worker_alive()))
        self.queue.add(self.name)  # what a first list does: keys for the workers

    def stop(self) -> None:
        self.events.append(("stop", self.name, self._worker_alive()))


def test_controller_loop_starts_informers_before_workers_and_stops_them_first() -> None:
    queue = WorkQueue()
    events: list[tuple[str, str, bool]] = []
    synced: list[Any] = []
    both = threading.Event()

    def sync(key: Any) -> None:
        synced.append(key)
        if len(synced) == 2:
            both.set()

    loop = ControllerLoop("loop-test", queue, [_FakeInformer("a", events, queue), _FakeInformer("b", events, queue)],
                          sync)
    loop.start()
    assert both.wait(5), "the workers drain what the informers queued"
    loop.stop()
    assert events == [("start", "a", False), ("start", "b", False), ("stop", "a", True), ("stop", "b", True)]
    assert sorted(synced) == ["a", "b"]
    assert not _FakeInformer._worker_alive()  # stop closed the queue and joined the worker


class _Resp:
    def __init__(self, data: bytes) -> None:
        self.data = data


def test_read_or_none_reads_json_and_treats_only_404_as_absent() -> None:
    calls: list[tuple[Any, ...]] = []

    def read(name: str, ns: str, _preload_content: bool = True) -> _Resp:
        calls.append((name, ns, _preload_content))
        if name == "gone":
            raise ApiException(status=404)
        if name == "broken":
            raise ApiException(status=500)
        return _Resp(b'{"metadata": {"name": "x"}}')

    assert read_or_none(read, "x", "default") == {"metadata": {"name": "x"}}
    assert calls == [("x", "default", False)]  # raw JSON, not the client's model objects
    assert read_or_none(read, "gone", "default") is None
    with pytest.raises(ApiException) as err:
        read_or_none(read, "broken", "default")
    assert err.value.status == 500
