"""Emulated nodes: the Node object, its heartbeat Lease, and a kubelet for the pods bound to it.

The kubelet part does what a real kubelet does with DRA (FACTS §1): for a pod bound to its node
it waits until every claim of the pod (those of spec.resourceClaims and the one the scheduler
made for its extended resources, status.extendedResourceClaimStatus) is allocated and reserved
for the pod, calls NodePrepareResources on the node's kubelet plugin (real gRPC over its unix
socket, through a `Preparer`), then reports the pod Running; on failure it records a Warning
Event and keeps the containers waiting, retrying with backoff. When the pod is deleted it calls
NodeUnprepareResources and finishes the deletion (grace period 0, UID precondition), as the
kubelet's status manager does. No containers run: a pod stays Running until deleted, unless it
carries the annotation `local.gpu-dra.io/run-seconds: "<n>"`, after which its containers "exit 0"
and the pod Succeeds (so demos and tests can have jobs that finish and free their GPUs).
The node's Lease in kube-node-lease is renewed every `lease_renew_s`, like a kubelet heartbeat.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from driver import log
from driver.local.clusterfile import NodeSpec
from driver.local.events import post_event
from driver.local.informer import Informer
from driver.local.objectmeta import now_rfc3339
from driver.local.workqueue import WorkQueue, Workers

logger = log.get(__name__)

KUBELET_VERSION = "v1.34.0-gpu-dra-local"
PREPARE_TIMEOUT_S = 45.0  # kubelet's per-call timeout for DRA plugins
RUN_SECONDS_ANNOTATION = "local.gpu-dra.io/run-seconds"


@dataclass(frozen=True)
class ClaimRef:
    namespace: str
    name: str
    uid: str


class Preparer(Protocol):
    """How the kubelet reaches the node's DRA plugin. Returns {claim uid: error ("" = ok)}."""

    def prepare(self, claims: list[ClaimRef]) -> dict[str, str]: ...

    def unprepare(self, claims: list[ClaimRef]) -> dict[str, str]: ...


class NoPlugin:
    """For nodes without a plugin (yet): every claim is reported prepared."""

    def prepare(self, claims: list[ClaimRef]) -> dict[str, str]:
        return {c.uid: "" for c in claims}

    def unprepare(self, claims: list[ClaimRef]) -> dict[str, str]:
        return {c.uid: "" for c in claims}


class GrpcPreparer:
    """The v1 DRAPlugin service on a unix socket, called like kubelet does."""

    def __init__(self, socket_path: str, timeout_s: float = PREPARE_TIMEOUT_S) -> None:
        from driver.plugin.proto import dra_v1_pb2, dra_v1_pb2_grpc

        self.socket_path, self.timeout_s = socket_path, timeout_s
        self._pb = dra_v1_pb2
        self._channel = grpc.insecure_channel(f"unix://{socket_path}")
        self._stub = dra_v1_pb2_grpc.DRAPluginStub(self._channel)

    def _claims(self, claims: list[ClaimRef]) -> list[Any]:
        return [self._pb.Claim(namespace=c.namespace, name=c.name, uid=c.uid) for c in claims]

    def prepare(self, claims: list[ClaimRef]) -> dict[str, str]:
        try:
            resp = self._stub.NodePrepareResources(self._pb.NodePrepareResourcesRequest(claims=self._claims(claims)),
                                                   timeout=self.timeout_s)
        except grpc.RpcError as exc:
            return {c.uid: f"NodePrepareResources failed: {exc.code().name}: {exc.details()}" for c in claims}
        out = {}
        for c in claims:
            result = resp.claims.get(c.uid)
            out[c.uid] = "plugin returned no result for the claim" if result is None else result.error
        return out

    def unprepare(self, claims: list[ClaimRef]) -> dict[str, str]:
        try:
            resp = self._stub.NodeUnprepareResources(
                self._pb.NodeUnprepareResourcesRequest(claims=self._claims(claims)), timeout=self.timeout_s)
        except grpc.RpcError as exc:
            return {c.uid: f"NodeUnprepareResources failed: {exc.code().name}: {exc.details()}" for c in claims}
        return {c.uid: (resp.claims[c.uid].error if c.uid in resp.claims else "") for c in claims}

    def close(self) -> None:
        self._channel.close()


