"""``tracklog tail``: follow a run live, one line per step, then how it ended."""

from __future__ import annotations

import argparse
import sys

from ..errors import RunNotFoundError
from .exits import EXIT_OK, existing_store, open_store
from .render import print_json

HELP = "follow a run's metrics live"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run")
    p.add_argument(
        "--metric",
        "-m",
        action="extend",
        nargs="+",
        metavar="KEY",
        help="only these metric keys: -m a b, or -m a -m b (give RUN first)",
    )
    p.add_argument(
        "--rank",
        type=int,
        metavar="R",
        help="a many-process run: only rank R (default: every rank, each line named)",
    )
    p.add_argument("--from-start", action="store_true")
    p.add_argument(
        "--poll",
        action="store_true",
        help="poll instead of waiting on file notifications (always so on a mirror: its latest "
        "commit is re-read every 2 s)",
    )
    p.add_argument("--no-follow", action="store_true")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    # Following waits for a run (and a store) that a job is about to create; a one-off read
    # of a store that is not there is a wrong root.
    store = existing_store(args.root) if args.no_follow else open_store(args.root)
    waiting = False
    if not args.no_follow:
        try:
            store.resolve(args.run)
        except RunNotFoundError as exc:
            if exc.candidates:  # ambiguous: refused now, not waited on
                raise
            waiting = True
    events = store.tail(
        args.run, keys=args.metric, follow=not args.no_follow, from_start=args.from_start, poll=args.poll
    )
    if waiting:
        print(
            f"waiting for run {args.run!r} to appear in {store.url or store.root} (Ctrl-C to stop)",
            file=sys.stderr,
            flush=True,
        )
    widths: dict[str, int] = {}
    line_step: int | None = None
    line_rank: int | None = None
    line: dict[str, float] = {}

    def who(rank: int | None) -> str:
        return "" if rank is None else f"rank {rank:>3}  "

    def flush_line() -> None:
        if line_step is None or not line:
            return
        cells = []
        for k, v in line.items():
            text = f"{k}={v:.6g}"
            widths[k] = max(widths.get(k, 0), len(text))
            cells.append(text.ljust(widths[k]))
        print(f"{who(line_rank)}step {line_step:>8}  " + "  ".join(cells).rstrip(), flush=True)

    try:
        for ev in events:
            if args.rank is not None and ev.rank is not None and ev.rank != args.rank:
                continue
            if args.json:
                print_json(
                    {
                        "kind": ev.kind,
                        "key": ev.key,
                        "value": ev.value,
                        "step": ev.step,
                        "time": ev.time,
                        "rank": ev.rank,
                    }
                )
                continue
            if ev.kind == "metric":
                if ev.step != line_step or ev.rank != line_rank:
                    flush_line()
                    line_step, line_rank, line = ev.step, ev.rank, {}
                line[ev.key] = ev.value  # type: ignore[index]
                continue
            flush_line()
            line_step, line = None, {}
            print(who(ev.rank), end="")
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
