"""What an export to a peer or an import from one did, run by run: ``TransferReport``;
and the ``progress(done, total)`` callback the long ones take."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Action = Literal["created", "updated", "skipped", "failed"]
Progress = Callable[[int, int], None]  # progress(done, total), up to (total, total)


def advance(progress: Progress | None, done: int, total: int) -> None:
    """Tell ``progress`` (if any) that ``done`` of ``total`` runs are done."""
    if progress is not None:
        progress(done, total)


@dataclass
class Transfer:
    """One run: ``source`` (the id where it came from), ``dest`` (its id where it went, "-"
    for a run that ``failed``: then ``why`` says why)."""

    action: Action
    source: str
    dest: str
    why: str = ""


@dataclass
class TransferReport:
    """The runs an export or import created, updated or skipped, and what it left out.

    ``runs`` is in the order the runs were handled. ``not_imported`` counts, per kind of
    data tracklog does not store (TensorBoard's ``text``, ``histograms``, ``images``,
    ``audio``...), the series (tags) that were left out.
    """

    verb: str  # "exported to MLflow at URI", "imported from ..."
    runs: list[Transfer] = field(default_factory=list)
    points: int = 0
    not_imported: dict[str, int] = field(default_factory=dict)

    def ids(self, action: Action) -> list[str]:
        """The destination ids of the runs with that action."""
        return [t.dest for t in self.runs if t.action == action]

    @property
    def created(self) -> list[str]:
        return self.ids("created")

    @property
    def updated(self) -> list[str]:
        return self.ids("updated")

    @property
    def skipped(self) -> list[str]:
        return self.ids("skipped")

    @property
    def failed(self) -> list[Transfer]:
        """The runs that could not be moved (an importer that goes on past them), with why."""
        return [t for t in self.runs if t.action == "failed"]

    def summary(self) -> str:
        """One line: ``exported to ...: 3 runs (1 created, 1 updated, 1 skipped), 330 points``;
        when every skipped run was skipped for one reason, it follows: ``2 skipped: already
        imported``; runs that failed are counted last (``, 1 failed``)."""
        counts = ", ".join(f"{len(self.ids(a))} {a}" for a in ("created", "updated", "skipped"))
        whys = {t.why for t in self.runs if t.action == "skipped"}
        if len(whys) == 1 and "" not in whys:
            counts += f": {whys.pop()}"
        if self.failed:
            counts += f", {len(self.failed)} failed"
        return f"{self.verb}: {len(self.runs)} runs ({counts}), {self.points} points"

    def left_out(self) -> str:
        """``not_imported`` as words (``2 histograms, 1 text``), or "" when nothing was left out."""
        return ", ".join(f"{n} {kind}" for kind, n in sorted(self.not_imported.items()))
