"""tui/app.py through Textual's own harness (App.run_test and its pilot): keys, filtering,
selecting, live points from a writer process, and crashed after it is SIGKILLed."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from textual.widgets import Static

import tracklog
from tracklog.tui import TopApp
from tracklog.tui.lines import Lines

from ..conftest import PY, python_env
from ..helpers import Writer


async def until(pilot: Any, cond: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """A bounded wait for the app's workers (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def run_app(app: TopApp, body: Callable[[Any], Awaitable[None]], size: tuple[int, int] = (120, 40)) -> None:
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await body(pilot)

    asyncio.run(main())


def _store(root: Path) -> list[str]:
    ids = []
    for lr in (0.1, 1.0, 10.0):
        with tracklog.start_run("exp", f"lr{lr}", root=root, params={"lr": lr}) as r:
            for s in range(50):
                r.log_metrics({"train/loss": lr / (s + 1), "val/acc": s / 50}, step=s)
            ids.append(r.id)
    return ids[::-1]  # newest first, as the table lists them


def test_keys_move_select_mark_and_switch_the_chart(root: Path) -> None:
    ids = _store(root)
    app = TopApp(tracklog.Store(root))

    async def body(pilot: Any) -> None:
        table = app.query_one("#runs")
        await until(pilot, lambda: table.row_count == 3 and app.series.get(ids[0]), "the runs and a chart")
        assert app.selected == ids[0]  # the newest is shown first
        await pilot.press("j", "j")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1
        await pilot.press("enter")
        await until(pilot, lambda: app.selected == ids[1] and ids[1] in app.series, "the selected run")
        await pilot.press("space")
        assert app.marked == [ids[1]]
        await pilot.press("j", "enter")
        await until(pilot, lambda: set(app.series) == {ids[2], ids[1]}, "the overlay's runs")
        await pilot.press("l", "s", "plus")
        assert app.log_y and app.smoothing == 0.6 and app.zoom == 0.5
        await pilot.press("r")
        assert app.zoom == 1.0
        app.draw()
        text = app.query_one("#charts", Lines).plain
        assert "train/loss" in text and any(0x2800 < ord(ch) <= 0x28FF for ch in text)
        await pilot.press("question_mark")
        assert app.query_one("#help").display
        await pilot.press("q")

    run_app(app, body)


def test_the_first_screen_lists_the_newest_runs_then_counts_them_all(root: Path, monkeypatch: Any) -> None:
    from tracklog.tui import app as app_module

    ids = _store(root)
    monkeypatch.setattr(app_module, "TABLE_MAX", 2)
    seen: list[list[str]] = []
    app = TopApp(tracklog.Store(root))
    show = app.show_runs
    app.show_runs = lambda runs: (seen.append([r.id for r in runs]), show(runs))[1]  # type: ignore[method-assign]

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: app.total == 3, "the whole listing counted")
        app.draw()
        assert seen[0] == ids[:2] and all(s == ids[:2] for s in seen)  # the newest two, first and after
        assert "3 runs, the newest 2 listed" in str(app.query_one("#status", Static).render())

    run_app(app, body)


def test_a_filter_narrows_the_runs_and_a_bad_one_is_shown_in_place(root: Path) -> None:
    ids = _store(root)
    app = TopApp(tracklog.Store(root))

    async def body(pilot: Any) -> None:
        table = app.query_one("#runs")
        await until(pilot, lambda: table.row_count == 3, "the runs")
        await pilot.press("slash")
        box = app.query_one("#filter")
        assert box.display and box.has_focus
        for ch in "params.lr >":
            await pilot.press(ch if ch != " " else "space")
        await pilot.press("enter")
        assert box.display and "bad filter at position 11" in (app.error or "")  # kept open, to be fixed
        for ch in " 0.5":
            await pilot.press(ch if ch != " " else "space")
        await pilot.press("enter")
        await until(pilot, lambda: table.row_count == 2, "the filtered runs")
        assert not box.display and app.where == "params.lr > 0.5"
        assert set(app.states) == {ids[0], ids[1]}

    run_app(app, body)


def test_live_points_appear_and_a_killed_writer_shows_crashed(root: Path, monkeypatch: Any) -> None:
    from tracklog.tui import app as app_module

    # The listing alone would not re-read the run for an hour: "crashed" comes from its tail.
    monkeypatch.setattr(app_module, "LIVE_EVERY_S", 3600.0)
    writer = Writer(root, "livewriter")
    try:
        writer.log(0, 30)
        app = TopApp(tracklog.Store(root), runs=["livewriter"])

        async def body(pilot: Any) -> None:
            def points() -> int:
                s = app.series.get("livewriter", {}).get("loss")
                return len(s.step) if s is not None else 0

            await until(pilot, lambda: points() == 30, "the history")
            writer.log(30, 40)
            await until(pilot, lambda: points() == 70, "live points")
            s = app.series["livewriter"]["loss"]
            assert s.step.tolist() == list(range(70))  # none lost, none twice
            assert app.states["livewriter"].status == "running"
            writer.kill()
            await until(pilot, lambda: app.states["livewriter"].status == "crashed", "crashed", timeout=10)
            app.draw()
            assert "crashed" in str(app.query_one("#title").render())

        run_app(app, body)
    finally:
        if writer.proc.poll() is None:
            writer.kill()


def test_a_nan_in_a_followed_run_is_an_alert_in_the_status_bar(root: Path) -> None:
    writer = Writer(root, "nanny")
    try:
        app = TopApp(tracklog.Store(root), runs=["nanny"])

        async def body(pilot: Any) -> None:
            await until(pilot, lambda: "nanny" in app.following, "the run followed")
            writer.log_nan(5)
            await until(pilot, lambda: app.alert is not None, "the alert")
            assert app.alert == "ALERT nan: loss is nan at step 5"

        run_app(app, body)
    finally:
        writer.kill()


def test_not_a_terminal_says_to_use_tail_and_exits_2(root: Path) -> None:
    tracklog.start_run(root=root).close()
    r = subprocess.run(
        [PY, "-m", "tracklog", "--root", str(root), "top"],
        capture_output=True,
        text=True,
        env=python_env(),
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert r.returncode == 2 and "needs a terminal" in r.stderr and "tracklog tail" in r.stderr
