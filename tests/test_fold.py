from __future__ import annotations

import math

import numpy as np
import pytest

import tracklog
from tracklog.errors import RunNotFoundError

from .helpers import crash


def test_a_job_killed_at_1234_and_resumed_from_1000_has_each_step_once() -> None:
    run = tracklog.start_run(run_id="job")
    for step in range(1235):
        run.log_metric("loss", 1.0, step=step)
        run.log_metric("acc", 0.1, step=step)
    crash(run)
    with tracklog.start_run(run_id="job", resume=True, resume_step=1000) as again:
        for step in range(1000, 2000):
            again.log_metric("loss", 2.0)  # step=None continues from resume_step
            again.log_metric("acc", 0.2, step=step)
    state = tracklog.replay(run.path)
    for key, old, new in (("loss", 1.0, 2.0), ("acc", 0.1, 0.2)):
        h = state.history(key)
        assert h.step.tolist() == list(range(2000))
        assert (h.value[:1000] == old).all() and (h.value[1000:] == new).all()
    assert state.status == "finished"
    assert [s.status for s in state.sessions] == ["crashed", "finished"]
    assert state.sessions[1].superseded == 2 * 235 and state.sessions[1].resume_step == 1000


def test_without_resume_step_the_first_point_per_key_supersedes() -> None:
    with tracklog.start_run(run_id="r") as run:
        for s in range(10):
            run.log_metric("a", 1.0, step=s)
            run.log_metric("b", 1.0, step=s)
    with tracklog.start_run(run_id="r", resume=True) as again:
        again.log_metric("a", 2.0, step=5)  # restarts a from 5; b is untouched
        again.log_metric("a", 2.0, step=5)  # within a session, repeats are kept
    state = tracklog.replay(run.path)
    assert state.history("a").step.tolist() == [0, 1, 2, 3, 4, 5, 5]
    assert state.history("a").value.tolist() == [1.0] * 5 + [2.0, 2.0]
    assert state.history("b").step.tolist() == list(range(10))
    assert state.sessions[1].superseded == 5


def test_resuming_many_times_applies_each_rule_in_order() -> None:
    with tracklog.start_run(run_id="m") as run:
        for s in range(10):
            run.log_metric("a", 0.0, step=s)
    for k in (1, 2, 3):
        with tracklog.start_run(run_id="m", resume=True, resume_step=10 - 2 * k) as again:
            for s in range(10 - 2 * k, 10):
                again.log_metric("a", float(k), step=s)
    h = tracklog.replay(run.path).history("a")
    assert h.step.tolist() == list(range(10))
    assert h.value.tolist() == [0.0] * 4 + [3.0] * 6


def test_summaries_skip_nan_include_inf_and_are_nan_when_all_nan() -> None:
    with tracklog.start_run() as run:
        for v in (3.0, math.nan, -math.inf, 5.0):
            run.log_metric("a", v)
        run.log_metric("b", math.nan)
    m = tracklog.replay(run.path).metrics
    assert (m["a"].min, m["a"].max, m["a"].count, m["a"].last) == (-math.inf, 5.0, 4, 5.0)
    assert (m["a"].first_step, m["a"].last_step) == (0, 3)
    assert math.isnan(m["b"].min) and math.isnan(m["b"].max) and math.isnan(m["b"].last)


def test_history_dtypes_and_missing_keys() -> None:
    with tracklog.start_run() as run:
        run.log_metrics({"a": 1, "b": 2}, step=7, timestamp=100.0)
    state = tracklog.replay(run.path)
    h = state.history("a")
    assert (h.step.dtype, h.value.dtype, h.timestamp.dtype) == (np.int64, np.float64, np.float64)
    assert h.timestamp.tolist() == [100.0]
    with pytest.raises(RunNotFoundError, match="'zzz'"):
        state.history("zzz")


def test_run_state_fields_and_equality() -> None:
    with pytest.raises(ValueError), tracklog.start_run("exp", "nm", params={"p": 1}, tags={"t": 1}) as run:
        run.log_metric("x", math.nan)
        raise ValueError("bad")
    a, b = tracklog.replay(run.path), tracklog.replay(run.path)
    assert a == b  # NaN summaries compare equal
    assert (a.experiment, a.name, a.status, a.params, a.tags) == ("exp", "nm", "failed", {"p": 1}, {"t": 1})
    assert a.error == {"type": "ValueError", "message": "bad"}
    assert a.start_time <= a.end_time
    assert a.sessions[0].pid is not None and a.sessions[0].host
    b.tags["t"] = 2
    assert a != b


def test_status_is_running_while_the_writer_lives_and_crashed_after() -> None:
    run = tracklog.start_run()
    run.log_metric("a", 1.0)
    assert tracklog.replay(run.path).status == "running"
    crash(run)
    assert tracklog.replay(run.path).status == "crashed"
    with tracklog.start_run(run_id=run.id, resume=True):
        pass
    assert tracklog.replay(run.path).status == "finished"


