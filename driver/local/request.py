"""Decoding of API requests: bodies and query parameters, with the apiserver's error answers.

Kept apart from the HTTP handler (`server.py`), which routes and replies, so that every way a
client can send something malformed — a chunked or YAML body, a protobuf body this server cannot
represent (decoded by `protobody`), a non-integer `limit`, `resourceVersion`, `gracePeriodSeconds`
or `timeoutSeconds`, a body of the wrong kind, unknown fields under `fieldValidation=Strict` — is
answered in one place, with a 4xx that names the parameter and what was expected, before anything
reaches the store.
"""

from __future__ import annotations

import json
from email.message import Message
from typing import Any, BinaryIO
from urllib.parse import parse_qs

import yaml

from driver.local import errors, protobody, validation
from driver.local.resources import Resource

JSON = "application/json"
_TRUE = ("true", "1")
_UNSUPPORTED_BODIES = ("application/cbor",)
_YAML_BODIES = ("application/yaml", "application/apply-patch+yaml")


def parse_query(text: str) -> dict[str, str]:
    """Query parameters; a repeated parameter counts with its last value, as in the apiserver."""
    return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


def media_type(headers: Message, default: str = "") -> str:
    """The Content-Type without parameters (`application/json; charset=utf-8` → `application/json`)."""
    return (headers.get("Content-Type") or default).split(";")[0].strip()


def read_body(headers: Message, rfile: BinaryIO) -> Any:
    """The decoded request body (None when empty): JSON, YAML for the YAML media types, or a protobuf
    object of a kind `protobody` knows, converted to its JSON form."""
    if headers.get("Transfer-Encoding", "").lower() == "chunked":
        data = _read_chunked(rfile)
    else:
        data = rfile.read(int(headers.get("Content-Length") or 0))
    if not data:
        return None
    ctype = media_type(headers, JSON)
    if ctype == protobody.PROTOBUF:
        return protobody.decode(data)
    if ctype in _UNSUPPORTED_BODIES:
        raise errors.ApiError(415, "UnsupportedMediaType",
                              f"the local API server accepts JSON, YAML and (for some kinds) protobuf bodies, "
                              f"not {ctype} (kubectl apply/create -f send JSON)")
    try:
        if ctype in _YAML_BODIES:
            return yaml.safe_load(data)
        return json.loads(data)
    except (ValueError, yaml.YAMLError) as exc:
        raise errors.bad_request(f"error decoding the request body: {exc}") from None


def _read_chunked(rfile: BinaryIO) -> bytes:
    """A `Transfer-Encoding: chunked` body: hex size lines (extensions after `;` ignored) and chunks."""
    chunks: list[bytes] = []
    while True:
        line = rfile.readline()
        try:
            size = int(line.strip().split(b";")[0], 16)
        except ValueError:
            raise errors.bad_request(f"chunked request body: expected a hexadecimal chunk size, got {line!r}") from None
        if size == 0:
            rfile.readline()
            return b"".join(chunks)
        chunks.append(rfile.read(size))
        rfile.readline()


def flag(query: dict[str, str], name: str) -> bool:
    """A boolean query parameter (`watch`, `sendInitialEvents`, `allowWatchBookmarks`)."""
    return query.get(name, "") in _TRUE


def limit(query: dict[str, str]) -> int:
    """`limit` of a list: 0 (no limit) when absent."""
    try:
        value = int(query.get("limit") or 0)
    except ValueError:
        raise errors.bad_request(f"limit: expected an integer, got {query.get('limit')!r}") from None
    if value < 0:
        raise errors.bad_request(f"limit: expected a non-negative integer, got {value}")
    return value


def resource_version(query: dict[str, str]) -> int | None:
    """`resourceVersion`; None for "" and "0" (any version: the latest, for this store)."""
    text = query.get("resourceVersion", "")
    if text in ("", "0"):
        return None
    try:
        return int(text)
    except ValueError:
        raise errors.bad_request(f"resourceVersion: expected an integer, got {text!r}") from None


def timeout_seconds(query: dict[str, str]) -> float | None:
    """`timeoutSeconds` of a watch; None (no timeout) when absent or 0."""
    try:
        return float(query.get("timeoutSeconds") or 0) or None
    except ValueError:
        raise errors.bad_request(f"timeoutSeconds: expected a number, got {query.get('timeoutSeconds')!r}") from None


def grace_seconds(query: dict[str, str], options: dict[str, Any]) -> int | None:
    """`gracePeriodSeconds` of a delete, from the query or else the DeleteOptions body."""
    grace = query.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
    try:
        return None if grace in (None, "") else int(grace)
    except (TypeError, ValueError):
        raise errors.bad_request(f"gracePeriodSeconds: expected an integer, got {grace!r}") from None


def check_kind(res: Resource, body: Any, query: dict[str, str]) -> list[str]:
    """Check that the body is an object of the URL's kind; returns the warnings for unknown fields.

    Unknown fields are handled per `fieldValidation`: Strict rejects them, Warn (the default)
    returns them as warnings, Ignore does not look.
    """
    if not isinstance(body, dict):
        raise errors.bad_request(f"the request body must be a {res.kind} object")
    kind = body.get("kind")
    if kind not in (None, "", res.kind):
        raise errors.bad_request(f"the kind of the object ({kind}) does not match the URL ({res.kind})")
    mode = query.get("fieldValidation") or "Warn"
    if mode not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(f"fieldValidation: expected Strict, Warn or Ignore, got {mode!r}")
    unknown = [] if mode == "Ignore" else validation.unknown_fields(res.kind, body)
    if unknown and mode == "Strict":
        raise errors.bad_request("strict decoding error: " + ", ".join(unknown))
    return unknown
