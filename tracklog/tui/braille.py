"""Line charts in braille: each terminal cell is a 2x4 grid of dots, so a 60x10 cell chart
draws 120x40 points. Pure functions of arrays; the app puts the lines in a widget.

Every pixel column draws the span from its smallest to its largest value (joined to the
column before), so a one-point spike shows however many points share its column. NaN and
inf are not drawn; the caller counts them (``nonfinite``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

BASE = 0x2800
# Dot bits by (x, y) inside a cell, y downwards (Unicode's braille numbering).
_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
GUTTER = 9  # the y labels' width, a space included


def fmt(v: float) -> str:
    """A number in at most 8 characters."""
    if not math.isfinite(v):
        return str(v)
    text = f"{v:.4g}"
    return text if len(text) <= 8 else f"{v:.1e}"


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's debiased exponential moving average (weight 0: the values as they are)."""
    if weight <= 0 or len(values) == 0:
        return values
    out = np.empty_like(values)
    last = 0.0
    for i, v in enumerate(values.tolist()):
        last = last * weight + (1 - weight) * v
        out[i] = last / (1 - weight ** (i + 1))
    return out


def _prepare(
    xs: np.ndarray, ys: np.ndarray, log_y: bool, x_range: tuple[float, float] | None
) -> tuple[np.ndarray, np.ndarray]:
    """The drawable points, in x order: finite, positive on a log axis, inside the range."""
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    if log_y:
        keep &= y > 0
    if x_range is not None:
        keep &= (x >= x_range[0]) & (x <= x_range[1])
    x, y = x[keep], y[keep]
    if log_y:
        y = np.log10(y)
    order = np.argsort(x, kind="stable")
    return x[order], y[order]


def _grid(
    x: np.ndarray, y: np.ndarray, cols: int, height: int, lo: float, hi: float, x0: float, x1: float
) -> np.ndarray:
    """The braille dot bits of one line, cell by cell (``height`` x ``cols``)."""
    w, h = cols * 2, height * 4
    grid = np.zeros((height, cols), dtype=np.int64)
    if len(x) == 0:
        return grid
    px = np.zeros(len(x), dtype=np.int64) if x1 == x0 else ((x - x0) / (x1 - x0) * (w - 1)).astype(np.int64)
    py = ((hi - y) / (hi - lo) * (h - 1)).round().astype(np.int64)  # 0 at the top
    px, py = np.clip(px, 0, w - 1), np.clip(py, 0, h - 1)
    starts = np.flatnonzero(np.r_[True, px[1:] != px[:-1]])
    top = np.minimum.reduceat(py, starts)
    bottom = np.maximum.reduceat(py, starts)
    first = py[starts]
    last = py[np.r_[starts[1:] - 1, len(py) - 1]]

    def dots(c: int, t: int, b: int) -> None:
        for yy in range(min(t, b), max(t, b) + 1):
            grid[yy // 4, c // 2] |= _BITS[c % 2][yy % 4]

    prev_c = prev_y = None
    cols_ = px[starts].tolist()
    for c, t, b, y0, end in zip(
        cols_, top.tolist(), bottom.tolist(), first.tolist(), last.tolist(), strict=True
    ):
        if prev_c is not None and prev_y is not None:
            # A line to this column's first point, through the columns no point falls in.
            y_at = prev_y
            for cc in range(prev_c + 1, c):
                yi = round(prev_y + (y0 - prev_y) * (cc - prev_c) / (c - prev_c))
                dots(cc, y_at, yi)
                y_at = yi
            t, b = min(t, y_at), max(b, y_at)
        dots(c, t, b)
        prev_c, prev_y = c, end
    return grid


def _scale(
    lines: list[tuple[np.ndarray, np.ndarray]], x_range: tuple[float, float] | None
) -> tuple[float, ...]:
    xs = [x for x, _ in lines if len(x)]
    ys = [y for _, y in lines if len(y)]
    lo, hi = min(float(y.min()) for y in ys), max(float(y.max()) for y in ys)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    x0, x1 = x_range if x_range is not None else (min(float(x[0]) for x in xs), max(float(x[-1]) for x in xs))
    return lo, hi, x0, x1


def render(
    xs: np.ndarray,
    ys: np.ndarray,
    width: int,
    height: int,
    log_y: bool = False,
    x_range: tuple[float, float] | None = None,
) -> list[str]:
    """``height`` lines of ``width`` characters: y labels in a gutter, then the chart.
    Points outside ``x_range`` (default: all of them) are not drawn."""
    return ["".join(ch for ch, _ in line) for line in render_many([xs], [ys], width, height, log_y, x_range)]


def render_many(
    xs: Sequence[np.ndarray],
    ys: Sequence[np.ndarray],
    width: int,
    height: int,
    log_y: bool = False,
    x_range: tuple[float, float] | None = None,
) -> list[list[tuple[str, int]]]:
    """Several lines on one scale: each line of output as (character, index of the line it
    draws, -1 for none or a label); where lines share a cell, the first listed owns it."""
    cols = max(1, width - GUTTER)
    lines = [_prepare(x, y, log_y, x_range) for x, y in zip(xs, ys, strict=True)]
    if not any(len(x) for x, _ in lines):
        return [[(ch, -1) for ch in "(no points to draw)".ljust(width)]] + [[(" ", -1)] * width] * (
            height - 1
        )
    lo, hi, x0, x1 = _scale(lines, x_range)
    bits = np.zeros((height, cols), dtype=np.int64)
    owner = np.full((height, cols), -1, dtype=np.int64)
    for i, (x, y) in enumerate(lines):
        g = _grid(x, y, cols, height, lo, hi, x0, x1)
        owner[(g != 0) & (owner < 0)] = i
        bits |= g
    labels = _labels(lo, hi, height, log_y)
    out = []
    for r in range(height):
        row = [(ch, -1) for ch in labels[r]]
        row += [
            (chr(BASE + v) if v else " ", o) for v, o in zip(bits[r].tolist(), owner[r].tolist(), strict=True)
        ]
        out.append(row)
    return out


def _labels(lo: float, hi: float, height: int, log_y: bool) -> list[str]:
    def show(v: float) -> str:
        return fmt(10**v if log_y else v)

    out = [" " * GUTTER] * height
    out[0] = show(hi).rjust(GUTTER - 1) + " "
    if height > 1:
        out[-1] = show(lo).rjust(GUTTER - 1) + " "
    return out


def x_axis(x0: float, x1: float, width: int) -> str:
    """The x range under a chart: its first and last step (or time)."""
    left, right = fmt(x0), fmt(x1)
    room = max(1, width - GUTTER - len(left) - len(right))
    return " " * GUTTER + left + " " * room + right


def nonfinite(values: Sequence[float] | np.ndarray) -> int:
    return int(np.count_nonzero(~np.isfinite(np.asarray(values, dtype=np.float64))))
