"""Per-call timings of the allocator's hot path: `python -m driver.allocator.timing`.

The trace benchmark asks for ~10,600 pods × many nodes in ≤ 25 s, so one (pod, node) attempt
must cost microseconds. This prints the median cost of `quick_reject` and `allocate` (success
and failure) on typical nodes, with claims prepared once per pod as a scheduler does.
It is a measuring tool, not a test: timings depend on the machine. CPU time of this process is
measured (not wall time), so that other work on a shared machine disturbs the figures less.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable

from driver.allocator.allocate import allocate, quick_reject
from driver.allocator.inventory import build_inventories
from driver.allocator.request import prepare
from driver.allocator.usage import NodeUsage

DRIVER = "gpu.nvidia.com"


def _class(name: str, type_: str) -> dict[str, Any]:
    expr = f"device.driver == '{DRIVER}' && device.attributes['{DRIVER}'].type == '{type_}'"
    return {"metadata": {"name": name}, "spec": {"selectors": [{"cel": {"expression": expr}}]}}


CLASSES = {"gpu.nvidia.com": _class("gpu.nvidia.com", "gpu"), "mig.nvidia.com": _class("mig.nvidia.com", "mig"),
           "fractional.gpu.nvidia.com": _class("fractional.gpu.nvidia.com", "fractional")}


def _slice(node: str, devices: list[dict], counters: list[dict] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"driver": DRIVER, "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
                            "nodeName": node, "devices": devices}
    if counters:
        spec["sharedCounters"] = counters
    return {"metadata": {"name": node}, "spec": spec}


def whole_node(n: int = 8) -> dict[str, Any]:
    return _slice("whole", [{"name": f"gpu-{i}", "attributes": {"type": {"string": "gpu"}},
                             "capacity": {"memory": {"value": "80Gi"}}} for i in range(n)])


def fractional_node(n: int = 8) -> dict[str, Any]:
    policy = {"default": "1", "validRange": {"min": "1m", "max": "1", "step": "1m"}}
    return _slice("frac", [{"name": f"gpu-{i}", "allowMultipleAllocations": True,
                            "attributes": {"type": {"string": "fractional"}},
                            "capacity": {"compute": {"value": "1", "requestPolicy": policy}}} for i in range(n)])


def dynamic_node(n: int = 8) -> dict[str, Any]:
    """Whole GPUs plus every 1g/2g/3g/7g placement, all on one counter set per GPU."""
    shapes = [("1g10gb", 1, range(7)), ("2g20gb", 2, (0, 2, 4)), ("3g40gb", 4, (0, 4)), ("7g80gb", 8, (0,))]
    devices, counters = [], []
    for g in range(n):
        cset = f"gpu-{g}-counter-set"
        counters.append({"name": cset, "counters": {f"memory-slice-{i}": {"value": "1"} for i in range(8)}})
        devices.append({"name": f"gpu-{g}", "attributes": {"type": {"string": "gpu"}}, "consumesCounters": [
            {"counterSet": cset, "counters": {f"memory-slice-{i}": {"value": "1"} for i in range(8)}}]})
        for prof, slices, starts in shapes:
            for s in starts:
                devices.append({"name": f"gpu-{g}-mig-{prof}-{s}", "attributes": {
                    "type": {"string": "mig"}, "parentUUID": {"string": f"GPU-{g}"}}, "consumesCounters": [
                    {"counterSet": cset, "counters": {f"memory-slice-{i}": {"value": "1"} for i in range(s, s + slices)}}]})
    return _slice("dyn", devices, counters)


def _claim(name: str, requests: list[dict], constraints: list[dict] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "bench", "uid": name},
            "spec": {"devices": {"requests": requests, "constraints": constraints or []}}}


def _median_us(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm caches (CEL results, candidate lists)
    samples = []
    for _ in range(5):
        t = time.process_time()
        for _ in range(repeat):
            fn()
        samples.append((time.process_time() - t) / repeat * 1e6)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args(argv)
    invs = build_inventories([whole_node(), fractional_node(), dynamic_node()])
    cases = []
    one = prepare([_claim("one", [{"name": "g", "exactly": {"deviceClassName": "gpu.nvidia.com"}}])], CLASSES)
    four = prepare([_claim("four", [{"name": "g", "exactly": {"deviceClassName": "gpu.nvidia.com", "count": 4}}])], CLASSES)
    frac = prepare([_claim("frac", [{"name": "g", "exactly": {"deviceClassName": "fractional.gpu.nvidia.com",
                                                                "capacity": {"requests": {"compute": "250m"}}}}])], CLASSES)
    migs = prepare([_claim("migs", [{"name": f"m{i}", "exactly": {"deviceClassName": "mig.nvidia.com"}} for i in range(4)],
                           [{"matchAttribute": f"{DRIVER}/parentUUID"}])], CLASSES)
    busy = NodeUsage()
    busy.add(allocate(prepare([_claim("fill", [{"name": "g", "exactly": {"deviceClassName": "gpu.nvidia.com",
                                                                        "count": 8}}])], CLASSES),
                      invs["whole"], NodeUsage()).picks)
    half = NodeUsage()
    for i in range(12):
        r = allocate(prepare([_claim(f"h{i}", [{"name": "g", "exactly": {"deviceClassName": "fractional.gpu.nvidia.com",
                                                                         "capacity": {"requests": {"compute": "600m"}}}}])],
                             CLASSES), invs["frac"], half)
        if r:
            half.add(r.picks)
    cases = [
        ("whole 8 GPUs, 1 GPU, free node", one, invs["whole"], NodeUsage()),
        ("whole 8 GPUs, 4 GPUs, free node", four, invs["whole"], NodeUsage()),
        ("whole 8 GPUs, 1 GPU, full node (fails)", one, invs["whole"], busy),
        ("fractional 8 GPUs, 250m, free node", frac, invs["frac"], NodeUsage()),
        ("fractional 8 GPUs, 250m, 60% used", frac, invs["frac"], half),
        ("dynamic MIG 8 GPUs (112 devices), 4 MIG same parent", migs, invs["dyn"], NodeUsage()),
        ("dynamic MIG 8 GPUs, 1 whole GPU", one, invs["dyn"], NodeUsage()),
    ]
    print(f"{'case':58} {'quick_reject µs':>16} {'allocate µs':>12}")
    for name, prep, inv, usage in cases:
        q = _median_us(lambda: quick_reject(prep, inv, usage), args.repeat)
        a = _median_us(lambda: allocate(prep, inv, usage), args.repeat)
        print(f"{name:58} {q:16.1f} {a:12.1f}")


if __name__ == "__main__":
    main()
