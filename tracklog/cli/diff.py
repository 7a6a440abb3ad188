"""``tracklog diff``: renders ``Store.diff`` (params and tags that differ, metrics side by side)."""

from __future__ import annotations

import argparse

from ..read.store import Store
from ..state.types import MetricSummary
from .exits import EXIT_OK
from .render import fmt_value, indented_table, print_json

HELP = "params and tags that differ, metrics side by side"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument("--json", action="store_true")


def _summary(m: MetricSummary | None) -> str:
    if m is None:
        return "-"
    return f"{fmt_value(m.last)} / {fmt_value(m.min)} / {fmt_value(m.max)} / {m.count}"


def run(args: argparse.Namespace) -> int:
    diff = Store(args.root).diff(args.run_a, args.run_b)
    if args.json:
        print_json(diff.to_dict())
        return EXIT_OK
    a, b = diff.a, diff.b
    print(f"a = {a.id} ({a.name or '-'}, {a.status})\nb = {b.id} ({b.name or '-'}, {b.status})")
    for section, differing in (("params", diff.params), ("tags", diff.tags)):
        if differing:
            print(f"{section} that differ:")
            rows = [[k, fmt_value(va), fmt_value(vb)] for k, (va, vb) in differing.items()]
            print("\n".join(indented_table(["key", "a", "b"], rows)))
    if diff.metrics:
        print("metrics (last / min / max / count):")
        rows = [[k, _summary(ma), _summary(mb)] for k, (ma, mb) in diff.metrics.items()]
        print("\n".join(indented_table(["key", "a", "b"], rows)))
    return EXIT_OK
