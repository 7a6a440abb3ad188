"""SegmentWriter under injected faults: ENOSPC, EIO, short writes, failed fsyncs."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

import tracklog
from tracklog.errors import TracklogWarning, WriteError
from tracklog.log import writer as writer_mod

from .conftest import events_of, metric_points


class Faults:
    """Wraps the writer's write/fdatasync seams; fails the calls a test selects."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fail_writes = 0  # fail the next N write calls
        self.short_next = False  # the next write stores only half its bytes, then fails
        self.fail_syncs = 0
        self.write_errno = errno.ENOSPC
        real_write, real_sync = writer_mod._write, writer_mod._fdatasync

        def write(fd: int, data: bytes | memoryview) -> int:
            if self.short_next:
                self.short_next = False
                self.fail_writes = max(self.fail_writes, 1)
                return real_write(fd, bytes(data)[: len(data) // 2])
            if self.fail_writes:
                self.fail_writes -= 1
                raise OSError(self.write_errno, "injected")
            return real_write(fd, data)

        def sync(fd: int) -> None:
            if self.fail_syncs:
                self.fail_syncs -= 1
                raise OSError(errno.EIO, "injected fsync failure")
            real_sync(fd)

        monkeypatch.setattr(writer_mod, "_write", write)
        monkeypatch.setattr(writer_mod, "_fdatasync", sync)


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> Faults:
    monkeypatch.setattr(writer_mod, "RETRY_INTERVAL_S", 0.0)  # retry on the next call
    return Faults(monkeypatch)


def _clean(path: Path) -> None:
    for report in tracklog.scan(path):
        assert report.corrupt == [] and report.torn_tail is None, report


@pytest.mark.parametrize("durability", ["process", "machine", "batch"])
def test_disk_full_holds_events_warns_once_and_writes_them_later(faults: Faults, durability: str) -> None:
    with tracklog.start_run(durability=durability) as run:  # type: ignore[arg-type]
        run.log_metric("a", 0.0)
        run.flush()
        faults.fail_writes = 5
        with pytest.warns(TracklogWarning) as caught:
            for i in range(1, 20):
                run.log_metric("a", float(i))
            for _ in range(6):  # each flush retries once; the disk recovers after 5 failures
                run.flush()
    messages = [str(w.message) for w in caught]
    assert sum("promise is suspended" in m for m in messages) == 1
    assert any("succeed again" in m for m in messages)
    assert metric_points(run.path) == [("a", i, float(i)) for i in range(20)]
    _clean(run.path)


def test_a_short_write_is_rolled_back_so_no_record_follows_a_hole(faults: Faults) -> None:
    with tracklog.start_run() as run:
        run.log_metric("a", 0.0)
        faults.short_next = True
        with pytest.warns(TracklogWarning):
            run.log_metric("a", 1.0)
            run.log_metric("a", 2.0)
            run.flush()
    assert metric_points(run.path) == [("a", 0, 0.0), ("a", 1, 1.0), ("a", 2, 2.0)]
    _clean(run.path)


def test_strict_mode_raises_and_leaves_a_clean_log(monkeypatch: pytest.MonkeyPatch, faults: Faults) -> None:
    with tracklog.start_run(strict=True) as run:
        run.log_metric("a", 0.0)
        faults.fail_writes = 1
        with pytest.raises(WriteError, match=r"seg-000001\.tlog.*offset"):
            run.log_metric("a", 1.0)
        run.log_metric("a", 2.0)
    assert [v for _, _, v in metric_points(run.path)] == [0.0, 2.0]
    _clean(run.path)


def test_events_past_the_backlog_bound_are_counted_in_a_dropped_event(
    monkeypatch: pytest.MonkeyPatch, faults: Faults
) -> None:
    monkeypatch.setattr(writer_mod, "MAX_BACKLOG_BYTES", 200)
    with tracklog.start_run() as run:
        faults.fail_writes = 10**9
        with pytest.warns(TracklogWarning):
            for i in range(20):
                run.log_metric("a", float(i))
            faults.fail_writes = 0
            run.flush()
    evs = events_of(run.path)
    kept = [e.value for e in evs if e.kind == "metric"]
    dropped = [e.value["count"] for e in evs if e.kind == "dropped"]
    assert len(kept) + sum(dropped) == 20 and dropped and dropped[0] > 0
    assert kept == [float(i) for i in range(len(kept))]  # the oldest are kept, in order


def test_a_failed_fsync_is_not_retried_the_writer_moves_to_a_new_segment(faults: Faults) -> None:
    with tracklog.start_run(durability="machine") as run:
        run.log_metric("a", 0.0)
        faults.fail_syncs = 1
        with pytest.warns(TracklogWarning, match="fsync"):
            run.log_metric("a", 1.0)
        run.log_metric("a", 2.0)
    segs = sorted(run.path.glob("seg-*.tlog"))
    assert [s.name for s in segs] == ["seg-000001.tlog", "seg-000002.tlog"]
    header = tracklog.scan(segs[1])[0].header
    assert header["after_failure"] == "fsync failed" and header["supersedes"][0] == "seg-000001.tlog"
    assert [v for _, _, v in metric_points(run.path)] == [0.0, 1.0, 2.0]  # each once


@pytest.mark.parametrize("durability", ["process", "machine"])
def test_after_a_failed_fsync_unsynced_records_survive_losing_the_old_tail(
    faults: Faults, durability: str
) -> None:
    with tracklog.start_run(durability=durability, fsync_interval=3600) as run:  # type: ignore[arg-type]
        run.log_metric("a", 0.0)
        run.flush()
        for i in range(1, 6):
            run.log_metric("a", float(i))
        faults.fail_syncs = 1
        with pytest.warns(TracklogWarning, match="written again"):
            run.flush() if durability == "process" else run.log_metric("a", 6.0)
        run.log_metric("a", 7.0)
    want = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0] + ([6.0] if durability == "machine" else []) + [7.0]
    assert [v for _, _, v in metric_points(run.path)] == want
    store = tracklog.Store()
    assert store.run(run.id) == tracklog.replay(run.path)
    # A power cut takes the old segment's unsynced tail: nothing is lost.
    old = run.path / "seg-000001.tlog"
    offset = tracklog.scan(run.path / "seg-000002.tlog")[0].header["supersedes"][1]
    old.write_bytes(old.read_bytes()[:offset])
    assert [v for _, _, v in metric_points(run.path)] == want
    assert store.run(run.id) == tracklog.replay(run.path)


def test_a_snapshot_past_a_superseded_offset_is_rebuilt(faults: Faults) -> None:
    from tracklog.read.compact import compact_run

    with tracklog.start_run(fsync_interval=3600) as run:
        run.log_metric("a", 0.0)
        run.flush()
        run.log_metric("a", 1.0)
        compact_run(run.path)  # folds point 1 from the old segment (and fsyncs it itself)
        faults.fail_syncs = 1
        with pytest.warns(TracklogWarning):
            run.flush()
    assert tracklog.Store().run(run.id) == tracklog.replay(run.path)
    assert tracklog.Store().history(run.id, "a").value.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("err", [errno.EIO, errno.EDQUOT, errno.EROFS])
def test_other_write_errors_behave_like_disk_full(faults: Faults, err: int) -> None:
    faults.write_errno = err
    with tracklog.start_run() as run:
        faults.fail_writes = 2
        with pytest.warns(TracklogWarning):
            for i in range(5):
                run.log_metric("a", float(i))
            run.flush()
    assert [v for _, _, v in metric_points(run.path)] == [float(i) for i in range(5)]


def test_batch_mode_coalesces_points_into_columnar_records() -> None:
    with tracklog.start_run(durability="batch") as run:
        for i in range(1000):
            run.log_metric("a", float(i))
            run.log_metric("b", float(-i))
        run.log_metrics({"x": 1.0, "y": 2.0})
    (report,) = tracklog.scan(run.path)
    assert report.records < 10  # run_start, a few columnar records, run_end
    pts = metric_points(run.path)
    assert pts[:4] == [("a", 0, 0.0), ("b", 0, -0.0), ("a", 1, 1.0), ("b", 1, -1.0)]
    assert pts[-2:] == [("x", 0, 1.0), ("y", 0, 2.0)] and len(pts) == 2002


@pytest.mark.parametrize("durability", ["batch", "process", "machine"])
def test_one_log_metrics_call_of_more_than_65535_keys_is_written_whole(durability: str) -> None:
    keys = [f"k{i}" for i in range(70_000)]
    with tracklog.start_run(durability=durability) as run:  # type: ignore[arg-type]
        run.log_metric("before", 1.0)
        run.log_metrics(dict.fromkeys(keys, 2.0), step=3)
        run.log_metric("after", 1.0)
    state = tracklog.replay(run.path)
    assert state.status == "finished"
    assert len(state.metrics) == 70_002 and state.metrics["k69999"].last_step == 3
    assert tracklog.scan(run.path)[0].ok


def test_a_batch_flush_of_more_than_65535_distinct_keys_splits_between_calls() -> None:
    with tracklog.start_run(durability="batch", flush_interval=3600) as run:
        for i in range(70_000):
            run.log_metric(f"k{i}", float(i))
        run.log_metrics({"x": 1.0, "y": 2.0})
    assert len(tracklog.replay(run.path).metrics) == 70_002


def test_a_log_metrics_call_too_large_for_one_record_is_refused_at_the_call() -> None:
    with tracklog.start_run(durability="batch") as run:
        run.log_metric("before", 1.0)
        with pytest.raises(tracklog.ValidationError, match="split the call"):
            run.log_metrics({f"{i:0>240}": 1.0 for i in range(80_000)})
        run.log_metric("before", 2.0)
    h = tracklog.replay(run.path).history("before")
    assert h.step.tolist() == [0, 1]  # the refused call took no step


def test_an_encoding_failure_in_a_batch_flush_loses_no_accepted_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = writer_mod.encode_pending
    calls = []

    def flaky(items: list, only_points: bool = False) -> list:  # type: ignore[type-arg]
        calls.append(len(items))
        if len(items) > 1:
            raise ValueError("injected encoder bug")
        return real(items, only_points)

    monkeypatch.setattr(writer_mod, "encode_pending", flaky)
    with tracklog.start_run(durability="batch", flush_interval=3600) as run:
        for i in range(100):
            run.log_metric("a", float(i))
        run.log_metrics({"x": 1.0, "y": 2.0})
        run.set_tag("t", 1)
    state = tracklog.replay(run.path)
    assert state.status == "finished" and state.dropped == 0
    assert state.metrics["a"].count == 100 and state.tags == {"t": 1} and state.metrics["y"].count == 1
    assert max(calls) > 1  # the batch path was really taken first


def test_an_event_that_cannot_be_encoded_at_all_is_counted_not_silently_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = writer_mod.encode_pending

    def refuses_b(items: list, only_points: bool = False) -> list:  # type: ignore[type-arg]
        if any(type(it) is tuple and it[0] == "b" for it in items):
            raise ValueError("injected: b cannot be encoded")
        return real(items, only_points)

    monkeypatch.setattr(writer_mod, "encode_pending", refuses_b)
    with (
        pytest.warns(TracklogWarning, match="could not be encoded"),
        tracklog.start_run(durability="batch", flush_interval=3600) as run,
    ):
        run.log_metric("a", 1.0)
        run.log_metric("b", 1.0)
        run.log_metric("a", 2.0)
    state = tracklog.replay(run.path)
    assert state.metrics["a"].count == 2 and "b" not in state.metrics
    assert state.dropped == 1 and state.status == "finished"
