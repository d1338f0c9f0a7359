from fractions import Fraction

import pytest

from driver.dra.quantity import QuantityError, format_quantity, parse_quantity


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10Gi", Fraction(10 * 2**30)),
        ("250m", Fraction(1, 4)),
        ("1.5", Fraction(3, 2)),
        ("1e3", Fraction(1000)),
        ("2k", Fraction(2000)),
        ("-1Mi", Fraction(-(2**20))),
        (".5", Fraction(1, 2)),
    ],
)
def test_parse(text: str, expected: Fraction) -> None:
    assert parse_quantity(text) == expected


@pytest.mark.parametrize("bad", ["", "10 Gi", "Gi", "1.2.3", "10gi", "abc", " 1"])
def test_parse_rejects_with_field_name(bad: str) -> None:
    with pytest.raises(QuantityError, match="capacity.memory"):
        parse_quantity(bad, field="capacity.memory")


def test_format_round_trip() -> None:
    for text in ["80Gi", "250m", "7", "1Ki", "0", "3n"]:
        assert format_quantity(parse_quantity(text)) == text


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan"), True, None, [1]])
def test_parse_rejects_non_quantities(bad: object) -> None:
    with pytest.raises(QuantityError, match="capacity.compute"):
        parse_quantity(bad, field="capacity.compute")  # type: ignore[arg-type]
