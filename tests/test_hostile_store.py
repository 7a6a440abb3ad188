"""A hostile store: crafted names in every file tracklog reads, symlinks, FIFOs, stray entries.

Each case builds a store an attacker (or an unlucky rsync) could leave, then runs everything
tracklog does to a store (list, read, tail, verify, compact, resume, the CLI) and asserts that
no byte outside the store changes, that the run's own directory gains no file named by the
attacker, that no call hangs, and that every failure is a ``TracklogError``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import tracklog
from tracklog.cli.main import main as cli
from tracklog.errors import TracklogError, UnsafePathError, ValidationError
from tracklog.log import codec
from tracklog.log import format as fmt
from tracklog.state import docfile, index, snapshot

pytestmark = pytest.mark.filterwarnings("ignore::tracklog.errors.TracklogWarning")

CALL_TIMEOUT_S = 20


@contextmanager
def no_hang(what: str) -> Iterator[None]:
    """Fail (instead of hanging the suite) if the block blocks for CALL_TIMEOUT_S."""

    def on_alarm(signum: int, frame: Any) -> None:
        raise AssertionError(f"{what} hung for {CALL_TIMEOUT_S} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(CALL_TIMEOUT_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def fingerprint(top: Path, skip: Path) -> dict[str, Any]:
    """Every entry under ``top`` except ``skip``: its type and bytes (or link target)."""
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        d = Path(dirpath)
        if d == skip or skip in d.parents:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            p = d / name
            if p == skip:
                continue
            st = os.lstat(p)
            if os.path.islink(p):
                out[str(p)] = ("link", os.readlink(p))
            elif p.is_file():
                out[str(p)] = ("file", p.read_bytes(), st.st_mtime_ns)
            elif p.is_dir():
                out[str(p)] = ("dir",)
            else:
                out[str(p)] = ("other", st.st_mode)
    return out


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    """A store with one finished, compacted run, and precious files outside it."""
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "victim.txt").write_bytes(b"precious\n" * 8000)  # larger than any history file here
    (outside / "dir" / "inner.txt").write_bytes(b"also precious\n")
    root = tmp_path / "store"
    with tracklog.start_run("exp", "base", root=root, run_id="r1", params={"lr": 0.1}) as run:
        for i in range(20):
            run.log_metric("loss", 1.0 / (i + 1))
    tracklog.compact(root)
    return {"tmp": tmp_path, "outside": outside, "root": root, "run": root / "runs" / "r1"}


def exercise(root: Path, run_id: str = "r1") -> list[str]:
    """Everything tracklog does to a store; returns the names of the calls that raised.

    Every call must return or raise a TracklogError, within CALL_TIMEOUT_S.
    """
    raised = []

    def attempt(name: str, fn: Callable[[], Any]) -> None:
        with no_hang(name):
            try:
                fn()
            except TracklogError:
                raised.append(name)

    store = tracklog.Store(root)
    attempt("runs", store.runs)
    attempt("run", lambda: store.run(run_id))
    attempt("history", lambda: store.history(run_id, "loss"))
    attempt("replay", lambda: tracklog.replay(root / "runs" / run_id))
    attempt("scan", lambda: tracklog.scan(root / "runs" / run_id))
    attempt("read_events", lambda: list(tracklog.read_events(root / "runs" / run_id)))
    attempt("tail", lambda: list(store.tail(run_id, follow=False, from_start=True)))
    attempt("compact_run", lambda: tracklog.compact(root / "runs" / run_id))
    attempt("compact", lambda: tracklog.compact(root))

    def resume() -> None:
        with tracklog.start_run(root=root, run_id=run_id, resume=True) as run:
            run.log_metric("loss", 0.01)

    attempt("resume", resume)
    attempt("compact_again", lambda: tracklog.compact(root))
    attempt("runs_again", store.runs)
    for argv in (["runs"], ["show", run_id], ["verify"], ["compact"]):
        with no_hang(f"tracklog {' '.join(argv)}"):
            assert cli([*argv, "--root", str(root)]) in (0, 1, 2)
    return raised


def assert_untouched(world: dict[str, Path], before: dict[str, Any]) -> None:
    after = fingerprint(world["tmp"], world["root"])
    assert after == before, "a file outside the store changed"


def rewrite_doc(path: Path, magic: bytes, version: int, change: Callable[[Any], None]) -> None:
    """Edit a cache file's document and write it back with valid framing."""
    doc = docfile.decode_doc(path.read_bytes(), magic, version)
    change(doc)
    path.write_bytes(docfile.encode_doc(magic, version, doc))


