"""ui/api.py and ui/app.py through Starlette's TestClient: every route, bad input, traversal,
the Host check, read-only, and data that is never markup."""

from __future__ import annotations

import hashlib
import http.client
import math
import os
import shutil
from pathlib import Path

import pytest
from starlette.testclient import TestClient

import tracklog
from tracklog.ui import create_app

from .conftest import BASE, LiveServer


def raw_get(server: LiveServer, path: str, host: str = "127.0.0.1") -> tuple[int, bytes]:
    """GET ``path`` exactly as written (http.client sends it unnormalised)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


XSS = "<img src=x onerror=alert(1)>"


def _store(root: Path, tmp_path: Path) -> dict[str, str]:
    """Three runs of two experiments; one with nested params, NaN/inf points and an artifact."""
    ids = {}
    with tracklog.start_run(
        "exp-a", "first", root=root, params={"lr": 0.1, "opt": {"name": "adam", "beta": 0.9}}
    ) as r:
        for s in range(50):
            r.log_metric("train/loss", 1.0 / (s + 1), step=s)
        r.log_metric("val/acc", math.nan, step=10)
        r.log_metric("val/acc", math.inf, step=20)
        r.log_metric("val/acc", 0.5, step=30)
        f = tmp_path / "weights.bin"
        f.write_bytes(b"\x00weights\xff" * 100)
        r.log_artifact(f, "model/weights.bin")
        ids["first"] = r.id
    with tracklog.start_run(
        "exp-a", "second", root=root, params={"lr": 0.01, XSS: XSS}, tags={XSS: XSS}
    ) as r:
        r.log_metric("train/loss", 0.5, step=0)
        ids["second"] = r.id
    with tracklog.start_run("exp-b", "third", root=root, params={"lr": 1.0}) as r:
        r.log_metric(XSS, 2.0, step=0)
        ids["third"] = r.id
    return ids


@pytest.fixture
def ids(root: Path, tmp_path: Path) -> dict[str, str]:
    return _store(root, tmp_path)


def _tree(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# -- runs ---------------------------------------------------------------------------------------


def test_runs_lists_newest_first_with_varied_params_and_common_metrics(
    client: TestClient, ids: dict[str, str]
) -> None:
    r = client.get("/api/runs")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    d = r.json()
    assert [x["id"] for x in d["runs"]] == [ids["third"], ids["second"], ids["first"]]
    assert d["total"] == 3 and d["pages"] == 1 and d["experiments"] == ["exp-a", "exp-b"]
    assert d["columns"][0] == "params.lr" and "metrics.`train/loss`" in d["columns"]
    first = d["runs"][2]
    assert first["status"] == "finished" and first["columns"]["params.lr"] == 0.1
    assert first["columns"]["metrics.`train/loss`"] == pytest.approx(1 / 50)
    assert d["runs"][0]["columns"]["metrics.`train/loss`"] is None  # the third run has no such key
    assert "params.`opt.name`" in d["available"]["params"]  # nested params as dotted paths


def test_runs_filter_sort_experiment_columns_and_pages(client: TestClient, ids: dict[str, str]) -> None:
    d = client.get("/api/runs", params={"where": "params.lr < 0.5", "sort": "params.lr ASC"}).json()
    assert [x["id"] for x in d["runs"]] == [ids["second"], ids["first"]]
    d = client.get("/api/runs", params={"experiment": "exp-b"}).json()
    assert [x["id"] for x in d["runs"]] == [ids["third"]] and d["experiments"] == ["exp-a", "exp-b"]
    d = client.get(
        "/api/runs", params=[("columns", "params.lr"), ("columns", "metrics.`train/loss`.count")]
    ).json()
    assert d["columns"] == ["params.lr", "metrics.`train/loss`.count"]
    assert d["runs"][2]["columns"] == {"params.lr": 0.1, "metrics.`train/loss`.count": 50}
    p2 = client.get("/api/runs", params={"per_page": 2, "page": 2}).json()
    assert [x["id"] for x in p2["runs"]] == [ids["first"]] and p2["pages"] == 2 and p2["total"] == 3


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"where": "metrics.loss <"}, "position 14"),
        ({"where": "params.lr = = 1"}, "position"),
        ({"sort": "bogus"}, "sort key"),
        ({"columns": "error"}, "unknown column"),
        ({"page": "0"}, "page must be between 1"),
        ({"page": "x"}, "page must be an integer"),
        ({"per_page": "100000"}, "per_page must be between"),
    ],
)
def test_runs_refuses_bad_queries_with_400_naming_the_problem(
    client: TestClient, ids: dict[str, str], params: dict[str, str], needle: str
) -> None:
    r = client.get("/api/runs", params=params)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]


def test_a_bad_filter_says_where(client: TestClient, ids: dict[str, str]) -> None:
    r = client.get("/api/runs", params={"where": "metrics.loss <"})
    assert r.json()["position"] == 14


# -- one run ------------------------------------------------------------------------------------


def test_run_detail_flattens_params_and_spells_non_finite_numbers(
    client: TestClient, ids: dict[str, str]
) -> None:
    d = client.get(f"/api/runs/{ids['first']}").json()
    assert d["params"] == {"lr": 0.1, "opt.name": "adam", "opt.beta": 0.9}
    acc = d["metrics"]["val/acc"]
    assert acc["count"] == 3 and acc["last"] == 0.5 and acc["max"] == "Infinity"
    assert d["artifacts"]["model/weights.bin"]["size"] == 900
    assert [s["ended"] for s in d["sessions"]] == ["finished"]
    # An id prefix resolves, as on the command line.
    assert client.get(f"/api/runs/{ids['first'][:-3]}").json()["id"] == ids["first"]


def test_unknown_run_is_a_json_404(client: TestClient, ids: dict[str, str]) -> None:
    r = client.get("/api/runs/nosuchrun")
    assert r.status_code == 404 and "no run 'nosuchrun'" in r.json()["error"]
    assert client.get("/api/runs/nosuchrun/history", params={"key": "x"}).status_code == 404
    assert client.get("/api/runs/nosuchrun/events").status_code == 404
    assert client.get("/no/such/page").status_code == 404


def test_history_is_exact_when_it_fits_and_decimated_when_not(
    client: TestClient, ids: dict[str, str]
) -> None:
    url = f"/api/runs/{ids['first']}/history"
    d = client.get(url, params={"key": "train/loss"}).json()
    assert d["step"] == list(range(50)) and d["total"] == 50 and not d["sampled"]
    assert d["value"][0] == 1.0 and d["last_time"] == max(d["time"])
    w = client.get(url, params={"key": "train/loss", "start": 10, "end": 12}).json()
    assert w["step"] == [10, 11, 12]
    small = client.get(url, params={"key": "train/loss", "max_points": 10}).json()
    assert len(small["step"]) <= 10 and small["sampled"] and small["value"][0] == 1.0
    bad = client.get(url, params={"key": "val/acc"}).json()
    assert bad["step"] == [30] and bad["nonfinite"] == {
        "step": [10, 20],
        "value": ["NaN", "Infinity"],
        "time": bad["nonfinite"]["time"],
    }


@pytest.mark.parametrize(
    ("params", "status", "needle"),
    [
        ({}, 400, "key="),
        ({"key": "nokey"}, 404, "no metric 'nokey'"),
        ({"key": "train/loss", "max_points": "-1"}, 400, "max_points must be between"),
        ({"key": "train/loss", "max_points": "lots"}, 400, "max_points must be an integer"),
        ({"key": "train/loss", "start": "5", "end": "1"}, 400, "start (5) is after end (1)"),
        ({"key": "train/loss", "start": "abc"}, 400, "start must be a number"),
        ({"key": "train/loss", "end": "nan"}, 400, "end must be a finite number"),
        ({"key": "train/loss", "x": "epoch"}, 400, "x must be step or time"),
    ],
)
def test_history_refuses_bad_input(
    client: TestClient, ids: dict[str, str], params: dict[str, str], status: int, needle: str
) -> None:
    r = client.get(f"/api/runs/{ids['first']}/history", params=params)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]


def test_points_with_non_finite_times_are_spelled_not_a_plain_text_500(
    client: TestClient, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A writer validates timestamps, but a reader takes any float64: a hand-made (or hostile)
    # store can hold points at inf or NaN seconds. The answer is still JSON, by the one rule.
    import tracklog.write.run as write_run

    with tracklog.start_run(root=root, run_id="odd") as r:
        r.log_metric("x", 1.0, step=0, timestamp=100.0)
        for t in (math.inf, math.nan, -math.inf):
            monkeypatch.setattr(write_run, "_now", lambda t=t: t)
            r.log_metric("x", 2.0)
        monkeypatch.undo()
        r.log_metric("x", 3.0, step=9, timestamp=200.0)
    for x in ("step", "time"):
        resp = client.get("/api/runs/odd/history", params={"key": "x", "x": x})
        assert resp.status_code == 200 and resp.headers["content-type"] == "application/json", resp.text
        d = resp.json()
        assert sorted(map(str, d["time"])) == sorted(["100.0", "200.0", "Infinity", "NaN", "-Infinity"])
        # A live page keeps streamed points logged after last_time: the newest real time.
        assert d["last_time"] == 200.0


# -- artifacts ----------------------------------------------------------------------------------


def test_artifact_download_is_the_file_as_an_attachment(client: TestClient, ids: dict[str, str]) -> None:
    r = client.get(f"/api/runs/{ids['first']}/artifacts/model/weights.bin")
    assert r.status_code == 200 and r.content == b"\x00weights\xff" * 100
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"] == "attachment; filename*=UTF-8''weights.bin"
    assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "raw",
    [
        "../../../../etc/passwd",
        "%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/etc/passwd",
        "model/../model/weights.bin",
        "model%2fweights.bin%00",
        "model",  # a directory of artifacts is not a file
    ],
)
def test_artifact_traversal_never_leaves_the_store(
    live_server: LiveServer, ids: dict[str, str], raw: str
) -> None:
    # Sent byte for byte over a socket: no client normalises the dots away.
    status, body = raw_get(live_server, f"/api/runs/{ids['first']}/artifacts/{raw}")
    assert status == 404, (raw, status, body[:200])
    assert b"root:" not in body and b"\x00weights\xff" not in body


def test_an_artifact_blob_replaced_by_a_symlink_is_not_followed(
    client: TestClient, ids: dict[str, str], root: Path, tmp_path: Path
) -> None:
    info = tracklog.Store(root).artifacts(ids["first"])["model/weights.bin"]
    blob = tracklog.Store(root).artifact_path(ids["first"], "model/weights.bin")
    secret = tmp_path / "secret"
    secret.write_bytes(b"S" * info["size"])  # the same size: only the symlink check can refuse it
    blob.unlink()
    blob.symlink_to(secret)
    r = client.get(f"/api/runs/{ids['first']}/artifacts/model/weights.bin")
    assert r.status_code == 500 and b"SSSS" not in r.content
    assert "not a regular file" in r.json()["error"]


@pytest.mark.parametrize("level", [1, 2, 3])  # artifacts/sha256/<ab>, artifacts/sha256, artifacts
def test_an_artifact_blob_under_a_symlinked_directory_is_not_served(
    client: TestClient, ids: dict[str, str], root: Path, tmp_path: Path, level: int
) -> None:
    # O_NOFOLLOW guards the last name only: a store whose blob directory (or one above it)
    # is a symlink must not serve a file from outside it.
    blob = tracklog.Store(root).artifact_path(ids["first"], "model/weights.bin")
    size = blob.stat().st_size
    inside = blob.parents[level - 1]
    outside = tmp_path / "outside"
    target = outside.joinpath(*blob.relative_to(inside).parts)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"S" * size)  # the same size as the record says
    shutil.rmtree(inside)
    inside.symlink_to(outside, target_is_directory=True)
    assert blob.read_bytes() == b"S" * size  # the path itself does lead outside
    r = client.get(f"/api/runs/{ids['first']}/artifacts/model/weights.bin")
    assert r.status_code == 500 and b"SSSS" not in r.content, r.content[:100]
    assert "symlink" in r.json()["error"]


# -- pages, static files, security --------------------------------------------------------------


def test_pages_are_a_shell_without_data_and_with_a_strict_policy(
    client: TestClient, ids: dict[str, str]
) -> None:
    for path in ("/", f"/runs/{ids['second']}", "/compare?runs=a"):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY"
        assert "onerror" not in r.text and ids["second"] not in r.text
    assert client.get("/static/js/main.js").status_code == 200
    assert client.get("/vendor/plotly.min.js").content.startswith(b"/**")


def test_static_files_cannot_be_left_by_dots(live_server: LiveServer) -> None:
    for raw in (
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/js/../../api.py",
        "/static//etc/passwd",
    ):
        status, body = raw_get(live_server, raw)
        assert status == 404, (raw, status)
        assert b"import" not in body and b"root:" not in body


def test_html_in_names_and_values_comes_back_as_the_same_text(
    client: TestClient, ids: dict[str, str]
) -> None:
    d = client.get(f"/api/runs/{ids['second']}").json()
    assert d["params"][XSS] == XSS and d["tags"][XSS] == XSS
    assert client.get(f"/api/runs/{ids['third']}").json()["metrics"][XSS]["last"] == 2.0


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("127.0.0.1:5151", True),
        ("localhost:5151", True),
        ("localhost", True),
        ("[::1]:5151", True),
        ("evil.example:5151", False),
        ("127.0.0.1.evil.example", False),
        ("localhost.evil.example", False),
        ("", False),
    ],
)
def test_requests_naming_another_host_are_refused(
    client: TestClient, ids: dict[str, str], host: str, ok: bool
) -> None:
    r = client.get("/api/runs", headers={"host": host})
    assert (r.status_code == 200) is ok, (host, r.status_code)
    if not ok:
        assert r.status_code == 403 and "DNS rebinding" in r.json()["error"]


def test_bound_to_every_interface_ip_literals_pass_and_other_names_do_not(
    root: Path, ids: dict[str, str]
) -> None:
    with TestClient(create_app(root, host="0.0.0.0", allow_hosts=["tunnel.local"]), base_url=BASE) as c:
        assert c.get("/api/runs", headers={"host": "10.1.2.3:5151"}).status_code == 200
        assert c.get("/api/runs", headers={"host": "tunnel.local:80"}).status_code == 200
        assert c.get("/api/runs", headers={"host": "evil.example"}).status_code == 403


def test_no_route_writes_and_the_store_is_unchanged(
    client: TestClient, ids: dict[str, str], root: Path
) -> None:
    before = _tree(root)
    paths = [
        "/",
        "/api/runs",
        f"/api/runs/{ids['first']}",
        f"/api/runs/{ids['first']}/history?key=train/loss",
        f"/api/runs/{ids['first']}/artifacts/model/weights.bin",
        f"/api/runs/{ids['first']}/events",
        "/api/events",
    ]
    for path in paths:
        for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
            r = client.request(method, path)
            assert r.status_code == 405, (method, path, r.status_code)
            assert r.headers["allow"] == "GET, HEAD" and "GET" in r.json()["error"]
    for path in paths[:5]:
        assert client.get(path).status_code == 200
    assert _tree(root) == before


def test_an_unexpected_error_is_a_json_500_that_reflects_nothing(root: Path, ids: dict[str, str]) -> None:
    app = create_app(root)

    def broken(q: object) -> None:
        raise RuntimeError(XSS)

    app.api.runs = broken  # type: ignore[method-assign]
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as c:
        r = c.get("/api/runs", params={"where": XSS})
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    assert r.json() == {"error": "internal error (the server's log has the details)"}
    assert r.headers["x-content-type-options"] == "nosniff"
