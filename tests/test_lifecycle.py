"""write/lifecycle.py: how a run ends when the user does not end it (status mapping, closing)."""

from __future__ import annotations

import pytest

from tracklog.write import lifecycle


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (None, ("finished", None)),
        (KeyboardInterrupt(), ("killed", "SIGINT")),
        (SystemExit(0), ("finished", None)),
        (SystemExit(None), ("finished", None)),
        (SystemExit(3), ("failed", None)),
        (ValueError("boom"), ("failed", None)),
    ],
)
def test_status_for(exc: BaseException | None, expected: tuple[str, str | None]) -> None:
    assert lifecycle.status_for(exc) == expected


class FakeRun:
    """Anything with the Endable methods: lifecycle never needs Run itself."""

    def __init__(self, fail: bool = False) -> None:
        self.ended: list[tuple[str, object, object, bool]] = []
        self.signal: str | None = None
        self.forked = False
        self.fail = fail

    def _end(self, status: str, error: BaseException | None, signal: str | None, join: bool) -> None:
        self.ended.append((status, error, signal, join))
        if self.fail:
            raise RuntimeError("cannot end")

    def _note_signal(self, name: str) -> None:
        self.signal = name

    def _forget_in_child(self) -> None:
        self.forked = True


def test_close_all_ends_every_run_even_when_one_fails() -> None:
    runs = [FakeRun(fail=True), FakeRun()]
    for r in runs:
        lifecycle._live.add(r)
    try:
        lifecycle._close_all("killed", sig="SIGTERM", join=False)
    finally:
        for r in runs:
            lifecycle.forget(r)
    assert all(r.ended == [("killed", None, "SIGTERM", False)] for r in runs)


def test_an_uncaught_exception_ends_runs_failed_then_calls_the_previous_hook(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = []
    monkeypatch.setattr(lifecycle, "_prev_excepthook", lambda *a: seen.append(a[0]))
    run = FakeRun()
    lifecycle._live.add(run)
    err = ValueError("x")
    try:
        lifecycle._excepthook(ValueError, err, None)
    finally:
        lifecycle.forget(run)
    assert run.ended == [("failed", err, None, True)] and seen == [ValueError]


def test_sigterm_with_a_user_handler_only_marks_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(lifecycle, "_prev_term", lambda signum, frame: calls.append(signum))
    run = FakeRun()
    lifecycle._live.add(run)
    try:
        lifecycle._on_sigterm(15, None)
    finally:
        lifecycle.forget(run)
    assert run.signal == "SIGTERM" and run.ended == [] and calls == [15]


def test_a_forked_child_forgets_every_run(monkeypatch: pytest.MonkeyPatch) -> None:
    others = list(lifecycle._live)  # runs other tests left open: not forked, so put back
    monkeypatch.setattr(lifecycle, "_live", type(lifecycle._live)())
    run = FakeRun()
    lifecycle._live.add(run)
    lifecycle._after_fork_in_child()
    assert run.forked and run not in lifecycle._live and not any(r in lifecycle._live for r in others)