TRAVERSALS = [
    "../../../outside/victim.txt",
    "../../x",
    "/tmp/../{outside}/victim.txt",
    "history-000001.bin/../../../../outside/victim.txt",
    "seg-000001.tlog\0",
    "",
    7,
]


@pytest.mark.parametrize("bad", TRAVERSALS)
def test_a_crafted_history_name_in_a_snapshot_never_opens_a_file_outside_the_run(
    world: dict[str, Path], bad: Any
) -> None:
    bad = bad.format(outside=world["outside"]) if isinstance(bad, str) else bad
    snap = world["run"] / snapshot.SNAPSHOT_NAME
    rewrite_doc(snap, snapshot.SNAP_MAGIC, snapshot.SNAP_VERSION, lambda d: d.__setitem__("hist", bad))
    before = fingerprint(world["tmp"], world["root"])
    want = tracklog.replay(world["run"])
    assert snapshot.load(world["run"]) is None  # refused, so folded afresh
    assert tracklog.Store(world["root"]).run("r1") == want
    exercise(world["root"])
    assert_untouched(world, before)
    assert not (world["root"] / "x").exists()


# Map keys in a cache file are str (the reader's strict_map_key refuses others).
@pytest.mark.parametrize("bad", [b for b in TRAVERSALS if isinstance(b, str)])
def test_a_crafted_segment_name_in_a_snapshot_is_never_opened(world: dict[str, Path], bad: str) -> None:
    bad = bad.format(outside=world["outside"])

    def change(doc: dict[str, Any]) -> None:
        doc["segments"][bad] = doc["segments"].pop("seg-000001.tlog")

    snap = world["run"] / snapshot.SNAPSHOT_NAME
    rewrite_doc(snap, snapshot.SNAP_MAGIC, snapshot.SNAP_VERSION, change)
    before = fingerprint(world["tmp"], world["root"])
    assert snapshot.load(world["run"]) is None
    assert tracklog.Store(world["root"]).history("r1", "loss").step.tolist() == list(range(20))
    exercise(world["root"])
    assert_untouched(world, before)


def test_a_crafted_supersedes_name_in_a_segment_header_is_ignored(world: dict[str, Path]) -> None:
    # A second segment whose header claims to supersede a file outside the run from offset 0.
    header = {"run_id": "r1", "session": "ab", "seq": 2, "supersedes": ["../../../outside/victim.txt", 0]}
    start = [1, {"run_id": "r1", "session": "ab", "time": 1.0, "experiment": "exp"}]
    data = codec.encode_segment_start(header) + fmt.frame(codec.pack(start))
    (world["run"] / "seg-000002.tlog").write_bytes(data)
    before = fingerprint(world["tmp"], world["root"])
    assert tracklog.replay(world["run"]).history("loss").step.tolist() == list(range(20))
    exercise(world["root"])
    assert_untouched(world, before)


def test_a_symlinked_writer_lock_is_never_truncated_on_resume(world: dict[str, Path]) -> None:
    lock = world["run"] / "writer.lock"
    lock.unlink()
    lock.symlink_to(world["outside"] / "victim.txt")
    before = fingerprint(world["tmp"], world["root"])
    with pytest.raises(UnsafePathError, match="symbolic link"):
        tracklog.start_run(root=world["root"], run_id="r1", resume=True)
    assert "resume" in exercise(world["root"])
    assert_untouched(world, before)


