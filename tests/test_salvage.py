"""read/salvage.py: a clean copy of every recoverable record of damaged logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import tracklog
from tracklog.log import format as fmt
from tracklog.read.salvage import salvage

from .helpers import crash


def _frames(seg: Path) -> list[tuple[int, int]]:
    """(start, end) of every record, frame included, the header first."""
    data = seg.read_bytes()
    return [(a - fmt.FRAME_SIZE, b) for a, b in fmt.iter_frames(data, fmt.PREFIX_SIZE, len(data))]  # type: ignore[misc]


def _run(run_id: str = "r", n: int = 20) -> Path:
    with tracklog.start_run("exp", run_id=run_id, params={"p": 1}) as run:
        for i in range(n):
            run.log_metric("a", float(i))
    return run.path


def _flip(seg: Path, at: int) -> None:
    data = bytearray(seg.read_bytes())
    data[at] ^= 0xFF
    seg.write_bytes(bytes(data))


def _without_path(state: tracklog.RunState) -> dict[str, Any]:
    d = state.to_dict()
    d.pop("path")
    return d


def test_a_corrupt_middle_is_left_behind_and_the_good_records_replay(tmp_path: Path) -> None:
    path = _run()
    seg = path / "seg-000001.tlog"
    spans = _frames(seg)
    _flip(seg, spans[8][1] - 1)  # run_start, param, then points: this is point 5
    damaged = seg.read_bytes()
    with pytest.warns(tracklog.TracklogWarning, match="corrupt bytes"):
        want = tracklog.replay(path)
    (report,) = tracklog.scan(path)
    out = tmp_path / "clean"
    assert salvage([path], out) == report.records == len(spans) - 2  # header and the bad one
    assert seg.read_bytes() == damaged  # the original is never modified
    copy = out / "runs" / "r" / "seg-000001.tlog"
    (clean,) = tracklog.scan(copy)
    assert (clean.corrupt, clean.torn_tail, clean.records) == ([], None, report.records)
    assert clean.header == report.header
    got = tracklog.replay(out / "runs" / "r")  # no warning: nothing corrupt is left
    assert _without_path(got) == _without_path(want)
    assert got.history("a").step.tolist() == [i for i in range(20) if i != 5]


def test_a_torn_tail_is_dropped_and_not_counted(tmp_path: Path) -> None:
    path = _run(n=5)
    seg = path / "seg-000001.tlog"
    spans = _frames(seg)
    seg.write_bytes(seg.read_bytes()[: spans[-1][0] + 3])  # the run_end torn
    assert salvage([path], tmp_path / "out") == len(spans) - 2
    (clean,) = tracklog.scan(tmp_path / "out" / "runs" / "r")
    assert clean.torn_tail is None and clean.corrupt == []
    assert tracklog.replay(tmp_path / "out" / "runs" / "r").status == "crashed"


def test_a_crc_valid_frame_that_does_not_decode_is_not_copied(tmp_path: Path) -> None:
    path = _run(n=3)
    seg = path / "seg-000001.tlog"
    data = seg.read_bytes()
    cut = _frames(seg)[3][0]
    seg.write_bytes(data[:cut] + fmt.frame(b"\xc1") + data[cut:])  # 0xc1 is never msgpack
    records = len(_frames(seg)) - 1
    assert salvage([path], tmp_path / "out") == records - 1
    events = tracklog.read_events(tmp_path / "out" / "runs" / "r")  # nothing to warn about
    assert [e.value for e in events if e.kind == "metric"] == [0.0, 1.0, 2.0]


def test_a_damaged_magic_is_rewritten_with_every_record(tmp_path: Path) -> None:
    path = _run(n=4)
    seg = path / "seg-000001.tlog"
    records = len(_frames(seg)) - 1
    _flip(seg, 2)
    assert salvage([path], tmp_path / "out") == records
    copy = tmp_path / "out" / "runs" / "r" / seg.name
    assert copy.read_bytes()[: fmt.PREFIX_SIZE] == fmt.PREFIX.pack(
        fmt.MAGIC, fmt.FORMAT_MAJOR, fmt.FORMAT_MINOR
    )
    assert tracklog.replay(copy.parent).metrics["a"].count == 4


def test_a_lost_header_is_replaced_by_one_naming_the_run(tmp_path: Path) -> None:
    path = _run(n=4)
    seg = path / "seg-000001.tlog"
    _flip(seg, _frames(seg)[0][1] - 1)  # the header record's payload
    salvage([path], tmp_path / "out")
    (clean,) = tracklog.scan(tmp_path / "out" / "runs" / "r")
    assert clean.header == {"run_id": "r", "salvaged": True} and clean.corrupt == []
    assert tracklog.replay(tmp_path / "out" / "runs" / "r").history("a").step.tolist() == [0, 1, 2, 3]


def test_every_segment_of_every_run_is_copied_under_its_own_name(tmp_path: Path) -> None:
    a = _run("a", n=3)
    run = tracklog.start_run(run_id="a", resume=True)
    run.log_metric("a", 30.0)
    crash(run)
    b = _run("b", n=2)
    want = sum(r.records for p in (a, b) for r in tracklog.scan(p))
    assert salvage([a, b], tmp_path / "out") == want
    assert sorted(p.name for p in (tmp_path / "out" / "runs" / "a").iterdir()) == [
        "seg-000001.tlog",
        "seg-000002.tlog",
    ]
    for p in (a, b):
        got = tracklog.replay(tmp_path / "out" / "runs" / p.name)
        assert _without_path(got) == _without_path(tracklog.replay(p))
    assert [r.header for r in tracklog.scan(tmp_path / "out" / "runs" / "a")] == [
        r.header for r in tracklog.scan(a)
    ]
