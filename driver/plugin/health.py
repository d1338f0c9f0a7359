"""Device health: NVML XID / GPU-lost events become slice taints and health-stream updates.

A thread blocks in NVML's event wait; each event taints the affected devices (every device of
a GPU, or only the MIG device NVML names) with the keys NVIDIA's driver uses (FACTS.md §8),
marks them unhealthy on the `NodeWatchResources` stream (unless the XID is an application
error, which says nothing about the GPU), and asks the publisher for a pass. Taints stay until
the plugin restarts: an XID'd GPU needs an operator (or a reset) before it is trusted again.
"""

from __future__ import annotations

import datetime
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from driver import log
from driver.devices.slices import APPLICATION_XIDS, gpu_lost_taint, xid_taint
from driver.nvml.interface import HealthEvent

logger = log.get(__name__)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class HealthMonitor:
    """Turns NVML events into taints (by GPU / MIG UUID) and device health updates."""

    driver_name: str
    wait_event: Callable[[float], HealthEvent | None]
    devices_of: Callable[[HealthEvent], list[str]]  # names of the published devices an event affects
    set_health: Callable[[list[str], bool, str], None]
    changed: Callable[[], None]  # ask for a republish
    taints: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    def handle(self, event: HealthEvent) -> None:
        """Record one event; safe to call from tests without the thread."""
        target = event.mig_uuid or event.uuid
        if event.kind == "gpu-lost":
            taint = gpu_lost_taint(self.driver_name, _now())
            message = f"GPU {event.index} ({event.uuid}) is lost: {event.message}".strip()
            unhealthy = True
        elif event.kind == "xid":
            taint = xid_taint(self.driver_name, event.xid, _now())
            message = f"XID {event.xid} on {target}: {event.message}".strip()
            unhealthy = event.xid not in APPLICATION_XIDS
        else:
            logger.warning("unknown_health_event", kind=event.kind, index=event.index)
            return
        with self.lock:
            current = {t["key"]: t for t in self.taints.get(target, [])}
            current[taint["key"]] = taint
            self.taints[target] = list(current.values())
        names = self.devices_of(event)
        logger.warning("device_health_event", kind=event.kind, gpu=event.index, uuid=target, xid=event.xid,
                       devices=names, effect=taint["effect"])
        if unhealthy:
            self.set_health(names, False, message)
        self.changed()

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        with self.lock:
            return {k: [dict(t) for t in v] for k, v in self.taints.items()}

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                event = self.wait_event(0.5)
            except Exception as exc:  # noqa: BLE001 - NVML trouble must not kill the monitor
                logger.warning("health_wait_failed", error=str(exc))
                self._stop.wait(1.0)
                continue
            if event is not None and not self._stop.is_set():
                self.handle(event)

    def stop(self) -> None:
        self._stop.set()
