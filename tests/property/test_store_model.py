"""The central invariant, as a state machine: whatever the interleaving of writes, resumes,
crashes (with the log cut at any byte), compactions and index rebuilds, ``Store.run(id)``
equals ``replay(run_path)``, histories included."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import tracklog
from tracklog import snapshot
from tracklog.compact import compact_run

from ..helpers import crash

pytestmark = pytest.mark.filterwarnings("ignore::tracklog.errors.TracklogWarning")

KEYS = st.sampled_from(["loss", "acc", "lr"])
VALUES = st.floats(allow_nan=True, allow_infinity=True, width=64)


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="tl-model-"))
        self.store = tracklog.Store(self.root)
        self.run: tracklog.Run | None = None
        self.run_id = "model"
        self.path = self.root / "runs" / self.run_id
        self.folded: dict[str, int] = {}  # per segment: bytes a compaction fsynced and folded

    def teardown(self) -> None:
        if self.run is not None and not self.run.closed:
            self.run.close()
        shutil.rmtree(self.root, ignore_errors=True)

    @precondition(lambda self: self.run is None)
    @rule(resume_step=st.none() | st.integers(0, 30), durability=st.sampled_from(["process", "batch"]))
    def start_or_resume(self, resume_step: int | None, durability: str) -> None:
        self.run = tracklog.start_run(
            root=self.root,
            run_id=self.run_id,
            resume="allow",
            resume_step=resume_step,
            durability=durability,  # type: ignore[arg-type]
        )

    @precondition(lambda self: self.run is not None)
    @rule(key=KEYS, value=VALUES, step=st.none() | st.integers(0, 40))
    def log_metric(self, key: str, value: float, step: int | None) -> None:
        assert self.run is not None
        self.run.log_metric(key, value, step=step)

    @precondition(lambda self: self.run is not None)
    @rule(values=st.dictionaries(KEYS, VALUES, min_size=1), step=st.none() | st.integers(0, 40))
    def log_metrics(self, values: dict[str, float], step: int | None) -> None:
        assert self.run is not None
        self.run.log_metrics(values, step=step)

    @precondition(lambda self: self.run is not None)
    @rule(key=st.sampled_from(["a", "b"]), value=st.integers(0, 3))
    def set_tag(self, key: str, value: int) -> None:
        assert self.run is not None
        self.run.set_tag(key, value)

    @precondition(lambda self: self.run is not None)
    @rule(status=st.sampled_from(["finished", "failed", "killed"]))
    def close(self, status: str) -> None:
        assert self.run is not None
        self.run.flush()
        self.run.close(status)  # type: ignore[arg-type]
        self.run = None

    @precondition(lambda self: self.run is not None)
    @rule(cut=st.floats(0.0, 1.0), tail=st.sampled_from([b"", b"\0" * 16, b"\xa5" * 16]))
    def crash_and_cut(self, cut: float, tail: bytes) -> None:
        """SIGKILL, then a power cut that loses a suffix of the last segment (torn tail)."""
        assert self.run is not None
        self.run.flush()
        crash(self.run)
        self.run = None
        seg = sorted(self.path.glob("seg-*.tlog"))[-1]
        data = seg.read_bytes()
        # The segment's start (prefix, header, run_start) was fsynced before start_run
        # returned; a power cut can only take what came after it.
        start = tracklog.scan(seg)[0].header_size
        start = next(r for r in _record_ends(data) if r > start)
        start = max(start, self.folded.get(seg.name, 0))
        keep = start + int((len(data) - start) * cut)
        seg.write_bytes(data[:keep] + tail)
        # A cut log may be shorter than a snapshot claims: the snapshot must notice.

    def _note_folded(self) -> None:
        snap = snapshot.load(self.path)
        for name, mark in (snap.marks if snap else {}).items():
            self.folded[name] = max(self.folded.get(name, 0), mark.end)

    @rule()
    def compact(self) -> None:
        if self.path.exists():
            compact_run(self.path)
            self._note_folded()

    @rule()
    def compact_store(self) -> None:
        if self.path.exists():
            tracklog.compact(self.root)
            self._note_folded()

    @rule()
    def drop_caches(self) -> None:
        # The index file and snapshots are caches; index/dirty markers are not.
        for p in [self.root / "index" / "runs.tli", self.path / "snapshot.tls"]:
            if p.exists():
                os.unlink(p)

    @invariant()
    def store_equals_replay(self) -> None:
        if not self.path.exists() or not any(self.path.glob("seg-*.tlog")):
            return
        if self.run is not None:
            self.run.flush()
        want = tracklog.replay(self.path)
        got = self.store.run(self.run_id)
        assert got == want
        listed = [r for r in self.store.runs() if r.id == self.run_id]
        assert listed == [want]
        for key in want.metrics:
            g, w = got.history(key), want.history(key)
            assert np.array_equal(g.step, w.step)
            assert np.array_equal(g.value, w.value, equal_nan=True)
            assert np.array_equal(g.timestamp, w.timestamp)
            assert not any(math.isnan(x) for x in g.timestamp)


def _record_ends(data: bytes) -> list[int]:
    from tracklog import format as fmt

    return [it[1] for it in fmt.iter_frames(data, fmt.PREFIX_SIZE, len(data)) if type(it) is tuple]


TestStoreMachine = StoreMachine.TestCase
TestStoreMachine.settings = settings(
    max_examples=int(os.environ.get("TRACKLOG_MODEL_EXAMPLES", "60")), stateful_step_count=30, deadline=None
)
