from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

import tracklog
from tracklog.errors import (
    ParamConflictError,
    RunClosedError,
    RunExistsError,
    RunLockedError,
    RunNotFoundError,
    StoreError,
    ValidationError,
)

from .conftest import events_of, metric_points


def test_root_defaults_to_env_var_and_run_dir_is_under_runs(root: Path) -> None:
    with tracklog.start_run("exp", "name") as run:
        pass
    assert run.path.parent == root / "runs" and run.path.name == run.id
    assert len(run.id) == 26


def test_generated_ids_sort_by_creation_time() -> None:
    ids = []
    for _ in range(3):
        with tracklog.start_run() as run:
            ids.append(run.id)
        threading.Event().wait(0.002)  # ids have millisecond resolution
    assert ids == sorted(ids)


@pytest.mark.parametrize("bad", ["../x", "/abs", "a/b", ".", "..", "", "a" * 129, "-lead", "x\0"])
def test_run_ids_that_could_escape_the_store_are_refused(bad: str, root: Path) -> None:
    with pytest.raises(ValidationError, match="run id"):
        tracklog.start_run(run_id=bad)
    assert not (root / "runs").exists() or not any((root / "runs").iterdir())


def test_step_none_counts_per_key_and_follows_explicit_steps() -> None:
    with tracklog.start_run() as run:
        run.log_metric("a", 1.0)
        run.log_metric("a", 2.0)
        run.log_metric("b", 3.0)
        run.log_metric("a", 4.0, step=10)
        run.log_metric("a", 5.0)
        run.log_metrics({"a": 6.0, "b": 7.0})
    assert metric_points(run.path) == [
        ("a", 0, 1.0),
        ("a", 1, 2.0),
        ("b", 0, 3.0),
        ("a", 10, 4.0),
        ("a", 11, 5.0),
        ("a", 12, 6.0),
        ("b", 1, 7.0),
    ]


def test_repeated_steps_are_all_kept_in_log_order() -> None:
    with tracklog.start_run() as run:
        run.log_metric("a", 1.0, step=3)
        run.log_metric("a", 2.0, step=3)
    assert metric_points(run.path) == [("a", 3, 1.0), ("a", 3, 2.0)]


def test_explicit_timestamps_round_trip() -> None:
    with tracklog.start_run() as run:
        run.log_metric("a", 1.0, timestamp=1234.5)
        run.log_metrics({"b": 1.0}, timestamp=99)
    times = [e.time for e in events_of(run.path) if e.kind == "metric"]
    assert times == [1234.5, 99.0]


def test_same_param_again_is_a_noop_and_a_different_value_names_both() -> None:
    with tracklog.start_run(params={"lr": 0.1}) as run:
        run.log_param("lr", 0.1)
        with pytest.raises(ParamConflictError, match=r"'lr'.*0\.1.*0\.2"):
            run.log_param("lr", 0.2)
        with pytest.raises(ParamConflictError):
            run.log_params({"new": 1, "lr": 1})  # all checked before any is written
        with pytest.raises(ParamConflictError):
            run.log_param("lr", True if False else 1)  # 1 is not 0.1
    params = [(e.key, e.value) for e in events_of(run.path) if e.kind == "param"]
    assert params == [("lr", 0.1)]


def test_tags_may_change() -> None:
    with tracklog.start_run(tags={"phase": "warmup"}) as run:
        run.set_tag("phase", "main")
    tags = [(e.key, e.value) for e in events_of(run.path) if e.kind == "tag"]
    assert tags == [("phase", "warmup"), ("phase", "main")]


