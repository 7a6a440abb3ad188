"""The ``tracklog`` command: a thin layer over the library.

Exit codes: 0 success; 1 a check found problems (``verify`` found corrupt
records); 2 bad usage or input (unknown run, bad filter, unreadable store, a
missing optional dependency); 130 interrupted (Ctrl-C). Errors are one line on
stderr, never a traceback. Every listing command takes ``--json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import TracklogError, TracklogWarning
from ..interop.export import json_safe as _json_safe
from ..log.reader import scan
from ..read.replay import replay
from ..read.store import Store
from ..read.where import MISSING, field_getter
from ..state.types import RunState

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A usage problem reported as one line with exit code 2."""


# -- formatting -----------------------------------------------------------------------------------


def _fmt_time(t: float | None) -> str:
    if t is None:
        return "-"
    try:
        return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):
        return repr(t)  # a time no calendar holds (NaN, inf, 1e300): shown, not fatal


def _fmt_duration(state: RunState) -> str:
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


def _fmt_value(v: Any) -> str:
    if v is MISSING or v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=str)
    return str(v)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _print_json(obj: Any) -> None:
    print(json.dumps(_json_safe(obj), default=str))


# -- commands -------------------------------------------------------------------------------------


def cmd_runs(args: argparse.Namespace) -> int:
    store = Store(args.root)
    runs = store.runs(experiment=args.experiment, where=args.where, order_by=args.sort, limit=args.limit)
    if args.json:
        for r in runs:
            _print_json(r.to_dict())
        return EXIT_OK
    columns = args.columns
    if columns is None:
        counts: dict[str, int] = {}
        for r in runs:
            for k in r.metrics:
                counts[k] = counts.get(k, 0) + 1
        columns = [f"metrics.`{k}`" for k in sorted(counts, key=lambda k: (-counts[k], k))[:3]]
    getters = [(c, field_getter(c)) for c in columns]
    headers = ["id", "name", "status", "start", "duration"] + [c.replace("`", "") for c, _ in getters]
    rows = [
        [r.id, r.name or "-", r.status, _fmt_time(r.start_time), _fmt_duration(r)]
        + [_fmt_value(g(r)) for _, g in getters]
        for r in runs
    ]
    print(_table(headers, rows))
    return EXIT_OK


def _state_lines(s: RunState) -> list[str]:
    lines = [
        f"run        {s.id}",
        f"name       {s.name or '-'}",
        f"experiment {s.experiment or '-'}",
        f"status     {s.status}",
        f"started    {_fmt_time(s.start_time)}",
        f"ended      {_fmt_time(s.end_time)}   (duration {_fmt_duration(s)})",
        f"path       {s.path}",
    ]
    if s.error:
        lines.append(f"error      {s.error.get('type')}: {s.error.get('message')}")
    if s.dropped:
        lines.append(f"dropped    {s.dropped} events (the disk refused writes)")
    lines.append("sessions:")
    for i, ses in enumerate(s.sessions, 1):
        extra = f", resumed from step {ses.resume_step}" if ses.resume_step is not None else ""
        sup = f", superseded {ses.superseded} points" if ses.superseded else ""
        sig = f" ({ses.signal})" if ses.signal else ""
        lines.append(
            f"  {i}. {ses.status}{sig}  host {ses.host} pid {ses.pid}  started {_fmt_time(ses.start_time)}{extra}{sup}"
        )
    if s.params:
        lines.append("params:")
        lines += [f"  {k} = {_fmt_value(v)}" for k, v in s.params.items()]
    if s.tags:
        lines.append("tags:")
        lines += [f"  {k} = {_fmt_value(v)}" for k, v in s.tags.items()]
    if s.metrics:
        lines.append("metrics:")
        rows = [
            [
                k,
                _fmt_value(m.last),
                _fmt_value(m.min),
                _fmt_value(m.max),
                str(m.count),
                f"{m.first_step}..{m.last_step}",
            ]
            for k, m in s.metrics.items()
        ]
        lines += [
            "  " + line for line in _table(["key", "last", "min", "max", "count", "steps"], rows).splitlines()
        ]
    if s.artifacts:
        lines.append("artifacts:")
        lines += [
            f"  {k}  {a.get('size')} bytes  sha256:{str(a.get('sha256'))[:16]}"
            for k, a in s.artifacts.items()
        ]
    return lines


