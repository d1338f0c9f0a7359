"""NodeAffinity: nodeSelector and node affinity, required (filter) and preferred (score).

Matching is component-helpers' nodeaffinity, term by term:

- terms are ORed, the requirements of a term ANDed; a term with neither matchExpressions nor
  matchFields matches nothing, so a required affinity whose terms are all empty (or that has no
  terms) matches no node;
- matchExpressions: In, NotIn, Exists, DoesNotExist on node labels; Gt / Lt compare a label
  that parses as an integer to the single integer value; keys must be qualified names and In /
  NotIn values valid label values, else the term does not parse;
- matchFields: only `metadata.name`, operators In / NotIn with exactly one value;
- a term that does not parse never matches (the API server rejects such pods; upstream ignores
  the error while another term can match). When *every* required term is unreadable no node can
  match, and the pod is rejected with the parse errors, naming the fields; unreadable preferred
  terms reject the pod too (upstream's PreScore fails the cycle).

Required = nodeSelector (every label equal) AND required node affinity → per node "node(s) didn't
match Pod's node affinity/selector", unresolvable. If every term pins `metadata.name` (In) and the
pinned sets are all empty (conflicting terms), the pod is rejected outright: "pod affinity terms
conflict". Preferred: the sum of the weights of the matching terms, normalized to 0..100 by the
highest node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from driver.scheduler.framework import Checks, CycleContext, Rejection, default_normalize

PLUGIN = "NodeAffinity"
REASON = "node(s) didn't match Pod's node affinity/selector"
REASON_CONFLICT = "pod affinity terms conflict"
NAME_FIELD = "metadata.name"
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"
WHERE = "spec.affinity.nodeAffinity"

_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_INT = re.compile(r"^[+-]?[0-9]+$")
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")


class AffinityError(ValueError):
    """A node selector term that cannot be read; the message names the field."""


def _int64(text: str) -> int | None:
    if not _INT.match(text):
        return None
    n = int(text)
    return n if -(2**63) <= n < 2**63 else None


def _check_key(key: Any, where: str) -> str:
    if not isinstance(key, str) or not key:
        raise AffinityError(f"{where}: a label key is required")
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS1123.match(prefix)):
        raise AffinityError(f"{where}: {key!r} has an invalid prefix (a DNS subdomain such as 'example.com')")
    if len(name) > 63 or not _NAME.match(name):
        raise AffinityError(f"{where}: {key!r} is not a valid label key (name part: at most 63 alphanumerics, "
                            "'-', '_' or '.', starting and ending with an alphanumeric)")
    return key


def _check_value(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise AffinityError(f"{where}: expected a string, got {type(value).__name__}")
    if value and (len(value) > 63 or not _NAME.match(value)):
        raise AffinityError(f"{where}: {value!r} is not a valid label value (at most 63 alphanumerics, "
                            "'-', '_' or '.', starting and ending with an alphanumeric)")
    return value


@dataclass(frozen=True, slots=True)
class Expression:
    """One matchExpressions requirement on node labels."""

    key: str
    operator: str
    values: frozenset[str] = frozenset()
    number: int = 0  # Gt / Lt

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op == "In":
            return labels.get(self.key) in self.values
        if op == "NotIn":
            return labels.get(self.key) not in self.values
        if op == "Exists":
            return self.key in labels
        if op == "DoesNotExist":
            return self.key not in labels
        have = labels.get(self.key)
        n = _int64(have) if have is not None else None
        if n is None:
            return False
        return n > self.number if op == "Gt" else n < self.number


def _expression(raw: Any, where: str) -> Expression:
    if not isinstance(raw, Mapping):
        raise AffinityError(f"{where}: expected a node selector requirement object")
    key = _check_key(raw.get("key"), f"{where}.key")
    op = raw.get("operator")
    if op not in _OPERATORS:
        raise AffinityError(f"{where}.operator: {op!r} is not one of {', '.join(_OPERATORS)}")
    values = raw.get("values") or []
    if not isinstance(values, list):
        raise AffinityError(f"{where}.values: expected a list of strings")
    if op in ("In", "NotIn"):
        if not values:
            raise AffinityError(f"{where}.values: must be non-empty for operator {op}")
        return Expression(key, op, frozenset(_check_value(v, f"{where}.values[{i}]") for i, v in enumerate(values)))
    if op in ("Exists", "DoesNotExist"):
        if values:
            raise AffinityError(f"{where}.values: must be empty for operator {op}")
        return Expression(key, op)
    number = _int64(str(values[0])) if len(values) == 1 and isinstance(values[0], str) else None
    if number is None:
        raise AffinityError(f"{where}.values: operator {op} needs exactly one integer value, got {values!r}")
    return Expression(key, op, number=number)


@dataclass(frozen=True, slots=True)
class Term:
    """One NodeSelectorTerm: label expressions and `metadata.name` fields, ANDed."""

    expressions: tuple[Expression, ...] = ()
    fields: tuple[tuple[str, str, str], ...] = ()  # (key, In | NotIn, value)

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        """`name` "": the node has no fields, and matchFields are not checked (upstream's rule,
        which PersistentVolume node affinity relies on)."""
        for e in self.expressions:
            if not e.matches(labels):
                return False
        if name:
            for key, op, value in self.fields:
                actual = name if key == NAME_FIELD else ""
                if (actual == value) != (op == "In"):
                    return False
        return True


def parse_term(raw: Any, where: str) -> Term | None:
    """A NodeSelectorTerm (None: an empty term, which matches nothing). Raises AffinityError."""
    if not isinstance(raw, Mapping):
        raise AffinityError(f"{where}: expected a node selector term object")
    exprs = raw.get("matchExpressions") or []
    fields = raw.get("matchFields") or []
    if not isinstance(exprs, list) or not isinstance(fields, list):
        raise AffinityError(f"{where}: matchExpressions and matchFields must be lists")
    if not exprs and not fields:
        return None
    parsed = tuple(_expression(e, f"{where}.matchExpressions[{i}]") for i, e in enumerate(exprs))
    out = []
    for i, f in enumerate(fields):
        at = f"{where}.matchFields[{i}]"
        if not isinstance(f, Mapping):
            raise AffinityError(f"{at}: expected a node selector requirement object")
        op, values = f.get("operator"), f.get("values") or []
        if op not in ("In", "NotIn"):
            raise AffinityError(f"{at}.operator: {op!r} is not supported for fields (In, NotIn)")
        if not isinstance(values, list) or len(values) != 1:
            raise AffinityError(f"{at}.values: must have exactly one element, got {values!r}")
        out.append((str(f.get("key") or ""), op, str(values[0])))
    return Term(parsed, tuple(out))


@dataclass(frozen=True, slots=True)
class NodeSelector:
    """A parsed v1.NodeSelector: the readable non-empty terms, ORed, and the parse errors."""

    terms: tuple[Term, ...]
    errors: tuple[str, ...] = ()

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        return any(t.matches(name, labels) for t in self.terms)


def parse_node_selector(raw: Any, where: str) -> NodeSelector:
    """Parse a NodeSelector leniently (unreadable terms are recorded, not raised)."""
    if not isinstance(raw, Mapping):
        return NodeSelector((), (f"{where}: expected a node selector object",))
    terms_raw = raw.get("nodeSelectorTerms") or []
    if not isinstance(terms_raw, list):
        return NodeSelector((), (f"{where}.nodeSelectorTerms: expected a list",))
    terms, errors = [], []
    for i, t in enumerate(terms_raw):
        try:
            term = parse_term(t, f"{where}.nodeSelectorTerms[{i}]")
        except AffinityError as exc:
            errors.append(str(exc))
            continue
        if term is not None:
            terms.append(term)
    return NodeSelector(tuple(terms), tuple(errors))


# -- the pod's requirements, kept for the cycle and other plugins ---------------------------------

def label_requirements(pod: Mapping[str, Any]) -> tuple[dict[str, str], Mapping[str, Any] | None]:
    """The pod's nodeSelector and required node affinity (None when absent)."""
    spec = pod.get("spec") or {}
    selector = spec.get("nodeSelector") or {}
    affinity = (((spec.get("affinity") or {}).get("nodeAffinity")) or {}).get(REQUIRED)
    return selector, affinity


