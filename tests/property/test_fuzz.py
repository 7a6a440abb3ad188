"""Fuzzing the reader, the fold and the tail cursor with mutated real logs: only tracklog
errors or clean stops, never another exception, a hang, or an unbounded allocation."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracklog
from tracklog.read.tail import _Cursor

pytestmark = pytest.mark.filterwarnings("ignore::tracklog.errors.TracklogWarning")

_SAMPLE: bytes | None = None


def _sample() -> bytes:
    global _SAMPLE
    if _SAMPLE is None:
        with tempfile.TemporaryDirectory() as d:
            with tracklog.start_run(root=d, run_id="s", params={"p": [1, {"x": 2}]}, tags={"t": "v"}) as run:
                for i in range(30):
                    run.log_metric("a", float(i))
                run.log_metrics({"b": math.nan, "c": math.inf}, step=3)
            _SAMPLE = next(run.path.glob("seg-*.tlog")).read_bytes()
    return _SAMPLE


mutation = st.tuples(
    st.integers(0, 10_000), st.sampled_from(["flip", "zero", "cut", "insert", "dup"]), st.binary(max_size=16)
)


def _mutate(data: bytes, muts: list) -> bytes:
    buf = bytearray(data)
    for pos, kind, blob in muts:
        pos %= max(len(buf), 1)
        if kind == "flip" and buf:
            buf[pos] ^= (blob[0] if blob else 1) or 1
        elif kind == "zero":
            buf[pos : pos + 64] = bytes(len(buf[pos : pos + 64]))
        elif kind == "cut":
            del buf[pos:]
        elif kind == "insert":
            buf[pos:pos] = blob
        elif kind == "dup":
            buf[pos:pos] = buf[pos : pos + 40]
    return bytes(buf)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(mutation, min_size=1, max_size=5))
def test_mutated_logs_give_tracklog_errors_or_clean_stops(tmp_path: Path, muts: list) -> None:
    run_dir = tmp_path / "runs" / "fz"
    run_dir.mkdir(parents=True, exist_ok=True)
    seg = run_dir / "seg-000001.tlog"
    seg.write_bytes(_mutate(_sample(), muts))
    for action in (
        lambda: list(tracklog.read_events(seg, on_corrupt="ignore")),
        lambda: tracklog.scan(seg),
        lambda: tracklog.replay(run_dir, on_corrupt="ignore"),
        lambda: _Cursor(seg).read(),
        lambda: tracklog.compact(run_dir),
    ):
        try:
            action()
        except tracklog.TracklogError:
            pass
    try:
        state = tracklog.replay(run_dir, on_corrupt="ignore")
    except tracklog.TracklogError:
        return
    for key in state.metrics:
        assert len(state.history(key)) == state.metrics[key].count
