"""`gpu-dra simulate`: "what if this workload ran on this cluster with this strategy?".

The cluster is either a local-cluster description (the `gpu-dra local up` YAML: nodes with a mock
NVML description and a sharing config, turned into ResourceSlices by the devices part exactly as
the kubelet plugin would publish them) or a trace node CSV; the workload is YAML (Pods,
ResourceClaims, ResourceClaimTemplates, DeviceClasses) or a trace pod CSV. Every pod goes through
`schedule` + `commit`, the controller's path, and the result is printed per node and per device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


from driver.allocator.inventory import SliceError, build_inventories
from driver.scheduler.cycle import ClusterState, Placement, Unschedulable, schedule
from driver.scheduler.packing.adapter import device_free
from driver.scheduler.packing.scoring import PackingConfig
from driver.sim import trace as tr


class SimulateError(ValueError):
    """Input the simulation cannot use; the message names the file and field."""


@dataclass
class Outcome:
    """Placements and failures, plus the final cluster state for the per-node view."""

    state: ClusterState
    strategy: str
    placed: list[Placement] = field(default_factory=list)
    failed: list[Unschedulable] = field(default_factory=list)

    def _devices(self) -> dict[str, list[dict[str, Any]]]:
        users: dict[tuple[str, str], list[str]] = {}
        for p in self.placed:
            for pick in p.picks:
                share = ""
                for name, amount in (pick.consumed or {}).items():
                    if name.endswith("/compute"):
                        share = f" {int(amount * 1000)}m"
                users.setdefault((p.node, pick.device.name), []).append(f"{p.pod}{share}")
        out: dict[str, list[dict[str, Any]]] = {}
        for node in self.state.nodes.values():
            rows = []
            for d, total, free in zip(node.inventory.devices, node.klass.totals, _taken(node)):
                rows.append({"device": d.name, "allocatedMilli": total - free, "totalMilli": total,
                             "pods": users.get((node.name, d.name), [])})
            out[node.name] = rows
        return out

    def as_json(self) -> dict[str, Any]:
        devices = self._devices()
        nodes = []
        for n in self.state.nodes.values():
            nodes.append({"name": n.name, "cpuMilli": [n.used_cpu, n.allocatable.cpu],
                          "memoryBytes": [n.used_memory, n.allocatable.memory], "pods": [n.used_pods, n.allocatable.pods],
                          "devices": devices[n.name]})
        return {"strategy": self.strategy, "summary": self.summary(), "nodes": nodes,
                "placements": [{"pod": p.pod, "node": p.node, "devices": [x.device.name for x in p.picks]} for p in self.placed],
                "unschedulable": [{"pod": u.pod, "reason": u.reason} for u in self.failed]}

    def summary(self) -> dict[str, Any]:
        total = self.state.total_gpu_milli()
        used = self.state.used_gpu_milli()
        devices = [(t, f) for n in self.state.nodes.values() for t, f in zip(n.klass.totals, _taken(n))]
        touched = sum(1 for t, f in devices if f < t)
        partial = sum(f for t, f in devices if 0 < f < t)
        return {"pods": len(self.placed) + len(self.failed), "placed": len(self.placed), "unschedulable": len(self.failed),
                "nodesUsed": sum(1 for n in self.state.nodes.values() if n.used_pods),
                "devicesTouched": touched, "gpuAllocatedPercent": round(100 * used / total, 2) if total else 0.0,
                "fragmentedMilli": partial}

    def render(self) -> str:
        lines = [f"strategy: {self.strategy}", ""]
        devices = self._devices()
        for n in self.state.nodes.values():
            lines.append(f"{n.name}  cpu {n.used_cpu / 1000:g}/{n.allocatable.cpu / 1000:g}  "
                         f"memory {n.used_memory / 2**30:.1f}/{n.allocatable.memory / 2**30:.1f}Gi  pods {n.used_pods}")
            for row in devices[n.name]:
                if row["totalMilli"]:
                    pct = 100 * row["allocatedMilli"] / row["totalMilli"]
                    bar = "#" * round(pct / 10) + "." * (10 - round(pct / 10))
                    lines.append(f"  {row['device']:<32} [{bar}] {pct:5.1f}%  {', '.join(row['pods'])}")
        lines.append("")
        for u in self.failed:
            lines.append(f"unschedulable {u.pod}: {u.reason}")
        s = self.summary()
        lines.append(f"summary: {s['placed']}/{s['pods']} pods placed on {s['nodesUsed']} node(s), "
                     f"{s['devicesTouched']} device(s) touched, GPU allocated {s['gpuAllocatedPercent']}%, "
                     f"{s['fragmentedMilli']}m free on partly used devices")
        return "\n".join(lines)


def _taken(node: Any) -> list[int]:
    """Free milli per device from what is allocated on it: the scorer's view also zeroes the
    devices whose shared counters are used up by others (dynamic MIG), which nobody allocated."""
    return [device_free(d, node.usage) for d in node.inventory.devices]


def _load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    from driver.cliinput import InputFileError, load_yaml_all

    try:
        docs = load_yaml_all(path)
    except InputFileError as exc:
        raise SimulateError(str(exc)) from None
    out: list[dict[str, Any]] = []
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        if isinstance(doc, dict) and doc.get("kind") == "List":
            out.extend(doc.get("items") or [])
        elif isinstance(doc, list):
            out.extend(doc)
        elif isinstance(doc, dict):
            out.append(doc)
        else:
            raise SimulateError(f"{path}: document {i}: expected a Kubernetes object or a list of them")
    return out


@dataclass(frozen=True)
class Cluster:
    """A cluster description as loaded: Node dicts, their ResourceSlices and DeviceClasses by name
    (read-only once loaded: a state is built from it with `new_state`, as often as needed)."""

    nodes: list[dict]
    slices: list[dict]
    classes: dict[str, dict]
    source: str = ""  # where it was loaded from, for messages


def load(path: str | None) -> Cluster:
    """The cluster of a description YAML or a trace node CSV (default: the local default cluster)."""
    return Cluster(*_cluster(path), source=path or "the default local cluster")


def _cluster(path: str | None) -> tuple[list[dict], list[dict], dict[str, dict]]:
    """Node dicts, slices and DeviceClasses for a cluster description or a trace node CSV."""
    if path and path.endswith(".csv"):
        try:
            nodes = tr.load_nodes(path)
        except tr.TraceError as exc:
            raise SimulateError(str(exc)) from None
        cls = tr.fractional_class()
        return ([tr.node_dict(n) for n in nodes], [s for s in map(tr.node_slice, nodes) if s],
                {cls["metadata"]["name"]: cls})
    from driver.devices.classes import device_classes
    from driver.devices.inventory import discover
    from driver.devices.nodeconfig import parse_node_config
    from driver.devices.slices import build_slices
    from driver.local.clusterfile import ClusterFileError, load_cluster
    from driver.local.nodes import node_object
    from driver.nvml.mock import MockNvml, load_node

    try:
        spec = load_cluster(path)
    except ClusterFileError as exc:
        raise SimulateError(str(exc)) from None
    node_dicts, slices = [], []
    for i, ns in enumerate(spec.nodes):
        node = node_object(ns, i)
        node_dicts.append(node)
        if ns.nvml is None:
            continue
        try:
            backend = MockNvml(load_node(ns.nvml), ns.name)
            inventory = discover(backend, parse_node_config(ns.node_config(spec.driver_name), f"node {ns.name} sharing"), ns.name)
        except ValueError as exc:
            raise SimulateError(f"node {ns.name}: {exc}") from None
        slices.extend(build_slices(inventory, ns.name, node["metadata"].get("uid"), spec.driver_name))
    classes = {c["metadata"]["name"]: c for c in device_classes(spec.driver_name)}
    classes.setdefault(tr.FRACTIONAL_CLASS, tr.fractional_class(spec.driver_name))
    return node_dicts, slices, classes


def _workload(path: str, seed: int | None, classes: dict[str, dict], gpus: int) -> list[tuple[dict, list[dict]]]:
    """(pod, its unallocated claims) in submission order."""
    if path.endswith(".csv"):
        try:
            pods = tr.load_pods(path)
        except tr.TraceError as exc:
            raise SimulateError(str(exc)) from None
        if seed is not None:
            if gpus <= 0:
                raise SimulateError("--seed: the benchmark arrival order needs a cluster with GPUs")
            pods = tr.arrival_order(pods, gpus, seed)
        return [tr.pod_objects(p, n) for p, n in zip(pods, tr.instance_names(pods))]
    objects = _load_yaml_docs(Path(path))
    claims: dict[tuple[str, str], dict] = {}
    templates: dict[tuple[str, str], dict] = {}
    pods: list[dict] = []
    for i, obj in enumerate(objects):
        kind = obj.get("kind") if isinstance(obj, dict) else None
        meta = (obj.get("metadata") or {}) if isinstance(obj, dict) else {}
        ns = meta.get("namespace", "default")
        if kind == "Pod":
            pods.append(obj)
        elif kind == "ResourceClaim":
            claims[(ns, meta.get("name", ""))] = obj
        elif kind == "ResourceClaimTemplate":
            templates[(ns, meta.get("name", ""))] = obj
        elif kind == "DeviceClass":
            classes[meta.get("name", "")] = obj
        elif kind in ("Deployment", "Job"):
            raise SimulateError(f"{path}: object {i} is a {kind}; list its pods (kind: Pod) instead")
        else:
            raise SimulateError(f"{path}: object {i}: kind {kind!r} is not used by simulate "
                                "(expected Pod, ResourceClaim, ResourceClaimTemplate or DeviceClass)")
    out = []
    allocated: set[tuple[str, str]] = set()
    for pod in pods:
        meta = pod.get("metadata") or {}
        ns, pname = meta.get("namespace", "default"), meta.get("name", "")
        mine = []
        for j, ref in enumerate(((pod.get("spec") or {}).get("resourceClaims")) or []):
            where = f"pod {ns}/{pname} spec.resourceClaims[{j}]"
            if ref.get("resourceClaimName"):
                key = (ns, ref["resourceClaimName"])
                if key not in claims:
                    raise SimulateError(f"{where}.resourceClaimName: no ResourceClaim {key[1]!r} in {path}")
                if key in allocated:
                    raise SimulateError(f"{where}: claim {key[1]!r} is shared with an earlier pod; "
                                        "simulate places each claim once")
                allocated.add(key)
                mine.append(claims[key])
            elif ref.get("resourceClaimTemplateName"):
                key = (ns, ref["resourceClaimTemplateName"])
                if key not in templates:
                    raise SimulateError(f"{where}.resourceClaimTemplateName: no ResourceClaimTemplate {key[1]!r} in {path}")
                spec = ((templates[key].get("spec") or {}).get("spec")) or {}
                name = f"{pname}-{ref.get('name', 'claim')}"
                mine.append({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
                             "metadata": {"name": name, "namespace": ns, "uid": f"uid-{ns}-{name}"}, "spec": spec})
            else:
                raise SimulateError(f"{where}: expected resourceClaimName or resourceClaimTemplateName")
        out.append((pod, mine))
    if not out:
        raise SimulateError(f"{path}: no pods")
    return out


def new_state(cluster: Cluster, config: PackingConfig, classes: dict[str, dict] | None = None) -> ClusterState:
    """A fresh state of `cluster` (no pods yet); `classes` replaces its DeviceClasses (a workload's
    own added)."""
    try:
        inventories = build_inventories(cluster.slices)
    except SliceError as exc:
        raise SimulateError(str(exc)) from None
    state = ClusterState(cluster.classes if classes is None else classes, config)
    for node in cluster.nodes:
        state.add_node(node, inventories.get(node["metadata"]["name"]))
    return state


def build(cluster_path: str | None, config: PackingConfig) -> tuple[ClusterState, dict[str, dict]]:
    """The cluster state of a description (no pods yet) and its DeviceClasses by name."""
    cluster = load(cluster_path)
    return new_state(cluster, config), cluster.classes


def place(state: ClusterState, work: list[tuple[dict, list[dict]]], strategy: str,
          after: Callable[[dict, Placement | Unschedulable], None] | None = None) -> Outcome:
    """schedule + commit every (pod, claims) in order; `after` sees each pod's result."""
    outcome = Outcome(state, strategy)
    for pod, claims in work:
        result = schedule(pod, claims, state)
        if isinstance(result, Placement):
            state.commit(result)
            outcome.placed.append(result)
        else:
            outcome.failed.append(result)
        if after is not None:
            after(pod, result)
    return outcome


def run(cluster_path: str | None, workload_path: str, config: PackingConfig, seed: int | None = None) -> Outcome:
    """Build the cluster, then schedule + commit every pod of the workload in order."""
    cluster = load(cluster_path)
    if workload_path.endswith(".csv"):
        state = new_state(cluster, config)
        work = _workload(workload_path, seed, dict(cluster.classes), state.total_gpu_milli() // 1000)
    else:  # the state is built once the workload's own DeviceClasses are known (it copies them)
        classes = dict(cluster.classes)
        work = _workload(workload_path, seed, classes, 0)
        state = new_state(cluster, config, classes)
    return place(state, work, config.strategy)
