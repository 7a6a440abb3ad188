"""Bad and odd inputs to the writing API: the exact error type, or the exact stored value."""

from __future__ import annotations

import enum
import math
from decimal import Decimal
from fractions import Fraction
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

import tracklog
from tracklog.errors import ValidationError, ValueTypeError
from tracklog.write import validate

from .conftest import events_of


class Color(enum.Enum):
    RED = "red"


class Torchish:
    """A framework scalar: only __float__."""

    def __float__(self) -> float:
        return 2.5


BAD_KEYS = [
    (None, ValueTypeError),
    (3, ValueTypeError),
    (b"loss", ValueTypeError),
    ("", ValidationError),
    ("a\nb", ValidationError),
    ("tab\there", ValidationError),
    ("nul\x00", ValidationError),
    ("\x1b[31mred", ValidationError),
    ("x" * (validate.MAX_KEY_CHARS + 1), ValidationError),
]


@pytest.mark.parametrize(("key", "exc"), BAD_KEYS)
def test_bad_metric_keys_are_refused_and_nothing_is_logged(key: object, exc: type) -> None:
    with tracklog.start_run() as run:
        with pytest.raises(exc):
            run.log_metric(key, 1.0)  # type: ignore[arg-type]
        with pytest.raises(exc):
            run.log_param(key, 1)  # type: ignore[arg-type]
        with pytest.raises(exc):
            run.set_tag(key, 1)  # type: ignore[arg-type]
    assert not [e for e in events_of(run.path) if e.kind in ("metric", "param", "tag")]


GOOD_KEYS = ["train/loss", "acc@1", "f1[macro]", "ünïcödé/损失", "with space", "x" * validate.MAX_KEY_CHARS]


@pytest.mark.parametrize("key", GOOD_KEYS)
def test_printable_keys_round_trip(key: str) -> None:
    with tracklog.start_run() as run:
        run.log_metric(key, 1.0)
    assert [e.key for e in events_of(run.path) if e.kind == "metric"] == [key]


BAD_METRIC_VALUES = [
    ("1.0", ValueTypeError),
    (b"1", ValueTypeError),
    (None, ValueTypeError),
    ([1.0], ValueTypeError),
    (np.array([1.0, 2.0]), ValueTypeError),
    (1 + 2j, ValueTypeError),
    ({"a": 1}, ValueTypeError),
    (object(), ValueTypeError),
    (10**400, ValidationError),
]


@pytest.mark.parametrize(("value", "exc"), BAD_METRIC_VALUES)
def test_bad_metric_values_are_refused(value: object, exc: type) -> None:
    with tracklog.start_run() as run:
        with pytest.raises(exc, match="'m'"):
            run.log_metric("m", value)
        with pytest.raises(exc):
            run.log_metrics({"ok": 1.0, "m": value})
    assert not [e for e in events_of(run.path) if e.kind == "metric"]  # log_metrics is all or nothing


GOOD_METRIC_VALUES = [
    (1, 1.0),
    (True, 1.0),
    (np.float32(0.5), 0.5),
    (np.int64(7), 7.0),
    (np.array(3.25), 3.25),
    (Decimal("0.125"), 0.125),
    (Fraction(1, 4), 0.25),
    (Torchish(), 2.5),
    (float("inf"), float("inf")),
    (float("-inf"), float("-inf")),
    (2**62, float(2**62)),
]


@pytest.mark.parametrize(("value", "stored"), GOOD_METRIC_VALUES)
def test_numbers_are_stored_as_float(value: object, stored: float) -> None:
    with tracklog.start_run() as run:
        run.log_metric("m", value)
    (ev,) = [e for e in events_of(run.path) if e.kind == "metric"]
    assert type(ev.value) is float and ev.value == stored


def test_nan_round_trips_bit_exactly() -> None:
    odd_nan = struct_nan = np.frombuffer(np.uint64(0x7FF8DEADBEEF0001).tobytes(), np.float64)[0]
    with tracklog.start_run() as run:
        run.log_metric("m", float(odd_nan))
        run.log_metrics({"a": math.nan})
    vals = [e.value for e in events_of(run.path) if e.kind == "metric"]
    assert np.float64(vals[0]).tobytes() == np.float64(struct_nan).tobytes()
    assert math.isnan(vals[1])


BAD_STEPS = [
    ("3", ValueTypeError),
    (1.5, ValueTypeError),
    (True, ValueTypeError),
    (2**63, ValidationError),
    (-(2**63) - 1, ValidationError),
    (None.__class__, ValueTypeError),
]


