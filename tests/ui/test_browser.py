"""The page in a real headless Chromium (Debian's chromium and chromium-driver, via Selenium):
charts drawn, data shown as text, live points without a reload, crashed after SIGKILL."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tracklog

from ..conftest import ROOT_DIR, wait_for
from .conftest import LiveServer, Writer

sys.path.insert(0, str(ROOT_DIR / "tools"))
import chromium

if chromium.missing():
    pytest.skip(chromium.missing(), allow_module_level=True)

XSS = "<img src=x onerror=window.__xss=1>"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    driver = chromium.driver(tmp_path / "chromium-profile")
    try:
        yield driver
    finally:
        driver.quit()


def _js(browser: Any, script: str) -> Any:
    return browser.execute_script(script)


def _traces(browser: Any) -> dict[str, int]:
    """Chart key -> number of traces plotly drew in it."""
    return _js(
        browser,
        "return Object.fromEntries([...document.querySelectorAll('.chart')]"
        ".filter(e => e.data).map(e => [e.dataset.key, e.data.length]))",
    )


def _points(browser: Any, key: str) -> int:
    return _js(
        browser,
        f"const e = [...document.querySelectorAll('.chart')].find(e => e.dataset.key === {key!r});"
        "return e && e.data ? e.data[0].x.length : -1",
    )


def _rows(browser: Any) -> list[str]:
    return _js(browser, "return [...document.querySelectorAll('#runs tbody tr')].map(e => e.dataset.run)")


def _texts(browser: Any, selector: str) -> list[str]:
    # Read in one script, not element by element: a redrawn table leaves found elements stale.
    return _js(browser, f"return [...document.querySelectorAll({selector!r})].map(e => e.textContent)")


def _status(browser: Any) -> str | None:
    # Read in one script: the header is redrawn as events arrive, so a found element may go stale.
    return _js(browser, "const b = document.querySelector('.run-head .badge'); return b && b.dataset.status")


def _make_store(root: Path) -> tuple[str, str]:
    with tracklog.start_run("exp", "alpha", root=root, params={"lr": 0.1, "opt": {"name": "adam"}}) as a:
        for s in range(200):
            a.log_metrics({"train/loss": 1 / (s + 1), "val/acc": s / 200}, step=s)
        a.log_metric("val/acc", math.nan, step=200)
    with tracklog.start_run(
        "exp",
        "beta",
        root=root,
        params={"lr": 0.2, XSS: XSS},
        tags={"note": XSS, "file": "evil\u202egpj.exe"},
    ) as b:
        for s in range(100):
            b.log_metrics({"train/loss": 2 / (s + 1), XSS: float(s)}, step=s)
    return a.id, b.id


def test_the_runs_page_lists_sorts_and_shows_a_filter_error_in_place(
    browser: Any, live_server: LiveServer, root: Path
) -> None:
    a, b = _make_store(root)
    browser.get(live_server.url + "/")
    wait_for(lambda: len(_rows(browser)) == 2, what="the rows")
    assert _rows(browser) == [b, a]  # newest first
    assert set(_texts(browser, "#runs .badge")) == {"finished"}
    browser.find_element("css selector", 'th[data-column="params.lr"]').click()
    wait_for(lambda: "sort=params.lr" in browser.current_url, what="the sort in the URL")
    wait_for(lambda: _rows(browser) == [b, a], what="sorted rows")
    box = browser.find_element("css selector", "#where")
    box.send_keys("params.lr > ")
    box.send_keys("\n")
    wait_for(
        lambda: _js(browser, "return !document.querySelector('#where-error').hidden"), what="the filter error"
    )
    lines = _texts(browser, "#where-error")[0].split("\n")
    assert "position 12" in lines[0] and lines[1].rstrip() == "params.lr >" and lines[2] == " " * 12 + "^"
    assert _js(browser, "return window.__xss") is None


def test_the_run_page_draws_a_chart_per_key_with_data_as_text(
    browser: Any, live_server: LiveServer, root: Path
) -> None:
    a, b = _make_store(root)
    browser.get(f"{live_server.url}/runs/{a}")
    wait_for(
        lambda: _traces(browser) == {"train/loss": 1, "val/acc": 2}, what="two charts"
    )  # NaN: a marker trace
    assert _points(browser, "train/loss") == 200
    groups = _js(browser, "return [...document.querySelectorAll('section.group')].map(e => e.dataset.group)")
    assert groups == ["train", "val"]
    assert "opt.name" in _texts(browser, "table.params")[0]

    browser.get(f"{live_server.url}/runs/{b}")
    wait_for(lambda: XSS in _traces(browser), what="the chart of the hostile key")
    assert _js(browser, "return window.__xss") is None
    assert XSS in _texts(browser, "table.params")[0]
    assert XSS in _texts(browser, "table.tags")[0]
    # A right-to-left override would make the name read "evilexe.jpg": it is shown, not obeyed.
    assert "evil\\u{202E}gpj.exe" in _texts(browser, "table.tags")[0]
    titles = _js(browser, "return [...document.querySelectorAll('.chart .gtitle')].map(e => e.textContent)")
    assert XSS in titles  # plotly shows the key's characters, not an element
    assert not browser.find_elements("css selector", "main img")


def test_the_compare_page_overlays_runs_and_marks_differing_params(
    browser: Any, live_server: LiveServer, root: Path
) -> None:
    a, b = _make_store(root)
    browser.get(f"{live_server.url}/compare?runs={a}&runs={b}")
    wait_for(lambda: _traces(browser).get("train/loss") == 2, what="two runs overlaid")
    differs = set(
        _js(
            browser,
            "return [...document.querySelectorAll('table.params tr.differs')].map(e => e.dataset.key)",
        )
    )
    assert differs == {"lr", "opt.name", XSS}
    assert _js(browser, "return window.__xss") is None


def test_compare_shows_keys_named_like_object_properties_only_where_a_run_has_them(
    browser: Any, live_server: LiveServer, root: Path
) -> None:
    # `k in obj` sees Object.prototype: a run without "constructor" showed
    # "function Object() { [native code] }", and a key "toString" was fetched from every run.
    odd = {"constructor": 1, "toString": 2, "__proto__": 3}
    with tracklog.start_run("exp", "odd", root=root, params=odd, tags={"hasOwnProperty": "x"}) as a:
        a.log_metric("toString", 1.0, step=0)
    with tracklog.start_run("exp", "plain", root=root, params={"lr": 1}) as b:
        b.log_metric("loss", 1.0, step=0)
    browser.get(f"{live_server.url}/compare?runs={a.id}&runs={b.id}")
    wait_for(lambda: _traces(browser) == {"loss": 1, "toString": 1}, what="each key drawn once")
    rows = _js(
        browser,
        "return [...document.querySelectorAll('table.params tr[data-key], table.tags tr[data-key]')]"
        ".map(tr => [tr.dataset.key, [...tr.cells].slice(1).map(td => td.textContent)])",
    )
    assert dict(rows) == {
        "__proto__": ["3", "-"],
        "constructor": ["1", "-"],
        "toString": ["2", "-"],
        "lr": ["-", "1"],
        "hasOwnProperty": ["x", "-"],
    }
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors


def test_a_run_url_that_does_not_decode_says_no_such_run(browser: Any, live_server: LiveServer) -> None:
    browser.get(f"{live_server.url}/runs/%E0%A4%A")  # a truncated UTF-8 sequence: URIError
    wait_for(lambda: browser.find_elements("css selector", "main h1"), what="the page's answer")
    assert browser.find_element("css selector", "main h1").text == "No such run"
    assert "no run '%E0%A4%A'" in browser.find_element("css selector", "main pre.error").text


def test_live_points_arrive_without_a_reload_and_a_killed_writer_shows_crashed(
    browser: Any, live_server: LiveServer, writer: Writer
) -> None:
    writer.log(0, 50)
    browser.get(f"{live_server.url}/runs/livewriter")
    wait_for(lambda: _points(browser, "loss") == 50, what="the history")
    _js(browser, "window.__same_page = true")
    writer.log(50, 25)
    wait_for(lambda: _points(browser, "loss") == 75, what="live points")
    writer.log(75, 25)
    wait_for(lambda: _points(browser, "loss") == 100, what="more live points")
    xs = _js(browser, "return document.querySelector('.chart').data[0].x")
    assert xs == list(range(100))  # none lost, none twice
    assert _js(browser, "return window.__same_page") is True
    assert _status(browser) == "running"
    writer.kill()
    t0 = time.monotonic()
    wait_for(lambda: _status(browser) == "crashed", what="crashed")
    print(f"crashed shown {time.monotonic() - t0:.2f} s after SIGKILL")
    assert _js(browser, "return window.__same_page") is True


def test_controls_switch_the_axis_scale_and_smoothing_and_a_zoom_fetches_exact_points(
    browser: Any, live_server: LiveServer, root: Path
) -> None:
    with tracklog.start_run("exp", "long", root=root, run_id="long") as r:
        for s in range(5000):
            r.log_metric("loss", 1.0 + (s % 7), step=s)
    browser.get(f"{live_server.url}/runs/long")
    wait_for(lambda: 0 < _points(browser, "loss") <= 2000, what="the decimated chart")
    chart = "document.querySelector('.chart')"
    # A zoom asks the server for the window; 101 points fit, so they come back exact.
    _js(browser, f"Plotly.relayout({chart}, {{'xaxis.range': [100, 200]}})")
    wait_for(lambda: _points(browser, "loss") == 101, what="the exact points of the window")
    assert _js(browser, f"return {chart}.data[0].x") == list(range(100, 201))
    _js(browser, f"Plotly.relayout({chart}, {{'xaxis.autorange': true}})")
    wait_for(lambda: _points(browser, "loss") <= 2000 and _points(browser, "loss") != 101, what="zoomed out")

    browser.find_element("css selector", "#log-y").click()
    wait_for(lambda: _js(browser, f"return {chart}.layout.yaxis.type") == "log", what="log y")
    _js(
        browser,
        "const s = document.querySelector('#smoothing'); s.value = '0.9'; s.dispatchEvent(new Event('input'))",
    )
    wait_for(lambda: _traces(browser)["loss"] == 2, what="raw and smoothed traces")
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("css selector", "#x-axis")).select_by_value("time")
    wait_for(
        lambda: _js(browser, f"return {chart}.layout.xaxis.title.text") == "seconds since start",
        what="time axis",
    )
    xs = _js(browser, f"return {chart}.data[1].x")
    duration = tracklog.Store(root).run("long").end_time - tracklog.Store(root).run("long").start_time
    assert xs and all(0 <= x <= duration + 1e-6 for x in xs)
