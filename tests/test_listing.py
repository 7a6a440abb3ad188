"""read/listing.py: a kept listing re-reads only what the store says changed."""

from __future__ import annotations

from pathlib import Path

import pytest

import tracklog
from tracklog.read.listing import Listing


def test_the_listing_is_kept_while_the_store_holds_its_shape(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(3):
        with tracklog.start_run(run_id=f"r{i}") as r:
            r.log_metric("x", float(i))
    tracklog.compact(root)
    store = tracklog.Store(root)
    full = []
    real = store.runs
    monkeypatch.setattr(store, "runs", lambda: full.append(1) or real())
    now = [0.0]
    listing = Listing(store, fresh_s=1.0, clock=lambda: now[0])
    assert [r.id for r in listing.runs()] == ["r2", "r1", "r0"] and len(full) == 1
    v = listing.version
    now[0] = 5.0
    assert [r.id for r in listing.runs()] == ["r2", "r1", "r0"] and len(full) == 1  # kept
    assert listing.version == v

    live = tracklog.start_run(run_id="r3")  # a new run: the runs directory changed
    assert listing.runs()[0].id == "r3" and len(full) == 2 and listing.version > v
    v = listing.version
    live.log_metric("x", 1.0)
    live.flush()
    now[0] = 7.0  # past fresh_s: the running run is re-read, not the store
    (r3,) = [r for r in listing.runs() if r.id == "r3"]
    assert r3.metrics["x"].count == 1 and len(full) == 2 and listing.version > v
    live.log_metric("x", 2.0)
    live.flush()
    (r3,) = [r for r in listing.runs() if r.id == "r3"]
    assert r3.metrics["x"].count == 1  # within fresh_s: kept
    (r3,) = [r for r in listing.runs(fresh={"r3"}) if r.id == "r3"]
    assert r3.metrics["x"].count == 2 and len(full) == 2  # asked for: re-read now
    live.close()
    now[0] = 9.0
    assert next(r for r in listing.runs() if r.id == "r3").status == "finished" and len(full) == 2

    tracklog.compact(root)  # the index is rewritten, the dirty markers go: listed again
    listing.runs()
    assert len(full) == 3
    now[0] = 100.0  # and at least every full_s whatever the shape says
    listing.runs()
    assert len(full) == 4


def test_select_answers_as_store_runs_does(root: Path) -> None:
    for i in range(6):
        with tracklog.start_run(f"e{i % 2}", root=root, run_id=f"s{i}", params={"lr": i}) as r:
            r.log_metric("loss", 1.0 / (i + 1))
    store = tracklog.Store(root)
    listing = Listing(store)
    for exp, where, order in [
        (None, None, None),
        ("e1", None, None),
        (None, "params.lr > 2", "metrics.loss DESC"),
    ]:
        assert [r.id for r in listing.select(exp, where, order)] == [
            r.id for r in store.runs(exp, where, order)
        ]
    assert [r.id for r in listing.select(ids={"s1", "s4"})] == ["s4", "s1"]
    with pytest.raises(tracklog.FilterError):
        listing.select(where="params.lr >")
