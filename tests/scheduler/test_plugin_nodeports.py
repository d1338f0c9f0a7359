"""NodePorts: cases from kube-scheduler's node_ports_test.go (TestNodePorts, TestGetContainerPorts)
and its GetHostPorts rule for sidecars."""

from __future__ import annotations

from typing import Any

import pytest

from driver.scheduler.framework import CycleContext
from driver.scheduler.packing.config import PackingConfig
from driver.scheduler.plugins import nodeports as np_
from driver.scheduler.podinfo import pod_info
from driver.scheduler.state import ClusterState


def ports(*specs: str) -> list[dict]:
    """ "PROTO/IP/PORT" as in upstream's newPod helper."""
    out = []
    for s in specs:
        proto, ip, port = s.split("/")
        out.append({"protocol": proto, "hostIP": ip, "hostPort": int(port), "containerPort": int(port)})
    return out


def pod(name: str, *specs: str, **spec: Any) -> dict:
    body: dict[str, Any] = {"containers": [{"name": "c", "ports": ports(*specs)}]}
    body.update(spec)
    return {"metadata": {"name": name, "namespace": "default", "uid": name}, "spec": body}


def run(p: dict, existing: list[dict]):
    state = ClusterState({})
    state.add_node({"metadata": {"name": "m1"}})
    for e in existing:
        state.pods.add(pod_info(e, node="m1"))
    checks = np_.prefilter(CycleContext(p, pod_info(p), state, PackingConfig()))
    return checks, (checks.filter(state.nodes["m1"]) if checks else None)


CASES = [
    ("other port", pod("p", "UDP/127.0.0.1/8080"), [pod("e", "UDP/127.0.0.1/9090")], False),
    ("same udp port", pod("p", "UDP/127.0.0.1/8080"), [pod("e", "UDP/127.0.0.1/8080")], True),
    ("same tcp port", pod("p", "TCP/127.0.0.1/8080"), [pod("e", "TCP/127.0.0.1/8080")], True),
    ("different host ip", pod("p", "TCP/127.0.0.1/8080"), [pod("e", "TCP/127.0.0.2/8080")], False),
    ("different protocol", pod("p", "UDP/127.0.0.1/8080"), [pod("e", "TCP/127.0.0.1/8080")], False),
    ("second udp port conflict", pod("p", "UDP/127.0.0.1/8000", "UDP/127.0.0.1/8080"), [pod("e", "UDP/127.0.0.1/8080")], True),
    ("first tcp port conflict", pod("p", "TCP/127.0.0.1/8001", "UDP/127.0.0.1/8080"),
     [pod("e", "TCP/127.0.0.1/8001", "UDP/127.0.0.1/8081")], True),
    ("first tcp port conflict due to 0.0.0.0 hostIP", pod("p", "TCP/0.0.0.0/8001"), [pod("e", "TCP/127.0.0.1/8001")], True),
    ("TCP hostPort conflict due to 0.0.0.0 hostIP", pod("p", "TCP/10.0.10.10/8001", "TCP/0.0.0.0/8001"),
     [pod("e", "TCP/127.0.0.1/8001")], True),
    ("second tcp port conflict to 0.0.0.0 hostIP", pod("p", "TCP/127.0.0.1/8001"), [pod("e", "TCP/0.0.0.0/8001")], True),
    ("second different protocol", pod("p", "UDP/127.0.0.1/8001"), [pod("e", "TCP/0.0.0.0/8001")], False),
    ("UDP hostPort conflict due to 0.0.0.0 hostIP", pod("p", "UDP/127.0.0.1/8001"),
     [pod("e", "TCP/0.0.0.0/8001", "UDP/0.0.0.0/8001")], True),
    ("empty hostIP and protocol mean 0.0.0.0 and TCP", pod("p", "//8001"), [pod("e", "TCP/127.0.0.1/8001")], True),
    ("a sidecar's host port is held", pod("p", "TCP/0.0.0.0/9000"),
     [pod("e", initContainers=[{"name": "s", "restartPolicy": "Always", "ports": ports("TCP/0.0.0.0/9000")}])], True),
    ("a regular init container's host port is not", pod("p", "TCP/0.0.0.0/9000"),
     [pod("e", initContainers=[{"name": "i", "ports": ports("TCP/0.0.0.0/9000")}])], False),
]


@pytest.mark.parametrize("name,p,existing,conflict", CASES, ids=[c[0] for c in CASES])
def test_node_ports(name: str, p: dict, existing: list[dict], conflict: bool) -> None:
    checks, got = run(p, existing)
    assert checks is not None
    assert (got.reason if got else None) == (np_.REASON if conflict else None)
    if got:
        assert not got.unresolvable and got.plugin == "NodePorts"  # preemption can free a port


def test_skip_filter_for_pods_without_host_ports() -> None:
    assert run({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}, [])[0] is None
    assert run(pod("p", "TCP/0.0.0.0/0"), [])[0] is None  # hostPort 0: no host port


def test_get_container_ports() -> None:
    p = {"spec": {"containers": [
        {"name": "a", "ports": [{"containerPort": 8001, "hostPort": 8001, "protocol": "TCP"},
                                {"containerPort": 8002, "hostPort": 8002, "protocol": "TCP"}]},
        {"name": "b", "ports": [{"containerPort": 8005, "protocol": "TCP"}]}],
        "initContainers": [{"name": "s", "restartPolicy": "Always", "ports": [{"containerPort": 7, "hostPort": 7}]},
                           {"name": "i", "ports": [{"containerPort": 9, "hostPort": 9}]}]}}
    assert np_.host_ports(p) == (("0.0.0.0", "TCP", 7), ("0.0.0.0", "TCP", 8001), ("0.0.0.0", "TCP", 8002))


def test_unreadable_host_port_rejects_the_pod() -> None:
    p = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "ports": [{"hostPort": "80"}]}]}}
    got = np_.prefilter(CycleContext(p, pod_info({"metadata": {"name": "p"}}), ClusterState({}), PackingConfig()))
    assert got is not None and got.reason.startswith("spec.containers[0].ports[0].hostPort:") and got.unresolvable
