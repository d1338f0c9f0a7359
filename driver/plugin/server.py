"""The gRPC services kubelet calls, over unix sockets.

One DRA socket serves `v1.DRAPlugin`, `v1beta1.DRAPlugin` (same handler, two wire packages),
`v1alpha1.DRAResourceHealth` and `grpc.health.v1.Health`; the registration socket serves
`pluginregistration.Registration`. Errors are per claim: a claim that fails gets `error` set in
its own entry and every other claim of the batch is prepared normally (kubelet retries only the
failed ones).
"""

from __future__ import annotations

import os
import socket
import stat
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import grpc

from driver import log
from driver.plugin.claims import ClaimError
from driver.plugin.metrics import Metrics
from driver.plugin.proto import (
    dra_v1_pb2,
    dra_v1_pb2_grpc,
    dra_v1beta1_pb2,
    dra_v1beta1_pb2_grpc,
    grpc_health_v1_pb2,
    grpc_health_v1_pb2_grpc,
    health_v1alpha1_pb2,
    health_v1alpha1_pb2_grpc,
    pluginregistration_pb2,
    pluginregistration_pb2_grpc,
)
from driver.plugin.state import DeviceState, PrepareError

logger = log.get(__name__)

SUPPORTED_VERSIONS = ["v1.DRAPlugin", "v1beta1.DRAPlugin"]
HEALTH_VERSION = "v1alpha1.DRAResourceHealth"
SOCKET_MODE = 0o660
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes including the terminating NUL


class SocketInUse(RuntimeError):
    """Another live process listens on the socket path we were told to use."""


def prepare_socket_path(path: str | Path) -> Path:
    """Create the parent directory and remove a stale socket; refuse one that is alive."""
    p = Path(path)
    if len(str(p).encode()) > MAX_SOCKET_PATH:
        raise ValueError(f"{p}: a unix socket path may have at most {MAX_SOCKET_PATH} bytes, this one has "
                         f"{len(str(p).encode())}; choose a shorter plugin/registry directory")
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.exists() or p.is_symlink():
        if not stat.S_ISSOCK(p.lstat().st_mode):
            raise SocketInUse(f"{p}: exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(p))
        except OSError:
            p.unlink(missing_ok=True)  # stale: nobody listens
            logger.info("stale_socket_removed", path=str(p))
        else:
            raise SocketInUse(f"{p}: another process is serving on this socket")
        finally:
            probe.close()
    return p


def serve_unix(path: str | Path, add: Callable[[grpc.Server], None], workers: int = 8) -> grpc.Server:
    """Start a gRPC server on a unix socket (mode 0660)."""
    p = prepare_socket_path(path)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"grpc-{p.name}"))
    add(server)
    if server.add_insecure_port(f"unix://{p}") == 0:
        raise OSError(f"{p}: could not listen on the unix socket")
    server.start()
    os.chmod(p, SOCKET_MODE)
    return server


