"""read/alerts.py and `tracklog watch`: each rule fires once per episode, at the right step,
never for a healthy run; stalls judged by the watcher's clock; --exec gets the alert in its env."""

from __future__ import annotations

import itertools
import math
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tracklog
from tracklog.log.codec import Event
from tracklog.read.alerts import Judge

from .conftest import PY, python_env
from .test_cli import tl


def _m(key: str, step: int, value: float) -> Event:
    return Event("metric", key, value, step, 1000.0 + step)


def _feed(judge: Judge, points: list[tuple[str, int, float]]) -> list[tuple[str, str | None, int | None]]:
    out = []
    for key, step, value in points:
        out += [(a.kind, a.key, a.step) for a in judge.event(_m(key, step, value))]
    return out


def test_nan_fires_once_per_episode_and_rearms_after_a_finite_value() -> None:
    j = Judge("r", tracklog.AlertRules())
    pts = [
        ("loss", 0, 1.0),
        ("loss", 1, math.nan),
        ("loss", 2, math.nan),
        ("loss", 3, 0.5),
        ("loss", 4, math.inf),
    ]
    pts += [("acc", 4, -math.inf)]
    assert _feed(j, pts) == [("nan", "loss", 1), ("nan", "loss", 4), ("nan", "acc", 4)]


def test_above_and_diverge_fire_at_the_step_they_cross_and_again_only_after_recovering() -> None:
    j = Judge("r", tracklog.AlertRules(nan=False, above={"gnorm": 10.0}, diverge={"loss": 3.0}))
    pts = [("gnorm", 0, 5.0), ("gnorm", 1, 11.0), ("gnorm", 2, 12.0), ("gnorm", 3, 10.0), ("gnorm", 4, 50.0)]
    pts += [("loss", 0, 2.0), ("loss", 1, 1.0), ("loss", 2, 2.9), ("loss", 3, 3.5), ("loss", 4, 9.0)]
    pts += [("loss", 5, 1.5), ("loss", 6, 4.0)]  # back under 3x min 1.0, then over again
    assert _feed(j, pts) == [
        ("above", "gnorm", 1),
        ("above", "gnorm", 4),
        ("diverged", "loss", 3),
        ("diverged", "loss", 6),
    ]


def test_a_healthy_run_never_alerts() -> None:
    j = Judge("r", tracklog.AlertRules(above={"loss": 10.0}, diverge={"loss": 2.0}, stall=60))
    pts = [("loss", s, 1.0 + 5.0 * math.exp(-s / 300) + 0.01 * math.sin(s)) for s in range(1000)]
    assert _feed(j, pts) == []
    assert j.tick(live=True) == []  # quiet for less than a minute
    assert j.event(Event("run_end", None, {"status": "finished"}, None, 2.0)) == []


def test_a_stall_is_judged_by_the_watchers_clock_once_until_the_run_logs_again() -> None:
    now = [100.0]
    j = Judge("r", tracklog.AlertRules(stall=30), clock=lambda: now[0])
    now[0] = 129.0
    assert j.tick(live=True) == []
    now[0] = 131.0
    assert [a.kind for a in j.tick(live=True)] == ["stalled"]
    assert j.tick(live=True) == []  # one per episode
    j.event(_m("loss", 1, 1.0))
    now[0] = 200.0
    assert j.tick(live=False) == []  # a run whose writer is gone is not stalled: it ended
    assert [a.kind for a in j.tick(live=True)] == ["stalled"]


@pytest.mark.parametrize("status", ["failed", "killed", "crashed"])
def test_a_bad_end_alerts_and_a_good_one_does_not(status: str) -> None:
    j = Judge("r", tracklog.AlertRules())
    end = {
        "status": status,
        "error": {"type": "ValueError", "message": "boom"} if status == "failed" else None,
    }
    (a,) = j.event(
        Event("run_end", None, {**end, "signal": "SIGTERM" if status == "killed" else None}, None, 5.0)
    )
    assert a.kind == "ended" and a.value == status and status in a.message
    assert a.env()["TRACKLOG_ALERT"] == "ended" and a.env()["TRACKLOG_RUN_ID"] == "r"


