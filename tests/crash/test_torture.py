"""The short form of tools/torture.py: writers in every durability mode, several threads,
params, metrics, tags and artifacts, SIGKILLed at random instants (seeded)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from torture import torture  # noqa: E402

SEED = int(os.environ.get("TRACKLOG_TORTURE_SEED", "20261126"))


def test_sigkill_torture_keeps_every_promise(tmp_path: Path) -> None:
    out = torture(
        kills=int(os.environ.get("TRACKLOG_TORTURE_KILLS", "24")), seed=SEED, threads=3, root=tmp_path
    )
    t = out["total"]
    print(f"torture seed={SEED}: {t}")  # shown on failure, with the seed to replay it
    assert t["events_acked"] > 0
    assert t["acked_events_lost (process, machine)"] == 0, out["rounds"]
    assert t["holes (batch)"] == 0, out["rounds"]
    assert t["corrupt_ranges_found"] == 0, out["rounds"]
    assert t["status_crashed"] == t["kills"] and t["resumed_finished"] == t["kills"]
