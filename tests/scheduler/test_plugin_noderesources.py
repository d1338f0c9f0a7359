"""NodeResourcesFit: cases from kube-scheduler's noderesources fit_test.go (TestEnoughRequests,
TestNotEnoughRequests, TestStorageRequests) and component-helpers' resource helpers_test.go
(TestPodResourceRequests: sidecars), run through `pod_requests` + `insufficient` (what the cycle
uses for cpu / memory / pods) and through the prefilter's per-node filter (ephemeral-storage and
scalar resources against the pods already on the node).

Upstream's node in TestEnoughRequests: allocatable cpu 10m, memory 20, pods 32,
example.com/aaa 5, ephemeral-storage 20, hugepages-2Mi 5; "used" is one pod already there.
"""

from __future__ import annotations

from typing import Any

import pytest

from driver.scheduler.framework import CycleContext
from driver.scheduler.packing.config import PackingConfig
from driver.scheduler.plugins import noderesources as nr
from driver.scheduler.podinfo import pod_info
from driver.scheduler.state import ClusterState

EXT_A, EXT_B = "example.com/aaa", "example.com/bbb"
K8S_A, K8S_B = "kubernetes.io/something", "subdomain.kubernetes.io/something"
HUGE = "hugepages-2Mi"
ALLOC = {"cpu": "10m", "memory": "20", "pods": "32", EXT_A: "5", "ephemeral-storage": "20", HUGE: "5"}


def res(cpu: int = 0, mem: int = 0, eph: int = 0, **scalars: int) -> dict[str, str]:
    out = {}
    if cpu:
        out["cpu"] = f"{cpu}m"
    if mem:
        out["memory"] = str(mem)
    if eph:
        out["ephemeral-storage"] = str(eph)
    out.update({_name(k): str(v) for k, v in scalars.items()})
    return out


def _name(k: str) -> str:
    return {"ext_a": EXT_A, "ext_b": EXT_B, "k8s_a": K8S_A, "k8s_b": K8S_B, "huge": HUGE}[k]


def pod(*containers: dict, init: tuple[dict, ...] = (), overhead: dict | None = None, name: str = "p") -> dict:
    spec: dict[str, Any] = {"containers": [{"name": f"c{i}", "resources": {"requests": r}} for i, r in enumerate(containers)]}
    if init:
        spec["initContainers"] = [{"name": f"i{i}", "resources": {"requests": r}} for i, r in enumerate(init)]
    if overhead:
        spec["overhead"] = overhead
    return {"metadata": {"name": name, "namespace": "default", "uid": name}, "spec": spec}


def node(name: str = "n1", alloc: dict | None = None) -> dict:
    return {"metadata": {"name": name}, "status": {"allocatable": dict(ALLOC if alloc is None else alloc)}}


def free_after(n: dict, used: list[dict]) -> nr.Resources:
    a = nr.node_allocatable(n)
    u = [nr.pod_requests(p) for p in used]
    scalars = {k: v - sum(r.scalar(k) for r in u) for k, v in a.scalars}
    for r in u:
        for k, v in r.scalars:
            scalars.setdefault(k, -v)
    return nr.Resources(a.cpu - sum(r.cpu for r in u), a.memory - sum(r.memory for r in u), a.pods - len(u),
                        a.ephemeral - sum(r.ephemeral for r in u), tuple(sorted(scalars.items())))


def run_filter(p: dict, n: dict, used: list[dict], dra: tuple[str, ...] = ()):
    state = ClusterState({})
    state.add_node(n)
    for i, u in enumerate(used):
        u = {**u, "metadata": {"name": f"used{i}", "namespace": "default", "uid": f"used{i}"}}
        state.pods.add(pod_info(u, node=n["metadata"]["name"]))
    ctx = CycleContext(p, pod_info(p), state, PackingConfig(), {"dra_extended": set(dra)} if dra else {})
    checks = nr.prefilter(ctx)
    return checks, (checks.filter(state.nodes[n["metadata"]["name"]]) if checks else None)


