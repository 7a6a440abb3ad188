"""tracklog.integrations._common: what the framework hooks share, without any framework."""

from __future__ import annotations

import enum
import subprocess
from pathlib import Path

import numpy as np
import pytest

import tracklog
from tracklog.integrations import _common
from tracklog.integrations._common import Numbers, flatten, param_value

from ..conftest import PY, python_env


class Colour(enum.Enum):
    RED = "red"


def test_flatten_joins_nested_keys_and_makes_every_value_storable() -> None:
    params = {
        "opt": {"lr": 0.1, "betas": (0.9, 0.99), "sched": {"kind": "cos"}},
        "id2label": {0: "neg", 1: "pos"},
        "empty": {},
        "path": Path("/data"),
        "colour": Colour.RED,
        "fn": len,
        "obj": object,
        "arr": np.arange(3),
        "big": np.zeros(100),
        "scalar": np.float32(0.5),
        "huge": 2**70,
    }
    flat = flatten(params)
    assert flat == {
        "opt/lr": 0.1,
        "opt/betas": [0.9, 0.99],
        "opt/sched/kind": "cos",
        "id2label/0": "neg",
        "id2label/1": "pos",
        "empty": {},
        "path": "/data",
        "colour": "red",
        "fn": "len",
        "obj": "object",
        "arr": [0, 1, 2],
        "big": str(np.zeros(100)),
        "scalar": 0.5,
        "huge": str(2**70),
    }
    with tracklog.start_run("x", params=flat) as run:  # every value is one a param holds
        pass
    assert tracklog.Store().run(run.id).params == flat
    assert param_value(True) is True and param_value(None) is None


def test_numbers_keeps_numbers_and_warns_once_per_key_for_the_rest() -> None:
    numbers = Numbers("Test")
    with pytest.warns(tracklog.TracklogWarning, match=r"Test logged 'note' as a str") as caught:
        out = numbers({"a": 1, "b": 0.5, "c": np.float32(2.0), "d": np.array([3.0]), "note": "x", "n": None})
        numbers({"note": "again"})
    assert out == {"a": 1, "b": 0.5, "c": 2.0, "d": 3.0}
    assert type(out["c"]) is float and len(caught) == 1  # None is skipped silently


def test_a_begun_run_that_never_ended_is_settled_failed() -> None:
    run = tracklog.start_run("x")
    _common.begin(run, "a fit")
    _common.settle(run)
    state = tracklog.Store().run(run.id)
    assert state.status == "failed"
    assert state.error == {
        "type": "RuntimeError",
        "message": "a fit raised before its end hook ran, and the exception was caught",
    }
    ended = tracklog.start_run("y")
    _common.begin(ended, "a fit")
    _common.end(ended)
    _common.settle(ended)  # ended properly: left alone
    assert not ended.closed
    ended.close()


@pytest.mark.parametrize(("ends", "status"), [(False, "failed"), (True, "finished")])
def test_at_exit_a_begun_run_ends_failed_unless_its_loop_ended(
    tmp_path: Path, ends: bool, status: str
) -> None:
    code = (
        "import tracklog\nfrom tracklog.integrations import _common\n"
        "run = tracklog.start_run('x')\n_common.begin(run, 'a fit')\n"
        + ("_common.end(run)\n" if ends else "")
    )
    out = subprocess.run([PY, "-c", code], env=python_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    (run,) = tracklog.Store().runs()
    assert run.status == status
