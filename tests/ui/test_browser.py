"""The page in a real headless Chromium (Debian's chromium and chromium-driver, via Selenium):
charts drawn, data shown as text, live points without a reload, crashed after SIGKILL."""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tracklog

from ..conftest import wait_for
from .conftest import LiveServer, Writer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip(
    "selenium.webdriver", reason="selenium is not installed: pip install -e '.[uitest]'"
)
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "Chromium is not installed (apt-get install chromium chromium-driver; .ci/run does)",
        allow_module_level=True,
    )

XSS = "<img src=x onerror=window.__xss=1>"
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for f in FLAGS:
        opts.add_argument(f)
    opts.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    opts.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
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


def _make_store(root: Path) -> tuple[str, str]:
    with tracklog.start_run("exp", "alpha", root=root, params={"lr": 0.1, "opt": {"name": "adam"}}) as a:
        for s in range(200):
            a.log_metrics({"train/loss": 1 / (s + 1), "val/acc": s / 200}, step=s)
        a.log_metric("val/acc", math.nan, step=200)
    with tracklog.start_run("exp", "beta", root=root, params={"lr": 0.2, XSS: XSS}, tags={"note": XSS}) as b:
        for s in range(100):
            b.log_metrics({"train/loss": 2 / (s + 1), XSS: float(s)}, step=s)
    return a.id, b.id


def test_the_runs_page_lists_sorts_and_shows_a_filter_error_in_place(
    browser: Any, live_server: LiveServer, root: Path
) -> None:
    a, b = _make_store(root)
    browser.get(live_server.url + "/")
    wait_for(lambda: len(browser.find_elements("css selector", "#runs tbody tr")) == 2, what="the rows")
    rows = browser.find_elements("css selector", "#runs tbody tr")
    assert [r.get_attribute("data-run") for r in rows] == [b, a]  # newest first
    assert {e.text for e in browser.find_elements("css selector", "#runs .badge")} == {"finished"}
    browser.find_element("css selector", 'th[data-column="params.lr"]').click()
    wait_for(lambda: "sort=params.lr" in browser.current_url, what="the sort in the URL")
    wait_for(
        lambda: (
            [r.get_attribute("data-run") for r in browser.find_elements("css selector", "#runs tbody tr")]
            == [b, a]
        ),
        what="sorted rows",
    )
    box = browser.find_element("css selector", "#where")
    box.send_keys("params.lr > ")
    box.send_keys("\n")
    err = browser.find_element("css selector", "#where-error")
    wait_for(lambda: err.is_displayed(), what="the filter error")
    lines = err.text.split("\n")
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
    groups = [e.get_attribute("data-group") for e in browser.find_elements("css selector", "section.group")]
    assert groups == ["train", "val"]
    assert "opt.name" in browser.find_element("css selector", "table.params").text

    browser.get(f"{live_server.url}/runs/{b}")
    wait_for(lambda: XSS in _traces(browser), what="the chart of the hostile key")
    assert _js(browser, "return window.__xss") is None
    assert XSS in browser.find_element("css selector", "table.params").text
    assert XSS in browser.find_element("css selector", "table.tags").text
    titles = _js(browser, "return [...document.querySelectorAll('.chart .gtitle')].map(e => e.textContent)")
    assert XSS in titles  # plotly shows the key's characters, not an element
    assert not browser.find_elements("css selector", "main img")


def test_the_compare_page_overlays_runs_and_marks_differing_params(
    browser: Any, live_server: LiveServer, root: Path
) -> None:
    a, b = _make_store(root)
    browser.get(f"{live_server.url}/compare?runs={a}&runs={b}")
    wait_for(lambda: _traces(browser).get("train/loss") == 2, what="two runs overlaid")
    differs = {
        e.get_attribute("data-key") for e in browser.find_elements("css selector", "table.params tr.differs")
    }
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
    assert browser.find_element("css selector", ".run-head .badge").get_attribute("data-status") == "running"
    writer.kill()
    t0 = time.monotonic()
    wait_for(
        lambda: (
            browser.find_element("css selector", ".run-head .badge").get_attribute("data-status") == "crashed"
        ),
        what="crashed",
    )
    print(f"crashed shown {time.monotonic() - t0:.2f} s after SIGKILL")
    assert _js(browser, "return window.__same_page") is True