@pytest.mark.parametrize(("step", "exc"), BAD_STEPS)
def test_bad_steps_are_refused(step: object, exc: type) -> None:
    with tracklog.start_run() as run, pytest.raises(exc):
        run.log_metric("m", 1.0, step=step)  # type: ignore[arg-type]


def test_numpy_integer_steps_and_int64_bounds_are_accepted() -> None:
    with tracklog.start_run() as run:
        run.log_metric("m", 1.0, step=np.int32(5))  # type: ignore[arg-type]
        run.log_metric("m", 1.0, step=2**63 - 1)
        run.log_metric("m", 1.0, step=-(2**63))
    assert [e.step for e in events_of(run.path) if e.kind == "metric"] == [5, 2**63 - 1, -(2**63)]


@pytest.mark.parametrize("ts", [math.nan, math.inf, "now", None.__class__])
def test_bad_timestamps_are_refused(ts: object) -> None:
    with tracklog.start_run() as run, pytest.raises((ValidationError, ValueTypeError)):
        run.log_metric("m", 1.0, timestamp=ts)  # type: ignore[arg-type]


PARAM_CONVERSIONS = [
    (Path("/data/x"), "/data/x"),
    (PurePosixPath("rel/y"), "rel/y"),
    (Color.RED, "red"),
    ((1, 2, (3,)), [1, 2, [3]]),
    (np.float64(0.5), 0.5),
    (np.int8(-3), -3),
    (np.bool_(True), True),
    (np.array([1, 2]), [1, 2]),
    ({"opt": {"name": "adam", "betas": (0.9, 0.99)}}, {"opt": {"name": "adam", "betas": [0.9, 0.99]}}),
    (None, None),
    (True, True),
    (1, 1),
    (1.0, 1.0),
    ("text", "text"),
]


@pytest.mark.parametrize(("value", "stored"), PARAM_CONVERSIONS)
def test_params_keep_json_like_types(value: object, stored: object) -> None:
    with tracklog.start_run() as run:
        run.log_param("p", value)
    (ev,) = [e for e in events_of(run.path) if e.kind == "param"]
    assert ev.value == stored and type(ev.value) is type(stored)


BAD_PARAMS = [
    (object(), ValueTypeError),
    ({1: "int key"}, ValueTypeError),
    ({"s": {1, 2}}, ValueTypeError),
    (b"bytes", ValueTypeError),
    (2**64, ValidationError),
    (lambda: 0, ValueTypeError),
]


@pytest.mark.parametrize(("value", "exc"), BAD_PARAMS)
def test_unstorable_params_raise_naming_the_key(value: object, exc: type) -> None:
    with tracklog.start_run() as run, pytest.raises(exc, match="'p'"):
        run.log_param("p", value)


def test_deeply_nested_params_are_refused() -> None:
    deep: object = 1
    for _ in range(validate.MAX_NESTING + 5):
        deep = [deep]
    with tracklog.start_run() as run, pytest.raises(ValidationError, match="nested"):
        run.log_param("deep", deep)


def test_huge_param_is_refused_not_written() -> None:
    with tracklog.start_run() as run:
        with pytest.raises(ValidationError, match="limit"):
            run.log_param("blob", "x" * (17 * 1024 * 1024))
        run.log_param("small", 1)
    assert [e.key for e in events_of(run.path) if e.kind == "param"] == ["small"]


def test_params_and_tags_may_be_an_argparse_namespace_or_a_dataclass(root: Path) -> None:
    import argparse
    import dataclasses

    @dataclasses.dataclass
    class Optim:
        name: str = "adam"
        betas: tuple[float, float] = (0.9, 0.999)

    @dataclasses.dataclass
    class Config:
        lr: float = 0.1
        optim: Optim = dataclasses.field(default_factory=Optim)

    args = argparse.Namespace(epochs=3, data="/d")
    with tracklog.start_run(run_id="r", params=args) as run:
        run.log_params(Config())
        run.set_tags(argparse.Namespace(team="vision"))
    state = tracklog.replay(root / "runs" / "r")
    assert state.params == {
        "epochs": 3,
        "data": "/d",
        "lr": 0.1,
        "optim": {"name": "adam", "betas": [0.9, 0.999]},
    }
    assert state.tags == {"team": "vision"}
    with (
        tracklog.start_run(run_id="s") as run,
        pytest.raises(tracklog.ValidationError, match="dataclass, got list"),
    ):
        run.log_params([("a", 1)])  # type: ignore[arg-type]
    with tracklog.start_run(run_id="t") as run, pytest.raises(tracklog.ValidationError, match="got type"):
        run.log_params(Config)  # the class, not an instance
