"""Text for the terminal: times, durations, values, tables, JSON lines, a run's summary.

Every command prints through these, so one value looks the same in every listing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import math
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from ..interop._json import json_safe
from ..read.where import MISSING
from ..state.types import RunState


def fmt_time(t: float | None) -> str:
    if t is None:
        return "-"
    try:
        return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):
        return repr(t)  # a time no calendar holds (NaN, inf, 1e300): shown, not fatal


def fmt_duration(state: RunState) -> str:
    if state.start_time is None:
        return "-"
    end = state.end_time
    if end is None:
        end = max((m.last_time for m in state.metrics.values() if m.last_time), default=state.start_time)
    secs = max(0.0, end - state.start_time)
    if not math.isfinite(secs):
        return "?"
    h, rem = divmod(int(secs), 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def fmt_value(v: Any) -> str:
    if v is MISSING or v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=str)
    return str(v)


def count(n: int, noun: str) -> str:
    """``1 run``, ``0 runs``, ``3 runs``: a number and its noun, singular for one."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def terminal_width() -> int | None:
    """The width to fit a table to: ``$COLUMNS`` if set, else the terminal's when stdout is
    one; None (no fitting) when output goes to a pipe or a file, so scripts get whole cells."""
    cols = os.environ.get("COLUMNS", "")
    if cols.isdigit() and int(cols) > 0:
        return int(cols)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def _shrink(widths: list[int], limit: int, floor: int = 6) -> list[int]:
    """Narrow the widest columns, one character at a time, until the row fits ``limit``."""
    widths = list(widths)
    while sum(widths) + 2 * (len(widths) - 1) > limit:
        i = max(range(len(widths)), key=lambda j: widths[j])
        if widths[i] <= floor:
            break  # as narrow as is still readable: let the terminal wrap
        widths[i] -= 1
    return widths


def _cut(cell: str, width: int) -> str:
    return cell if len(cell) <= width else cell[: max(width - 1, 0)] + "…"


def table(headers: list[str], rows: list[list[str]], width: int | None = None) -> str:
    """Aligned columns; with ``width``, cells too long for it end in an ellipsis."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    if width is not None:
        widths = _shrink(widths, width)
        headers = [_cut(h, w) for h, w in zip(headers, widths, strict=True)]
        rows = [[_cut(c, w) for c, w in zip(r, widths, strict=True)] for r in rows]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def indented_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """A table's lines, two spaces in: a section under a heading."""
    return ["  " + line for line in table(headers, rows).splitlines()]


def print_json(obj: Any) -> None:
    """One JSON line on stdout; NaN and inf as strings (``json_safe``)."""
    print(json.dumps(json_safe(obj), default=str))


def progress_bar(i: int, total: int, width: int = 30) -> str:
    """``\\r[####    ] i/total``: redrawn in place on a terminal."""
    done = int(width * min(i, total) / total) if total > 0 else width
    return f"\r[{'#' * done}{' ' * (width - done)}] {i}/{total}"


@contextlib.contextmanager
def progress(label: str = "") -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback for the library's long calls (compaction,
    export, import, gc): it draws a bar on stderr, redrawn in place, when stderr is a
    terminal, and does nothing otherwise (a pipe, a file or a CI log never gets one). A
    total of one item draws none. A full bar ends its line, so a warning or summary that
    follows starts on a line of its own; on leaving early, the bar's line is ended too."""
    show = sys.stderr.isatty()
    drawn = False

    def update(done: int, total: int) -> None:
        nonlocal drawn
        if show and total > 1:
            full = done >= total
            text = progress_bar(done, total) + (f" {label}" if label else "")
            print(text, end="\n" if full else "", file=sys.stderr, flush=True)
            drawn = not full

    try:
        yield update
    finally:
        if drawn:
            print(file=sys.stderr, flush=True)


def one_line(exc: BaseException) -> str:
    """A filter error keeps its caret lines; other messages are one line."""
    text = str(exc)
    if text.count("\n") == 2 and text.splitlines()[-1].strip() == "^":
        return text
    return " ".join(text.split())


