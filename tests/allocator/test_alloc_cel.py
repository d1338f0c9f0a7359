"""CEL selector environment: Kubernetes quantity/semver libraries, error semantics, caching."""

from __future__ import annotations

from fractions import Fraction

import pytest

from driver.dra.cel import CelError, compile_selector, device_input, estimate_cost, evaluate, matches
from driver.dra.semver import SemverError, parse_semver

D = "gpu.nvidia.com"
DEVICE = device_input(
    D,
    {D: {"type": "gpu", "index": 3, "mig": False, "driverVersion": parse_semver("550.54.15"),
         "productName": "NVIDIA A100-SXM4-80GB"},
     "resource.kubernetes.io": {"pcieRoot": "pci0000:00"}},
    {D: {"memory": Fraction(80 * 2**30), "compute": Fraction(1, 4)}},
    True,
)


def ev(expr: str) -> bool | str:
    return evaluate(compile_selector(expr), DEVICE)


@pytest.mark.parametrize("expr", [
    "device.driver == 'gpu.nvidia.com'",
    "device.allowMultipleAllocations",
    f"device.attributes['{D}'].index == 3 && !device.attributes['{D}'].mig",
    f"device.capacity['{D}'].memory.compareTo(quantity('40Gi')) >= 0",
    f"device.capacity['{D}'].memory.isGreaterThan(quantity('79Gi'))",
    f"device.capacity['{D}'].compute.isLessThan(quantity('500m'))",
    f"device.capacity['{D}'].compute == quantity('250m')",
    "quantity('1Gi') == quantity('1024Mi')",
    f"device.capacity['{D}'].compute.add(quantity('750m')).asInteger() == 1",
    f"device.capacity['{D}'].compute.add(1).asApproximateFloat() == 1.25",
    f"device.capacity['{D}'].compute.sub(quantity('1')).sign() == -1",
    "quantity('2').sub(1).isInteger() && !quantity('1.5').isInteger()",
    "isQuantity('10Gi') && !isQuantity('ten')",
    f"device.attributes['{D}'].driverVersion.isGreaterThan(semver('550.9.0'))",
    f"device.attributes['{D}'].driverVersion.isLessThan(semver('550.100.0'))",
    f"device.attributes['{D}'].driverVersion.compareTo(semver('550.54.15')) == 0",
    f"device.attributes['{D}'].driverVersion.major() == 550 && "
    f"device.attributes['{D}'].driverVersion.minor() == 54 && device.attributes['{D}'].driverVersion.patch() == 15",
    "semver('1.0.0-rc.1').isLessThan(semver('1.0.0'))",
    "isSemver('1.2.3') && !isSemver('1.2') && isSemver('v1.2', true) && semver('v1.2', true).minor() == 2",
    f"device.attributes['{D}'].productName.lowerAscii().contains('a100')",
    f"device.attributes['{D}'].productName.matches('^NVIDIA A100')",
    f"device.attributes['{D}'].productName.split('-')[1] == 'SXM4'",
    f"cel.bind(a, device.attributes['{D}'], a.type == 'gpu' && a.index > 2)",
    "device.attributes['resource.kubernetes.io'].pcieRoot.startsWith('pci')",
    "device.attributes['unknown.example.com'].size() == 0 && device.capacity['unknown.example.com'].size() == 0",
    "!('x' in device.attributes['other.example.com'])",
    "cel.bind(d, 'late.example.com', device.attributes[d].size() == 0)",
])
def test_kubernetes_cel_library(expr):
    assert ev(expr) is True


