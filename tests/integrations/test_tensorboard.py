"""tracklog.integrations.tensorboard: a tensorboardX script moved over by one import."""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tracklog
from tracklog.integrations.tensorboard import LOG_DIR_TAG, SummaryWriter

# The kind of script tensorboardX's README shows; it runs as written and with one import changed.
SCRIPT = """
from tensorboardX import SummaryWriter
import numpy as np

writer = SummaryWriter(LOG_DIR)
for step in range(20):
    loss = np.float32(1.0 / (step + 1))
    writer.add_scalar("train/loss", loss, step)
    writer.add_scalar("train/acc", 1 - float(loss), step, walltime=1_700_000_000.25 + step)
    if step % 5 == 0:
        writer.add_scalars("lr", {"encoder": 0.1 / (step + 1), "decoder": 0.2}, step)
        writer.add_histogram("weights", np.random.default_rng(step).normal(size=100), step)
        writer.add_text("notes", f"checkpoint at step {step}", step)
writer.add_hparams({"lr": 0.1, "optimizer": "adam", "layers": 3, "dropout": True}, {"hparam/accuracy": 0.93})
writer.close()
"""
SWITCHED = SCRIPT.replace(
    "from tensorboardX import SummaryWriter", "from tracklog.integrations.tensorboard import SummaryWriter"
)