def test_a_symlinked_history_file_is_never_truncated_by_compaction(world: dict[str, Path]) -> None:
    hist = world["run"] / "history-000001.bin"
    hist.unlink()
    hist.symlink_to(world["outside"] / "victim.txt")
    with tracklog.start_run(root=world["root"], run_id="r1", resume=True) as run:
        run.log_metric("loss", 0.5)
    before = fingerprint(world["tmp"], world["root"])
    # The snapshot's history file is refused, so compaction starts a new generation in a new
    # file and removes the old name (the link itself, never its target).
    tracklog.compact(world["run"])
    assert not hist.is_symlink() and (world["run"] / "history-000002.bin").is_file()
    exercise(world["root"])
    assert_untouched(world, before)
    assert tracklog.Store(world["root"]).history("r1", "loss").step.tolist() == [*range(20), 20, 21]


def test_a_run_directory_that_is_a_symlink_gets_nothing_written_into_it(world: dict[str, Path]) -> None:
    elsewhere = world["outside"] / "dir" / "r2"
    with tracklog.start_run(root=world["tmp"] / "other", run_id="r2") as run:
        run.log_metric("loss", 1.0)
    os.rename(run.path, elsewhere)
    (world["root"] / "runs" / "r2").symlink_to(elsewhere, target_is_directory=True)
    before = fingerprint(world["tmp"], world["root"])
    with pytest.warns(tracklog.TracklogWarning, match="symlink"):
        ids = tracklog.Store(world["root"]).run_ids()
    assert ids == ["r1"]
    with pytest.raises(UnsafePathError):
        tracklog.start_run(root=world["root"], run_id="r2", resume=True)
    with pytest.raises(UnsafePathError):
        tracklog.compact(world["root"] / "runs" / "r2")
    raised = exercise(world["root"], "r2")
    assert {"run", "resume", "compact_run"} <= set(raised)
    assert_untouched(world, before)


def test_a_fifo_named_like_a_segment_never_blocks_a_reader(world: dict[str, Path]) -> None:
    os.mkfifo(world["run"] / "seg-000002.tlog")
    os.mkfifo(world["run"] / "snapshot.tls.fifo")
    before = fingerprint(world["tmp"], world["root"])
    with no_hang("Store.runs"):
        assert [r.id for r in tracklog.Store(world["root"]).runs()] == ["r1"]
    with no_hang("Store.run"), pytest.warns(tracklog.TracklogWarning, match="FIFO"):
        assert tracklog.Store(world["root"]).run("r1").metrics["loss"].count == 20
    exercise(world["root"])
    assert_untouched(world, before)
    # A resume never reuses the FIFO's sequence number.
    assert (world["run"] / "seg-000003.tlog").is_file()


def test_a_fifo_as_the_snapshot_index_or_lock_never_blocks(world: dict[str, Path]) -> None:
    for p in (
        world["run"] / "snapshot.tls",
        world["root"] / "index" / "runs.tli",
        world["run"] / "writer.lock",
    ):
        p.unlink()
        os.mkfifo(p)
    before = fingerprint(world["tmp"], world["root"])
    exercise(world["root"])
    assert_untouched(world, before)


@pytest.mark.parametrize("name", ["compact.lock", "index"])
def test_a_symlinked_compaction_lock_or_index_dir_is_a_typed_error(world: dict[str, Path], name: str) -> None:
    target = world["run"] / name if name == "compact.lock" else world["root"] / name
    if target.is_dir():
        for p in target.rglob("*"):
            if p.is_file():
                p.unlink()
        for p in sorted(target.rglob("*"), reverse=True):
            p.rmdir()
        target.rmdir()
    else:
        target.unlink()
    target.symlink_to(world["outside"] / ("victim.txt" if name == "compact.lock" else "dir"))
    before = fingerprint(world["tmp"], world["root"])
    with pytest.raises(UnsafePathError):
        tracklog.compact(world["run"] if name == "compact.lock" else world["root"])
    exercise(world["root"])
    assert_untouched(world, before)