@pytest.mark.parametrize("expr, fragment", [
    (f"device.attributes['{D}'].noSuch == 'x'", 'Key not found in map : "noSuch"'),
    (f"device.capacity['{D}'].noSuch.sign() == 1", 'Key not found in map : "noSuch"'),
    ("quantity('not a quantity').sign() == 1", "'not a quantity' is not a quantity"),
    ("semver('1.2').major() == 1", "'1.2' is not a semantic version"),
    ("quantity('1.5').asInteger() == 1", "quantity 1500m is not an integer"),
    ("quantity('10E').asInteger() > 0", "overflows int64"),
    (f"device.attributes['{D}'].type", "returned STRING, not bool"),
])
def test_runtime_errors_are_reported_not_false(expr, fragment):
    result = ev(expr)
    assert isinstance(result, str) and fragment in result, result


def test_cost_estimate_allows_ordinary_comprehensions():
    assert estimate_cost("device.driver == 'x'") == len("device.driver == 'x'")
    three = f"device.attributes['{D}'].all(a, device.attributes['{D}'].exists(b, a == b && '(' != ')'))"
    assert estimate_cost(three) == len(three) + 32 + 32 * 32
    assert estimate_cost("[1, [2, 3], 4].exists(x, x == 4)") == len("[1, [2, 3], 4].exists(x, x == 4)") + 3
    assert ev(three) is True


def test_comprehension_over_a_domain_map_compiles_and_type_errors_still_surface():
    # The checker of cel-expr-python refuses these; they are compiled unchecked (see cel.py).
    assert ev(f"device.attributes['{D}'].exists(k, k == 'productName')") is True
    wrong = ev(f"device.attributes['{D}'].all(k, k != 'z') && quantity('1').isGreaterThan('x')")
    assert isinstance(wrong, str) and "isGreaterThan" in wrong


def test_errors_absorbed_by_logical_operators_like_cel():
    assert ev(f"device.driver == 'x' && device.attributes['{D}'].noSuch == 1") is False
    assert ev(f"device.attributes['{D}'].noSuch == 1 || true") is True


@pytest.mark.parametrize("expr, fragment", [
    ("quantity('1').isGreaterThan('x')", "no matching overload"),
    ("semver('1.0.0').isGreaterThan(quantity('1'))", "no matching overload"),
    ("device.driver ==", "Syntax error"),
    ("1 + 2", "must evaluate to bool, not INT"),
    ("", "expected a non-empty CEL expression"),
    ("true || " * 1400 + "true", "more than the limit of 10240"),
    ("[" + ",".join(["1"] * 1500) + "].all(x, [" + ",".join(["2"] * 1500) + "].all(y, x != y))",
     "exceeds the limit of 1000000"),
    (f"device.attributes['{D}'].all(a, device.attributes['{D}'].all(b, device.attributes['{D}'].all(c, "
     f"device.attributes['{D}'].all(d, a != d))))", "exceeds the limit of 1000000"),
])
def test_compile_errors(expr, fragment):
    with pytest.raises(CelError) as err:
        compile_selector(expr)
    assert fragment in str(err.value)


def test_results_are_cached_per_expression_and_device():
    class View:
        driver, attributes, capacity, allow_multiple = D, {D: {"type": "gpu"}}, {}, False
        cel_cache: dict = {}
        cel_input = None

    view = View()
    sel = compile_selector(f"device.attributes['{D}'].type == 'gpu'")
    assert matches(sel, view) is True
    assert view.cel_cache == {sel.expression: True}
    view.attributes = {D: {"type": "mig"}}  # a stale view keeps its answer: inventories are rebuilt, not edited
    assert matches(sel, view) is True
    assert compile_selector(sel.expression) is sel


def test_semver_ordering_and_errors():
    versions = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
                "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.10.0", "2.0.0"]
    parsed = [parse_semver(v) for v in versions]
    assert sorted(reversed(parsed)) == parsed
    assert parse_semver("1.0.0+build.5") == parse_semver("1.0.0")
    assert str(parse_semver("1.2.3-rc.1+b")) == "1.2.3-rc.1+b"
    for bad in ("1.2", "01.2.3", "1.2.3-", "v1.2.3", "1.2.3-01"):
        with pytest.raises(SemverError, match="driverVersion"):
            parse_semver(bad, "driverVersion")