ENOUGH = [
    ("no resources requested always fits", pod(), [pod(res(10, 20))], [], ()),
    ("too many resources fails", pod(res(1, 1)), [pod(res(10, 20))], ["Insufficient cpu", "Insufficient memory"], ()),
    ("too many resources fails due to init container cpu", pod(res(1, 1), init=(res(3, 1),)), [pod(res(8, 19))],
     ["Insufficient cpu"], ()),
    ("too many resources fails due to highest init container cpu", pod(res(1, 1), init=(res(3, 1), res(2, 1))),
     [pod(res(8, 19))], ["Insufficient cpu"], ()),
    ("too many resources fails due to init container memory", pod(res(1, 1), init=(res(1, 3),)), [pod(res(9, 19))],
     ["Insufficient memory"], ()),
    ("too many resources fails due to highest init container memory", pod(res(1, 1), init=(res(1, 3), res(1, 2))),
     [pod(res(9, 19))], ["Insufficient memory"], ()),
    ("init container fits because it's the max, not sum", pod(res(1, 1), init=(res(1, 1),)), [pod(res(9, 19))], [], ()),
    ("multiple init containers fit because it's the max, not sum", pod(res(1, 1), init=(res(1, 1), res(1, 1))),
     [pod(res(9, 19))], [], ()),
    ("both resources fit", pod(res(1, 1)), [pod(res(5, 5))], [], ()),
    ("one resource memory fits", pod(res(2, 1)), [pod(res(9, 5))], ["Insufficient cpu"], ()),
    ("one resource cpu fits", pod(res(1, 2)), [pod(res(5, 19))], ["Insufficient memory"], ()),
    ("equal edge case", pod(res(5, 1)), [pod(res(5, 19))], [], ()),
    ("equal edge case for init container", pod(res(4, 1), init=(res(5, 1),)), [pod(res(5, 19))], [], ()),
    ("extended resource fits", pod(res(ext_a=1)), [pod()], [], ()),
    ("extended resource fits for init container", pod(res(), init=(res(ext_a=1),)), [pod()], [], ()),
    ("extended resource capacity enforced", pod(res(1, 1, ext_a=10)), [pod(res(ext_a=0))], [f"Insufficient {EXT_A}"], ()),
    ("extended resource capacity enforced for init container", pod(res(), init=(res(1, 1, ext_a=10),)),
     [pod(res(ext_a=0))], [f"Insufficient {EXT_A}"], ()),
    ("extended resource allocatable enforced", pod(res(1, 1, ext_a=1)), [pod(res(ext_a=5))], [f"Insufficient {EXT_A}"], ()),
    ("extended resource allocatable enforced for init container", pod(res(), init=(res(1, 1, ext_a=1),)),
     [pod(res(ext_a=5))], [f"Insufficient {EXT_A}"], ()),
    ("extended resource allocatable enforced for multiple containers", pod(res(1, 1, ext_a=3), res(1, 1, ext_a=3)),
     [pod(res(ext_a=2))], [f"Insufficient {EXT_A}"], ()),
    ("extended resource allocatable admits multiple init containers", pod(res(), init=(res(1, 1, ext_a=3), res(1, 1, ext_a=3))),
     [pod(res(ext_a=2))], [], ()),
    ("extended resource allocatable enforced for multiple init containers",
     pod(res(), init=(res(1, 1, ext_a=6), res(1, 1, ext_a=3))), [pod(res(ext_a=2))], [f"Insufficient {EXT_A}"], ()),
    ("extended resource allocatable enforced for unknown resource", pod(res(1, 1, ext_b=1)), [pod()],
     [f"Insufficient {EXT_B}"], ()),
    ("extended resource allocatable enforced for unknown resource for init container", pod(res(), init=(res(1, 1, ext_b=1),)),
     [pod()], [f"Insufficient {EXT_B}"], ()),
    ("kubernetes.io resource capacity enforced", pod(res(1, 1, k8s_a=10)), [pod()], [f"Insufficient {K8S_A}"], ()),
    ("kubernetes.io resource capacity enforced for init container", pod(res(), init=(res(1, 1, k8s_b=10),)), [pod()],
     [f"Insufficient {K8S_B}"], ()),
    ("hugepages resource capacity enforced", pod(res(1, 1, huge=10)), [pod(res(huge=0))], [f"Insufficient {HUGE}"], ()),
    ("hugepages resource capacity enforced for init container", pod(res(), init=(res(1, 1, huge=10),)),
     [pod(res(huge=0))], [f"Insufficient {HUGE}"], ()),
    ("hugepages resource allocatable enforced for multiple containers", pod(res(1, 1, huge=3), res(1, 1, huge=3)),
     [pod(res(huge=2))], [f"Insufficient {HUGE}"], ()),
    ("skip checking ignored extended resource", pod(res(1, 1, ext_b=1)), [pod()], [], (EXT_B,)),
    ("resources + pod overhead fits", pod(res(1, 1), overhead={"cpu": "3m", "memory": "13"}), [pod(res(5, 5))], [], ()),
    ("requests + overhead does not fit for memory", pod(res(1, 1), overhead={"cpu": "1m", "memory": "15"}),
     [pod(res(5, 5))], ["Insufficient memory"], ()),
    ("skip checking extended resource request with quantity zero", pod(res(1, 1, ext_a=0)), [pod(res(ext_a=6))], [], ()),
    ("skip checking resource request with quantity zero", pod(res(ext_a=1)), [pod(res(20, 30, ext_a=1))], [], ()),
]


