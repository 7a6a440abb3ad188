"""tui/braille.py: lines drawn in braille keep spikes, join sparse points, and label the range."""

from __future__ import annotations

import math

import numpy as np

from tracklog.tui import braille
from tracklog.tui.app import KEEP_POINTS, Series


def _dots(lines: list[str]) -> int:
    return sum(
        bin(ord(ch) - braille.BASE).count("1") for line in lines for ch in line if ord(ch) >= braille.BASE
    )


def test_a_line_fills_its_width_and_its_labels_are_the_range() -> None:
    lines = braille.render(np.arange(100), np.linspace(0.0, 1.0, 100), 40, 5)
    assert len(lines) == 5 and all(len(line) == 40 for line in lines)
    assert lines[0].startswith("       1 ") and lines[-1].startswith("       0 ")
    chart = [line[braille.GUTTER :] for line in lines]
    assert all(any(ch != " " for ch in col) for col in zip(*chart, strict=True))  # no column left blank


def test_one_spike_among_many_points_is_drawn() -> None:
    y = np.zeros(100_000)
    y[54_321] = 10.0
    lines = braille.render(np.arange(len(y)), y, 60, 8)
    assert lines[0].startswith("      10 ")
    assert any(ord(ch) >= braille.BASE for ch in lines[0][braille.GUTTER :])  # the spike reaches the top row


def test_sparse_points_are_joined_into_a_line() -> None:
    sparse = braille.render(np.array([0, 100]), np.array([0.0, 1.0]), 40, 4)
    assert _dots(sparse) >= 2 * (40 - braille.GUTTER) - 2  # a dot (or more) in every pixel column


def test_nan_inf_and_non_positive_values_on_a_log_axis_are_not_drawn() -> None:
    y = np.array([1.0, math.nan, 10.0, math.inf, 100.0, -5.0, 0.0])
    lines = braille.render(np.arange(len(y)), y, 30, 4, log_y=True)
    assert lines[0].startswith("     100 ") and lines[-1].startswith("       1 ")
    assert braille.nonfinite(y) == 2
    assert braille.render(np.arange(3), np.full(3, math.nan), 30, 3)[0].startswith("(no points to draw)")


def test_overlaid_lines_share_one_scale_and_each_cell_names_its_line() -> None:
    rows = braille.render_many([np.arange(10), np.arange(10)], [np.zeros(10), np.full(10, 4.0)], 30, 4)
    owners = {o for row in rows for _, o in row}
    assert owners == {-1, 0, 1}
    assert "".join(ch for ch, _ in rows[0]).startswith("       4 ")


def test_smoothing_is_debiased_and_zero_leaves_values_alone() -> None:
    v = np.array([1.0, 1.0, 1.0])
    assert braille.smooth(v, 0.0) is v
    assert np.allclose(braille.smooth(v, 0.9), 1.0)  # debiased: no ramp up from zero


def test_a_series_stays_bounded_however_long_the_run() -> None:
    s = Series()
    for start in range(0, 60_000, 1_000):
        steps = list(range(start, start + 1_000))
        s.add(steps, [float(x % 97) for x in steps], [float(x) for x in steps])
    assert len(s.step) <= KEEP_POINTS and s.step[-1] == 59_999 and s.value.max() == 96.0
    s.add([5], [1.0], [5.0])  # logged before what it holds: already drawn, not added twice
    assert s.step[-1] == 59_999