@pytest.mark.parametrize("link", ["artifacts/sha256", "artifacts/tmp", "index/dirty", "runs"])
def test_a_symlinked_store_directory_is_never_written_through(tmp_path: Path, link: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "store"
    (root / "runs").mkdir(parents=True)
    p = root / link
    if p.exists():
        p.rmdir()
    p.parent.mkdir(parents=True, exist_ok=True)
    p.symlink_to(outside, target_is_directory=True)
    src = tmp_path / "model.bin"
    src.write_bytes(b"weights")
    with pytest.raises(UnsafePathError), tracklog.start_run(root=root) as run:
        run.log_artifact(src)
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("bad", ["../../x", "/abs", "a/b", "", "..", "x\0y"])
def test_compact_validates_the_run_id_before_joining_it(world: dict[str, Path], bad: str) -> None:
    before = fingerprint(world["tmp"], world["root"])
    with pytest.raises(ValidationError):
        tracklog.compact(world["root"], run_id=bad)
    assert_untouched(world, before)
    assert not (world["root"] / "x").exists()


def test_compact_of_a_missing_run_id_is_run_not_found(world: dict[str, Path]) -> None:
    with pytest.raises(tracklog.RunNotFoundError):
        tracklog.compact(world["root"], run_id="nope")
    assert not (world["root"] / "runs" / "nope").exists()


def test_a_symlinked_segment_is_skipped_not_read(world: dict[str, Path]) -> None:
    with tracklog.start_run(root=world["tmp"] / "other", run_id="o") as run:
        run.log_metric("secret", 42.0)
    (world["run"] / "seg-000002.tlog").symlink_to(run.path / "seg-000001.tlog")
    with pytest.warns(tracklog.TracklogWarning, match="symbolic link"):
        events = list(tracklog.read_events(world["run"]))
    assert all(e.key != "secret" for e in events)
    assert "secret" not in tracklog.Store(world["root"]).run("r1").metrics


def test_stray_entries_in_runs_are_skipped_with_a_warning_and_the_rest_listed(world: dict[str, Path]) -> None:
    shutil_copy(world["run"], world["root"] / "runs" / "old copy")
    (world["root"] / "runs" / "notes.txt").write_text("hi")
    with pytest.warns(tracklog.TracklogWarning, match="old copy"):
        tracklog.compact(world["root"])
    assert [r.id for r in tracklog.Store(world["root"]).runs()] == ["r1"]
    # Even an index that (from an older version) holds the stray entry is harmless.
    path = world["root"] / "index" / "runs.tli"
    rewrite_doc(path, index.INDEX_MAGIC, index.INDEX_VERSION, lambda d: d.__setitem__("old copy", d["r1"]))
    assert [r.id for r in tracklog.Store(world["root"]).runs()] == ["r1"]
    assert cli(["runs", "--root", str(world["root"])]) == 0


def shutil_copy(src: Path, dst: Path) -> None:
    import shutil

    shutil.copytree(src, dst)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.__setitem__("r1", []),
        lambda d: d["r1"].__setitem__("status", 5),
        lambda d: d["r1"].__setitem__("start_time", "yesterday"),
        lambda d: d["r1"].pop("sessions"),
        lambda d: d["r1"]["sessions"].append({"bogus": 1}),
        lambda d: d["r1"]["metrics"].__setitem__("loss", {"count": "many"}),
        lambda d: d["r1"].__setitem__("id", "r2"),
        lambda d: d["r1"].__setitem__("params", {"lr": b"\x00"}),
        lambda d: d["r1"]["artifacts"].__setitem__("../../x", {"sha256": "0" * 64, "size": 1}),
        lambda d: d.__setitem__("../../../outside/victim.txt", d["r1"]),
    ],
)
def test_an_index_entry_that_does_not_validate_is_ignored_and_the_run_folded(
    world: dict[str, Path], change: Callable[[Any], None]
) -> None:
    want = tracklog.replay(world["run"])
    path = world["root"] / "index" / "runs.tli"
    rewrite_doc(path, index.INDEX_MAGIC, index.INDEX_VERSION, change)
    before = fingerprint(world["tmp"], world["root"])
    store = tracklog.Store(world["root"])
    assert store.runs() == [want]
    assert store.runs(order_by="start_time", where="status = 'finished'") == [want]
    exercise(world["root"])
    assert_untouched(world, before)


