"""Physical GPUs behind published devices: what lets the packing scorer see MIG and replicas.

The scorer's compact view is "free milli per published device". That is exact for whole and
fractional GPUs, but not when several devices are carved out of one GPU:

- dynamic MIG publishes every (profile, placement) of a GPU plus the whole GPU, all consuming one
  counter set (KEP-4815). Taking one 7g placement leaves the other ~30 devices of that GPU
  unusable, yet each still looked free, and an 8-GPU node with one instance looked 1/240 used;
- static MIG instances and time-sliced replicas are independent devices, but they are unequal
  parts of one GPU (a 3g instance is four memory slices and three compute slices, a 1g one one
  of each), so counting devices is not counting GPU use.

A `Layout` (static, one per node class) maps each device onto a *unit* — a physical GPU — and
measures a unit's use with `driver.allocator.gpuuse`, the definition `gpu-dra status` uses too
(max over memory and compute slices of the share in use):

- a device consuming counters belongs to its (first) counter set. Memory in use is read from the
  set's measured counters (`memory-slice-<i>`); compute slices are no counter, so where MIG
  profiles consume the set the layout adds one of its own (`COMPUTE`, never published, never
  checked by `fits`): each device adds its compute slices (a whole GPU all, a replica 1/R);
- a device with a `parentUUID` and no counters (static MIG, time-slicing) belongs to that GPU and
  takes its `gpuuse.device_part` (memorySlice capacities and profile against the GPU's geometry;
  1/replicas);
- any other device is its own unit (its milli total, as before).

The node's compact state gains a fourth entry when the class has counter sets: the counters in
use per set (nano-units, in the layout's order, `COMPUTE` last where present). With it the free
values stay exact — a device whose consumption no longer fits its set is 0 — and `take` derives
the state after a placement (the device, then every sibling it blocks) without the allocator.
Nodes whose devices are all plain get no layout, and the scorer's arithmetic for them is unchanged.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Collection, Iterable, Sequence

from driver.allocator import gpuuse
from driver.scheduler.packing import adapter
from driver.allocator.inventory import CounterSetKey, DeviceView, NodeInventory
from driver.allocator.usage import NodeUsage

FULL = 1000
COMPUTE = "<compute-slices>"  # the layout's own counter (no published counter can have this name)
SCALE = 10**9  # COMPUTE in nano compute slices, like the other counters' nano-units
_KEYS = object()  # NodeInventory.match_cache key for the node's own counter set keys
PLAIN, PARENT, COUNTERS = 0, 1, 2

Counters = tuple[tuple[int, ...], ...]  # in use per set, per counter (nano-units)


@dataclass(frozen=True, slots=True)
class CounterSet:
    """One counter set as the layout knows it (pool-independent: nodes of a class share it)."""

    counters: tuple[str, ...]  # the published counters, then COMPUTE where MIG profiles use the set
    capacity: tuple[int, ...]  # nano-units, aligned with `counters`
    limit: tuple[int, ...]  # what `fits` checks: `capacity`, COMPUTE unlimited (the allocator ignores it)
    measured: tuple[int, ...]  # positions whose share in use is the GPU's memory use
    compute: int  # position of COMPUTE, -1 when the set has no MIG profile (memory alone measures)
    devices: tuple[int, ...]  # indexes of the devices consuming from it
    shape: int  # position of the first set built exactly like this one (options dedupe on it)


@dataclass(frozen=True, slots=True)
class Layout:
    """How a node class's devices sit on physical GPUs (see the module docstring)."""

    sets: tuple[CounterSet, ...]
    consumes: tuple[tuple[tuple[int, tuple[int, ...]], ...], ...]  # per device: (set, amounts)
    kind: tuple[int, ...]  # per device: PLAIN | PARENT | COUNTERS
    unit: tuple[int, ...]  # per device: its unit (counter units first, numbered like `sets`)
    weight: tuple[int, ...]  # per device: milli of its unit it takes when in use alone
    parts: tuple[gpuuse.Part, ...]  # per device: its part of its GPU (PARENT devices; NONE otherwise)
    unit_total: tuple[int, ...]  # milli each unit offers
    members: tuple[tuple[int, ...], ...]  # per unit: its devices (PARENT and PLAIN units)
    totals: tuple[int, ...]  # milli per device (the class's totals)

    # -- state --------------------------------------------------------------------------------

    def counter_state(self, inventory: NodeInventory, usage: NodeUsage) -> Counters:
        """The counters in use on a node of this class, in the layout's order. COMPUTE is not in
        the usage: it is the sum over the set's devices in use of what each adds."""
        keys = set_keys(inventory)
        devices = inventory.devices
        out = []
        for s, (key, cs) in enumerate(zip(keys, self.sets)):
            held = usage.counter_units.get(key) or {}
            row = [held.get(name, 0) for name in cs.counters]
            if cs.compute >= 0:
                row[cs.compute] = sum(amounts[cs.compute] for j in cs.devices if usage.in_use(devices[j])
                                      for t, amounts in self.consumes[j] if t == s)
            out.append(tuple(row))
        return tuple(out)

    def fits(self, i: int, counters: Sequence[tuple[int, ...]]) -> bool:
        """Whether device i's counter consumption still fits next to `counters`."""
        for s, amounts in self.consumes[i]:
            used, cap = counters[s], self.sets[s].limit
            for k, a in enumerate(amounts):
                if a and used[k] + a > cap[k]:
                    return False
        return True

    def block(self, free: list[int], counters: Sequence[tuple[int, ...]], sets: Iterable[int],
              charged: Any) -> None:
        """Set to 0 every device of `sets` that is not charged yet and no longer fits."""
        fits = self.fits
        for s in sets:
            for j in self.sets[s].devices:
                if free[j] and not charged(j) and not fits(j, counters):
                    free[j] = 0

    def take(self, free: list[int], counters: list[tuple[int, ...]], i: int, share: int) -> None:
        """The compact state after `share` more of device i is used (both lists are updated).

        A device charges its counters once, when it goes from untouched to used; a device that is
        already partly used (shared) has charged them. Siblings that stop fitting become 0.
        """
        fresh = free[i] == self.totals[i]
        free[i] -= share
        if not fresh or not self.consumes[i]:
            return
        for s, amounts in self.consumes[i]:
            counters[s] = tuple(u + a for u, a in zip(counters[s], amounts))
        totals = self.totals
        self.block(free, counters, [s for s, _ in self.consumes[i]], lambda j: free[j] != totals[j])

    def after(self, state: tuple, i: int, share: int) -> tuple:
        """The compact state `state` after `take` (a new tuple; `state` is left alone)."""
        free = list(state[2])
        counters = list(state[3]) if len(state) > 3 else []
        self.take(free, counters, i, share)
        return self.state(state[0], state[1], free, counters)

    @staticmethod
    def state(cpu: int, memory: int, free: Sequence[int], counters: Sequence[tuple[int, ...]]) -> tuple:
        """A compact state: counters only where the node has counter sets."""
        base = (cpu, memory, tuple(free))
        return base + (tuple(counters),) if counters else base

    # -- measures -----------------------------------------------------------------------------

    def unit_used(self, u: int, free: Sequence[int], counters: Sequence[tuple[int, ...]],
                  taken: Collection[int] = ()) -> float:
        """Milli of unit u in use (`gpuuse.use` of its GPU; a plain device's own milli); devices
        in `taken` count as fully used."""
        if u < len(self.sets):
            if not counters:
                return 0.0
            cs, used = self.sets[u], counters[u]
            memory = gpuuse.memory_share([used[k] for k in cs.measured], [cs.capacity[k] for k in cs.measured])
            compute = used[cs.compute] / cs.capacity[cs.compute] if cs.compute >= 0 else 0.0
            return FULL * gpuuse.use(gpuuse.Part(memory, compute))
        members = self.members[u]
        if self.kind[members[0]] == PLAIN:
            j = members[0]
            return 0.0 if j in taken else float(self.totals[j] - free[j])
        memory = compute = 0.0
        for j in members:
            t, f = self.totals[j], 0 if j in taken else free[j]
            if f < t:
                part = self.parts[j]
                memory += part.memory * (t - f) / t
                compute += part.compute * (t - f) / t
        return FULL * gpuuse.use(gpuuse.Part(memory, compute))

    def used(self, state: tuple) -> float:
        """Milli of physical GPU in use on a node in compact state `state`."""
        free, counters = state[2], state[3] if len(state) > 3 else ()
        return sum(self.unit_used(u, free, counters) for u in range(len(self.unit_total)))

    def capacity(self) -> int:
        return sum(self.unit_total)

    def used_share(self, state: tuple) -> float:
        total = self.capacity()
        return self.used(state) / total if total else 0.0

    def free_milli(self, state: tuple) -> float:
        return self.capacity() - self.used(state)

    def left(self, before: tuple, after: tuple) -> float:
        """Best fit: the least physical free left on a unit the placement changed."""
        out = float(FULL)
        fb, cb = before[2], before[3] if len(before) > 3 else ()
        fa, ca = after[2], after[3] if len(after) > 3 else ()
        for u, total in enumerate(self.unit_total):
            a = self.unit_used(u, fa, ca)
            if a != self.unit_used(u, fb, cb):
                out = min(out, total - a)
        return out

    def fragment_stats(self, parts: Sequence[tuple], free: Sequence[int], counters: Sequence[tuple[int, ...]],
                       memo: dict) -> tuple[tuple[int, float], ...]:
        """FGD's per-part device statistics with a physical GPU as the unit. For each target part
        (count, share, mask, ...): how many of its devices the GPUs could still take together,
        and the free milli those GPUs hold that the part could not use — a GPU with four free
        slices in a layout that admits one 3g instance has nothing unusable for 3g, but two
        slices for 2g if only one 2g placement is left. GPUs where the part may use no device
        count for neither. Plain units keep FGD's per-device rule.

        Memoised per unit state in `memo` (the caller drops it when its parts change).
        """
        fits = [0] * len(parts)
        frag = [0.0] * len(parts)
        for u, total in enumerate(self.unit_total):
            devs = self.sets[u].devices if u < len(self.sets) else self.members[u]
            own = counters[u] if u < len(self.sets) and counters else ()
            key = (u, own, tuple(free[j] for j in devs))
            hit = memo.get(key)
            if hit is None:
                hit = memo[key] = self._unit_stats(u, total, devs, parts, free, counters)
            for k, (n, f) in enumerate(hit):
                fits[k] += n
                frag[k] += f
        return tuple(zip(fits, frag))

    def _unit_stats(self, u: int, total: int, devs: Sequence[int], parts: Sequence[tuple], free: Sequence[int],
                    counters: Sequence[tuple[int, ...]]) -> tuple[tuple[int, float], ...]:
        if self.kind[devs[0]] == PLAIN:
            f = free[devs[0]]
            return tuple((int(mask[devs[0]] and f >= share), 0.0 if f >= share else float(f))
                         for _, share, mask, *_ in parts)
        before = self.unit_used(u, free, counters)
        out = []
        for _, share, mask, *_ in parts:
            allowed = [j for j in devs if mask[j]]
            if not allowed:
                out.append((0, 0.0))
                continue
            n, taken = 0, set()
            held = list(counters)
            for j in allowed:  # greedy in placement order: how many could be taken together
                if free[j] < share or (self.consumes[j] and (free[j] != self.totals[j] or not self.fits(j, held))):
                    continue
                for s, amounts in self.consumes[j]:
                    held[s] = tuple(a + b for a, b in zip(held[s], amounts))
                n += 1
                taken.add(j)
            # what the GPU would still have free once the part took all it could
            after = self.unit_used(u, free, held, taken) if n else before
            out.append((n, max(0.0, total - after)))
        return tuple(out)

    # -- choices ------------------------------------------------------------------------------

    def option(self, i: int, free: Sequence[int], counters: Sequence[tuple[int, ...]]) -> tuple:
        """What taking device i does, as a hashable key: devices with equal keys give placements
        that differ only by which GPU is which (the scorer evaluates one of them)."""
        k = self.kind[i]
        if k == COUNTERS:
            own = self.consumes[i]
            return (k, tuple((self.sets[s].shape, a, counters[s] if counters else ()) for s, a in own), free[i])
        if k == PARENT:
            return (k, self.unit[i], self.parts[i], free[i])
        return (k, free[i], self.totals[i])

    def collateral(self, i: int, free: Sequence[int], counters: Sequence[tuple[int, ...]]) -> int:
        """Milli of sibling devices (their weights) that taking device i would make unusable."""
        if self.kind[i] != COUNTERS or free[i] != self.totals[i]:
            return 0
        after = list(counters)
        for s, amounts in self.consumes[i]:
            after[s] = tuple(u + a for u, a in zip(after[s], amounts))
        lost = 0
        for s, _ in self.consumes[i]:
            for j in self.sets[s].devices:
                if j != i and free[j] == self.totals[j] and not self.fits(j, after):
                    lost += self.weight[j]
        return lost

    def preference(self, strategy: str, i: int, free: Sequence[int], counters: Sequence[tuple[int, ...]]) -> tuple:
        """Sort key of device i for one more pod (lower first): free devices first; then the GPU:
        the most used one for the packing strategies (keeps whole GPUs and large placements free),
        the least used one for `spread`; then, on that GPU, the placement that makes the fewest
        sibling placements unusable; then the smaller device."""
        if not free[i]:
            return (1, 0.0, 0, 0, i)
        use = self.unit_used(self.unit[i], free, counters)
        return (0, use if strategy == "spread" else -use, self.collateral(i, free, counters), self.weight[i], i)

    def order(self, strategy: str, state: tuple, indexes: Iterable[int]) -> list[int]:
        """Device indexes in `preference` order on a node in compact state `state`."""
        free, counters = state[2], state[3] if len(state) > 3 else ()
        return sorted(indexes, key=lambda i: self.preference(strategy, i, free, counters))


