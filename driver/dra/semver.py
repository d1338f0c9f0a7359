"""Semantic versions as DRA device attributes carry them (`version` values, strict semver 2.0.0).

CEL selectors compare versions (`driverVersion.isGreaterThan(semver("550.0.0"))`), so a version
must order by semver precedence, not as text: "550.10.0" > "550.9.0" and "1.0.0-rc.1" < "1.0.0".
Build metadata is kept for display but ignored when comparing, as semver requires.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

_IDENT = r"(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)"
_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    rf"(?:-({_IDENT}(?:\.{_IDENT})*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)


class SemverError(ValueError):
    """A string that is not a strict semantic version."""


@total_ordering
@dataclass(frozen=True, slots=True)
class Semver:
    """A parsed semantic version; orders by semver precedence."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: str = ""

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + self.build
        return text

    def _key(self) -> tuple:
        # A release sorts after all of its pre-releases; numeric identifiers sort before
        # alphanumeric ones and compare as numbers.
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Semver):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __lt__(self, other: Semver) -> bool:
        if not isinstance(other, Semver):
            return NotImplemented
        return self._key() < other._key()

    def compare(self, other: Semver) -> int:
        """-1, 0 or 1, like CEL's compareTo."""
        a, b = self._key(), other._key()
        return (a > b) - (a < b)


def parse_semver(text: str, field: str = "version") -> Semver:
    """Parse strict semver ("550.54.15", "1.2.3-rc.1+build"); errors name `field`."""
    if not isinstance(text, str):
        raise SemverError(f"{field}: expected a semantic version string, got {type(text).__name__}")
    m = _RE.match(text)
    if not m:
        raise SemverError(f"{field}: {text!r} is not a semantic version (expected MAJOR.MINOR.PATCH, e.g. '550.54.15')")
    pre = tuple(m.group(4).split(".")) if m.group(4) else ()
    return Semver(int(m.group(1)), int(m.group(2)), int(m.group(3)), pre, m.group(5) or "")
