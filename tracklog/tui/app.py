"""``tracklog top``: a Textual app that watches runs live, for a terminal over SSH.

Left, the runs (live status, a metric column); right, the selected run's metrics as braille
line charts, with marked runs overlaid. Disk is read only in workers (threads) that hand
their results to the UI thread (``call_from_thread``): the listing once a second, and the
followed runs' histories and then their tails, read as columns of points (``follow_points``:
no Python object per point, so a run logging 100,000 points a second costs a few percent of
a core, not most of one). Memory stays bounded however long a run:
each series keeps at most ``KEEP_POINTS`` points, decimated for drawing (each pixel
column's min and max survive) when it grows past them. Alerts (NaN, bad ends, stalls)
appear in the status bar, judged by the same rules as ``tracklog watch``.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike
from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Input, Static

from ..errors import FilterError, TracklogError
from ..read.alerts import AlertRules, Judge
from ..read.downsample import window
from ..read.listing import Listing
from ..read.store import Store
from ..read.tail import Points, follow_points
from ..read.where import parse_filter
from ..state.types import RunState
from . import braille
from .lines import Line, Lines

TABLE_MAX = 500  # rows: the newest; a filter finds the rest
KEEP_POINTS = 20_000  # per series; past this it is decimated to DRAW_POINTS
DRAW_POINTS = 4_000
LIST_EVERY_S = 1.0
# Running runs are re-read this often for the listing's columns: a followed run's own end
# (a crash included) comes from its tail at once and re-reads it then (``_drain``), so this
# only paces the other runs' rows; at 1 s, re-reading a run logging 100,000 points/s cost
# 3% of a core.
LIVE_EVERY_S = 3.0
DRAW_EVERY_S = 0.25
TAIL_EVERY_S = 0.1  # a fast run's tail reads this often: bigger reads, less work per point
COLORS = ("cyan", "yellow", "magenta", "green", "red", "blue")
STATUS_STYLE = {
    "running": "bold blue",
    "finished": "green",
    "failed": "bold red",
    "killed": "dark_orange",
    "crashed": "bold magenta",
}
HELP = (
    "arrows, j/k  move        enter  select run      space  mark for overlay\n"
    "/  filter (where)        l  log y               s  smoothing\n"
    "+ / -  zoom into the last steps / out           r  reset zoom\n"
    "?  this help             q  quit"
)


@dataclass
class Series:
    """One key's points of one run, bounded: decimated when it outgrows KEEP_POINTS."""

    step: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    value: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    time: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    last_time: float = float("-inf")

    def add(self, step: ArrayLike, value: ArrayLike, when: ArrayLike) -> None:
        """Append points in log order (arrays, as the tail's columns are: no copy)."""
        st = np.asarray(step, dtype=np.int64)
        va = np.asarray(value, dtype=np.float64)
        ti = np.asarray(when, dtype=np.float64)
        keep = ti > self.last_time  # not twice: what the history held (see ui/live.py)
        if not keep.any():
            return
        if not keep.all():
            st, va, ti = st[keep], va[keep], ti[keep]
        self.step = np.concatenate([self.step, st])
        self.value = np.concatenate([self.value, va])
        self.time = np.concatenate([self.time, ti])
        self.last_time = max(self.last_time, float(ti.max()))
        if len(self.step) > KEEP_POINTS:
            d = window(self.step, self.value, self.time, DRAW_POINTS)
            self.step, self.value, self.time = d.step, d.value, d.time


