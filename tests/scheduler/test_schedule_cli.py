"""`gpu-dra schedule`: the controller's decision as a dry run, through `driver.cli.main`.

Clusters are written as `kubectl get ... -o yaml` would write them: a v1 List of Nodes,
ResourceSlices (from the mock NVML through driver.devices, or the allocator fixtures), DeviceClasses,
ResourceClaims with their status, running Pods and PriorityClasses; pod.yaml files are written as a
user would (no uid, no spec.priority). Priority cases follow upstream's admission table
(plugin/pkg/admission/priority/admission_test.go: TestDefaultPriority, TestPodAdmission).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from alloc_fixtures import DRIVER, classes, claim, gpu, request, slice_

from driver.cli import main
from driver.devices.inventory import discover
from driver.devices.nodeconfig import load_node_config
from driver.devices.slices import build_slices
from driver.nvml import open_backend
from driver.controller.podclaims import ClaimPlan, plan_claims
from driver.scheduler.commands import admit_priority

NOW = "2025-06-01T00:00:00Z"
H100 = "NVIDIA H100 80GB HBM3"


# ---- real-looking objects ---------------------------------------------------------------------


def node(name: str, cpu: str = "64", memory: str = "512Gi", labels: dict | None = None) -> dict:
    alloc = {"cpu": cpu, "memory": memory, "pods": "110"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": f"node-{name}", "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {}, "status": {"capacity": alloc, "allocatable": alloc}}


def mock_slices(name: str, node_file: str) -> list[dict]:
    """The slices the kubelet plugin would publish on a node described by a mock NVML node file."""
    backend = open_backend(f"mock:{node_file}", node_name=name)
    try:
        return build_slices(discover(backend, load_node_config(None), name), name)
    finally:
        backend.shutdown()


def pod(name: str, claims: dict[str, str] | None = None, cpu: str = "1", labels: dict | None = None,
        templates: dict[str, str] | None = None, **spec: Any) -> dict:
    """A pod.yaml pod: `claims` maps the pod's claim name to a ResourceClaim, `templates` to a template."""
    refs = [{"name": n, "resourceClaimName": c} for n, c in (claims or {}).items()]
    refs += [{"name": n, "resourceClaimTemplateName": t} for n, t in (templates or {}).items()]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels or {}},
            "spec": {"schedulerName": "gpu-dra-scheduler",
                     "containers": [{"name": "main", "image": "cuda:12",
                                     "resources": {"requests": {"cpu": cpu, "memory": "1Gi"},
                                                   "claims": [{"name": r["name"]} for r in refs]}}],
                     "resourceClaims": refs, **spec}}


def running(p: dict, on: str, priority: int = 0) -> dict:
    """`p` as the API returns it once bound and running (admitted: uid and spec.priority set)."""
    name = p["metadata"]["name"]
    return {**p, "metadata": {**p["metadata"], "uid": f"uid-{name}", "resourceVersion": "7"},
            "spec": {**p["spec"], "nodeName": on, "priority": priority, "preemptionPolicy": "PreemptLowerPriority"},
            "status": {"phase": "Running", "startTime": "2025-05-01T00:00:00Z"}}


