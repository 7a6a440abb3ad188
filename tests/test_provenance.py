"""write/provenance.py: a session records the git state it ran from, its command and Python."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tracklog
from tracklog.cli.render import git_text, session_lines
from tracklog.state.types import RunState, SessionInfo
from tracklog.write.provenance import git_state

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "code"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "train.py").write_text("print(1)\n")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "first")
    return repo


@needs_git
def test_a_run_records_commit_branch_and_clean_state(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repo(tmp_path)
    monkeypatch.chdir(repo)
    with tracklog.start_run(root=root, run_id="r") as run:
        run.log_metric("loss", 1.0)
    (ses,) = tracklog.replay(root / "runs" / "r").sessions
    assert ses.source is not None
    assert ses.source["git"] == {"commit": _git(repo, "rev-parse", "HEAD"), "branch": "main", "dirty": False}
    assert ses.source["python"] == platform.python_version()
    assert ses.source["tracklog"] == tracklog.__version__
    assert ses.source["argv"] == sys.argv[:64]


@needs_git
def test_a_changed_tracked_file_is_dirty_and_a_detached_head_has_no_branch(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (repo / "train.py").write_text("print(2)\n")
    assert git_state(str(repo)) == {
        "commit": _git(repo, "rev-parse", "HEAD"),
        "branch": "main",
        "dirty": True,
    }
    _git(repo, "checkout", "-q", "--", "train.py")
    (repo / "untracked.txt").write_text("x")  # untracked files do not count
    _git(repo, "checkout", "-q", "--detach")
    assert git_state(str(repo)) == {"commit": _git(repo, "rev-parse", "HEAD"), "branch": None, "dirty": False}


@needs_git
def test_no_checkout_an_empty_repository_or_no_git_give_no_git_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # do not find a repo above tmp
    assert git_state(str(plain)) is None
    empty = tmp_path / "empty"
    empty.mkdir()
    _git(empty, "init", "-q")
    assert git_state(str(empty)) is None  # no commit to point back to
    repo = _repo(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))  # no git binary at all
    assert git_state(str(repo)) is None
    monkeypatch.undo()
    monkeypatch.setenv("TRACKLOG_GIT", "0")
    assert git_state(str(repo)) is None


@needs_git
def test_the_source_survives_compaction_and_the_index(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(_repo(tmp_path))
    with tracklog.start_run(root=root, run_id="r") as run:
        run.log_metric("loss", 1.0)
    want = tracklog.replay(root / "runs" / "r").sessions[0].source
    tracklog.compact(root)
    assert tracklog.Store(root).runs()[0].sessions[0].source == want  # from the index entry
    assert tracklog.Store(root).run("r").sessions[0].source == want  # from the snapshot


def test_a_malformed_source_in_a_log_is_dropped_field_by_field() -> None:
    from tracklog.log.codec import session_source

    got = session_source(
        {"argv": ["a", 1], "python": "3.11.7", "git": {"commit": "../x", "branch": None, "dirty": 0}}
    )
    assert got == {"argv": None, "python": "3.11.7", "tracklog": None, "git": None}
    assert session_source({"session": "s"}) is None  # an older writer: nothing recorded


def test_show_prints_where_a_session_came_from() -> None:
    src = {"argv": ["train.py", "--lr", "0.1 0.2"], "python": "3.11.7", "tracklog": "0.1", "git": None}
    state = RunState("r", None, None, None, "crashed", None, None, None, {}, {}, {}, [], {})
    state.sessions = [SessionInfo("a", host="h", pid=1, source=src), SessionInfo("b", host="h", pid=2)]
    header, first, second = session_lines(state)
    assert header.split()[-4:] == ["git", "python", "tracklog", "command"]
    assert first.split()[7:10] == ["-", "3.11.7", "0.1"]  # no git: "-"
    assert first.endswith("  train.py --lr '0.1 0.2'")
    assert second.split()[1] == "crashed" and second.split()[7:] == ["-"] * 4  # an older writer
    git = {"commit": "ab" * 20, "branch": "main", "dirty": True}
    assert git_text(git) == f"{'ab' * 6} (main, dirty)" and git_text(None) == "-"
    assert git_text({**git, "branch": None, "dirty": False}) == f"{'ab' * 6} (detached)"
