"""errors.py: one exception tree; each class is also the built-in it resembles."""

from __future__ import annotations

import inspect
import struct
from pathlib import Path

import pytest

import tracklog
from tracklog import errors

TREE = [  # class, its tracklog parent, the built-in it also is (errors.py docstring)
    (tracklog.ValidationError, tracklog.TracklogError, ValueError),
    (tracklog.ParamConflictError, tracklog.ValidationError, ValueError),
    (tracklog.FilterError, tracklog.ValidationError, ValueError),
    (tracklog.ValueTypeError, tracklog.TracklogError, TypeError),
    (tracklog.CorruptLogError, tracklog.TracklogError, ValueError),
    (tracklog.UnsupportedFormatError, tracklog.CorruptLogError, ValueError),
    (tracklog.RunNotFoundError, tracklog.TracklogError, LookupError),
    (tracklog.ArtifactNotFoundError, tracklog.RunNotFoundError, LookupError),
    (tracklog.RunExistsError, tracklog.TracklogError, FileExistsError),
    (tracklog.RunLockedError, tracklog.TracklogError, TimeoutError),
    (tracklog.RunClosedError, tracklog.TracklogError, RuntimeError),
    (tracklog.StoreError, tracklog.TracklogError, OSError),
    (tracklog.UnsafePathError, tracklog.StoreError, OSError),
    (tracklog.WriteError, tracklog.TracklogError, OSError),
    (tracklog.InteropError, tracklog.TracklogError, RuntimeError),
    (tracklog.MirrorError, tracklog.StoreError, OSError),
]


def _defined_in_errors() -> set[type]:
    return {c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__}


def test_every_public_exception_derives_from_tracklog_error() -> None:
    public = {getattr(tracklog, n) for n in tracklog.__all__}
    raised = {c for c in public if inspect.isclass(c) and issubclass(c, BaseException)}
    assert raised == _defined_in_errors()  # every class of errors.py is exported, and no other
    for cls in raised - {tracklog.TracklogWarning}:
        assert issubclass(cls, tracklog.TracklogError), cls
    assert set(errors.__all__) == {c.__name__ for c in raised}
    assert all(getattr(tracklog, c.__name__) is c for c in raised)


@pytest.mark.parametrize(("cls", "parent", "builtin"), TREE, ids=[t[0].__name__ for t in TREE])
def test_the_tree_matches_its_documentation(cls: type, parent: type, builtin: type) -> None:
    assert cls.__bases__[0] is parent and issubclass(cls, builtin)
    assert cls.__doc__  # each says when it is raised


def test_the_tree_covers_every_class_and_warnings_stay_warnings() -> None:
    assert {c for c, _, _ in TREE} | {
        tracklog.TracklogError,
        tracklog.TracklogWarning,
    } == _defined_in_errors()
    assert issubclass(tracklog.TracklogWarning, RuntimeWarning)
    assert not issubclass(tracklog.TracklogWarning, tracklog.TracklogError)  # warned, never raised


def test_corrupt_log_error_carries_path_and_offset() -> None:
    err = tracklog.CorruptLogError("bad bytes", "/x/seg-000001.tlog", 42)
    assert (str(err), err.path, err.offset) == ("bad bytes", "/x/seg-000001.tlog", 42)
    bare = tracklog.UnsupportedFormatError("newer")
    assert (bare.path, bare.offset) == (None, None)


def test_a_non_segment_file_raises_corrupt_log_error_with_its_path(tmp_path: Path) -> None:
    seg = tmp_path / "seg-000001.tlog"
    seg.write_bytes(b"not a log, no frames in here at all")
    with pytest.raises(tracklog.CorruptLogError, match="not a tracklog segment") as info:
        tracklog.replay(seg)
    assert (info.value.path, info.value.offset) == (str(seg), 0)


def _newer_major(run_id: str = "v") -> Path:
    with tracklog.start_run(run_id=run_id) as run:
        run.log_metric("a", 1.0)
    seg = run.path / "seg-000001.tlog"
    data = bytearray(seg.read_bytes())
    data[8:10] = struct.pack("<H", 2)  # format major 2
    seg.write_bytes(bytes(data))
    return seg


def test_a_newer_major_version_is_refused_by_every_reader() -> None:
    seg = _newer_major()
    for read in (tracklog.scan, tracklog.replay, lambda p: list(tracklog.read_events(p))):
        with pytest.raises(tracklog.UnsupportedFormatError, match=r"format version 2\.0 is not supported"):
            read(seg.parent)


def test_unsupported_format_error_carries_the_segment_path_and_offset() -> None:
    seg = _newer_major()
    with pytest.raises(tracklog.UnsupportedFormatError) as info:
        tracklog.scan(seg)
    assert (info.value.path, info.value.offset) == (str(seg), 0)


def test_errors_are_catchable_as_the_builtin_they_resemble(tmp_path: Path) -> None:
    with pytest.raises(LookupError):
        tracklog.Store().run("missing")
    with tracklog.start_run(run_id="e") as run:
        with pytest.raises(TypeError):
            run.log_metric("a", "text")
        with pytest.raises(ValueError):
            run.log_metric("", 1.0)
        run.log_params({"p": 1})
        with pytest.raises(ValueError):  # ParamConflictError
            run.log_params({"p": 2})
    with pytest.raises(FileExistsError):
        tracklog.start_run(run_id="e")
    with pytest.raises(RuntimeError):
        run.log_metric("a", 1.0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError):
        tracklog.start_run(root=tmp_path / "file")
