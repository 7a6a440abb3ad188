"""Many-process runs: every rank into one run, each rank's points kept, status across ranks.

The launchers are stood in for by plain subprocesses given their environment (torchrun,
SLURM, Open MPI); tests/crash/test_ranks_torchrun.py runs the real torchrun.
"""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import tracklog
from tests.conftest import PY, python_env
from tests.helpers import crash
from tests.test_launch import OPEN_MPI, SLURM_TASK, TORCHRUN
from tracklog.errors import ParamConflictError, RunExistsError, RunNotFoundError, ValidationError
from tracklog.read.compact import compact
from tracklog.write import launch

STEPS = 30

# One rank of a job: logs STEPS points of loss (rank + 1/(step+1)) and then does what
# argv[1] says: "finish", "fail" (raises) or "die" (SIGKILLs itself without an end).
WORKER = r"""
import os, signal, sys, tracklog
what, start = sys.argv[1], int(sys.argv[2])
resume_step = int(os.environ["RESUME_STEP"]) if "RESUME_STEP" in os.environ else None
run = tracklog.start_run("ddp", params={"lr": 0.1, "layers": 2}, resume_step=resume_step)
r = run.rank
for step in range(start, int(sys.argv[3])):
    run.log_metrics({"loss": r + 1.0 / (step + 1), "rank": float(r)}, step=step)
    if what == "die" and step == 20:
        run.flush()
        os.kill(os.getpid(), signal.SIGKILL)
run.set_tag(f"rank{r}", "done")
print(run.id, flush=True)
if what == "fail":
    raise ValueError(f"rank {r} diverged")
run.close()
"""


