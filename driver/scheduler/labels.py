"""metav1.LabelSelector, parsed once and matched many times.

Pod affinity terms, topology spread constraints, namespace selectors and PodDisruptionBudgets all
select pods (or namespaces) by a LabelSelector. Upstream rules: an empty selector `{}` matches
everything, a missing (null) selector matches nothing; `matchLabels` and `matchExpressions` are
ANDed; operators In, NotIn, Exists, DoesNotExist. A selector that cannot be read raises
`SelectorError` naming the field, so a typo never silently matches everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


class SelectorError(ValueError):
    """A label selector that cannot be read; the message names the field."""


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str  # In | NotIn | Exists | DoesNotExist
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op == "In":
            return labels.get(self.key) in self.values
        if op == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if op == "Exists":
            return self.key in labels
        return self.key not in labels


@dataclass(frozen=True, slots=True)
class Selector:
    """A parsed LabelSelector. `nothing`: the null selector (matches no object)."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.nothing:
            return False
        for r in self.requirements:
            if not r.matches(labels):
                return False
        return True

    @property
    def everything(self) -> bool:
        return not self.nothing and not self.requirements

    def hint(self) -> Requirement | None:
        """The most selective positive requirement (In / Exists): what an index can look up."""
        best = None
        for r in self.requirements:
            if r.operator == "In" and (best is None or best.operator != "In" or len(r.values) < len(best.values)):
                best = r
            elif r.operator == "Exists" and best is None:
                best = r
        return best

    def with_requirements(self, extra: tuple[Requirement, ...]) -> "Selector":
        if self.nothing or not extra:
            return self
        return Selector(self.requirements + extra)


NOTHING = Selector(nothing=True)
EVERYTHING = Selector()


def parse(selector: Any, where: str) -> Selector:
    """Parse a LabelSelector dict (None → matches nothing)."""
    if selector is None:
        return NOTHING
    if not isinstance(selector, Mapping):
        raise SelectorError(f"{where}: expected a label selector object, got {type(selector).__name__}")
    reqs: list[Requirement] = []
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, Mapping):
        raise SelectorError(f"{where}.matchLabels: expected a map of label to value")
    for k, v in sorted(match_labels.items()):
        reqs.append(Requirement(str(k), "In", frozenset([str(v)])))
    exprs = selector.get("matchExpressions") or []
    if not isinstance(exprs, list):
        raise SelectorError(f"{where}.matchExpressions: expected a list")
    for i, e in enumerate(exprs):
        at = f"{where}.matchExpressions[{i}]"
        if not isinstance(e, Mapping) or not e.get("key"):
            raise SelectorError(f"{at}.key: required")
        op = e.get("operator")
        if op not in OPERATORS:
            raise SelectorError(f"{at}.operator: {op!r} is not one of {', '.join(OPERATORS)}")
        values = e.get("values") or []
        if op in ("In", "NotIn") and not values:
            raise SelectorError(f"{at}.values: must be non-empty for operator {op}")
        if op in ("Exists", "DoesNotExist") and values:
            raise SelectorError(f"{at}.values: must be empty for operator {op}")
        reqs.append(Requirement(str(e["key"]), op, frozenset(str(v) for v in values)))
    return Selector(tuple(reqs))


def from_labels(labels: Mapping[str, str]) -> Selector:
    """A selector matching exactly these labels (matchLabels)."""
    return Selector(tuple(Requirement(k, "In", frozenset([v])) for k, v in sorted(labels.items())))
