"""Allocation-vs-arrival plots (the FGD paper's Figure 9 style) as PNG, without plotting libraries.

matplotlib is not a dependency of the driver (it is ~40 MB with its wheels and pulls numpy, pillow
and more into an image that otherwise never draws anything), and the figure is simple: a few
polylines on a grid with labels. So this module rasterises it itself — lines, a 3×5 pixel font
scaled up — and writes the PNG with zlib and struct from the standard library.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

# 3x5 glyphs, rows top to bottom, '#' = ink. Lowercase text is drawn with these uppercase forms.
_FONT_ROWS = {
    "0": "### #.# #.# #.# ###", "1": ".#. ##. .#. .#. ###", "2": "### ..# ### #.. ###", "3": "### ..# .## ..# ###",
    "4": "#.# #.# ### ..# ..#", "5": "### #.. ### ..# ###", "6": "### #.. ### #.# ###", "7": "### ..# ..# .#. .#.",
    "8": "### #.# ### #.# ###", "9": "### #.# ### ..# ###", "A": ".#. #.# ### #.# #.#", "B": "##. #.# ##. #.# ##.",
    "C": "### #.. #.. #.. ###", "D": "##. #.# #.# #.# ##.", "E": "### #.. ##. #.. ###", "F": "### #.. ##. #.. #..",
    "G": "### #.. #.# #.# ###", "H": "#.# #.# ### #.# #.#", "I": "### .#. .#. .#. ###", "J": "..# ..# ..# #.# ###",
    "K": "#.# ##. #.. ##. #.#", "L": "#.. #.. #.. #.. ###", "M": "#.# ### ### #.# #.#", "N": "##. #.# #.# #.# #.#",
    "O": "### #.# #.# #.# ###", "P": "### #.# ### #.. #..", "Q": "### #.# #.# ### ..#", "R": "##. #.# ##. #.# #.#",
    "S": "### #.. ### ..# ###", "T": "### .#. .#. .#. .#.", "U": "#.# #.# #.# #.# ###", "V": "#.# #.# #.# #.# .#.",
    "W": "#.# #.# ### ### #.#", "X": "#.# #.# .#. #.# #.#", "Y": "#.# #.# .#. .#. .#.", "Z": "### ..# .#. #.. ###",
    "%": "#.# ..# .#. #.. #.#", ".": "... ... ... ... .#.", "-": "... ... ### ... ...", "(": ".#. #.. #.. #.. .#.",
    ")": ".#. ..# ..# ..# .#.", ":": "... .#. ... .#. ...", "/": "..# ..# .#. #.. #..", "_": "... ... ... ... ###",
    "+": "... .#. ### .#. ...", "=": "... ### ... ### ...", " ": "... ... ... ... ...",
}
_FONT = {ch: [row for row in rows.split()] for ch, rows in _FONT_ROWS.items()}
PALETTE = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (23, 190, 207)]


class Canvas:
    """An RGB raster with just what a line chart needs."""

    def __init__(self, width: int, height: int, background: tuple[int, int, int] = (255, 255, 255)) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def dot(self, x: int, y: int, color: tuple[int, int, int], size: int = 1) -> None:
        for dx in range(size):
            for dy in range(size):
                px, py = x + dx, y + dy
                if 0 <= px < self.width and 0 <= py < self.height:
                    i = 3 * (py * self.width + px)
                    self.pixels[i:i + 3] = bytes(color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: tuple[int, int, int], width: int = 1) -> None:
        """Bresenham's line, `width` pixels thick."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        while True:
            self.dot(x0 - width // 2, y0 - width // 2, color, width)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def text(self, x: int, y: int, text: str, color: tuple[int, int, int] = (0, 0, 0), scale: int = 2) -> int:
        """Draw text with the 3×5 font; returns the x after the last glyph."""
        for ch in text.upper():
            glyph = _FONT.get(ch, _FONT[" "])
            for r, row in enumerate(glyph):
                for c, cell in enumerate(row):
                    if cell == "#":
                        self.dot(x + c * scale, y + r * scale, color, scale)
            x += 4 * scale
        return x

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(self.pixels[3 * y * self.width:3 * (y + 1) * self.width]) for y in range(self.height))

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def allocation_plot(series: dict[str, list[float | None]], path: str | Path, title: str = "",
                    y_min: float = 0.0, width: int = 900, height: int = 600) -> None:
    """Draw allocated % (y) against arrived % (x, 0..130) for each named curve and write a PNG."""
    if not series:
        raise ValueError("plot: no curves to draw")
    cv = Canvas(width, height)
    left, right, top, bottom = 70, width - 20, 40, height - 60
    x_max, y_max = 130.0, 100.0

    def px(x: float) -> int:
        return int(left + (right - left) * x / x_max)

    def py(y: float) -> int:
        return int(bottom - (bottom - top) * (y - y_min) / (y_max - y_min))

    grid, axis = (225, 225, 225), (60, 60, 60)
    for x in range(0, 131, 10):
        cv.line(px(x), top, px(x), bottom, grid)
        cv.text(px(x) - 8, bottom + 8, str(x), axis)
    y = y_min
    while y <= y_max + 1e-9:
        cv.line(left, py(y), right, py(y), grid)
        cv.text(left - 40, py(y) - 5, f"{y:g}", axis)
        y += 10
    cv.line(left, bottom, right, bottom, axis, 2)
    cv.line(left, top, left, bottom, axis, 2)
    cv.text(px(40), height - 24, "ARRIVED GPU DEMAND (% OF CAPACITY)", axis)
    cv.text(left, 10, title or "GPU ALLOCATION (%)", axis)
    for k, (name, curve) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        prev: tuple[int, int] | None = None
        for x, v in enumerate(curve):
            if v is None:
                prev = None
                continue
            point = (px(x), py(max(y_min, min(y_max, v))))
            if prev is not None:
                cv.line(prev[0], prev[1], point[0], point[1], color, 2)
            prev = point
        ly = top + 14 + 18 * k
        cv.line(left + 14, ly + 4, left + 40, ly + 4, color, 3)
        last = next((v for v in reversed(curve) if v is not None), None)
        label = f"{name} {last:.2f}%" if last is not None else name
        cv.text(left + 48, ly, label, color)
    Path(path).write_bytes(cv.png())
