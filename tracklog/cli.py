"""The ``tracklog`` command: a thin layer over the library.

Exit codes: 0 success; 1 a check found problems (e.g. corrupt records);
2 bad usage or input (unknown run, bad filter, unreadable store).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import TracklogError
from .reader import read_events

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2


def _summary_lines(run_path: Path) -> list[str]:
    """A short summary of a run folded from its raw events."""
    last: dict[str, tuple[int, float]] = {}
    counts: dict[str, int] = {}
    params: dict[str, object] = {}
    status = "crashed"
    for ev in read_events(run_path):
        if ev.kind == "metric":
            last[ev.key] = (ev.step, ev.value)  # type: ignore[index]
            counts[ev.key] = counts.get(ev.key, 0) + 1  # type: ignore[index]
        elif ev.kind == "param":
            params[ev.key] = ev.value  # type: ignore[index]
        elif ev.kind == "run_end":
            status = ev.value["status"]
    lines = [f"status: {status}", "params:"]
    lines += [f"  {k} = {v!r}" for k, v in params.items()]
    lines.append("metrics (last value, points):")
    width = max((len(k) for k in last), default=0)
    lines += [f"  {k:<{width}}  {v:.6g} at step {s}  ({counts[k]} points)" for k, (s, v) in last.items()]
    return lines


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import train

    run = train(root=args.root, steps=args.steps)
    print(f"demo run {run.id} finished")
    print(f"  run directory: {run.path}")
    for line in _summary_lines(run.path):
        print(f"  {line}")
    print(
        f"look at it again with: python -c \"import tracklog; print(*tracklog.read_events('{run.path}'), sep='\\n')\""
    )
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tracklog", description="crash-safe experiment tracking")
    parser.add_argument("--root", default=None, help="store root (default: $TRACKLOG_DIR, else ./tlruns)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="train a small numpy model, log it, and print its summary")
    p.add_argument("--steps", type=int, default=300)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except TracklogError as exc:
        print(f"tracklog: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
