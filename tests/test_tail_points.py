"""The bulk tail (``follow_points``): the items the Event tail yields, each once, in log order,
with metric points as columns; partial records, replaced files, supersedes and resumes."""

from __future__ import annotations

import errno
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

import tracklog
from tracklog.read.tail import Points, RunFollower, _Waker, follow, follow_points

from .conftest import wait_for
from .helpers import crash


def _flat(items: list[Points | tracklog.Event]) -> list[tracklog.Event]:
    return [ev for it in items for ev in (it.events() if type(it) is Points else [it])]


def _same(a: list[tracklog.Event], b: list[tracklog.Event]) -> bool:
    return len(a) == len(b) and all(x.same_as(y) for x, y in zip(a, b, strict=True))


def _mixed_run(durability: str) -> Path:
    with tracklog.start_run(run_id=durability, durability=durability, params={"lr": 0.1}) as run:
        for i in range(300):
            run.log_metric("loss", 1.0 / (i + 1), step=i)
            if i % 7 == 0:
                run.log_metrics({"acc": i / 300, "nan": float("nan")}, step=i)
            if i % 100 == 50:
                run.set_tag("phase", i)
    return run.path


@pytest.mark.parametrize("durability", ["process", "batch"])
@pytest.mark.parametrize("keys", [None, ["acc", "nan"]])
def test_the_bulk_tail_yields_what_the_event_tail_yields(durability: str, keys: list[str] | None) -> None:
    path = _mixed_run(durability)
    events = list(follow(path, keys=keys, follow=False, from_start=True))
    items = list(follow_points(path, keys=keys, follow=False, from_start=True))
    assert _same(_flat(items), events)
    # Points came in columns: one block between two other events, not one item per point.
    assert sum(type(it) is Points for it in items) <= 5
    assert [it.kind for it in items if type(it) is not Points] == [
        "run_start",
        "param",
        "tag",
        "tag",
        "tag",
        "run_end",
    ]
    pts = [it for it in items if type(it) is Points]
    assert all(p.step.dtype == np.int64 and p.value.dtype == p.time.dtype == np.float64 for p in pts)
    if keys is not None:
        assert {k for p in pts for k in p.by_key()} == set(keys)


def test_by_key_splits_a_block_per_key_in_log_order() -> None:
    pts = Points(
        ["a", "b", "c"],
        np.array([1, 0, 1, 1, 0]),
        np.array([10, 11, 12, 13, 14]),
        np.array([0.0, 1.0, 2.0, 3.0, 4.0]),
        np.array([5.0, 6.0, 7.0, 8.0, 9.0]),
    )
    got = {k: (s.tolist(), v.tolist(), t.tolist()) for k, (s, v, t) in pts.by_key().items()}
    assert got == {
        "a": ([11, 14], [1.0, 4.0], [6.0, 9.0]),
        "b": ([10, 12, 13], [0.0, 2.0, 3.0], [5.0, 7.0, 8.0]),
    }
    assert [(e.key, e.step) for e in pts.events()] == [("b", 10), ("a", 11), ("b", 12), ("b", 13), ("a", 14)]


def test_a_live_bulk_tail_sees_every_point_of_a_fast_writer_once_in_order() -> None:
    run = tracklog.start_run(run_id="fast")
    items: list[Points | tracklog.Event] = []
    tail = follow_points(run.path, timeout=30)
    t = threading.Thread(target=lambda: items.extend(tail))
    t.start()
    for burst in range(5):  # bursts with pauses: reads large and small, notifications off and on
        for i in range(burst * 2000, (burst + 1) * 2000):
            run.log_metric("a", float(i), step=i)
        run.flush()
        want = (burst + 1) * 2000
        wait_for(lambda w=want: sum(len(x) for x in items if type(x) is Points) >= w, 30, "a burst")
    run.close()
    t.join(timeout=60)
    assert not t.is_alive()
    pts = [x for x in items if type(x) is Points]
    assert np.concatenate([p.step for p in pts]).tolist() == list(range(10_000))
    assert np.concatenate([p.value for p in pts]).tolist() == [float(i) for i in range(10_000)]
    assert max(map(len, pts)) > 1 and items[-1].kind == "run_end"


