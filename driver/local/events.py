"""core/v1 Events written by the emulated components, the way kubectl describe shows them."""

from __future__ import annotations

import uuid
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from driver import log

logger = log.get(__name__)


def post_event(core: client.CoreV1Api, obj: dict[str, Any], etype: str, reason: str, message: str,
               component: str, host: str = "") -> None:
    """Record an Event about `obj` (best effort: an event that cannot be written is logged)."""
    from driver.local.objectmeta import now_rfc3339

    meta = obj.get("metadata") or {}
    ns = meta.get("namespace") or "default"
    now = now_rfc3339()
    source: dict[str, Any] = {"component": component}
    if host:
        source["host"] = host
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta.get('name', 'object')}.{uuid.uuid4().hex[:16]}", "namespace": ns},
        "involvedObject": {"apiVersion": obj.get("apiVersion", "v1"), "kind": obj.get("kind", ""), "name": meta.get("name"),
                           "namespace": meta.get("namespace"), "uid": meta.get("uid"),
                           "resourceVersion": meta.get("resourceVersion")},
        "reason": reason,
        "message": message,
        "type": etype,
        "source": source,
        "reportingComponent": component,
        "reportingInstance": host or component,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        core.create_namespaced_event(ns, body, _preload_content=False)
    except ApiException as exc:
        logger.warning("event_not_recorded", reason=reason, status=exc.status)
