"""The read-only commands on a mirror (``--root s3://...``, ``$TRACKLOG_DIR`` a URL): the same
output as on the source store; the commands that write exit 2 naming the mirror read-only."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

import tracklog
from tests.conftest import wait_for
from tests.helpers import crash
from tests.read_mirror.mirrorfix import TestMirror
from tracklog.cli.main import main


def tl(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _unpathed(lines: str) -> list[dict[str, Any]]:
    out = []
    for line in lines.splitlines():
        d = json.loads(line)
        d.pop("path", None)
        for side in ("a", "b"):
            if isinstance(d.get(side), dict):
                d[side].pop("path", None)
        out.append(d)
    return out


@pytest.fixture
def mirrored(mirror: TestMirror, root: Path) -> TestMirror:
    with tracklog.start_run("exp", "alpha", root=root, run_id="01alpha", params={"lr": 0.1}) as r:
        for i in range(5):
            r.log_metrics({"loss": 1.0 / (i + 1), "acc": i / 10}, step=i)
    with tracklog.start_run("exp", "beta", root=root, run_id="02beta", params={"lr": 0.2}) as r:
        r.log_metrics({"loss": 0.5}, step=0)
    c = tracklog.start_run("other", "gamma", root=root, run_id="03gamma")
    c.log_metric("loss", 3.0)
    crash(c)
    mirror.mirror_store(tracklog.Store(root))
    return mirror


def test_read_commands_answer_as_on_the_source(
    mirrored: TestMirror, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = mirrored.objects()
    url = mirrored.url
    for argv in (
        ["runs", "--json"],
        ["runs", "--json", "-w", "params.lr < 0.15"],
        ["show", "alpha", "--json"],
        ["diff", "alpha", "beta", "--json"],
    ):
        code, out, err = tl(capsys, "--root", url, *argv)
        assert code == 0, err
        local = tl(capsys, "--root", str(root), *argv)
        assert _unpathed(out) == _unpathed(local[1])
    for argv in (
        ["runs"],
        ["show", "01al"],
        ["diff", "alpha", "beta"],
        ["tail", "alpha", "--from-start", "--no-follow"],
    ):
        code, out, err = tl(capsys, "--root", url, *argv)
        assert code == 0, err
        local = tl(capsys, "--root", str(root), *argv)[1]
        assert out.replace(str(root), "") == local.replace(str(root), "") or argv[0] == "show"
    code, out, _ = tl(capsys, "--root", url, "runs")
    assert "crashed" in out and "finished" in out
    # tail follows a finished run to its end and stops; a crashed one ends crashed.
    assert tl(capsys, "--root", url, "tail", "alpha", "--from-start", "--poll")[1].endswith(
        "run ended: finished\n"
    )
    assert "run ended: crashed" in tl(capsys, "--root", url, "tail", "gamma", "--from-start")[1]
    assert mirrored.objects() == before


def test_export_and_verify_read_a_mirror(
    mirrored: TestMirror, root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = mirrored.objects()
    for where, dest in ((mirrored.url, "m"), (str(root), "s")):
        code, _, err = tl(
            capsys,
            "--root",
            where,
            "export",
            "alpha",
            "beta",
            "--format",
            "csv",
            "--out",
            str(tmp_path / dest),
        )
        assert code == 0, err
    assert (tmp_path / "m" / "metrics.csv").read_text() == (tmp_path / "s" / "metrics.csv").read_text()
    code, _, err = tl(capsys, "--root", mirrored.url, "verify", "alpha")
    assert code == 0, err
    assert mirrored.objects() == before


def test_commands_that_write_are_refused(
    mirrored: TestMirror, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    before = mirrored.objects()
    commands = [["compact"], ["rm", "alpha", "--yes"], ["gc", "--delete"], ["gc"], ["demo"]]
    commands += [["import", "tensorboard", str(tmp_path)], ["import", "mlflow", f"sqlite:///{tmp_path}/x.db"]]
    for argv in commands:
        code, _, err = tl(capsys, "--root", mirrored.url, *argv)
        assert code == 2, argv
        assert "read-only" in err and mirrored.url in err, err
    assert mirrored.objects() == before


def test_tracklog_dir_a_url_and_storage_options(
    mirrored: TestMirror, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRACKLOG_DIR", mirrored.url)
    code, out, err = tl(capsys, "runs", "--json")
    assert code == 0, err
    assert len(out.splitlines()) == 3
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # the endpoint from --storage-option alone
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cold"))  # a cold cache
    code, out, err = tl(capsys, "--storage-option", f"endpoint_url={endpoint}", "show", "beta", "--json")
    assert code == 0, err
    assert json.loads(out)["name"] == "beta"
    code, _, err = tl(capsys, "--storage-option", "nonsense", "runs")
    assert code == 2 and "KEY=VALUE" in err
    code, _, err = tl(capsys, "--root", "/tmp/x", "--storage-option", "anon=true", "runs")
    assert code == 2 and "mirror" in err


def test_no_mirror_there_is_exit_2_naming_the_url(s3: Any, capsys: pytest.CaptureFixture[str]) -> None:
    s3.create_bucket(Bucket="nomirror")
    code, _, err = tl(capsys, "--root", "s3://nomirror/p", "runs")
    assert code == 2 and "no mirror at s3://nomirror/p (from --root)" in err


def test_tail_follows_new_commits(mirror: TestMirror, root: Path) -> None:
    run = tracklog.start_run("e", root=root, run_id="live")
    run.log_metrics({"loss": 1.0}, step=0)
    run.flush()
    source = tracklog.Store(root)
    mirror.mirror_run(source, "live", live=(0,))
    m = tracklog.Store(mirror.url)
    m.poll_interval = 0.02  # type: ignore[attr-defined]
    got: list[tracklog.Event] = []
    first = threading.Event()

    def consume() -> None:
        for ev in m.tail("live", from_start=True, timeout=60):
            got.append(ev)
            first.set()

    t = threading.Thread(target=consume)
    t.start()
    first.wait(60)
    wait_for(lambda: any(e.kind == "metric" for e in got), what="the first point")
    for step in range(1, 4):
        run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    run.close()
    mirror.mirror_run(source, "live", live=())
    t.join(60)
    assert not t.is_alive()
    assert [e.step for e in got if e.kind == "metric"] == [0, 1, 2, 3]
    assert got[-1].kind == "run_end" and got[-1].value["status"] == "finished"


def test_the_ui_api_reads_a_mirror(mirrored: TestMirror, root: Path) -> None:
    pytest.importorskip("starlette")
    pytest.importorskip("httpx2")
    from starlette.testclient import TestClient

    from tracklog.ui import create_app

    before = mirrored.objects()
    with TestClient(create_app(tracklog.Store(mirrored.url)), base_url="http://127.0.0.1:5151") as client:
        runs = client.get("/api/runs").json()
        with TestClient(create_app(tracklog.Store(root)), base_url="http://127.0.0.1:5151") as local:
            want = local.get("/api/runs").json()
            assert runs == want
            h = client.get("/api/runs/01alpha/history", params={"key": "loss"})
            assert h.status_code == 200
            assert h.json() == local.get("/api/runs/01alpha/history", params={"key": "loss"}).json()
    assert mirrored.objects() == before
