"""Faults on real filesystems and races between processes: defined outcomes."""

from __future__ import annotations

import os
import subprocess
import threading
import warnings
from pathlib import Path

import pytest

import tracklog
from tracklog.errors import RunExistsError, StoreError, TracklogWarning
from tracklog.log import format as fmt
from tracklog.log import writer as writer_mod

from .conftest import PY, python_env


def _mount_tmpfs(path: Path, opts: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True
    )
    if r.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({r.stderr.strip() or 'not root'}); the injected-fault tests cover this"
        )


@pytest.fixture
def tiny_fs(tmp_path: Path):  # type: ignore[no-untyped-def]
    mnt = tmp_path / "tiny"
    _mount_tmpfs(mnt, "size=1m")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_holds_events_and_writes_them_when_space_returns(
    tiny_fs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_mod, "RETRY_INTERVAL_S", 0.0)
    filler = tiny_fs / "filler"
    with tracklog.start_run(root=tiny_fs / "store", run_id="full") as run:
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # take the rest of the space
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        with pytest.warns(TracklogWarning, match="promise is suspended"):
            for i in range(2000):
                run.log_metric("a", float(i))
        assert run._writer.pending_events > 0  # held in memory, not lost
        filler.unlink()  # space returns
        with pytest.warns(TracklogWarning, match="succeed again"):
            run.flush()
    points = [e.step for e in tracklog.read_events(run.path) if e.kind == "metric"]
    assert points == list(range(2000))
    assert all(r.corrupt == [] for r in tracklog.scan(run.path))


def test_a_read_only_filesystem_is_a_clear_error_at_start_run(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    _mount_tmpfs(ro, "ro,size=1m")
    try:
        with pytest.raises(StoreError, match="cannot create store root"):
            tracklog.start_run(root=ro / "store")
        assert not any(ro.iterdir())  # nothing half-created
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)


def test_a_store_whose_runs_dir_is_not_writable_is_refused_cleanly(tmp_path: Path) -> None:
    root = tmp_path / "store"
    (root / "runs").mkdir(parents=True)
    ro = root / "runs"
    _mount_tmpfs(ro, "ro,size=1m")
    try:
        with pytest.raises(StoreError):
            tracklog.start_run(root=root)
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)


START_SAME = """
import sys, tracklog
try:
    with tracklog.start_run(root=sys.argv[1], run_id="same") as run:
        run.log_metric("a", 1.0)
    print("started")
except tracklog.RunExistsError:
    print("exists")
except tracklog.RunLockedError:
    print("locked")
"""


def test_two_processes_starting_the_same_run_id_one_wins(root: Path) -> None:
    procs = [
        subprocess.Popen(
            [PY, "-c", START_SAME, str(root)], stdout=subprocess.PIPE, text=True, env=python_env()
        )
        for _ in range(4)
    ]
    outs = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert outs.count("started") == 1 and set(outs) <= {"started", "exists", "locked"}
    events = list(tracklog.read_events(root / "runs" / "same"))
    assert [e.kind for e in events] == ["run_start", "metric", "run_end"]
    with pytest.raises(RunExistsError):
        tracklog.start_run(root=root, run_id="same")


def test_many_readers_while_writing_see_growing_consistent_states(root: Path) -> None:
    run = tracklog.start_run(root=root, run_id="busy", durability="process")
    stop = threading.Event()
    errors: list[BaseException] = []

    def read() -> None:
        store = tracklog.Store(root)
        last = 0
        while not stop.is_set():
            try:
                state = store.run("busy")
                n = state.metrics["a"].count if "a" in state.metrics else 0
                assert n >= last and state.status == "running"
                h = state.history("a") if n else None
                assert h is None or h.step.tolist() == list(range(len(h)))
                last = n
            except BaseException as exc:  # reported below
                errors.append(exc)
                return

    readers = [threading.Thread(target=read) for _ in range(4)]
    for r in readers:
        r.start()
    for i in range(20000):
        run.log_metric("a", float(i))
    stop.set()
    for r in readers:
        r.join()
    run.close()
    assert errors == []


@pytest.mark.parametrize("durability", ["machine", "process"])
def test_every_power_cut_state_after_an_fsync_keeps_what_was_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durability: str
) -> None:
    """Record the writer's fsync points (every event in "machine"; the background fsyncs and
    close in "process"), build every state a power cut could leave (the file cut at any byte
    after the last fsync, then nothing, zeros or garbage) and check each keeps every fsynced
    record."""
    synced: list[int] = []
    real = writer_mod._fdatasync

    def spy(fd: int) -> None:
        end = os.lseek(fd, 0, os.SEEK_END)  # everything written before the call is covered
        real(fd)
        synced.append(end)

    monkeypatch.setattr(writer_mod, "_fdatasync", spy)
    with tracklog.start_run(
        root=tmp_path / "s", run_id="p", durability=durability, fsync_interval=0.005
    ) as run:  # type: ignore[arg-type]
        for i in range(40):
            run.log_metric("a", float(i))
            if i % 10 == 9:
                threading.Event().wait(0.02)  # let the background fsync run now and then
    seg = next(run.path.glob("seg-*.tlog"))
    data = seg.read_bytes()
    ends = [it[1] for it in fmt.iter_frames(data, fmt.PREFIX_SIZE, len(data)) if type(it) is tuple]
    metric_ends = ends[2:-1]  # after the header and run_start, before run_end
    assert len(metric_ends) == 40 and synced
    synced = sorted(set(synced))
    cut_file = tmp_path / "cut.tlog"
    states = 0
    for k, fs_off in enumerate(synced):
        nxt = synced[k + 1] if k + 1 < len(synced) else len(data)
        for cut in range(fs_off, nxt + 1):
            for tail in (b"", b"\0" * 32, os.urandom(32)):
                cut_file.write_bytes(data[:cut] + tail)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", TracklogWarning)
                    got = [e for e in tracklog.read_events(cut_file) if e.kind == "metric"]
                # every record that ended by the last fsync is there, in order
                need = sum(1 for e in metric_ends if e <= fs_off)
                assert [e.step for e in got[:need]] == list(range(need)), (cut, tail[:2])
                states += 1
    assert states >= 3 * (len(data) - synced[0])


def test_a_power_cut_while_a_snapshot_is_written_leaves_a_store_equal_to_replay(tmp_path: Path) -> None:
    """Every state a cut can leave: the old snapshot with the history file cut at any byte of the
    newly appended chunks, with or without a partial temp file of the new snapshot."""
    from tracklog.read.compact import compact_run

    run = tracklog.start_run(root=tmp_path / "s", run_id="c")
    for i in range(50):
        run.log_metric("a", float(i))
    compact_run(run.path)
    old_snap = (run.path / "snapshot.tls").read_bytes()
    hist = next(run.path.glob("history-*.bin"))
    old_len = hist.stat().st_size
    for i in range(30):
        run.log_metrics({"a": -float(i), "b": float(i)})
    run.close()
    compact_run(run.path)
    new_hist = hist.read_bytes()
    new_snap = (run.path / "snapshot.tls").read_bytes()
    want = tracklog.replay(run.path)
    store = tracklog.Store(tmp_path / "s")
    for cut in range(old_len, len(new_hist) + 1, 7):
        hist.write_bytes(new_hist[:cut])
        (run.path / "snapshot.tls").write_bytes(old_snap)
        (run.path / ".snapshot.tls.partial.tmp").write_bytes(new_snap[: cut % len(new_snap)])
        assert store.run("c") == want, cut
        assert store.history("c", "a").value.tolist() == want.history("a").value.tolist()