class TopApp(App[None]):
    """The app. ``runs`` limits it to those runs; ``poll`` tails without inotify."""

    CSS_PATH = "top.tcss"
    TITLE = "tracklog top"
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        Binding("q", "quit", "quit"),
        Binding("j", "cursor(1)", "down", show=False),
        Binding("k", "cursor(-1)", "up", show=False),
        Binding("enter", "select", "select"),
        Binding("space", "mark", "mark"),
        Binding("slash", "filter", "filter"),
        Binding("l", "log", "log y"),
        Binding("s", "smooth", "smooth"),
        Binding("plus", "zoom(0.5)", "zoom", show=False),
        Binding("minus", "zoom(2)", "unzoom", show=False),
        Binding("r", "reset", "reset zoom"),
        Binding("question_mark", "help", "help"),
    ]

    def __init__(
        self,
        store: Store,
        experiment: str | None = None,
        where: str | None = None,
        runs: Sequence[str] = (),
        poll: bool = False,
        rules: AlertRules | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.listing = Listing(store, fresh_s=LIVE_EVERY_S)
        self.total: int | None = (
            0  # runs matching (None: not counted yet); the table shows the newest TABLE_MAX
        )
        self.listed = False  # the first listing has started
        self.experiment = experiment
        self.where = where
        self.only = [store.resolve(r) for r in runs]
        self.poll = poll
        self.rules = rules or AlertRules()
        self.states: dict[str, RunState] = {}
        self.selected: str | None = None
        self.marked: list[str] = []
        self.series: dict[str, dict[str, Series]] = {}  # run -> key -> points
        self.following: set[str] = set()
        self._inbox: collections.deque[tuple[str, Any]] = collections.deque()  # (run, event or error)
        # (run, key) -> the columns of points the tails read since the last drain
        self._points: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        self._lock = threading.Lock()
        self._ended: set[str] = set()  # runs whose tail saw them end or restart (list_runs)
        self.judges: dict[str, Judge] = {}
        self._ticked = 0.0
        self._shown: dict[str, Text] = {}  # widget id -> the text it shows
        self._shown_alert: str | None = None
        self.log_y = False
        self.smoothing = 0.0
        self.zoom = 1.0  # the fraction of the step range shown, ending at the last step
        self.dirty = True
        self.alert: str | None = None
        self.error: str | None = None
        self._stop = threading.Event()

    # -- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
            with Vertical(id="right"):
                yield Static(id="title")
                yield Lines(id="charts")
        yield Input(id="filter", placeholder="where: metrics.loss < 0.1 AND params.lr = 0.01")
        yield Static(HELP, id="help")
        yield Static(id="status")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#runs", DataTable)
        table.add_column("id", key="id")  # the status first: a narrow terminal still shows it
        table.add_column("status", key="status")
        table.add_column("last", key="metric")
        table.add_column("name", key="name")
        self.query_one("#filter", Input).display = False
        self.query_one("#help", Static).display = False
        self.list_runs()
        self.set_interval(LIST_EVERY_S, self.list_runs)
        self.set_interval(DRAW_EVERY_S, self.draw)
        table.focus()

    def on_unmount(self) -> None:
        self._stop.set()

    # -- the listing (a worker) -------------------------------------------------------------

    @work(thread=True, exclusive=True, group="list")
    def list_runs(self) -> None:
        """The listing (a worker); runs whose tail saw them end or restart are re-read now.
        They wait in ``_ended`` until a listing takes them: an exclusive worker may be
        cancelled by the next tick before it starts."""
        with self._lock:
            fresh, self._ended = self._ended, set()
        try:
            if not self.listed and not self.only:
                self.listed = True
                # The first screen: the newest rows at once (Store.runs stops at the limit),
                # then the whole listing, which counts them all.
                first = self.store.runs(self.experiment, self.where, limit=TABLE_MAX)
                if len(first) == TABLE_MAX:
                    self.total = None
                    self.call_from_thread(self.show_runs, first)
            # Kept: only what changed is read again.
            runs = self.listing.select(self.experiment, self.where, ids=self.only, fresh=fresh)
        except (TracklogError, OSError) as exc:
            self.call_from_thread(self._set_error, str(exc))
            return
        self.total = len(runs)
        self.call_from_thread(self.show_runs, runs[:TABLE_MAX])

    def show_runs(self, runs: list[RunState]) -> None:
        table = self.query_one("#runs", DataTable)
        ids = [r.id for r in runs]
        if ids != list(self.states):  # a new order or set of runs: redraw the table
            cursor = self.selected
            table.clear()
            for r in runs:
                table.add_row(*self._cells(r), key=r.id)
            if cursor in ids:
                table.move_cursor(row=ids.index(cursor))
        else:
            for r in runs:
                if r != self.states.get(r.id):
                    for col, cell in zip(("id", "status", "metric", "name"), self._cells(r), strict=True):
                        table.update_cell(r.id, col, cell)
        self.states = {r.id: r for r in runs}
        if self.selected is None and runs:
            self.select(runs[0].id)
        self.dirty = True

    def _cells(self, r: RunState) -> tuple[Any, ...]:
        mark = "* " if r.id in self.marked else ""
        key = _main_key(r)
        last = f"{key}={braille.fmt(r.metrics[key].last)}" if key else "-"
        return (  # the columns' order (on_mount)
            mark + r.id[:12],
            Text(r.status, style=STATUS_STYLE.get(r.status, "")),
            last,
            (r.name or "-")[:20],
        )

    # -- following runs (a worker) ------------------------------------------------------------

    def select(self, run_id: str) -> None:
        self.selected = run_id
        self.zoom = 1.0
        self.follow([run_id, *[m for m in self.marked if m != run_id]])

    @work(thread=True, exclusive=True, group="follow")
    def follow(self, run_ids: list[str]) -> None:
        """Histories first (decimated), then every run's tail, until another follow starts."""
        self._stop.set()
        self._stop = stop = threading.Event()
        fresh: dict[str, dict[str, Series]] = {}
        tails = []
        for rid in run_ids:
            try:
                # From now: the histories, read after, hold everything logged before.
                path = self.store.path_of(rid)
                tail = follow_points(path, forever=True, poll=self.poll, stop=stop, busy_poll=TAIL_EVERY_S)
                tails.append((rid, tail))
                state = self.store.run(rid)
                fresh[rid] = {}
                for key in state.metrics:
                    h = self.store.history(rid, key)
                    d = window(h.step, h.value, h.timestamp, DRAW_POINTS)
                    s = Series(d.step, d.value, d.time, float(h.timestamp.max()) if len(h) else float("-inf"))
                    fresh[rid][key] = s
            except (TracklogError, OSError) as exc:
                self.call_from_thread(self._set_error, f"{rid}: {exc}")
        self.call_from_thread(self._set_series, fresh)
        for rid, events in tails:
            threading.Thread(target=self._pump, args=(rid, events, stop), daemon=True).start()

    def _pump(self, rid: str, items: Any, stop: threading.Event) -> None:
        """One run's tail into the inbox; the UI drains it on its own clock (``draw``), so
        neither thread waits for the other. Points go in as columns, per key (one append per
        key and read); the rest, rare, into a queue."""
        try:
            for item in items:
                if stop.is_set():
                    return
                if type(item) is Points:
                    by_key = item.by_key()
                    with self._lock:
                        for key, cols in by_key.items():
                            self._points.setdefault((rid, key), []).append(cols)
                else:
                    self._inbox.append((rid, item))
        except (TracklogError, OSError) as exc:
            self._inbox.append((rid, exc))

    def _drain(self) -> None:
        """Move what the tails read into the series, judging it (on the UI thread)."""
        with self._lock:
            points, self._points = self._points, {}
        relist: set[str] = set()
        for _ in range(len(self._inbox)):
            rid, item = self._inbox.popleft()
            if isinstance(item, Exception):
                self.error = f"{rid}: {item}"
                continue
            judge = self.judges.get(rid)
            for a in judge.event(item) if judge is not None else ():
                self.alert = f"ALERT {a.kind}: {a.message}"
            if item.kind in ("run_end", "run_start"):
                relist.add(rid)
        for (rid, key), chunks in points.items():
            if rid not in self.series:
                continue  # a run no longer followed
            steps, values, times = (
                chunks[0] if len(chunks) == 1 else (np.concatenate(c) for c in zip(*chunks, strict=True))
            )
            judge = self.judges.get(rid)
            for a in judge.points(key, steps, values, times) if judge is not None else ():
                self.alert = f"ALERT {a.kind}: {a.message}"
            self.series[rid].setdefault(key, Series()).add(steps, values, times)
        now = time.monotonic()
        if now - self._ticked >= 1.0:  # stalls, judged once a second
            self._ticked = now
            for rid, j in self.judges.items():
                st = self.states.get(rid)
                for a in j.tick(st is not None and st.status == "running"):
                    self.alert = f"ALERT {a.kind}: {a.message}"
        if points or relist or self.alert != self._shown_alert:
            self._shown_alert = self.alert
            self.dirty = True
        if relist:
            with self._lock:
                self._ended |= relist
            self.list_runs()

    def _set_series(self, fresh: dict[str, dict[str, Series]]) -> None:
        self.series = fresh
        self.following = set(fresh)  # their tails were in place before their histories were read
        self.judges = {rid: Judge(rid, self.rules) for rid in fresh}
        self.dirty = True

    def _set_error(self, message: str) -> None:
        self.error = message
        self.dirty = True

    # -- drawing --------------------------------------------------------------------------

    def draw(self) -> None:
        self._drain()
        if not self.dirty:
            return
        self.dirty = False
        self._draw_status()
        rid = self.selected
        title = self.query_one("#title", Static)
        charts = self.query_one("#charts", Lines)
        if rid is None:
            self._show(title, Text("no runs" + (f" matching {self.where!r}" if self.where else "")))
            charts.show([])
            return
        state = self.states.get(rid)
        status = state.status if state else "?"
        head = Text(f"{rid}  ", style="bold")
        head.append(status, style=STATUS_STYLE.get(status, ""))
        if state and state.name:
            head.append(f"  {state.name}")
        flags = [f for f, on in (("log y", self.log_y), (f"smooth {self.smoothing:g}", self.smoothing)) if on]
        if self.zoom < 1:
            flags.append(f"last {self.zoom:.0%} of steps")
        if flags:
            head.append("  [" + ", ".join(flags) + "]", style="dim")
        self._show(title, head)
        charts.show(self._charts(rid, charts.size.width or 60, charts.size.height or 20))

    def _show(self, widget: Static, text: Text) -> None:
        """New text in a widget of a fixed size (top.tcss): a repaint of that widget alone,
        not a layout pass over the whole screen; none at all if the text is unchanged."""
        key = widget.id or ""
        if self._shown.get(key) != text:
            self._shown[key] = text
            widget.update(text, layout=False)

    def _charts(self, rid: str, width: int, height: int) -> list[Line]:
        runs = [rid, *[m for m in self.marked if m != rid]]
        keys = sorted({k for r in runs for k in self.series.get(r, {})})
        if not keys:
            return [[("no metrics yet", "")]]
        rows_each = 7  # title, 5 rows of braille, x axis
        n = max(1, min(len(keys), height // rows_each))
        chart_rows = max(3, height // n - 2)
        out: list[Line] = []
        for key in keys[:n]:
            out += self._chart(key, runs, width, chart_rows)
        if len(keys) > n:
            out.append([(f"{len(keys) - n} more keys (a taller terminal shows them)", "dim")])
        return out

    def _chart(self, key: str, runs: list[str], width: int, rows: int) -> list[Line]:
        data: list[tuple[str, Series]] = []
        for r in runs:
            s = self.series.get(r, {}).get(key)
            if s is not None and len(s.step):
                data.append((r, s))
        head: Line = [(key, "bold")]
        bad = sum(braille.nonfinite(s.value) for _, s in data)
        if bad:
            head.append((f"  {bad} NaN/inf not drawn", "red"))
        if not data:
            return [head, [("(no points)", "")]]
        lo_x = min(float(s.step.min()) for _, s in data)
        hi_x = max(float(s.step.max()) for _, s in data)
        x0 = hi_x - (hi_x - lo_x) * self.zoom
        # One scale for all the runs, each its colour (where runs share a cell, the first's).
        drawn = braille.render_many(
            [s.step for _, s in data],
            [braille.smooth(s.value, self.smoothing) for _, s in data],
            width,
            rows,
            self.log_y,
            (x0, hi_x),
        )
        if len(data) == 1:  # one run: the whole chart, labels included, in its colour
            body = [[("".join(text for text, _ in row), COLORS[0])] for row in drawn]
        else:
            body = [[(text, COLORS[i % len(COLORS)] if i >= 0 else "") for text, i in row] for row in drawn]
        return [head, *body, [(braille.x_axis(x0, hi_x, width), "dim")]]

    def _draw_status(self) -> None:
        text = Text()
        if self.error:
            text.append(self.error, style="red")
        elif self.alert:
            text.append(self.alert, style="bold red")
        else:
            n, shown = self.total, len(self.states)
            where = f" where {self.where}" if self.where else ""
            if n is None:
                text.append(f"the newest {shown} runs{where} listed, counting the rest")
            else:
                text.append(f"{n} run{'s' if n != 1 else ''}{where}")
            if n is not None and shown < n:
                text.append(f", the newest {shown} listed (/ filters)")
            if self.marked:
                text.append(f"  {len(self.marked)} marked")
        self._show(self.query_one("#status", Static), text)

    # -- actions ------------------------------------------------------------------------------

    def action_cursor(self, delta: int) -> None:
        table = self.query_one("#runs", DataTable)
        table.move_cursor(row=max(0, min(table.row_count - 1, table.cursor_row + delta)))

    def _cursor_run(self) -> str | None:
        table = self.query_one("#runs", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(key.value) if key.value is not None else None

    def action_select(self) -> None:
        rid = self._cursor_run()
        if rid is not None:
            self.select(rid)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.select(str(event.row_key.value))

    def action_mark(self) -> None:
        rid = self._cursor_run()
        if rid is None:
            return
        if rid in self.marked:
            self.marked.remove(rid)
        else:
            self.marked.append(rid)
        state = self.states.get(rid)
        if state is not None:
            self.query_one("#runs", DataTable).update_cell(rid, "id", self._cells(state)[0])
        if self.selected is not None:
            self.follow([self.selected, *[m for m in self.marked if m != self.selected]])

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.value = self.where or ""
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        try:
            if text:
                parse_filter(text)
        except FilterError as exc:
            self.error = str(exc).split("\n")[0] + (
                f"  (at {exc.position})" if exc.position is not None else ""
            )
            self.dirty = True
            return  # the box stays open, the text as typed, to be fixed
        self.where = text or None
        self.error = None
        event.input.display = False
        self.states = {}
        self.selected = None
        self.query_one("#runs", DataTable).focus()
        self.list_runs()

    def key_escape(self) -> None:
        box = self.query_one("#filter", Input)
        if box.display:
            box.display = False
            self.error = None
            self.dirty = True
            self.query_one("#runs", DataTable).focus()
        self.query_one("#help", Static).display = False

    def action_log(self) -> None:
        self.log_y = not self.log_y
        self.dirty = True

    def action_smooth(self) -> None:
        self.smoothing = {0.0: 0.6, 0.6: 0.9, 0.9: 0.0}.get(self.smoothing, 0.0)
        self.dirty = True

    def action_zoom(self, factor: float) -> None:
        self.zoom = min(1.0, max(1 / 1024, self.zoom * factor))
        self.dirty = True

    def action_reset(self) -> None:
        self.zoom = 1.0
        self.dirty = True

    def action_help(self) -> None:
        panel = self.query_one("#help", Static)
        panel.display = not panel.display


def _main_key(r: RunState) -> str | None:
    """The key the runs table shows: a loss if there is one, else the first key."""
    keys = sorted(r.metrics)
    for k in keys:
        if "loss" in k.lower():
            return k
    return keys[0] if keys else None
