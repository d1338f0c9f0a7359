"""Test helpers: hand-written Nodes, ResourceSlices, DeviceClasses, claims and pods, written to the
in-memory API server through the official client, and a controller around them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from driver.scheduler.packing.scoring import PackingConfig
from driver.controller.kube import Kube, new_client
from driver.controller.scheduler import Controller, ControllerConfig

D = "gpu.nvidia.com"
SCHEDULER = "gpu-dra-scheduler"


def device_class(name: str, type_: str) -> dict:
    expr = f"device.driver == '{D}' && device.attributes['{D}'].type == '{type_}'"
    return {"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass", "metadata": {"name": name},
            "spec": {"selectors": [{"cel": {"expression": expr}}]}}


CLASSES = [
    device_class("gpu.nvidia.com", "gpu"),
    device_class("mig.nvidia.com", "mig"),
    device_class("replica.gpu.nvidia.com", "replica"),
    device_class("fractional.gpu.nvidia.com", "fractional"),
]


def node(name: str, cpu: str = "64", memory: str = "512Gi", pods: str = "110", labels: dict | None = None,
         taints: list | None = None) -> dict:
    alloc = {"cpu": cpu, "memory": memory, "pods": pods}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": taints or []},
            "status": {"capacity": alloc, "allocatable": alloc}}


def _attrs(**kw: Any) -> dict:
    out = {}
    for k, v in kw.items():
        if isinstance(v, bool):
            out[k] = {"bool": v}
        elif isinstance(v, int):
            out[k] = {"int": v}
        elif k.endswith("Version"):
            out[k] = {"version": v}
        else:
            out[k] = {"string": v}
    return out


def gpu_devices(node_name: str, count: int = 4, product: str = "NVIDIA A100-SXM4-80GB", memory: str = "80Gi",
                driver_version: str = "560.35.3") -> list[dict]:
    return [{"name": f"gpu-{i}",
             "attributes": _attrs(type="gpu", uuid=f"GPU-{node_name}-{i}", productName=product,
                                  driverVersion=driver_version, index=i),
             "capacity": {"memory": {"value": memory}}} for i in range(count)]


MIG = {"1g.10gb": (19, 1, "10Gi"), "2g.20gb": (14, 2, "20Gi"), "3g.40gb": (9, 4, "40Gi")}


def mig_devices(node_name: str, gpus: int = 1, layout: tuple = (("1g.10gb", 0), ("1g.10gb", 1), ("2g.20gb", 2), ("3g.40gb", 4))) -> list[dict]:
    out = []
    for g in range(gpus):
        for profile, start in layout:
            gi, slices, mem = MIG[profile]
            out.append({"name": f"gpu-{g}-mig-{profile.replace('.', '')}-{gi}-{start}",
                        "attributes": _attrs(type="mig", profile=profile, parentUUID=f"GPU-{node_name}-{g}",
                                             uuid=f"MIG-{node_name}-{g}-{start}", productName="NVIDIA A100-SXM4-80GB"),
                        "capacity": {"memory": {"value": mem},
                                     **{f"memorySlice{start + i}": {"value": "1"} for i in range(slices)}}})
    return out


def replica_devices(node_name: str, gpus: int = 1, replicas: int = 4) -> list[dict]:
    return [{"name": f"gpu-{g}-ts-{r}",
             "attributes": _attrs(type="replica", parentUUID=f"GPU-{node_name}-{g}", replicaIndex=r, replicas=replicas,
                                  productName="NVIDIA H100 80GB HBM3")}
            for g in range(gpus) for r in range(replicas)]


def fractional_devices(node_name: str, gpus: int = 2) -> list[dict]:
    return [{"name": f"gpu-{g}", "allowMultipleAllocations": True,
             "attributes": _attrs(type="fractional", uuid=f"GPU-{node_name}-{g}", productName="NVIDIA A100-SXM4-80GB"),
             "capacity": {"compute": {"value": "1", "requestPolicy": {"default": "1", "validRange": {"min": "10m", "step": "10m"}}},
                          "memory": {"value": "80Gi", "requestPolicy": {"default": "0", "validRange": {"min": "0"}}}}}
            for g in range(gpus)]


def resource_slice(node_name: str, devices: list[dict], generation: int = 1) -> dict:
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
            "metadata": {"name": f"{node_name}-gpu.nvidia.com"},
            "spec": {"driver": D, "nodeName": node_name,
                     "pool": {"name": node_name, "generation": generation, "resourceSliceCount": 1},
                     "devices": devices}}


def claim_spec(cls: str = "gpu.nvidia.com", count: int | None = None, selectors: list[str] | None = None,
               compute: str | None = None, name: str = "gpu") -> dict:
    exactly: dict[str, Any] = {"deviceClassName": cls}
    if count is not None:
        exactly["count"] = count
    if selectors:
        exactly["selectors"] = [{"cel": {"expression": e}} for e in selectors]
    if compute:
        exactly["capacity"] = {"requests": {"compute": compute}}
    return {"devices": {"requests": [{"name": name, "exactly": exactly}]}}


def claim(name: str, spec: dict, namespace: str = "default") -> dict:
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def pod(name: str, claims: dict[str, str] | None = None, namespace: str = "default", cpu: str = "1",
        memory: str = "1Gi", containers: int = 1, annotations: dict | None = None, scheduler: str = SCHEDULER,
        **spec: Any) -> dict:
    """`claims` maps the pod's claim name to a ResourceClaim name."""
    claims = claims or {}
    ctrs = [{"name": f"c{i}", "image": "busybox",
             "resources": {"requests": {"cpu": cpu, "memory": memory}, "claims": [{"name": n} for n in claims]}}
            for i in range(containers)]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
            "spec": {"schedulerName": scheduler, "containers": ctrs,
                     "resourceClaims": [{"name": n, "resourceClaimName": c} for n, c in claims.items()], **spec}}


