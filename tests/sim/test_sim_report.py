"""The packing metric (hand-checked), tables, and the PNG writer."""

from __future__ import annotations

import struct
import zlib

import pytest

from driver.sim import report
from driver.sim.plot import Canvas, allocation_plot


def test_curve_matches_hand_computation():
    # capacity 1000 milli -> 1 % = 10 milli; x rounds half to even (0.5 -> 0, 1.5 -> 2, 2.5 -> 2)
    events = [(5, 5), (15, 10), (25, 20), (40, 30)]
    c = report.curve(events, 1000)
    assert len(c) == 131
    assert c[0] == pytest.approx(0.5)
    assert c[1] == pytest.approx((0.5 + 1.0 + 2.0) / 3)  # no event at 1: neighbours 0..2
    assert c[2] == pytest.approx(1.5)
    assert c[3] == pytest.approx(2.0)  # neighbours 2..4
    assert c[4] == pytest.approx(3.0)
    assert c[5] == pytest.approx(3.0)
    assert c[6] is None and c[130] is None


def test_curve_rejects_zero_capacity():
    with pytest.raises(ValueError, match="capacity_milli"):
        report.curve([(1, 1)], 0)


def test_headline_figures_and_table():
    curve = [None] * 131
    curve[100], curve[130] = 90.0, 95.0
    a = report.SeedResult("default", "fgd", 42, 100, 5, 2.0, curve, 1.5)
    curve2 = list(curve)
    curve2[130] = 96.0
    b = report.SeedResult("default", "fgd", 43, 100, 7, 4.0, curve2, 2.5)
    assert a.as_json()["alloc130"] == 95.0 and a.as_json()["alloc100"] == 90.0
    assert report.mean_of([a, b], "alloc130") == pytest.approx(95.5)
    assert report.mean_curve([a, b])[130] == pytest.approx(95.5)
    lines = report.table([a, b]).splitlines()
    assert lines[0].split() == ["trace", "strategy", "seeds", "alloc130", "alloc100", "failed", "s/seed", "cpu", "s/seed"]
    assert lines[2].split() == ["default", "fgd", "2", "95.50", "90.00", "6", "3.0", "2.0"]


def _chunks(data: bytes):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        yield kind, body
        pos += 12 + length


def test_png_is_well_formed_and_draws(tmp_path):
    cv = Canvas(20, 10)
    cv.line(0, 0, 19, 9, (255, 0, 0))
    chunks = dict(_chunks(cv.png()))
    w, h, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (w, h, depth, color) == (20, 10, 8, 2)
    raw = zlib.decompress(chunks[b"IDAT"])
    assert len(raw) == h * (1 + 3 * w)
    assert raw[1:4] == b"\xff\x00\x00"  # the line starts in the top-left pixel
    assert raw[1 + 3 * 19:1 + 3 * 20] == b"\xff\xff\xff"  # top-right stays background

    path = tmp_path / "fig.png"
    curve = [float(min(x, 95)) for x in range(131)]
    allocation_plot({"fragmentation": curve, "binpack": [v * 0.98 for v in curve]}, path)
    assert dict(_chunks(path.read_bytes()))[b"IHDR"][:8] == struct.pack(">II", 900, 600)
    with pytest.raises(ValueError, match="no curves"):
        allocation_plot({}, tmp_path / "empty.png")