def allocated(c: dict, node_name: str, devices: list[str], users: list[dict]) -> dict:
    """Claim `c` with the status the controller writes: devices on `node_name`, reserved for `users`."""
    return {**c, "status": {
        "allocation": {"devices": {"results": [{"request": "gpu", "driver": DRIVER, "pool": node_name, "device": d}
                                               for d in devices]},
                       "nodeSelector": {"nodeSelectorTerms": [{"matchFields": [
                           {"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}},
        "reservedFor": [{"resource": "pods", "name": u["metadata"]["name"], "uid": u["metadata"]["uid"]} for u in users]}}


def gpu_claim(name: str, count: int = 1, selectors: list[str] | None = None) -> dict:
    c = claim(name, request("gpu", count=count, selectors=selectors))
    del c["metadata"]["uid"]  # written by hand
    return c


def priority_class(name: str, value: int, default: bool = False, policy: str | None = None) -> dict:
    pc: dict[str, Any] = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
                          "value": value, "globalDefault": default}
    if policy:
        pc["preemptionPolicy"] = policy
    return pc


def as_list(objs: list[dict]) -> dict:
    return {"apiVersion": "v1", "kind": "List", "items": objs, "metadata": {"resourceVersion": ""}}


@pytest.fixture
def files(tmp_path: Path):
    def write(name: str, *objs: dict, multi: bool = False) -> str:
        path = tmp_path / name
        if multi:
            path.write_text(yaml.safe_dump_all(list(objs)))
        else:
            path.write_text(yaml.safe_dump(as_list(list(objs))))
        return str(path)
    return write


def schedule(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    rc = main(["schedule", "--now", NOW, *args])
    out, err = capsys.readouterr()
    return rc, out, err


def schedule_json(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, dict]:
    rc, out, err = schedule(capsys, *args, "-o", "json")
    assert err == "", err
    return rc, json.loads(out)


def devices(pod_doc: dict) -> list[tuple[str, str, str]]:
    return [(r["driver"], r["pool"], r["device"]) for c in pod_doc["claims"] if not c["alreadyAllocated"]
            for r in c["allocation"]["devices"]["results"]]


def gpu_cluster() -> list[dict]:
    """Two A100 nodes and one H100 node (8 GPUs each, from the mock NVML); a100-1 runs `holder` on gpu-0."""
    holder = running(pod("holder", {"gpu": "holder-gpu"}), "a100-1")
    holder_claim = allocated({**gpu_claim("holder-gpu"), "metadata": {"name": "holder-gpu", "namespace": "default",
                                                                       "uid": "uid-holder-gpu"}},
                             "a100-1", ["gpu-0"], [holder])
    objs = list(classes().values())
    for name, file in (("a100-1", "a100-80gb-x8"), ("a100-2", "a100-80gb-x8"), ("h100-1", "h100-x8")):
        objs += [node(name)] + mock_slices(name, file)
    return objs + [holder_claim, holder]


# ---- placing --------------------------------------------------------------------------------------


def test_places_gpu_pod_on_the_only_matching_node_and_prints_devices(capsys, files):
    cluster = files("cluster.yaml", *gpu_cluster())
    want = files("pod.yaml", pod("train", {"gpu": "train-gpu"}),
                 gpu_claim("train-gpu", 2, [f"device.attributes['{DRIVER}'].productName == '{H100}'"]), multi=True)
    rc, out, err = schedule(capsys, "-f", cluster, "-f", want)
    assert (rc, err) == (0, "")
    assert out.splitlines()[0] == "default/train: scheduled on node h100-1 (strategy fragmentation)"
    lines = [ln for ln in out.splitlines() if ln.strip().startswith("claim")]
    assert len(lines) == 2 and all("train-gpu: gpu → gpu.nvidia.com/h100-1/gpu-" in ln for ln in lines)
    rc, doc = schedule_json(capsys, "-f", cluster, "-f", want)
    got = devices(doc["pods"][0])
    assert rc == 0 and len(set(got)) == 2 and {p for _, p, _ in got} == {"h100-1"}


@pytest.mark.parametrize("strategy, node_name", [("binpack", "a100-1"), ("spread", "a100-2")])
def test_strategy_override_and_devices_in_use(capsys, files, strategy, node_name):
    """gpu-0 of a100-1 is held by a running pod's claim: binpack fills a100-1 around it, spread
    takes the idle node; neither hands out gpu-0 of a100-1 again."""
    cluster = files("cluster.yaml", *gpu_cluster())
    want = files("pod.yaml", pod("job", {"gpu": "job-gpu"}),
                 gpu_claim("job-gpu", 7, [f"device.attributes['{DRIVER}'].productName != '{H100}'"]), multi=True)
    rc, doc = schedule_json(capsys, "-f", cluster, "-f", want, "--strategy", strategy)
    p = doc["pods"][0]
    assert (rc, p["outcome"], p["node"], p["strategy"]) == (0, "Scheduled", node_name, strategy)
    assert len(devices(p)) == 7 and (DRIVER, "a100-1", "gpu-0") not in devices(p)


def test_config_file_sets_the_strategy(capsys, files, tmp_path):
    config = tmp_path / "packing.yaml"
    config.write_text("strategy: spread\n")
    cluster = files("cluster.yaml", *gpu_cluster())
    want = files("pod.yaml", pod("job", {"gpu": "job-gpu"}),
                 gpu_claim("job-gpu", 7, [f"device.attributes['{DRIVER}'].productName != '{H100}'"]), multi=True)
    rc, doc = schedule_json(capsys, "-f", cluster, "-f", want, "--config", str(config))
    assert (rc, doc["pods"][0]["node"], doc["pods"][0]["strategy"]) == (0, "a100-2", "spread")


def test_claim_from_template_is_created_as_the_resourceclaim_controller_would(capsys, files):
    template = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate",
                "metadata": {"name": "one-h100", "namespace": "default"},
                "spec": {"spec": gpu_claim("x", 1, [f"device.attributes['{DRIVER}'].productName == '{H100}'"])["spec"]}}
    cluster = files("cluster.yaml", *gpu_cluster())
    want = files("pod.yaml", template, pod("infer", templates={"gpu": "one-h100"}), multi=True)
    rc, doc = schedule_json(capsys, "-f", cluster, "-f", want)
    p = doc["pods"][0]
    assert (rc, p["node"]) == (0, "h100-1")
    assert p["claims"][0]["podClaimName"] == "gpu" and p["claims"][0]["name"].startswith("infer-gpu-")


def test_pod_using_an_allocated_claim_goes_where_the_claim_is(capsys, files):
    """A claim shared with a running pod is not allocated again; the pod is pinned to its node."""
    cluster = files("cluster.yaml", *gpu_cluster())
    want = files("pod.yaml", pod("sidecar", {"gpu": "holder-gpu"}), multi=True)
    rc, doc = schedule_json(capsys, "-f", cluster, "-f", want, "--strategy", "spread")
    p = doc["pods"][0]
    assert (rc, p["node"]) == (0, "a100-1")
    assert [(c["name"], c["alreadyAllocated"]) for c in p["claims"]] == [("holder-gpu", True)]
    assert p["claims"][0]["allocation"]["devices"]["results"][0]["device"] == "gpu-0"


def test_pods_of_one_file_see_each_others_decisions(capsys, files):
    """Scheduled in file order and assumed, as the controller does: the second 8-GPU pod finds the
    H100 node taken by the first."""
    sel = [f"device.attributes['{DRIVER}'].productName == '{H100}'"]
    cluster = files("cluster.yaml", *gpu_cluster())
    want = files("pods.yaml", pod("first", {"gpu": "c1"}), gpu_claim("c1", 8, sel),
                 pod("second", {"gpu": "c2"}), gpu_claim("c2", 8, sel), multi=True)
    rc, doc = schedule_json(capsys, "-f", cluster, "-f", want)
    first, second = doc["pods"]
    assert (first["outcome"], first["node"], len(devices(first))) == ("Scheduled", "h100-1", 8)
    assert second["outcome"] == "Unschedulable" and second["message"].startswith("0/3 nodes are available: ")
    assert rc == 1


# ---- not placing ----------------------------------------------------------------------------------


def test_unschedulable_prints_kube_scheduler_reasons_per_node_and_exits_1(capsys, files):
    """5 nodes: three run app=web pods the new pod's required anti-affinity excludes, two are out of cpu."""
    objs: list[dict] = list(classes().values())
    for i in range(1, 6):
        objs += [node(f"n{i}", cpu="4"), slice_(f"n{i}", [gpu(0), gpu(1)])]
    objs += [running(pod(f"web-{i}", labels={"app": "web"}), f"n{i}") for i in (1, 2, 3)]
    objs += [running(pod(f"big-{i}", cpu="3500m"), f"n{i}") for i in (4, 5)]
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    cluster = files("cluster.yaml", *objs)
    want = files("pod.yaml", pod("web-new", {"gpu": "web-gpu"}, labels={"app": "web"}, affinity=anti),
                 gpu_claim("web-gpu"), multi=True)
    rc, out, err = schedule(capsys, "-f", cluster, "-f", want)
    assert (rc, err) == (1, "")
    lines = out.splitlines()
    assert lines[0] == ("default/web-new: unschedulable: 0/5 nodes are available: 2 Insufficient cpu, "
                        "3 node(s) didn't match pod anti-affinity rules.")
    table = {ln.split()[0]: ln.split(None, 2)[1:] for ln in lines[2:7]}
    assert lines[1].split() == ["NODE", "FILTER", "REASON"]
    assert table["n1"] == ["InterPodAffinity", "node(s) didn't match pod anti-affinity rules"]
    assert table["n5"] == ["NodeResourcesFit", "Insufficient cpu"]
    assert lines[-1] == "  preemption: No preemption victims found for incoming pod."
    rc, doc = schedule_json(capsys, "-f", cluster, "-f", want)
    p = doc["pods"][0]
    assert (rc, p["outcome"], p["node"]) == (1, "Unschedulable", None)
    assert {n["node"]: (n["plugin"], n["unresolvable"]) for n in p["nodes"]}["n4"] == ("NodeResourcesFit", False)


def test_claims_allocated_on_two_nodes_cannot_be_used_together(capsys, files):
    objs = gpu_cluster()
    other = running(pod("other", {"gpu": "other-gpu"}), "a100-2")
    objs += [other, allocated({**gpu_claim("other-gpu"), "metadata": {"name": "other-gpu", "namespace": "default",
                                                                      "uid": "uid-other-gpu"}},
                              "a100-2", ["gpu-3"], [other])]
    cluster = files("cluster.yaml", *objs)
    want = files("pod.yaml", pod("both", {"a": "holder-gpu", "b": "other-gpu"}), multi=True)
    rc, doc = schedule_json(capsys, "-f", cluster, "-f", want)
    assert rc == 1
    assert doc["pods"][0]["message"] == "claims of the pod are allocated on different nodes: a100-1, a100-2"


# ---- preemption and priority ----------------------------------------------------------------------


def one_gpu_cluster() -> list[dict]:
    """One node with one GPU, held by `batch` (priority class low = 100)."""
    batch = running(pod("batch", {"gpu": "batch-gpu"}, priorityClassName="low"), "gpu-node", priority=100)
    held = allocated({**gpu_claim("batch-gpu"), "metadata": {"name": "batch-gpu", "namespace": "default",
                                                              "uid": "uid-batch-gpu"}}, "gpu-node", ["gpu-0"], [batch])
    return [*classes().values(), node("gpu-node"), slice_("gpu-node", [gpu(0)]), batch, held,
            priority_class("low", 100), priority_class("high", 1000)]


def test_preemption_names_victims_and_the_devices_after_eviction(capsys, files):
    """The pod.yaml names priorityClassName high and no spec.priority: admission gives it 1000, so
    it preempts `batch` (100) and takes its GPU."""
    cluster = files("cluster.yaml", *one_gpu_cluster())
    want = files("pod.yaml", pod("urgent", {"gpu": "urgent-gpu"}, priorityClassName="high"), gpu_claim("urgent-gpu"),
                 multi=True)
    rc, out, err = schedule(capsys, "-f", cluster, "-f", want)
    assert (rc, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "default/urgent: would preempt 1 pod(s) on node gpu-node, then run there (strategy fragmentation)"
    assert lines[1] == "  victim  default/batch (priority 100)"
    assert lines[2] == "  claim   urgent-gpu: gpu → gpu.nvidia.com/gpu-node/gpu-0"
    assert lines[3].startswith("  without preemption: 0/1 nodes are available: ")
    rc, doc = schedule_json(capsys, "-f", cluster, "-f", want)
    p = doc["pods"][0]
    assert (p["outcome"], p["node"]) == ("Preempting", "gpu-node")
    assert p["preemption"] == {"node": "gpu-node", "pdbViolations": 0,
                               "victims": [{"pod": "default/batch", "node": "gpu-node", "priority": 100,
                                            "uid": "uid-batch"}]}
    assert devices(p) == [(DRIVER, "gpu-node", "gpu-0")]


@pytest.mark.parametrize("extra, spec, reason", [
    ([], {"priorityClassName": "low"}, "No preemption victims found for incoming pod."),  # equal priority
    ([], {}, "No preemption victims found for incoming pod."),  # no class, no default: priority 0
    ([priority_class("never", 5000, policy="Never")], {"priorityClassName": "never"},
     "not eligible due to preemptionPolicy=Never."),
])
def test_no_preemption(capsys, files, extra, spec, reason):
    cluster = files("cluster.yaml", *one_gpu_cluster(), *extra)
    want = files("pod.yaml", pod("p", {"gpu": "p-gpu"}, **spec), gpu_claim("p-gpu"), multi=True)
    rc, doc = schedule_json(capsys, "-f", cluster, "-f", want)
    assert (rc, doc["pods"][0]["outcome"], doc["pods"][0]["preemption"]["reason"]) == (1, "Unschedulable", reason)


def test_global_default_priority_class_applies_to_a_pod_without_one(capsys, files):
    """Two globalDefault classes: the lower value wins (upstream TestDefaultPriority), still above batch."""
    cluster = files("cluster.yaml", *one_gpu_cluster(), priority_class("d1", 500, default=True),
                    priority_class("d2", 2000, default=True))
    want = files("pod.yaml", pod("p", {"gpu": "p-gpu"}), gpu_claim("p-gpu"), multi=True)
    rc, doc = schedule_json(capsys, "-f", cluster, "-f", want)
    assert (rc, doc["pods"][0]["outcome"]) == (0, "Preempting")
    rc, doc = schedule_json(capsys, "-f", cluster, "-f", want, "--no-preemption")
    assert (rc, doc["pods"][0]["outcome"], "preemption" in doc["pods"][0]) == (1, "Unschedulable", False)


def test_admit_priority_follows_the_admission_plugin():
    classes_ = {"default1": priority_class("default1", 1000, default=True),
                "nondefault1": priority_class("nondefault1", 2000),
                "nopreempt": priority_class("nopreempt", 2000, policy="Never")}

    def spec_of(s: dict, cls: dict = classes_) -> dict:
        return admit_priority({"metadata": {"name": "p"}, "spec": s}, cls)["spec"]

    assert spec_of({"priorityClassName": "nondefault1"})["priority"] == 2000
    assert (spec_of({})["priority"], spec_of({})["priorityClassName"]) == (1000, "default1")
    assert spec_of({}, {}) == {"priority": 0, "preemptionPolicy": "PreemptLowerPriority"}
    assert spec_of({"priorityClassName": "system-cluster-critical"}, {})["priority"] == 2000000000
    assert spec_of({"priorityClassName": "nopreempt"})["preemptionPolicy"] == "Never"
    assert spec_of({"priority": 7}) == {"priority": 7}  # admitted already: left alone
    with pytest.raises(ValueError, match="no PriorityClass with name non-existing was found"):
        spec_of({"priorityClassName": "non-existing"})
    with pytest.raises(ValueError, match=r"PreemptionPolicy \(PreemptLowerPriority\) must not be provided"):
        spec_of({"priorityClassName": "nopreempt", "preemptionPolicy": "PreemptLowerPriority"})


# ---- bad input --------------------------------------------------------------------------------------


def _bad(capsys, *args: str) -> str:
    rc, out, err = schedule(capsys, *args)
    assert (rc, out) == (2, ""), (rc, out, err)
    assert err.startswith("gpu-dra schedule: ") and err.count("\n") == 1
    return err


def test_bad_input_exits_2_naming_file_and_object(capsys, files, tmp_path):
    cluster = files("cluster.yaml", *one_gpu_cluster())
    want = files("pod.yaml", pod("p", {"gpu": "p-gpu"}), gpu_claim("p-gpu"), multi=True)
    missing = str(tmp_path / "nope.yaml")
    assert f"{missing}: No such file or directory" in _bad(capsys, "-f", cluster, "-f", missing)
    junk = tmp_path / "junk.yaml"
    junk.write_text("kind: [unclosed\n")
    assert f"{junk}: not YAML/JSON" in _bad(capsys, "-f", str(junk))
    cm = files("cm.yaml", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}})
    assert f"{cm}: ConfigMap settings: unknown kind 'ConfigMap'" in _bad(capsys, "-f", cluster, "-f", cm, "-f", want)
    old = files("old.yaml", {**gpu_claim("c"), "apiVersion": "resource.k8s.io/v1beta1"})
    assert f"{old}: ResourceClaim c: apiVersion resource.k8s.io/v1beta1 not supported" in _bad(
        capsys, "-f", cluster, "-f", old, "-f", want)
    assert "pod default/ghost not found in the input" in _bad(capsys, "-f", cluster, "-f", want, "--pod", "ghost")
    assert f"{cluster}: no pending Pod" in _bad(capsys, "-f", want, "-f", cluster)
    lost = files("lost.yaml", pod("lost", {"gpu": "never-written"}), multi=True)
    assert f"{lost}: Pod default/lost: resourceclaim default/never-written not found" in _bad(
        capsys, "-f", cluster, "-f", lost)
    typo = files("typo.yaml", pod("typo", {"gpu": "t"}, priorityClassName="hihg"), gpu_claim("t"), multi=True)
    assert f"{typo}: Pod default/typo: spec.priorityClassName: no PriorityClass with name hihg was found" in _bad(
        capsys, "-f", cluster, "-f", typo)
    bad_cpu = files("cpu.yaml", pod("c", cpu="lots"), multi=True)
    assert f"{bad_cpu}: Pod default/c: " in _bad(capsys, "-f", cluster, "-f", bad_cpu)
    assert "--strategy: unknown scheduling strategy 'tetris'" in _bad(
        capsys, "-f", cluster, "-f", want, "--strategy", "tetris")
    bound = files("bound.yaml", running(pod("done-already"), "gpu-node"), multi=True)
    assert "already bound to node gpu-node" in _bad(capsys, "-f", cluster, "-f", bound, "--pod", "default/done-already")


# ---- machine-readable output ------------------------------------------------------------------------


def test_json_and_yaml_shape(capsys, files):
    cluster = files("cluster.yaml", *one_gpu_cluster())
    want = files("pods.yaml", pod("urgent", {"gpu": "u"}, priorityClassName="high"), gpu_claim("u"),
                 pod("meek", {"gpu": "m"}), gpu_claim("m"), multi=True)
    rc, doc = schedule_json(capsys, "-f", cluster, "-f", want)
    assert set(doc) == {"pods", "warnings"} and doc["warnings"] == []
    urgent, meek = doc["pods"]
    assert set(urgent) == {"pod", "outcome", "node", "strategy", "claims", "message", "nodes", "preemption", "warnings"}
    assert set(urgent["claims"][0]) == {"podClaimName", "name", "alreadyAllocated", "allocation"}
    alloc = urgent["claims"][0]["allocation"]
    assert alloc["allocationTimestamp"] == NOW
    assert alloc["nodeSelector"]["nodeSelectorTerms"][0]["matchFields"][0]["values"] == ["gpu-node"]
    assert urgent["nodes"][0]["node"] == "gpu-node" and set(urgent["nodes"][0]) == {"node", "plugin", "reason",
                                                                                      "unresolvable"}
    assert (meek["outcome"], meek["node"], meek["claims"]) == ("Unschedulable", None, [])
    assert set(meek["preemption"]) == {"node", "victims", "reason"}
    rc_yaml, out, _ = schedule(capsys, "-f", cluster, "-f", want, "-o", "yaml")
    assert (rc_yaml, rc) == (1, 1) and yaml.safe_load(out) == doc


def test_warns_when_the_controller_would_not_pick_the_pod_up(capsys, files):
    cluster = files("cluster.yaml", *gpu_cluster())
    p = pod("plain", {"gpu": "plain-gpu"})
    del p["spec"]["schedulerName"]
    want = files("pod.yaml", p, gpu_claim("plain-gpu"), multi=True)
    rc, doc = schedule_json(capsys, "-f", cluster, "-f", want)
    assert rc == 0 and "the controller would leave this pod alone" in doc["pods"][0]["warnings"][0]


def test_typed_list_items_without_kind_and_stdin(capsys, files, monkeypatch):
    """`kubectl get pods -o json` style PodList items carry no kind; '-' reads stdin."""
    import io

    cluster = files("cluster.yaml", *one_gpu_cluster())
    p = pod("p", cpu="1")
    del p["kind"], p["apiVersion"]
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"apiVersion": "v1", "kind": "PodList", "items": [p]})))
    rc, doc = schedule_json(capsys, "-f", cluster, "-f", "-")
    assert (rc, doc["pods"][0]["pod"], doc["pods"][0]["node"]) == (0, "default/p", "gpu-node")


