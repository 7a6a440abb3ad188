"""state/index.py: the store index (every run's summary in one file) and its dirty markers."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tracklog
from tracklog.state import index
from tracklog.state.docfile import encode_doc
from tracklog.store import paths


def _runs(n: int = 3, points: int = 4) -> list[Path]:
    out = []
    for r in range(n):
        with tracklog.start_run("exp", f"name{r}", run_id=f"r{r}", params={"r": r}) as run:
            for i in range(points):
                run.log_metric("a", float(r * 100 + i))
        out.append(run.path)
    return out


def _replayed(root: Path) -> list[tracklog.RunState]:
    """What Store.runs must answer, from the logs alone: newest (largest id) first."""
    return [tracklog.replay(root / "runs" / rid) for rid in reversed(sorted(os.listdir(root / "runs")))]


def test_compact_writes_one_valid_entry_per_run(root: Path) -> None:
    paths_ = _runs()
    report = tracklog.compact()
    assert report.index_entries == 3 and paths.index_path(root).is_file()
    entries = index.load(root)
    assert set(entries) == {"r0", "r1", "r2"}
    for path in paths_:
        state = index.entry_state(path.name, entries[path.name], path, None)
        assert state == tracklog.replay(path)
    assert index.dirty_sessions(root) == {}  # every session ended: all markers cleared


def test_store_runs_equals_replay_and_entries_fold_histories_on_demand(root: Path) -> None:
    _runs()
    tracklog.compact()
    got = tracklog.Store().runs()
    assert [r.id for r in got] == ["r2", "r1", "r0"] and got == _replayed(root)
    h, want = got[1].history("a"), tracklog.replay(root / "runs" / "r1").history("a")
    assert np.array_equal(h.step, want.step) and np.array_equal(h.value, want.value)


def test_an_unchanged_run_is_served_from_its_entry(root: Path) -> None:
    _runs()
    tracklog.compact()
    entries = index.load(root)
    entries["r1"]["params"] = {"r": "from the index"}  # a valid entry: trusted as the cache it is
    index.write(root, entries)
    store = tracklog.Store()
    assert {r.id: r.params for r in store.runs()}["r1"] == {"r": "from the index"}
    assert store.run("r1").params == {"r": 1}  # one run is always folded from its logs


def test_a_resumed_or_new_run_is_read_fresh_not_from_a_stale_entry(root: Path) -> None:
    _runs()
    tracklog.compact()
    store = tracklog.Store()
    with tracklog.start_run(run_id="r0", resume=True) as again:
        again.log_metric("a", -1.0)
        assert set(index.dirty_sessions(root)) == {"r0"}
        live = {r.id: r for r in store.runs()}["r0"]
        assert live.status == "running" and live.metrics["a"].count == 5
    with tracklog.start_run(run_id="r9") as new:
        new.log_metric("a", 1.0)
    assert store.runs() == _replayed(root)
    assert store.runs()[0].id == "r9"


def test_a_running_entry_is_re_read_even_when_its_marker_was_lost(root: Path) -> None:
    run = tracklog.start_run(run_id="live")
    run.log_metric("a", 1.0)
    run.flush()
    tracklog.compact()
    assert index.load(root)["live"]["status"] == "running"
    for marker in paths.dirty_dir(root).iterdir():
        marker.unlink()  # lost by hand
    run.log_metric("a", 2.0)
    run.close()
    (state,) = tracklog.Store().runs()
    assert state.status == "finished" and state.metrics["a"].count == 2
    assert [state] == _replayed(root)


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],
        lambda data: data[:5],
        lambda data: b"",
        lambda data: data[:40] + bytes([data[40] ^ 0xFF]) + data[41:],
        lambda data: data[:8] + b"\x07\x00" + data[10:],  # another version
        lambda data: os.urandom(len(data)),
        lambda data: encode_doc(index.INDEX_MAGIC, index.INDEX_VERSION, ["not", "a", "map"]),
    ],
)
def test_a_corrupt_index_is_ignored_never_fatal(root: Path, damage: Callable[[bytes], bytes]) -> None:
    _runs()
    tracklog.compact()
    want = tracklog.Store().runs()
    file = paths.index_path(root)
    file.write_bytes(damage(file.read_bytes()))
    assert index.load(root) == {}
    assert tracklog.Store().runs() == want == _replayed(root)
    assert tracklog.compact().index_entries == 3  # rebuilt
    assert set(index.load(root)) == {"r0", "r1", "r2"}


def _tamper(entry: dict[str, Any], how: str, other: dict[str, Any]) -> dict[str, Any]:
    if how == "status":
        return {**entry, "status": "exploded"}
    if how == "missing":
        return {k: v for k, v in entry.items() if k != "metrics"}
    if how == "other run":
        return other  # a valid entry, but of another run: its id does not match
    return {**entry, "dropped": -3}


@pytest.mark.parametrize("how", ["status", "missing", "other run", "negative"])
def test_an_entry_that_does_not_validate_is_folded_from_the_logs(root: Path, how: str) -> None:
    paths_ = _runs()
    tracklog.compact()
    entries = index.load(root)
    entries["r1"] = _tamper(entries["r1"], how, entries["r2"])
    index.write(root, entries)
    assert index.entry_state("r1", entries["r1"], paths_[1], None) is None
    assert tracklog.Store().runs() == _replayed(root)


def test_dirty_markers_round_trip_and_foreign_names_are_ignored(root: Path) -> None:
    root.mkdir()
    assert index.dirty_sessions(root) == {}  # no index directory yet
    marker = index.mark_dirty(root, "r1", "abc123")
    assert marker.name == "r1~abc123" and marker.is_file()
    index.mark_dirty(root, "r1", "def456")
    for junk in ["notes.txt", "r2~NOT-HEX", "..~abc", "r3~"]:
        (paths.dirty_dir(root) / junk).write_text("x")
    assert index.dirty_sessions(root) == {"r1": {"abc123", "def456"}}
    index.clear_dirty(root, "r1", {"abc123"})
    assert index.dirty_sessions(root) == {"r1": {"def456"}}
    assert (paths.dirty_dir(root) / "notes.txt").exists()  # not ours: left alone
