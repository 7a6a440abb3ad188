"""The mirror's commit documents (read/manifest.py): round trip, and every malformed one refused."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracklog.errors import CorruptLogError, TracklogError, ValidationError
from tracklog.read import manifest as m


def _chunks(cuts: list[int]) -> tuple[tuple[int, int], ...]:
    ends = sorted(set(c for c in cuts if c > 0))
    return tuple(zip([0, *ends[:-1]], ends, strict=True))


@given(
    st.dictionaries(
        st.integers(1, 999).map(lambda i: f"seg-{i:06d}.tlog"),
        st.lists(st.integers(1, 10**9), min_size=1, max_size=8),
        max_size=4,
    ),
    st.integers(1, 10**6),
    st.lists(st.integers(0, 63), max_size=4, unique=True),
)
def test_commit_round_trips_through_its_bytes(files: dict[str, list[int]], seq: int, live: list[int]) -> None:
    commit = m.Commit(
        "run-1", seq, {k: _chunks(v) for k, v in files.items()}, ("ab" * 32,), tuple(sorted(live)), 1.5, "h:1"
    )
    data = m.encode_commit(commit)
    back = m.decode_commit(data, "x", run_id="run-1", seq=seq)
    assert back == commit
    assert m.encode_commit(back) == data
    assert back.extends(commit)


def test_a_longer_commit_extends_its_parent_and_not_the_reverse() -> None:
    parent = m.Commit("r", 1, {"seg-000001.tlog": ((0, 10),)})
    child = m.Commit("r", 2, {"seg-000001.tlog": ((0, 10), (10, 25)), "seg-000002.tlog": ((0, 5),)})
    assert child.extends(parent) and not parent.extends(child)
    assert child.size("seg-000001.tlog") == 25 and child.size("seg-000009.tlog") == 0


def _doc(**change: object) -> bytes:
    doc = {"format": 1, "run_id": "r", "seq": 1, "files": {"seg-000001.tlog": [[0, 10]]}}
    doc.update(change)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        _doc(format=2),
        _doc(run_id="../etc"),
        _doc(seq=0),
        _doc(files={"../../x.tlog": [[0, 10]]}),
        _doc(files={"seg-000001.tlog": [[0, 10], [11, 20]]}),  # a gap
        _doc(files={"seg-000001.tlog": [[5, 10]]}),  # not from 0
        _doc(files={"seg-000001.tlog": [[0, 0]]}),  # empty
        _doc(files={"seg-000001.tlog": [["0", 10]]}),
        _doc(artifacts=["../../../x"]),
        _doc(live=[-1]),
        _doc(time=float("nan")),
        _doc(run_id="other"),  # disagrees with its key
    ],
)
def test_a_malformed_commit_is_refused_naming_where_it_was(data: bytes) -> None:
    with pytest.raises(CorruptLogError, match="s3://b/runs/r/commits"):
        m.decode_commit(data, "s3://b/runs/r/commits/000000000001.json", run_id="r", seq=1)


def test_keys_are_built_only_from_checked_names() -> None:
    assert (
        m.chunk_key("r", "seg-000001.tlog", 0, 7)
        == "runs/r/chunks/seg-000001.tlog/0000000000000000-0000000000000007"
    )
    assert m.commit_key("r", 3) == "runs/r/commits/000000000003.json"
    assert m.commit_seq("runs/r/commits/000000000003.json") == 3
    assert m.commit_seq("runs/r/commits/3.json") is None
    assert m.chunk_range("0000000000000000-0000000000000007") == (0, 7)
    assert m.chunk_range("0000000000000007-0000000000000007") is None
    for bad in (
        lambda: m.run_key("../x"),
        lambda: m.chunk_key("r", "seg-1.tlog", 0, 1),
        lambda: m.chunk_key("r", "seg-000001.tlog", 3, 3),
    ):
        with pytest.raises(TracklogError):  # ValidationError, or UnsafePathError for a foreign segment name
            bad()
    with pytest.raises(ValidationError):
        m.artifact_key("../" * 20)


def test_the_marker_is_checked() -> None:
    m.check_marker(m.marker_bytes(), "u")
    with pytest.raises(CorruptLogError, match="newer"):
        m.check_marker(json.dumps({"format": m.MIRROR_FORMAT, "version": 99}).encode(), "u")
    with pytest.raises(CorruptLogError):
        m.check_marker(b"{}", "u")
