"""``tracklog watch``: one line per alert on a run or an experiment; ``--exec`` acts on each."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from ..read.alerts import AlertRules
from .exits import EXIT_OK, CliError, open_store
from .render import print_json

HELP = "print an alert when a run's metric turns NaN, passes a threshold, stalls, or the run fails"


def _pairs(items: list[str] | None, flag: str) -> dict[str, float]:
    out = {}
    for item in items or []:
        key, sep, num = item.rpartition("=")
        try:
            if not sep or not key:
                raise ValueError
            out[key] = float(num)
        except ValueError:
            raise CliError(f"{flag} takes KEY=NUMBER, got {item!r}") from None
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", help="a run id, prefix or name (or -e EXP for every run of one)")
    p.add_argument("--experiment", "-e")
    p.add_argument("--nan", action="store_true", help="a metric becomes NaN or inf")
    p.add_argument("--stall", type=float, metavar="SECONDS", help="a live run logs nothing this long")
    p.add_argument("--above", action="append", metavar="KEY=VALUE", help="KEY's value goes above VALUE")
    p.add_argument(
        "--diverge",
        action="append",
        metavar="KEY=FACTOR",
        help="KEY goes above FACTOR times its running minimum",
    )
    p.add_argument("--ended", action="store_true", help="the run ends failed, killed or crashed")
    p.add_argument("--from-start", action="store_true", help="judge what the run logged before, too")
    p.add_argument(
        "--exec",
        dest="command",
        metavar="CMD",
        help="run CMD (with sh) for each alert; the alert is in TRACKLOG_* variables",
    )
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    if (args.run is None) == (args.experiment is None):
        raise CliError("watch takes a RUN or -e EXPERIMENT")
    above, diverge = _pairs(args.above, "--above"), _pairs(args.diverge, "--diverge")
    chosen = args.nan or args.ended or args.stall is not None or above or diverge
    # No rule named: the ones that need no number (NaN and inf, a bad end).
    rules = AlertRules(
        nan=args.nan or not chosen,
        above=above,
        diverge=diverge,
        stall=args.stall,
        ended=args.ended or not chosen,
    )
    store = open_store(args.root)
    for alert in store.watch(args.run, args.experiment, rules, from_start=args.from_start):
        if args.json:
            print_json({k: v for k, v in alert.__dict__.items()})
        else:
            print(f"{alert.kind}: {alert.message}", flush=True)
        if args.command:
            # The alert reaches the command only through its environment: its values are
            # never pasted into the command line, so a hostile key cannot inject a command.
            done = subprocess.run(args.command, shell=True, env={**os.environ, **alert.env()}, check=False)
            if done.returncode:
                print(f"tracklog: --exec exited {done.returncode} for a {alert.kind} alert", file=sys.stderr)
    return EXIT_OK
