"""Each command as a subprocess on a store made here: output and exit code."""

from __future__ import annotations

import csv
import json
import math
import subprocess
from pathlib import Path

import pytest

import tracklog

from .conftest import PY, python_env
from .helpers import crash


def tl(*args: str, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "tracklog", "--root", str(root), *args],
        capture_output=True,
        text=True,
        env=python_env(),
        timeout=120,
    )


@pytest.fixture
def store(root: Path) -> Path:
    with tracklog.start_run(
        "exp", "alpha", run_id="01alpha", params={"lr": 0.1, "opt": "adam"}, tags={"t": "x"}
    ) as r:
        for i in range(5):
            r.log_metrics({"loss": 1.0 / (i + 1), "acc": i / 10}, step=i)
    with (
        pytest.raises(ValueError),
        tracklog.start_run("exp", "beta", run_id="02beta", params={"lr": 0.2, "opt": "adam"}) as r,
    ):
        r.log_metric("loss", math.nan)
        raise ValueError("diverged")
    c = tracklog.start_run("other", "gamma", run_id="03gamma")
    c.log_metric("loss", 3.0)
    crash(c)
    return root


def test_runs_lists_a_table_newest_first(store: Path) -> None:
    out = tl("runs", root=store)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:5] == ["id", "name", "status", "start", "duration"]
    assert [ln.split()[0] for ln in lines[1:]] == ["03gamma", "02beta", "01alpha"]
    assert "crashed" in lines[1] and "failed" in lines[2] and "finished" in lines[3]


def test_runs_filters_sorts_limits_and_prints_json(store: Path) -> None:
    out = tl("runs", "--where", "params.opt = 'adam'", "--sort", "params.lr DESC", "--json", root=store)
    assert out.returncode == 0
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["02beta", "01alpha"]
    assert rows[0]["metrics"]["loss"]["last"] == "NaN"
    out = tl("runs", "-e", "exp", "-n", "1", "-c", "params.lr", "metrics.loss.min", root=store)
    assert out.stdout.splitlines()[0].split()[-2:] == ["params.lr", "metrics.loss.min"]
    assert len(out.stdout.splitlines()) == 2


def test_a_bad_filter_is_one_clear_error_with_exit_2(store: Path) -> None:
    out = tl("runs", "--where", "metrics.loss <", root=store)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "position 14" in out.stderr


def test_show_accepts_prefixes_and_names(store: Path) -> None:
    by_prefix, by_name = tl("show", "02", root=store), tl("show", "beta", root=store)
    assert by_prefix.returncode == by_name.returncode == 0 and by_prefix.stdout == by_name.stdout
    assert "status     failed" in by_prefix.stdout and "ValueError: diverged" in by_prefix.stdout
    assert "lr = 0.2" in by_prefix.stdout
    assert "sessions:" in by_prefix.stdout and "pid" in by_prefix.stdout


def test_unknown_run_is_exit_2_without_traceback(store: Path) -> None:
    out = tl("show", "nope", root=store)
    assert (
        out.returncode == 2
        and out.stderr.startswith("tracklog: no run 'nope'")
        and "Traceback" not in out.stderr
    )


def test_diff_shows_what_differs(store: Path) -> None:
    out = tl("diff", "alpha", "beta", "--json", root=store)
    d = json.loads(out.stdout)
    assert d["params"] == {"lr": [0.1, 0.2]}
    assert set(d["metrics"]) == {"loss", "acc"} and d["metrics"]["acc"][1] is None
    text = tl("diff", "alpha", "beta", root=store).stdout
    assert "params that differ" in text and "lr" in text


def test_replay_folds_a_copied_log_without_a_store(store: Path, tmp_path: Path) -> None:
    seg = next((store / "runs" / "01alpha").glob("seg-*.tlog"))
    copy = tmp_path / "bug-report.tlog"
    copy.write_bytes(seg.read_bytes())
    out = tl("replay", str(copy), "--json", root=tmp_path / "elsewhere")
    assert out.returncode == 0
    assert json.loads(out.stdout)["metrics"]["loss"]["count"] == 5


