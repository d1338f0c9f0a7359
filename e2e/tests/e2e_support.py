"""What the e2e tests do to a cluster, the way a user would: `kubectl apply` of the example
manifests, then the official Kubernetes client over HTTP to wait (with watches, not sleeps) until
the pods are placed and to inspect their claims' allocations and the published ResourceSlices.

A target is any reachable cluster with the driver installed: kind (e2e/run.sh) or the in-process
local cluster (driver.local) that CI uses.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml
from kubernetes import client, config, watch

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "deploy" / "examples"
CHART = REPO / "deploy" / "helm" / "gpu-dra"


@dataclass
class Target:
    """A cluster under test."""

    description: str
    kubeconfig: Path
    scheduler_name: str
    driver_name: str = "gpu.nvidia.com"
    # kubectl's client-side schema validation needs the server's OpenAPI document, which the
    # local cluster does not serve (it validates objects itself on create).
    client_validation: bool = True
    _api: client.ApiClient | None = field(default=None, repr=False)

    @property
    def api(self) -> client.ApiClient:
        if self._api is None:
            self._api = config.new_client_from_config(config_file=str(self.kubeconfig))
        return self._api

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        """Run kubectl against the target; a failure raises with kubectl's own message."""
        command = ["kubectl", "--kubeconfig", str(self.kubeconfig), *args]
        done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(command[3:])} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None


def load_manifests(path: Path) -> list[dict[str, Any]]:
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def pod_spec_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj["kind"] == "Pod":
        return obj["spec"]
    if obj["kind"] in ("Deployment", "StatefulSet", "ReplicaSet", "Job", "DaemonSet"):
        return obj["spec"]["template"]["spec"]
    return None


def for_scheduler(objects: list[dict[str, Any]], scheduler_name: str) -> list[dict[str, Any]]:
    """The manifests with every pod template naming `scheduler_name`.

    The examples under nvidia-compatible/ name no scheduler, so that kube-scheduler places them
    where NVIDIA's driver runs; our controller only places pods that name it.
    """
    out = yaml.safe_load(yaml.safe_dump(objects))
    for obj in out:
        spec = pod_spec_of(obj)
        if spec is not None:
            spec["schedulerName"] = scheduler_name
    return out


def rendered_device_classes(driver_name: str) -> list[dict[str, Any]]:
    """The chart's DeviceClasses, rendered by Helm's engine for `driver_name`."""
    import helm_python as helm

    rendered = helm.Chart.load(CHART).render(values={"driverName": driver_name}, name="gpu-dra",
                                             namespace="gpu-dra-system", is_install=True)
    docs = [d for path, text in rendered.items() if path.endswith(".yaml") for d in yaml.safe_load_all(text) if d]
    return [d for d in docs if d["kind"] == "DeviceClass"]


def new_namespace(target: Target, stem: str) -> str:
    name = f"e2e-{stem}-{uuid.uuid4().hex[:6]}"[:63]
    client.CoreV1Api(target.api).create_namespace({"metadata": {"name": name, "labels": {"gpu-dra.io/e2e": "true"}}})
    return name


def apply(target: Target, namespace: str | None, objects: list[dict[str, Any]]) -> None:
    """`kubectl apply` the objects (into `namespace`, or cluster-scoped when None)."""
    args = ["apply", f"--validate={'strict' if target.client_validation else 'false'}", "-f", "-"]
    if namespace:
        args += ["--namespace", namespace]
    target.kubectl(*args, stdin=yaml.safe_dump_all(objects))


def delete(target: Target, namespace: str, objects: list[dict[str, Any]]) -> None:
    target.kubectl("delete", "--namespace", namespace, "--ignore-not-found", "--wait=true", "-f", "-",
                   stdin=yaml.safe_dump_all(objects), timeout=180)


class _RawWatch(watch.Watch):
    """A watch that yields the API's JSON as plain dicts: the client's model deserialization does
    not know every resource.k8s.io/v1 kind by the name its watch looks up (ResourceClaim)."""

    def get_return_type(self, func: Callable[..., Any]) -> None:
        return None


def watch_until(target: Target, list_call: Callable[..., Any], args: tuple[Any, ...], done: Callable[[dict[str, dict[str, Any]]], bool],
                timeout: float, what: Callable[[dict[str, dict[str, Any]]], str]) -> dict[str, dict[str, Any]]:
    """List, then watch from that list's resourceVersion, until `done(objects by name)` holds.

    Each event updates the objects; the condition is re-checked on every event, so the wait ends
    as soon as the cluster reaches the state and never depends on how long a step "usually" takes.
    """
    deadline = time.monotonic() + timeout
    listed = json.loads(list_call(*args, _preload_content=False).data)
    objects = {o["metadata"]["name"]: o for o in listed["items"]}
    version = listed["metadata"]["resourceVersion"]
    while not done(objects):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out after {timeout:.0f}s: {what(objects)}")
        stream = _RawWatch().stream(list_call, *args, resource_version=version,
                                    timeout_seconds=max(1, int(remaining)), _request_timeout=remaining + 5)
        for event in stream:
            obj = event["object"]
            if event["type"] == "ERROR":
                raise AssertionError(f"watch failed: {obj}")
            version = obj["metadata"].get("resourceVersion", version)
            if event["type"] == "DELETED":
                objects.pop(obj["metadata"]["name"], None)
            elif event["type"] in ("ADDED", "MODIFIED"):
                objects[obj["metadata"]["name"]] = obj
            if done(objects):
                break
    return objects