_PARSED: dict[int, tuple[Mapping[str, Any], NodeSelector]] = {}


def _parsed(affinity: Mapping[str, Any]) -> NodeSelector:
    """Parse once per affinity object (callers match one pod's affinity against many nodes)."""
    hit = _PARSED.get(id(affinity))
    if hit is not None and hit[0] is affinity:
        return hit[1]
    if len(_PARSED) > 4096:
        _PARSED.clear()
    ns = parse_node_selector(affinity, f"{WHERE}.{REQUIRED}")
    _PARSED[id(affinity)] = (affinity, ns)
    return ns


def labels_match(selector: Mapping[str, str], affinity: Mapping[str, Any] | None, name: str,
                 labels: Mapping[str, str]) -> bool:
    """nodeSelector (every label equal) and required node affinity (terms ORed, requirements ANDed)."""
    for k, v in selector.items():
        if labels.get(k) != v:
            return False
    return affinity is None or _parsed(affinity).matches(name, labels)


def _pinned_names_conflict(required: Mapping[str, Any]) -> bool:
    """Every term pins metadata.name (In) and each term's pinned set is empty: no node can match."""
    terms = required.get("nodeSelectorTerms") or []
    if not isinstance(terms, list) or not terms:
        return False
    for t in terms:
        names: set[str] | None = None
        for f in (t.get("matchFields") or []) if isinstance(t, Mapping) else []:
            if isinstance(f, Mapping) and f.get("key") == NAME_FIELD and f.get("operator") == "In":
                values = {str(v) for v in f.get("values") or []}
                names = values if names is None else names & values
        if names is None or names:
            return False
    return True


