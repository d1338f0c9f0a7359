"""CEL device selectors with Kubernetes semantics, on Google's CEL runtime (`cel-expr-python`).

Why it looks like this:
- Quantity and Semver must be real CEL types so that `quantity("1Gi").isGreaterThan("x")` is a
  compile error, as in Kubernetes. They are protobuf messages declared in a private descriptor
  pool. The runtime dispatches member functions by value kind, not message type, so each
  shared name (compareTo, isGreaterThan, isLessThan) has typed declarations for the checker and
  one Python implementation that dispatches on the message class.
- The runtime returns errors as values (never raises): every result is checked; a non-bool is
  an error too. Errors are returned as text for the allocator to report on the claim.
- An unknown domain must read as an empty map, but the runtime rejects dict subclasses with
  defaults, so the domains an expression names are pre-filled with empty maps for each device.
- Compilation is cached per expression text and results per (expression, device) on the device
  itself (`DeviceView.cel_cache`), so a selector costs one evaluation per device per inventory.
"""

from __future__ import annotations

import re
import threading
from fractions import Fraction
from functools import lru_cache
from typing import Any

from cel_expr_python import cel
from cel_expr_python.ext import ext_bindings, ext_strings
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from driver.dra.quantity import format_quantity, parse_quantity
from driver.dra.semver import Semver, parse_semver

MAX_EXPRESSION_BYTES = 10 * 1024  # API server limit on a selector expression (FACTS §4)
# The C++ runtime's thread-safety is not documented; the controller calls from several threads.
# Compilation is cached and evaluation memoised per device, so serialising both costs little.
_LOCK = threading.RLock()
MAX_COST = 1_000_000  # Kubernetes' per-expression CEL cost limit
MAP_BOUND = 32  # a device has at most 32 attributes + capacities: the most any map can iterate
_INT64 = 2**63


class CelError(ValueError):
    """An expression that does not compile (syntax, types, size)."""