@pytest.mark.parametrize(
    "kw",
    [{"above": {"loss": math.nan}}, {"diverge": {"loss": 1.0}}, {"stall": 0}, {"above": {"loss": "1"}}],
)
def test_bad_rules_are_validation_errors(kw: dict[str, object]) -> None:
    with pytest.raises(tracklog.ValidationError):
        tracklog.AlertRules(**kw)  # type: ignore[arg-type]


def test_store_watch_judges_a_real_run_from_its_start(root: Path) -> None:
    try:
        with tracklog.start_run(run_id="bad") as run:
            for s, v in enumerate([1.0, 0.9, math.nan, 0.8, 0.7, math.inf, 0.5]):
                run.log_metric("loss", v, step=s)
            raise RuntimeError("diverged")
    except RuntimeError:
        pass
    alerts = list(tracklog.Store(root).watch("bad", from_start=True))
    assert [(a.kind, a.step) for a in alerts] == [("nan", 2), ("nan", 5), ("ended", None)]
    assert "RuntimeError: diverged" in alerts[-1].message


SLEEPER = r"""
import sys, time, tracklog
run = tracklog.start_run(root=sys.argv[1], run_id="sleepy")
run.log_metric("loss", 1.0, step=0)
run.flush()
print("logged", flush=True)
time.sleep(600)  # holds the lock, logs nothing: stalled
"""


def test_a_writer_that_sleeps_stalls_then_a_sigkill_ends_it_crashed(root: Path) -> None:
    proc = subprocess.Popen(
        [PY, "-c", SLEEPER, str(root)], stdout=subprocess.PIPE, text=True, env=python_env()
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "logged"
        alerts = tracklog.Store(root).watch("sleepy", rules=tracklog.AlertRules(stall=0.5))
        first = next(alerts)
        assert first.kind == "stalled" and first.run_id == "sleepy" and "logged nothing" in first.message
        proc.kill()
        proc.wait(timeout=10)
        rest = list(alerts)  # the watch ends with the run
        assert [a.kind for a in rest] == ["ended"] and rest[0].value == "crashed"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_tracklog_watch_prints_each_alert_and_exec_gets_it_in_env_only(root: Path, tmp_path: Path) -> None:
    hostile = "x$(touch pwned)"
    with tracklog.start_run(run_id="w") as run:
        run.log_metric(hostile, math.nan, step=3)
        run.log_metric("gnorm", 20.0, step=4)
    out = tmp_path / "alerts.txt"
    r = tl(
        "watch", "w", "--from-start", "--nan", "--above", "gnorm=10",
        "--exec", f'echo "$TRACKLOG_ALERT|$TRACKLOG_RUN_ID|$TRACKLOG_KEY|$TRACKLOG_STEP|$TRACKLOG_VALUE" >> {out}',
        root=root,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"nan: {hostile} is nan at step 3", "above: gnorm = 20 > 10 at step 4"]
    assert out.read_text().splitlines() == [f"nan|w|{hostile}|3|nan", "above|w|gnorm|4|20.0"]
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_tracklog_watch_refuses_bad_usage(root: Path) -> None:
    tracklog.start_run(run_id="u").close()
    for args in (
        ("watch",),
        ("watch", "u", "-e", "x"),
        ("watch", "u", "--above", "gnorm"),
        ("watch", "u", "--stall", "-1"),
    ):
        r = tl(*args, root=root)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, (args, r.stderr)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.sampled_from([1.0, 2.5, math.nan, math.inf, -math.inf, 100.0]), max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=6),
    nan=st.booleans(),
    above=st.booleans(),
)
def test_judging_a_batch_of_points_equals_judging_them_one_by_one(
    values: list[float], cuts: list[int], nan: bool, above: bool
) -> None:
    rules = tracklog.AlertRules(nan=nan, above={"k": 50.0} if above else {})
    one, many = Judge("r", rules), Judge("r", rules)
    expected = [(a.kind, a.step) for s, v in enumerate(values) for a in one.event(_m("k", s, v))]
    got = []
    edges = [0, *sorted(c for c in cuts if c <= len(values)), len(values)]
    for a, b in itertools.pairwise(edges):
        steps = list(range(a, b))
        got += [(x.kind, x.step) for x in many.points("k", steps, values[a:b], [1000.0 + s for s in steps])]
    assert got == expected
