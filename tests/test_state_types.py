"""state/types.py: the result types round-trip through plain data, and a malformed cached
document (index entry, snapshot fold state) is refused by the one decoder both use."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tracklog
from tracklog.log.codec import pack, same_value, unpack
from tracklog.state import docfile, snapshot
from tracklog.state.fold import FoldState
from tracklog.state.types import (
    RUN_FIELD_TYPES,
    MetricSummary,
    RunState,
    SessionInfo,
    decode_run_fields,
)

SHA = "ab" * 32


def _folded(root: Path) -> RunState:
    """A compacted run with every kind of field: two sessions, the last failed."""
    with tracklog.start_run("e", "n", run_id="r", params={"p": [1, {"a": None}]}, tags={"t": "x"}) as run:
        run.log_metric("loss", math.nan)  # min and max skip it
        run.log_metrics({"loss": 1.0, "acc": 0.5}, step=1)
        run.log_metric("loss", 3.0, step=5)  # superseded by the resume below
        art = root.parent / "w.bin"
        art.write_bytes(b"w")
        run.log_artifact(art, "model/w.bin")
    with pytest.raises(KeyError), tracklog.start_run(run_id="r", resume=True, resume_step=3) as again:
        again.log_metric("loss", 2.0)
        raise KeyError("boom")
    tracklog.compact(root)
    return tracklog.replay(run.path)


def _entry(state: RunState) -> dict[str, Any]:
    """What the store index holds for a run: ``to_dict`` without the path, through msgpack."""
    d = state.to_dict()
    del d["path"]
    out: dict[str, Any] = unpack(pack(d))
    return out


def test_an_index_entry_round_trips(root: Path) -> None:
    state = _folded(root)
    entry = _entry(state)
    back = RunState.from_dict(entry, state.path)
    assert back == state
    assert same_value(back.to_dict(), {**entry, "path": str(state.path)})
    assert back.status == "failed" and back.error == {"type": "KeyError", "message": "'boom'"}
    assert [s.resume_step for s in back.sessions] == [None, 3] and back.sessions[1].superseded == 1
    assert back.artifacts["model/w.bin"]["size"] == 1


def test_an_entry_folds_its_run_on_the_first_history_call(root: Path) -> None:
    state = _folded(root)
    calls = []

    def loader() -> RunState:
        calls.append(1)
        return state

    back = RunState.from_dict(_entry(state), state.path, loader)
    assert calls == []
    assert back.history("acc").value.tolist() == [0.5] and calls == [1]
    back.history("loss")
    assert calls == [1]  # once
    with pytest.raises(tracklog.RunNotFoundError):
        back.history("nope")


def test_summaries_and_sessions_round_trip() -> None:
    m = MetricSummary(3, 0, 2, 1.5, math.nan, 2.0, 9.0)
    assert MetricSummary.from_dict(m.to_dict()) == m
    s = SessionInfo("ab", "h", 1, 2.0, 3.0, 4.0, "killed", None, "SIGTERM", True, 7, 2)
    assert SessionInfo.from_dict(s.to_dict()) == s
    assert (
        SessionInfo.from_dict({"session": "ab", "proc_start": 5, "resume": False, "superseded": 0}).proc_start
        == 5.0
    )  # an int widens


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(d: dict[str, Any]) -> None:
        for p in path[:-1]:
            d = d[p]
        d[path[-1]] = value

    return change


def _drop(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.pop(name)


def _drop_in(list_name: str, name: str) -> Callable[[dict[str, Any]], None]:
    return lambda d: d[list_name][0].pop(name)


# Changes to the run fields an index entry and a snapshot's fold state share.
BAD_RUN_FIELDS = {
    "missing params": _drop("params"),
    "unknown field": _set(("extra",), 1),
    "experiment not a str": _set(("experiment",), 1),
    "name a bytes": _set(("name",), b"n"),
    "params not a map": _set(("params",), [1]),
    "a param value of bin": _set(("params", "p"), b"x"),
    "a tag of bin": _set(("tags", "t"), b"x"),
    "an artifact name that climbs": _set(("artifacts", "../x"), {"sha256": SHA, "size": 1}),
    "an artifact without a size": _set(("artifacts", "model/w.bin"), {"sha256": SHA}),
    "an artifact digest of capitals": _set(("artifacts", "model/w.bin"), {"sha256": SHA.upper(), "size": 1}),
    "sessions not a list": _set(("sessions",), {}),
    "a session not a map": _set(("sessions", 0), "ab"),
    "a session without its id": _drop_in("sessions", "session"),
    "a session of unknown status": _set(("sessions", 0, "status"), "paused"),
    "a session's resume_step past int64": _set(("sessions", 1, "resume_step"), 2**63),
    "a session's error without a message": _set(("sessions", 1, "error"), {"type": "E"}),
    "dropped negative": _set(("dropped",), -1),
    "dropped a bool": _set(("dropped",), True),
}

# Changes to fields only an index entry holds.
BAD_ENTRY_FIELDS = {
    "not a map": None,
    "missing id": _drop("id"),
    "id not a str": _set(("id",), 1),
    "status unknown": _set(("status",), "paused"),
    "status None": _set(("status",), None),
    "error without a type": _set(("error",), {"message": "m"}),
    "start_time a str": _set(("start_time",), "0"),
    "metrics not a map": _set(("metrics",), []),
    "a metric summary with a negative count": _set(("metrics", "acc", "count"), -1),
    "a metric summary with an unknown field": _set(("metrics", "acc", "mean"), 1.0),
    "a metric summary's step a float": _set(("metrics", "acc", "last_step"), 4.0),
}


@pytest.mark.parametrize(
    "change", [*BAD_RUN_FIELDS.values(), *BAD_ENTRY_FIELDS.values()], ids=[*BAD_RUN_FIELDS, *BAD_ENTRY_FIELDS]
)
def test_a_malformed_index_entry_is_refused(
    root: Path, change: Callable[[dict[str, Any]], None] | None
) -> None:
    entry = _entry(_folded(root))
    doc: Any = [entry]
    if change is not None:
        change(entry)
        doc = entry
    with pytest.raises(ValueError):
        RunState.from_dict(doc)


@pytest.mark.parametrize("change", BAD_RUN_FIELDS.values(), ids=BAD_RUN_FIELDS)
def test_the_same_malformed_run_fields_in_a_snapshot_refuse_it(
    root: Path, change: Callable[[dict[str, Any]], None]
) -> None:
    state = _folded(root)
    assert state.path is not None
    path = state.path / snapshot.SNAPSHOT_NAME
    doc = docfile.decode_doc(path.read_bytes(), snapshot.SNAP_MAGIC, snapshot.SNAP_VERSION)
    assert snapshot.load(state.path) is not None
    change(doc["lanes"][0][1])
    path.write_bytes(docfile.encode_doc(snapshot.SNAP_MAGIC, snapshot.SNAP_VERSION, doc))
    assert snapshot.load(state.path) is None  # a cache that does not validate is not used
    assert tracklog.Store(root).run("r") == state  # the logs are folded instead


def test_a_snapshot_dropped_count_past_int64_is_refused_though_an_entry_may_hold_one(root: Path) -> None:
    state = _folded(root)
    assert state.path is not None
    entry = _entry(state)
    entry["dropped"] = 2**63
    assert RunState.from_dict(entry).dropped == 2**63
    path = state.path / snapshot.SNAPSHOT_NAME
    doc = docfile.decode_doc(path.read_bytes(), snapshot.SNAP_MAGIC, snapshot.SNAP_VERSION)
    doc["lanes"][0][1]["dropped"] = 2**63
    path.write_bytes(docfile.encode_doc(snapshot.SNAP_MAGIC, snapshot.SNAP_VERSION, doc))
    assert snapshot.load(state.path) is None


def test_the_shared_run_fields_are_what_run_state_and_fold_state_share(root: Path) -> None:
    shared = {f.name for f in dataclasses.fields(RunState)} & {f.name for f in dataclasses.fields(FoldState)}
    assert set(RUN_FIELD_TYPES) == shared
    entry = _entry(_folded(root))
    only = {k: entry[k] for k in RUN_FIELD_TYPES}
    decoded = decode_run_fields(only, RUN_FIELD_TYPES, "doc")
    assert set(decoded) == shared and decoded["sessions"][1].status == "failed"
    assert FoldState(**decoded).params == entry["params"]