def node_object(spec: NodeSpec, index: int) -> dict[str, Any]:
    """The Node a kubelet would register for `spec`."""
    labels = {"kubernetes.io/hostname": spec.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              **spec.labels}
    capacity = spec.capacity()
    now = now_rfc3339()
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": spec.name, "labels": labels},
        "spec": {},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
                 "lastHeartbeatTime": now, "lastTransitionTime": now},
            ],
            "addresses": [{"type": "InternalIP", "address": f"10.0.{index // 250}.{index % 250 + 2}"},
                          {"type": "Hostname", "address": spec.name}],
            "nodeInfo": {"kubeletVersion": KUBELET_VERSION, "operatingSystem": "linux", "architecture": "amd64",
                         "containerRuntimeVersion": "emulated://1.0", "kernelVersion": "", "osImage": "gpu-dra local",
                         "machineID": "", "systemUUID": "", "bootID": "", "kubeProxyVersion": ""},
        },
    }


def _raw(resp: Any) -> dict[str, Any]:
    return json.loads(resp.data)


def _micro_now() -> str:
    """Lease times are MicroTime: RFC 3339 with microseconds."""
    return now_rfc3339().replace("Z", ".000000Z")


class Kubelet:
    """One emulated node: registers the Node and Lease, runs the pods bound to it."""

    def __init__(self, spec: NodeSpec, index: int, api_client: client.ApiClient, preparer: Preparer | None = None,
                 retry_s: float = 0.5, max_retry_s: float = 10.0, lease_renew_s: float = 10.0) -> None:
        self.spec, self.index = spec, index
        self.core = client.CoreV1Api(api_client)
        self.coordination = client.CoordinationV1Api(api_client)
        self.resource = client.ResourceV1Api(api_client)
        self.preparer: Preparer = preparer or NoPlugin()
        self.retry_s, self.max_retry_s, self.lease_renew_s = retry_s, max_retry_s, lease_renew_s
        self._stopped = threading.Event()
        self._heartbeat = threading.Thread(target=self._renew_lease, name=f"lease-{spec.name}", daemon=True)
        self.queue = WorkQueue()
        self.prepared: dict[str, list[ClaimRef]] = {}  # pod uid -> claims prepared for it
        self._failures: dict[str, int] = {}
        self._informer = Informer(f"kubelet-{spec.name}", self.core.list_pod_for_all_namespaces, self._on_pod,
                                  field_selector=f"spec.nodeName={spec.name}")
        self._workers = Workers(f"kubelet-{spec.name}", self.queue, self._sync, retry_s=retry_s)

    def register(self) -> None:
        """Create (or refresh) the Node and its Lease."""
        body = node_object(self.spec, self.index)
        try:
            node = _raw(self.core.create_node(body, _preload_content=False))
        except ApiException as exc:
            if exc.status != 409:
                raise
            node = _raw(self.core.read_node(self.spec.name, _preload_content=False))
            node["status"] = body["status"]
            node = _raw(self.core.replace_node_status(self.spec.name, node, _preload_content=False))
        lease = {"metadata": {"name": self.spec.name, "namespace": "kube-node-lease",
                              "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": self.spec.name,
                                                   "uid": node["metadata"]["uid"]}]},
                 "spec": {"holderIdentity": self.spec.name, "leaseDurationSeconds": 40, "renewTime": _micro_now()}}
        try:
            self.coordination.create_namespaced_lease("kube-node-lease", lease, _preload_content=False)
        except ApiException as exc:
            if exc.status != 409:
                raise

    def _renew_lease(self) -> None:
        while not self._stopped.wait(self.lease_renew_s):
            try:
                self.coordination.patch_namespaced_lease(self.spec.name, "kube-node-lease",
                                                         {"spec": {"renewTime": _micro_now()}}, _preload_content=False)
            except Exception as exc:  # the API server may be going away; try again next beat
                logger.debug("lease_renew_failed", node=self.spec.name, error=str(exc))

    def start(self) -> None:
        self.register()
        self._informer.start()
        self._workers.start()
        self._heartbeat.start()
        logger.info("kubelet_started", node=self.spec.name)

    def stop(self) -> None:
        self._stopped.set()
        self._informer.stop()
        self._workers.stop()
        close = getattr(self.preparer, "close", None)
        if close is not None:
            close()

    def _on_pod(self, etype: str, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        key = (meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", ""))
        if etype == "DELETED":
            self.queue.add(("gone",) + key)
        else:
            self.queue.add(("pod",) + key)

    def _sync(self, item: Any) -> None:
        kind, ns, name, uid = item
        if kind == "gone":
            self._unprepare(uid, ns, name)
        elif kind == "finish":
            self._finish(ns, name, uid)
        else:
            self.sync_pod(ns, name, uid)

    # --- pod lifecycle -------------------------------------------------------------------

    def sync_pod(self, ns: str, name: str, uid: str) -> None:
        try:
            pod = _raw(self.core.read_namespaced_pod(name, ns, _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                self._unprepare(uid, ns, name)
                return
            raise
        if pod["metadata"]["uid"] != uid or (pod.get("spec") or {}).get("nodeName") != self.spec.name:
            return
        phase = (pod.get("status") or {}).get("phase")
        if pod["metadata"].get("deletionTimestamp"):
            self._unprepare(uid, ns, name)
            self.core.delete_namespaced_pod(name, ns, body={"gracePeriodSeconds": 0, "preconditions": {"uid": uid}},
                                            _preload_content=False)
            logger.info("pod_terminated", node=self.spec.name, namespace=ns, pod=name)
            return
        if phase in ("Succeeded", "Failed"):
            self._unprepare(uid, ns, name)
            return
        if phase == "Running" or uid in self.prepared:
            return
        claims, waiting = self._claims_of(pod)
        if waiting:
            self._container_waiting(pod, "ContainerCreating", waiting, event=False)
            self.queue.add_after(("pod", ns, name, uid), self.retry_s)
            return
        errors = {u: e for u, e in self.preparer.prepare(claims).items() if e} if claims else {}
        if errors:
            message = "Failed to prepare dynamic resources: " + "; ".join(
                f"{c.namespace}/{c.name}: {errors[c.uid]}" for c in claims if c.uid in errors)
            self._container_waiting(pod, "ContainerCreating", message, event=True)
            failures = self._failures[uid] = self._failures.get(uid, 0) + 1
            self.queue.add_after(("pod", ns, name, uid), min(self.retry_s * 2 ** (failures - 1), self.max_retry_s))
            return
        self.prepared[uid] = claims
        self._failures.pop(uid, None)
        self._running(pod)

    def _claims_of(self, pod: dict[str, Any]) -> tuple[list[ClaimRef], str]:
        """The pod's claims, or why the kubelet cannot start it yet.

        Besides the claims of spec.resourceClaims, the scheduler's claim for the pod's extended
        resources backed by DRA (KEP-5004), named in status.extendedResourceClaimStatus, is
        prepared the same way and in the same NodePrepareResources call: its devices (CDI) go to
        the containers that status.extendedResourceClaimStatus.requestMappings names.
        """
        ns, uid = pod["metadata"]["namespace"], pod["metadata"]["uid"]
        status = pod.get("status") or {}
        generated = {s.get("name"): s.get("resourceClaimName") for s in status.get("resourceClaimStatuses") or []}
        names: list[str] = []
        for pc in (pod.get("spec") or {}).get("resourceClaims") or []:
            claim_name = pc.get("resourceClaimName") or generated.get(pc.get("name"))
            if not claim_name:
                return [], f"waiting for the ResourceClaim of pod claim {pc.get('name')!r} to be created"
            names.append(claim_name)
        extended = (status.get("extendedResourceClaimStatus") or {}).get("resourceClaimName")
        if extended and extended not in names:
            names.append(extended)
        refs: list[ClaimRef] = []
        for claim_name in names:
            ref, why = self._ready_claim(ns, uid, claim_name)
            if ref is None:
                return [], why
            refs.append(ref)
        return refs, ""

    def _ready_claim(self, ns: str, pod_uid: str, claim_name: str) -> tuple[ClaimRef | None, str]:
        """The claim if it is allocated and reserved for the pod, else why the pod waits."""
        try:
            claim = _raw(self.resource.read_namespaced_resource_claim(claim_name, ns, _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                return None, f'resourceclaim "{claim_name}" not found'
            raise
        status = claim.get("status") or {}
        if not status.get("allocation"):
            return None, f'resourceclaim "{claim_name}" is not allocated'
        if not any(r.get("uid") == pod_uid for r in status.get("reservedFor") or []):
            return None, f'resourceclaim "{claim_name}" is not reserved for this pod'
        return ClaimRef(ns, claim_name, claim["metadata"]["uid"]), ""

    def _unprepare(self, uid: str, ns: str, name: str) -> None:
        claims = self.prepared.get(uid)
        if not claims:
            return
        errors = {u: e for u, e in self.preparer.unprepare(claims).items() if e}
        if errors:
            logger.warning("unprepare_failed", node=self.spec.name, pod=name, errors=errors)
            raise ApiException(status=500, reason=f"NodeUnprepareResources: {errors}")
        del self.prepared[uid]
        logger.info("claims_unprepared", node=self.spec.name, namespace=ns, pod=name, claims=[c.name for c in claims])

    def _patch_status(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        meta = pod["metadata"]
        self.core.patch_namespaced_pod_status(meta["name"], meta["namespace"],
                                              {"metadata": {"uid": meta["uid"]}, "status": status},
                                              _content_type="application/strategic-merge-patch+json",
                                              _preload_content=False)

    def _container_waiting(self, pod: dict[str, Any], reason: str, message: str, event: bool) -> None:
        containers = (pod.get("spec") or {}).get("containers") or []
        statuses = [{"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": False, "started": False,
                     "restartCount": 0, "state": {"waiting": {"reason": reason, "message": message}}} for c in containers]
        current = (pod.get("status") or {}).get("containerStatuses") or []
        if [s.get("state") for s in current] != [s["state"] for s in statuses]:
            self._patch_status(pod, {"hostIP": self._ip(), "containerStatuses": statuses})
        if event:
            post_event(self.core, pod, "Warning", "FailedPrepareDynamicResources", message, "kubelet", self.spec.name)

    def _ip(self) -> str:
        return f"10.0.{self.index // 250}.{self.index % 250 + 2}"

    def _running(self, pod: dict[str, Any]) -> None:
        now = now_rfc3339()
        containers = (pod.get("spec") or {}).get("containers") or []
        uid = pod["metadata"]["uid"]
        statuses = [{"name": c["name"], "image": c.get("image", ""), "imageID": f"emulated://{c.get('image', '')}",
                     "containerID": f"emulated://{uid[:8]}-{c['name']}", "ready": True, "started": True,
                     "restartCount": 0, "state": {"running": {"startedAt": now}}} for c in containers]
        conditions = [{"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
                      for t in ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")]
        pod_ip = f"10.244.{self.index}.{(int(uid[:4], 16) % 250) + 2}"
        self._patch_status(pod, {"phase": "Running", "hostIP": self._ip(), "hostIPs": [{"ip": self._ip()}],
                                 "podIP": pod_ip, "podIPs": [{"ip": pod_ip}], "startTime": now,
                                 "conditions": conditions, "containerStatuses": statuses})
        post_event(self.core, pod, "Normal", "Started", f"Started {len(containers)} container(s) (emulated)",
                   "kubelet", self.spec.name)
        logger.info("pod_running", node=self.spec.name, namespace=pod["metadata"]["namespace"],
                    pod=pod["metadata"]["name"], claims=[c.name for c in self.prepared.get(uid, [])])
        run_s = ((pod["metadata"].get("annotations") or {}).get(RUN_SECONDS_ANNOTATION))
        if run_s is not None:
            try:
                seconds = max(float(run_s), 0.0)
            except ValueError:
                post_event(self.core, pod, "Warning", "InvalidAnnotation",
                           f"{RUN_SECONDS_ANNOTATION}: expected a number of seconds, got {run_s!r}", "kubelet", self.spec.name)
                return
            self.queue.add_after(("finish", pod["metadata"]["namespace"], pod["metadata"]["name"], uid), seconds)

    def _finish(self, ns: str, name: str, uid: str) -> None:
        """The pod's containers exited 0: Succeeded, then its claims are unprepared."""
        pod = _raw(self.core.read_namespaced_pod(name, ns, _preload_content=False))
        if pod["metadata"]["uid"] != uid or (pod.get("status") or {}).get("phase") != "Running":
            return
        now = now_rfc3339()
        statuses = [{"name": c["name"], "image": c.get("image", ""), "imageID": f"emulated://{c.get('image', '')}",
                     "ready": False, "started": False, "restartCount": 0,
                     "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": now}}}
                    for c in (pod.get("spec") or {}).get("containers") or []]
        conditions = [{"type": t, "status": "False", "reason": "PodCompleted", "lastProbeTime": None,
                       "lastTransitionTime": now} for t in ("ContainersReady", "Ready")]
        self._patch_status(pod, {"phase": "Succeeded", "conditions": conditions, "containerStatuses": statuses})
        self._unprepare(uid, ns, name)
        logger.info("pod_succeeded", node=self.spec.name, namespace=ns, pod=name)
