"""The FGD paper's packing metric (BENCHMARKS.md §1) and its tables.

After every submitted pod the replay records A (GPU milli arrived, failed pods included) and U
(GPU milli allocated). x = round(A / (capacity / 100)) with Python's half-to-even rounding, y =
U / (capacity / 100); column c of the curve is the mean y over events with x == c (or, when no
event landed exactly there, over c−1 ≤ x ≤ c+1). alloc130 = column 130 is the headline figure.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from typing import Any

COLUMNS = 131  # 0..130 % of capacity arrived


@dataclass
class SeedResult:
    """One replay: the curve, headline figures and counts."""

    trace: str
    strategy: str
    seed: int
    pods: int
    failed: int
    seconds: float
    curve: list[float | None] = field(default_factory=list)
    cpu_seconds: float = 0.0  # process CPU time: steadier than wall time on a shared machine

    @property
    def alloc130(self) -> float | None:
        return self.curve[130] if len(self.curve) > 130 else None

    @property
    def alloc100(self) -> float | None:
        return self.curve[100] if len(self.curve) > 100 else None

    def as_json(self, with_curve: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "trace": self.trace, "strategy": self.strategy, "seed": self.seed,
            "alloc130": _r(self.alloc130), "alloc100": _r(self.alloc100),
            "pods": self.pods, "failed": self.failed, "seconds": round(self.seconds, 2),
            "cpu_seconds": round(self.cpu_seconds, 2),
            "pods_per_second": round(self.pods / self.seconds, 1) if self.seconds > 0 else None,
        }
        if with_curve:
            out["curve"] = [_r(v) for v in self.curve]
        return out


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def curve(events: list[tuple[int, int]], capacity_milli: int) -> list[float | None]:
    """Columns 0..130 from (arrived, allocated) milli pairs recorded after each pod."""
    if capacity_milli <= 0:
        raise ValueError("capacity_milli: expected a positive GPU capacity")
    unit = capacity_milli / 100
    sums = [0.0] * (COLUMNS + 2)
    counts = [0] * (COLUMNS + 2)
    for arrived, used in events:
        x = round(arrived / unit)
        if 0 <= x < COLUMNS + 1:
            sums[x] += used / unit
            counts[x] += 1
    out: list[float | None] = []
    for c in range(COLUMNS):
        if counts[c]:
            out.append(sums[c] / counts[c])
            continue
        lo = max(0, c - 1)
        n = sum(counts[lo:c + 2])
        out.append(sum(sums[lo:c + 2]) / n if n else None)
    return out


def mean_curve(results: list[SeedResult]) -> list[float | None]:
    """Column-wise mean over seeds (columns no seed reached stay None)."""
    out: list[float | None] = []
    for c in range(COLUMNS):
        values = [r.curve[c] for r in results if len(r.curve) > c and r.curve[c] is not None]
        out.append(statistics.fmean(values) if values else None)
    return out


def mean_of(results: list[SeedResult], attr: str) -> float | None:
    values = [getattr(r, attr) for r in results if getattr(r, attr) is not None]
    return statistics.fmean(values) if values else None


def table(results: list[SeedResult]) -> str:
    """Per (trace, strategy): mean alloc130/alloc100 over seeds, seeds, failed pods, median seconds."""
    rows = [("trace", "strategy", "seeds", "alloc130", "alloc100", "failed", "s/seed", "cpu s/seed")]
    keys: list[tuple[str, str]] = []
    for r in results:
        if (r.trace, r.strategy) not in keys:
            keys.append((r.trace, r.strategy))
    for trace, strategy in keys:
        rs = [r for r in results if r.trace == trace and r.strategy == strategy]
        a130, a100 = mean_of(rs, "alloc130"), mean_of(rs, "alloc100")
        rows.append((trace, strategy, str(len(rs)), f"{a130:.2f}" if a130 is not None else "-",
                     f"{a100:.2f}" if a100 is not None else "-", f"{statistics.fmean(r.failed for r in rs):.0f}",
                     f"{statistics.median(r.seconds for r in rs):.1f}",
                     f"{statistics.median(r.cpu_seconds for r in rs):.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def json_line(result: SeedResult, with_curve: bool = False) -> str:
    return json.dumps(result.as_json(with_curve), sort_keys=False)
