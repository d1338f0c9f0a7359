"""driver.allocator.gpuuse: one GPU's use is the more exhausted of its memory and compute slices,
with the slice counts taken from the published data where it has them."""

from __future__ import annotations

import pytest

from driver.allocator import gpuuse
from driver.allocator.gpuuse import FALLBACK, Geometry, Part


def _static(profile: str, slices: range) -> Part:
    return gpuuse.device_part("mig", profile, None, tuple(slices), FALLBACK)


@pytest.mark.parametrize("instances, use", [
    ([("1g.10gb", range(s, s + 1)) for s in range(7)], 1.0),
    ([("4g.40gb", range(0, 4)), ("3g.40gb", range(4, 8))], 1.0),
    ([("3g.40gb", range(4, 8))], 0.5),
    ([("1g.20gb", range(0, 2))], 0.25),
    ([("1g.10gb", range(0, 1)), ("1g.10gb", range(1, 2))], 2 / 7),  # compute leads
    ([("1g.20gb", range(0, 2)), ("1g.20gb", range(2, 4))], 0.5),  # memory leads
])
def test_use_is_the_larger_kind(instances, use):
    assert gpuuse.gpu_use(_static(p, s) for p, s in instances) == pytest.approx(use)


def test_counts_come_from_the_counter_set_not_from_constants():
    """A GPU with 4 memory slices (A30-like) whose largest profile has 4 compute slices: one
    2-slice, 2-compute instance is half of it, not 2/8 or 2/7."""
    capacity = {f"memory-slice-{i}": 1.0 for i in range(4)} | {"multiprocessors": 56.0}
    geometry = gpuuse.counter_geometry(capacity, ["1g.6gb", "2g.12gb", "4g.24gb", None])
    assert geometry == Geometry(4, 4)
    measured = gpuuse.measured_counters(capacity)
    memory = gpuuse.memory_share([1.0 if n in ("memory-slice-0", "memory-slice-1") else 0.0 for n in measured],
                                 [capacity[n] for n in measured])
    assert gpuuse.use(gpuuse.counter_part(memory, "2g.12gb", geometry)) == 0.5


def test_a_set_without_mig_profiles_is_measured_by_memory():
    """Replicas on a counter set (no MIG profile): 1 of R on each slice is 1/R of the GPU."""
    capacity = {"memory-slice-0": 4.0}
    geometry = gpuuse.counter_geometry(capacity, [None, None])
    assert geometry.compute == 0
    assert gpuuse.counter_part(gpuuse.memory_share([1.0], [4.0]), None, geometry) == Part(0.25, 0.25)


def test_static_geometry_is_raised_to_what_the_instances_occupy():
    assert gpuuse.static_geometry([((0, 1, 2, 3), 3)]) == FALLBACK
    assert gpuuse.static_geometry([(tuple(range(12)), 9)]) == Geometry(12, 9)


def test_reading_the_published_data():
    assert gpuuse.compute_slices("3g.40gb") == 3 and gpuuse.compute_slices("1g.10gb+me") == 1
    assert gpuuse.compute_slices("whole") is None and gpuuse.compute_slices(None) is None
    assert gpuuse.slice_indexes(["gpu.nvidia.com/memorySlice5", "memorySlice4", "memory", "memorySliceX"]) == (4, 5)
    assert gpuuse.measured_counters({"memory-slice-0": 1, "memory": 5}) == ["memory-slice-0"]
    assert gpuuse.measured_counters({"a": 2, "b": 0}) == ["a"]  # another vendor's set: every counter


def test_devices_that_are_not_mig_instances():
    assert gpuuse.device_part("replica", None, 4, (), FALLBACK) == Part(0.25, 0.25)
    assert gpuuse.device_part("gpu", None, None, (), FALLBACK, parent=False) == gpuuse.WHOLE
    assert gpuuse.device_part("other", None, None, (), FALLBACK, siblings=2) == Part(0.5, 0.5)
    assert gpuuse.device_part("mig", "3g.40gb", None, (), FALLBACK) == Part(0.0, 3 / 7)  # no slices published