def test_a_partial_columnar_record_waits_for_the_rest(tmp_path: Path) -> None:
    with tracklog.start_run(run_id="p", durability="batch") as run:
        for i in range(500):
            run.log_metric("a", float(i), step=i)
    seg = next(run.path.glob("seg-*.tlog"))
    data = seg.read_bytes()
    live = tmp_path / "runs" / "p"
    live.mkdir(parents=True)
    cut = len(data) // 2  # inside the one columnar record of 500 points
    (live / seg.name).write_bytes(data[:cut])
    bulk, ref = RunFollower(live, None, True), RunFollower(live, None, True)
    first = bulk.poll_points()
    assert [it.kind for it in first] == ["run_start"] and bulk.poll_points() == []
    with open(live / seg.name, "ab") as f:
        f.write(data[cut:])
    rest = bulk.poll_points()
    assert [type(it).__name__ for it in rest] == ["Points", "Event"] and len(rest[0]) == 500
    assert _same(_flat(first + rest), ref.poll())


def test_a_replaced_or_shrunk_segment_yields_nothing_twice(tmp_path: Path) -> None:
    path = _mixed_run("process")
    live = tmp_path / "runs" / "r"
    shutil.copytree(path, live)
    seg = next(live.glob("seg-*.tlog"))
    follower = RunFollower(live, None, True)
    first = follower.poll_points()
    copy = tmp_path / "copy.tlog"
    shutil.copy(seg, copy)
    copy.replace(seg)  # replaced by a new file with the same content (an rsync)
    assert follower.poll_points() == []
    seg.write_bytes(seg.read_bytes()[:200])  # shrunk
    assert follower.poll_points() == []
    assert _same(_flat(first), list(tracklog.read_events(path)))


def test_a_failed_fsync_never_duplicates_points_on_a_live_bulk_tail(monkeypatch: pytest.MonkeyPatch) -> None:
    from tracklog.log import writer as writer_mod

    real = writer_mod._fdatasync
    fail = [0]

    def flaky(fd: int) -> None:
        if fail[0]:
            fail[0] -= 1
            raise OSError(errno.EIO, "injected")
        real(fd)

    monkeypatch.setattr(writer_mod, "_fdatasync", flaky)
    run = tracklog.start_run(run_id="dup", fsync_interval=3600)
    it = follow_points(run.path, from_start=True, timeout=30)
    run.log_metric("a", 0.0)
    run.flush()
    for i in range(1, 6):
        run.log_metric("a", float(i))
    head = []
    for item in it:  # read past the unsynced records from the old segment first
        head.append(item)
        if type(item) is Points and 5.0 in item.value:
            break
    fail[0] = 1
    with pytest.warns(tracklog.TracklogWarning, match="written again"):
        run.flush()  # the unsynced tail is written again, into a new segment that supersedes it
    run.log_metric("a", 6.0)
    run.close()
    events = _flat(head + list(it))
    assert [e.value for e in events if e.kind == "metric"] == [float(i) for i in range(7)]
    assert events[-1].kind == "run_end"


def test_a_resumed_run_in_bulk_keeps_each_session_s_points_apart() -> None:
    run = tracklog.start_run(run_id="resumed")
    for s in range(10):
        run.log_metrics({"a": s, "b": -s}, step=s)
    crash(run)
    run = tracklog.start_run(run_id="resumed", resume=True, resume_step=5)
    for s in range(5, 13):
        run.log_metrics({"a": 100 + s, "b": -100 - s}, step=s)
    crash(run)
    with tracklog.start_run(run_id="resumed", resume=True) as run:
        for s in range(10, 15):
            run.log_metric("a", 200 + s, step=s)
    items = list(follow_points(run.path, follow=False, from_start=True))
    assert _same(_flat(items), list(follow(run.path, follow=False, from_start=True)))
    # A Points never spans a session's start: a consumer applies the resume rule between them.
    kinds = [it.kind if type(it) is not Points else "points" for it in items]
    assert kinds == ["run_start", "points", "run_start", "points", "run_start", "points", "run_end"]


def test_the_tails_own_reads_do_not_wake_it(tmp_path: Path) -> None:
    from watchdog.events import FileClosedNoWriteEvent, FileModifiedEvent, FileOpenedEvent

    waker = _Waker([tmp_path], native=True)
    try:
        if not waker.native:
            pytest.skip("no native notifications here")
        f = str(tmp_path / "seg-000001.tlog")
        waker._handler.dispatch(FileOpenedEvent(f))  # the tail opening a segment or the lock
        waker._handler.dispatch(FileClosedNoWriteEvent(f))
        assert not waker.event.is_set()
        waker._handler.dispatch(FileModifiedEvent(f))  # a writer's append
        assert waker.event.is_set()
        # Nor does the kernel send them: the watch asks for what a writer causes only.
        (watch,) = {e.watch for e in waker.observer.emitters}
        assert watch.event_filter is not None and FileOpenedEvent not in watch.event_filter
    finally:
        waker.close()
