"""How much of a physical GPU its devices use: the one definition behind `gpu-dra status`, the
controller's metrics, the demo's summary, the packing scorer and `bench mig`.

Why one definition: a MIG-capable GPU has two kinds of slices, memory slices (8 on A100/H100) and
compute slices (7), and profiles take them unevenly (`1g.20gb` = 2 memory + 1 compute, `3g.40gb` =
4 + 3). Counting only compute makes 3g.40gb 3/7 of a GPU although it holds half its memory;
counting only memory makes 7 x 1g.10gb 7/8 of a GPU although nothing more fits on it. So:

    use of a GPU = min(1, max(Σ memory slices in use / memory slices of the GPU,
                              Σ compute slices in use / compute slices of the GPU))

Each device in use adds its `Part` (its fraction of each kind); the sums are per kind, and the GPU
is 100 % exactly when either kind is exhausted: 7 x 1g.10gb = max(7/8, 7/7) = 100 %, 4g.40gb +
3g.40gb = max(8/8, 7/7) = 100 %, 3g.40gb alone = max(4/8, 3/7) = 50 %, 1g.20gb = max(2/8, 1/7) = 25 %.

What one device takes (`device_part`, `counter_part`):
- a MIG instance: its memory slices and its compute slices. Memory slices are in the published data
  (static: one `memorySlice<N>` capacity per slice; dynamic: its `memory-slice-<i>` counters, each
  as a share of the counter's capacity). Compute slices are the leading number of the `profile`
  attribute (NVIDIA names profiles `<compute slices>g.<memory>gb`), the only place devices carry them;
- a whole GPU: all of both kinds (dynamic: it consumes every memory-slice counter);
- a time-slicing replica: 1/N of both (N = its `replicas` attribute; dynamic: its share of the
  memory-slice counters, which is the same 1/N);
- a fractional GPU: consumed compute / compute capacity of both (the caller knows the amounts);
- any other device of a GPU (a `parentUUID` but neither MIG nor replica): an equal part of the
  GPU's devices.

How many slices the GPU has (`Geometry`):
- dynamic MIG: memory = the memory-slice counters of its counter set; compute = the largest compute
  slice count among the MIG profiles consuming that set (every profile is published, the GPU-sized
  `7g` one included). A set without MIG profiles (replicas only) has no compute count, and a
  non-MIG device on a set takes the same share of compute as of memory, so memory decides;
- static MIG: the GPU's counts are not published (only its instances are), so NVIDIA's A100/H100
  geometry `FALLBACK` (8 memory, 7 compute; docs/upstream/FACTS.md §9) is used, raised to whatever
  the published instances show (a higher slice index, more compute slices). A static-MIG GPU of
  another geometry (A30: 4 + 4) is measured against 8 + 7.

A kind whose count is unknown is left out of the max. Pure: plain values in, numbers out; callers
(driver/scheduler/packing/physical.py on parsed devices, driver/controller/status.py on wire dicts) read
the published data and pass it here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

MEMORY_COUNTER = "memory-slice-"  # dynamic MIG: one counter per memory slice (FACTS §8)
MEMORY_CAPACITY = "memorySlice"  # static MIG: one capacity per occupied memory slice
_PROFILE = re.compile(r"^(\d+)g\.")


@dataclass(frozen=True, slots=True)
class Part:
    """What one device takes of its GPU, per kind of slice, as fractions of the GPU's slices."""

    memory: float
    compute: float

    def __add__(self, other: Part) -> Part:
        return Part(self.memory + other.memory, self.compute + other.compute)


NONE = Part(0.0, 0.0)
WHOLE = Part(1.0, 1.0)


@dataclass(frozen=True, slots=True)
class Geometry:
    """Slices of one physical GPU per kind; 0 = unknown (that kind does not count)."""

    memory: int
    compute: int


FALLBACK = Geometry(memory=8, compute=7)  # A100 and H100 (FACTS §9); static MIG publishes no counts


def even(fraction: float) -> Part:
    """The same fraction of both kinds: replicas (1/N), fractional GPUs (consumed/capacity)."""
    return Part(fraction, fraction)


