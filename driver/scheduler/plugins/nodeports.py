"""NodePorts: a host port (protocol, port) is used at most once per host IP on a node.

The ports a pod claims are the hostPorts of its containers and of its sidecars (init containers
with restartPolicy Always: they run for the pod's life; other init containers do not count), an
empty hostIP meaning 0.0.0.0 and an empty protocol TCP. A wanted port conflicts with a used one
of the same protocol and port when either side binds 0.0.0.0 or both bind the same IP —
kube-scheduler's HostPortInfo.CheckConflict. "node(s) didn't have free ports for the requested pod
ports", resolvable (evicting the pod that holds the port frees it).

Cost: nothing for pods without host ports (prefilter returns None); otherwise one pass over the
pods of each node checked, whose ports are parsed once per pod (cached in `PodInfo.extra`).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from driver.scheduler.framework import Checks, CycleContext, Rejection
from driver.scheduler.plugins.noderesources import PodSpecError

PLUGIN = "NodePorts"
REASON = "node(s) didn't have free ports for the requested pod ports"
ANY_IP = "0.0.0.0"
_CACHE_KEY = "nodeports"

Port = tuple[str, str, int]  # (hostIP, protocol, hostPort)


class PortSpecError(PodSpecError):
    """A container port that cannot be read; the message names the field."""


def host_ports(pod: Mapping[str, Any]) -> tuple[Port, ...]:
    """(hostIP, protocol, hostPort) of every port the pod holds on its node, in spec order
    (sidecars first, then containers, as upstream's GetHostPorts)."""
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    if not spec.get("initContainers") and type(containers) is list and all(
            type(c) is dict and not c.get("ports") for c in containers):
        return ()  # no container declares ports (the common case)
    out: list[Port] = []
    groups = [("initContainers", [c for c in spec.get("initContainers") or []
                                  if isinstance(c, Mapping) and c.get("restartPolicy") == "Always"]),
              ("containers", list(spec.get("containers") or []))]
    for key, containers in groups:
        for i, c in enumerate(containers):
            if not isinstance(c, Mapping):
                raise PortSpecError(f"spec.{key}[{i}]: expected a container object")
            for j, p in enumerate(c.get("ports") or []):
                if not isinstance(p, Mapping):
                    raise PortSpecError(f"spec.{key}[{i}].ports[{j}]: expected a container port object")
                hp = p.get("hostPort") or 0
                if not isinstance(hp, int) or isinstance(hp, bool):
                    raise PortSpecError(f"spec.{key}[{i}].ports[{j}].hostPort: expected an integer, got {hp!r}")
                if hp > 0:
                    out.append((str(p.get("hostIP") or ANY_IP), str(p.get("protocol") or "TCP"), hp))
    return tuple(out)


def _pod_ports(info: Any) -> tuple[Port, ...]:
    got = info.extra.get(_CACHE_KEY)
    if got is None:
        try:
            got = host_ports(info.obj)
        except PortSpecError:
            got = info.host_ports  # a placed pod the API accepted: fall back to the parsed view
        info.extra[_CACHE_KEY] = got
    return got


def conflicts(wanted: Iterable[Port], used: Iterable[Port]) -> bool:
    """Does any wanted port collide with a used one (see the module docstring)?"""
    by_port: dict[tuple[str, int], set[str]] = {}
    for ip, proto, port in used:
        by_port.setdefault((proto, port), set()).add(ip)
    for ip, proto, port in wanted:
        ips = by_port.get((proto, port))
        if not ips:
            continue
        if ip == ANY_IP or ANY_IP in ips or ip in ips:
            return True
    return False


def prefilter(ctx: CycleContext) -> Checks | Rejection | None:
    try:
        wanted = host_ports(ctx.pod)
    except PortSpecError as exc:
        return Rejection(PLUGIN, str(exc), unresolvable=True)
    if not wanted:
        return None
    rejected = Rejection(PLUGIN, REASON)
    pods = ctx.state.pods

    def ports_free(node: Any) -> Rejection | None:
        used = [p for info in pods.on_node(node.name).values() for p in _pod_ports(info)]
        return rejected if used and conflicts(wanted, used) else None
    return Checks(PLUGIN, filter=ports_free)
