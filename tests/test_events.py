"""log/codec.py: the one set of rules that says whether a decoded record is valid, and the
encoders that build records."""

from __future__ import annotations

import math

import pytest

from tracklog.errors import CorruptLogError
from tracklog.log import codec
from tracklog.log.codec import decode_events, is_plain, record_problem

SHA = "ab" * 32
VALID = [
    [1, {"session": "ab", "time": 1.0, "run_id": "r", "experiment": "e", "resume_step": 3}],
    [2, {"status": "finished", "time": 2.0, "error": None, "signal": None}],
    [2, {"status": "failed", "time": 2.0, "error": {"type": "E", "message": "m"}}],
    [3, "lr", 0.1, 1.0],
    [4, "team", {"a": [1, "x", None]}, 1.0],
    [5, "loss", -(2**63), math.nan, 1.0],
    [6, ["a", "b"], None, 7, b"\0" * 16, 1.0],
    [7, "model/w.npy", {"sha256": SHA, "size": 0}, 1.0],
    [8, {"count": 3, "time": 1.0}],
    [64, "an optional kind from a newer minor version"],
]


@pytest.mark.parametrize("rec", VALID, ids=[str(r[0]) + ":" + repr(r)[:30] for r in VALID])
def test_valid_records_have_no_problem(rec: list) -> None:  # type: ignore[type-arg]
    assert record_problem(rec) is None
    list(decode_events(rec, "here"))


INVALID = [
    "not a list",
    [],
    [True, {}],
    [5, "loss", 2**63, 1.0, 1.0],
    [6, ["a"], b"\x05", 0, b"\0" * 8, 1.0],  # index out of range
    [6, ["a"], None, 2**64 - 1, b"\0" * 8, 1.0],
    [3, "p", {1: 2}, 1.0],
    [7, "/abs", {"sha256": SHA, "size": 1}, 1.0],
    [1, {"session": "ab", "time": math.inf}],
    [2, {"status": "crashed", "time": 1.0}],  # crashed is derived, never written
    [8, {"count": True, "time": 1.0}],
    [10, "x"],
]


@pytest.mark.parametrize("rec", INVALID, ids=lambda r: repr(r)[:30])
def test_invalid_records_are_named_and_decode_raises(rec: object) -> None:
    assert record_problem(rec) is not None
    with pytest.raises(CorruptLogError, match=r"^here: ") as info:
        list(decode_events(rec, "here", "file", 12))
    assert (info.value.path, info.value.offset) == ("file", 12)


def test_a_nan_point_time_is_a_float_like_any_other() -> None:
    # Times are not checked for finiteness per point (columnar records hold arrays of them);
    # run records, which readers show as dates, must have finite times.
    assert record_problem([5, "loss", 1, 1.0, math.nan]) is None
    assert record_problem([2, {"status": "finished", "time": math.nan}]) is not None


def test_plain_values_are_bounded_in_depth() -> None:
    v: list = []  # type: ignore[type-arg]
    for _ in range(39):
        v = [v]
    assert is_plain(v)
    assert not is_plain([[[[v]]]])
    assert not is_plain({"a": b"bin"}) and not is_plain({1: 2}) and not is_plain(2**63)


def test_encode_pending_never_splits_one_log_metrics_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "MAX_POINTS_PER_RECORD", 4)
    call = (("a", "b", "c"), [1, 1, 1], [1.0, 2.0, 3.0], 5.0)
    frames = codec.encode_pending([call, call, ("z", 0, 0.0, 1.0), call])
    assert [n for _, n in frames] == [6, 4]


def test_the_record_constructors_make_valid_records_of_the_documented_layout() -> None:
    err = ValueError("x" * 5000)
    end = codec.run_end_record("failed", 2.0, err, None)
    assert end == [
        2,
        {
            "status": "failed",
            "time": 2.0,
            "error": {"type": "ValueError", "message": "x" * 4096},
            "signal": None,
        },
    ]
    start = codec.run_start_record(
        {"session": "ab", "time": 1.0},
        "e",
        None,
        False,
        None,
        "batch",
        {"argv": ["x"], "python": "3.11", "git": None},
    )
    assert list(start[1]) == [
        "session",
        "time",
        "experiment",
        "name",
        "resume",
        "resume_step",
        "durability",
        "argv",
        "python",
        "git",
    ]
    recs = [
        start,
        end,
        codec.run_end_record("finished", 2.0, None, "SIGTERM"),
        codec.keyed_record(codec.PARAM, "lr", 0.1, 1.0),
        codec.keyed_record(codec.ARTIFACT, "m/w.npy", {"sha256": SHA, "size": 1}, 1.0),
        codec.call_record(["a", "b"], [3, 3], [1.0, 2.0], 1.0),
        codec.call_record(["a", "b"], [3, 4], [1.0, 2.0], 1.0),
        codec.dropped_record(3, 1.0),
    ]
    for rec in recs:
        assert record_problem(rec) is None, rec
    assert recs[5][3] == 3 and recs[6][3] == b"\x03" + b"\0" * 7 + b"\x04" + b"\0" * 7