def test_hostile_dirty_marker_names_are_ignored(world: dict[str, Path]) -> None:
    dirty = world["root"] / "index" / "dirty"
    dirty.mkdir(parents=True, exist_ok=True)
    for name in ("..~..", "r1~..", "r1~", "~abc", "r1~ZZ", "x y~ab"):
        (dirty / name).write_text("")
    before = fingerprint(world["tmp"], world["root"])
    assert index.dirty_sessions(world["root"]) == {}
    exercise(world["root"])
    assert_untouched(world, before)


def test_a_session_id_with_a_path_in_it_never_reaches_the_dirty_marker_path(world: dict[str, Path]) -> None:
    header = {"run_id": "r1", "session": "../../../outside/victim.txt", "seq": 2}
    start = [1, {**header, "time": 2.0, "experiment": "exp"}]
    (world["run"] / "seg-000002.tlog").write_bytes(
        codec.encode_segment_start(header) + fmt.frame(codec.pack(start))
    )
    before = fingerprint(world["tmp"], world["root"])
    exercise(world["root"])
    assert_untouched(world, before)


def test_a_run_id_claimed_by_the_log_never_replaces_the_directory_name(world: dict[str, Path]) -> None:
    header = {"run_id": "../../../outside/x", "session": "ab", "seq": 2}
    start = [1, {**header, "time": 2.0, "experiment": "exp"}]
    seg = world["run"] / "seg-000001.tlog"
    seg.unlink()
    seg.write_bytes(codec.encode_segment_start(header) + fmt.frame(codec.pack(start)))
    (world["run"] / snapshot.SNAPSHOT_NAME).unlink()
    before = fingerprint(world["tmp"], world["root"])
    assert tracklog.Store(world["root"]).run("r1").id == "r1"
    assert tracklog.replay(world["run"]).id == "r1"
    assert [r.id for r in tracklog.Store(world["root"]).runs()] == ["r1"]
    exercise(world["root"])
    assert_untouched(world, before)


