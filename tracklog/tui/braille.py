"""Line charts in braille: each terminal cell is a 2x4 grid of dots, so a 60x10 cell chart
draws 120x40 points. Pure functions of arrays; the app puts the lines in a widget.

Every pixel column draws the span from its smallest to its largest value (joined to the
column before), so a one-point spike shows however many points share its column. NaN and
inf are not drawn; the caller counts them (``nonfinite``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

BASE = 0x2800
# Dot bits by (x, y) inside a cell, y downwards (Unicode's braille numbering).
_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
_WEIGHTS = np.array(_BITS, dtype=np.int64).T  # [y, x]: the bit of a dot
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
    if len(x) > 1 and bool((x[1:] < x[:-1]).any()):  # a run that logged steps out of order
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
    return x, y


def _grid(
    x: np.ndarray, y: np.ndarray, cols: int, height: int, lo: float, hi: float, x0: float, x1: float
) -> np.ndarray:
    """The braille dot bits of one line, cell by cell (``height`` x ``cols``), with array work:
    each pixel column's span from its smallest to its largest value, joined to the column
    before (through the columns no point falls in, by a straight line)."""
    w, h = cols * 2, height * 4
    if len(x) == 0:
        return np.zeros((height, cols), dtype=np.int64)
    px = np.zeros(len(x), dtype=np.int64) if x1 == x0 else ((x - x0) / (x1 - x0) * (w - 1)).astype(np.int64)
    py = ((hi - y) / (hi - lo) * (h - 1)).round().astype(np.int64)  # 0 at the top
    px, py = np.clip(px, 0, w - 1), np.clip(py, 0, h - 1)
    starts = np.flatnonzero(np.r_[True, px[1:] != px[:-1]])
    col = px[starts]  # the pixel columns points fall in, ascending
    top = np.minimum.reduceat(py, starts)
    bottom = np.maximum.reduceat(py, starts)
    first = py[starts]
    last = py[np.r_[starts[1:] - 1, len(py) - 1]]
    # The columns between two with points: the line from the last point of the one before
    # to the first of the next, each such column spanning from the column before's y to its own.
    gap = col[1:] - col[:-1] - 1
    of = np.repeat(np.arange(len(gap)), gap)  # the gap each empty column is in
    k = np.arange(len(of)) - np.repeat(np.cumsum(gap) - gap, gap) + 1  # 1 for a gap's first column
    prev_y, next_y, span = last[:-1][of], first[1:][of], (gap + 1)[of]
    yi = np.round(prev_y + (next_y - prev_y) * k / span).astype(np.int64)
    entry = np.where(k == 1, prev_y, np.r_[0, yi[:-1]])  # the y the line comes in at
    # A column with points also reaches down (or up) to where the line came in.
    came = np.where(gap > 0, yi[np.maximum(np.cumsum(gap) - 1, 0)] if len(yi) else 0, last[:-1])
    top[1:], bottom[1:] = np.minimum(top[1:], came), np.maximum(bottom[1:], came)
    lo_y = np.full(w, h, dtype=np.int64)  # no dots: an empty span
    hi_y = np.full(w, -1, dtype=np.int64)
    lo_y[col], hi_y[col] = top, bottom
    filled = col[:-1][of] + k
    lo_y[filled], hi_y[filled] = np.minimum(entry, yi), np.maximum(entry, yi)
    dots = (np.arange(h)[:, None] >= lo_y) & (np.arange(h)[:, None] <= hi_y)  # (h, w)
    cells = dots.reshape(height, 4, cols, 2).astype(np.int64)
    bits: np.ndarray = np.einsum("rycx,yx->rc", cells, _WEIGHTS)  # each cell's dots, as bits
    return bits


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
    return [
        "".join(text for text, _ in line) for line in render_many([xs], [ys], width, height, log_y, x_range)
    ]


def render_many(
    xs: Sequence[np.ndarray],
    ys: Sequence[np.ndarray],
    width: int,
    height: int,
    log_y: bool = False,
    x_range: tuple[float, float] | None = None,
) -> list[list[tuple[str, int]]]:
    """Several lines on one scale: each line of output as runs of (text, index of the line
    it draws, -1 for none or a label), the runs' texts ``width`` characters together; where
    lines share a cell, the first listed owns it."""
    cols = max(1, width - GUTTER)
    lines = [_prepare(x, y, log_y, x_range) for x, y in zip(xs, ys, strict=True)]
    if not any(len(x) for x, _ in lines):
        return [[("(no points to draw)".ljust(width), -1)]] + [[(" " * width, -1)]] * (height - 1)
    lo, hi, x0, x1 = _scale(lines, x_range)
    bits = np.zeros((height, cols), dtype=np.int64)
    owner = np.full((height, cols), -1, dtype=np.int64)
    for i, (x, y) in enumerate(lines):
        g = _grid(x, y, cols, height, lo, hi, x0, x1)
        owner[(g != 0) & (owner < 0)] = i
        bits |= g
    labels = _labels(lo, hi, height, log_y)
    # Characters from code points with array work: one decode per row, not a chr() per cell.
    text = np.where(bits != 0, BASE + bits, 32).astype("<u4")
    out = []
    for r in range(height):
        row = text[r].tobytes().decode("utf-32-le")
        own = owner[r]
        cuts = [0, *(np.flatnonzero(own[1:] != own[:-1]) + 1).tolist(), cols]
        out.append([(labels[r], -1)] + [(row[a:b], int(own[a])) for a, b in itertools.pairwise(cuts)])
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