def use(part: Part) -> float:
    """A GPU's use (0..1) from the sum of its devices' parts: the more exhausted kind, capped."""
    return min(1.0, max(part.memory, part.compute))


def gpu_use(parts: Iterable[Part]) -> float:
    """`use` of the sum of `parts` (the devices in use on one GPU)."""
    total = NONE
    for p in parts:
        total = total + p
    return use(total)


# ---- reading the published data ---------------------------------------------------------------


def compute_slices(profile: object) -> int | None:
    """Compute slices of a MIG profile name ("3g.40gb" -> 3); None when it is not one."""
    match = _PROFILE.match(profile) if isinstance(profile, str) else None
    return int(match.group(1)) if match else None


def slice_indexes(capacity_names: Iterable[str]) -> tuple[int, ...]:
    """The memory slices a static MIG device occupies, from its capacity names (`memorySlice3`,
    qualified or not)."""
    out = []
    for name in capacity_names:
        base = name.rsplit("/", 1)[-1]
        if base.startswith(MEMORY_CAPACITY) and base[len(MEMORY_CAPACITY):].isdigit():
            out.append(int(base[len(MEMORY_CAPACITY):]))
    return tuple(sorted(out))


def static_geometry(instances: Iterable[tuple[Sequence[int], int | None]]) -> Geometry:
    """A static-MIG GPU's counts from its published instances, (slice indexes, compute slices)
    each: `FALLBACK`, raised to what the instances occupy."""
    memory, compute = FALLBACK.memory, 0
    for slices, c in instances:
        if slices:
            memory = max(memory, max(slices) + 1)
        compute += c or 0
    return Geometry(memory, max(FALLBACK.compute, compute))


def measured_counters(capacity: Mapping[str, float]) -> list[str]:
    """The counters of a set whose share in use is its memory use: the memory-slice counters, or
    every counter with a capacity when the set has none (another vendor's partitionable device)."""
    sliced = [n for n, c in capacity.items() if n.startswith(MEMORY_COUNTER) and c > 0]
    return sliced or [n for n, c in capacity.items() if c > 0]


def memory_share(used: Sequence[float], capacity: Sequence[float]) -> float:
    """Memory fraction of a counter set in use: the mean share of its measured counters (with one
    counter per slice, the memory slices in use / the slices of the GPU)."""
    if not capacity:
        return 0.0
    return sum(u / c for u, c in zip(used, capacity)) / len(capacity)


def counter_geometry(capacity: Mapping[str, float], profiles: Iterable[object]) -> Geometry:
    """A dynamic-MIG GPU's counts: its counter set's memory-slice counters, and the largest
    compute slices among the MIG `profiles` consuming the set."""
    memory = sum(1 for n, c in capacity.items() if n.startswith(MEMORY_COUNTER) and c > 0)
    return Geometry(memory, max((compute_slices(p) or 0 for p in profiles), default=0))


def counter_part(memory: float, profile: object, geometry: Geometry) -> Part:
    """Part of a device consuming a counter set, given its memory fraction (`memory_share` of its
    consumption): a MIG profile's compute slices, any other device (the whole GPU, a replica)
    the same share of compute as of memory."""
    c = compute_slices(profile)
    if c is not None and geometry.compute:
        return Part(memory, c / geometry.compute)
    return even(memory)


def device_part(kind: object, profile: object, replicas: object, slices: Sequence[int], geometry: Geometry,
                siblings: int = 1, parent: bool = True) -> Part:
    """Part of a device that consumes no counters (static MIG, time-slicing, whole GPU).

    `kind` is its `type` attribute, `slices` its `slice_indexes`, `geometry` its GPU's
    (`static_geometry`), `siblings` the devices published on its GPU and `parent` whether it has a
    `parentUUID` (a device without one is a whole GPU).
    """
    c = compute_slices(profile)
    if kind == "mig" or c is not None:
        memory = len(slices) / geometry.memory if slices and geometry.memory else 0.0
        compute = c / geometry.compute if c is not None and geometry.compute else 0.0
        if memory or compute:
            return Part(memory, compute)
    if isinstance(replicas, int) and not isinstance(replicas, bool) and replicas > 0:
        return even(1.0 / replicas)
    if parent and siblings > 0:
        return even(1.0 / siblings)
    return WHOLE