def test_verify_reports_exact_ranges_and_salvages(store: Path, tmp_path: Path) -> None:
    assert tl("verify", root=store).returncode == 0
    seg = next((store / "runs" / "01alpha").glob("seg-*.tlog"))
    data = bytearray(seg.read_bytes())
    reports = tracklog.scan(seg)
    from tracklog.log import format as fmt

    spans = [(it[0] - 12, it[1]) for it in fmt.iter_frames(bytes(data), 12, len(data)) if type(it) is tuple]
    a, b = spans[3]
    data[a + 20] ^= 0xFF  # a flipped byte
    c, d = spans[5]
    data[c:d] = b"\0" * (d - c)  # a zeroed block
    seg.write_bytes(bytes(data[: len(data) - 3]))  # and a torn tail
    out = tl("verify", "alpha", "--json", "--salvage", str(tmp_path / "clean"), root=store)
    assert out.returncode == 1
    (entry,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert entry["corrupt"] == [[a, b], [c, d]] and entry["torn_tail"] == spans[-1][0]
    assert reports[0].records - 3 == entry["records"]
    salvaged = tracklog.read_events(tmp_path / "clean" / "runs" / "01alpha" / seg.name)
    good = list(tracklog.read_events(seg, on_corrupt="ignore"))
    assert list(salvaged) == good and len(good) > 0
    assert tl("verify", root=tmp_path / "clean").returncode == 0


def test_compact_then_runs_reads_the_index(store: Path) -> None:
    out = tl("compact", root=store)
    assert out.returncode == 0 and "compacted 3 runs" in out.stdout
    assert (store / "index" / "runs.tli").exists()
    assert tl("runs", root=store).stdout.count("\n") == 4


def test_tail_prints_one_line_per_step_and_the_end(store: Path) -> None:
    out = tl("tail", "alpha", "--from-start", "--no-follow", root=store)
    assert out.returncode == 0
    steps = [ln for ln in out.stdout.splitlines() if ln.startswith("step")]
    assert len(steps) == 5 and "loss=1" in steps[0] and "acc=0" in steps[0]
    assert out.stdout.splitlines()[-1] == "run ended: finished"
    js = tl("tail", "alpha", "--from-start", "--no-follow", "--json", "-m", "acc", root=store)
    events = [json.loads(line) for line in js.stdout.splitlines()]
    assert [e["key"] for e in events if e["kind"] == "metric"] == ["acc"] * 5


def test_export_csv_and_jsonl(store: Path, tmp_path: Path) -> None:
    out = tl("export", "alpha", "beta", "--format", "csv", "--out", str(tmp_path / "csv"), root=store)
    assert out.returncode == 0, out.stderr
    with open(tmp_path / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 11 and {r["run_id"] for r in rows} == {"01alpha", "02beta"}
    assert [r["value"] for r in rows if r["run_id"] == "02beta"] == ["nan"]
    out = tl("export", "alpha", "--format", "jsonl", "--out", str(tmp_path / "j"), root=store)
    pts = [json.loads(line) for line in (tmp_path / "j" / "metrics.jsonl").read_text().splitlines()]
    assert len(pts) == 10 and pts[0]["run_id"] == "01alpha"
    runs = [json.loads(line) for line in (tmp_path / "j" / "runs.jsonl").read_text().splitlines()]
    assert runs[0]["params"] == {"lr": 0.1, "opt": "adam"}


def test_demo_runs_and_says_how_to_look(tmp_path: Path) -> None:
    out = tl("demo", "--steps", "50", root=tmp_path / "d")
    assert out.returncode == 0, out.stderr
    assert "status     finished" in out.stdout and "tracklog" in out.stdout and "show" in out.stdout
    assert tracklog.Store(tmp_path / "d").runs()[0].metrics["train/loss"].count == 50


def test_one_unreadable_run_is_named_and_the_rest_of_the_store_still_works(store: Path) -> None:
    (store / "runs" / "02beta" / "seg-000002.tlog").write_text("not a segment at all\n")
    (store / "runs" / "old copy").mkdir()
    runs = tl("runs", root=store)
    assert runs.returncode == 0, runs.stderr
    assert "alpha" in runs.stdout and "gamma" in runs.stdout and "beta" not in runs.stdout
    assert "02beta: unreadable run" in runs.stderr and "old copy: not a run" in runs.stderr
    assert "Traceback" not in runs.stderr and "TracklogWarning" not in runs.stderr
    verify = tl("verify", root=store)
    assert verify.returncode == 1
    assert "02beta: UNREADABLE" in verify.stdout and "01alpha/seg-000001.tlog" in verify.stdout
    compact = tl("compact", root=store)
    assert compact.returncode == 0, compact.stderr
    assert "1 runs could not be compacted" in compact.stdout
    assert (store / "runs" / "01alpha" / "snapshot.tls").exists()


def test_show_and_runs_print_times_no_calendar_holds(root: Path) -> None:
    from tracklog.log import codec
    from tracklog.log import format as fmt

    run_path = root / "runs" / "odd"
    run_path.mkdir(parents=True)
    header = {"run_id": "odd", "session": "ab", "seq": 1}
    recs = [[1, {**header, "time": 1e300, "experiment": "e"}], [5, "loss", 0, 1.0, 1e300]]
    (run_path / "seg-000001.tlog").write_bytes(
        codec.encode_segment_start(header) + b"".join(fmt.frame(codec.pack(r)) for r in recs)
    )
    for args in (("show", "odd"), ("runs",)):
        out = tl(*args, root=root)
        assert out.returncode == 0, out.stderr
        assert "Traceback" not in out.stderr and "1e+300" in out.stdout


def test_artifacts_lists_and_get_restores_a_directory(tmp_path: Path, root: Path) -> None:
    src = tmp_path / "ckpt"
    src.mkdir()
    (src / "w.npy").write_bytes(b"\x93NUMPY" + bytes(100))
    with tracklog.start_run(run_id="art") as run:
        run.log_artifact(src)
    listed = tl("artifacts", "art", root=root)
    assert listed.returncode == 0 and "ckpt/w.npy" in listed.stdout and "106" in listed.stdout
    got = tl("get", "art", "ckpt", "-o", str(tmp_path / "back"), root=root)
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "back" / "w.npy").read_bytes() == (src / "w.npy").read_bytes()
    assert "restored 1 file, sha256 verified" in got.stderr
    again = tl("get", "art", "ckpt", "-o", str(tmp_path / "back"), root=root)
    assert again.returncode == 2 and "exists" in again.stderr
    missing = tl("get", "art", "nope", root=root)
    assert missing.returncode == 2 and "no artifact 'nope'" in missing.stderr
