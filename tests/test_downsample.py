"""read/downsample.py: decimation keeps spikes, both ends, every point when they fit, and order."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tracklog.read.downsample import window


def _series(values: list[float], steps: list[int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    v = np.array(values, dtype=np.float64)
    s = np.array(steps if steps is not None else range(len(values)), dtype=np.int64)
    return s, v, s.astype(np.float64) * 0.5 + 1000.0


def test_a_series_that_fits_comes_back_exactly() -> None:
    s, v, t = _series([3.0, 1.0, 2.0])
    d = window(s, v, t, max_points=10)
    assert d.step.tolist() == [0, 1, 2] and d.value.tolist() == [3.0, 1.0, 2.0]
    assert d.time.tolist() == [1000.0, 1000.5, 1001.0]
    assert d.total == 3 and not d.sampled


def test_a_one_point_spike_among_a_million_survives() -> None:
    n = 1_000_000
    v = np.zeros(n)
    v[123_457] = 99.0
    v[765_432] = -5.0
    s = np.arange(n, dtype=np.int64)
    d = window(s, v, s.astype(np.float64), max_points=2000)
    assert len(d.step) <= 2000 and d.sampled and d.total == n
    assert 123_457 in d.step.tolist() and 765_432 in d.step.tolist()
    assert d.value.max() == 99.0 and d.value.min() == -5.0
    assert d.step[0] == 0 and d.step[-1] == n - 1


def test_non_finite_points_are_kept_apart_not_drawn_through() -> None:
    s, v, t = _series([1.0, math.nan, 2.0, math.inf, -math.inf, 3.0])
    d = window(s, v, t, max_points=10)
    assert d.step.tolist() == [0, 2, 5]
    assert d.bad_step.tolist() == [1, 3, 4]
    assert np.isnan(d.bad_value[0]) and d.bad_value[1] == math.inf and d.bad_value[2] == -math.inf


def test_the_window_is_inclusive_and_on_the_chosen_axis() -> None:
    s, v, t = _series([float(i) for i in range(100)])
    d = window(s, v, t, max_points=1000, start=10, end=20)
    assert d.step.tolist() == list(range(10, 21)) and d.total == 11
    by_time = window(s, v, t, max_points=1000, start=1005.0, end=1006.0, x="time")
    assert by_time.step.tolist() == [10, 11, 12]


def test_steps_logged_out_of_order_are_drawn_in_x_order() -> None:
    s, v, t = _series([5.0, 1.0, 3.0], steps=[20, 0, 10])
    d = window(s, v, t, max_points=10)
    assert d.step.tolist() == [0, 10, 20] and d.value.tolist() == [1.0, 3.0, 5.0]


def test_one_x_for_every_point_still_decimates() -> None:
    v = np.arange(10_000, dtype=np.float64)
    s = np.zeros(10_000, dtype=np.int64)
    d = window(s, v, s.astype(np.float64), max_points=100)
    assert len(d.value) <= 100 and d.value.min() == 0 and d.value.max() == 9999


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=1, max_size=400),
    max_points=st.integers(10, 60),
    data=st.data(),
)
def test_decimation_is_a_bounded_ordered_subset_keeping_each_extreme(
    values: list[float], max_points: int, data: st.DataObject
) -> None:
    steps = sorted(data.draw(st.lists(st.integers(-50, 500), min_size=len(values), max_size=len(values))))
    s, v, t = _series(values, steps)
    d = window(s, v, t, max_points=max_points)
    finite = [(a, b) for a, b in zip(s.tolist(), v.tolist(), strict=True) if math.isfinite(b)]
    kept = list(zip(d.step.tolist(), d.value.tolist(), strict=True))
    assert len(kept) <= max_points and len(d.bad_step) <= max_points
    assert d.total == len(values)
    # A subset of the real points, in x order: nothing invented, nothing moved.
    it = iter(finite)
    assert all(any(p == q for q in it) for p in kept)
    if len(finite) <= max_points:
        assert kept == finite
    if finite:
        assert max(b for _, b in kept) == max(b for _, b in finite)
        assert min(b for _, b in kept) == min(b for _, b in finite)
        assert kept[0] == finite[0] and kept[-1] == finite[-1]
    assert all(not math.isfinite(x) for x in d.bad_value.tolist())
