"""The Parquet lake (interop/lake.py): DuckDB over an export answers as the Store does.

Needs the interop extra (pyarrow, duckdb, fsspec); skipped, naming it, without them.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

import tracklog
from tracklog.interop.lake import export_lake, partition_value

from .conftest import PY, python_env
from .helpers import crash

duckdb = pytest.importorskip("duckdb", reason="the interop extra is not installed")
pytest.importorskip("pyarrow", reason="the interop extra is not installed")

HOSTILE = "a/b=c%.. é?*#[x]"


def points_sql(lake: Path | str) -> str:
    return f"read_parquet('{lake}/points/**/*.parquet', hive_partitioning=true)"


def duck_answers(lake: Path, con: Any = None) -> dict[tuple[str, int, str], tuple[Any, ...]]:
    """(run_id, rank, key) -> count, min, max (NaN skipped, as the Store's), last, first step."""
    con = con or duckdb
    rows = con.sql(
        f"""SELECT run_id, rank, key, count(*),
                   min(value) FILTER (WHERE NOT isnan(value)),
                   max(value) FILTER (WHERE NOT isnan(value)),
                   arg_max(value, ordinal), arg_min(step, ordinal), count(DISTINCT ordinal)
            FROM {points_sql(lake)} GROUP BY ALL"""
    ).fetchall()
    out = {}
    for rid, rank, key, n, lo, hi, last, first, distinct in rows:
        assert distinct == n, "an ordinal twice: a point exported twice"
        out[(rid, rank, key)] = (n, _nan(lo), _nan(hi), _nan(last), first)
    return out


def store_answers(store: tracklog.Store) -> dict[tuple[str, int, str], tuple[Any, ...]]:
    out = {}
    for s in store.runs():
        lanes = {r: rs.metrics for r, rs in s.ranks.items()} if s.ranks else {0: s.metrics}
        for rank, metrics in lanes.items():
            for key, m in metrics.items():
                if m.count:
                    out[(s.id, rank, key)] = (m.count, _nan(m.min), _nan(m.max), _nan(m.last), m.first_step)
    return out


def _nan(v: float | None) -> Any:
    return "nan" if v is None or math.isnan(v) else v  # comparable: NaN == NaN here


def files(lake: Path) -> dict[str, tuple[int, int]]:
    """Every part file: path -> (inode, mtime_ns), to see that none is rewritten."""
    return {
        str(p.relative_to(lake)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in (lake / "points").rglob("*.parquet")
    }


def test_duckdb_over_the_lake_equals_the_store_nan_inf_ranks_and_a_hostile_experiment(
    root: Path, tmp_path: Path
) -> None:
    with tracklog.start_run(
        HOSTILE, name="one", params={"lr": 0.1, "opt": {"b": [1, 2]}}, tags={"t": "x"}
    ) as a:
        for i in range(50):
            v = (
                math.nan
                if i % 7 == 3
                else (math.inf if i == 11 else (-math.inf if i == 12 else 1.0 / (i + 1)))
            )
            a.log_metrics({"loss": v, "acc": i / 50})
    with tracklog.start_run("plain", run_id="allnan") as b:
        b.log_metric("x", math.nan)
        b.log_metric("x", math.nan)
    ranks = [tracklog.start_run("plain", run_id="job", rank=r, world_size=3) for r in range(3)]
    for r, run in enumerate(ranks):
        for i in range(20 + r):
            run.log_metric("loss", float(r * 100 + i), step=i)
        run.close()
    store = tracklog.Store()
    report = export_lake(store, None, tmp_path / "lake")
    assert report.runs == 3 and report.points == 100 + 2 + 63
    lake = tmp_path / "lake"
    assert duck_answers(lake) == store_answers(store)

    # Every point, in the Store's order, with its rank and session; hive columns read back.
    rows = duckdb.sql(
        f"SELECT experiment, run_id, rank, session, key, step, time, value FROM {points_sql(lake)} "
        "WHERE run_id = 'job' ORDER BY rank, ordinal"
    ).fetchall()
    sessions = {s.rank: s.session for s in store.run("job").sessions}
    want = []
    for r in range(3):
        h = store.history("job", "loss", rank=r)
        want += [
            ("plain", "job", r, sessions[r], "loss", st, t, v)
            for st, t, v in zip(h.step.tolist(), h.timestamp.tolist(), h.value.tolist(), strict=True)
        ]
    assert rows == want
    ((exp,),) = duckdb.sql(
        f"SELECT DISTINCT experiment FROM {points_sql(lake)} WHERE run_id = '{a.id}'"
    ).fetchall()
    assert exp == HOSTILE
    assert (lake / "points" / f"experiment={partition_value(HOSTILE)}" / f"run={a.id}").is_dir()
    names = sorted(p.name for p in (lake / "points").iterdir())  # no "a/b" directories, no ".."
    assert names == sorted([f"experiment={partition_value(HOSTILE)}", "experiment=plain"])
    vals = duckdb.sql(
        f"SELECT value FROM {points_sql(lake)} WHERE key = 'loss' AND run_id = '{a.id}' ORDER BY ordinal"
    ).fetchall()
    assert [math.isnan(v) for (v,) in vals] == [
        math.isnan(v) for v in store.history(a.id, "loss").value.tolist()
    ]
    assert vals[11] == (math.inf,) and vals[12] == (-math.inf,)

    runs = {
        r[0]: r
        for r in duckdb.sql(
            f"SELECT run_id, experiment, name, status, started, points FROM '{lake}/runs.parquet'"
        ).fetchall()
    }
    assert runs[a.id] == (a.id, HOSTILE, "one", "finished", store.run(a.id).start_time, 100)
    assert runs["job"][5] == 63
    params = duckdb.sql(
        f"SELECT key, value, number, text FROM '{lake}/params.parquet' WHERE run_id = '{a.id}' ORDER BY key"
    ).fetchall()
    assert params == [("lr", "0.1", 0.1, None), ("opt", json.dumps({"b": [1, 2]}), None, None)]
    tags = duckdb.sql(
        f"SELECT key, value, text FROM '{lake}/tags.parquet' WHERE run_id = '{a.id}'"
    ).fetchall()
    assert tags == [("t", '"x"', "x")]


def test_a_rerun_writes_only_new_part_files_for_new_points(root: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    with tracklog.start_run("e", run_id="r1") as r1:
        for i in range(10):
            r1.log_metric("loss", float(i))
    with tracklog.start_run("e", run_id="r2") as r2:
        r2.log_metric("loss", 1.0)
    store = tracklog.Store()
    export_lake(store, None, lake)
    before = files(lake)
    assert len(before) == 2

    again = export_lake(store, None, lake)  # nothing new: nothing written
    assert (again.exported, again.parts, again.points) == (0, 0, 0) and files(lake) == before

    with tracklog.start_run(run_id="r1", resume=True) as more:
        for i in range(10, 15):
            more.log_metric("loss", float(i), step=i)
    third = export_lake(store, None, lake)
    after = files(lake)
    assert (third.exported, third.parts, third.points) == (1, 1, 5)
    assert {k: v for k, v in after.items() if k in before} == before  # the old parts untouched
    (new,) = set(after) - set(before)
    assert "/run=r1/" in new
    assert duck_answers(lake) == store_answers(store)
    sess = duckdb.sql(
        f"SELECT session, count(*) FROM {points_sql(lake)} WHERE run_id = 'r1' GROUP BY 1 ORDER BY 2"
    ).fetchall()
    assert [n for _, n in sess] == [5, 10] and {s for s, _ in sess} == {
        s.session for s in store.run("r1").sessions
    }


class Killed(Exception):
    pass


def test_an_export_killed_between_parts_rerun_neither_doubles_nor_loses_points(
    root: Path, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    for n in range(3):
        with tracklog.start_run("e", run_id=f"r{n}") as run:
            for i in range(25):
                run.log_metrics({"a": float(i), "b": float(-i)})
    store = tracklog.Store()
    seen: list[str] = []

    def kill_after_two(name: str) -> None:
        seen.append(name)
        if len(seen) == 2:
            raise Killed(name)

    with pytest.raises(Killed):
        export_lake(store, None, lake, part_rows=20, _after_part=kill_after_two)
    # What a kill between the rename of a part and its manifest leaves: a part no manifest names.
    part = next((lake / "points").rglob("g000000-000001.parquet"))
    (part.parent / "g000000-000002.parquet").write_bytes(part.read_bytes())
    with pytest.raises(Killed):  # and a second kill, in another run
        seen.clear()
        export_lake(
            store,
            None,
            lake,
            part_rows=30,
            _after_part=lambda n: seen.append(n) or (len(seen) == 3 and _raise()),
        )
    report = export_lake(store, None, lake, part_rows=20)
    assert report.points > 0
    assert duck_answers(lake) == store_answers(store)
    ((total,),) = duckdb.sql(f"SELECT count(*) FROM {points_sql(lake)}").fetchall()
    assert total == 3 * 50
    final = export_lake(store, None, lake)
    assert final.parts == 0


def _raise() -> None:
    raise Killed("third part")


def test_a_resume_that_supersedes_exported_points_rewrites_the_run_as_a_new_generation(
    root: Path, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    run = tracklog.start_run("e", run_id="s")
    for i in range(8):
        run.log_metrics({"a": float(i), "b": float(i)})
    crash(run)
    store = tracklog.Store()
    export_lake(store, None, lake)
    old = files(lake)
    with tracklog.start_run(run_id="s", resume=True, resume_step=5) as again:
        again.log_metric("a", 55.0)
        again.log_metric("z", 1.0)
    assert store.run("s").sessions[1].superseded == 6
    report = export_lake(store, None, lake)
    assert report.rewritten == 1
    now = files(lake)
    assert not set(now) & set(old) and all("/g000001-" in k for k in now)  # the old generation is gone
    assert duck_answers(lake) == store_answers(store)
    rows = duckdb.sql(
        f"SELECT key, step, value, session FROM {points_sql(lake)} WHERE key = 'a' ORDER BY ordinal"
    ).fetchall()
    s0, s1 = (s.session for s in store.run("s").sessions)
    assert rows == [("a", i, float(i), s0) for i in range(5)] + [("a", 5, 55.0, s1)]
    manifest = json.loads((lake / "_tracklog" / "runs" / "s.json").read_text())
    assert manifest["generation"] == 1
    ((gen,),) = duckdb.sql(f"SELECT generation FROM '{lake}/runs.parquet'").fetchall()
    assert gen == 1


def test_a_rank_resumed_without_resume_step_gets_each_session_on_its_points(
    root: Path, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    r0, r1 = (tracklog.start_run("e", run_id="job", rank=r, world_size=2) for r in range(2))
    for i in range(10):
        r0.log_metric("loss", float(i), step=i)
        r1.log_metric("loss", float(10 + i), step=i)
    r0.close()
    crash(r1)
    again = tracklog.start_run("e", run_id="job", rank=1, world_size=2, resume=True)
    for i in range(6, 12):  # supersedes rank 1's steps 6..9 of the first session
        again.log_metric("loss", float(100 + i), step=i)
    again.close()
    store = tracklog.Store()
    export_lake(store, None, lake)
    assert duck_answers(lake) == store_answers(store)
    rows = duckdb.sql(
        f"SELECT step, session FROM {points_sql(lake)} WHERE rank = 1 ORDER BY ordinal"
    ).fetchall()
    first, second = (s.session for s in store.run("job").sessions if s.rank == 1)
    assert rows == [(i, first) for i in range(6)] + [(i, second) for i in range(6, 12)]


def test_exporting_some_runs_keeps_the_other_runs_rows(root: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    for n in range(3):
        with tracklog.start_run("e", run_id=f"r{n}", params={"n": n}) as run:
            run.log_metric("x", 1.0)
    store = tracklog.Store()
    export_lake(store, ["r0", "r1", "r0"], lake)
    export_lake(store, ["r2"], lake)
    export_lake(store, ["r0"], lake)
    assert duckdb.sql(f"SELECT run_id FROM '{lake}/runs.parquet' ORDER BY 1").fetchall() == [
        ("r0",),
        ("r1",),
        ("r2",),
    ]
    assert duckdb.sql(f"SELECT run_id, number FROM '{lake}/params.parquet' ORDER BY 1").fetchall() == [
        ("r0", 0.0),
        ("r1", 1.0),
        ("r2", 2.0),
    ]
    assert duck_answers(lake) == store_answers(store)


def test_export_to_an_fsspec_url(root: Path) -> None:
    fsspec = pytest.importorskip("fsspec", reason="the interop extra is not installed")
    with tracklog.start_run(HOSTILE, run_id="m") as run:
        for i in range(30):
            run.log_metric("loss", math.nan if i == 4 else float(i))
    store = tracklog.Store()
    url = f"memory://lake-{os.getpid()}-{id(store)}"
    export_lake(store, None, url)
    assert export_lake(store, None, url).parts == 0  # the manifest is read back from the URL
    fs = fsspec.filesystem("memory")
    con = duckdb.connect()
    con.register_filesystem(fs)
    assert duck_answers(url, con) == store_answers(store)  # type: ignore[arg-type]
    fs.rm(url, recursive=True)


def test_export_to_s3_through_a_local_moto_server(
    root: Path, monkeypatch: pytest.MonkeyPatch, moto_endpoint: str
) -> None:
    s3fs = pytest.importorskip("s3fs", reason="the interop extra is not installed")
    boto3 = pytest.importorskip("boto3", reason="moto[server] is not installed")
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(k, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # moto_endpoint: the session's moto server (tests/conftest.py)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    boto3.client("s3").create_bucket(Bucket="lake")
    with tracklog.start_run(HOSTILE, run_id="s3run") as run:
        for i in range(40):
            run.log_metric("loss", math.inf if i == 3 else float(i))
    store = tracklog.Store()
    assert export_lake(store, None, "s3://lake/x", part_rows=15).parts == 3
    with tracklog.start_run(run_id="s3run", resume=True) as more:
        more.log_metric("loss", 0.5, step=40)
    assert export_lake(store, None, "s3://lake/x").parts == 1
    fs = s3fs.S3FileSystem()
    assert len(fs.find("lake/x/points")) == 4
    con = duckdb.connect()
    con.register_filesystem(fs)
    assert duck_answers("s3://lake/x", con) == store_answers(store)  # type: ignore[arg-type]
    with pytest.raises(tracklog.InteropError, match="s3://nobucket/x"):
        export_lake(store, None, "s3://nobucket/x")


def test_the_command_exports_the_whole_store_and_only_parquet_takes_no_run(
    root: Path, tmp_path: Path
) -> None:
    with tracklog.start_run("e", run_id="c1") as run:
        run.log_metric("loss", 0.5)
    env = python_env()
    cmd = [PY, "-m", "tracklog", "--root", str(root), "export"]
    done = subprocess.run(
        [*cmd, "-f", "parquet", "-o", str(tmp_path / "lake")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "1 part files, 1 points" in done.stdout
    assert duck_answers(tmp_path / "lake") == store_answers(tracklog.Store(root))
    refused = subprocess.run(
        [*cmd, "-f", "csv", "-o", str(tmp_path / "csv")], capture_output=True, text=True, env=env, timeout=120
    )
    assert refused.returncode == 2 and "needs RUN" in refused.stderr and not (tmp_path / "csv").exists()


def test_a_manifest_that_is_not_tracklogs_is_refused_by_name(root: Path, tmp_path: Path) -> None:
    with tracklog.start_run("e", run_id="q") as run:
        run.log_metric("loss", 0.5)
    lake = tmp_path / "lake"
    export_lake(tracklog.Store(), None, lake)
    m = lake / "_tracklog" / "runs" / "q.json"
    good = json.loads(m.read_text())
    for bad in (
        {"parts": ["../../../etc/passwd"]},
        {"lanes": {"0": "x"}},
        {"lanes": {"0": {"loss": [1, 2]}}},
        {"generation": -1},
        {"run_id": "other"},
    ):
        m.write_text(json.dumps({**good, **bad}))
        with pytest.raises(tracklog.InteropError, match=r"q\.json"):
            export_lake(tracklog.Store(), None, lake)
    m.write_text("[1, 2")
    with pytest.raises(tracklog.InteropError, match=r"q\.json"):
        export_lake(tracklog.Store(), None, lake)


def test_a_symlinked_partition_in_the_lake_is_refused_not_followed(root: Path, tmp_path: Path) -> None:
    with tracklog.start_run("e", run_id="y") as run:
        run.log_metric("loss", 0.5)
    lake, elsewhere = tmp_path / "lake", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.parquet").write_bytes(b"keep me")
    (lake / "points" / "experiment=e").mkdir(parents=True)
    (lake / "points" / "experiment=e" / "run=y").symlink_to(elsewhere)
    with pytest.raises(tracklog.StoreError, match="symlink"):
        export_lake(tracklog.Store(), None, lake)
    assert (elsewhere / "precious.parquet").read_bytes() == b"keep me"


def test_an_experiment_named_like_hives_null_partition_reads_back_as_itself(
    root: Path, tmp_path: Path
) -> None:
    assert partition_value(None) == "__HIVE_DEFAULT_PARTITION__"
    with tracklog.start_run("__HIVE_DEFAULT_PARTITION__", run_id="h") as run:
        run.log_metric("a", 1.0)
    with tracklog.start_run("123", run_id="n") as run:  # a number: DuckDB would make it an int
        run.log_metric("a", 2.0)
    export_lake(tracklog.Store(), None, tmp_path / "lake")
    rows = duckdb.sql(
        f"SELECT run_id, experiment FROM read_parquet('{tmp_path}/lake/points/**/*.parquet', "
        "hive_partitioning = true, hive_types = {'experiment': VARCHAR}) ORDER BY run_id"
    ).fetchall()
    assert rows == [("h", "__HIVE_DEFAULT_PARTITION__"), ("n", "123")]


def test_only_parquet_exports_without_runs(root: Path, tmp_path: Path) -> None:
    from tracklog.interop.export import export

    with tracklog.start_run("e", run_id="w") as run:
        run.log_metric("a", 1.0)
    store = tracklog.Store()
    assert "1 points" in export(store, None, "parquet", tmp_path / "lake")
    for fmt in ("csv", "jsonl", "mlflow", "tensorboard"):
        with pytest.raises(tracklog.ValidationError, match="needs the runs"):
            export(store, None, fmt, tmp_path / fmt)