def _build_pool() -> tuple[descriptor_pool.DescriptorPool, type, type]:
    fdp = descriptor_pb2.FileDescriptorProto(name="gpudra/cel_types.proto", package="gpudra.cel", syntax="proto3")
    for name in ("Quantity", "Semver"):
        msg = fdp.message_type.add(name=name)
        msg.field.add(name="value", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                      label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    q = message_factory.GetMessageClass(pool.FindMessageTypeByName("gpudra.cel.Quantity"))
    s = message_factory.GetMessageClass(pool.FindMessageTypeByName("gpudra.cel.Semver"))
    return pool, q, s


_POOL, QuantityMsg, SemverMsg = _build_pool()
_QT = cel.Type("gpudra.cel.Quantity")
_ST = cel.Type("gpudra.cel.Semver")
_B, _I, _S, _D = cel.Type.BOOL, cel.Type.INT, cel.Type.STRING, cel.Type.DOUBLE


def quantity_value(q: Fraction) -> Any:
    """A Fraction as the CEL Quantity value (canonical, so == is numeric equality)."""
    return QuantityMsg(value=str(q))


def semver_value(v: Semver) -> Any:
    return SemverMsg(value=str(v))


@lru_cache(maxsize=65536)
def _frac(text: str) -> Fraction:
    return Fraction(text)


@lru_cache(maxsize=4096)
def _sem(text: str) -> Semver:
    return parse_semver(text)


def _q(m: Any) -> Fraction:
    return _frac(m.value)


def _to_int64(f: Fraction, what: str) -> int:
    if f.denominator != 1:
        raise ValueError(f"{what}: quantity {format_quantity(f)} is not an integer")
    if not -_INT64 <= f.numerator < _INT64:
        raise ValueError(f"{what}: quantity {format_quantity(f)} overflows int64")
    return f.numerator


def _cmp(a: Any, b: Any) -> int:
    if isinstance(a, QuantityMsg) and isinstance(b, QuantityMsg):
        x, y = _q(a), _q(b)
        return (x > y) - (x < y)
    if isinstance(a, SemverMsg) and isinstance(b, SemverMsg):
        return _sem(a.value).compare(_sem(b.value))
    raise ValueError(f"compareTo: cannot compare {type(a).__name__} with {type(b).__name__}")


def _semver_of(text: str, normalize: bool = False) -> Any:
    if normalize:
        text = text[1:] if text[:1] in ("v", "V") else text
        m = re.match(r"^([0-9.]*)(.*)$", text)
        core, rest = (m.group(1), m.group(2)) if m else ("", text)
        parts = [p.lstrip("0") or "0" for p in core.split(".") if p != ""]
        while len(parts) < 3:
            parts.append("0")
        text = ".".join(parts) + rest
    return semver_value(parse_semver(text, "semver()"))


def _is_semver(text: str, normalize: bool = False) -> bool:
    try:
        _semver_of(text, normalize)
        return True
    except (ValueError, AttributeError):
        return False


def _is_quantity(text: str) -> bool:
    try:
        parse_quantity(text)
        return True
    except ValueError:
        return False


def _decl(name: str, *overloads: tuple[str, Any, list[Any], bool]) -> cel.FunctionDecl:
    return cel.FunctionDecl(
        name, [cel.Overload(oid, ret, params, is_member=member) for oid, ret, params, member in overloads])


_FUNCTIONS = [
    _decl("quantity", ("quantity_string", _QT, [_S], False)),
    _decl("isQuantity", ("is_quantity_string", _B, [_S], False)),
    _decl("semver", ("semver_string", _ST, [_S], False), ("semver_string_bool", _ST, [_S, _B], False)),
    _decl("isSemver", ("is_semver_string", _B, [_S], False), ("is_semver_string_bool", _B, [_S, _B], False)),
    _decl("compareTo", ("quantity_compareTo", _I, [_QT, _QT], True), ("semver_compareTo", _I, [_ST, _ST], True)),
    _decl("isGreaterThan", ("quantity_isGreaterThan", _B, [_QT, _QT], True),
          ("semver_isGreaterThan", _B, [_ST, _ST], True)),
    _decl("isLessThan", ("quantity_isLessThan", _B, [_QT, _QT], True), ("semver_isLessThan", _B, [_ST, _ST], True)),
    _decl("add", ("quantity_add", _QT, [_QT, _QT], True), ("quantity_add_int", _QT, [_QT, _I], True)),
    _decl("sub", ("quantity_sub", _QT, [_QT, _QT], True), ("quantity_sub_int", _QT, [_QT, _I], True)),
    _decl("asInteger", ("quantity_asInteger", _I, [_QT], True)),
    _decl("asApproximateFloat", ("quantity_asApproximateFloat", _D, [_QT], True)),
    _decl("sign", ("quantity_sign", _I, [_QT], True)),
    _decl("isInteger", ("quantity_isInteger", _B, [_QT], True)),
    _decl("major", ("semver_major", _I, [_ST], True)),
    _decl("minor", ("semver_minor", _I, [_ST], True)),
    _decl("patch", ("semver_patch", _I, [_ST], True)),
]

# One implementation per runtime signature (message kinds are not distinguished at runtime).
_IMPLS = {
    "quantity_string": lambda s: quantity_value(parse_quantity(s, "quantity()")),
    "is_quantity_string": _is_quantity,
    "semver_string": lambda s: _semver_of(s),
    "semver_string_bool": _semver_of,
    "is_semver_string": lambda s: _is_semver(s),
    "is_semver_string_bool": _is_semver,
    "quantity_compareTo": _cmp,
    "quantity_isGreaterThan": lambda a, b: _cmp(a, b) > 0,
    "quantity_isLessThan": lambda a, b: _cmp(a, b) < 0,
    "quantity_add": lambda a, b: quantity_value(_q(a) + _q(b)),
    "quantity_add_int": lambda a, b: quantity_value(_q(a) + b),
    "quantity_sub": lambda a, b: quantity_value(_q(a) - _q(b)),
    "quantity_sub_int": lambda a, b: quantity_value(_q(a) - b),
    "quantity_asInteger": lambda a: _to_int64(_q(a), "asInteger"),
    "quantity_asApproximateFloat": lambda a: float(_q(a)),
    "quantity_sign": lambda a: (_q(a) > 0) - (_q(a) < 0),
    "quantity_isInteger": lambda a: _q(a).denominator == 1 and -_INT64 <= _q(a).numerator < _INT64,
    "semver_major": lambda a: _sem(a.value).major,
    "semver_minor": lambda a: _sem(a.value).minor,
    "semver_patch": lambda a: _sem(a.value).patch,
}

_ENV = cel.NewEnv(
    _POOL,
    variables={"device": cel.Type.DYN},
    extensions=[ext_strings.ExtStrings(), ext_bindings.ExtBindings()],
    functions=_FUNCTIONS,
    function_impls=_IMPLS,
)

# Domains an expression names: `attributes["x"]`, `capacity['x']`, and any dotted string literal
# (so `cel.bind(d, "gpu.nvidia.com", device.attributes[d])` sees an empty map too).
_INDEXED = re.compile(r"""(?:attributes|capacity)\s*\[\s*(?:"([^"\\]*)"|'([^'\\]*)')\s*\]""")
_DOTTED = re.compile(r"""["']([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)["']""")


class Selector:
    """A compiled selector expression plus the domains it names."""

    __slots__ = ("expression", "program", "domains")

    def __init__(self, expression: str, program: Any, domains: frozenset[str]) -> None:
        self.expression = expression
        self.program = program
        self.domains = domains

    def __repr__(self) -> str:
        return f"Selector({self.expression!r})"


@lru_cache(maxsize=4096)
def compile_selector(expression: str) -> Selector:
    """Compile (cached). Raises CelError with the checker's message for a bad expression."""
    if not isinstance(expression, str) or not expression.strip():
        raise CelError("selector expression: expected a non-empty CEL expression")
    if len(expression.encode()) > MAX_EXPRESSION_BYTES:
        size = len(expression.encode())
        raise CelError(f"selector expression: {size} bytes, more than the limit of {MAX_EXPRESSION_BYTES}")
    try:
        with _LOCK:
            program = _ENV.compile(expression)
    except RuntimeError as exc:
        message = str(exc)
        if "cannot be the range of a comprehension" not in message:
            raise CelError(f"selector expression {expression!r} does not compile: {_clean(message)}") from None
        # cel-expr-python 0.1.3's checker refuses a comprehension over a map reached through a
        # dyn value (`device.attributes['d'].exists(...)`), which Kubernetes accepts. Such an
        # expression is compiled unchecked: the runtime is dynamically typed, so it evaluates the
        # same, and type errors surface as evaluation errors (reported on the claim) instead.
        try:
            with _LOCK:
                program = _ENV.compile(expression, disable_check=True)
        except RuntimeError as exc2:
            raise CelError(f"selector expression {expression!r} does not compile: {_clean(str(exc2))}") from None
    cost = estimate_cost(expression)
    if cost > MAX_COST:
        raise CelError(f"selector expression {expression!r}: estimated cost {cost} exceeds the limit of {MAX_COST}")
    rtype = program.return_type()
    if rtype != cel.Type.BOOL and rtype != cel.Type.DYN:
        raise CelError(f"selector expression {expression!r} must evaluate to bool, not {rtype.name()}")
    domains = {a or b for a, b in _INDEXED.findall(expression)} | set(_DOTTED.findall(expression))
    return Selector(expression, program, frozenset(domains))


_MACRO = re.compile(r"\.\s*(all|exists_one|exists|map|filter)\s*\(")


def _blank_strings(expr: str) -> str:
    """The expression with string literal contents blanked, so brackets inside them are ignored."""
    out, i, n = [], 0, len(expr)
    while i < n:
        ch = expr[i]
        if ch in "'\"":
            j = i + 1
            while j < n and expr[j] != ch:
                j += 2 if expr[j] == "\\" else 1
            out.append(ch + " " * (min(j, n) - i - 1) + (ch if j < n else ""))
            i = j + 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _close(text: str, start: int, open_: str, close: str, step: int) -> int:
    depth, i = 0, start
    while 0 <= i < len(text):
        if text[i] == open_:
            depth += 1
        elif text[i] == close:
            depth -= 1
            if depth == 0:
                return i
        i += step
    return i


def estimate_cost(expression: str) -> int:
    """A static worst-case estimate of evaluation cost, standing in for Kubernetes' cost limit.

    The runtime has no cost tracking, and only comprehensions can make a selector expensive: each
    macro iterates at most its receiver's size (a list literal's length, else a device map, ≤ 32),
    nested macros multiply. The estimate is the sum over macros of the product of the bounds of
    the macros enclosing it, plus the expression's length for everything else.
    """
    text = _blank_strings(expression)
    spans = []  # (start of arguments, end of arguments, bound)
    for m in _MACRO.finditer(text):
        args_end = _close(text, m.end() - 1, "(", ")", 1)
        recv_end = m.start() - 1
        while recv_end >= 0 and text[recv_end].isspace():
            recv_end -= 1
        bound = MAP_BOUND
        if recv_end >= 0 and text[recv_end] == "]":
            recv_start = _close(text, recv_end, "]", "[", -1)
            inner = text[recv_start + 1:recv_end]
            depth, items = 0, 1 if inner.strip() else 0
            for ch in inner:
                depth += ch in "[({"
                depth -= ch in "])}"
                items += ch == "," and depth == 0
            # A list literal bounds the iteration; `x[...]` indexing (no literal) stays a map.
            before = text[:recv_start].rstrip()
            if not before or before[-1] in "(,[&|!?:=<>+-*/%":
                bound = max(items, 1)
        spans.append((m.end(), args_end, bound))
    cost = len(expression)
    for start, end, bound in spans:
        product = bound
        for s2, e2, b2 in spans:
            if s2 < start and end <= e2:
                product *= b2
        cost += product
    return cost


def _clean(message: str) -> str:
    return message.replace("INVALID_ARGUMENT: ", "").replace(" [INVALID_ARGUMENT]", "").strip()


def device_input(driver: str, attributes: dict[str, dict[str, Any]], capacity: dict[str, dict[str, Fraction]],
                 allow_multiple: bool) -> dict[str, Any]:
    """The `device` variable for one device (typed values converted to CEL values)."""
    return {
        "driver": driver,
        "attributes": {
            dom: {k: semver_value(v) if isinstance(v, Semver) else v for k, v in ids.items()}
            for dom, ids in attributes.items()
        },
        "capacity": {dom: {k: quantity_value(v) for k, v in ids.items()} for dom, ids in capacity.items()},
        "allowMultipleAllocations": allow_multiple,
    }


def evaluate(selector: Selector, device: dict[str, Any]) -> bool | str:
    """True/False, or the error text when evaluation fails or yields a non-bool."""
    attrs, caps = device["attributes"], device["capacity"]
    missing = [d for d in selector.domains if d not in attrs or d not in caps]
    if missing:
        device = dict(device)
        device["attributes"] = {**{d: {} for d in missing}, **attrs}
        device["capacity"] = {**{d: {} for d in missing}, **caps}
    with _LOCK:
        result = selector.program.eval(data={"device": device})
    kind = result.type()
    if kind == cel.Type.BOOL:
        return bool(result.value())
    if kind == cel.Type.ERROR:
        return f"CEL error in {selector.expression!r}: {result.value()}"
    return f"CEL expression {selector.expression!r} returned {kind.name()}, not bool"


def matches(selector: Selector, view: Any) -> bool | str:
    """Cached evaluation against a DeviceView-like object (needs cel_cache / cel_input slots)."""
    cache = view.cel_cache
    hit = cache.get(selector.expression)
    if hit is None:
        if view.cel_input is None:
            view.cel_input = device_input(view.driver, view.attributes, view.capacity, view.allow_multiple)
        hit = cache[selector.expression] = evaluate(selector, view.cel_input)
    return hit