@pytest.mark.parametrize("name,p,used,want,ignored", ENOUGH, ids=[c[0] for c in ENOUGH])
def test_enough_requests(name: str, p: dict, used: list[dict], want: list[str], ignored: tuple[str, ...]) -> None:
    n = node()
    assert nr.insufficient(nr.pod_requests(p), free_after(n, used), ignored) == want
    # the prefilter's filter says the same for the resources it checks (not cpu / memory / pods)
    checks, got = run_filter(p, n, used, ignored)
    beyond = [r for r in want if r not in ("Insufficient cpu", "Insufficient memory")]
    if beyond:
        assert got is not None and got.reason == ", ".join(beyond) and not got.unresolvable
    else:
        assert got is None


NOT_ENOUGH_PODS = [
    ("even without specified resources, predicate fails when there's no space for additional pod", pod(), [pod(res(10, 20))]),
    ("even if both resources fit, predicate fails when there's no space for additional pod", pod(res(1, 1)), [pod(res(5, 5))]),
    ("even for equal edge case, predicate fails when there's no space for additional pod", pod(res(5, 1)), [pod(res(5, 19))]),
    ("even for equal edge case, predicate fails when there's no space for additional pod due to init container",
     pod(res(5, 1), init=(res(5, 1),)), [pod(res(5, 19))]),
]


@pytest.mark.parametrize("name,p,used", NOT_ENOUGH_PODS, ids=[c[0] for c in NOT_ENOUGH_PODS])
def test_not_enough_pods(name: str, p: dict, used: list[dict]) -> None:
    n = node(alloc={"cpu": "10m", "memory": "20", "pods": "1"})
    assert nr.insufficient(nr.pod_requests(p), free_after(n, used)) == ["Too many pods"]


STORAGE = [
    ("empty storage requested, and pod fits", pod(res(1, 1)), [pod(res(2, 10))], None),
    ("storage ephemeral local storage request exceeds allocatable", pod(res(eph=25)), [pod(res(2, 2))],
     "Insufficient ephemeral-storage"),
    ("ephemeral local storage is sufficient", pod(res(eph=5)), [pod(res(2, 2, eph=10))], None),
    ("pod fits", pod(res(eph=10)), [pod(res(2, 2))], None),
    ("ephemeral storage of the pods on the node counts", pod(res(eph=11)), [pod(res(eph=10))],
     "Insufficient ephemeral-storage"),
]


@pytest.mark.parametrize("name,p,used,want", STORAGE, ids=[c[0] for c in STORAGE])
def test_storage_requests(name: str, p: dict, used: list[dict], want: str | None) -> None:
    _, got = run_filter(p, node(), used)
    assert (got.reason if got else None) == want


def test_prefilter_skips_pods_without_ephemeral_or_scalar_requests() -> None:
    assert run_filter(pod(res(1, 1)), node(), [])[0] is None
    assert run_filter(pod(), node(), [])[0] is None
    assert run_filter(pod(res(ext_a=0)), node(), [])[0] is None  # zero requests are not checked
    assert run_filter(pod(res(ext_b=1)), node(), [], dra=(EXT_B,))[0] is None  # served by DRA
    assert run_filter(pod(res(ext_b=1)), node(), [])[0] is not None


def test_several_insufficient_resources_are_all_named() -> None:
    _, got = run_filter(pod(res(eph=30, ext_a=6, huge=6)), node(), [])
    assert got is not None and got.reason == \
        f"Insufficient ephemeral-storage, Insufficient {EXT_A}, Insufficient {HUGE}"


def _c(cpu: str, sidecar: bool = False) -> dict:
    c: dict[str, Any] = {"name": "x", "resources": {"requests": {"cpu": cpu}}}
    if sidecar:
        c["restartPolicy"] = "Always"
    return c