def set_keys(inventory: NodeInventory) -> tuple[CounterSetKey, ...]:
    """The node's counter set keys in layout order (the order devices first consume them)."""
    keys = inventory.match_cache.get(_KEYS)
    if keys is None:
        seen: dict[CounterSetKey, None] = {}
        for d in inventory.devices:
            for cset, _ in d.consumes_units:
                seen.setdefault(cset, None)
        keys = inventory.match_cache[_KEYS] = tuple(seen)
    return keys


def _attr(device: DeviceView, name: str) -> Any:
    return device.attributes.get(device.driver, {}).get(name)


def parent_gpu(device: DeviceView) -> str | None:
    """The physical GPU a MIG device or time-sliced replica lives on (None for whole/fractional GPUs)."""
    value = _attr(device, "parentUUID")
    return value if isinstance(value, str) else None


def _static_part(device: DeviceView, geometry: gpuuse.Geometry, siblings: int) -> gpuuse.Part:
    return gpuuse.device_part(_attr(device, "type"), _attr(device, "profile"), _attr(device, "replicas"),
                              gpuuse.slice_indexes(device.capacity.get(device.driver, {})), geometry, siblings)


def layout_of(inventory: NodeInventory, totals: Sequence[int]) -> Layout | None:
    """The layout of a node's devices; None when every device is its own GPU (whole, fractional)."""
    devices = inventory.devices
    parent = [parent_gpu(d) for d in devices]
    if not any(d.consumes_units or p is not None for d, p in zip(devices, parent)):
        return None
    keys = set_keys(inventory)
    position = {k: n for n, k in enumerate(keys)}
    names: list[list[str]] = []
    for key in keys:
        seen = dict.fromkeys(sorted(inventory.counter_units.get(key) or {}))
        for d in devices:
            for cset, amounts in d.consumes_units:
                if cset == key:
                    seen.update(dict.fromkeys(n for n, _ in amounts))
        names.append(list(seen))
    consumes: list[list[tuple[int, list[int]]]] = []
    for d in devices:
        entries = []
        for cset, amounts in d.consumes_units:
            s = position[cset]
            got = dict(amounts)
            entries.append((s, [got.get(n, 0) for n in names[s]]))
        consumes.append(entries)
    capacities, measures, computes = [], [], []
    counter_parts: dict[int, gpuuse.Part] = {}  # per device, for its first set
    for s, key in enumerate(keys):
        caps = inventory.counter_units.get(key) or {}
        capacity = [caps.get(n, 0) for n in names[s]]
        by_name = dict(zip(names[s], capacity))
        measured = tuple(names[s].index(n) for n in gpuuse.measured_counters(by_name))
        users = [(i, a) for i, c in enumerate(consumes) for t, a in c if t == s]
        geometry = gpuuse.counter_geometry(by_name, (_attr(devices[i], "profile") for i, _ in users))
        compute = -1
        if geometry.compute:
            compute = len(names[s])
            names[s].append(COMPUTE)
            capacity.append(geometry.compute * SCALE)
        for i, amounts in users:
            memory = gpuuse.memory_share([amounts[k] for k in measured], [capacity[k] for k in measured])
            part = gpuuse.counter_part(memory, _attr(devices[i], "profile"), geometry)
            counter_parts.setdefault(i, part)
            if compute >= 0:
                amounts.append(round(part.compute * geometry.compute * SCALE))
        capacities.append(capacity)
        measures.append(measured)
        computes.append(compute)
    frozen = tuple(tuple((s, tuple(a)) for s, a in entries) for entries in consumes)
    sets = []
    shapes: dict[tuple, int] = {}
    for s in range(len(keys)):
        capacity = tuple(capacities[s])
        limit = tuple(sys.maxsize if k == computes[s] else c for k, c in enumerate(capacity))
        users = tuple(i for i, c in enumerate(frozen) if any(e[0] == s for e in c))
        fingerprint = (tuple(names[s]), capacity, tuple(tuple(a for t, a in frozen[i] if t == s) for i in users))
        sets.append(CounterSet(tuple(names[s]), capacity, limit, measures[s], computes[s], users,
                               shapes.setdefault(fingerprint, s)))
    kind, unit, weight = [0] * len(devices), [0] * len(devices), [0] * len(devices)
    parts = [gpuuse.NONE] * len(devices)
    unit_total = [FULL] * len(sets)
    members: list[tuple[int, ...]] = [()] * len(sets)
    parents: dict[str, list[int]] = {}
    for d in devices:
        i = d.index
        if frozen[i]:
            kind[i], unit[i] = COUNTERS, frozen[i][0][0]
            weight[i] = round(FULL * gpuuse.use(counter_parts[i]))
        elif parent[i] is not None:
            parents.setdefault(parent[i], []).append(i)
        else:
            kind[i], unit[i], weight[i] = PLAIN, len(unit_total), totals[i]
            unit_total.append(totals[i])
            members.append((i,))
    for group in parents.values():
        geometry = gpuuse.static_geometry(
            (gpuuse.slice_indexes(devices[i].capacity.get(devices[i].driver, {})),
             gpuuse.compute_slices(_attr(devices[i], "profile"))) for i in group)
        for i in group:
            parts[i] = _static_part(devices[i], geometry, len(group))
            kind[i], unit[i], weight[i] = PARENT, len(unit_total), round(FULL * gpuuse.use(parts[i]))
        unit_total.append(FULL)
        members.append(tuple(group))
    return Layout(tuple(sets), frozen, tuple(kind), tuple(unit), tuple(weight), tuple(parts), tuple(unit_total),
                  tuple(members), tuple(totals))