def cmd_show(args: argparse.Namespace) -> int:
    state = Store(args.root).run(args.run)
    if args.json:
        _print_json(state.to_dict())
    else:
        print("\n".join(_state_lines(state)))
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    store = Store(args.root)
    a, b = store.run(args.run_a), store.run(args.run_b)
    diff: dict[str, Any] = {"a": a.id, "b": b.id, "params": {}, "tags": {}, "metrics": {}}
    for section in ("params", "tags"):
        da, db = getattr(a, section), getattr(b, section)
        for k in sorted(set(da) | set(db)):
            va, vb = da.get(k, MISSING), db.get(k, MISSING)
            if va is MISSING or vb is MISSING or va != vb:
                diff[section][k] = [None if va is MISSING else va, None if vb is MISSING else vb]
    for k in sorted(set(a.metrics) | set(b.metrics)):
        ma, mb = a.metrics.get(k), b.metrics.get(k)
        diff["metrics"][k] = [ma.to_dict() if ma else None, mb.to_dict() if mb else None]
    if args.json:
        _print_json(diff)
        return EXIT_OK
    print(f"a = {a.id} ({a.name or '-'}, {a.status})\nb = {b.id} ({b.name or '-'}, {b.status})")
    for section in ("params", "tags"):
        if diff[section]:
            print(f"{section} that differ:")
            rows = [[k, _fmt_value(va), _fmt_value(vb)] for k, (va, vb) in diff[section].items()]
            print("\n".join("  " + line for line in _table(["key", "a", "b"], rows).splitlines()))
    if diff["metrics"]:
        print("metrics (last / min / max / count):")
        rows = []
        for k, (ma, mb) in diff["metrics"].items():
            cell = [
                "-"
                if m is None
                else f"{_fmt_value(m['last'])} / {_fmt_value(m['min'])} / {_fmt_value(m['max'])} / {m['count']}"
                for m in (ma, mb)
            ]
            rows.append([k, *cell])
        print("\n".join("  " + line for line in _table(["key", "a", "b"], rows).splitlines()))
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not path.exists():
        raise CliError(f"no run directory or segment file at {path}")
    state = replay(path, on_corrupt="ignore")
    if args.json:
        _print_json(state.to_dict())
    else:
        print("\n".join(_state_lines(state)))
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    store = Store(args.root)
    targets = (
        [store.path_of(r) for r in args.runs]
        if args.runs
        else [store.root / "runs" / i for i in store.run_ids()]
    )
    problems = 0
    out: list[dict[str, Any]] = []
    for run_path in targets:
        try:
            reports = scan(run_path)
        except TracklogError as exc:  # one unreadable run: report it, check the rest
            problems += 1
            out.append({"run": run_path.name, "segment": None, "error": str(exc)})
            if not args.json:
                print(f"{run_path}: UNREADABLE: {_one_line(exc)}")
            continue
        for rep in reports:
            entry: dict[str, Any] = {
                "run": run_path.name,
                "segment": str(rep.path),
                "records": rep.records,
                "valid_end": rep.valid_end,
                "size": rep.size,
                "torn_tail": rep.torn_tail,
                "corrupt": [list(c) for c in rep.corrupt],
            }
            out.append(entry)
            problems += len(rep.corrupt)
            if args.json:
                continue
            state = "ok"
            if rep.corrupt:
                state = "CORRUPT " + ", ".join(f"bytes {a}..{b}" for a, b in rep.corrupt)
            elif rep.torn_tail is not None:
                state = f"ok, torn tail at byte {rep.torn_tail} ({rep.size - rep.torn_tail} bytes ignored)"
            print(f"{rep.path}: {rep.records} records, {state}")
    if args.json:
        for entry in out:
            _print_json(entry)
    if args.salvage:
        from ..read.salvage import salvage

        written = salvage(targets, Path(args.salvage))
        print(f"salvaged {written} records into {args.salvage}", file=sys.stderr)
    if not args.json:
        print(f"{len(out)} segments checked, {problems} corrupt ranges", file=sys.stderr)
    return EXIT_PROBLEMS if problems else EXIT_OK