# ---- the helper shared with the controller ----------------------------------------------------------


def test_plan_claims_splits_like_schedule_one():
    pending, local, shared = ({"metadata": {"name": n}} for n in ("pending", "local", "shared"))
    alloc = {"local": {"devices": {"results": []}}, "shared": {"devices": {"results": []}}}
    where = {"local": "n1"}
    plan = plan_claims([pending, local, shared], lambda c: alloc.get(c["metadata"]["name"]),
                       lambda c: where.get(c["metadata"]["name"]))
    assert [c["metadata"]["name"] for c in plan.pending] == ["pending"]
    assert plan.nodes == ("n1",) and plan.conflict is None
    assert [c["status"]["allocation"] for c in plan.floating] == [alloc["shared"]]
    (pinned,) = plan.pinned
    term = pinned["status"]["allocation"]["nodeSelector"]["nodeSelectorTerms"][0]
    assert term["matchFields"] == [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]
    assert plan.allocated == plan.floating + plan.pinned
    assert plan.explain("0/3 nodes are available.").endswith("(a claim of the pod is already allocated on node n1)")
    two = ClaimPlan([], ("n1", "n2"), [])
    assert two.conflict == "claims of the pod are allocated on different nodes: n1, n2"


def test_why_is_my_pod_pending_from_the_cluster_dump_alone(capsys, files):
    """`--pod` picks a pending pod of the dump itself (its claim is in the dump too)."""
    stuck = {**pod("stuck", {"gpu": "stuck-gpu"}), "status": {"phase": "Pending"}}
    stuck["metadata"] = {**stuck["metadata"], "uid": "uid-stuck", "resourceVersion": "9"}
    stuck["spec"] = {**stuck["spec"], "priority": 0}
    cluster = files("cluster.yaml", *one_gpu_cluster(), stuck, gpu_claim("stuck-gpu"))
    rc, out, err = schedule(capsys, "-f", cluster, "--pod", "default/stuck")
    assert (rc, err) == (1, "")
    assert out.splitlines()[0].startswith("default/stuck: unschedulable: 0/1 nodes are available: 1 ")
    rc, out, _ = schedule(capsys, "-f", cluster)  # one file: its pending pods
    assert rc == 1 and out.startswith("default/stuck: unschedulable")