def test_a_symlinked_runs_directory_is_neither_read_nor_written_through(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    with tracklog.start_run(root=elsewhere, run_id="r1") as run:
        run.log_metric("loss", 1.0)
    root = tmp_path / "store"
    root.mkdir()
    (root / "runs").symlink_to(elsewhere / "runs", target_is_directory=True)
    before = fingerprint(tmp_path, root)
    with pytest.warns(tracklog.TracklogWarning, match="not a directory of runs"):
        assert tracklog.Store(root).runs() == []
    tracklog.compact(root)
    with pytest.raises(tracklog.TracklogError):
        tracklog.Store(root).run("r1")
    assert fingerprint(tmp_path, root) == before  # no snapshot, history or lock written there


def test_a_symlinked_dirty_directory_is_never_listed_or_cleaned(
    world: dict[str, Path], tmp_path: Path
) -> None:
    other = world["outside"] / "dirty"
    other.mkdir()
    (other / "r1~ab").write_text("")  # another store's marker, named like one of ours
    shutil_rmtree(world["root"] / "index" / "dirty")
    (world["root"] / "index" / "dirty").symlink_to(other, target_is_directory=True)
    header = {"run_id": "r1", "session": "ab", "seq": 2}
    (world["run"] / "seg-000002.tlog").write_bytes(
        codec.encode_segment_start(header) + fmt.frame(codec.pack([1, {**header, "time": 2.0}]))
    )
    before = fingerprint(world["tmp"], world["root"])
    assert index.dirty_sessions(world["root"]) == {}
    exercise(world["root"])
    assert_untouched(world, before)


def test_entries_named_like_a_marker_or_history_file_that_are_directories_are_left_alone(
    world: dict[str, Path],
) -> None:
    (world["run"] / "history-000007.bin").mkdir()
    dirty = world["root"] / "index" / "dirty"
    dirty.mkdir(parents=True, exist_ok=True)
    (dirty / "r1~ab").mkdir()
    header = {"run_id": "r1", "session": "ab", "seq": 2}
    (world["run"] / "seg-000002.tlog").write_bytes(
        codec.encode_segment_start(header) + fmt.frame(codec.pack([1, {**header, "time": 2.0}]))
    )
    (world["run"] / snapshot.SNAPSHOT_NAME).unlink()  # the next compaction starts a generation
    report = tracklog.compact(world["root"])
    assert report.failed == {} and (dirty / "r1~ab").is_dir()
    assert cli(["compact", "--root", str(world["root"])]) == 0


def test_a_hard_linked_lock_file_is_never_written_through(world: dict[str, Path]) -> None:
    lock = world["run"] / "writer.lock"
    lock.unlink()
    os.link(world["outside"] / "victim.txt", lock)
    before = fingerprint(world["tmp"], world["root"])
    with pytest.raises(UnsafePathError, match="hard links"):
        tracklog.start_run(root=world["root"], run_id="r1", resume=True)
    exercise(world["root"])
    assert_untouched(world, before)


def test_tail_never_follows_a_symlinked_run(world: dict[str, Path]) -> None:
    with tracklog.start_run(root=world["tmp"] / "other", run_id="r9") as run:
        run.log_metric("secret", 1.0)
    (world["root"] / "runs" / "r9").symlink_to(run.path, target_is_directory=True)
    with no_hang("tail"), pytest.raises(UnsafePathError):
        list(tracklog.Store(world["root"]).tail("r9", from_start=True, timeout=1))


def test_the_last_segment_number_is_refused_not_written_past(world: dict[str, Path]) -> None:
    top = world["run"] / "seg-999999999999999999.tlog"
    top.write_bytes((world["run"] / "seg-000001.tlog").read_bytes())
    with pytest.raises(tracklog.StoreError, match="no segment number left"):
        tracklog.start_run(root=world["root"], run_id="r1", resume=True)
    assert sorted(p.name for p in world["run"].glob("seg-*")) == ["seg-000001.tlog", top.name]


def test_a_snapshot_mark_cannot_size_a_read(world: dict[str, Path]) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["segments"]["seg-000001.tlog"][1] = 2**62  # head_size

    rewrite_doc(world["run"] / snapshot.SNAPSHOT_NAME, snapshot.SNAP_MAGIC, snapshot.SNAP_VERSION, change)
    assert snapshot.load(world["run"]) is None
    assert tracklog.Store(world["root"]).run("r1").metrics["loss"].count == 20


def shutil_rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def test_a_stray_segment_at_the_store_root_does_not_turn_the_store_into_one_run(
    world: dict[str, Path],
) -> None:
    (world["root"] / "seg-000001.tlog").write_bytes((world["run"] / "seg-000001.tlog").read_bytes())
    (world["run"] / snapshot.SNAPSHOT_NAME).unlink()
    report = tracklog.compact(world["root"], run_ids=["r1"])  # the index entry is clean
    assert [r.run_id for r in report.runs] == ["r1"] and report.index_entries == 1
    assert not (world["root"] / snapshot.SNAPSHOT_NAME).exists()


def test_a_huge_history_generation_name_does_not_block_compaction(world: dict[str, Path]) -> None:
    (world["run"] / ("history-" + "9" * 18 + ".bin")).write_bytes(b"")
    (world["run"] / snapshot.SNAPSHOT_NAME).unlink()
    report = tracklog.compact(world["root"], run_ids=["r1"])
    assert report.failed == {} and snapshot.load(world["run"]) is not None


def test_many_resume_step_sessions_that_drop_nothing_stay_cheap(world: dict[str, Path]) -> None:
    """1,000 keys, then 400 sessions whose resume_step drops nothing: each costs a comparison
    per key (the per-series max step), not a pass over every key's points."""
    keys = [f"k{i}" for i in range(1000)]
    values = b"\0" * 8 * len(keys)
    recs = [[6, keys, None, 0, values, 1.0]]
    recs += [[1, {"session": "ab", "time": 1.0, "resume_step": 2**63 - 1}] for _ in range(400)]
    header = {"run_id": "r1", "session": "ab", "seq": 2}
    (world["run"] / "seg-000002.tlog").write_bytes(
        codec.encode_segment_start(header) + b"".join(fmt.frame(codec.pack(r)) for r in recs)
    )
    state = tracklog.replay(world["run"])
    assert len(state.sessions) == 401 and all(s.superseded == 0 for s in state.sessions)
    assert len(state.metrics) == 1001
