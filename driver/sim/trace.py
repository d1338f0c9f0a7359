"""The Alibaba GPU-sharing trace (openb, cluster-trace-gpu-v2023): loading, arrival order, conversion.

The benchmark is only comparable with the FGD paper's numbers when every detail of the protocol in
BENCHMARKS.md §1 is followed, so the arrival order here is that recipe line by line (including the
per-GPU-milli quirk of the top-up rule). The conversion turns trace rows into the same Kubernetes
wire dicts the controller sees — ResourceSlices with fractional GPUs (consumable capacity `compute`),
pods with container requests and ResourceClaims with capacity requests and CEL selectors — so the
replay exercises the real allocation path rather than a model of it.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from pathlib import Path

DRIVER = "gpu.nvidia.com"
FRACTIONAL_CLASS = "fractional.gpu.nvidia.com"
TRACE_DIR = Path(__file__).parent / "traces"
DEFAULT_NODES = TRACE_DIR / "openb_node_list_gpu_node.csv"
DEFAULT_PODS = TRACE_DIR / "openb_pod_list_default.csv"
TRACES = {
    "default": TRACE_DIR / "openb_pod_list_default.csv",
    "gpushare40": TRACE_DIR / "openb_pod_list_gpushare40.csv",
    "multigpu20": TRACE_DIR / "openb_pod_list_multigpu20.csv",
    "gpuspec20": TRACE_DIR / "openb_pod_list_gpuspec20.csv",
}
MILLI_PER_GPU = 1000
ARRIVAL_FACTOR = 1.3  # submit pods until 130 % of the cluster's GPU capacity has arrived


class TraceError(ValueError):
    """A trace file that does not have the documented columns or values."""


@dataclass(frozen=True)
class TraceNode:
    """One row of the node list: a machine with `gpus` GPUs of one model."""

    name: str
    cpu_milli: int
    memory_mib: int
    gpus: int
    model: str


@dataclass(frozen=True)
class TracePod:
    """One row of a pod list. `gpu_milli` is per GPU; `gpu_spec` lists the allowed models (empty: any)."""

    name: str
    cpu_milli: int
    memory_mib: int
    num_gpu: int
    gpu_milli: int
    gpu_spec: tuple[str, ...]

    @property
    def gpu_demand(self) -> int:
        """Total GPU milli this pod asks for (what the metric counts as arrived)."""
        return self.num_gpu * self.gpu_milli


def _int(row: dict[str, str], column: str, path: Path, line: int) -> int:
    raw = row.get(column)
    if raw is None or raw.strip() == "":
        raise TraceError(f"{path}:{line}: column {column!r} is empty; expected a non-negative integer")
    try:
        value = int(float(raw)) if "." in raw else int(raw)
    except ValueError:
        raise TraceError(f"{path}:{line}: column {column!r} is {raw!r}; expected a non-negative integer") from None
    if value < 0:
        raise TraceError(f"{path}:{line}: column {column!r} is {value}; expected a non-negative integer")
    return value


def _rows(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    from driver.cliinput import InputFileError, read_text

    path = Path(path)
    try:
        text = read_text(path)
    except InputFileError as exc:
        raise TraceError(f"{path}: cannot read trace file: {exc.detail}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise TraceError(f"{path}: missing column(s) {', '.join(missing)}; expected at least {', '.join(required)}")
        return [(i + 2, row) for i, row in enumerate(reader)]
    except csv.Error as exc:
        raise TraceError(f"{path}:{reader.line_num + 1}: not a CSV row: {exc}") from None


def load_nodes(path: Path | str = DEFAULT_NODES) -> list[TraceNode]:
    """Read a node list (`sn,cpu_milli,memory_mib,gpu,model`)."""
    path = Path(path)
    nodes = []
    seen: set[str] = set()
    for line, row in _rows(path, ("sn", "cpu_milli", "memory_mib", "gpu", "model")):
        name = row["sn"].strip()
        if not name:
            raise TraceError(f"{path}:{line}: column 'sn' is empty; expected a node name")
        if name in seen:
            raise TraceError(f"{path}:{line}: node {name!r} appears twice")
        seen.add(name)
        gpus = _int(row, "gpu", path, line)
        model = row["model"].strip()
        if gpus and not model:
            raise TraceError(f"{path}:{line}: node {name!r} has {gpus} GPUs but an empty 'model'")
        nodes.append(TraceNode(name, _int(row, "cpu_milli", path, line), _int(row, "memory_mib", path, line), gpus, model))
    if not nodes:
        raise TraceError(f"{path}: no nodes")
    return nodes


def load_pods(path: Path | str = DEFAULT_PODS) -> list[TracePod]:
    """Read a pod list (`name,cpu_milli,memory_mib,num_gpu,gpu_milli[,gpu_spec,...]`)."""
    path = Path(path)
    pods = []
    for line, row in _rows(path, ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")):
        name = row["name"].strip()
        if not name:
            raise TraceError(f"{path}:{line}: column 'name' is empty; expected a pod name")
        num_gpu = _int(row, "num_gpu", path, line)
        gpu_milli = _int(row, "gpu_milli", path, line)
        if gpu_milli > MILLI_PER_GPU:
            raise TraceError(f"{path}:{line}: gpu_milli is {gpu_milli}; expected at most {MILLI_PER_GPU} (per GPU)")
        if num_gpu > 1 and gpu_milli != MILLI_PER_GPU:
            raise TraceError(
                f"{path}:{line}: num_gpu is {num_gpu} with gpu_milli {gpu_milli}; multi-GPU pods must use whole GPUs (1000)"
            )
        spec = tuple(s.strip() for s in (row.get("gpu_spec") or "").split("|") if s.strip())
        pods.append(TracePod(name, _int(row, "cpu_milli", path, line), _int(row, "memory_mib", path, line), num_gpu, gpu_milli, spec))
    if not pods:
        raise TraceError(f"{path}: no pods")
    return pods


def arrival_order(pods: list[TracePod], total_gpus: int, seed: int) -> list[TracePod]:
    """The pods in submission order for `seed`, exactly as BENCHMARKS.md §1 prescribes.

    Shuffle the name-sorted pods, then top up with random draws (stopping at the first draw whose
    *per-GPU* milli would pass the target — the original protocol's quirk) or drop random pods until
    the arrived demand is 130 % of the cluster's GPU capacity. Repeated draws of the same row are
    the same object; `instance_names` gives them distinct pod names.
    """
    rng = random.Random(seed)
    ordered = sorted(pods, key=lambda p: p.name)
    order = list(ordered)
    rng.shuffle(order)
    target = ARRIVAL_FACTOR * total_gpus * MILLI_PER_GPU
    total = sum(p.num_gpu * p.gpu_milli for p in order)
    if total < target:
        while True:
            p = ordered[rng.randrange(len(ordered))]
            if total + p.gpu_milli > target:
                break
            order.append(p)
            total += p.num_gpu * p.gpu_milli
    elif total > target:
        while total > target:
            p = order.pop(rng.randrange(len(order)))
            total -= p.num_gpu * p.gpu_milli
    return order


def instance_names(order: list[TracePod]) -> list[str]:
    """Unique pod names for an arrival order: a row drawn again gets `-r<k>` (k = 1, 2, ...)."""
    seen: dict[str, int] = {}
    names = []
    for p in order:
        k = seen.get(p.name, 0)
        seen[p.name] = k + 1
        names.append(p.name if k == 0 else f"{p.name}-r{k}")
    return names


# ---- conversion to Kubernetes wire dicts -------------------------------------------------------


def _milli(value: int) -> str:
    """A milli amount as a canonical quantity string ("1" for 1000, "460m" otherwise)."""
    return str(value // 1000) if value % 1000 == 0 else f"{value}m"


def fractional_class(driver: str = DRIVER) -> dict:
    """The DeviceClass that selects fractional GPUs (ARCHITECTURE.md device conventions)."""
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "DeviceClass",
        "metadata": {"name": FRACTIONAL_CLASS},
        "spec": {
            "selectors": [
                {"cel": {"expression": f"device.driver == '{driver}' && device.attributes['{driver}'].type == 'fractional'"}}
            ]
        },
    }


def node_dict(node: TraceNode) -> dict:
    """A Node object with the trace's CPU and memory as allocatable (pods: generous, as in the paper)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node.name, "labels": {"kubernetes.io/hostname": node.name, "gpu.nvidia.com/model": node.model}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": _milli(node.cpu_milli), "memory": f"{node.memory_mib}Mi", "pods": "1000"},
        },
    }