SIDECARS = [  # component-helpers TestPodResourceRequests, cpu in cores
    ("restartable init container", [_c("1", True)], [_c("1")], 2000),
    ("multiple restartable init containers", [_c("5"), _c("1", True), _c("2", True), _c("3", True)], [_c("1")], 7000),
    ("multiple restartable and regular init containers",
     [_c("5"), _c("1", True), _c("2", True), _c("5"), _c("3", True)], [_c("1")], 8000),
    ("restartable-init, init and regular", [_c("10", True), _c("200")], [_c("100")], 210000),
    ("init container that is not restartable is not added", [_c("3")], [_c("1")], 3000),
]


@pytest.mark.parametrize("name,init,containers,cpu", SIDECARS, ids=[c[0] for c in SIDECARS])
def test_sidecar_requests(name: str, init: list[dict], containers: list[dict], cpu: int) -> None:
    p = {"spec": {"initContainers": init, "containers": containers}}
    assert nr.pod_requests(p).cpu == cpu


def test_limits_count_as_requests_when_no_request_is_set() -> None:
    p = {"spec": {"containers": [
        {"name": "a", "resources": {"limits": {"cpu": "2", "memory": "1Gi", EXT_A: "2"}}},
        {"name": "b", "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "1", "ephemeral-storage": "1Ki"}}},
    ]}}
    r = nr.pod_requests(p)
    assert (r.cpu, r.memory, r.ephemeral, r.scalars) == (2500, 2**30, 1024, ((EXT_A, 2),))


def test_overhead_adds_to_every_resource_and_pod_level_requests_replace_container_sums() -> None:
    p = {"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1Gi", EXT_A: "1"}}}],
                  "overhead": {"cpu": "100m", "ephemeral-storage": "10", EXT_A: "1"}}}
    r = nr.pod_requests(p)
    assert (r.cpu, r.memory, r.ephemeral, r.scalar(EXT_A), r.pods) == (1100, 2**30, 10, 2, 1)
    p["spec"]["resources"] = {"requests": {"cpu": "3"}, "limits": {"memory": "2Gi", EXT_A: "9"}}
    r = nr.pod_requests(p)
    assert (r.cpu, r.memory, r.scalar(EXT_A)) == (3100, 2 * 2**30, 2)  # extended resources are not pod-level


def test_fractions_are_summed_exactly_then_rounded_up() -> None:
    p = {"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "0.0005"}}},
                                 {"name": "b", "resources": {"requests": {"cpu": "0.0005"}}}]}}
    assert nr.pod_requests(p).cpu == 1


def test_node_allocatable_reads_every_resource_and_falls_back_to_capacity() -> None:
    a = nr.node_allocatable(node(alloc={**ALLOC, "nvidia.com/gpu": "8", "attachable-volumes-aws-ebs": "25"}))
    assert (a.cpu, a.memory, a.pods, a.ephemeral) == (10, 20, 32, 20)
    assert a.scalars == (("attachable-volumes-aws-ebs", 25), (EXT_A, 5), (HUGE, 5), ("nvidia.com/gpu", 8))
    cap = nr.node_allocatable({"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "2"}}})
    assert (cap.cpu, cap.pods) == (2000, nr.DEFAULT_PODS)


def test_resources_keep_their_positional_fields_and_hash() -> None:
    r = nr.Resources(1, 2, 3)
    assert (r.cpu, r.memory, r.pods, r.ephemeral, r.scalars) == (1, 2, 3, 0, ())
    assert hash(nr.Resources(1, 2, 3, 4, (("a/b", 1),))) == hash(nr.Resources(1, 2, 3, 4, (("a/b", 1),)))


def test_non_scalar_names_are_ignored() -> None:
    r = nr.pod_requests(pod({"cpu": "1", "storage": "1Gi", "pods": "3", "requests.example.com/x": "1"}))
    assert (r.cpu, r.scalars, r.pods) == (1000, (), 1)


@pytest.mark.parametrize("p,field", [
    (pod({"cpu": "lots"}), "spec.containers[0].resources.requests.cpu"),
    ({"spec": {"containers": [{"resources": {"limits": {EXT_A: "1x"}}}]}}, f"spec.containers[0].resources.limits.{EXT_A}"),
    ({"spec": {"initContainers": [{"resources": {"requests": ["cpu"]}}]}}, "spec.initContainers[0].resources.requests"),
    ({"spec": {"containers": ["c"]}}, "spec.containers[0]"),
    ({"spec": {"overhead": {"memory": "-"}}}, "spec.overhead.memory"),
])
def test_bad_quantities_name_the_field(p: dict, field: str) -> None:
    with pytest.raises(nr.PodSpecError, match=field.replace(".", r"\.").replace("[", r"\[")):
        nr.pod_requests(p)