def test_context_manager_records_finished_failed_and_killed() -> None:
    with tracklog.start_run() as ok:
        pass
    with pytest.raises(ZeroDivisionError), tracklog.start_run() as bad:
        1 / 0  # noqa: B018
    with pytest.raises(KeyboardInterrupt), tracklog.start_run() as stopped:
        raise KeyboardInterrupt
    ends = [events_of(r.path)[-1] for r in (ok, bad, stopped)]
    assert [e.kind for e in ends] == ["run_end"] * 3
    assert ends[0].value["status"] == "finished" and ends[0].value["error"] is None
    assert ends[1].value["status"] == "failed"
    assert ends[1].value["error"] == {"type": "ZeroDivisionError", "message": "division by zero"}
    assert ends[2].value["status"] == "killed" and ends[2].value["signal"] == "SIGINT"


def test_logging_after_close_raises_and_close_is_idempotent() -> None:
    run = tracklog.start_run()
    run.close()
    run.close()
    with pytest.raises(RunClosedError, match="closed"):
        run.log_metric("a", 1.0)
    assert [e.kind for e in events_of(run.path)].count("run_end") == 1


def test_starting_an_existing_id_without_resume_fails() -> None:
    with tracklog.start_run(run_id="job-1"):
        pass
    with pytest.raises(RunExistsError, match="resume=True"):
        tracklog.start_run(run_id="job-1")


def test_resume_of_a_missing_run_fails_unless_allowed() -> None:
    with pytest.raises(RunNotFoundError, match="resume='allow'"):
        tracklog.start_run(run_id="nope", resume=True)
    with tracklog.start_run(run_id="nope", resume="allow") as run:
        run.log_metric("a", 1.0)
    assert metric_points(run.path) == [("a", 0, 1.0)]


def test_resume_appends_a_new_segment_and_continues_steps() -> None:
    with tracklog.start_run("exp", "first", run_id="r1", params={"lr": 0.1}) as run:
        run.log_metric("a", 1.0)
        run.log_metric("a", 2.0)
        run.log_metrics({"b": 1.0, "c": 1.0}, step=5)
    first_bytes = (run.path / "seg-000001.tlog").read_bytes()
    with tracklog.start_run(run_id="r1", resume=True, params={"lr": 0.1}) as again:
        again.log_metric("a", 3.0)
        again.log_metric("b", 2.0)
        assert again.experiment == "exp" and again.name == "first"
        with pytest.raises(ParamConflictError):
            again.log_param("lr", 0.5)
    assert (run.path / "seg-000001.tlog").read_bytes() == first_bytes  # never rewritten
    assert sorted(p.name for p in run.path.glob("*.tlog")) == ["seg-000001.tlog", "seg-000002.tlog"]
    assert metric_points(run.path)[-2:] == [("a", 2, 3.0), ("b", 6, 2.0)]
    starts = [e.value for e in events_of(run.path) if e.kind == "run_start"]
    assert [s["resume"] for s in starts] == [False, True]


def test_resume_step_restarts_every_key_from_the_checkpoint() -> None:
    with tracklog.start_run(run_id="r2") as run:
        for _ in range(5):
            run.log_metric("a", 1.0)
    with tracklog.start_run(run_id="r2", resume=True, resume_step=3) as again:
        again.log_metric("a", 9.0)
        again.log_metric("z", 9.0)
    assert metric_points(run.path)[-2:] == [("a", 3, 9.0), ("z", 3, 9.0)]
    assert [e.value["resume_step"] for e in events_of(run.path) if e.kind == "run_start"] == [None, 3]


def test_resume_with_a_conflicting_start_param_writes_nothing() -> None:
    with tracklog.start_run(run_id="r3", params={"lr": 0.1}) as run:
        pass
    with pytest.raises(ParamConflictError):
        tracklog.start_run(run_id="r3", resume=True, params={"lr": 0.2})
    assert [p.name for p in run.path.glob("*.tlog")] == ["seg-000001.tlog"]


def test_resume_while_the_writer_is_alive_fails_clearly() -> None:
    with tracklog.start_run(run_id="live") as run:
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
            tracklog.start_run(run_id="live", resume=True)
        run.log_metric("a", 1.0)
    assert metric_points(run.path) == [("a", 0, 1.0)]