def node_slice(node: TraceNode, driver: str = DRIVER) -> dict | None:
    """The node's ResourceSlice: one fractional device per GPU with consumable `compute` = 1 GPU.

    None for a node without GPUs (it still takes CPU-only pods).
    """
    if node.gpus == 0:
        return None
    devices = []
    for i in range(node.gpus):
        devices.append(
            {
                "name": f"gpu-{i}",
                "attributes": {
                    "type": {"string": "fractional"},
                    "productName": {"string": node.model},
                    "uuid": {"string": f"GPU-{node.name}-{i}"},
                    "index": {"int": i},
                },
                "capacity": {"compute": {"value": "1", "requestPolicy": {"default": "1", "validRange": {"min": "1m", "max": "1", "step": "1m"}}}},
                "allowMultipleAllocations": True,
            }
        )
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": f"{node.name}-{driver}"},
        "spec": {
            "driver": driver,
            "pool": {"name": node.name, "generation": 1, "resourceSliceCount": 1},
            "nodeName": node.name,
            "devices": devices,
        },
    }


def model_selector(models: tuple[str, ...], driver: str = DRIVER) -> str:
    """The CEL expression that admits only the listed GPU products."""
    listed = ", ".join(f"'{m}'" for m in models)
    return f"device.attributes['{driver}'].productName in [{listed}]"


