"""Label and field selectors, parsed once per request into predicates over wire dicts.

The grammar is the apiserver's: labels take `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a)`,
`k` and `!k`, comma-separated (commas inside parentheses belong to the set); fields take
`path=v`, `path==v`, `path!=v` over an allowlist per type. An unknown field is a 400, as on a
real cluster, so a typo never silently selects everything.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from driver.local.errors import ApiError, bad_request

Predicate = Callable[[dict[str, Any]], bool]

_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_SET_RE = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*(?:(in|notin)\s*\(([^)]*)\)|(==|!=|=)\s*([^\s,]*))?\s*$")


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    terms, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return [t for t in (t.strip() for t in terms) if t]


def _label_term(term: str) -> Predicate:
    m = _SET_RE.match(term)
    if not m:
        raise bad_request(f"unable to parse requirement: invalid label selector term {term!r}")
    negate, key, set_op, set_values, op, value = m.groups()
    if not _LABEL_KEY.match(key):
        raise bad_request(f"unable to parse requirement: invalid label key {key!r}")
    if negate and (set_op or op):
        raise bad_request(f"unable to parse requirement: '!' only applies to an existence test, got {term!r}")
    if set_op:
        values = {v.strip() for v in set_values.split(",") if v.strip()}
        if not values:
            raise bad_request(f"unable to parse requirement: {set_op} needs at least one value in {term!r}")
        if set_op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if op:
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: key in labels and labels[key] == value
    if negate:
        return lambda labels: key not in labels
    return lambda labels: key in labels


def label_selector(text: str | None) -> Predicate | None:
    """A predicate over an object's labels, or None for "everything"."""
    if not text:
        return None
    preds = [_label_term(t) for t in _split_terms(text)]

    def match(obj: dict[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(p(labels) for p in preds)

    return match


def field_value(obj: dict[str, Any], path: str) -> str:
    """The selector string of a dotted field (missing = ""; bools as true/false)."""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if isinstance(cur, dict):
        # events' `source` selects on source.component
        return str(cur.get("component", ""))
    return str(cur)


def field_selector(text: str | None, allowed: tuple[str, ...], kind: str) -> Predicate | None:
    """A predicate over the allowed field paths of `kind`, or None for "everything"."""
    if not text:
        return None
    terms: list[tuple[str, bool, str]] = []
    for term in _split_terms(text):
        m = re.match(r"^\s*([^=!\s]+)\s*(==|!=|=)\s*(.*?)\s*$", term)
        if not m:
            raise bad_request(f"invalid field selector term {term!r}: expected <field>=<value> or <field>!=<value>")
        path, op, value = m.groups()
        if path not in allowed:
            raise bad_request(f'field label not supported: {path} (for {kind}; supported: {", ".join(allowed)})')
        terms.append((path, op == "!=", value))

    def match(obj: dict[str, Any]) -> bool:
        for path, negate, value in terms:
            if (field_value(obj, path) == value) == negate:
                return False
        return True

    return match


def combine(*preds: Predicate | None) -> Predicate | None:
    active = [p for p in preds if p is not None]
    if not active:
        return None
    if len(active) == 1:
        return active[0]
    return lambda obj: all(p(obj) for p in active)


__all__ = ["ApiError", "Predicate", "label_selector", "field_selector", "field_value", "combine"]
