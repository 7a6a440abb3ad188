"""``tracklog runs``: list runs as a table (or JSON lines), newest first."""

from __future__ import annotations

import argparse

from ..read.where import field_getter
from .exits import EXIT_OK, existing_store
from .render import fmt_duration, fmt_time, fmt_value, print_json, table, terminal_width

HELP = "list runs as a table, newest first"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment", "-e")
    p.add_argument("--where", "-w", help="filter, e.g. \"metrics.loss < 0.1 AND params.opt = 'adam'\"")
    p.add_argument("--sort", "-s", help="field [ASC|DESC], e.g. 'metrics.loss DESC'")
    p.add_argument("--limit", "-n", type=int)
    p.add_argument("--columns", "-c", nargs="+", help="fields to show, e.g. params.lr metrics.loss.min")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    store = existing_store(args.root)
    runs = store.runs(experiment=args.experiment, where=args.where, order_by=args.sort, limit=args.limit)
    if args.json:
        for r in runs:
            print_json(r.to_dict())
        return EXIT_OK
    columns = args.columns
    if columns is None:  # the three metrics most runs have
        counts: dict[str, int] = {}
        for r in runs:
            for k in r.metrics:
                counts[k] = counts.get(k, 0) + 1
        columns = [f"metrics.`{k}`" for k in sorted(counts, key=lambda k: (-counts[k], k))[:3]]
    getters = [(c, field_getter(c, "column")) for c in columns]
    several = len({r.experiment for r in runs}) > 1  # name the experiment when it varies
    headers = ["id", *(["experiment"] if several else []), "name", "status", "start", "duration"]
    headers += [c.replace("`", "") for c, _ in getters]
    rows = [
        [r.id, *([r.experiment or "-"] if several else []), r.name or "-", r.status]
        + [fmt_time(r.start_time), fmt_duration(r)]
        + [fmt_value(g(r)) for _, g in getters]
        for r in runs
    ]
    print(table(headers, rows, terminal_width()))
    return EXIT_OK
