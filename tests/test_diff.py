"""read/diff.py: which params and tags differ, metric summaries side by side, Store.diff."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import tracklog
from tracklog.read.diff import RunDiff, diff_runs


def _state(
    run_id: str,
    params: dict[str, Any] | None = None,
    tags: dict[str, Any] | None = None,
    metrics: dict[str, tracklog.MetricSummary] | None = None,
) -> tracklog.RunState:
    return tracklog.RunState(
        id=run_id,
        path=None,
        experiment="exp",
        name=run_id,
        status="finished",
        start_time=1.0,
        end_time=2.0,
        error=None,
        params=params or {},
        tags=tags or {},
        artifacts={},
        sessions=[],
        metrics=metrics or {},
    )


def _summary(*values: float) -> tracklog.MetricSummary:
    return tracklog.MetricSummary(
        count=len(values),
        first_step=0,
        last_step=len(values) - 1,
        last=values[-1],
        min=min(values),
        max=max(values),
        last_time=10.0,
    )


def test_differing_and_one_sided_params_and_tags_are_kept_sorted() -> None:
    """Changed values and keys one run lacks are kept (None on the missing side), equal ones not."""
    a = _state("a", params={"opt": "adam", "lr": 0.1, "only_a": 1, "same_none": None}, tags={"t": "x"})
    b = _state("b", params={"opt": "adam", "lr": 0.2, "only_b": None, "same_none": None}, tags={"u": 1})
    d = diff_runs(a, b)
    assert d.a is a and d.b is b
    assert d.params == {"lr": (0.1, 0.2), "only_a": (1, None), "only_b": (None, None)}
    assert list(d.params) == ["lr", "only_a", "only_b"]
    assert d.tags == {"t": ("x", None), "u": (None, 1)}


def test_values_compare_by_not_equal() -> None:
    """NaN never equals NaN (a fresh NaN in a list neither); 1 equals 1.0; equal lists are equal."""
    a = _state("a", params={"x": math.nan, "l": [math.nan], "n": 1, "same": [1, 2]})
    b = _state("b", params={"x": math.nan, "l": [float("nan")], "n": 1.0, "same": [1, 2]})
    d = diff_runs(a, b)
    assert sorted(d.params) == ["l", "x"]
    assert all(math.isnan(v) for v in d.params["x"])


def test_metrics_on_one_side_only_have_none_on_the_other() -> None:
    """Every key either run logged, both summaries, None where a run has none."""
    loss_a, loss_b, acc, f1 = _summary(1.0, 0.5), _summary(0.7), _summary(0.9), _summary(0.3)
    d = diff_runs(
        _state("a", metrics={"loss": loss_a, "acc": acc}), _state("b", metrics={"loss": loss_b, "f1": f1})
    )
    assert list(d.metrics) == ["acc", "f1", "loss"]
    assert d.metrics["acc"] == (acc, None)
    assert d.metrics["f1"] == (None, f1)
    assert d.metrics["loss"] == (loss_a, loss_b)


def test_identical_runs_differ_in_nothing() -> None:
    """No params or tags; metrics still side by side."""
    s = _summary(1.0)
    d = diff_runs(
        _state("a", {"lr": 0.1}, {"t": "x"}, {"loss": s}), _state("b", {"lr": 0.1}, {"t": "x"}, {"loss": s})
    )
    assert d.params == {} and d.tags == {}
    assert d.metrics == {"loss": (s, s)}


def test_to_dict_is_plain_json() -> None:
    """Run ids, value pairs as lists, summaries as their dicts; it serialises without NaN."""
    loss = _summary(1.0, 0.5)
    d = diff_runs(
        _state("a", params={"lr": 0.1, "layers": [2, 3]}, metrics={"loss": loss}),
        _state("b", params={"lr": 0.2}, tags={"team": "cv"}),
    )
    out = d.to_dict()
    assert out == {
        "a": "a",
        "b": "b",
        "params": {"layers": [[2, 3], None], "lr": [0.1, 0.2]},
        "tags": {"team": [None, "cv"]},
        "metrics": {"loss": [loss.to_dict(), None]},
    }
    assert json.loads(json.dumps(out, allow_nan=False)) == out


def test_store_diff_reads_both_runs(tmp_path: Path) -> None:
    """By id prefix or name; a NaN param differs even from itself, as the CLI shows it."""
    root = tmp_path / "store"
    with tracklog.start_run(
        "exp", "alpha", root=root, run_id="01alpha", params={"lr": 0.1, "n": math.nan}
    ) as r:
        r.log_metric("loss", 0.5, step=0)
    with tracklog.start_run(
        "exp", "beta", root=root, run_id="02beta", params={"lr": 0.2}, tags={"t": "x"}
    ) as r:
        r.log_metric("acc", 0.9, step=0)
    store = tracklog.Store(root)
    d = store.diff("01", "beta")
    assert isinstance(d, RunDiff) and isinstance(d, tracklog.RunDiff)
    assert (d.a.id, d.b.id) == ("01alpha", "02beta")
    assert d.params["lr"] == (0.1, 0.2)
    assert math.isnan(d.params["n"][0]) and d.params["n"][1] is None
    assert d.tags == {"t": (None, "x")}
    assert [k for k, (ma, mb) in d.metrics.items() if ma is None] == ["acc"]
    assert [k for k, (ma, mb) in d.metrics.items() if mb is None] == ["loss"]
    assert list(store.diff("alpha", "alpha").params) == ["n"]