def cmd_compact(args: argparse.Namespace) -> int:
    from ..read.compact import compact

    store = Store(args.root)
    ids = [store.resolve(r) for r in args.runs] if args.runs else None
    show = sys.stderr.isatty()

    def bar(i: int, total: int) -> None:
        if show and total > 1:
            done = int(30 * i / total)
            print(f"\r[{'#' * done}{' ' * (30 - done)}] {i}/{total}", end="", file=sys.stderr, flush=True)

    report = compact(store.root, progress=bar, run_ids=ids)
    if show and len(report.runs) > 1:
        print(file=sys.stderr)
    runs, seconds, failed = report.runs, report.seconds, report.failed
    folded = sum(r.bytes_folded for r in runs)
    if args.json:
        _print_json({"runs": [r.__dict__ for r in runs], "bytes_folded": folded, "failed": failed})
    else:
        print(
            f"compacted {len(runs)} runs, folded {folded} new bytes"
            + (f" in {seconds:.2f} s" if seconds else "")
            + (f"; {len(failed)} runs could not be compacted (named above)" if failed else "")
        )
    return EXIT_OK


def cmd_tail(args: argparse.Namespace) -> int:
    store = Store(args.root)
    events = store.tail(args.run, keys=args.metric, follow=not args.no_follow, from_start=args.from_start)
    widths: dict[str, int] = {}
    line_step: int | None = None
    line: dict[str, float] = {}

    def flush_line() -> None:
        if line_step is None or not line:
            return
        cells = []
        for k, v in line.items():
            text = f"{k}={v:.6g}"
            widths[k] = max(widths.get(k, 0), len(text))
            cells.append(text.ljust(widths[k]))
        print(f"step {line_step:>8}  " + "  ".join(cells).rstrip(), flush=True)

    try:
        for ev in events:
            if args.json:
                _print_json(
                    {"kind": ev.kind, "key": ev.key, "value": ev.value, "step": ev.step, "time": ev.time}
                )
                continue
            if ev.kind == "metric":
                if ev.step != line_step:
                    flush_line()
                    line_step, line = ev.step, {}
                line[ev.key] = ev.value  # type: ignore[index]
                continue
            flush_line()
            line_step, line = None, {}
            if ev.kind == "run_end":
                err = ev.value.get("error")
                sig = ev.value.get("signal")
                print(
                    f"run ended: {ev.value.get('status')}"
                    + (f" ({sig})" if sig else "")
                    + (f": {err.get('type')}: {err.get('message')}" if err else ""),
                    flush=True,
                )
            elif ev.kind == "run_start":
                print(
                    f"session started on {ev.value.get('host')} pid {ev.value.get('pid')}"
                    + (
                        f", resuming from step {ev.value.get('resume_step')}"
                        if ev.value.get("resume_step") is not None
                        else ""
                    ),
                    flush=True,
                )
        flush_line()
    except KeyboardInterrupt:
        flush_line()
        return EXIT_OK
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from ..interop.export import export

    store = Store(args.root)
    ids = [store.resolve(r) for r in args.runs]
    result = export(store, ids, args.format, args.out)
    print(result)
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    from ..interop.export import import_mlflow, import_tensorboard

    store = Store(args.root)
    if args.source == "mlflow":
        ids = import_mlflow(store, args.location, experiment=args.experiment)
    else:
        ids = import_tensorboard(store, args.location, experiment=args.experiment or "tensorboard")
    for rid in ids:
        print(rid)
    print(f"imported {len(ids)} runs into {store.root}", file=sys.stderr)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import train

    run = train(root=args.root, steps=args.steps)
    state = replay(run.path)
    print("\n".join(_state_lines(state)))
    print()
    print(f"demo run {run.id} is in {run.path}")
    root_opt = f" --root {args.root}" if args.root else ""
    print(f"look at it with:   tracklog{root_opt} show {run.id[:10]}")
    print(f"                   tracklog{root_opt} runs")
    print(f"                   tracklog{root_opt} tail {run.id[:10]} --from-start --no-follow")
    return EXIT_OK


