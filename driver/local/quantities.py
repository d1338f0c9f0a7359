"""Resource quantities in the canonical text kube-apiserver writes back.

The apiserver decodes every quantity into a `resource.Quantity` and encodes it with its canonical
`String()`, so a client that sends `cpu: 1` (a JSON number), `"1000m"` or `"0.5"` reads back
`"1"`, `"1"` and `"500m"`. Clients and controllers compare what they wrote with what they read
(a pod spec is immutable, so a read-modify-write of a pod that kept `1` instead of `"1"` would be
refused as a spec change); the local server therefore rewrites quantities the same way on every
write.

Canonical form keeps the format the value was written in: binary suffixes (Ki, Mi, ...) stay
binary when the value is a whole multiple of 1024 of at least 1Ki, decimal SI (m, k, M, ...)
and exponent (`1e3`) forms use the largest exponent (a multiple of 3) that leaves an integer
mantissa. Precision below one nano unit is rounded up, as `resource.ParseQuantity` does.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from driver.dra.quantity import QuantityError, parse_quantity

__all__ = ["QuantityError", "canonical", "canonical_map", "canonicalize_key", "QUANTITY_PATTERN"]

# The message kube-apiserver gives for a quantity that does not parse.
QUANTITY_PATTERN = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_EXPONENT = re.compile(r"[eE][+-]?\d+$")
_BINARY_SUFFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
_SI_SUFFIXES = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}
_NANO = Fraction(1, 10**9)


def _format_of(text: str) -> str:
    if text.endswith("i"):
        return "binary"
    if _EXPONENT.search(text):
        return "exponent"
    return "decimal"


def _round_up_to_nano(value: Fraction) -> Fraction:
    scaled = value / _NANO
    if scaled.denominator == 1:
        return value
    magnitude = -((-abs(scaled.numerator)) // scaled.denominator)  # ceil of |scaled|
    return Fraction(magnitude if value > 0 else -magnitude) * _NANO


def _decimal(value: Fraction, fmt: str) -> str:
    # value has at most nano precision: an integer mantissa times 10^exponent, exponent >= -9
    exponent = -9
    mantissa = value / _NANO
    assert mantissa.denominator == 1
    n = mantissa.numerator
    while n % 10 == 0:
        n //= 10
        exponent += 1
    shift = exponent % 3
    n, exponent = n * 10**shift, exponent - shift
    if fmt == "decimal" and exponent in _SI_SUFFIXES:
        return f"{n}{_SI_SUFFIXES[exponent]}"
    return f"{n}e{exponent}" if exponent else str(n)


def _binary(value: Fraction) -> str | None:
    if value.denominator != 1 or -1024 < value < 1024:
        return None  # shown in decimal SI so that nothing is rounded
    n, power = value.numerator, 0
    while n % 1024 == 0 and power < len(_BINARY_SUFFIXES) - 1:
        n //= 1024
        power += 1
    return f"{n}{_BINARY_SUFFIXES[power]}"


def canonical(value: Any, field: str = "quantity") -> str:
    """The canonical text of a quantity given as a string or a JSON number (QuantityError if invalid)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise QuantityError(f"{field}: quantities must match the regular expression '{QUANTITY_PATTERN}'")
    text = value if isinstance(value, str) else repr(value)
    try:
        amount = parse_quantity(text, field)
    except QuantityError:
        raise QuantityError(f"{field}: quantities must match the regular expression '{QUANTITY_PATTERN}'") from None
    if amount == 0:
        return "0"
    amount = _round_up_to_nano(amount)
    fmt = _format_of(text)
    if fmt == "binary":
        binary = _binary(amount)
        if binary is not None:
            return binary
        fmt = "decimal"
    return _decimal(amount, fmt)


def canonical_map(values: Any, field: str) -> Any:
    """A resource list (name -> quantity) with each quantity canonical; anything else as given."""
    if not isinstance(values, dict):
        return values
    return {name: canonical(q, f"{field}[{name}]") for name, q in values.items()}


def canonicalize_key(parent: dict[str, Any], key: str, field: str) -> None:
    """Make `parent[key]` (a resource list) canonical, writing only when something changes.

    Stored objects are shared with the request being processed and with watchers; a list that is
    already canonical (every stored one) is left untouched so that it is never written in place.
    """
    if key not in parent:
        return
    fixed = canonical_map(parent[key], field)
    if fixed != parent[key]:
        parent[key] = fixed
