"""CRC-valid records with arbitrary contents, and cache files with valid framing and arbitrary
documents: every public entry point returns or raises a TracklogError, and the store still
equals a fresh replay.

Mutating bytes almost never passes a CRC, so such fuzzing never reaches the fold; here the
frames are made valid on purpose and only their msgpack contents are hostile.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracklog
from tracklog.cli.main import main as cli
from tracklog.errors import TracklogError
from tracklog.log import codec
from tracklog.log import format as fmt
from tracklog.state import docfile, index, snapshot

pytestmark = pytest.mark.filterwarnings("ignore::tracklog.errors.TracklogWarning")

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.binary(max_size=24)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
KINDS = st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 9, 63, 64, 200]) | st.integers(-5, 300) | VALUES
# Fields that are nearly right: the shapes a writer makes, with one thing off.
NEAR = (
    st.sampled_from(["loss", "acc@1", "", "../../x", "seg-000001.tlog"])
    | st.integers(-(2**63) - 1, 2**64 - 1)
    | st.floats()
    | st.fixed_dictionaries(
        {},
        optional={
            "time": st.floats() | VALUES,
            "status": st.sampled_from(["finished", "failed", "killed", "running", "x"]) | VALUES,
            "session": st.text(max_size=20) | VALUES,
            "experiment": VALUES,
            "name": VALUES,
            "resume_step": st.integers(-(2**63) - 1, 2**64 - 1) | VALUES,
            "count": st.integers(-(2**63), 2**64 - 1) | VALUES,
            "sha256": st.sampled_from(["0" * 64, "g" * 64]) | VALUES,
            "size": st.integers(-1, 2**64 - 1),
            "error": VALUES,
            "pid": VALUES,
        },
    )
    | st.binary(max_size=40)
    | VALUES
)
RECORDS = st.one_of(
    VALUES,
    st.tuples(KINDS, st.lists(NEAR, max_size=6)).map(lambda t: [t[0], *t[1]]),
)


def _segment(records: list[Any]) -> bytes:
    header = {"run_id": "r", "session": "ab", "seq": 1, "time": 1.0}
    start = [1, {**header, "experiment": "fuzz", "name": "n", "resume": False}]
    body = [start, [5, "loss", 0, 1.0, 2.0], *records, [5, "loss", 1, 0.5, 3.0]]
    frames = []
    for rec in body:
        try:
            frames.append(fmt.frame(codec.pack(rec)))
        except (ValueError, TypeError, OverflowError):
            continue  # not msgpack-able (an int past 64 bits): not a record anyone could write
    return codec.encode_segment_start(header) + b"".join(frames)


def _calls(root: Path) -> list[tuple[str, Any]]:
    run_path = root / "runs" / "r"
    store = tracklog.Store(root)
    return [
        ("replay", lambda: tracklog.replay(run_path)),
        ("read_events", lambda: list(tracklog.read_events(run_path, on_corrupt="ignore"))),
        ("read_events raise", lambda: list(tracklog.read_events(run_path, on_corrupt="raise"))),
        ("scan", lambda: tracklog.scan(run_path)),
        ("run", lambda: store.run("r")),
        ("runs", lambda: store.runs(order_by=["start_time", "name DESC"])),
        ("runs where", lambda: store.runs(where="status = 'crashed' OR params.a > 1")),
        ("history", lambda: [store.history("r", k) for k in store.run("r").metrics]),
        ("tail", lambda: list(store.tail("r", follow=False, from_start=True))),
        ("compact", lambda: tracklog.compact(root)),
        ("runs after compact", store.runs),
        ("cli", lambda: [cli([*a, "--root", str(root)]) for a in (["runs"], ["show", "r"], ["verify"])]),
    ]


def _only_typed_errors(root: Path) -> None:
    for name, call in _calls(root):
        try:
            call()
        except TracklogError:
            pass
        except Exception as exc:  # the property under test: nothing else escapes
            raise AssertionError(f"{name} raised {type(exc).__name__}: {exc}") from exc


SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@SETTINGS
@given(records=st.lists(RECORDS, min_size=1, max_size=6))
def test_crc_valid_records_with_any_contents_never_escape_the_error_tree(records: list[Any]) -> None:
    base = Path(tempfile.mkdtemp(prefix="tl-crcfuzz-"))
    try:
        run_path = base / "runs" / "r"
        run_path.mkdir(parents=True)
        (run_path / "seg-000001.tlog").write_bytes(_segment(records))
        _only_typed_errors(base)
        # The fold skips what it cannot use and keeps the rest: the two good points survive.
        state = tracklog.replay(run_path)
        assert state.history("loss").step.tolist()[:1] == [0]
        assert tracklog.Store(base).run("r") == state
        # scan reports what readers skip: a record is either decoded or counted corrupt.
        (report,) = tracklog.scan(run_path)
        events = list(tracklog.read_events(run_path, on_corrupt="ignore"))
        assert report.records >= 2 and len(events) >= 2
    finally:
        shutil.rmtree(base, ignore_errors=True)


DOCS = st.dictionaries(st.text(max_size=10), VALUES, max_size=5) | VALUES


def _store_with_caches() -> Path:
    base = Path(tempfile.mkdtemp(prefix="tl-cachefuzz-"))
    with tracklog.start_run("e", "n", root=base, run_id="r", params={"a": 2}) as run:
        for i in range(10):
            run.log_metric("loss", float(i))
    tracklog.compact(base)
    return base


def _mutated(doc: Any, edits: list[tuple[int, Any]]) -> Any:
    """``doc`` with some nested values replaced (keeps most of the shape, breaks a part)."""
    nodes: list[tuple[Any, Any]] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            for k in list(obj):
                nodes.append((obj, k))
                walk(obj[k])
        elif isinstance(obj, list):
            for i in range(len(obj)):
                nodes.append((obj, i))
                walk(obj[i])

    walk(doc)
    for pos, value in edits:
        if nodes:
            parent, key = nodes[pos % len(nodes)]
            parent[key] = value
    return doc


@SETTINGS
@given(
    which=st.sampled_from(["snapshot", "index"]),
    whole=st.booleans(),
    doc=DOCS,
    edits=st.lists(st.tuples(st.integers(0, 10_000), VALUES | NEAR), min_size=1, max_size=3),
)
def test_cache_files_with_valid_framing_and_any_document_are_ignored_or_correct(
    which: str, whole: bool, doc: Any, edits: list[tuple[int, Any]]
) -> None:
    base = _store_with_caches()
    try:
        run_path = base / "runs" / "r"
        want = tracklog.replay(run_path)
        if which == "snapshot":
            path, magic, version = (
                run_path / snapshot.SNAPSHOT_NAME,
                snapshot.SNAP_MAGIC,
                snapshot.SNAP_VERSION,
            )
        else:
            path, magic, version = base / "index" / "runs.tli", index.INDEX_MAGIC, index.INDEX_VERSION
        if not whole:
            doc = _mutated(docfile.decode_doc(path.read_bytes(), magic, version), edits)
        try:
            path.write_bytes(docfile.encode_doc(magic, version, doc))
        except (ValueError, TypeError, OverflowError):
            return  # not msgpack-able: no file can hold it
        _only_typed_errors(base)
        store = tracklog.Store(base)
        if whole:  # a document not made by tracklog never validates: the cache is ignored
            assert store.run("r") == want
            assert store.runs() == [want]
            assert store.history("r", "loss").value.tolist() == [float(i) for i in range(10)]
        # An edited cache may still validate and lie about what it folded (a cache is trusted
        # for the bytes it covers); it is never more than a cache: without it, the truth.
        path.unlink()
        (run_path / snapshot.SNAPSHOT_NAME).unlink(missing_ok=True)
        assert store.run("r") == want
    finally:
        shutil.rmtree(base, ignore_errors=True)
