"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

Two controller replicas must never schedule at once (they would race for the same devices; the
resourceVersion preconditions would catch it, but only after wasted work). The holder renews the
Lease every `retry_period`; a candidate takes it over only when the record has not changed for
`lease_duration` *as measured on its own clock since it last saw the record change* — never by
comparing the holder's timestamps with our clock, so clock skew between machines cannot make two
leaders. A leader that cannot renew within `renew_deadline` stops leading before anyone else may
start (renew_deadline < lease_duration). Writes use the Lease's resourceVersion: of two
candidates that both see an expired lease, one gets 409 and stays a follower.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from driver import log
from driver.controller.kube import Kube, api_error

logger = log.get(__name__)


@dataclass(frozen=True)
class LeaseConfig:
    name: str = "gpu-dra-controller"
    namespace: str = "kube-system"
    identity: str = "gpu-dra-controller"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not (0 < self.retry_period < self.renew_deadline < self.lease_duration):
            raise ValueError(
                "leader election: expected 0 < retry_period < renew_deadline < lease_duration, got "
                f"{self.retry_period}, {self.renew_deadline}, {self.lease_duration}"
            )
        if not self.identity:
            raise ValueError("leader election: identity must not be empty")


def _micro_time(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Runs the acquire/renew loop on a thread; `is_leader` says whether we hold the Lease now."""

    def __init__(
        self,
        kube: Kube,
        cfg: LeaseConfig,
        on_started: Callable[[], None] | None = None,
        on_stopped: Callable[[], None] | None = None,
    ) -> None:
        self.kube = kube
        self.cfg = cfg
        self.on_started = on_started
        self.on_stopped = on_stopped
        self._leading = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observed: tuple[str, str, str] | None = None  # (holder, renewTime, resourceVersion)
        self._observed_at = 0.0
        self.transitions = 0

    def is_leader(self) -> bool:
        return self._leading.is_set()

    def wait_leading(self, timeout: float | None = None) -> bool:
        return self._leading.wait(timeout)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self, release: bool = True) -> None:
        """Stop campaigning; a leader releases the Lease so a standby takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._leading.is_set():
            self._set_leading(False)
            if release:
                self._release()

    # ---- loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        cfg = self.cfg
        last_renew = time.monotonic()
        while not self._stop.is_set():
            ok = self.try_acquire_or_renew()
            now = time.monotonic()
            if ok:
                last_renew = now
                if not self._leading.is_set():
                    self._set_leading(True)
            elif self._leading.is_set() and now - last_renew >= cfg.renew_deadline:
                logger.warning("leader_lost", lease=cfg.name, identity=cfg.identity)
                self._set_leading(False)
            self._stop.wait(cfg.retry_period)

    def _set_leading(self, value: bool) -> None:
        if value:
            self._leading.set()
            self.transitions += 1
            logger.info("leader_started", lease=self.cfg.name, identity=self.cfg.identity)
            if self.on_started:
                self.on_started()
        else:
            self._leading.clear()
            logger.info("leader_stopped", lease=self.cfg.name, identity=self.cfg.identity)
            if self.on_stopped:
                self.on_stopped()

    def try_acquire_or_renew(self) -> bool:
        """One round: True when we hold the Lease after it."""
        cfg = self.cfg
        api = self.kube.coordination
        now_iso = _micro_time()
        try:
            lease = self.kube.call(api.read_namespaced_lease, cfg.name, cfg.namespace)
        except Exception as exc:  # noqa: BLE001
            status, message = api_error(exc)
            if status != 404:
                logger.warning("lease_read_failed", status=status, error=message)
                return False
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": cfg.name, "namespace": cfg.namespace},
                "spec": self._spec(now_iso, now_iso, 0),
            }
            try:
                self.kube.call(api.create_namespaced_lease, cfg.namespace, body)
            except Exception as exc2:  # noqa: BLE001 - 409: someone else created it first
                status2, message2 = api_error(exc2)
                if status2 == 409:
                    logger.debug("lease_create_lost", lease=cfg.name)
                else:
                    logger.warning("lease_create_failed", lease=f"{cfg.namespace}/{cfg.name}", status=status2,
                                   error=message2)
                return False
            return True

        spec = lease.get("spec") or {}
        meta = lease.get("metadata") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime") or "", meta.get("resourceVersion") or "")
        mono = time.monotonic()
        if record != self._observed:
            self._observed = record
            self._observed_at = mono
        duration = float(spec.get("leaseDurationSeconds") or cfg.lease_duration)
        if holder and holder != cfg.identity and mono - self._observed_at < duration:
            return False  # held by someone else and not expired

        transitions = int(spec.get("leaseTransitions") or 0)
        acquire = spec.get("acquireTime") or now_iso
        if holder != cfg.identity:
            transitions += 1
            acquire = now_iso
        lease["spec"] = self._spec(acquire, now_iso, transitions)
        try:
            self.kube.call(api.replace_namespaced_lease, cfg.name, cfg.namespace, lease)
        except Exception as exc:  # noqa: BLE001 - 409: another candidate won this round
            status, message = api_error(exc)
            logger.debug("lease_update_failed", status=status, error=message)
            return False
        return True

    def _spec(self, acquire: str, renew: str, transitions: int) -> dict:
        return {
            "holderIdentity": self.cfg.identity,
            "leaseDurationSeconds": max(1, int(round(self.cfg.lease_duration))),
            "acquireTime": acquire,
            "renewTime": renew,
            "leaseTransitions": transitions,
        }

    def _release(self) -> None:
        api = self.kube.coordination
        try:
            lease = self.kube.call(api.read_namespaced_lease, self.cfg.name, self.cfg.namespace)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.cfg.identity:
                return
            spec["holderIdentity"] = ""
            spec["leaseDurationSeconds"] = 1
            spec["renewTime"] = _micro_time()
            self.kube.call(api.replace_namespaced_lease, self.cfg.name, self.cfg.namespace, lease)
            logger.info("leader_released", lease=self.cfg.name, identity=self.cfg.identity)
        except Exception as exc:  # noqa: BLE001 - the lease then simply expires
            logger.warning("lease_release_failed", error=api_error(exc)[1])
