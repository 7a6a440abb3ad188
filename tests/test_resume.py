"""write/resume.py: what a resumed writer knows of earlier sessions (start_run(resume=...))."""

from __future__ import annotations

from pathlib import Path

import pytest

import tracklog
from tracklog.log import codec
from tracklog.log import format as fmt
from tracklog.write.resume import PriorState, read_prior_state

from .conftest import events_of, metric_points
from .helpers import crash


def _point_starts(seg: Path) -> dict[int, int]:
    """step -> offset of the single-point record of that step."""
    data = seg.read_bytes()
    out = {}
    for a, b in fmt.iter_frames(data, fmt.PREFIX_SIZE, len(data)):  # type: ignore[misc]
        rec = codec.unpack(data[a:b])
        if type(rec) is list and rec[0] == codec.METRIC:
            out[rec[2]] = a - fmt.FRAME_SIZE
    return out


def test_prior_state_holds_experiment_name_params_and_next_steps() -> None:
    with tracklog.start_run("exp", "nm", run_id="r", params={"lr": 0.1, "layers": [1, 2]}) as run:
        run.log_metric("a", 1.0, step=10)
        run.log_metric("a", 2.0, step=3)  # the last step counts, not the largest
        run.log_metrics({"b": 1.0, "c": 1.0}, step=7)
    prior = read_prior_state(run.path, None)
    assert (prior.experiment, prior.name, prior.default_step) == ("exp", "nm", 0)
    assert prior.params == {"lr": codec.pack(0.1), "layers": codec.pack([1, 2])}
    assert prior.next_steps == {"a": 4, "b": 8, "c": 8}
    stepped = read_prior_state(run.path, 5)
    assert stepped.next_steps == {} and stepped.default_step == 5
    assert PriorState.empty() == PriorState() and PriorState.empty(9).default_step == 9


def test_a_resumed_run_continues_each_key_and_starts_new_keys_at_zero() -> None:
    with tracklog.start_run("exp", "nm", run_id="r", params={"lr": 0.1}) as run:
        run.log_metric("a", 1.0, step=10)
        run.log_metric("a", 2.0, step=3)
    with tracklog.start_run(run_id="r", resume=True, params={"lr": 0.1}) as again:
        assert (again.experiment, again.name) == ("exp", "nm")
        again.log_metric("a", 3.0)
        again.log_metric("new", 1.0)
    assert metric_points(run.path)[-2:] == [("a", 4, 3.0), ("new", 0, 1.0)]
    assert [e.key for e in events_of(run.path) if e.kind == "param"] == ["lr"]  # not logged again
    state = tracklog.replay(run.path)
    assert [s.resume for s in state.sessions] == [False, True] and state.status == "finished"


def test_each_resume_continues_from_all_sessions_before_it() -> None:
    for i in range(3):
        with tracklog.start_run(run_id="r", resume="allow", name=f"take{i}") as run:
            run.log_metric("a", float(i))
            run.log_metric("a", float(i))
    state = tracklog.replay(run.path)
    assert state.history("a").step.tolist() == [0, 1, 2, 3, 4, 5]
    assert state.name == "take2" and len(state.sessions) == 3 and state.sessions[-1].superseded == 0


@pytest.mark.parametrize("torn_into", [1, 9, 20])
def test_resume_after_a_torn_tail_continues_from_the_last_complete_point(torn_into: int) -> None:
    run = tracklog.start_run(run_id="t")
    for i in range(10):
        run.log_metric("a", float(i))
    crash(run)
    seg = run.path / "seg-000001.tlog"
    torn = seg.read_bytes()[: _point_starts(seg)[7] + torn_into]  # point 7 half written
    seg.write_bytes(torn)
    with tracklog.start_run(run_id="t", resume=True) as again:
        again.log_metric("a", 70.0)
        again.log_metric("a", 80.0)
    assert seg.read_bytes() == torn  # the old segment is never rewritten
    state = tracklog.replay(run.path)
    assert state.history("a").step.tolist() == list(range(9))
    assert state.history("a").value.tolist()[-2:] == [70.0, 80.0]
    assert [s.status for s in state.sessions] == ["crashed", "finished"]
    assert tracklog.Store().run("t") == state


def test_resume_step_drops_later_points_of_every_key_and_restarts_there() -> None:
    run = tracklog.start_run(run_id="s")
    for _ in range(8):
        run.log_metrics({"a": 1.0, "b": 2.0})
    crash(run)
    with tracklog.start_run(run_id="s", resume=True, resume_step=5) as again:
        again.log_metric("a", 5.5)
        again.log_metric("z", 1.0)
    state = tracklog.replay(run.path)
    assert state.history("a").step.tolist() == [0, 1, 2, 3, 4, 5]
    assert state.history("b").step.tolist() == [0, 1, 2, 3, 4]
    assert state.history("z").step.tolist() == [5]
    assert state.sessions[1].resume_step == 5 and state.sessions[1].superseded == 6


def test_resume_of_a_run_with_a_corrupt_middle_warns_and_continues() -> None:
    run = tracklog.start_run(run_id="c")
    for i in range(6):
        run.log_metric("a", float(i))
    run.close()
    seg = run.path / "seg-000001.tlog"
    data = bytearray(seg.read_bytes())
    data[_point_starts(seg)[2] + fmt.FRAME_SIZE + 1] ^= 0xFF
    seg.write_bytes(bytes(data))
    with pytest.warns(tracklog.TracklogWarning, match="corrupt bytes"):
        again = tracklog.start_run(run_id="c", resume=True)
    with again:
        again.log_metric("a", 6.0)
    state = tracklog.replay(run.path, on_corrupt="ignore")
    assert state.history("a").step.tolist() == [0, 1, 3, 4, 5, 6]


def test_resume_refuses_another_experiment_and_keeps_the_first() -> None:
    with tracklog.start_run("exp", run_id="e") as run:
        run.log_metric("a", 1.0)
    with pytest.raises(tracklog.ValidationError, match="belongs to experiment 'exp'"):
        tracklog.start_run("other", run_id="e", resume=True)
    assert [p.name for p in run.path.glob("seg-*.tlog")] == ["seg-000001.tlog"]  # nothing written
    with tracklog.start_run("exp", run_id="e", resume=True) as again:
        assert again.experiment == "exp"
    assert tracklog.replay(run.path).experiment == "exp"


def test_resume_true_accepts_a_unique_id_prefix_or_run_name_as_the_cli_does(root: Path) -> None:
    with tracklog.start_run(name="baseline", run_id="20261203-abcdef") as run:
        run.log_metric("loss", 1.0)
    with tracklog.start_run(run_id="20261203-ab", resume=True) as again:
        again.log_metric("loss", 0.5)
    assert again.id == "20261203-abcdef"
    with tracklog.start_run(run_id="baseline", resume=True) as third:
        assert third.id == "20261203-abcdef"
    assert tracklog.replay(root / "runs" / "20261203-abcdef").metrics["loss"].count == 2
    with tracklog.start_run(run_id="20261203-abzzzz"):
        pass
    with pytest.raises(tracklog.RunNotFoundError, match="ambiguous"):
        tracklog.start_run(run_id="20261203-ab", resume=True)
    with pytest.raises(tracklog.RunNotFoundError, match="resume='allow'"):
        tracklog.start_run(run_id="nothing", resume=True)
    # "allow" never takes a prefix for another run: a missing id is created.
    with tracklog.start_run(run_id="20261203-a", resume="allow") as new:
        assert new.id == "20261203-a"
