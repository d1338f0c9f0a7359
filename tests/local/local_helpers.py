"""Helpers shared by the local cluster tests (object bodies, kubectl, a small cluster); waits come from
tests/wait_helpers.py."""

from __future__ import annotations

from typing import Any


def pod_body(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}], **spec}}


def slice_body(name: str, devices: list[dict[str, Any]], node: str = "node-a") -> dict[str, Any]:
    return {"metadata": {"name": name},
            "spec": {"driver": "gpu.nvidia.com", "nodeName": node, "pool": {"name": node, "generation": 1,
                                                                             "resourceSliceCount": 1},
                     "devices": devices}}


def claim_body(name: str, requests: int = 1) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "spec": {"devices": {"requests": [{"name": f"r{i}", "exactly": {"deviceClassName": "gpu.nvidia.com"}}
                                              for i in range(requests)]}}}


def allocation(node: str = "node-a", device: str = "gpu-0") -> dict[str, Any]:
    return {"devices": {"results": [{"request": "r0", "driver": "gpu.nvidia.com", "pool": node, "device": device}]},
            "nodeSelector": {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                                       "values": [node]}]}]}}


def status_of(exc: Any) -> dict[str, Any]:
    """The Status body of an ApiException."""
    import json

    return json.loads(exc.body)


def http(url: str, method: str, path: str, body: Any = None,
         content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
    """A raw JSON request (for bodies the typed client refuses to send, e.g. `cpu: 1` as a number)."""
    import json
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def kubectl(kubeconfig: Any, *args: str, stdin: str | None = None, check: bool = True) -> Any:
    """Run the kubectl binary against a kubeconfig; AssertionError with stderr when it fails and `check`."""
    import subprocess

    result = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "--request-timeout=20s", *args],
                            input=stdin, capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
    return result


ONE_NODE = {"nodes": [{"name": "node-a", "cpu": "32", "memory": "64Gi"}]}


def one_node_cluster(workdir: Any) -> Any:
    """A one-node LocalCluster (a context manager) without DRA plugin, claim controller or device classes:
    what the imperative kubectl tests need (conftest's `one_node` fixture)."""
    from driver.local.cluster import LocalCluster
    from driver.local.clusterfile import parse_cluster

    return LocalCluster(parse_cluster(ONE_NODE), workdir=workdir, plugin_factory=None, claim_controller=False,
                        device_classes=False)


class KubectlOn:
    """kubectl against one LocalCluster (`kubectl_on(*args)`), and raw JSON reads through its official client."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.api = cluster.api_client()

    def __call__(self, *args: str, check: bool = True) -> Any:
        return kubectl(self.cluster.kubeconfig, *args, check=check)

    def raw(self, read: Any, *args: Any) -> dict[str, Any]:
        """`read(*args)` (a client method) as the server's JSON, not the client's model objects."""
        import json

        result: dict[str, Any] = json.loads(read(*args, _preload_content=False).data)
        return result