@dataclass(frozen=True, slots=True)
class Preference:
    weight: int
    term: Term


def parse_preferred(raw: Any, where: str) -> tuple[Preference, ...]:
    """PreferredSchedulingTerms; weight-0 and empty terms are skipped. Raises AffinityError."""
    if not isinstance(raw, list):
        raise AffinityError(f"{where}: expected a list of preferred scheduling terms")
    out = []
    for i, p in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(p, Mapping):
            raise AffinityError(f"{at}: expected a preferred scheduling term object")
        weight = p.get("weight", 0)
        if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 100:
            raise AffinityError(f"{at}.weight: expected an integer in 1..100, got {weight!r}")
        if weight == 0:
            continue
        term = parse_term(p.get("preference") or {}, f"{at}.preference")
        if term is not None:
            out.append(Preference(weight, term))
    return tuple(out)


def prefilter(ctx: CycleContext) -> Checks | Rejection | None:
    spec = ctx.pod.get("spec") or {}
    if not spec.get("nodeSelector") and not (spec.get("affinity") or {}).get("nodeAffinity"):
        return None  # the common case, before any parsing
    node_affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    if not isinstance(node_affinity, Mapping):
        return Rejection(PLUGIN, f"{WHERE}: expected a node affinity object", unresolvable=True)
    selector = spec.get("nodeSelector") or {}
    if not isinstance(selector, Mapping):
        return Rejection(PLUGIN, "spec.nodeSelector: expected a map of label to value", unresolvable=True)
    wanted = tuple((str(k), str(v)) for k, v in selector.items())
    required_raw = node_affinity.get(REQUIRED)
    checks = Checks(PLUGIN)
    rejected = Rejection(PLUGIN, REASON, unresolvable=True)

    if required_raw is not None:
        if isinstance(required_raw, Mapping) and _pinned_names_conflict(required_raw):
            return Rejection(PLUGIN, REASON_CONFLICT, unresolvable=True)
        required = parse_node_selector(required_raw, f"{WHERE}.{REQUIRED}")
        if not required.terms and required.errors:
            return Rejection(PLUGIN, "; ".join(required.errors), unresolvable=True)
    else:
        required = None
    if wanted or required is not None:
        def affinity_filter(node: Any) -> Rejection | None:
            labels = node.labels
            for k, v in wanted:
                if labels.get(k) != v:
                    return rejected
            if required is not None and not required.matches(node.name, labels):
                return rejected
            return None
        checks.filter = affinity_filter

    preferred_raw = node_affinity.get(PREFERRED)
    if preferred_raw is not None:
        try:
            preferred = parse_preferred(preferred_raw, f"{WHERE}.{PREFERRED}")
        except AffinityError as exc:
            return Rejection(PLUGIN, str(exc), unresolvable=True)
        if preferred:
            def affinity_score(node: Any) -> float:
                return float(sum(p.weight for p in preferred if p.term.matches(node.name, node.labels)))
            checks.score = affinity_score
            checks.normalize = default_normalize
    if checks.filter is None and checks.score is None:
        return None
    return checks