def state_lines(s: RunState, location: str | None = None) -> list[str]:
    """Everything about one run, as ``show``, ``replay`` and ``demo`` print it; ``location``
    replaces its path (``Store.location``: a mirror's URL)."""
    lines = [
        f"run        {s.id}",
        f"name       {s.name or '-'}",
        f"experiment {s.experiment or '-'}",
        f"status     {status_text(s)}",
        f"started    {fmt_time(s.start_time)}",
        f"ended      {fmt_time(s.end_time)}   (duration {fmt_duration(s)})",
        f"path       {location if location is not None else s.path}",
    ]
    if s.error:
        lines.append(f"error      {s.error.get('type')}: {s.error.get('message')}")
    if s.dropped:
        lines.append(f"dropped    {s.dropped} events (the disk refused writes)")
    if s.ranks:
        lines.append(f"ranks      {len(s.ranks)} of world size {s.world_size}")
        rows = [
            [
                str(r),
                x.status,
                str(x.sessions),
                fmt_time(x.end_time),
                str(sum(m.count for m in x.metrics.values())),
            ]
            for r, x in sorted(s.ranks.items())
        ]
        lines += indented_table(["rank", "status", "sessions", "ended", "points"], rows)
    for key, by_rank in s.conflicts.items():
        told = ", ".join(f"rank {r}: {fmt_value(v)}" for r, v in sorted(by_rank.items()))
        stands = "the lowest rank's stands" if key.startswith("params.") else "the last set stands"
        lines.append(f"conflict   {key} differs between ranks ({told}); {stands}")
    lines.append("sessions:")
    lines += session_lines(s)
    if s.params:
        lines.append("params:")
        lines += [f"  {k} = {fmt_value(v)}" for k, v in s.params.items()]
    if s.tags:
        lines.append("tags:")
        lines += [f"  {k} = {fmt_value(v)}" for k, v in s.tags.items()]
    if s.metrics:
        lines.append(f"metrics (rank {s.primary_rank}):" if s.ranks else "metrics:")
        rows = [
            [
                k,
                fmt_value(m.last),
                fmt_value(m.min),
                fmt_value(m.max),
                str(m.count),
                f"{m.first_step}..{m.last_step}",
            ]
            for k, m in s.metrics.items()
        ]
        lines += indented_table(["key", "last", "min", "max", "count", "steps"], rows)
    if s.artifacts:
        lines.append("artifacts:")
        lines += [
            f"  {k}  {a.get('size')} bytes  sha256:{str(a.get('sha256'))[:16]}"
            for k, a in s.artifacts.items()
        ]
    return lines


def session_lines(s: RunState) -> list[str]:
    """The run's sessions as an indented table, one row each: how it ended, where and when it
    ran, its resume step and what that superseded, and where it came from (git, Python,
    tracklog, the command: columns shown when a session recorded them)."""
    sourced = any(ses.source for ses in s.sessions)
    ranked = bool(s.ranks)
    headers = ["#", *(["rank", "restart"] if ranked else []), "status", "host", "pid", "started"]
    headers += ["resume step", "superseded"]
    if sourced:
        headers += ["git", "python", "tracklog", "command"]
    rows = []
    for i, ses in enumerate(s.sessions, 1):
        # A session without an end: crashed if a later one followed, else the run's status.
        status = ses.status or ("crashed" if i < len(s.sessions) else s.status)
        row = [str(i)]
        if ranked:
            row += [str(ses.rank or 0), "-" if ses.restart is None else str(ses.restart)]
        row += [
            status + (f" ({ses.signal})" if ses.signal else ""),
            ses.host or "-",
            "-" if ses.pid is None else str(ses.pid),
            fmt_time(ses.start_time),
            "-" if ses.resume_step is None else str(ses.resume_step),
            count(ses.superseded, "point") if ses.superseded else "-",
        ]
        if sourced:
            src = ses.source or {}
            argv = src.get("argv")
            row += [
                git_text(src.get("git")),
                src.get("python") or "-",
                src.get("tracklog") or "-",
                " ".join(shlex.quote(a) for a in argv) if argv else "-",
            ]
        rows.append(row)
    return indented_table(headers, rows)


def status_text(s: RunState) -> str:
    """The run's status, naming the rank that decided it: ``failed (rank 2)``."""
    return s.status if s.status_rank is None else f"{s.status} (rank {s.status_rank})"


def git_text(git: dict[str, Any] | None) -> str:
    """``0123456789ab (main, dirty)``: a git state as ``show`` prints it; ``-`` for none."""
    if not git:
        return "-"
    where = ", ".join(x for x in (git["branch"] or "detached", "dirty" if git["dirty"] else "") if x)
    return f"{git['commit'][:12]} ({where})"


# Control characters, DEL, C1 and Unicode's direction controls, as a terminal would obey
# them: a run name from a hostile store must not clear the screen, set the title or write
# the clipboard (OSC 52), nor reorder the text around it.
_HIDDEN = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F)]
_HIDDEN += [*range(0x2066, 0x206A)]


class Visible(io.TextIOBase):
    """A text stream that shows control characters as escapes (``\\x1b``) instead of
    sending them; ``keep`` names the ones that pass (newline, tab; carriage return for the
    progress bar on stderr)."""

    def __init__(self, raw: TextIO, keep: str) -> None:
        self.raw = raw
        self.table = {
            c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _HIDDEN if chr(c) not in keep
        }

    def write(self, text: str) -> int:
        self.raw.write(text.translate(self.table))
        return len(text)

    def flush(self) -> None:
        self.raw.flush()

    def isatty(self) -> bool:
        return self.raw.isatty()

    def fileno(self) -> int:
        return self.raw.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.raw.encoding


@contextlib.contextmanager
def visible_output() -> Iterator[None]:
    """stdout and stderr, while a terminal shows them, as ``Visible`` streams."""
    saved = sys.stdout, sys.stderr
    try:
        if sys.stdout.isatty():
            sys.stdout = Visible(sys.stdout, "\n\t")
        if sys.stderr.isatty():
            sys.stderr = Visible(sys.stderr, "\n\t\r")
        yield
    finally:
        sys.stdout, sys.stderr = saved