def _placed(pod: dict[str, Any]) -> bool:
    return bool(pod.get("spec", {}).get("nodeName")) and pod.get("status", {}).get("phase") == "Running"


def _describe(pod: dict[str, Any]) -> str:
    status = pod.get("status", {})
    conditions = "; ".join(f"{c.get('type')}={c.get('status')} {c.get('reason', '')} {c.get('message', '')}".strip()
                           for c in status.get("conditions", []))
    return f"{pod['metadata']['name']}: node={pod['spec'].get('nodeName')} phase={status.get('phase')} [{conditions}]"


PREPARE_FAILED = "Failed to prepare dynamic resources"


def _prepare_failure(pod: dict[str, Any]) -> str | None:
    """The kubelet's prepare error shown in a pod's container status, if any."""
    for status in pod.get("status", {}).get("containerStatuses", []) or []:
        message = (status.get("state", {}).get("waiting") or {}).get("message") or ""
        if message.startswith(PREPARE_FAILED):
            return message
    return None


def wait_pods_placed(target: Target, namespace: str, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    """Wait until `count` pods of the namespace are bound to a node and Running.

    A prepare error that the kubelet keeps reporting (three retries) ends the wait at once with
    that error instead of running into the timeout.
    """
    seen_failures: dict[str, int] = {}

    def done(pods: dict[str, dict[str, Any]]) -> bool:
        for name, pod in pods.items():
            failure = _prepare_failure(pod)
            if failure:
                seen_failures[name] = seen_failures.get(name, 0) + 1
                if seen_failures[name] >= 3:
                    raise AssertionError(f"{namespace}/{name}: {failure}")
        return len(pods) >= count and all(_placed(p) for p in pods.values())

    def what(pods: dict[str, dict[str, Any]]) -> str:
        lines = "\n  ".join(_describe(p) for p in pods.values()) or "(no pods)"
        return f"{namespace}: {count} pods not placed:\n  {lines}"

    core = client.CoreV1Api(target.api)
    return list(watch_until(target, core.list_namespaced_pod, (namespace,), done, timeout, what).values())


def wait_slices(target: Target, driver_name: str, timeout: float = 120) -> dict[str, dict[str, Any]]:
    """Wait until the driver has published at least one device in ResourceSlices."""
    resource = client.ResourceV1Api(target.api)

    def done(slices: dict[str, dict[str, Any]]) -> bool:
        return any(s["spec"]["driver"] == driver_name and s["spec"].get("devices") for s in slices.values())

    return watch_until(target, resource.list_resource_slice, (), done, timeout,
                       lambda slices: f"no ResourceSlice with devices of driver {driver_name} (have {len(slices)} slices)")


def wait_claims_gone(target: Target, namespace: str, timeout: float = 60) -> None:
    """Wait until the namespace has no ResourceClaims left (generated claims go with their pods)."""
    resource = client.ResourceV1Api(target.api)
    watch_until(target, resource.list_namespaced_resource_claim, (namespace,), lambda claims: not claims, timeout,
                lambda claims: f"{namespace}: claims left after their pods were deleted: {sorted(claims)}")


def claims_of(target: Target, pod: dict[str, Any]) -> list[dict[str, Any]]:
    """The ResourceClaims a pod uses (named ones and the ones generated from its templates)."""
    resource = client.ResourceV1Api(target.api)
    namespace = pod["metadata"]["namespace"]
    generated = {s["name"]: s.get("resourceClaimName") for s in pod.get("status", {}).get("resourceClaimStatuses", [])}
    claims = []
    for ref in pod["spec"].get("resourceClaims", []):
        name = ref.get("resourceClaimName") or generated.get(ref["name"])
        assert name, f"pod {pod['metadata']['name']}: no claim recorded for {ref['name']}"
        raw = resource.read_namespaced_resource_claim(name, namespace, _preload_content=False)
        claims.append(yaml.safe_load(raw.data))
    return claims


def published_devices(target: Target, driver_name: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(pool, device name) -> device, over every ResourceSlice of the driver."""
    raw = client.ResourceV1Api(target.api).list_resource_slice(field_selector=f"spec.driver={driver_name}",
                                                               _preload_content=False)
    devices = {}
    for item in yaml.safe_load(raw.data)["items"]:
        for device in item["spec"].get("devices", []):
            devices[(item["spec"]["pool"]["name"], device["name"])] = device
    return devices


def attribute(device: dict[str, Any], name: str, driver_name: str) -> Any:
    """An attribute's value, whether the slice wrote it bare or qualified."""
    attrs = device.get("attributes", {})
    raw = attrs.get(name) or attrs.get(f"{driver_name}/{name}")
    if raw is None:
        return None
    (value,) = raw.values()
    return value


def results(claim: dict[str, Any]) -> list[dict[str, Any]]:
    allocation = claim.get("status", {}).get("allocation")
    assert allocation, f"claim {claim['metadata']['name']} is not allocated"
    return allocation["devices"]["results"]


def iter_examples() -> Iterator[Path]:
    yield from sorted(EXAMPLES.rglob("*.yaml"))