# ---- the node's compact view --------------------------------------------------------------------


def device_totals(inventory: NodeInventory) -> tuple[int, ...]:
    return tuple(adapter.device_total(d) for d in inventory.devices)


def node_view(inventory: NodeInventory, usage: NodeUsage, layout: Layout | None) -> tuple[tuple[int, ...], Counters]:
    """Free milli per device (counter-aware) and counters in use, from the node's real usage."""
    free = [adapter.device_free(d, usage) for d in inventory.devices]
    if layout is None or not layout.sets:
        return tuple(free), ()
    counters = layout.counter_state(inventory, usage)
    layout.block(free, counters, range(len(layout.sets)), _charged(inventory, usage))
    return tuple(free), counters


def refresh(inventory: NodeInventory, usage: NodeUsage, layout: Layout | None, free: list[int],
            counters: Counters, devices: Iterable[DeviceView]) -> Counters:
    """Update `free` after `devices` changed use; returns the counters in use.

    Without counters only the changed devices move. When one of them consumes counters, every
    device of the counter sets it touches is recomputed (a release can unblock them as well).
    """
    touched: set[int] = set()
    keys = set_keys(inventory) if layout is not None and layout.sets else ()
    for d in devices:
        device = inventory.by_key.get(d.key)  # by key: slices may have been republished
        if device is None:
            continue
        free[device.index] = adapter.device_free(device, usage)
        if keys and device.consumes_units:
            touched.update(s for s, _ in layout.consumes[device.index])  # type: ignore[union-attr]
    if not touched or layout is None:
        return counters
    counters = layout.counter_state(inventory, usage)
    for s in touched:
        for j in layout.sets[s].devices:
            free[j] = adapter.device_free(inventory.devices[j], usage)
    layout.block(free, counters, touched, _charged(inventory, usage))
    return counters


def _charged(inventory: NodeInventory, usage: NodeUsage) -> Any:
    devices = inventory.devices
    return lambda j: usage.in_use(devices[j])


def used_milli(klass: Any, state: tuple) -> int:
    """Milli-GPU in use on a node of class `klass` (NodeClass) in compact state `state`."""
    layout = klass.layout
    return sum(klass.totals) - sum(state[2]) if layout is None else round(layout.used(state))


def total_milli(klass: Any) -> int:
    return sum(klass.totals) if klass.layout is None else klass.layout.capacity()