def _job(
    root: Path, envs: list[dict[str, str]], what: dict[int, str] | None = None, start: int = 0
) -> list[str]:
    """Start one worker per environment at once; return the run ids they printed."""
    procs = []
    for i, extra in enumerate(envs):
        env = {**python_env(), "TRACKLOG_DIR": str(root), "TRACKLOG_GIT": "0", **extra}
        cmd = [PY, "-c", WORKER, (what or {}).get(i, "finish"), str(start), str(STEPS)]
        procs.append(
            subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    ids = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        ids.append(out.strip())
        if p.returncode not in (0, 1, -9):
            raise AssertionError(err)
    return ids


def _torchrun(n: int, restart: int = 0, job: str = "job-4711") -> list[dict[str, str]]:
    return [
        {
            **TORCHRUN,
            "RANK": str(r),
            "LOCAL_RANK": str(r),
            "WORLD_SIZE": str(n),
            "GROUP_RANK": "0",
            "TORCHELASTIC_RUN_ID": job,
            "TORCHELASTIC_RESTART_COUNT": str(restart),
        }
        for r in range(n)
    ]


def _slurm(n: int, restart: int = 0) -> list[dict[str, str]]:
    return [
        {
            **SLURM_TASK,
            "SLURM_PROCID": str(r),
            "SLURM_LOCALID": str(r),
            "SLURM_NTASKS": str(n),
            "SLURM_RESTART_COUNT": str(restart),
        }
        for r in range(n)
    ]


def _mpi(n: int) -> list[dict[str, str]]:
    # Open MPI inside a SLURM job (its identity: MPI ids alone are not unique over time).
    return [
        {
            **OPEN_MPI,
            "OMPI_COMM_WORLD_RANK": str(r),
            "PMIX_RANK": str(r),
            "OMPI_COMM_WORLD_LOCAL_RANK": str(r),
            "OMPI_COMM_WORLD_SIZE": str(n),
            "SLURM_JOB_ID": "777",
        }
        for r in range(n)
    ]


def _expected(rank: int, steps: range) -> list[float]:
    return [rank + 1.0 / (s + 1) for s in steps]


@pytest.mark.parametrize("envs", [_torchrun(4), _slurm(4), _mpi(4)], ids=["torchrun", "slurm", "mpi"])
def test_every_rank_of_a_launch_lands_in_one_run_with_every_point(
    root: Path, envs: list[dict[str, str]]
) -> None:
    ids = _job(root, envs)
    assert len(set(ids)) == 1, ids
    store = tracklog.Store(root)
    assert [r.id for r in store.runs()] == ids[:1]
    state = store.run(ids[0])
    assert state.status == "finished" and state.status_rank is None
    assert state.world_size == 4 and sorted(state.ranks) == [0, 1, 2, 3]
    assert state.params == {"lr": 0.1, "layers": 2} and state.conflicts == {}
    assert state.tags == {f"rank{r}": "done" for r in range(4)}
    assert {s.rank for s in state.sessions} == {0, 1, 2, 3}
    assert all(s.world_size == 4 and s.launcher is not None for s in state.sessions)
    for r in range(4):
        h = store.history(ids[0], "loss", rank=r)
        assert h.step.tolist() == list(range(STEPS)) and h.value.tolist() == _expected(r, range(STEPS))
        assert state.ranks[r].metrics["loss"].count == STEPS
    # The default answers for rank 0; the summaries too.
    assert store.history(ids[0], "loss").value.tolist() == _expected(0, range(STEPS))
    assert state.metrics["loss"].last == _expected(0, range(STEPS))[-1]
    # Compaction keeps every rank's points, and equals a fresh replay.
    compact(root)
    again = store.run(ids[0])
    assert again == state == tracklog.replay(root / "runs" / ids[0])
    assert set(store.history(ids[0], "loss", rank="all")) == {0, 1, 2, 3}


def test_a_rank_that_fails_fails_the_run_and_is_named(root: Path) -> None:
    ids = _job(root, _torchrun(4), {2: "fail"})
    state = tracklog.Store(root).run(ids[0])
    assert (state.status, state.status_rank) == ("failed", 2)
    assert (
        state.error is not None and state.error["type"] == "ValueError" and "rank 2" in state.error["message"]
    )
    assert {r: x.status for r, x in state.ranks.items()} == {
        0: "finished",
        1: "finished",
        2: "failed",
        3: "finished",
    }


def test_a_rank_killed_without_an_end_makes_the_run_crashed(root: Path) -> None:
    ids = _job(root, _torchrun(3), {1: "die"})
    run_id = next(i for i in ids if i)
    state = tracklog.Store(root).run(run_id)
    assert (state.status, state.status_rank) == ("crashed", 1)
    # Its points up to the flush before the kill are kept.
    assert tracklog.Store(root).history(run_id, "loss", rank=1).step.tolist() == list(range(21))


def test_a_restarted_job_resumes_every_rank_into_the_same_run(root: Path) -> None:
    first = _job(root, _torchrun(3), {1: "die"})
    run_id = next(i for i in first if i)
    # torchrun's restart: the same rendezvous id, the restart count up, every rank again,
    # resuming from the checkpoint at step 15 (orphan steps 15.. of attempt 0 superseded).
    again = _job(root, [{**e, "RESUME_STEP": "15"} for e in _torchrun(3, restart=1)], start=15)
    assert set(again) == {run_id}
    store = tracklog.Store(root)
    state = store.run(run_id)
    assert state.status == "finished" and all(x.sessions == 2 for x in state.ranks.values())
    assert [s.restart for s in state.sessions if s.rank == 1] == [0, 1]
    for r in range(3):
        h = store.history(run_id, "loss", rank=r)
        assert h.step.tolist() == list(range(STEPS)), r  # every step once: no orphan twice
        assert h.value.tolist() == _expected(r, range(STEPS))
    superseded = {s.rank: s.superseded for s in state.sessions if s.restart == 1}
    assert superseded == {0: 30, 1: 12, 2: 30}  # two keys each; rank 1 had logged 15..20 when it died
    assert state == tracklog.replay(root / "runs" / run_id)


def test_a_requeued_slurm_job_resumes_every_rank_into_the_same_run(root: Path) -> None:
    first = _job(root, _slurm(3), {2: "die"})
    run_id = next(i for i in first if i)
    # scontrol requeue: the same job and step ids, SLURM_RESTART_COUNT up, the script again.
    again = _job(root, [{**e, "RESUME_STEP": "10"} for e in _slurm(3, restart=1)], start=10)
    assert set(again) == {run_id}
    store = tracklog.Store(root)
    state = store.run(run_id)
    assert state.status == "finished" and [s.restart for s in state.sessions if s.rank == 2] == [0, 1]
    for r in range(3):
        assert store.history(run_id, "loss", rank=r).step.tolist() == list(range(STEPS))


def test_ranks_a_shrunk_elastic_world_no_longer_has_keep_their_history(root: Path) -> None:
    first = _job(root, _torchrun(4), {3: "die"})
    run_id = next(i for i in first if i)
    _job(root, [{**e, "RESUME_STEP": "10"} for e in _torchrun(3, restart=1)], start=10)
    state = tracklog.Store(root).run(run_id)
    # Rank 3 crashed in attempt 0 and attempt 1 has 3 ranks: the run is finished, rank 3 kept.
    assert state.status == "finished" and state.ranks[3].status == "crashed"
    assert tracklog.Store(root).history(run_id, "loss", rank=3).step.tolist() == list(range(21))


def test_the_same_job_relaunched_without_a_restart_is_refused(root: Path) -> None:
    # A second launch with the same identity and restart count 0 is a new job that reused
    # an id (a fixed --rdzv-id): it must not append to the finished run by accident.
    _job(root, _torchrun(2))
    launch.reset()
    env = _torchrun(2)[1]
    old = {k: os.environ.get(k) for k in env}
    try:
        os.environ.update(env)
        with pytest.raises(RunExistsError, match="rank 1 of run"):
            tracklog.start_run("ddp", root=root)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        launch.reset()


def _ranks(root: Path, n: int, run_id: str = "job", **kw: object) -> list[tracklog.Run]:
    return [tracklog.start_run("e", root=root, run_id=run_id, rank=r, world_size=n, **kw) for r in range(n)]  # type: ignore[arg-type]


def test_params_that_ranks_disagree_on_name_both_ranks_and_values(root: Path) -> None:
    r0, r1 = _ranks(root, 2, params={"lr": 0.1})
    with pytest.raises(ParamConflictError, match=r"rank 1 logs 0\.2 but rank 0 logged 0\.1"):
        r1.log_params({"lr": 0.2})
    with pytest.raises(ParamConflictError, match=r"rank 2 logs 0\.3 but rank 0 logged 0\.1"):
        tracklog.start_run("e", root=root, run_id="job", rank=2, world_size=3, params={"lr": 0.3})
    # Ranks that log at the same moment cannot see each other: the fold names the conflict.
    r0.log_params({"seed": 0})
    r1.log_params({"seed": 1})
    r0.close()
    r1.close()
    state = tracklog.Store(root).run("job")
    assert state.params == {"lr": 0.1, "seed": 0} and state.conflicts == {"params.seed": {0: 0, 1: 1}}
    assert tracklog.Store(root).run("job").to_dict()["conflicts"] == {"params.seed": {"0": 0, "1": 1}}


def test_tags_ranks_leave_different_are_named_and_the_last_set_stands(root: Path) -> None:
    r0, r1 = _ranks(root, 2)
    r0.set_tag("phase", "train")
    r1.set_tag("phase", "eval")  # later: it stands
    r0.set_tag("team", "a")
    r1.set_tag("team", "a")
    r0.close()
    r1.close()
    state = tracklog.Store(root).run("job")
    assert state.tags == {"phase": "eval", "team": "a"}
    assert state.conflicts == {"tags.phase": {0: "train", 1: "eval"}}
    compact(root)
    assert tracklog.Store(root).runs()[0].conflicts == state.conflicts


def test_status_is_running_while_any_rank_is_alive(root: Path) -> None:
    runs = _ranks(root, 3)
    store = tracklog.Store(root)
    runs[0].close()
    runs[1].close("killed")
    assert store.run("job").status == "running"
    crash(runs[2])
    state = store.run("job")
    assert (state.status, state.status_rank) == ("crashed", 2)


@pytest.mark.parametrize(
    ("ends", "status", "rank"),
    [
        ({0: "finished", 1: "finished"}, "finished", None),
        ({0: "finished", 1: "killed"}, "killed", 1),
        ({0: "killed", 1: "crashed", 2: "killed"}, "crashed", 1),  # the crash caused the kills
        ({0: "crashed", 1: "failed", 2: "killed"}, "failed", 1),
        ({0: "failed", 1: "failed"}, "failed", 0),  # the lowest rank names it
    ],
)
def test_the_worst_rank_decides(root: Path, ends: dict[int, str], status: str, rank: int | None) -> None:
    runs = _ranks(root, len(ends))
    for r, end in ends.items():
        if end == "crashed":
            crash(runs[r])
        else:
            runs[r].close(end)  # type: ignore[arg-type]
    state = tracklog.Store(root).run("job")
    assert (state.status, state.status_rank) == (status, rank)
    compact(root)
    assert tracklog.Store(root).runs()[0] == state  # the index entry says the same


def test_history_by_rank_all_ranks_and_reduced(root: Path) -> None:
    r0, r1, r2 = _ranks(root, 3)
    r0.log_metrics({"loss": 1.0}, step=0)
    r1.log_metrics({"loss": 3.0}, step=0)
    r2.log_metrics({"loss": 8.0}, step=0)
    r0.log_metrics({"loss": 2.0}, step=1)
    r1.log_metrics({"loss": math.nan}, step=2)
    r2.log_metrics({"loss": 5.0}, step=1)
    r2.log_metrics({"loss": 4.0}, step=1)  # a rank's second point at a step: its last counts
    for r in (r0, r1, r2):
        r.close()
    store = tracklog.Store(root)
    assert store.history("job", "loss").value.tolist() == [1.0, 2.0]
    every = store.history("job", "loss", rank="all")
    assert sorted(every) == [0, 1, 2] and every[2].value.tolist() == [8.0, 5.0, 4.0]
    mean = store.history("job", "loss", reduce="mean")
    assert mean.step.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(mean.value, [4.0, 3.0, math.nan])
    assert store.history("job", "loss", reduce="sum").value.tolist()[:2] == [12.0, 6.0]
    assert store.history("job", "loss", reduce="min").value.tolist()[:2] == [1.0, 2.0]
    assert store.history("job", "loss", reduce="max").value.tolist()[:2] == [8.0, 4.0]
    assert mean.timestamp[0] == max(every[r].timestamp[0] for r in range(3))
    with pytest.raises(ValidationError, match="reduce must be one of"):
        store.history("job", "loss", reduce="median")  # type: ignore[call-overload]
    with pytest.raises(RunNotFoundError, match="on rank 5"):
        store.history("job", "loss", rank=5)


def test_a_key_only_other_ranks_logged_says_which_have_it(root: Path) -> None:
    r0, r1 = _ranks(root, 2)
    r1.log_metric("grad_norm", 1.0)
    r0.close()
    r1.close()
    with pytest.raises(RunNotFoundError, match=r"on rank 0 \(ranks 1 have it: pass rank=\)"):
        tracklog.Store(root).history("job", "grad_norm")


def test_a_single_process_run_keeps_its_meaning(root: Path) -> None:
    with tracklog.start_run("e", root=root, run_id="solo") as run:
        run.log_metric("loss", 1.0)
    state = tracklog.Store(root).run("solo")
    assert state.ranks == {} and state.world_size == 1 and state.status_rank is None
    assert [s.rank for s in state.sessions] == [None]
    assert tracklog.Store(root).history("solo", "loss", rank=0).value.tolist() == [1.0]
    assert list(tracklog.Store(root).history("solo", "loss", rank="all")) == [0]
    # Its segment has no rank fields: the bytes are those a single process always wrote.
    header = tracklog.log.reader.read_header(next((root / "runs" / "solo").glob("seg-*.tlog")))
    assert header is not None and "rank" not in header


def test_ranks_never_share_a_segment_or_a_lock(root: Path) -> None:
    runs = _ranks(root, 3)
    for r in runs:
        r.log_metric("x", 1.0)
    paths = {r._writer.path for r in runs}
    assert len(paths) == 3
    assert sorted(p.name for p in (root / "runs" / "job").glob("writer*.lock")) == [
        "writer-1.lock",
        "writer-2.lock",
        "writer.lock",
    ]
    with pytest.raises(tracklog.errors.RunLockedError):
        tracklog.start_run("e", root=root, run_id="job", rank=1, world_size=3, resume=True)
    for r in runs:
        r.close()
    assert not list((root / "runs" / "job").glob("writer*.lease"))  # removed at close


def test_segment_numbers_taken_by_another_rank_are_skipped(root: Path) -> None:
    r0 = tracklog.start_run("e", root=root, run_id="job", rank=0, world_size=2)
    w = r0._writer
    first = w.seq
    # Another rank made the next number between our look and our create: we move past it.
    (w.run_path / f"seg-{first + 1:06d}.tlog").write_bytes(b"")
    with w.lock:
        assert w._rotate("test")
    assert w.seq == first + 2
    r0.log_metric("x", 1.0, step=0)
    r0.close()
    assert tracklog.Store(root).history("job", "x").value.tolist() == [1.0]


def test_where_filters_and_sorts_say_which_rank(root: Path) -> None:
    runs = _ranks(root, 2, run_id="two")
    runs[0].log_metric("loss", 1.0)
    runs[1].log_metric("loss", 9.0)
    runs[0].close()
    crash(runs[1])
    with tracklog.start_run("e", root=root, run_id="solo") as solo:
        solo.log_metric("loss", 5.0)
    store = tracklog.Store(root)
    ids = lambda where: [r.id for r in store.runs(where=where)]  # noqa: E731
    assert ids("metrics.loss < 2") == ["two"]  # rank 0's
    assert ids("ranks.1.metrics.loss > 8") == ["two"]
    assert ids("ranks.1.metrics.loss.max >= 9 AND ranks.1.status = 'crashed'") == ["two"]
    assert ids("world_size = 2") == ["two"] and ids("world_size = 1") == ["solo"]
    assert ids("ranks.0.status = 'finished'") == ["two"]  # a single-process run has no ranks
    with pytest.raises(tracklog.errors.FilterError, match=r"ranks\.R\.status"):
        store.runs(where="ranks.x.status = 'crashed'")


def test_the_tail_names_each_points_rank_and_waits_for_every_rank(root: Path) -> None:
    r0, r1 = _ranks(root, 2)
    r0.log_metric("loss", 1.0, step=0)
    r1.log_metric("loss", 2.0, step=0)
    r0.close()
    store = tracklog.Store(root)
    seen = [
        (e.kind, e.rank, e.value)
        for e in store.tail("job", from_start=True, follow=False)
        if e.kind != "run_start"
    ]
    assert ("metric", 0, 1.0) in seen and ("metric", 1, 2.0) in seen
    assert [(k, r) for k, r, _ in seen if k == "run_end"] == [("run_end", 0)]
    crash(r1)  # one rank ended, the other died: the tail reports the crash, naming the rank
    ends = [e for e in store.tail("job", from_start=True) if e.kind == "run_end"]
    assert [(e.rank, e.value["status"]) for e in ends] == [(0, "finished"), (1, "crashed")]
    blocks = list(tracklog.read.tail.follow_points(root / "runs" / "job", from_start=True, follow=False))
    assert {(b.rank, float(b.value[0])) for b in blocks if b.kind == "metric"} == {(0, 1.0), (1, 2.0)}


def test_cli_tail_and_show_name_ranks(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tracklog.cli.main import main

    r0, r1 = _ranks(root, 2)
    r0.log_metric("loss", 1.0, step=0)
    r1.log_metric("loss", 2.0, step=0)
    r0.close()
    r1.close("failed", error=ValueError("boom"))
    assert main(["--root", str(root), "tail", "job", "--from-start", "--no-follow"]) == 0
    out = capsys.readouterr().out
    assert "rank   0  step        0  loss=1" in out and "rank   1  step        0  loss=2" in out
    assert main(["--root", str(root), "tail", "job", "--from-start", "--no-follow", "--rank", "1"]) == 0
    out = capsys.readouterr().out
    assert "loss=2" in out and "loss=1" not in out
    assert main(["--root", str(root), "show", "job"]) == 0
    out = capsys.readouterr().out
    assert "failed (rank 1)" in out and "ranks      2 of world size 2" in out
    assert main(["--root", str(root), "runs"]) == 0
    assert "failed (rank 1)" in capsys.readouterr().out
