"""``tracklog runs``: list runs as a table (or JSON lines), newest first.

Without ``-c``, the metric columns are chosen by one rule (``default_columns``): the
keys at least half the listed runs have come first, the rest after; within each,
evaluation keys (``val/``, ``valid/``, ``eval/``, ``test/`` and their ``_`` and ``.``
forms) before other loss- or accuracy-like keys (a word of the key is ``loss``,
``acc...``, ``f1``, ``auc``, ...), before the rest; then the key more runs have; then by
name. On a terminal (or with ``COLUMNS``), as many as fit its width, at least one; in a
pipe, where no cell is cut, the first three.
"""

from __future__ import annotations

import argparse
import re

from ..read.where import field_getter
from ..state.types import RunState
from .exits import EXIT_OK, existing_store
from .render import fmt_duration, fmt_time, fmt_value, print_json, status_text, table, terminal_width

HELP = "list runs as a table, newest first"
PIPE_COLUMNS = 3  # default metric columns when output is not a terminal
_EVAL_PREFIX = re.compile(r"(val|valid|validation|eval|evaluation|test)[/_.]", re.IGNORECASE)
_QUALITY_WORDS = {"loss", "f1", "auc", "error", "err", "precision", "recall", "bleu", "ppl", "perplexity"}
_WORD = re.compile(r"[a-z]+")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = "List runs as a table, newest first."
    p.epilog = (
        "default metric columns (without -c): the keys at least half the listed runs have "
        "first; within those, evaluation keys (val/ valid/ eval/ test/, or with _ or .) "
        "first, then loss- or accuracy-like keys (loss, acc..., f1, auc, error, ...), then "
        "the rest; then the key more runs have, then by name. As many as fit the terminal "
        f"(COLUMNS), at least one; {PIPE_COLUMNS} when output is a pipe."
    )
    p.add_argument("--experiment", "-e")
    p.add_argument("--where", "-w", help="filter, e.g. \"metrics.loss < 0.1 AND params.opt = 'adam'\"")
    p.add_argument("--sort", "-s", help="field [ASC|DESC], e.g. 'metrics.loss DESC'")
    p.add_argument("--limit", "-n", type=int)
    p.add_argument(
        "--columns", "-c", nargs="+", help="fields to show, e.g. params.lr metrics.loss.min (default: below)"
    )
    p.add_argument("--json", action="store_true")


def _kind(key: str) -> int:
    """0 an evaluation key, 1 another loss- or accuracy-like key, 2 anything else."""
    if _EVAL_PREFIX.match(key):
        return 0
    words = _WORD.findall(key.lower())
    return 1 if any(w in _QUALITY_WORDS or w.startswith("acc") for w in words) else 2


def ranked_metrics(runs: list[RunState]) -> list[str]:
    """Every metric key of ``runs``, in the order the default columns take them."""
    counts: dict[str, int] = {}
    for r in runs:
        for k in r.metrics:
            counts[k] = counts.get(k, 0) + 1
    return sorted(counts, key=lambda k: (2 * counts[k] < len(runs), _kind(k), -counts[k], k))


def default_columns(runs: list[RunState], base: list[list[str]], width: int | None) -> list[str]:
    """The metric columns to show: the ranked keys that fit beside the ``base`` columns
    (a header row and the cell rows) in ``width``, at least one; ``PIPE_COLUMNS`` without one."""
    keys = ranked_metrics(runs)
    if width is None:
        return [f"metrics.`{k}`" for k in keys[:PIPE_COLUMNS]]
    used = sum(max(len(row[i]) for row in base) for i in range(len(base[0]))) + 2 * (len(base[0]) - 1)
    chosen: list[str] = []
    for k in keys:
        column = f"metrics.`{k}`"
        get = field_getter(column, "column")
        cell = max(len(column.replace("`", "")), *(len(fmt_value(get(r))) for r in runs))
        if chosen and used + 2 + cell > width:
            break
        chosen.append(column)
        used += 2 + cell
    return chosen


def run(args: argparse.Namespace) -> int:
    store = existing_store(args.root)
    runs = store.runs(experiment=args.experiment, where=args.where, order_by=args.sort, limit=args.limit)
    if args.json:
        for r in runs:
            print_json(r.to_dict())
        return EXIT_OK
    width = terminal_width()
    several = len({r.experiment for r in runs}) > 1  # name the experiment when it varies
    ranked = any(r.ranks for r in runs)  # a ranks column when any run had several processes
    headers = ["id", *(["experiment"] if several else []), "name", "status", *(["ranks"] if ranked else [])]
    headers += ["start", "duration"]
    rows = [
        [
            r.id,
            *([r.experiment or "-"] if several else []),
            r.name or "-",
            status_text(r),
            *([str(len(r.ranks)) if r.ranks else "-"] if ranked else []),
            fmt_time(r.start_time),
            fmt_duration(r),
        ]
        for r in runs
    ]
    columns = args.columns if args.columns is not None else default_columns(runs, [headers, *rows], width)
    getters = [(c, field_getter(c, "column")) for c in columns]
    headers += [c.replace("`", "") for c, _ in getters]
    for row, r in zip(rows, runs, strict=True):
        row += [fmt_value(g(r)) for _, g in getters]
    print(table(headers, rows, width))
    return EXIT_OK