class Api:
    """Raw-dict writes through the official client."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def create(self, obj: dict) -> dict:
        kind = obj["kind"]
        ns = obj["metadata"].get("namespace", "default")
        core, res = self.kube.core, self.kube.resource
        fn = {
            "Node": lambda: self.kube.call(core.create_node, obj),
            "Pod": lambda: self.kube.call(core.create_namespaced_pod, ns, obj),
            "DeviceClass": lambda: self.kube.call(res.create_device_class, obj),
            "ResourceSlice": lambda: self.kube.call(res.create_resource_slice, obj),
            "ResourceClaim": lambda: self.kube.call(res.create_namespaced_resource_claim, ns, obj),
            "ResourceClaimTemplate": lambda: self.kube.call(res.create_namespaced_resource_claim_template, ns, obj),
        }[kind]
        return fn()

    def pod(self, name: str, namespace: str = "default") -> dict:
        return self.kube.call(self.kube.core.read_namespaced_pod, name, namespace)

    def claim(self, name: str, namespace: str = "default") -> dict:
        return self.kube.call(self.kube.resource.read_namespaced_resource_claim, name, namespace)

    def claims(self) -> list[dict]:
        return self.kube.call(self.kube.resource.list_resource_claim_for_all_namespaces).get("items") or []

    def pods(self) -> list[dict]:
        return self.kube.call(self.kube.core.list_pod_for_all_namespaces).get("items") or []

    def events(self, namespace: str = "default") -> list[dict]:
        return self.kube.call(self.kube.core.list_namespaced_event, namespace).get("items") or []

    def delete_pod(self, name: str, namespace: str = "default") -> None:
        self.kube.call(self.kube.core.delete_namespaced_pod, name, namespace, grace_period_seconds=0)


def kube_for(server: Any) -> Kube:
    cfg_path = server.kubeconfig_path
    return Kube(new_client(str(cfg_path)))


@contextmanager
def controller(server: Any, strategy: str = "binpack", **kw: Any) -> Iterator[Controller]:
    cfg = ControllerConfig(packing=PackingConfig(strategy=strategy), backoff_initial=0.05, backoff_max=0.5,
                           max_park=2.0, **kw)
    c = Controller(kube_for(server), cfg)
    c.start()
    try:
        yield c
    finally:
        c.stop()
