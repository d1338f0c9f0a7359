"""Kubernetes API name and value rules: DNS labels and subdomains, qualified names, label keys and
values, strict semver.

One implementation shared by the ResourceSlice validator the plugin runs before publishing and the
local API server's validation of every resource.k8s.io object, so the two never disagree on what
a valid name is.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_C_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


def is_dns_label(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 63 and bool(_DNS_LABEL.match(value))


def is_dns_subdomain(value: Any, max_len: int = 253) -> bool:
    if not isinstance(value, str) or not value or len(value) > max_len:
        return False
    return all(_DNS_LABEL.match(p) for p in value.split("."))


def is_semver(value: Any) -> bool:
    return isinstance(value, str) and bool(_SEMVER.match(value))


@lru_cache(maxsize=4096)
def qualified_name_error(key: Any) -> str | None:
    """Why `key` is not an attribute/capacity name: a C identifier <= 32, or <domain>/<c-identifier>."""
    if not isinstance(key, str) or not key:
        return "must be a non-empty string"
    domain, sep, ident = key.rpartition("/")
    if sep:
        if not is_dns_subdomain(domain, 63):
            return f"prefix {domain!r} must be a DNS subdomain of at most 63 characters"
    if len(ident) > 32:
        return f"name {ident!r} is longer than 32 characters"
    if not _C_IDENT.match(ident):
        return f"name {ident!r} must be a C identifier (letters, digits, _; not starting with a digit)"
    return None


def is_label_value(value: Any) -> bool:
    """A label (or taint) value: empty, or <= 63 alphanumerics, '-', '_', '.', alphanumeric at both ends."""
    return isinstance(value, str) and len(value) <= 63 and bool(_LABEL_VALUE.match(value))


def label_key_error(key: Any) -> str | None:
    """Why `key` is not a label key (also taint keys, extended resource names): [<dns subdomain>/]<name>."""
    if not isinstance(key, str) or not key:
        return "must be a non-empty string"
    prefix, sep, name = key.rpartition("/")
    if sep and not is_dns_subdomain(prefix):
        return f"prefix {prefix!r} must be a DNS subdomain"
    if len(name) > 63 or not _LABEL_NAME.match(name):
        return f"name {name!r} must be at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
    return None
