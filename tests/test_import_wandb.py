"""``import_wandb`` / ``tracklog import wandb``: real W&B offline runs, made by the wandb package.

Each W&B run is made in a child process in offline mode (WANDB_MODE=offline, every
W&B directory in tmp_path): nothing reaches a server. Skipped where wandb is not
installed (the ``wandb`` extra; CI installs it with ``interop``).
"""

from __future__ import annotations

import math
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

import tracklog
from tracklog.errors import InteropError, TracklogWarning
from tracklog.interop._wandb import read_run
from tracklog.interop.imports import import_wandb

from .conftest import PY, python_env

pytest.importorskip("wandb", reason="the wandb extra is not installed")

STEPS = [0, 5, 10, 20, 21, 40]


def wandb_env(where: Path) -> dict[str, str]:
    env = python_env()
    for k in list(env):
        if k.startswith("WANDB_"):
            del env[k]
    env.update(
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_DIR=str(where),
        WANDB_CONFIG_DIR=str(where / ".config"),
        WANDB_CACHE_DIR=str(where / ".cache"),
        WANDB_DATA_DIR=str(where / ".data"),
        WANDB_ARTIFACT_DIR=str(where / ".artifacts"),
    )
    return env


def run_wandb(where: Path, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    where.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        [PY, "-c", script], cwd=where, env=wandb_env(where), capture_output=True, text=True, timeout=300
    )
    if check:
        assert out.returncode == 0, out.stderr
    return out


def row(step: int) -> dict[str, Any]:
    """What the script logs at ``step``: nested dicts, a bool, an int, a string, NaN and inf."""
    return {
        "loss": 1.0 / (step + 1),
        "train": {"acc": step / 100, "deep": {"f1": step * 2}},
        "flag": step % 2 == 0,
        "note": f"step {step}",
        "odd": float("nan") if step == 10 else float("inf") if step == 20 else 0.5,
    }


LOGGED = f"""
import json, wandb
steps = {STEPS!r}
def row(step):
    return {{
        "loss": 1.0 / (step + 1),
        "train": {{"acc": step / 100, "deep": {{"f1": step * 2}}}},
        "flag": step % 2 == 0,
        "note": f"step {{step}}",
        "odd": float("nan") if step == 10 else float("inf") if step == 20 else 0.5,
    }}
run = wandb.init(
    project="wb-proj", name="first-run", tags=["baseline"], notes="a note",
    config={{"lr": 0.01, "model": {{"depth": 3, "act": "relu"}}, "layers": [2, 3]}},
)
for s in steps:
    wandb.log(row(s), step=s)
wandb.summary["best_acc"] = 0.93
wandb.summary["train"] = {{"best": {{"loss": 0.001}}}}  # nested, by hand
print(json.dumps({{"id": run.id}}))
wandb.finish(exit_code=EXIT)
"""


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with two W&B offline runs: one that finished, one that exited 3."""
    where = tmp_path_factory.mktemp("wb")
    run_wandb(where, LOGGED.replace("EXIT", "0"))
    run_wandb(where, LOGGED.replace("EXIT", "3").replace('"first-run"', '"second-run"'))
    return where


def only(store: tracklog.Store, name: str) -> tracklog.RunState:
    (s,) = [s for s in store.runs() if s.name == name]
    return store.run(s.id)


def test_every_history_row_config_and_summary_come_over(made: Path, tmp_path: Path) -> None:
    store = tracklog.Store(tmp_path / "store")
    with pytest.warns(TracklogWarning, match="left out 1 text series"):
        report = import_wandb(store, made)
    assert len(report.created) == 2 and report.points == 2 * len(STEPS) * 5
    run = only(store, "first-run")
    assert run.status == "finished" and run.experiment == "wb-proj"
    assert run.params == {"lr": 0.01, "model": {"depth": 3, "act": "relu"}, "layers": [2, 3]}
    assert set(run.metrics) == {"loss", "train/acc", "train/deep/f1", "flag", "odd"}
    for key in run.metrics:
        h = run.history(key)
        assert h.step.tolist() == STEPS
        *parents, last = key.split("/")
        for step, value in zip(STEPS, h.value.tolist(), strict=True):
            want: Any = row(step)
            for p in parents:
                want = want[p]
            want = float(want[last])
            assert value == want or (math.isnan(value) and math.isnan(want)), (key, step)
    assert run.tags["baseline"] is True and run.tags["notes"] == "a note"
    assert run.tags["summary.best_acc"] == 0.93 and run.tags["summary.train/best/loss"] == 0.001
    # W&B's summary of a logged key is its last value, which the metric's own summary holds.
    assert "summary.train/acc" not in run.tags and "summary.loss" not in run.tags
    assert run.tags["summary.note"] == "step 40"  # a text value's last: only in the summary
    assert run.tags["wandb.exit_code"] == 0 and run.tags["wandb.file"].endswith(".wandb")
    # Times are W&B's: the run starts at init, its points at their _timestamp, in order.
    times = run.history("loss").timestamp.tolist()
    assert run.start_time is not None and run.start_time <= times[0] <= times[-1] <= run.end_time
    assert only(store, "second-run").status == "failed"
    assert only(store, "second-run").error["message"] == "3"


def test_a_second_import_skips_what_the_first_brought(made: Path, tmp_path: Path) -> None:
    store = tracklog.Store(tmp_path / "store")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TracklogWarning)
        first = import_wandb(store, made)
    again = import_wandb(store, made / "wandb")  # the same files, named another way
    assert again.created == [] and sorted(again.skipped) == sorted(first.created)
    assert "2 skipped: already imported" in again.summary()
    assert len(store.runs()) == 2


def test_a_sigkilled_wandb_process_imports_as_crashed_up_to_its_last_record(tmp_path: Path) -> None:
    script = """
