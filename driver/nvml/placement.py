"""Legal MIG placement: where on a GPU a list of MIG profiles can be created.

A placement is legal when every instance starts at one of its profile's possible placements, no
two instances share a memory slice, the compute slices add up to at most the GPU's, and no profile
exceeds its maximum instance count. mig-parted configs list profiles without positions (NVML picks
them), so the mock and dynamic MIG need the same search NVML does: a small backtracking search,
largest profiles first, lowest start slice first, which is deterministic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from driver.nvml.interface import MigProfile

if TYPE_CHECKING:
    from driver.nvml.gpumodels import GpuModel


class PlacementError(ValueError):
    """The requested MIG devices cannot all exist on the GPU at once."""


def is_legal(model: "GpuModel", placed: Iterable[tuple[MigProfile, int]]) -> str | None:
    """None if the (profile, start) list can coexist on one GPU of `model`; else the reason."""
    used: dict[int, str] = {}
    compute = 0
    counts: Counter[str] = Counter()
    for profile, start in placed:
        if start not in profile.placements:
            return f"{profile.name} cannot start at memory slice {start} (possible: {list(profile.placements)})"
        for s in profile.slices_at(start):
            if s in used:
                return f"{profile.name}@{start} overlaps {used[s]} on memory slice {s}"
            used[s] = f"{profile.name}@{start}"
        compute += profile.compute_slices
        counts[profile.name] += 1
        if counts[profile.name] > profile.max_count:
            return f"at most {profile.max_count} x {profile.name} per GPU"
    if compute > model.compute_slices:
        return f"{compute} compute slices needed, the GPU has {model.compute_slices}"
    return None


def place(
    model: "GpuModel", wanted: Sequence[str], existing: Sequence[tuple[MigProfile, int]] = ()
) -> list[tuple[MigProfile, int]]:
    """Choose start slices for the profiles named in `wanted`, next to `existing` instances.

    Returns (profile, start) pairs in the order of `wanted`. Raises PlacementError when no legal
    arrangement exists (and DataError for an unknown profile name).
    """
    profiles = [model.mig_profile(name) for name in wanted]
    reason = is_legal(model, existing)
    if reason:
        raise PlacementError(f"existing MIG devices are not a legal layout: {reason}")
    order = sorted(range(len(profiles)), key=lambda i: (-profiles[i].memory_slices, -profiles[i].compute_slices, i))
    chosen: dict[int, int] = {}
    everything = [*existing, *((p, p.placements[0]) for p in profiles)]
    counts = Counter(p.name for p, _ in everything)
    hopeless = (
        sum(p.memory_slices for p, _ in everything) > model.memory_slices
        or sum(p.compute_slices for p, _ in everything) > model.compute_slices
        or any(counts[p.name] > p.max_count for p, _ in everything)
    )

    def search(k: int, current: list[tuple[MigProfile, int]]) -> bool:
        if k == len(order):
            return True
        i = order[k]
        # instances of one profile are interchangeable: only try starts after the previous one's
        floor = chosen[order[k - 1]] if k and profiles[order[k - 1]].name == profiles[i].name else -1
        for start in profiles[i].placements:
            if start <= floor:
                continue
            candidate = [*current, (profiles[i], start)]
            if is_legal(model, candidate) is None:
                chosen[i] = start
                if search(k + 1, candidate):
                    return True
        return False

    if hopeless or not search(0, list(existing)):
        want = " + ".join(wanted) or "nothing"
        have = ", ".join(f"{p.name}@{s}" for p, s in existing)
        raise PlacementError(f"cannot place {want} on {model.key}" + (f" next to {have}" if have else ""))
    return [(profiles[i], chosen[i]) for i in range(len(profiles))]