def test_threads_log_into_one_run_without_losing_points() -> None:
    n_threads, n_points = 8, 500
    with tracklog.start_run() as run:

        def work(t: int) -> None:
            for i in range(n_points):
                run.log_metric(f"t{t}", float(i))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    points = metric_points(run.path)
    assert len(points) == n_threads * n_points
    for t in range(n_threads):
        mine = [(s, v) for k, s, v in points if k == f"t{t}"]
        assert mine == [(i, float(i)) for i in range(n_points)]


@pytest.mark.parametrize("durability", ["process", "machine", "batch"])
def test_every_durability_mode_logs_the_same_events(durability: str) -> None:
    with tracklog.start_run(durability=durability, params={"p": 1}) as run:  # type: ignore[arg-type]
        for i in range(300):
            run.log_metric("a", float(i))
            if i % 7 == 0:
                run.log_metrics({"b": i, "c": -i}, step=i)
            if i % 50 == 0:
                run.set_tag("at", i)
    evs = events_of(run.path)
    got = [(e.kind, e.key, e.value, e.step) for e in evs if e.kind in ("metric", "tag", "param")]
    want = [("param", "p", 1, None)]
    for i in range(300):
        want.append(("metric", "a", float(i), i))
        if i % 7 == 0:
            want += [("metric", "b", float(i), i), ("metric", "c", float(-i), i)]
        if i % 50 == 0:
            want.append(("tag", "at", i, None))
    assert got == want


def test_bad_durability_and_intervals_are_refused() -> None:
    with pytest.raises(ValidationError, match="durability"):
        tracklog.start_run(durability="paranoid")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="fsync_interval"):
        tracklog.start_run(fsync_interval=0)


def test_a_root_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        tracklog.start_run(root=f)


def test_a_missing_root_is_created_with_its_parents(tmp_path: Path) -> None:
    with tracklog.start_run(root=tmp_path / "a" / "b" / "c") as run:
        pass
    assert run.path.is_dir()


