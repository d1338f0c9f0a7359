"""Protobuf request bodies (`application/vnd.kubernetes.protobuf`) → the JSON dict a JSON client sends.

kubectl's typed client sends `kubectl create namespace|configmap|secret|serviceaccount|deployment|job|
priorityclass|poddisruptionbudget` bodies as protobuf: the 4-byte prefix `k8s\\x00`, then a
runtime.Unknown envelope (typeMeta, raw, contentEncoding, contentType) whose `raw` is the object's own
message. Decoding here turns such a body into the camelCase wire dict, so the create path (kind
check, defaults, validation, errors) is the one JSON bodies take.

Data safety: the schema (proto/kube_objects.proto) declares only the fields those commands use. A
message carrying any other field keeps it as an unknown field, and the body is refused (415, naming
the kind and where the unknown field numbers are), never stored with the field dropped. A kind not
in `KINDS` is refused the same way; a body that does not parse is a 400.
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any

from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from driver import log
from driver.local import errors
from driver.plugin.proto import kube_objects_pb2 as pb

logger = log.get(__name__)

PROTOBUF = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

# (apiVersion, kind) -> message class of the object inside the envelope.
KINDS: dict[tuple[str, str], type[Message]] = {
    ("v1", "Namespace"): pb.Namespace,
    ("v1", "ConfigMap"): pb.ConfigMap,
    ("v1", "Secret"): pb.Secret,
    ("v1", "ServiceAccount"): pb.ServiceAccount,
    ("apps/v1", "Deployment"): pb.Deployment,
    ("batch/v1", "Job"): pb.Job,
    ("scheduling.k8s.io/v1", "PriorityClass"): pb.PriorityClass,
    ("policy/v1", "PodDisruptionBudget"): pb.PodDisruptionBudget,
}

_JSON_HINT = "send the object as JSON instead (e.g. `kubectl create ... --dry-run=client -o yaml | kubectl apply -f -`)"


def _unsupported(message: str) -> errors.ApiError:
    return errors.ApiError(415, "UnsupportedMediaType", message)


def _supported_kinds() -> str:
    return ", ".join(f"{av} {kind}" for av, kind in KINDS)


def decode(data: bytes) -> dict[str, Any]:
    """The object of a protobuf request body as a JSON-style dict with apiVersion and kind set."""
    if not data.startswith(MAGIC):
        raise errors.bad_request(f"protobuf body: expected the Kubernetes envelope prefix 'k8s\\x00', "
                                 f"got {data[:4]!r}")
    envelope = pb.Unknown()
    try:
        envelope.ParseFromString(data[len(MAGIC):])
    except DecodeError as exc:
        raise errors.bad_request(f"protobuf body: the runtime.Unknown envelope does not parse: {exc}") from None
    api_version, kind = envelope.typeMeta.apiVersion, envelope.typeMeta.kind
    if not kind:
        raise errors.bad_request("protobuf body: the envelope's typeMeta.kind is empty")
    if envelope.contentEncoding:
        raise _unsupported(f"protobuf body: contentEncoding {envelope.contentEncoding!r} is not supported "
                           "(expected none)")
    if envelope.contentType not in ("", PROTOBUF):
        raise _unsupported(f"protobuf body: the envelope's contentType {envelope.contentType!r} is not supported "
                           f"(expected {PROTOBUF})")
    cls = KINDS.get((api_version, kind))
    if cls is None:
        raise _unsupported(f"protobuf bodies of kind {kind} ({api_version or 'no apiVersion'}) are not supported by "
                           f"the local API server (supported: {_supported_kinds()}); {_JSON_HINT}")
    msg = cls()
    try:
        msg.ParseFromString(envelope.raw)
    except DecodeError as exc:
        raise errors.bad_request(f"protobuf body: the {kind} message does not parse: {exc}") from None
    unknown = unknown_fields(msg)
    if unknown:
        logger.info("protobuf_body_refused", kind=kind, unknown=unknown)
        raise _unsupported(f"protobuf body of kind {kind} has fields the local API server does not know "
                           f"(field numbers: {'; '.join(unknown)}); it refuses the body rather than drop them: "
                           f"{_JSON_HINT}")
    obj = to_json(msg)
    assert isinstance(obj, dict)
    return {"apiVersion": api_version, "kind": kind, **obj}


def unknown_fields(msg: Message, path: str = "") -> list[str]:
    """Where `msg` (recursively) holds fields its schema lacks: `"<path>: #n, #m"` entries."""
    found: list[str] = []
    numbers = sorted({f.field_number for f in UnknownFieldSet(msg)})
    if numbers:
        found.append(f"{path or msg.DESCRIPTOR.name} #" + ", #".join(str(n) for n in numbers))
    for fd, value in msg.ListFields():
        if fd.message_type is None:
            continue
        here = f"{path}.{fd.name}" if path else fd.name
        if fd.message_type.GetOptions().map_entry:
            if fd.message_type.fields_by_name["value"].message_type is not None:
                for key, item in value.items():
                    found += unknown_fields(item, f"{here}[{key}]")
        elif fd.is_repeated:
            for i, item in enumerate(value):
                found += unknown_fields(item, f"{here}[{i}]")
        else:
            found += unknown_fields(value, here)
    return found


def _time(msg: Any) -> str | None:
    if not msg.seconds and not msg.nanos:
        return None  # Go writes the zero time for an unset non-pointer Time: JSON null, i.e. absent
    return datetime.fromtimestamp(msg.seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _scalar(value: Any) -> Any:
    return base64.b64encode(value).decode() if isinstance(value, bytes) else value


def to_json(msg: Message) -> Any:
    """The JSON form of a decoded message: set fields by their (camelCase) names, omitting unset ones.

    Time, Quantity and IntOrString have their JSON shapes (RFC 3339 string, string, int or string);
    bytes become base64, as in JSON. An empty message that is present stays `{}` (Go writes
    non-pointer structs always, and its JSON has them too, e.g. `resources: {}`).
    """
    name = msg.DESCRIPTOR.name
    if name == "Time":
        return _time(msg)
    if name == "Quantity":
        return msg.string  # type: ignore[attr-defined]
    if name == "IntOrString":
        return msg.strVal if msg.type == 1 else msg.intVal  # type: ignore[attr-defined]
    out: dict[str, Any] = {}
    for fd, value in msg.ListFields():
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            message_values = fd.message_type.fields_by_name["value"].message_type is not None
            out[fd.name] = {k: to_json(v) if message_values else _scalar(v) for k, v in value.items()}
        elif fd.is_repeated:
            out[fd.name] = [to_json(v) if fd.message_type is not None else _scalar(v) for v in value]
        elif fd.message_type is not None:
            converted = to_json(value)
            if converted is not None:
                out[fd.name] = converted
        else:
            out[fd.name] = _scalar(value)
    return out
