"""read/replay.py: fold a run directory or one segment file from its raw logs alone."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import tracklog
from tracklog.log import codec
from tracklog.log import format as fmt

from .helpers import crash


def _point_span(seg: Path, step: int) -> tuple[int, int]:
    """(start, end), frame included, of the single-point record of ``step``."""
    data = seg.read_bytes()
    for a, b in fmt.iter_frames(data, fmt.PREFIX_SIZE, len(data)):  # type: ignore[misc]
        rec = codec.unpack(data[a:b])
        if type(rec) is list and rec[0] == codec.METRIC and rec[2] == step:
            return a - fmt.FRAME_SIZE, b
    raise AssertionError(f"no point at step {step}")


def _closed(n: int = 10, run_id: str = "r") -> Path:
    with tracklog.start_run("exp", "first", run_id=run_id, params={"lr": 0.1}, tags={"t": 1}) as run:
        for i in range(n):
            run.log_metric("a", float(i))
    return run.path


def test_replay_of_a_closed_run_directory() -> None:
    path = _closed()
    state = tracklog.replay(path)
    assert (state.id, state.path, state.experiment, state.name) == ("r", path, "exp", "first")
    assert (state.status, state.params, state.tags) == ("finished", {"lr": 0.1}, {"t": 1})
    assert len(state.sessions) == 1 and state.sessions[0].status == "finished"
    assert state.metrics["a"].count == 10 and state.metrics["a"].last == 9.0
    assert state.history("a").step.tolist() == list(range(10))


def test_status_follows_the_lock_and_the_last_run_end() -> None:
    run = tracklog.start_run(run_id="live")
    run.log_metric("a", 1.0)
    run.flush()
    assert tracklog.replay(run.path).status == "running"
    crash(run)
    assert tracklog.replay(run.path).status == "crashed"
    with pytest.raises(ZeroDivisionError), tracklog.start_run(run_id="f") as failing:
        1 / 0  # noqa: B018
    state = tracklog.replay(failing.path)
    assert state.status == "failed" and state.error is not None
    assert state.error["type"] == "ZeroDivisionError"


def test_replay_of_one_segment_file_folds_only_that_segment() -> None:
    path = _closed(5)
    with tracklog.start_run(run_id="r", resume=True) as again:
        again.log_metric("a", 50.0)
        again.set_tag("t", 2)
    seg1, seg2 = path / "seg-000001.tlog", path / "seg-000002.tlog"
    whole, first, second = tracklog.replay(path), tracklog.replay(seg1), tracklog.replay(seg2)
    assert whole.history("a").step.tolist() == [0, 1, 2, 3, 4, 5]
    assert first.history("a").step.tolist() == [0, 1, 2, 3, 4] and first.tags == {"t": 1}
    assert second.history("a").step.tolist() == [5] and second.tags == {"t": 2}
    assert (first.id, first.path, second.id) == ("r", path, "r")
    assert [len(s.sessions) for s in (whole, first, second)] == [2, 1, 1]


def test_multi_segment_runs_fold_sessions_and_supersede_on_resume_step() -> None:
    run = tracklog.start_run(run_id="m")
    for i in range(10):
        run.log_metrics({"a": float(i), "b": float(-i)})
    crash(run)
    with tracklog.start_run(run_id="m", resume=True, resume_step=6) as again:
        again.log_metric("a", 600.0)
    state = tracklog.replay(run.path)
    assert [s.status for s in state.sessions] == ["crashed", "finished"]
    assert state.sessions[1].resume and state.sessions[1].superseded == 8  # a and b at 6..9
    assert state.history("a").step.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert state.history("a").value.tolist()[-1] == 600.0
    assert state.metrics["b"].count == 6 and state.status == "finished"


def _corrupt_middle(path: Path) -> tuple[Path, int, int]:
    seg = path / "seg-000001.tlog"
    data = bytearray(seg.read_bytes())
    a, b = _point_span(seg, 3)
    data[b - 2] ^= 0xFF
    seg.write_bytes(bytes(data))
    return seg, a, b


def test_on_corrupt_warn_names_the_offsets_and_skips_the_record() -> None:
    seg, a, b = _corrupt_middle(_closed())
    with pytest.warns(tracklog.TracklogWarning, match=rf"{seg.name}: corrupt bytes {a}\.\.{b} skipped"):
        state = tracklog.replay(seg.parent)
    assert state.history("a").step.tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert state.status == "finished"  # records after the damage are salvaged


def test_on_corrupt_raise_raises_with_path_and_offset() -> None:
    seg, a, _ = _corrupt_middle(_closed())
    with pytest.raises(tracklog.CorruptLogError, match="corrupt bytes") as info:
        tracklog.replay(seg.parent, on_corrupt="raise")
    assert info.value.path == str(seg) and info.value.offset == a


def test_on_corrupt_ignore_is_silent_and_folds_the_same() -> None:
    seg, _, _ = _corrupt_middle(_closed())
    quiet = tracklog.replay(seg.parent, on_corrupt="ignore")  # TracklogWarning is an error here
    with pytest.warns(tracklog.TracklogWarning):
        assert tracklog.replay(seg.parent) == quiet


def test_a_torn_tail_is_silent_in_every_mode() -> None:
    path = _closed()
    seg = path / "seg-000001.tlog"
    seg.write_bytes(seg.read_bytes()[: _point_span(seg, 9)[0] + 7])  # cut inside point 9
    for mode in ("warn", "raise", "ignore"):
        state = tracklog.replay(path, on_corrupt=mode)
        assert state.metrics["a"].count == 9 and state.status == "crashed"


def test_a_superseding_segment_caps_the_older_one_in_a_directory_replay() -> None:
    path = _closed()
    seg1 = path / "seg-000001.tlog"
    cut = _point_span(seg1, 5)[0]  # where point 5 starts: the newer segment re-writes from there
    header = {"run_id": "r", "session": "ab", "seq": 2, "supersedes": [seg1.name, cut]}
    now = time.time()
    records: list[list[Any]] = [[codec.METRIC, "a", s, s * 10.0, now] for s in (5, 6)]
    records.append([codec.RUN_END, {"status": "killed", "time": now, "error": None, "signal": "SIGTERM"}])
    body = b"".join(fmt.frame(codec.pack(r)) for r in records)
    (path / "seg-000002.tlog").write_bytes(codec.encode_segment_start(header) + body)
    state = tracklog.replay(path)
    assert state.history("a").step.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert state.history("a").value.tolist()[5:] == [50.0, 60.0] and state.status == "killed"
    assert tracklog.replay(seg1).metrics["a"].count == 10  # alone, a segment is read whole


def test_replay_of_a_missing_or_unusable_path_raises_run_not_found(tmp_path: Path) -> None:
    with pytest.raises(tracklog.RunNotFoundError):
        tracklog.replay(tmp_path / "nothing")
    with pytest.raises(tracklog.RunNotFoundError):
        tracklog.replay("bad\0path")


def _with_malformed_point(path: Path, step: int) -> tuple[Path, int, int]:
    """Insert, before point ``step``, a record whose frame verifies but whose step is a str."""
    seg = path / "seg-000001.tlog"
    data = seg.read_bytes()
    at = _point_span(seg, step)[0]
    bad = fmt.frame(codec.pack([codec.METRIC, "a", "three", 3.0, time.time()]))
    seg.write_bytes(data[:at] + bad + data[at:])
    return seg, at, at + len(bad)


def test_replay_report_says_what_the_fold_skipped_in_one_read() -> None:
    from tracklog.read.replay import replay_report

    clean = replay_report(_closed(run_id="clean"))
    assert not clean.damaged and clean.malformed == 0
    assert [(r.corrupt, r.torn_tail) for r in clean.segments] == [([], None)]
    seg, a, b = _corrupt_middle(_closed(run_id="bad"))
    got = replay_report(seg.parent, on_corrupt="ignore")
    assert got.damaged and got.segments[0].corrupt == [(a, b)] and got.malformed == 0
    assert got.state == tracklog.replay(seg.parent, on_corrupt="ignore")
    seg, a, b = _with_malformed_point(_closed(run_id="odd"), 3)
    got = replay_report(seg.parent, on_corrupt="ignore")
    assert got.damaged and got.malformed == 1 and got.state.metrics["a"].count == 10
    assert tracklog.scan(seg)[0].corrupt == [(a, b)]  # scan says where the malformed record is
    path = _closed(run_id="torn")
    seg = path / "seg-000001.tlog"
    start = _point_span(seg, 9)[0]
    seg.write_bytes(seg.read_bytes()[: start + 7])  # cut inside point 9: what a crash leaves
    got = replay_report(path)  # not a warning either: TracklogWarning is an error here
    assert not got.damaged and got.segments[0].torn_tail == start and got.segments[0].corrupt == []
