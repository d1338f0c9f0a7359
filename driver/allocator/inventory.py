"""What one node offers: ResourceSlice dicts parsed once into slotted device views.

The scheduler tries every pod against many nodes, so parsing API dicts on that path would cost
milliseconds per attempt. Slices are parsed here once per change into `DeviceView`s whose
attributes, capacities and counters are already typed (int/bool/str/Semver, Fraction), and the
allocator only reads them. Pools are taken as upstream does (FACTS §6): only the newest
generation counts, and a pool whose slice count at that generation is short is skipped whole,
because allocating from half a pool could hand out a device the driver has already withdrawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from fractions import Fraction
from typing import Any, Callable, Iterable, Mapping

from driver.dra.quantity import QuantityError, parse_quantity
from driver.dra.semver import Semver, SemverError, parse_semver

AttrValue = int | bool | str | Semver
DeviceKey = tuple[str, str, str]  # (driver, pool, device name)
# The search compares amounts millions of times; Fraction arithmetic costs ~2 µs an operation,
# ints ~30 ns. Amounts on the hot path are therefore ints in nano-units (exact: the API server
# keeps quantities at nano precision). Public fields stay Fraction.
UNIT = 10**9
CounterSetKey = tuple[str, str, str]  # (driver, pool, counter set name): sets are pool-scoped


def to_units(value: Fraction) -> int:
    """A quantity in nano-units, rounded up like the API server rounds sub-nano precision."""
    return _cached_units(value)


class SliceError(ValueError):
    """A ResourceSlice that cannot be read; the message names the slice and field."""


@dataclass(frozen=True, slots=True)
class Taint:
    """A device taint; only NoSchedule and NoExecute keep untolerating requests away."""

    key: str
    value: str
    effect: str


@dataclass(frozen=True, slots=True)
class RequestPolicy:
    """requestPolicy of one consumable capacity (ConsumableCapacity feature)."""

    default: Fraction | None = None
    valid_values: tuple[Fraction, ...] = ()  # sorted ascending
    min: Fraction | None = None
    max: Fraction | None = None
    step: Fraction | None = None

    def in_units(self) -> RequestPolicy:
        """The same policy in nano-units (ints), for the allocator's inner loop."""
        def u(v: Fraction | None) -> int | None:
            return None if v is None else to_units(v)
        return RequestPolicy(u(self.default), tuple(to_units(v) for v in self.valid_values),  # type: ignore[arg-type]
                             u(self.min), u(self.max), u(self.step))  # type: ignore[arg-type]


@dataclass(slots=True, eq=False)
class DeviceView:
    """One published device, typed. Identity (`eq=False`) makes it a cheap dict key.

    `attributes` and `capacity` are keyed by domain then id, with bare names moved into the
    driver's domain, exactly the shape CEL's `device.attributes[domain][id]` sees.
    `capacity_keys` maps "domain/id" back to the key as the slice wrote it, which is what
    `consumedCapacity` in a result must use.
    """

    driver: str
    pool: str
    name: str
    node: str
    attributes: dict[str, dict[str, AttrValue]]
    capacity: dict[str, dict[str, Fraction]]
    capacity_keys: dict[str, str]
    policies: dict[str, RequestPolicy]  # by qualified capacity name
    consumes: tuple[tuple[CounterSetKey, dict[str, Fraction]], ...]
    taints: tuple[Taint, ...]
    allow_multiple: bool
    index: int
    all_nodes: bool = False
    # The slice's (or, with perDeviceNodeSelection, the device's) nodeSelector; None when the
    # device is node-local or for all nodes.
    node_selector: Mapping[str, Any] | None = None
    key: DeviceKey = ("", "", "")
    # Seen by several nodes (allNodes / nodeSelector): its usage is global, not per node.
    shared_pool: bool = False
    cap_units: dict[str, int] = field(default_factory=dict)  # qualified name -> nano-units
    policy_units: dict[str, RequestPolicy] = field(default_factory=dict)  # `policies` in nano-units
    consumes_units: tuple[tuple[CounterSetKey, tuple[tuple[str, int], ...]], ...] = ()
    # Per-device memo of what a request shape consumes here (capacity.py).
    consume_cache: dict[Any, Any] = field(default_factory=dict)
    # Per-device memo of selector results: expression -> True/False/error text. Filled by cel.py.
    cel_cache: dict[str, bool | str] = field(default_factory=dict)
    cel_input: Any = None

    def __post_init__(self) -> None:
        self.key = (self.driver, self.pool, self.name)
        self.shared_pool = self.all_nodes or self.node_selector is not None
        self.cap_units = {f"{dom}/{k}": to_units(v) for dom, ids in self.capacity.items() for k, v in ids.items()}
        self.policy_units = {qn: p.in_units() for qn, p in self.policies.items()}
        self.consumes_units = tuple((cset, tuple((n, to_units(a)) for n, a in amounts.items()))
                                    for cset, amounts in self.consumes)

    def attribute(self, qualified: str) -> AttrValue | None:
        """Value of a fully qualified attribute ("gpu.nvidia.com/parentUUID"), or None."""
        domain, _, ident = qualified.rpartition("/")
        return self.attributes.get(domain or self.driver, {}).get(ident)

    def capacity_value(self, qualified: str) -> Fraction | None:
        domain, _, ident = qualified.rpartition("/")
        return self.capacity.get(domain or self.driver, {}).get(ident)

    def __repr__(self) -> str:
        return f"DeviceView({self.driver}/{self.pool}/{self.name})"