# -- DRA --------------------------------------------------------------------------------------
def _make_dra_servicer(pb2: Any, base: type, state: DeviceState, metrics: Metrics, with_share_id: bool) -> Any:
    class Servicer(base):  # type: ignore[misc, valid-type]
        def NodePrepareResources(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
            resp = pb2.NodePrepareResourcesResponse()
            for claim in request.claims:
                started = time.perf_counter()
                entry = resp.claims[claim.uid]
                try:
                    prepared = state.prepare(claim.namespace, claim.name, claim.uid)
                except (ClaimError, PrepareError) as exc:
                    entry.error = str(exc)
                    metrics.errors.labels("prepare").inc()
                    logger.warning("prepare_refused", claim=claim.uid, namespace=claim.namespace,
                                   name=claim.name, error=str(exc))
                except Exception as exc:  # noqa: BLE001 - one claim must not fail the batch
                    entry.error = f"internal error preparing ResourceClaim {claim.namespace}/{claim.name}: {exc}"
                    metrics.errors.labels("prepare").inc()
                    logger.exception("prepare_internal_error", claim=claim.uid)
                else:
                    for d in prepared:
                        dev = entry.devices.add(request_names=d.request_names, pool_name=d.pool,
                                                device_name=d.device, cdi_device_ids=d.cdi_device_ids)
                        if with_share_id and d.share_id:
                            dev.share_id = d.share_id
                metrics.prepare_seconds.observe(time.perf_counter() - started)
            metrics.prepared_devices.set(state.prepared_device_count())
            return resp

        def NodeUnprepareResources(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
            resp = pb2.NodeUnprepareResourcesResponse()
            for claim in request.claims:
                started = time.perf_counter()
                entry = resp.claims[claim.uid]  # an entry for every claim, even on success
                try:
                    state.unprepare(claim.namespace, claim.name, claim.uid)
                except Exception as exc:  # noqa: BLE001
                    entry.error = f"unpreparing ResourceClaim {claim.namespace}/{claim.name}: {exc}"
                    metrics.errors.labels("unprepare").inc()
                    logger.exception("unprepare_failed", claim=claim.uid)
                metrics.unprepare_seconds.observe(time.perf_counter() - started)
            metrics.prepared_devices.set(state.prepared_device_count())
            return resp

    return Servicer()


def add_dra_services(server: grpc.Server, state: DeviceState, metrics: Metrics) -> None:
    dra_v1_pb2_grpc.add_DRAPluginServicer_to_server(
        _make_dra_servicer(dra_v1_pb2, dra_v1_pb2_grpc.DRAPluginServicer, state, metrics, True), server)
    dra_v1beta1_pb2_grpc.add_DRAPluginServicer_to_server(
        _make_dra_servicer(dra_v1beta1_pb2, dra_v1beta1_pb2_grpc.DRAPluginServicer, state, metrics, False), server)


# -- device health stream ---------------------------------------------------------------------
@dataclass
class HealthBoard:
    """The current health of every published device; wakes stream watchers on each change."""

    pool: str
    timeout_s: int = 60
    _devices: dict[str, tuple[int, int, str]] = field(default_factory=dict)  # name -> (status, time, msg)
    _version: int = 0
    _closed: bool = False
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def set_devices(self, names: list[str]) -> None:
        """Track these devices (new ones start healthy).

        Unhealthy devices stay listed even when they are no longer published (a GPU that fell
        off the bus): pods that hold them must keep seeing them as unhealthy.
        """
        with self._cond:
            now = int(time.time())
            kept = {n: v for n, v in self._devices.items() if v[0] == health_v1alpha1_pb2.UNHEALTHY}
            devices = {**kept, **{n: self._devices.get(n, (health_v1alpha1_pb2.HEALTHY, now, "")) for n in names}}
            if devices != self._devices:
                self._devices = devices
                self._bump()

    def set_health(self, names: list[str], healthy: bool, message: str) -> None:
        with self._cond:
            now = int(time.time())
            status = health_v1alpha1_pb2.HEALTHY if healthy else health_v1alpha1_pb2.UNHEALTHY
            for n in names:
                if n in self._devices:
                    self._devices[n] = (status, now, message[:1024])
            self._bump()

    def unhealthy(self) -> list[str]:
        with self._cond:
            return sorted(n for n, (s, _, _) in self._devices.items() if s == health_v1alpha1_pb2.UNHEALTHY)

    def _bump(self) -> None:
        self._version += 1
        self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def snapshot(self) -> tuple[int, Any]:
        with self._cond:
            resp = health_v1alpha1_pb2.NodeWatchResourcesResponse()
            for name, (status, when, msg) in sorted(self._devices.items()):
                resp.devices.add(
                    device=health_v1alpha1_pb2.DeviceIdentifier(pool_name=self.pool, device_name=name),
                    health=status, last_updated_time=when, health_check_timeout_seconds=self.timeout_s,
                    message=msg)
            return self._version, resp

    def watch(self, active: Callable[[], bool]) -> Iterator[Any]:
        """Yield the full list now and after every change, until closed or the client leaves."""
        version, resp = self.snapshot()
        yield resp
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._version != version or not active(), timeout=1.0)
                if self._closed or not active():
                    return
                changed = self._version != version
            if changed:
                version, resp = self.snapshot()
                yield resp


def add_health_services(server: grpc.Server, board: HealthBoard, serving: Callable[[], bool]) -> None:
    class ResourceHealth(health_v1alpha1_pb2_grpc.DRAResourceHealthServicer):
        def NodeWatchResources(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:  # noqa: N802
            yield from board.watch(context.is_active)

    class GrpcHealth(grpc_health_v1_pb2_grpc.HealthServicer):
        known = {"", "k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin", "k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin",
                 "v1alpha1.DRAResourceHealth"}

        def _status(self, service: str) -> int:
            if service not in self.known:
                return grpc_health_v1_pb2.HealthCheckResponse.SERVICE_UNKNOWN
            ok = serving()
            return grpc_health_v1_pb2.HealthCheckResponse.SERVING if ok else grpc_health_v1_pb2.HealthCheckResponse.NOT_SERVING

        def Check(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
            status = self._status(request.service)
            if status == grpc_health_v1_pb2.HealthCheckResponse.SERVICE_UNKNOWN:
                context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
            return grpc_health_v1_pb2.HealthCheckResponse(status=status)

        def Watch(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:  # noqa: N802
            last = None
            while context.is_active():
                status = self._status(request.service)
                if status != last:
                    last = status
                    yield grpc_health_v1_pb2.HealthCheckResponse(status=status)
                with board._cond:
                    board._cond.wait(timeout=1.0)
                    if board._closed:
                        return

    health_v1alpha1_pb2_grpc.add_DRAResourceHealthServicer_to_server(ResourceHealth(), server)
    grpc_health_v1_pb2_grpc.add_HealthServicer_to_server(GrpcHealth(), server)


# -- registration -----------------------------------------------------------------------------
@dataclass
class RegistrationStatus:
    """What kubelet last told us through NotifyRegistrationStatus."""

    registered: bool = False
    error: str = ""
    event: threading.Event = field(default_factory=threading.Event)


def add_registration_service(server: grpc.Server, driver_name: str, endpoint: str, with_health: bool,
                             status: RegistrationStatus) -> None:
    versions = SUPPORTED_VERSIONS + ([HEALTH_VERSION] if with_health else [])

    class Registration(pluginregistration_pb2_grpc.RegistrationServicer):
        def GetInfo(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
            return pluginregistration_pb2.PluginInfo(
                type="DRAPlugin", name=driver_name, endpoint=endpoint, supported_versions=versions)

        def NotifyRegistrationStatus(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
            status.registered, status.error = request.plugin_registered, request.error
            status.event.set()
            if request.plugin_registered:
                logger.info("registered_with_kubelet", driver=driver_name, endpoint=endpoint)
            else:
                logger.error("kubelet_rejected_registration", driver=driver_name, error=request.error)
            return pluginregistration_pb2.RegistrationStatusResponse()

    pluginregistration_pb2_grpc.add_RegistrationServicer_to_server(Registration(), server)