def pod_objects(pod: TracePod, name: str, namespace: str = "default", driver: str = DRIVER) -> tuple[dict, list[dict]]:
    """A pod dict and its ResourceClaim dicts (none for a CPU-only pod).

    A fraction becomes a `compute` capacity request on one device; whole GPUs become `count` devices
    each requesting all of `compute`; `gpu_spec` becomes a CEL selector on `productName`.
    """
    container: dict = {
        "name": "main",
        "image": "registry.k8s.io/pause:3.10",
        "resources": {"requests": {"cpu": _milli(pod.cpu_milli), "memory": f"{pod.memory_mib}Mi"}},
    }
    spec: dict = {"schedulerName": "gpu-dra-scheduler", "containers": [container]}
    claims: list[dict] = []
    if pod.num_gpu > 0:
        claim_name = f"{name}-gpu"
        exactly: dict = {
            "deviceClassName": FRACTIONAL_CLASS,
            "allocationMode": "ExactCount",
            "count": pod.num_gpu,
            "capacity": {"requests": {"compute": _milli(pod.gpu_milli)}},
        }
        if pod.gpu_spec:
            exactly["selectors"] = [{"cel": {"expression": model_selector(pod.gpu_spec, driver)}}]
        claims.append(
            {
                "apiVersion": "resource.k8s.io/v1",
                "kind": "ResourceClaim",
                "metadata": {"name": claim_name, "namespace": namespace, "uid": f"uid-{claim_name}"},
                "spec": {"devices": {"requests": [{"name": "gpu", "exactly": exactly}]}},
            }
        )
        spec["resourceClaims"] = [{"name": "gpu", "resourceClaimName": claim_name}]
        container["resources"]["claims"] = [{"name": "gpu"}]
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
        "spec": spec,
    }
    return obj, claims