@dataclass(slots=True)
class NodeInventory:
    """Every device usable on one node, in stable (driver, pool, slice order) order.

    Built once per slice change and then only read; caches keyed by selector sets live here so
    that they die with the inventory they describe.
    """

    node: str
    devices: list[DeviceView] = field(default_factory=list)
    counters: dict[CounterSetKey, dict[str, Fraction]] = field(default_factory=dict)
    counter_units: dict[CounterSetKey, dict[str, int]] = field(default_factory=dict)
    by_driver: dict[str, list[DeviceView]] = field(default_factory=dict)
    by_key: dict[DeviceKey, DeviceView] = field(default_factory=dict)
    skipped_pools: list[str] = field(default_factory=list)
    match_cache: dict[Any, Any] = field(default_factory=dict)

    def add(self, device: DeviceView) -> None:
        device.index = len(self.devices)
        self.devices.append(device)
        self.by_driver.setdefault(device.driver, []).append(device)
        self.by_key[device.key] = device


def qualify(name: str, driver: str) -> str:
    """A bare attribute/capacity name belongs to the driver's domain."""
    return name if "/" in name else f"{driver}/{name}"


def _split(name: str, driver: str) -> tuple[str, str]:
    domain, _, ident = name.rpartition("/")
    return (domain or driver), ident


