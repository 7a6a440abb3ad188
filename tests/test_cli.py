"""Each command as a subprocess on a store made here: output and exit code."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

import tracklog

from .conftest import PY, python_env
from .helpers import crash, on_a_terminal


def tl(
    *args: str, root: Path, tz: str | None = None, columns: int | None = None
) -> subprocess.CompletedProcess[str]:
    env = python_env()
    env.pop("COLUMNS", None)  # output is a pipe: tables are not fitted unless a test asks
    if columns is not None:
        env["COLUMNS"] = str(columns)
    if tz is not None:
        env["TZ"] = tz
    return subprocess.run(
        [PY, "-m", "tracklog", "--root", str(root), *args],
        capture_output=True,
        text=True,
        env=env,
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
    # Runs of two experiments ("exp", "other"): the experiment gets a column (issue 12).
    assert lines[0].split()[:6] == ["id", "experiment", "name", "status", "start", "duration"]
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


def test_runs_shows_and_filters_nested_params_by_their_dotted_path(root: Path) -> None:
    with tracklog.start_run("exp", "n", run_id="01n", params={"opt": {"lr": 0.1}, "a.b": 7}):
        pass
    out = tl("runs", "-w", "params.opt.lr = 0.1", "-c", "params.opt.lr", "params.`a.b`", root=root)
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.splitlines()
    assert header.split()[-2:] == ["params.opt.lr", "params.a.b"] and row.split()[-2:] == ["0.1", "7"]


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
    assert "1 run could not be compacted" in compact.stdout  # issue 12: singular for one
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


def tl_in(cwd: Path, *args: str, env_root: str | None = None) -> subprocess.CompletedProcess[str]:
    """``tracklog ARGS`` run in ``cwd`` without --root, $TRACKLOG_DIR set only if given."""
    env = python_env()
    env.pop("TRACKLOG_DIR", None)
    if env_root is not None:
        env["TRACKLOG_DIR"] = env_root
    return subprocess.run(
        [PY, "-m", "tracklog", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["runs"],
        ["runs", "--json"],
        ["show", "x"],
        ["diff", "a", "b"],
        ["compact"],
        ["verify"],
        ["verify", "x"],
        ["export", "x", "-f", "csv", "-o", "out"],
        ["tail", "x", "--no-follow"],
    ],
)
def test_reading_where_there_is_no_store_says_where_it_looked_and_exits_2(
    tmp_path: Path, argv: list[str]
) -> None:
    out = tl_in(tmp_path, *argv)
    assert out.returncode == 2 and out.stdout == "", (out.stdout, out.stderr)
    assert out.stderr == (
        f"tracklog: no store at {tmp_path / 'tlruns'} (./tlruns, the default without --root or "
        "$TRACKLOG_DIR): no such directory\n"
    )
    assert not (tmp_path / "tlruns").exists()  # looking created nothing
    out = tl_in(tmp_path, *argv, env_root=str(tmp_path / "env"))
    assert out.returncode == 2 and f"no store at {tmp_path / 'env'} (from $TRACKLOG_DIR)" in out.stderr
    out = tl_in(tmp_path, "--root", str(tmp_path / "nonexistent"), *argv)
    assert out.returncode == 2 and f"no store at {tmp_path / 'nonexistent'} (from --root)" in out.stderr
    assert not (tmp_path / "nonexistent").exists()
    out = tl_in(tmp_path, "--root", str(tmp_path), *argv)  # a directory, but not a store
    assert out.returncode == 2 and "it has no runs/ directory" in out.stderr


def test_an_existing_empty_store_prints_its_empty_table(tmp_path: Path) -> None:
    tracklog.Store(tmp_path / "s")  # creates nothing
    (tmp_path / "s" / "runs").mkdir(parents=True)  # what start_run creates first
    out = tl_in(tmp_path, "--root", str(tmp_path / "s"), "runs")
    assert out.returncode == 0 and out.stdout.split() == ["id", "name", "status", "start", "duration"]
    assert out.stderr == ""
    out = tl_in(tmp_path, "--root", str(tmp_path / "s"), "verify")
    assert out.returncode == 0 and "0 segments checked" in out.stderr


def test_tail_of_a_run_not_there_yet_says_it_waits(store: Path) -> None:
    proc = subprocess.Popen(
        [PY, "-m", "tracklog", "--root", str(store), "tail", "typo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=python_env(),
    )
    guard = threading.Timer(120, proc.kill)  # a bound for a broken build, not a timing assumption
    guard.start()
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # the message comes before any waiting
    finally:
        guard.cancel()
        proc.kill()
        proc.communicate()
    assert line == f"waiting for run 'typo' to appear in {store} (Ctrl-C to stop)\n"


@pytest.mark.parametrize(("ref", "named"), [("0", "01alpha, 02beta, 03gamma"), ("alpha", "01alpha, 04alpha")])
def test_tail_refuses_an_ambiguous_prefix_or_name_at_once(store: Path, ref: str, named: str) -> None:
    with tracklog.start_run("exp", "alpha", run_id="04alpha"):
        pass
    out = tl("tail", ref, root=store)  # follows: it would wait forever if it did not refuse
    assert out.returncode == 2 and "ambiguous" in out.stderr and named in out.stderr
    assert out.stdout == ""


def test_tail_of_a_name_no_run_has_and_no_run_id_can_be_says_so_at_once(store: Path) -> None:
    out = tl("tail", "my run", root=store)  # follows: it would wait forever if it did not refuse
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith(f"tracklog: no run 'my run' in {store} (") and "invalid" not in out.stderr
    assert "not waited for" in out.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tensorboard", "{tmp}/nonexistent"], "no TensorBoard log directory at {tmp}/nonexistent"),
        (["tensorboard", "{tmp}/a-file"], "{tmp}/a-file is not a directory"),
        (
            ["tensorboard", "{tmp}/empty"],
            "no TensorBoard event files (events.out.tfevents.*) under {tmp}/empty",
        ),
        (["mlflow", "{tmp}/nonexistent"], "no MLflow store at {tmp}/nonexistent"),
        (["mlflow", "file://{tmp}/nonexistent"], "no MLflow store at {tmp}/nonexistent"),
        (["mlflow", "sqlite:///{tmp}/none.db"], "no MLflow store at {tmp}/none.db"),
    ],
)
def test_import_from_a_path_that_is_not_there_is_an_error_naming_it(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    (tmp_path / "a-file").write_text("")
    (tmp_path / "empty" / "sub").mkdir(parents=True)  # a directory, but no event file in it
    out = tl("import", *(a.format(tmp=tmp_path) for a in argv), root=tmp_path / "s")
    assert out.returncode == 2 and out.stderr.startswith("tracklog: " + message.format(tmp=tmp_path))
    assert "imported" not in out.stderr and out.stdout == ""
    assert not (tmp_path / "s").exists() and not (tmp_path / "none.db").exists()


def test_runs_filters_on_start_times_as_the_table_prints_them(store: Path) -> None:
    tz = "TLT-05:30"  # local time UTC+05:30 (POSIX TZ, no tz database): local and UTC differ
    table = tl("runs", root=store, tz=tz).stdout.splitlines()
    printed = {ln.split()[0]: " ".join(ln.split()[4:6]) for ln in table[1:]}  # after the experiment
    first = printed["01alpha"]  # "YYYY-MM-DD HH:MM:SS", the seconds truncated
    ids = [
        ln.split()[0]
        for ln in tl("runs", "-w", f"start_time >= '{first}'", root=store, tz=tz).stdout.splitlines()[1:]
    ]
    assert ids == ["03gamma", "02beta", "01alpha"]
    out = tl("runs", "-w", f"start_time < '{first}'", root=store, tz=tz)
    assert out.returncode == 0 and out.stdout.splitlines()[1:] == []
    minute = first[:16]  # "YYYY-MM-DD HH:MM"
    out = tl("runs", "-w", f"start_time >= '{minute}' AND end_time > '{first[:10]}'", root=store, tz=tz)
    assert [ln.split()[0] for ln in out.stdout.splitlines()[1:]] == [
        "02beta",
        "01alpha",
    ]  # 03gamma never ended
    bad = tl("runs", "-w", "start_time > 'last tuesday'", root=store)
    assert (
        bad.returncode == 2
        and "position 13: start_time is a time and 'last tuesday' is not a date" in bad.stderr
    )


def test_sort_and_column_errors_name_the_sort_key_or_column(store: Path) -> None:
    out = tl("runs", "-s", "bogus", root=store)
    assert out.returncode == 2 and out.stderr.startswith(
        "tracklog: bad sort key 'bogus': unknown field 'bogus'"
    )
    out = tl("runs", "-c", "params.lr", "error", root=store)
    assert out.returncode == 2 and out.stderr.startswith("tracklog: unknown column 'error': use params.KEY")
    assert "bad filter" not in out.stderr and "start_time" in out.stderr and out.stdout == ""


def _damage(seg: Path) -> tuple[list[tuple[int, int]], int]:
    """Flip a byte in one record, zero another and tear the tail: (corrupt ranges, torn tail)."""
    from tracklog.log import format as fmt

    data = bytearray(seg.read_bytes())
    spans = [(it[0] - 12, it[1]) for it in fmt.iter_frames(bytes(data), 12, len(data)) if type(it) is tuple]
    a, b = spans[3]
    data[a + 20] ^= 0xFF
    c, d = spans[5]
    data[c:d] = b"\0" * (d - c)
    seg.write_bytes(bytes(data[: len(data) - 3]))
    return [(a, b), (c, d)], spans[-1][0]


def test_replay_of_a_damaged_copy_says_what_it_skipped_and_exits_1(store: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copied" / "01alpha"
    shutil.copytree(store / "runs" / "01alpha", copy)
    seg = copy / "seg-000001.tlog"
    clean = tl("replay", str(copy), root=tmp_path / "nowhere")
    assert clean.returncode == 0 and clean.stderr == ""
    ranges, torn = _damage(seg)
    out = tl("replay", str(copy), root=tmp_path / "nowhere")
    assert out.returncode == 1 and "run        01alpha" in out.stdout  # the state is still shown
    (a, b), (c, d) = ranges
    assert f"tracklog: {seg}: damaged bytes {a}..{b}, {c}..{d} skipped ({b - a + d - c} bytes)" in out.stderr
    assert f"tracklog: note: {seg}: torn tail at byte {torn} (" in out.stderr
    assert "Traceback" not in out.stderr
    js = tl("replay", str(seg), "--json", root=tmp_path / "nowhere")  # one segment file, as JSON
    assert js.returncode == 1 and json.loads(js.stdout)["id"] == "01alpha"


def test_replay_notes_a_torn_tail_but_it_is_no_problem(store: Path) -> None:
    seg = store / "runs" / "03gamma" / "seg-000001.tlog"
    seg.write_bytes(seg.read_bytes()[:-2])
    out = tl("replay", str(seg.parent), root=store)
    assert out.returncode == 0
    assert out.stderr.startswith(f"tracklog: note: {seg}: torn tail at byte ") and out.stderr.count("\n") == 1


def test_replay_names_malformed_records_by_their_bytes(store: Path) -> None:
    from tracklog.log import codec
    from tracklog.log import format as fmt

    seg = store / "runs" / "03gamma" / "seg-000001.tlog"
    data = seg.read_bytes()
    bad = fmt.frame(codec.pack([codec.METRIC, "loss", "not a step", 1.0, 1.0]))  # verifies, malformed
    seg.write_bytes(data + bad)
    out = tl("replay", str(seg.parent), root=store)
    assert out.returncode == 1
    assert f"{seg}: damaged bytes {len(data)}..{len(data) + len(bad)} skipped" in out.stderr


def test_verify_takes_a_run_directory_or_segment_file_anywhere(store: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copied" / "01alpha"
    shutil.copytree(store / "runs" / "01alpha", copy)
    seg = copy / "seg-000001.tlog"
    for target in (copy, seg):  # no store needed: the root is a directory that does not exist
        out = tl("verify", str(target), root=tmp_path / "nowhere")
        assert out.returncode == 0 and f"{seg}: " in out.stdout and "1 segment checked" in out.stderr
    ranges, _ = _damage(seg)
    out = tl("verify", str(seg), "--json", "--salvage", str(tmp_path / "clean"), root=tmp_path / "nowhere")
    assert out.returncode == 1
    (entry,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert entry["run"] == "01alpha" and entry["corrupt"] == [list(r) for r in ranges]
    assert tl("verify", root=tmp_path / "clean").returncode == 0  # the salvaged copy is a store
    # A path and a run of the store in one call; a relative path too.
    out = subprocess.run(
        [PY, "-m", "tracklog", "--root", str(store), "verify", "copied/01alpha", "beta"],
        capture_output=True,
        text=True,
        env=python_env(),
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 1 and out.stdout.startswith("copied/01alpha/seg-000001.tlog: ")
    assert f"{store}/runs/02beta/seg-000001.tlog: 5 records, ok" in out.stdout


def test_verify_refuses_a_path_without_segments_and_a_root_that_is_a_run(store: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    out = tl("verify", str(tmp_path / "empty"), root=store)
    assert out.returncode == 2 and f"no segment files (seg-*.tlog) in {tmp_path / 'empty'}" in out.stderr
    out = tl("verify", str(store), root=store)
    assert out.returncode == 2 and f"tracklog --root {store} verify" in out.stderr
    out = tl("verify", str(tmp_path / "gone" / "01alpha"), root=tmp_path / "nowhere")
    assert out.returncode == 2 and f"no run directory or segment file at {tmp_path / 'gone'}" in out.stderr
    run_dir = store / "runs" / "01alpha"
    out = tl("verify", root=run_dir)  # used to check 0 segments and exit 0
    assert (
        out.returncode == 2
        and f"no store at {run_dir} (from --root): it has no runs/ directory" in out.stderr
    )


@pytest.mark.parametrize(
    "argv",
    [["runs"], ["show", "alpha"], ["tail", "alpha", "--from-start", "--no-follow"], ["runs", "--json"]],
)
def test_output_into_a_closed_pipe_ends_quietly_with_141(store: Path, argv: list[str]) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write (as `| head` after its lines)
    try:
        out = subprocess.run(
            [PY, "-m", "tracklog", "--root", str(store), *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=python_env(),
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert out.returncode == 141 and out.stderr == ""


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    out = tl("--version", root=tmp_path)
    assert out.returncode == 0 and out.stdout == f"tracklog {tracklog.__version__}\n"


def test_counts_of_one_are_singular(store: Path) -> None:
    out = tl("compact", "alpha", root=store)
    assert out.returncode == 0 and out.stdout.startswith("compacted 1 run, folded ")
    out = tl("verify", "alpha", root=store)
    assert out.stderr == "1 segment checked, 0 corrupt ranges\n"


def test_tail_takes_several_metric_keys_after_one_flag(store: Path) -> None:
    for argv in (["-m", "acc", "loss"], ["-m", "acc", "-m", "loss"]):
        out = tl("tail", "alpha", "--from-start", "--no-follow", "--json", *argv, root=store)
        assert out.returncode == 0, out.stderr
        keys = [e["key"] for e in map(json.loads, out.stdout.splitlines()) if e["kind"] == "metric"]
        assert keys == ["loss", "acc"] * 5


def test_runs_fits_the_table_to_columns_and_names_experiments_when_they_vary(store: Path) -> None:
    with tracklog.start_run("other", "a-run-with-a-rather-long-name-indeed", run_id="04delta") as r:
        r.log_metric("loss", 0.5)
    wide = tl("runs", root=store).stdout.splitlines()
    assert wide[0].split()[:3] == ["id", "experiment", "name"] and wide[1].split()[:2] == ["04delta", "other"]
    assert any("a-run-with-a-rather-long-name-indeed" in line for line in wide)  # a pipe: whole cells
    narrow = tl("runs", root=store, columns=70).stdout.splitlines()
    assert all(len(line) <= 70 for line in narrow) and any("…" in line for line in narrow)
    assert len(narrow) == len(wide)  # one line per run still: cut, not wrapped
    one = tl("runs", "-e", "exp", root=store).stdout.splitlines()
    assert "experiment" not in one[0]  # a single experiment: no column for it


def test_runs_default_columns_prefer_common_then_evaluation_keys_and_fill_the_width(root: Path) -> None:
    for i in range(3):
        with tracklog.start_run("exp", f"r{i}", run_id=f"0{i}r") as r:
            r.log_metrics({"lr": 0.1, "epoch": 1, "train/loss": 0.5, "val/acc": 0.9, "a_loss": 1}, step=0)
            if i == 0:
                r.log_metrics({"test/acc": 0.8, "rare": 1.0}, step=0)  # one run of three has them
    ranked = ["val/acc", "a_loss", "train/loss", "epoch", "lr", "test/acc", "rare"]

    def metric_headers(out: subprocess.CompletedProcess[str]) -> list[str]:
        assert out.returncode == 0, out.stderr
        return [h.removeprefix("metrics.") for h in out.stdout.splitlines()[0].split()[5:]]

    assert metric_headers(tl("runs", root=root)) == ranked[:3]  # a pipe: three
    assert metric_headers(tl("runs", root=root, columns=400)) == ranked  # room for all of them
    shown = []
    for width in range(60, 200, 10):
        out = tl("runs", root=root, columns=width)
        got = metric_headers(out)
        if len(got) > 1:  # as many as fit: nothing had to be cut
            assert got == ranked[: len(got)]
            assert "…" not in out.stdout and max(map(len, out.stdout.splitlines())) <= width
        else:  # too narrow for even one: still one, cut to fit
            assert len(got) == 1 and ranked[0].startswith(got[0].rstrip("…"))
        shown.append(len(got))
    assert shown == sorted(shown) and shown[0] == 1 and shown[-1] == len(ranked)
    assert "at least half the listed runs" in tl("runs", "--help", root=root).stdout


def _column_starts(header: str) -> list[int]:
    """Where each heading begins: after two spaces (a heading may hold one, "resume step")."""
    return [i for i, ch in enumerate(header) if ch != " " and i >= 2 and header[i - 2 : i] == "  "]


def test_show_lines_sessions_up_as_a_table_and_prints_negative_step_ranges(root: Path) -> None:
    with pytest.raises(ValueError), tracklog.start_run("exp", run_id="neg") as r:
        for s in range(10):
            r.log_metric("b", s, step=s)
        raise ValueError("preempted")
    with tracklog.start_run(run_id="neg", resume=True, resume_step=5) as r:
        for s in range(-5, 11):
            r.log_metric("a", s, step=s)
    out = tl("show", "neg", root=root)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    at = lines.index("sessions:")
    header, first, second = lines[at + 1 : at + 4]
    assert header.split()[:7] == ["#", "status", "host", "pid", "started", "resume", "step"]
    assert first.split()[:2] == ["1", "failed"] and second.split()[:2] == ["2", "finished"]
    starts = _column_starts(header)
    assert len(starts) == 11  # "#" .. "command": this run recorded where it came from
    for start in starts[1:]:  # every cell begins under its heading
        for row in (first, second):
            assert row[start - 2 : start] == "  " and row[start] != " ", (header, row)
    assert "5 points" in second  # b's steps 5..9 superseded by the resume at step 5
    metrics = {ln.split()[0]: ln.split()[-1] for ln in lines[lines.index("metrics:") + 2 :]}
    assert metrics == {"b": "0..4", "a": "-5..10"}


@pytest.mark.parametrize(
    "argv",
    [["export", "alpha", "beta", "gamma", "-f", "csv", "-o", "{tmp}/out"], ["compact"], ["gc"]],
    ids=["export", "compact", "gc"],
)
def test_long_commands_draw_a_progress_bar_on_a_terminal_and_none_in_a_pipe(
    store: Path, tmp_path: Path, argv: list[str]
) -> None:
    for i, data in enumerate((b"a", b"b")):  # blobs in two of gc's directories (sha256 ca..., 3e...)
        (tmp_path / f"f{i}").write_bytes(data)
        with tracklog.start_run("exp", run_id=f"05art{i}") as r:
            r.log_artifact(tmp_path / f"f{i}")
    args = [a.format(tmp=tmp_path) for a in argv]
    total = {"export": 3, "compact": 5, "gc": 2}[argv[0]]
    env = python_env()
    code, out, terminal = on_a_terminal([PY, "-m", "tracklog", "--root", str(store), *args], env)
    assert code == 0, terminal
    assert f"\r[{'#' * 30}] {total}/{total}" in terminal and f"\r[{' ' * 30}] 0/{total}" not in terminal
    assert f"] 1/{total}" in terminal  # drawn as it goes, not only at the end
    assert "[#" not in out  # the bar goes to stderr only
    piped = tl(*args, root=store)
    assert piped.returncode == 0 and "\r" not in piped.stderr and "[#" not in piped.stderr


def test_names_from_a_store_cannot_drive_the_terminal(root: Path) -> None:
    # Escape sequences that would clear the screen, write the clipboard (OSC 52) or reorder
    # the line, in values a job logged (names and keys must be printable; values need not).
    evil = "x\x1b[2J\x1b]52;c;cHduZWQ=\x07\u202egpj.exe\x9b"
    with tracklog.start_run("exp", "n", root=root, run_id="evil", params={"p": evil}, tags={"t": evil}) as r:
        r.log_metric("m", 1.0)
    for args in (
        ["show", "evil"],
        ["runs", "-c", "params.p"],
        ["tail", "evil", "--from-start", "--no-follow"],
    ):
        code, _, terminal = on_a_terminal(
            [PY, "-m", "tracklog", "--root", str(root), *args], python_env(), stdout_too=True
        )
        assert code == 0, terminal
        assert "\x1b" not in terminal and "\x07" not in terminal and "\u202e" not in terminal, args
        assert "\x9b" not in terminal
        if args[0] != "tail":  # tail prints points, not params
            assert "\\x1b[2J" in terminal  # shown, as an escape
    piped = tl("show", "evil", root=root)  # a pipe gets the bytes as they are stored
    assert evil in piped.stdout