def _tensorboard_run(logdir: Path) -> dict[str, Any]:
    """What TensorBoard shows of the run at ``logdir``, read with its own EventAccumulator.

    add_scalars' sub-runs ``<logdir>/<main>/<sub>`` hold the tag ``<main>``: the key is the
    sub-run's path; add_hparams' sub-run holds the hparams and the metric tags.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    points, walls, texts, hparams = set(), {}, {}, {}
    for d in sorted({p.parent for p in logdir.rglob("events.out.tfevents.*")}):
        acc = EventAccumulator(str(d))
        acc.Reload()
        try:
            content = acc.PluginTagToContent("hparams")
        except KeyError:  # no hparams in this directory
            content = {}
        if "_hparams_/session_start_info" in content:
            data = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
            for k, v in data.session_start_info.hparams.items():
                hparams[k] = getattr(v, v.WhichOneof("kind"))
        for tag in acc.Tags()["scalars"]:
            key = tag if d == logdir or content else d.relative_to(logdir).as_posix()
            for e in acc.Scalars(tag):
                points.add((key, e.step, e.value))
                walls[key, e.step] = e.wall_time
        for tag in acc.Tags()["tensors"]:
            for e in acc.Tensors(tag):
                texts[tag.removesuffix("/text_summary"), e.step] = e.tensor_proto.string_val[0].decode()
    return {"points": points, "walls": walls, "texts": texts, "hparams": hparams}


def test_a_tensorboardx_script_switched_by_one_import_stores_what_tensorboardx_wrote(tmp_path: Path) -> None:
    pytest.importorskip("tensorboardX", reason="the interop extra is not installed")
    pytest.importorskip("tensorboard", reason="the interop extra is not installed")
    exec(SCRIPT, {"LOG_DIR": str(tmp_path / "tbx" / "exp1")})
    with pytest.warns(tracklog.TracklogWarning, match=r"SummaryWriter\.add_histogram is not stored"):
        exec(SWITCHED, {"LOG_DIR": str(tmp_path / "ours" / "exp1")})
    tb = _tensorboard_run(tmp_path / "tbx" / "exp1")

    store = tracklog.Store()
    (run,) = store.runs()
    assert (run.experiment, run.name, run.status) == ("tensorboard", "exp1", "finished")
    ours = set()
    for key in run.metrics:
        h = store.history(run.id, key)
        for step, value, t in zip(h.step.tolist(), h.value.tolist(), h.timestamp.tolist(), strict=True):
            # TensorBoard keeps float32 (simple_value); tracklog the float64 it was given.
            ours.add((key, step, float(np.float32(value))))
            if key == "train/acc":
                assert t == tb["walls"][key, step]  # walltime= is the point's time
    assert ours == tb["points"]
    assert len(ours) == 20 + 20 + 2 * 4 + 1
    assert run.params == tb["hparams"] == {"lr": 0.1, "optimizer": "adam", "layers": 3, "dropout": True}
    texts = {k: v for k, v in run.tags.items() if k != LOG_DIR_TAG}
    assert texts == {f"{tag}@{step}": text for (tag, step), text in tb["texts"].items()}
    assert run.tags[LOG_DIR_TAG] == str(tmp_path / "ours" / "exp1")


class _TensorLike:
    """A 0-d framework tensor: ``item()`` only, no ``__float__``."""

    def __init__(self, v: float) -> None:
        self.v = v

    def item(self) -> float:
        return self.v


def test_scalars_may_be_numpy_scalars_tensors_with_item_or_python_numbers(tmp_path: Path) -> None:
    with SummaryWriter(tmp_path / "run") as w:
        w.add_scalar("a", 1, 0)
        w.add_scalar("a", 2.5, 1)
        w.add_scalar("a", np.float16(3.5), 2)
        w.add_scalar("a", np.int64(4), 3)
        w.add_scalar("a", _TensorLike(5.5), 4)
        w.add_scalar("a", np.array([6.0]), 5)  # one element, as TensorBoard squeezes it
        w.add_scalars("m", {"x": _TensorLike(7.0), "y": np.float32(8)}, np.int64(6))
        w.add_scalar("a", 9, 7.0)  # a float step, as TensorBoard takes int(step)
    h = tracklog.Store().history(w.run.id, "a")  # type: ignore[union-attr]
    assert h.step.tolist() == [0, 1, 2, 3, 4, 5, 7]
    assert h.value.tolist() == [1.0, 2.5, 3.5, 4.0, 5.5, 6.0, 9.0]
    state = tracklog.Store().run(w.run.id)  # type: ignore[union-attr]
    assert (state.metrics["m/x"].last, state.metrics["m/y"].last, state.metrics["m/y"].last_step) == (7, 8, 6)


def test_a_scalar_that_is_not_one_number_raises_as_in_tensorboard(tmp_path: Path) -> None:
    with SummaryWriter(tmp_path / "run") as w:
        with pytest.raises(tracklog.ValueTypeError, match="'a'"):
            w.add_scalar("a", np.array([1.0, 2.0]), 0)
        with pytest.raises(tracklog.ValueTypeError):
            w.add_scalar("a", "0.5", 0)


def test_global_step_none_is_the_keys_next_step(tmp_path: Path) -> None:
    with SummaryWriter(tmp_path / "run") as w:
        for v in (1.0, 2.0, 3.0):
            w.add_scalar("loss", v)
        w.add_scalar("loss", 4.0, 10)
        w.add_scalar("loss", 5.0)
        w.add_scalars("m", {"a": 1, "b": 2})
    h = tracklog.Store().history(w.run.id, "loss")  # type: ignore[union-attr]
    assert h.step.tolist() == [0, 1, 2, 10, 11]
    assert tracklog.Store().run(w.run.id).metrics["m/a"].first_step == 0  # type: ignore[union-attr]


def test_log_dir_names_the_run_and_is_kept_as_a_tag(tmp_path: Path) -> None:
    w = SummaryWriter(log_dir=str(tmp_path / "runs" / "lr0.1"), experiment="sweep")
    assert w.log_dir == w.logdir == w.get_logdir() == str(tmp_path / "runs" / "lr0.1")
    assert (tmp_path / "runs" / "lr0.1").is_dir()  # scripts save checkpoints there
    assert not list((tmp_path / "runs" / "lr0.1").iterdir())  # no event files
    w.close()
    (state,) = tracklog.Store().runs()
    assert (state.experiment, state.name, state.tags[LOG_DIR_TAG]) == (
        "sweep",
        "lr0.1",
        str(tmp_path / "runs" / "lr0.1"),
    )
    w2 = SummaryWriter(logdir="relative/dir/")  # tensorboardX's keyword; relative to the cwd
    w2.close()
    assert tracklog.Store().run(w2.run.id).tags[LOG_DIR_TAG] == os.path.abspath("relative/dir")  # type: ignore[union-attr]
    assert tracklog.Store().run(w2.run.id).name == "dir"  # type: ignore[union-attr]


def test_without_log_dir_the_run_is_named_as_tensorboard_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with SummaryWriter(comment="_lr0.1") as w:
        pass
    head, name = os.path.split(w.log_dir)
    assert head == "runs"
    assert name.endswith(f"_{socket.gethostname()}_lr0.1")
    assert tracklog.Store().run(w.run.id).name == name  # type: ignore[union-attr]


def test_other_methods_warn_once_each_and_store_nothing(tmp_path: Path) -> None:
    with SummaryWriter(tmp_path / "run") as w, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(3):
            w.add_histogram("w", np.zeros(3), step)
            w.add_image("img", np.zeros((3, 4, 4)), step)
        w.add_graph(object())
        w.add_embedding(np.zeros((2, 2)))
        w.export_scalars_to_json(str(tmp_path / "x.json"))
    said = [str(c.message) for c in caught]
    assert len(said) == 5
    for method in ("add_histogram", "add_image", "add_graph", "add_embedding", "export_scalars_to_json"):
        assert sum(f"SummaryWriter.{method} is not stored" in m for m in said) == 1
    state = tracklog.Store().run(w.run.id)  # type: ignore[union-attr]
    assert state.metrics == {} and set(state.tags) == {LOG_DIR_TAG}
    assert not (tmp_path / "x.json").exists()
    with pytest.raises(AttributeError):
        w.no_such_method  # noqa: B018  (only add_* methods are absorbed)


def test_add_text_is_a_tag_keyed_by_step_when_one_is_given(tmp_path: Path) -> None:
    with SummaryWriter(tmp_path / "run") as w:
        w.add_text("config", "lr=0.1")
        w.add_text("sample", "a cat", 100)
        w.add_text("sample", "a dog", 200, walltime=1.0)
        w.add_text("config", "lr=0.2")  # no step: the last one wins
    tags = tracklog.Store().run(w.run.id).tags  # type: ignore[union-attr]
    assert {k: v for k, v in tags.items() if k != LOG_DIR_TAG} == {
        "config": "lr=0.2",
        "sample@100": "a cat",
        "sample@200": "a dog",
    }


def test_add_hparams_takes_both_signatures_and_skips_none(tmp_path: Path) -> None:
    with SummaryWriter(tmp_path / "run") as w:
        w.add_scalar("hparam/acc", 0.5, 3)
        # torch's positional order: (hparam_domain_discrete, run_name, global_step)
        w.add_hparams(
            {"lr": np.float64(0.1), "act": np.tanh, "none": None}, {"hparam/acc": 0.9}, {}, "eval", 7
        )
        w.add_hparams({"lr": 0.1}, {"hparam/loss": 0.2}, "again", 8)  # tensorboardX's (name, global_step)
        with pytest.raises(tracklog.ValueTypeError, match="should be dictionary"):
            w.add_hparams([("lr", 1)], {})  # type: ignore[arg-type]
    state = tracklog.Store().run(w.run.id)  # type: ignore[union-attr]
    assert state.params == {"lr": 0.1, "act": "tanh"}
    assert (state.metrics["hparam/acc"].last_step, state.metrics["hparam/loss"].last_step) == (7, 8)


def test_hparams_that_disagree_with_the_runs_make_a_run_of_their_own(tmp_path: Path) -> None:
    with SummaryWriter(tmp_path / "sweep") as w:
        for i, lr in enumerate((0.1, 0.2)):
            w.add_hparams({"lr": lr, "bsize": 32}, {"hparam/accuracy": 10 * i}, name=f"trial{i}")
    runs = {r.name: r for r in tracklog.Store().runs()}
    assert set(runs) == {"sweep", "sweep/trial1"}
    assert runs["sweep"].params == {"lr": 0.1, "bsize": 32}
    assert runs["sweep/trial1"].params == {"lr": 0.2, "bsize": 32}
    assert runs["sweep/trial1"].metrics["hparam/accuracy"].last == 10
    assert runs["sweep/trial1"].tags[LOG_DIR_TAG] == str(tmp_path / "sweep" / "trial1")
    assert runs["sweep/trial1"].status == "finished"


def test_flush_is_durable_and_the_context_manager_records_a_failure(tmp_path: Path) -> None:
    with pytest.raises(ZeroDivisionError), SummaryWriter(tmp_path / "run") as w:
        w.add_scalar("loss", 1.0, 0)
        w.flush()
        assert [e.value for e in tracklog.read_events(w.run.path) if e.kind == "metric"] == [1.0]  # type: ignore[union-attr]
        1 / 0  # noqa: B018
    state = tracklog.Store().run(w.run.id)  # type: ignore[union-attr]
    assert state.status == "failed" and state.error["type"] == "ZeroDivisionError"  # type: ignore[index]


def test_a_call_after_close_resumes_the_run_as_tensorboard_reopens(tmp_path: Path) -> None:
    w = SummaryWriter(tmp_path / "run")
    w.add_scalar("loss", 1.0, 0)
    w.close()
    w.close()  # idempotent
    w.add_scalar("loss", 0.5, 1)
    w.close()
    state = tracklog.Store().run(w.run.id)  # type: ignore[union-attr]
    assert state.status == "finished" and len(state.sessions) == 2
    assert tracklog.Store().history(state.id, "loss").value.tolist() == [1.0, 0.5]


def test_purge_step_resumes_the_log_dirs_run_and_supersedes_later_points(tmp_path: Path) -> None:
    with SummaryWriter(tmp_path / "run") as first:
        for step in range(10):
            first.add_scalar("loss", float(step), step)
    with SummaryWriter(tmp_path / "other") as unrelated:
        unrelated.add_scalar("loss", 99.0, 0)
    with SummaryWriter(tmp_path / "run", purge_step=6) as again:  # restarted from a step-6 checkpoint
        for step in range(6, 8):
            again.add_scalar("loss", step + 0.5, step)
    assert again.run.id == first.run.id  # type: ignore[union-attr]
    h = tracklog.Store().history(first.run.id, "loss")  # type: ignore[union-attr]
    assert h.step.tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert h.value.tolist() == [0, 1, 2, 3, 4, 5, 6.5, 7.5]
    with SummaryWriter(tmp_path / "fresh", purge_step=3) as fresh:  # nothing to resume: a new run
        fresh.add_scalar("loss", 1.0, 3)
    assert len(tracklog.Store().runs()) == 3


def test_write_to_disk_false_stores_nothing(tmp_path: Path) -> None:
    with SummaryWriter(tmp_path / "rank1", write_to_disk=False) as w:
        w.add_scalar("loss", 1.0, 0)
        w.add_scalars("m", {"a": 1.0})
        w.add_hparams({"lr": 0.1}, {"acc": 1.0})
        w.add_text("t", "x")
        w.flush()
    assert w.run is None
    assert not (tmp_path / "store").exists() or tracklog.Store().runs() == []
    assert not (tmp_path / "rank1").exists()


def test_use_metadata_gives_the_default_step_and_walltime(tmp_path: Path) -> None:
    with SummaryWriter(tmp_path / "run") as w:
        with w.use_metadata(global_step=10, walltime=1_700_000_000.0):
            w.add_scalar("loss", 1.0)
            w.add_scalar("loss", 2.0, 12)
            w.add_text("note", "hi")
        w.add_scalar("loss", 3.0)
    h = tracklog.Store().history(w.run.id, "loss")  # type: ignore[union-attr]
    assert h.step.tolist() == [10, 12, 13]
    assert h.timestamp.tolist()[:2] == [1_700_000_000.0, 1_700_000_000.0]
    assert "note@10" in tracklog.Store().run(w.run.id).tags  # type: ignore[union-attr]


def test_a_sigkill_loses_no_point_whose_add_scalar_returned(tmp_path: Path) -> None:
    # The child prints each step after add_scalar returned (acknowledged); it is killed mid-loop.
    import signal
    import subprocess

    from ..conftest import PY, python_env

    child_script = (
        "import sys\n"
        "from tracklog.integrations.tensorboard import SummaryWriter\n"
        f"w = SummaryWriter({str(tmp_path / 'logs' / 'run')!r}, root={str(tmp_path / 'store')!r})\n"
        "i = 0\n"
        "while True:\n"
        "    w.add_scalar('train/loss', 1.0 / (i + 1), i)\n"
        "    w.add_scalars('lr', {'a': i * 0.5, 'b': -i}, i)\n"
        "    sys.stdout.write(f'{i}\\n')\n"
        "    sys.stdout.flush()\n"
        "    i += 1\n"
    )
    child = subprocess.Popen([PY, "-c", child_script], stdout=subprocess.PIPE, env=python_env(), text=True)
    assert child.stdout is not None
    acked = []
    for line in child.stdout:
        acked.append(int(line))
        if len(acked) == 500:
            child.send_signal(signal.SIGKILL)
            break
    acked += [int(x) for x in child.stdout.read().split()]
    child.stdout.close()
    assert child.wait() == -signal.SIGKILL
    store = tracklog.Store(tmp_path / "store")
    (s,) = store.runs()
    run = store.run(s.id)
    assert run.status == "crashed" and acked == list(range(len(acked)))
    for key, value in (
        ("train/loss", lambda i: 1.0 / (i + 1)),
        ("lr/a", lambda i: i * 0.5),
        ("lr/b", lambda i: -float(i)),
    ):
        h = run.history(key)
        got = dict(zip(h.step.tolist(), h.value.tolist(), strict=True))
        assert all(got[i] == value(i) for i in acked), key  # every acknowledged point, as logged
