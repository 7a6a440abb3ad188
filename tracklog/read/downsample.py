"""Min/max decimation: at most a few thousand points of a series, for drawing only.

The visible x range is cut into equal-width buckets (about one per pixel column);
each bucket keeps the point of its smallest and of its largest finite value, in x
order, so a spike of one point survives however many points surround it. NaN and
inf are not values a line can pass through: they are kept apart, as markers, up to
the same budget. The first and last points always stay, so the line reaches both
ends of the window. Stored data is never touched; a zoom asks again with a
narrower window and gets the exact points once they fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Drawn:
    """What a chart gets: finite points in x order, non-finite ones apart, and counts."""

    step: np.ndarray  # int64
    value: np.ndarray  # float64, all finite
    time: np.ndarray  # float64
    bad_step: np.ndarray  # steps of NaN / inf points in the window (at most max_points)
    bad_value: np.ndarray
    bad_time: np.ndarray
    total: int  # points in the window, before decimation
    sampled: bool  # True when fewer points were kept than the window holds


def window(
    step: np.ndarray,
    value: np.ndarray,
    time: np.ndarray,
    max_points: int,
    start: float | None = None,
    end: float | None = None,
    x: str = "step",
) -> Drawn:
    """The points of ``[start, end]`` (on the ``x`` axis, "step" or "time"), decimated to
    at most ``max_points`` finite points plus at most ``max_points`` non-finite ones."""
    xs = step if x == "step" else time
    order = np.argsort(xs, kind="stable") if len(xs) > 1 and np.any(xs[1:] < xs[:-1]) else None
    if order is not None:  # a run that logged steps out of order: draw them in x order
        step, value, time, xs = step[order], value[order], time[order], xs[order]
    lo = 0 if start is None else int(np.searchsorted(xs, start, side="left"))
    hi = len(xs) if end is None else int(np.searchsorted(xs, end, side="right"))
    step, value, time, xs = step[lo:hi], value[lo:hi], time[lo:hi], xs[lo:hi]
    total = len(step)
    finite = np.isfinite(value)
    bad = np.flatnonzero(~finite)
    bad_sampled = len(bad) > max_points
    if bad_sampled:  # evenly spaced markers: where the trouble is, not all of it
        bad = bad[np.linspace(0, len(bad) - 1, max_points).astype(np.int64)]
    sampled = bad_sampled
    if len(bad):
        good = np.flatnonzero(finite)
        if len(good) > max_points:
            good = _minmax(xs[good].astype(np.float64), value[good], max_points, good)
            sampled = True
    elif total > max_points:  # the common case, all finite: no index arrays over the window
        good = _minmax(xs.astype(np.float64), value, max_points, None)
        sampled = True
    else:
        good = np.arange(total)
    return Drawn(step[good], value[good], time[good], step[bad], value[bad], time[bad], total, sampled)


def _minmax(xs: np.ndarray, value: np.ndarray, max_points: int, index: np.ndarray | None) -> np.ndarray:
    """Indices of each bucket's min and max, plus both ends (mapped through ``index``)."""
    buckets = max(1, (max_points - 2) // 2)
    span = xs[-1] - xs[0]
    if span > 0:
        b = np.minimum(((xs - xs[0]) * (buckets / span)).astype(np.int64), buckets - 1)
    else:  # one x for everything: buckets by position instead
        b = (np.arange(len(xs)) * buckets) // len(xs)
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])  # b is non-decreasing: runs of equal b
    mins = np.minimum.reduceat(value, starts)
    maxs = np.maximum.reduceat(value, starts)
    counts = np.diff(np.r_[starts, len(b)])
    ids = np.repeat(np.arange(len(starts)), counts)
    # The first point of each bucket equal to its min (and to its max): O(n), no sort.
    at_min = np.flatnonzero(value == np.repeat(mins, counts))
    at_max = np.flatnonzero(value == np.repeat(maxs, counts))
    first_min = at_min[np.r_[True, ids[at_min][1:] != ids[at_min][:-1]]]
    first_max = at_max[np.r_[True, ids[at_max][1:] != ids[at_max][:-1]]]
    keep = np.unique(np.concatenate(([0, len(xs) - 1], first_min, first_max)))
    out: np.ndarray = keep if index is None else index[keep]
    return out