import os, signal, wandb
wandb.init(project="killed", config={"a": 1})
for s in range(100000):
    wandb.log({"x": s, "y": {"z": s * 0.5}}, step=s)
    if s == 2000:
        print(s, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
"""
    out = run_wandb(tmp_path / "wb", script, check=False)
    assert out.returncode == -signal.SIGKILL and out.stdout.split() == ["2000"]
    store = tracklog.Store(tmp_path / "store")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (rid,) = import_wandb(store, tmp_path / "wb").created
    # wandb-core dies with its parent, sometimes mid-record: then a warning names the file.
    assert all("run-" in str(w.message) and "crashed" in str(w.message) for w in caught)
    run = store.run(rid)
    assert run.status == "crashed" and run.params == {"a": 1} and "wandb.exit_code" not in run.tags
    x, z = run.history("x"), run.history("y/z")
    n = len(x.step)
    assert n > 0 and x.step.tolist() == list(range(n)) and x.value.tolist() == [float(s) for s in range(n)]
    assert z.step.tolist() == x.step.tolist() and z.value.tolist() == [s * 0.5 for s in range(n)]
    # A crashed source stays imported: importing again skips it.
    assert import_wandb(store, tmp_path / "wb").skipped == [rid]


def test_a_truncated_file_reads_up_to_its_last_whole_record_at_every_offset(
    made: Path, tmp_path: Path
) -> None:
    (src,) = [p for p in made.glob("wandb/offline-run-*/run-*.wandb") if read_run(p).exit_code == 0]
    full = read_run(src)
    data = src.read_bytes()
    cut = tmp_path / "run-cut.wandb"
    rows_seen = []
    for size in range(0, len(data), 7):
        cut.write_bytes(data[:size])
        try:
            part = read_run(cut)
        except InteropError as exc:  # before the run record: nothing to import
            assert str(cut) in str(exc)
            continue
        assert part.exit_code is None and part.run_id == full.run_id
        assert part.rows == full.rows[: len(part.rows)]  # a prefix, whole rows only
        rows_seen.append(len(part.rows))
    assert rows_seen == sorted(rows_seen) and rows_seen[-1] == len(full.rows)
    # A flipped byte in the middle: read up to the record before it.
    bad = bytearray(data)
    bad[len(data) // 2] ^= 0xFF
    cut.write_bytes(bytes(bad))
    part = read_run(cut)
    assert part.cut.startswith("corrupt") and part.exit_code is None
    assert part.rows == full.rows[: len(part.rows)]


def test_cut_files_import_as_crashed_with_a_warning_naming_them(made: Path, tmp_path: Path) -> None:
    (src,) = [p for p in made.glob("wandb/offline-run-*/run-*.wandb") if read_run(p).exit_code == 0]
    data = src.read_bytes()
    store = tracklog.Store(tmp_path / "store")
    for i, frac in enumerate((0.55, 0.8, 0.97)):
        d = tmp_path / "cut" / f"offline-run-x-{i}"
        d.mkdir(parents=True)
        f = d / src.name
        f.write_bytes(data[: int(len(data) * frac)])
        want = read_run(f)
        with pytest.warns(TracklogWarning) as caught:
            (rid,) = import_wandb(store, d).created
        if want.cut:
            assert any(str(f) in str(w.message) and "crashed" in str(w.message) for w in caught)
        run = store.run(rid)
        assert run.status == "crashed"
        points = sum(len(tracklog_keys(values)) for _, _, values in want.rows)
        assert sum(m.count for m in run.metrics.values()) == points


def tracklog_keys(tree: dict[str, Any]) -> list[str]:
    from tracklog.interop._wandb import flatten, value_kind

    return [k for k, v in flatten(tree).items() if value_kind(v) == "number"]


def test_a_broken_file_is_reported_by_name_and_the_others_go_on(made: Path, tmp_path: Path) -> None:
    where = tmp_path / "mixed"
    shutil.copytree(made / "wandb", where / "wandb")
    broken = where / "wandb" / "offline-run-20000101_000000-broken" / "run-broken.wandb"
    broken.parent.mkdir()
    broken.write_bytes(b"this is not a W&B log at all")
    store = tracklog.Store(tmp_path / "store")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TracklogWarning)
        report = import_wandb(store, where)
    assert len(report.created) == 2
    (failed,) = report.failed
    assert failed.source == str(broken.resolve()) and "not a W&B transaction log" in failed.why
    assert report.summary().endswith("1 failed), 60 points")


def test_the_command_imports_and_says_what_it_did(made: Path, tmp_path: Path) -> None:
    cmd = [PY, "-m", "tracklog", "--root", str(tmp_path / "store"), "import", "wandb", str(made)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=python_env(), timeout=300)
    assert out.returncode == 0, out.stderr
    lines = [line.split("\t") for line in out.stdout.splitlines()]
    assert [a for _, a, _ in lines] == ["created", "created"]
    assert "2 created" in out.stderr and "left out 1 text series" in out.stderr
    again = subprocess.run(cmd, capture_output=True, text=True, env=python_env(), timeout=300)
    assert again.returncode == 0 and "2 skipped: already imported" in again.stderr
    (made / "junk").mkdir(exist_ok=True)
    bad = subprocess.run(
        [*cmd[:-1], str(made / "junk")], capture_output=True, text=True, env=python_env(), timeout=300
    )
    assert bad.returncode == 2 and "no W&B transaction logs" in bad.stderr and "Traceback" not in bad.stderr
    opt = subprocess.run(
        [*cmd, "--from-experiment", "x"], capture_output=True, text=True, env=python_env(), timeout=300
    )
    assert opt.returncode == 2 and "is for 'import mlflow'" in opt.stderr


def test_without_wandb_the_error_names_the_extra(
    made: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "wandb.proto", None)
    with pytest.raises(InteropError, match=r"tracklog\[wandb\]"):
        import_wandb(tracklog.Store(tmp_path / "store"), made)


def test_the_quickstart_through_wandb_and_through_the_shim_agree(tmp_path: Path) -> None:
    # The same script, seeded: once by wandb (offline, then imported), once moved over by one import.
    script = (
        "import random\nimport wandb\nrandom.seed(7)\n"
        'wandb.init(project="qs", name="qs", config={"learning_rate": 0.02, "epochs": 10})\n'
        "for epoch in range(2, 10):\n"
        "    wandb.log({'acc': 1 - 2 ** -epoch - random.random() / epoch, 'loss': 2 ** -epoch})\n"
        "wandb.finish()\n"
    )
    run_wandb(tmp_path / "wb", script)
    shim = script.replace("import wandb\n", "import tracklog.integrations.wandb as wandb\n")
    env = python_env()
    env["TRACKLOG_DIR"] = str(tmp_path / "shim")
    out = subprocess.run([PY, "-c", shim], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    imported, shimmed = tracklog.Store(tmp_path / "store"), tracklog.Store(tmp_path / "shim")
    import_wandb(imported, tmp_path / "wb")
    a, b = only(imported, "qs"), only(shimmed, "qs")
    assert (a.experiment, a.params, a.status) == (b.experiment, b.params, b.status)
    assert set(a.metrics) == set(b.metrics) == {"acc", "loss"}
    for key in a.metrics:
        ha, hb = a.history(key), b.history(key)
        assert ha.step.tolist() == hb.step.tolist() and ha.value.tolist() == hb.value.tolist()


@pytest.fixture(scope="module")
def long_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A W&B run of 800 rows whose config record (100 KB) spans blocks: FIRST, MIDDLE, LAST chunks."""
    where = tmp_path_factory.mktemp("wb-long")
    run_wandb(
        where,
        "import wandb\n"
        "wandb.init(project='long', config={'blob': 'x' * 100_000})\n"
        "for s in range(800):\n"
        "    wandb.log({'a': s, 'b': {'c': -s}}, step=s)\n"
        "wandb.finish()\n",
    )
    (f,) = where.glob("wandb/offline-run-*/run-*.wandb")
    return f


def test_cuts_at_block_boundaries_keep_whole_records_only(long_run: Path, tmp_path: Path) -> None:
    full = read_run(long_run)
    assert full.config["blob"] == "x" * 100_000 and len(full.rows) == 800
    data = long_run.read_bytes()
    block = 32768
    cut = tmp_path / "run-cut.wandb"
    for k in range(1, len(data) // block + 1):
        for size in (k * block - 7, k * block - 1, k * block, k * block + 1, k * block + 8):
            cut.write_bytes(data[:size])
            try:
                part = read_run(cut)
            except InteropError:
                assert k * block < 110_000  # only before the run record is whole
                continue
            assert part.exit_code is None and part.rows == full.rows[: len(part.rows)]
    store = tracklog.Store(tmp_path / "store")
    (rid,) = import_wandb(store, long_run).created
    run = store.run(rid)
    assert run.history("b/c").value.tolist() == [-float(s) for s in range(800)]


def _frame(records: list[bytes]) -> bytes:
    """W&B's record log, written as wandb-core writes it (tests the reader, not wandb)."""
    import struct
    import zlib

    out = bytearray(struct.pack("<4sHB", b":W&B", 0xBEE1, 0))
    for rec in records:
        first = True
        while True:
            room = 32768 - len(out) % 32768
            if room < 7:
                out += b"\0" * room
                continue
            piece, rec = rec[: room - 7], rec[room - 7 :]
            kind = (1 if not rec else 2) if first else (4 if not rec else 3)
            out += struct.pack("<IHB", zlib.crc32(piece, zlib.crc32(bytes([kind]))), len(piece), kind)
            out += piece
            first = False
            if not rec:
                break
    return bytes(out)


def test_config_wrappers_removes_and_wandb_internals(tmp_path: Path) -> None:
    from wandb.proto import wandb_internal_pb2 as pb

    run = pb.Record()
    run.run.run_id, run.run.project = "abc123", "p"
    run.run.start_time.seconds = 1_700_000_000
    for key, value in (("lr", {"value": 0.1, "desc": "step size"}), ("_wandb", {"x": 1}), ("gone", 1)):
        item = run.run.config.update.add()
        item.key, item.value_json = key, json_dumps(value)
    config = pb.Record()
    config.config.remove.add().key = "gone"
    hist = pb.Record()
    for path, value in ((["_step"], 3), (["_timestamp"], 1_700_000_001.5), (["m", "n"], 2.5)):
        item = hist.history.item.add()
        item.nested_key.extend(path)
        item.value_json = json_dumps(value)
    summary = pb.Record()
    item = summary.summary.update.add()
    item.nested_key.extend(["best", "acc"])
    item.value_json = "0.75"
    end = pb.Record()
    end.exit.exit_code = 0
    f = tmp_path / "run-abc123.wandb"
    f.write_bytes(_frame([r.SerializeToString() for r in (run, config, hist, summary, end)]))
    store = tracklog.Store(tmp_path / "store")
    (rid,) = import_wandb(store, f).created
    got = store.run(rid)
    assert got.params == {"lr": 0.1} and got.status == "finished" and got.name == "abc123"
    h = got.history("m/n")
    assert (h.step.tolist(), h.value.tolist(), h.timestamp.tolist()) == ([3], [2.5], [1_700_000_001.5])
    assert got.tags["summary.best/acc"] == 0.75 and got.start_time == 1_700_000_000


def json_dumps(value: Any) -> str:
    import json

    return json.dumps(value)
