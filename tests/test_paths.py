"""paths: the names tracklog accepts, and opening store files without following anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import tracklog
from tracklog.errors import UnsafePathError, ValidationError
from tracklog.store import paths


@pytest.mark.parametrize("name", ["seg-000001.tlog", "seg-1234567.tlog"])
def test_segment_names_tracklog_writes_are_accepted(name: str) -> None:
    assert paths.check_segment_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "../seg-000001.tlog",
        "/abs/seg-000001.tlog",
        "seg-1.tlog",
        "seg-000001.tlog\0",
        "seg-000001.tlog/..",
        "",
        5,
        None,
    ],
)
def test_other_segment_names_are_refused(name: object) -> None:
    with pytest.raises(UnsafePathError):
        paths.check_segment_name(name)


def test_history_names_and_generations() -> None:
    assert paths.history_gen("history-000012.bin") == 12
    assert paths.history_path(Path("/r"), 3).name == "history-000003.bin"
    for bad in ("history-1.bin", "../history-000001.bin", "history-000001.bin.tmp", 1):
        with pytest.raises(UnsafePathError):
            paths.check_history_name(bad)


@pytest.mark.parametrize("bad", ["", "AB", "../x", "a b", "0" * 65, 7])
def test_session_ids_are_lowercase_hex(bad: object) -> None:
    assert paths.check_session("0f" * 8) == "0f" * 8
    with pytest.raises(ValidationError):
        paths.check_session(bad)


@pytest.mark.parametrize("bad", ["", "a\0b", 5, b"bytes"])
def test_bad_roots_are_refused(bad: object) -> None:
    with pytest.raises(ValidationError):
        paths.resolve_root(bad)  # type: ignore[arg-type]


def test_open_file_refuses_symlinks_fifos_and_directories(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"keep")
    (tmp_path / "link").symlink_to(target)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    for name, what in (("link", "symbolic link"), ("fifo", "FIFO"), ("dir", "directory")):
        for flags in (os.O_RDONLY, os.O_RDWR | os.O_CREAT):
            with pytest.raises(UnsafePathError, match=what):
                paths.open_file(tmp_path / name, flags)
    assert target.read_bytes() == b"keep"
    fd = paths.open_file(tmp_path / "new", os.O_RDWR | os.O_CREAT)
    try:
        assert os.get_blocking(fd) is not False  # the O_NONBLOCK used to open is cleared again
    finally:
        os.close(fd)
    assert paths.read_file(target) == b"keep" and paths.read_file(target, 2) == b"ke"


def test_make_dirs_refuses_a_symlink_at_any_level(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "artifacts").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="artifacts"):
        paths.make_dirs(root, "artifacts", "tmp")
    assert list(outside.iterdir()) == []
    assert paths.make_dirs(root, "index", "dirty") == root / "index" / "dirty"
    assert paths.is_real_dir(root / "index" / "dirty")


def test_replace_file_replaces_a_symlink_entry_never_its_target(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"keep")
    link = tmp_path / "cache"
    link.symlink_to(target)
    paths.replace_file(link, b"new")
    assert not link.is_symlink() and link.read_bytes() == b"new"
    assert target.read_bytes() == b"keep"


def test_list_segments_skips_entries_that_are_not_regular_files_warning_once(tmp_path: Path) -> None:
    (tmp_path / "seg-000001.tlog").write_bytes(b"")
    os.mkfifo(tmp_path / "seg-000002.tlog")
    (tmp_path / "seg-000003.tlog").symlink_to(tmp_path / "seg-000001.tlog")
    with pytest.warns(tracklog.TracklogWarning) as record:
        got = paths.list_segments(tmp_path)
    assert [p.name for p in got] == ["seg-000001.tlog"]
    assert len(record) == 2
    assert [n for _, n in paths.segment_names(tmp_path)] == [f"seg-00000{i}.tlog" for i in (1, 2, 3)]
    paths.list_segments(tmp_path)  # the same entries again: no new warning (the filter is "error")
