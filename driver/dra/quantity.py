"""Kubernetes resource quantities, exact.

Capacities, consumable-capacity requests and CEL's `quantity()` all compare and add
quantities; floats would make `0.1 + 0.2 != 0.3`-style bugs show up as "does not fit", so
values are kept as `Fraction`. The grammar is the API server's: an optionally signed decimal
number followed by a binary suffix (Ki..Ei), a decimal SI suffix (n, u, m, k, M, G, T, P, E)
or a decimal exponent (e3, E-2).
"""

from __future__ import annotations

import re
from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_RE = re.compile(r"^([+-]?)(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$")


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


def parse_quantity(value: str | int | float | Fraction, field: str = "quantity") -> Fraction:
    """Parse a quantity ("10Gi", "250m", "1e3", 5) into an exact Fraction.

    `field` names the place the value came from, so that errors say which field was wrong.
    """
    if isinstance(value, bool):
        raise QuantityError(f"{field}: expected a quantity such as '10Gi' or '250m', got a boolean")
    if isinstance(value, Fraction):
        return value
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise QuantityError(f"{field}: expected a finite quantity, got {value!r}")
        return Fraction(str(value))
    if not isinstance(value, str):
        raise QuantityError(f"{field}: expected a quantity string such as '10Gi', got {type(value).__name__}")
    m = _RE.match(value.strip())
    if not m or value != value.strip():
        raise QuantityError(f"{field}: {value!r} is not a quantity (expected e.g. '10Gi', '250m', '1.5', '1e3')")
    sign, number, suffix = m.group(1), m.group(2), m.group(3) or ""
    amount = Fraction(number)
    if suffix in _BINARY:
        amount *= _BINARY[suffix]
    elif suffix in _DECIMAL:
        amount *= _DECIMAL[suffix]
    else:
        amount *= Fraction(10) ** int(suffix[1:])
    return -amount if sign == "-" else amount


def format_quantity(value: Fraction | int) -> str:
    """Canonical text for a quantity: binary suffix for exact multiples of 1Ki, else plain or milli."""
    value = Fraction(value)
    if value.denominator == 1:
        n = value.numerator
        if n != 0 and abs(n) % 1024 == 0:
            for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
                unit = _BINARY[suffix]
                if n % unit == 0:
                    return f"{n // unit}{suffix}"
        return str(n)
    milli = value * 1000
    if milli.denominator == 1:
        return f"{milli.numerator}m"
    nano = value * 10**9
    if nano.denominator == 1:
        return f"{nano.numerator}n"
    # Kubernetes rounds sub-nano precision up; do the same.
    return f"{-((-nano.numerator) // nano.denominator)}n"