def _attr_value(raw: Any, where: str) -> AttrValue:
    if not isinstance(raw, dict):
        raise SliceError(f"{where}: expected an object with one of int/bool/string/version")
    present = [k for k in ("int", "bool", "string", "version") if k in raw and raw[k] is not None]
    if len(present) != 1:
        raise SliceError(f"{where}: expected exactly one of int/bool/string/version, got {sorted(raw)}")
    kind = present[0]
    value = raw[kind]
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise SliceError(f"{where}.int: expected an integer, got {value!r}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise SliceError(f"{where}.bool: expected true/false, got {value!r}")
        return value
    if kind == "string":
        if not isinstance(value, str):
            raise SliceError(f"{where}.string: expected a string, got {value!r}")
        return value
    try:
        return parse_semver(value, f"{where}.version")
    except SemverError as exc:
        raise SliceError(str(exc)) from None


@lru_cache(maxsize=16384)
def _cached_quantity(raw: str | int) -> Fraction:
    return parse_quantity(raw)


@lru_cache(maxsize=16384)
def _cached_units(value: Fraction) -> int:
    return -((-value.numerator * UNIT) // value.denominator)


def _quantity(raw: Any, where: str) -> Fraction:
    # Slices repeat the same few quantities ("1", "10Gi") thousands of times: parse each once.
    try:
        if type(raw) is str or type(raw) is int:
            try:
                return _cached_quantity(raw)
            except QuantityError:
                pass
        return parse_quantity(raw, where)
    except QuantityError as exc:
        raise SliceError(str(exc)) from None


def _policy(raw: Any, where: str) -> RequestPolicy | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise SliceError(f"{where}: expected an object")
    default = _quantity(raw["default"], f"{where}.default") if raw.get("default") is not None else None
    values: tuple[Fraction, ...] = ()
    lo = hi = step = None
    if raw.get("validValues"):
        values = tuple(sorted(_quantity(v, f"{where}.validValues[{i}]") for i, v in enumerate(raw["validValues"])))
    rng = raw.get("validRange")
    if rng:
        if values:
            raise SliceError(f"{where}: validValues and validRange are mutually exclusive")
        lo = _quantity(rng["min"], f"{where}.validRange.min") if rng.get("min") is not None else Fraction(0)
        hi = _quantity(rng["max"], f"{where}.validRange.max") if rng.get("max") is not None else None
        step = _quantity(rng["step"], f"{where}.validRange.step") if rng.get("step") is not None else None
        if step is not None and step <= 0:
            raise SliceError(f"{where}.validRange.step: must be positive")
    return RequestPolicy(default, values, lo, hi, step)


def parse_device(raw: Mapping[str, Any], driver: str, pool: str, node: str, where: str,
                 all_nodes: bool = False, node_selector: Mapping[str, Any] | None = None) -> DeviceView:
    """One `spec.devices[]` entry → DeviceView. Raises SliceError naming the field."""
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise SliceError(f"{where}.name: expected a non-empty device name")
    attributes: dict[str, dict[str, AttrValue]] = {}
    for key, value in (raw.get("attributes") or {}).items():
        domain, ident = _split(key, driver)
        attributes.setdefault(domain, {})[ident] = _attr_value(value, f"{where}.attributes[{key}]")
    capacity: dict[str, dict[str, Fraction]] = {}
    keys: dict[str, str] = {}
    policies: dict[str, RequestPolicy] = {}
    for key, value in (raw.get("capacity") or {}).items():
        domain, ident = _split(key, driver)
        if not isinstance(value, dict) or "value" not in value:
            raise SliceError(f"{where}.capacity[{key}]: expected an object with 'value'")
        capacity.setdefault(domain, {})[ident] = _quantity(value["value"], f"{where}.capacity[{key}].value")
        keys[f"{domain}/{ident}"] = key
        policy = _policy(value.get("requestPolicy"), f"{where}.capacity[{key}].requestPolicy")
        if policy is not None:
            policies[f"{domain}/{ident}"] = policy
    consumes = []
    for i, entry in enumerate(raw.get("consumesCounters") or []):
        cset = entry.get("counterSet")
        if not isinstance(cset, str) or not cset:
            raise SliceError(f"{where}.consumesCounters[{i}].counterSet: expected a counter set name")
        amounts = {
            cname: _quantity((c or {}).get("value"), f"{where}.consumesCounters[{i}].counters[{cname}].value")
            for cname, c in (entry.get("counters") or {}).items()
        }
        consumes.append(((driver, pool, cset), amounts))
    taints = []
    for i, t in enumerate(raw.get("taints") or []):
        effect = t.get("effect", "")
        if effect not in ("None", "NoSchedule", "NoExecute"):
            raise SliceError(f"{where}.taints[{i}].effect: expected None, NoSchedule or NoExecute, got {effect!r}")
        taints.append(Taint(str(t.get("key", "")), str(t.get("value", "") or ""), effect))
    return DeviceView(
        driver=driver, pool=pool, name=name, node=node, attributes=attributes, capacity=capacity,
        capacity_keys=keys, policies=policies, consumes=tuple(consumes), taints=tuple(taints),
        allow_multiple=bool(raw.get("allowMultipleAllocations")), index=-1, all_nodes=all_nodes,
        node_selector=node_selector,
    )


@dataclass(slots=True)
class _Pool:
    generation: int
    count: int
    slices: list[Mapping[str, Any]]


def _complete_pools(slices: Iterable[Mapping[str, Any]],
                    skipped: dict[str, list[str]]) -> dict[tuple[str, str], _Pool]:
    pools: dict[tuple[str, str], _Pool] = {}
    for s in slices:
        name = (s.get("metadata") or {}).get("name", "?") if isinstance(s, dict) else "?"
        spec = s.get("spec") if isinstance(s, dict) else None
        if not isinstance(spec, dict):
            raise SliceError(f"slice {name} spec: expected an object")
        pool = spec.get("pool")
        if not isinstance(spec.get("driver"), str) or not spec["driver"]:
            raise SliceError(f"slice {name} spec.driver: expected a driver name")
        if not isinstance(pool, dict) or not isinstance(pool.get("name"), str) or not pool["name"]:
            raise SliceError(f"slice {name} spec.pool.name: expected a pool name")
        gen, count = pool.get("generation", 0), pool.get("resourceSliceCount", 1)
        if isinstance(gen, bool) or not isinstance(gen, int) or gen < 0:
            raise SliceError(f"slice {name} spec.pool.generation: expected an integer >= 0, got {gen!r}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise SliceError(f"slice {name} spec.pool.resourceSliceCount: expected an integer >= 1, got {count!r}")
        key = (spec["driver"], pool["name"])
        current = pools.get(key)
        if current is None or gen > current.generation:
            pools[key] = _Pool(gen, count, [s])
        elif gen == current.generation:
            current.slices.append(s)
    complete = {}
    for key, p in pools.items():
        if len(p.slices) < p.count:
            msg = f"pool {key[0]}/{key[1]} incomplete: {len(p.slices)} of {p.count} slices at generation {p.generation}"
            for s in p.slices:
                skipped.setdefault((s.get("spec") or {}).get("nodeName") or "", []).append(msg)
        else:
            complete[key] = p
    return complete


def node_selector_matches(selector: Mapping[str, Any] | None, node_name: str, labels: Mapping[str, str]) -> bool:
    """core/v1 NodeSelector: terms are ORed, expressions within a term ANDed."""
    if not selector:
        return False
    for term in selector.get("nodeSelectorTerms") or []:
        ok = True
        for expr in term.get("matchExpressions") or []:
            ok = ok and _requirement(expr, labels.get(expr.get("key", "")), expr.get("key", "") in labels)
        for expr in term.get("matchFields") or []:
            is_name = expr.get("key") == "metadata.name"
            ok = ok and _requirement(expr, node_name if is_name else None, is_name)
        if ok and (term.get("matchExpressions") or term.get("matchFields")):
            return True
    return False


def _requirement(expr: Mapping[str, Any], value: str | None, present: bool) -> bool:
    op, values = expr.get("operator"), expr.get("values") or []
    if op == "In":
        return present and value in values
    if op == "NotIn":
        return not present or value not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and values:
        try:
            a, b = int(value or ""), int(values[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


_Where = tuple[list[str], bool, Mapping[str, Any] | None]


def _placement(obj: Mapping[str, Any], node_names: list[str],
               nodes: Mapping[str, Mapping[str, str]] | None) -> _Where:
    """Nodes a slice (or, with perDeviceNodeSelection, a device) is available on; whether that
    is all nodes; and the nodeSelector it was chosen by (both decide the allocation's nodeSelector)."""
    if obj.get("nodeName"):
        return [obj["nodeName"]], False, None
    if obj.get("allNodes"):
        return node_names, True, None
    selector = obj.get("nodeSelector")
    if selector:
        return [n for n in node_names if node_selector_matches(selector, n, (nodes or {})[n])], False, selector
    return [], False, None


def _unplaced(obj: Mapping[str, Any], node_names: list[str],
              nodes: Mapping[str, Mapping[str, str]] | None) -> _Where:
    """Like `_placement`, but every device not tied to one node goes to the pseudo-node ""."""
    if obj.get("nodeName"):
        return [], False, None
    if obj.get("allNodes"):
        return [""], True, None
    if obj.get("nodeSelector"):
        return [""], False, obj["nodeSelector"]
    return [], False, None


def selector_problem(selector: Any) -> str | None:
    """What is wrong with a slice's or device's nodeSelector (None: usable): an object with a
    non-empty list `nodeSelectorTerms` of objects whose requirement lists hold objects."""
    if not isinstance(selector, Mapping):
        return "expected an object with nodeSelectorTerms"
    terms = selector.get("nodeSelectorTerms")
    if not isinstance(terms, list) or not terms:
        return "nodeSelectorTerms: expected a non-empty list"
    for i, term in enumerate(terms):
        if not isinstance(term, Mapping):
            return f"nodeSelectorTerms[{i}]: expected an object"
        for kind in ("matchExpressions", "matchFields"):
            reqs = term.get(kind) or []
            if not isinstance(reqs, list) or not all(isinstance(r, Mapping) for r in reqs):
                return f"nodeSelectorTerms[{i}].{kind}: expected a list of requirements"
    return None


def slice_nodes(obj: Mapping[str, Any], nodes: Mapping[str, Mapping[str, str]]) -> set[str]:
    """Names among `nodes` ({name: labels}) that some device of the slice dict is available on,
    whatever its pool's completeness: what a change of this slice can affect."""
    spec = obj.get("spec") if isinstance(obj, Mapping) else None
    if not isinstance(spec, Mapping):
        return set()
    if spec.get("nodeSelector") and selector_problem(spec["nodeSelector"]):
        return set()  # a malformed slice reaches no node
    names = list(nodes)
    if not spec.get("perDeviceNodeSelection"):
        return set(_placement(spec, names, nodes)[0]) & set(names)
    out: set[str] = set()
    for d in spec.get("devices") or []:
        if isinstance(d, Mapping) and not (d.get("nodeSelector") and selector_problem(d["nodeSelector"])):
            out.update(_placement(d, names, nodes)[0])
    return out & set(names)


def build_inventories(slices: Iterable[Mapping[str, Any]],
                      nodes: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, NodeInventory]:
    """ResourceSlice dicts → {node name: NodeInventory}.

    `nodes` ({node name: labels}) is needed only to attach allNodes / nodeSelector pools (network
    attached devices) to nodes; without it those pools are ignored. A malformed slice raises
    SliceError naming it: the caller decides whether to drop it or fail.
    """
    return _build(slices, nodes, _placement)


def build_shared_inventory(slices: Iterable[Mapping[str, Any]]) -> NodeInventory:
    """Every device of complete pools that is *not* tied to one node (allNodes, nodeSelector, and
    such devices of perDeviceNodeSelection slices), once, under the node name "".

    Why: a claim allocated from such a pool is in use for every node that sees the device, even
    while no node matches the pool (yet); the controller resolves those allocations here.
    """
    return _build(slices, None, _unplaced).get("") or NodeInventory("")


def _build(slices: Iterable[Mapping[str, Any]], nodes: Mapping[str, Mapping[str, str]] | None,
           place: Callable[..., _Where]) -> dict[str, NodeInventory]:
    skipped: dict[str, list[str]] = {}
    pools = _complete_pools(slices, skipped)
    out: dict[str, NodeInventory] = {}
    node_names = list(nodes or {})

    def inv(name: str) -> NodeInventory:
        if name not in out:
            out[name] = NodeInventory(name)
        return out[name]

    for (driver, pool_name), pool in sorted(pools.items()):
        # Counter sets first: with the 1.35 layout they sit in a slice of their own.
        counter_sets: dict[CounterSetKey, dict[str, Fraction]] = {}
        targets: set[str] = set()
        for s in pool.slices:
            spec = s["spec"]
            sname = (s.get("metadata") or {}).get("name", "?")
            for i, cs in enumerate(spec.get("sharedCounters") or []):
                if not isinstance(cs, dict) or not isinstance(cs.get("name"), str) or not cs["name"]:
                    raise SliceError(f"slice {sname} sharedCounters[{i}].name: expected a counter set name")
                counter_sets[(driver, pool_name, cs["name"])] = {
                    c: _quantity((v or {}).get("value"), f"slice {sname} sharedCounters[{i}].counters[{c}].value")
                    for c, v in (cs.get("counters") or {}).items()
                }
        for s in pool.slices:
            spec = s["spec"]
            sname = (s.get("metadata") or {}).get("name", "?")
            per_device = bool(spec.get("perDeviceNodeSelection"))
            if not per_device:
                _check_selector(spec, f"slice {sname} spec.nodeSelector")
                slice_place = place(spec, node_names, nodes)
            for i, d in enumerate(spec.get("devices") or []):
                if per_device:
                    _check_selector(d, f"slice {sname} devices[{i}].nodeSelector")
                where, all_nodes, selector = place(d, node_names, nodes) if per_device else slice_place
                for node in where:
                    n = inv(node)
                    dev = parse_device(d, driver, pool_name, node, f"slice {sname} devices[{i}]", all_nodes, selector)
                    if dev.key in n.by_key:
                        raise SliceError(f"slice {sname} devices[{i}].name: "
                                         f"device {dev.name!r} appears twice in pool {pool_name}")
                    n.add(dev)
                    targets.add(node)
        for node in targets:
            out[node].counters.update(counter_sets)
            out[node].counter_units.update(
                {k: {c: to_units(v) for c, v in cs.items()} for k, cs in counter_sets.items()})
    for name, messages in skipped.items():
        if name:
            inv(name).skipped_pools = list(dict.fromkeys(messages))
    return out


def _check_selector(obj: Any, where: str) -> None:
    if isinstance(obj, Mapping) and obj.get("nodeSelector") and not obj.get("nodeName") and not obj.get("allNodes"):
        problem = selector_problem(obj["nodeSelector"])
        if problem:
            raise SliceError(f"{where}: {problem}")


def build_inventory(node: str, slices: Iterable[Mapping[str, Any]]) -> NodeInventory:
    """The inventory of one node (empty when it publishes nothing)."""
    return build_inventories(slices).get(node) or NodeInventory(node)
