"""The loss curve as a picture the Dagster UI shows: a PNG embedded in Markdown metadata
(``![loss](data:image/png;base64,...)``, as Dagster's docs embed a matplotlib figure).

matplotlib draws it when it is installed (its Agg backend, through ``Figure`` and ``FigureCanvasAgg``: no
pyplot, no global backend switch, safe in a step's thread); without it, ``plain_png`` draws the curve,
its grid and axes with the standard library alone, and the caption under the image gives the numbers.

Light: no torch, no transformers; matplotlib only inside ``loss_png``.
"""

from __future__ import annotations

import base64
import io
import math
import struct
import zlib
from typing import Any, Sequence

WIDTH, HEIGHT = 640, 280  # pixels, either way
CURVE = (31, 119, 180)  # matplotlib's first colour
GRID = (224, 224, 224)
AXES = (64, 64, 64)
# plain_png's labels: 3x5 glyphs, a row of three bits per string, drawn twice their size.
GLYPHS = {
    "0": "111 101 101 101 111", "1": "010 110 010 010 111", "2": "111 001 111 100 111", "3": "111 001 111 001 111",
    "4": "101 101 111 001 001", "5": "111 100 111 001 111", "6": "111 100 111 101 111", "7": "111 001 001 001 001",
    "8": "111 101 111 101 111", "9": "111 101 111 001 111", ".": "000 000 000 000 010", "-": "000 000 111 000 000",
    "+": "000 010 111 010 000", ",": "000 000 000 010 100", "e": "000 111 111 100 111", "l": "110 010 010 010 111",
    "o": "000 111 101 101 111", "s": "000 011 110 001 110", "t": "010 111 010 010 011", "p": "000 111 101 111 100",
    " ": "000 000 000 000 000",
}


def loss_points(curve: Sequence[dict[str, Any]]) -> list[tuple[int, float]]:
    """``(step, loss)`` of each metrics report with a finite loss, in step order."""
    points = []
    for m in curve:
        try:
            step, loss = int(m["step"]), float(m["loss"])
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(loss):
            points.append((step, loss))
    return sorted(points)


def loss_png(steps: Sequence[int], losses: Sequence[float]) -> bytes:
    """The training loss against the step as PNG bytes: matplotlib's when it is installed, else ``plain_png``."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return plain_png(steps, losses)
    figure = Figure(figsize=(WIDTH / 100, HEIGHT / 100), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(steps, losses, color=tuple(c / 255 for c in CURVE), marker="." if len(steps) <= 30 else None)
    axes.set_xlabel("step")
    axes.set_ylabel("training loss")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def loss_plot_markdown(curve: Sequence[dict[str, Any]]) -> str | None:
    """The curve's plot as Markdown (the image, then a line with the numbers), or None with no finite loss."""
    points = loss_points(curve)
    if not points:
        return None
    steps, losses = [s for s, _ in points], [v for _, v in points]
    image = base64.b64encode(loss_png(steps, losses)).decode("ascii")
    caption = (f"Training loss {losses[0]:.4g} at step {steps[0]:,} -> {losses[-1]:.4g} at step {steps[-1]:,} "
               f"(lowest {min(losses):.4g}, {len(points)} reports)")
    return f"![training loss](data:image/png;base64,{image})\n\n{caption}"


def plain_png(steps: Sequence[int], losses: Sequence[float], width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """The curve drawn with the standard library: a white RGB image, four grid lines, the left and bottom axes,
    and the losses joined by a 2-pixel line (a dot at each report when there are few)."""
    left, right, top, bottom = 48, 16, 16, 32
    pixels = bytearray(b"\xff" * (width * height * 3))

    def put(x: int, y: int, colour: tuple[int, int, int]) -> None:
        if 0 <= x < width and 0 <= y < height:
            i = (y * width + x) * 3
            pixels[i:i + 3] = bytes(colour)

    def line(x0: int, y0: int, x1: int, y1: int, colour: tuple[int, int, int], thick: int = 1) -> None:
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        error = dx + dy
        while True:  # Bresenham
            for t in range(thick):
                put(x0 + t, y0, colour)
                put(x0, y0 + t, colour)
            if (x0, y0) == (x1, y1):
                return
            doubled = 2 * error
            if doubled >= dy:
                error, x0 = error + dy, x0 + sx
            if doubled <= dx:
                error, y0 = error + dx, y0 + sy

    def text(x: int, y: int, label: str, align: str = "left", scale: int = 2) -> None:
        advance = 4 * scale
        x -= {"left": 0, "right": len(label) * advance - scale, "center": (len(label) * advance - scale) // 2}[align]
        for n, char in enumerate(label):
            for row, bits in enumerate(GLYPHS.get(char, GLYPHS[" "]).split()):
                for col, bit in enumerate(bits):
                    if bit == "1":
                        for ox in range(scale):
                            for oy in range(scale):
                                put(x + n * advance + col * scale + ox, y + row * scale + oy, AXES)

    plot_w, plot_h = width - left - right, height - top - bottom
    for i in range(5):  # grid: the top, three between, the bottom (drawn over by the axis)
        y = top + round(i * plot_h / 4)
        line(left, y, width - right, y, GRID)
    low, high = min(losses), max(losses)
    span = (high - low) or 1.0
    first, last = steps[0], steps[-1]
    extent = (last - first) or 1

    def at(step: int, loss: float) -> tuple[int, int]:
        x = left + round((step - first) / extent * plot_w) if last != first else left + plot_w // 2
        y = top + round((high - loss) / span * plot_h) if high != low else top + plot_h // 2
        return x, y

    points = [at(s, v) for s, v in zip(steps, losses)]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        line(x0, y0, x1, y1, CURVE, thick=2)
    if len(points) <= 30:
        for x, y in points:
            for ox in range(-2, 3):
                for oy in range(-2, 3):
                    put(x + ox, y + oy, CURVE)
    line(left, top, left, height - bottom, AXES)
    line(left, height - bottom, width - right, height - bottom, AXES)
    text(left - 6, top - 5, f"{high:.3g}", "right")  # the loss at the top and bottom grid lines
    text(left - 6, top + plot_h - 5, f"{low:.3g}", "right")
    text(left - 6, top + plot_h // 2 - 5, "loss", "right")
    text(left, height - bottom + 8, f"{first:,}")  # the first and last step under the axis
    text(width - right, height - bottom + 8, f"{last:,}", "right")
    text(left + plot_w // 2, height - bottom + 8, "step", "center")
    return encode_png(width, height, bytes(pixels))


def encode_png(width: int, height: int, rgb: bytes) -> bytes:
    """8-bit RGB ``rgb`` (rows top to bottom) as a PNG file."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    stride = width * 3
    raw = b"".join(b"\x00" + rgb[y * stride:(y + 1) * stride] for y in range(height))  # filter 0 on each row
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