def test_artifacts_are_content_addressed_and_deduplicated(tmp_path: Path, root: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(b"weights" * 1000)
    d = tmp_path / "ckpt"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("A")
    (d / "sub" / "b.txt").write_text("B")
    with tracklog.start_run() as r1:
        info = r1.log_artifact(src)
        r1.log_artifact(d, name="checkpoints/last")
    with tracklog.start_run() as r2:
        r2.log_artifact(src, name="copy.bin")
    blobs = [p for p in (root / "artifacts" / "sha256").rglob("*") if p.is_file()]
    assert len(blobs) == 3  # model.bin stored once for both runs, plus a.txt and b.txt
    arts = {e.key: e.value for e in events_of(r1.path) if e.kind == "artifact"}
    assert set(arts) == {"model.bin", "checkpoints/last/a.txt", "checkpoints/last/sub/b.txt"}
    assert arts["model.bin"] == info["model.bin"] and arts["model.bin"]["size"] == 7000
    import hashlib

    assert arts["model.bin"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", ["../evil", "/abs/path", "a/../../b", "a//b", "./x", "~root/x", "a\\b"])
def test_artifact_names_cannot_escape_the_store(tmp_path: Path, name: str) -> None:
    src = tmp_path / "f"
    src.write_text("x")
    with tracklog.start_run() as run, pytest.raises(ValidationError, match="artifact name"):
        run.log_artifact(src, name=name)


def test_forked_child_cannot_log_into_the_parents_run() -> None:
    with tracklog.start_run() as run:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            code = 3
            try:
                run.log_metric("a", 1.0)
            except RunClosedError as exc:
                code = 0 if "forked child" in str(exc) else 4
            except BaseException:
                code = 5
            os.write(w, bytes([code]))
            os._exit(0)
        os.close(w)
        os.waitpid(pid, 0)
        child_code = os.read(r, 1)
        os.close(r)
        run.log_metric("a", 2.0)  # the parent is unaffected
    assert child_code == b"\x00"
    assert metric_points(run.path) == [("a", 0, 2.0)]


def test_a_racing_resume_allow_never_removes_the_winners_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A creates the directory; B (resume='allow') finds it and takes the lock first; A's
    failed start must not remove the directory B is writing into."""
    from tracklog.store.lock import WriterLock

    real = WriterLock.acquire
    winner: list[tracklog.Run] = []
    started = []

    def acquire(self: WriterLock, info: dict, timeout: float = 1.0) -> None:  # type: ignore[type-arg]
        if not started:
            started.append(True)
            winner.append(tracklog.start_run(run_id="race", resume="allow"))  # B, inside A's start
        real(self, info, timeout=0.05)

    monkeypatch.setattr(WriterLock, "acquire", acquire)
    with pytest.raises(RunLockedError):
        tracklog.start_run(run_id="race", resume="allow")  # A
    monkeypatch.undo()
    (b,) = winner
    b.log_metric("x", 1.0)
    b.close()
    state = tracklog.Store(b.root).run("race")
    assert state.status == "finished" and state.metrics["x"].count == 1


def test_a_failed_start_of_a_new_run_leaves_nothing_behind(
    monkeypatch: pytest.MonkeyPatch, root: Path
) -> None:
    from tracklog.log import writer

    def boom(*a: object, **k: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer.SegmentWriter, "_open_segment", boom)
    with pytest.raises(StoreError, match="No space left"):
        tracklog.start_run(run_id="gone")
    assert not (root / "runs" / "gone").exists()
    assert not list((root / "index" / "dirty").iterdir())


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda r: r.log_metric(["a"], 1.0), "key must be a str"),
        (lambda r: r.log_metric({"a": 1}, 1.0), "key must be a str"),
        (lambda r: r.log_metrics({1: 1.0}), "key must be a str"),
        (lambda r: r.set_tags(None), "mapping"),
        (lambda r: r.set_tags(["a", 1]), "mapping"),
        (lambda r: r.log_params(None), "mapping"),
        (lambda r: r.log_artifact(None), "artifact source"),
        (lambda r: r.log_artifact(5), "artifact source"),
        (lambda r: r.log_artifact("a\0b"), "NUL"),
    ],
)
def test_bad_arguments_raise_typed_errors_and_log_nothing(call: object, match: str) -> None:
    with tracklog.start_run() as run, pytest.raises(tracklog.TracklogError, match=match):
        call(run)  # type: ignore[operator]
    assert [e.kind for e in events_of(run.path)] == ["run_start", "run_end"]


class _WrongDevice:
    def __float__(self) -> float:
        raise RuntimeError("tensor is on cuda:0; call .cpu() first")


def test_a_value_whose_float_conversion_raises_anything_is_a_typed_error() -> None:
    with tracklog.start_run() as run:
        with pytest.raises(tracklog.ValueTypeError, match="cuda:0"):
            run.log_metric("loss", _WrongDevice())
        with pytest.raises(tracklog.ValueTypeError, match="cuda:0"):
            run.log_metrics({"loss": _WrongDevice()})


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"tags": ["a"]}, ValidationError),
        ({"tags": 5}, ValidationError),
        ({"params": ["a"]}, ValidationError),
        ({"root": ""}, ValidationError),
        ({"root": "a\0b"}, ValidationError),
        ({"root": 5}, ValidationError),
    ],
)
def test_bad_start_run_arguments_are_refused_before_anything_is_created(
    kwargs: dict,
    exc: type,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[type-arg]
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(exc):
        tracklog.start_run(**kwargs)
    assert list(tmp_path.iterdir()) == []


def test_keys_are_not_unicode_normalised_two_spellings_are_two_keys() -> None:
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    with tracklog.start_run() as run:
        run.log_metric(composed, 1.0)
        run.log_metric(decomposed, 2.0)
        run.log_params({composed: 1, decomposed: 2})
    state = tracklog.replay(run.path)
    assert sorted(state.metrics) == sorted([composed, decomposed])
    assert state.history(decomposed).value.tolist() == [2.0]
    assert state.params == {composed: 1, decomposed: 2}
