"""Tail in one process: offsets, partial records, filters, crash and end detection."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

import tracklog
from tracklog.read.tail import _Cursor

from .helpers import crash


def _points(events: list[tracklog.Event]) -> list[tuple[str, int, float]]:
    return [(e.key, e.step, e.value) for e in events if e.kind == "metric"]  # type: ignore[misc]


def test_follow_false_from_start_yields_everything_there_and_returns() -> None:
    with tracklog.start_run(run_id="t", params={"p": 1}) as run:
        for i in range(5):
            run.log_metric("a", float(i))
    events = list(tracklog.Store().tail("t", follow=False, from_start=True))
    assert [e.kind for e in events] == ["run_start", "param"] + ["metric"] * 5 + ["run_end"]
    assert events == list(tracklog.read_events(run.path))


@pytest.mark.parametrize("poll", [False, True])
def test_stop_set_from_another_thread_ends_a_waiting_tail(poll: bool) -> None:
    run = tracklog.start_run(run_id="waits")
    stop = threading.Event()
    it = tracklog.Store().tail("waits", poll=poll, forever=True, stop=stop)
    got: list[tracklog.Event] = []
    t = threading.Thread(target=lambda: got.extend(it))
    t.start()
    run.log_metric("a", 1.0)
    run.flush()
    deadline = time.monotonic() + 30
    while not got and time.monotonic() < deadline:
        time.sleep(0.005)
    stop.set()  # the run is live and the tail would wait for ever
    t.join(timeout=30)
    assert not t.is_alive()
    assert _points(got) == [("a", 0, 1.0)]
    run.close()


def test_a_finished_run_tailed_from_now_ends_at_once() -> None:
    with tracklog.start_run(run_id="done") as run:
        run.log_metric("a", 1.0)
    assert list(tracklog.Store().tail("done", timeout=5)) == []


@pytest.mark.parametrize("poll", [False, True])
def test_tail_sees_new_events_then_the_end(poll: bool) -> None:
    run = tracklog.start_run(run_id="live")
    run.log_metric("a", 0.0)
    got: list[tracklog.Event] = []
    started = threading.Event()

    it = tracklog.Store().tail("live", poll=poll, timeout=30)

    def consume() -> None:
        started.set()
        got.extend(it)

    t = threading.Thread(target=consume)
    t.start()
    started.wait()
    for i in range(1, 200):
        run.log_metric("a", float(i))
    run.close()
    t.join(timeout=60)
    assert not t.is_alive()
    assert got[-1].kind == "run_end" and got[-1].value["status"] == "finished"
    pts = _points(got)
    # The tail started from "now" (after point 0): every later point, each once, in order.
    assert pts == [("a", i, float(i)) for i in range(1, 200)]


def test_keys_filter_metric_points_only() -> None:
    with tracklog.start_run(run_id="k") as run:
        run.log_metrics({"a": 1.0, "b": 2.0})
        run.set_tag("t", 1)
    events = list(tracklog.Store().tail("k", keys=["b"], follow=False, from_start=True))
    assert [(e.kind, e.key) for e in events] == [
        ("run_start", None),
        ("metric", "b"),
        ("tag", "t"),
        ("run_end", None),
    ]


def test_kinds_picks_the_kinds_of_event_and_a_follow_still_ends_with_the_run() -> None:
    with tracklog.start_run(run_id="k", params={"lr": 0.1}) as run:
        run.log_metrics({"a": 1.0, "b": 2.0}, step=3)
        run.set_tag("t", 1)
    store = tracklog.Store()
    events = list(store.tail("k", keys=["b"], kinds=["metric"], follow=False, from_start=True))
    assert [(e.kind, e.key, e.step, e.value) for e in events] == [("metric", "b", 3, 2.0)]
    # Following from the start of a finished run: the run_end still stops it, unyielded.
    followed = list(store.tail("k", kinds=["param", "tag"], from_start=True, timeout=30))
    assert [(e.kind, e.key) for e in followed] == [("param", "lr"), ("tag", "t")]
    with pytest.raises(tracklog.ValidationError, match="kinds"):
        store.tail("k", kinds=["metrics"])
    with pytest.raises(tracklog.ValidationError, match="kinds"):
        store.tail("k", kinds="metric")  # type: ignore[arg-type]


def test_a_dead_writer_without_an_end_is_reported_crashed() -> None:
    run = tracklog.start_run(run_id="dead")
    run.log_metric("a", 1.0)
    crash(run)
    events = list(tracklog.Store().tail("dead", from_start=True, timeout=30))
    assert _points(events) == [("a", 0, 1.0)]
    assert events[-1].kind == "run_end" and events[-1].value == {**events[-1].value, "status": "crashed"}
    assert events[-1].value["synthesized"] is True


def test_the_cursor_waits_for_the_rest_of_a_partial_record(tmp_path: Path) -> None:
    with tracklog.start_run(run_id="p") as run:
        for i in range(3):
            run.log_metric("a", float(i))
    seg = next(run.path.glob("seg-*.tlog"))
    data = seg.read_bytes()
    half = tmp_path / "seg-000001.tlog"
    cut = len(data) - 20  # inside the run_end record
    half.write_bytes(data[:cut])
    cur = _Cursor(half)
    first = cur.read()
    assert [r[0] for r in first] == [1, 5, 5, 5]  # run_start and three points; not the partial end
    assert cur.read() == []
    with open(half, "ab") as f:
        f.write(data[cut:])
    assert [r[0] for r in cur.read()] == [2]


def test_a_replaced_or_shrunk_file_is_revalidated_without_repeats(tmp_path: Path) -> None:
    with tracklog.start_run(run_id="r") as run:
        for i in range(10):
            run.log_metric("a", float(i))
    seg = next(run.path.glob("seg-*.tlog"))
    live = tmp_path / "seg-000001.tlog"
    shutil.copy(seg, live)
    cur = _Cursor(live)
    assert len(cur.read()) == 12
    copy = tmp_path / "copy.tlog"
    shutil.copy(seg, copy)
    copy.replace(live)  # replaced by a new file with the same content (an rsync)
    assert cur.read() == []
    live.write_bytes(seg.read_bytes()[:200])  # shrunk
    assert cur.read() == []


def test_tailing_a_run_that_does_not_exist_yet_waits_for_it() -> None:
    got: list[tracklog.Event] = []
    it = tracklog.Store().tail("future", timeout=30)  # "now" is this call: the run is not there yet
    t = threading.Thread(target=lambda: got.extend(it))
    t.start()
    with tracklog.start_run(run_id="future") as run:
        run.log_metric("a", 1.0)
    t.join(timeout=60)
    assert [e.kind for e in got] == ["run_start", "metric", "run_end"]


def test_tailing_a_name_that_cannot_be_a_run_id_raises_at_once() -> None:
    with tracklog.start_run(run_id="there"):
        pass
    with pytest.raises(tracklog.RunNotFoundError, match="no run 'my run'") as err:
        tracklog.Store().tail("my run")  # a run id never has a space: nothing to wait for
    assert err.value.candidates == ()


def test_tail_experiment_includes_new_runs() -> None:
    with tracklog.start_run("exp", run_id="e1") as r1:
        r1.log_metric("a", 1.0)
    got: list[tuple[str, tracklog.Event]] = []
    it = tracklog.Store().tail_experiment("exp", from_start=True, timeout=2)
    with tracklog.start_run("other", run_id="o1") as r:
        r.log_metric("a", 5.0)
    with tracklog.start_run("exp", run_id="e2") as r2:
        r2.log_metric("a", 2.0)
    got.extend(it)
    pts = [(rid, e.value) for rid, e in got if e.kind == "metric"]
    assert pts == [("e1", 1.0), ("e2", 2.0)]


def test_a_failed_fsync_in_the_writer_never_duplicates_events_on_a_live_tail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import errno

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
    it = tracklog.Store().tail("dup", from_start=True, timeout=30)
    run.log_metric("a", 0.0)
    run.flush()
    for i in range(1, 6):
        run.log_metric("a", float(i))
    head = []
    for ev in it:  # read past the unsynced records from the old segment first
        head.append(ev)
        if ev.kind == "metric" and ev.value == 5.0:
            break
    fail[0] = 1
    with pytest.warns(tracklog.TracklogWarning, match="written again"):
        run.flush()
    run.log_metric("a", 6.0)
    run.close()
    events = head + list(it)
    assert [e.value for e in events if e.kind == "metric"] == [float(i) for i in range(7)]
    assert events[-1].kind == "run_end"


def test_a_no_follow_tail_reads_past_records_cut_by_its_read_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    from tracklog.read import tail

    with tracklog.start_run(run_id="big") as run:
        for i in range(2000):
            run.log_metric("loss", 1.0 / (i + 1))
    monkeypatch.setattr(tail, "READ_CHUNK_BYTES", 4096)  # the path an 8 MiB+ segment takes
    got = list(tracklog.Store().tail("big", follow=False, from_start=True))
    want = list(tracklog.read_events(run.path))
    assert len(got) == len(want) and got[-1].kind == "run_end" and got[-1].value["status"] == "finished"


def test_a_no_follow_tail_over_megabytes_without_a_record_returns(tmp_path: Path) -> None:
    with tracklog.start_run(run_id="holes") as run:
        run.log_metric("loss", 1.0)
    seg = run.path / "seg-000001.tlog"
    with open(seg, "r+b") as f:  # a sparse 17 MiB of zeros after the log: no record in it
        f.truncate(seg.stat().st_size + 17 * 1024 * 1024)
    got = list(tracklog.Store().tail("holes", follow=False, from_start=True))
    assert [e.kind for e in got][:2] == ["run_start", "metric"]


@pytest.mark.parametrize(("ref", "ids"), [("t", ("t1", "t2")), ("twin", ("t1", "t2"))])
def test_a_ref_that_several_runs_share_is_refused_at_once_not_waited_for(
    ref: str, ids: tuple[str, ...]
) -> None:
    for rid in ids:
        with tracklog.start_run(name="twin", run_id=rid) as run:
            run.log_metric("a", 1.0)
    with pytest.raises(tracklog.RunNotFoundError, match="ambiguous: t1, t2") as exc:
        tracklog.Store().tail(ref)  # follow=True, no timeout: raised before anything is waited for
    assert exc.value.candidates == ids


def _apply_resume_rule(events: Iterable[tracklog.Event]) -> dict[str, list[tuple[int, float]]]:
    """README's recipe for a tail consumer that wants what ``history`` keeps (STORE.md's rule)."""
    kept: dict[str, list[tuple[int, float]]] = {}
    sessions, resume_step, seen = 0, None, set()
    for ev in events:
        if ev.kind == "run_start":
            sessions, seen = sessions + 1, set()
            resume_step = ev.value.get("resume_step") if sessions > 1 else None
            if resume_step is not None:  # drops every key's points at steps >= resume_step
                kept = {k: [p for p in pts if p[0] < resume_step] for k, pts in kept.items()}
        elif ev.kind == "metric":
            assert ev.key is not None and ev.step is not None
            if sessions > 1 and resume_step is None and ev.key not in seen:  # this key's first point
                kept[ev.key] = [p for p in kept.get(ev.key, []) if p[0] < ev.step]
            seen.add(ev.key)
            kept.setdefault(ev.key, []).append((ev.step, ev.value))  # type: ignore[arg-type]
    return kept


def test_a_tail_consumer_applying_the_resume_rule_ends_with_what_history_keeps() -> None:
    run = tracklog.start_run(run_id="resumed")
    for s in range(10):
        run.log_metrics({"a": s, "b": -s}, step=s)
    crash(run)
    run = tracklog.start_run(run_id="resumed", resume=True, resume_step=5)  # from a checkpoint at 5
    for s in range(5, 13):
        run.log_metrics({"a": 100 + s, "b": -100 - s}, step=s)
    crash(run)
    with tracklog.start_run(run_id="resumed", resume=True) as run:  # no resume_step: per key
        for s in range(10, 15):
            run.log_metric("a", 200 + s, step=s)
        run.log_metric("c", 1.0, step=0)
    store = tracklog.Store()
    events = list(store.tail("resumed", from_start=True, follow=False))
    hists = {k: store.history("resumed", k) for k in ("a", "b", "c")}
    history = {k: list(zip(h.step.tolist(), h.value.tolist(), strict=True)) for k, h in hists.items()}
    raw = [(e.key, e.step) for e in events if e.kind == "metric"]
    assert len(raw) == 20 + 16 + 6 > sum(map(len, history.values()))  # the tail yields superseded points
    assert _apply_resume_rule(events) == history
    assert [s for s, _ in history["a"]] == list(range(15)) and history["a"][9] == (9, 109.0)
    assert history["b"][-1] == (12, -112.0) and history["a"][-1] == (14, 214.0)


def test_a_fast_writer_pauses_notifications_and_every_point_still_arrives_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tracklog.read import tail as tail_mod

    paused = []
    real_busy = tail_mod._Waker.busy

    def busy(self: tail_mod._Waker) -> None:
        paused.append(True)
        real_busy(self)

    monkeypatch.setattr(tail_mod._Waker, "busy", busy)
    run = tracklog.start_run(run_id="fast")
    it = tracklog.Store().tail("fast", timeout=30)
    got: list[tracklog.Event] = []
    t = threading.Thread(target=lambda: got.extend(it))
    t.start()
    for burst in range(5):  # bursts with pauses between: busy, quiet, re-armed, busy again
        for i in range(burst * 2000, (burst + 1) * 2000):
            run.log_metric("a", float(i), step=i)
        deadline = time.monotonic() + 30
        while len(got) < (burst + 1) * 2000 and time.monotonic() < deadline:
            time.sleep(0.005)
    run.close()
    t.join(timeout=60)
    assert not t.is_alive()
    assert _points(got) == [("a", i, float(i)) for i in range(10_000)]
    assert paused  # the reads were large enough to switch to polling at least once