def test_fold_is_split_invariant_for_a_simple_log() -> None:
    from tracklog.log.reader import iter_records
    from tracklog.state.fold import FoldState

    with tracklog.start_run(run_id="s") as run:
        for i in range(50):
            run.log_metric("a", float(i))
            if i % 5 == 0:
                run.log_metrics({"a": -1.0, "b": float(i)})
    with tracklog.start_run(run_id="s", resume=True, resume_step=20) as again:
        for i in range(10):
            again.log_metric("a", float(i))
    records = [obj for _, _, obj in iter_records(run.path)]
    whole = FoldState().apply(records).run_state(run.path)
    for cut in range(0, len(records) + 1, 3):
        parts = FoldState().apply(records[:cut]).apply(records[cut:]).run_state(run.path)
        assert parts == whole
        assert parts.history("a").value.tolist() == whole.history("a").value.tolist()


def test_run_state_and_history_convert_to_plain_dicts() -> None:
    import json

    with tracklog.start_run("e", "n", params={"p": [1, 2]}) as run:
        run.log_metrics({"a": 1.0, "b": 2.0}, step=3)
    state = tracklog.replay(run.path)
    d = state.to_dict()
    json.dumps(d)  # plain data
    assert d["params"] == {"p": [1, 2]} and d["metrics"]["a"]["last_step"] == 3 and d["status"] == "finished"
    assert state.history("b").to_dict() == {
        "key": "b",
        "step": [3],
        "value": [2.0],
        "timestamp": state.history("b").timestamp.tolist(),
    }


def _deep(n: int) -> list:  # type: ignore[type-arg]
    v: list = []  # type: ignore[type-arg]
    for _ in range(n):
        v = [v]
    return v


MALFORMED = [
    [5, ["loss"], 1, 1.0, 1.0],  # an unhashable key
    [5, {"k": 1}, 1, 1.0, 1.0],
    [5, "loss", 2**64 - 1, 1.0, 1.0],  # a step past int64
    [5, "loss", True, 1.0, 1.0],  # a bool is not a step
    [5, "loss", 1, 1, 1.0],  # an int is not a value
    [6, ["loss"], None, 2**64 - 1, b"\0" * 8, 1.0],  # a columnar step past int64
    [3, "p", b"bin", 1.0],  # a param value that is not JSON-like
    [7, "../../x", {"sha256": "0" * 64, "size": 1}, 1.0],  # an artifact name that escapes
    [7, "a", {"sha256": "zz", "size": 1}, 1.0],
    [2, {"status": "exploded", "time": 1.0}],
    [1, {"session": ["x"], "time": 1.0}],
    [1.0, {"session": "ab", "time": 1.0}],  # a float kind
    [8, {"count": -5, "time": 1.0}],
    [9, "x"],  # an unknown kind below 64
    [2, {"status": "failed", "time": 1.0, "error": {"type": "E", "message": "m", "x": _deep(100)}}],
    [7, "a", {"sha256": "0" * 64, "size": 1, "x": _deep(100)}, 1.0],  # nested past any writer's
    [2, {"status": "finished", "time": math.inf}],  # a time no calendar holds
    [8, {"count": 1, "time": math.nan}],
]


@pytest.mark.parametrize("rec", MALFORMED, ids=[repr(r)[:40] for r in MALFORMED])
def test_a_crc_valid_record_with_malformed_contents_is_corrupt_for_scan_and_skipped_by_readers(
    rec: list,  # type: ignore[type-arg]
) -> None:
    from tracklog.log import codec
    from tracklog.log import format as fmt

    with tracklog.start_run(run_id="m") as run:
        run.log_metric("loss", 0.5, step=0)
    seg = run.path / "seg-000001.tlog"
    data = seg.read_bytes()
    end = tracklog.scan(seg)[0].valid_end
    # The malformed record goes before the run's last record, so it is not a torn tail.
    frames = list(fmt.iter_frames(data, fmt.PREFIX_SIZE, len(data)))
    last_start = frames[-1][0] - fmt.FRAME_SIZE  # type: ignore[index]
    bad = fmt.frame(codec.pack(rec))
    seg.write_bytes(data[:last_start] + bad + data[last_start:end])
    (report,) = tracklog.scan(seg)
    assert report.corrupt == [(last_start, last_start + len(bad))]
    state = tracklog.replay(run.path)
    assert state.status == "finished" and state.history("loss").step.tolist() == [0]
    assert state.params == {} and state.artifacts == {} and state.dropped == 0
    assert tracklog.Store().runs() == [state]
    assert tracklog.Store().run("m") == state
    events = list(tracklog.read_events(run.path, on_corrupt="ignore"))
    assert [e.kind for e in events] == ["run_start", "metric", "run_end"]