# -- parser ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--root", default=argparse.SUPPRESS, help="store root (default: $TRACKLOG_DIR, else ./tlruns)"
    )
    parser = argparse.ArgumentParser(
        prog="tracklog",
        description="crash-safe experiment tracking",
        epilog="exit codes: 0 ok, 1 problems found (verify), 2 bad usage or input, 130 interrupted",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Any, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, parents=[common])
        p.set_defaults(func=func)
        return p

    p = add("runs", cmd_runs, "list runs as a table, newest first")
    p.add_argument("--experiment", "-e")
    p.add_argument("--where", "-w", help="filter, e.g. \"metrics.loss < 0.1 AND params.opt = 'adam'\"")
    p.add_argument("--sort", "-s", help="field [ASC|DESC], e.g. 'metrics.loss DESC'")
    p.add_argument("--limit", "-n", type=int)
    p.add_argument("--columns", "-c", nargs="+", help="fields to show, e.g. params.lr metrics.loss.min")
    p.add_argument("--json", action="store_true")

    p = add("show", cmd_show, "everything about one run (id, unique id prefix or name)")
    p.add_argument("run")
    p.add_argument("--json", action="store_true")

    p = add("diff", cmd_diff, "params and tags that differ, metrics side by side")
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument("--json", action="store_true")

    p = add("replay", cmd_replay, "fold raw logs (a run directory or a segment file) without a store")
    p.add_argument("path")
    p.add_argument("--json", action="store_true")

    p = add("verify", cmd_verify, "check every record; exit 1 when anything is corrupt")
    p.add_argument("runs", nargs="*")
    p.add_argument(
        "--salvage", metavar="OUT", help="write a clean copy of every recoverable record under OUT"
    )
    p.add_argument("--json", action="store_true")

    p = add("compact", cmd_compact, "fold logs into snapshots and refresh the index")
    p.add_argument("runs", nargs="*")
    p.add_argument("--json", action="store_true")

    p = add("tail", cmd_tail, "follow a run's metrics live")
    p.add_argument("run")
    p.add_argument("--metric", "-m", action="append", help="only these metric keys (repeatable)")
    p.add_argument("--from-start", action="store_true")
    p.add_argument("--no-follow", action="store_true")
    p.add_argument("--json", action="store_true")

    p = add("export", cmd_export, "export runs to csv, jsonl, parquet, mlflow or tensorboard")
    p.add_argument("runs", nargs="+")
    p.add_argument(
        "--format", "-f", required=True, choices=["csv", "jsonl", "parquet", "mlflow", "tensorboard"]
    )
    p.add_argument("--out", "-o", required=True, help="a directory, or an MLflow tracking URI")

    p = add("import", cmd_import, "bring in runs from mlflow or tensorboard")
    p.add_argument("source", choices=["mlflow", "tensorboard"])
    p.add_argument("location", help="an MLflow tracking URI, or a TensorBoard log directory")
    p.add_argument("--experiment", "-e")

    p = add("demo", cmd_demo, "train a small numpy model, log it, and print its summary")
    p.add_argument("--steps", type=int, default=300)
    return parser


def _show_warning(
    message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    """TracklogWarnings as one line on stderr (they already say ``tracklog: ...``)."""
    text = str(message)
    if issubclass(category, TracklogWarning):
        print(f"{text if text.startswith('tracklog:') else 'tracklog: ' + text}", file=sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), end="", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.root = getattr(args, "root", None)
    shown = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        return _run(args)
    finally:
        warnings.showwarning = shown


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args))
    except (TracklogError, CliError) as exc:
        print(f"tracklog: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except ImportError as exc:
        print(f"tracklog: {exc} (install the optional extra that provides it)", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"tracklog: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _one_line(exc: BaseException) -> str:
    """A filter error keeps its caret lines; other messages are one line."""
    text = str(exc)
    if text.count("\n") == 2 and text.splitlines()[-1].strip() == "^":
        return text
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
