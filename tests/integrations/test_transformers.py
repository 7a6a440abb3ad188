"""tracklog.integrations.transformers: a real ``Trainer.train()`` on a tiny random BERT, on the CPU.

Nothing is downloaded: the model is built from a config object, the data here, and the
hub is switched off (HF_HUB_OFFLINE=1) before transformers is imported.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

import tracklog

from ..conftest import PY, python_env

os.environ["HF_HUB_OFFLINE"] = "1"  # read when huggingface_hub is imported: set before it is
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
transformers = pytest.importorskip("transformers", reason="the hf extra is not installed")
torch = pytest.importorskip("torch")
pytest.importorskip("accelerate", reason="the hf extra is not installed (the Trainer needs accelerate)")

from tracklog.integrations.transformers import TracklogCallback  # noqa: E402

MAX_STEPS = 6


def tiny_bert() -> Any:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=16,
        num_labels=2,
    )
    return transformers.BertForSequenceClassification(config)


class Rows(torch.utils.data.Dataset):  # type: ignore[misc,name-defined]
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 50, (n, 8), generator=g)
        self.labels = (self.ids[:, 0] > 25).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {
            "input_ids": self.ids[i],
            "attention_mask": torch.ones(8, dtype=torch.long),
            "labels": self.labels[i],
        }


def training_args(tmp_path: Path, **kw: Any) -> Any:
    opts: dict[str, Any] = {
        "output_dir": str(tmp_path / "out"),
        "max_steps": MAX_STEPS,
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 8,
        "learning_rate": 1e-3,
        "logging_steps": 2,
        "eval_strategy": "steps",
        "eval_steps": 3,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": True,
        "disable_tqdm": True,
        "seed": 0,
        "dataloader_num_workers": 0,
    }
    return transformers.TrainingArguments(**{**opts, **kw})


def trainer(tmp_path: Path, callback: Any, *before: Any, **kw: Any) -> Any:
    return transformers.Trainer(
        model=tiny_bert(),
        args=training_args(tmp_path, **kw),
        train_dataset=Rows(32, 0),
        eval_dataset=Rows(8, 1),
        callbacks=[*before, callback],
    )


class Recorder(transformers.TrainerCallback):  # type: ignore[misc]
    """What the Trainer handed its callbacks' on_log, to compare with the store."""

    def __init__(self) -> None:
        self.logs: list[tuple[int, dict[str, Any]]] = []

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
        self.logs.append((state.global_step, dict(logs)))


def test_a_train_logs_every_on_log_at_the_global_step_with_args_and_config_as_params(tmp_path: Path) -> None:
    rec = Recorder()
    t = trainer(tmp_path, TracklogCallback(name="tiny-bert"), rec)  # before the printer pops total_flos
    t.train()

    (run,) = tracklog.Store().runs()
    assert (run.experiment, run.name, run.status, run.error) == ("huggingface", "tiny-bert", "finished", None)
    # Every number the Trainer logged, renamed as the TensorBoard and W&B callbacks rename it.
    expected: dict[str, list[tuple[int, float]]] = {}
    for step, logs in rec.logs:
        for k, v in logs.items():
            name = f"eval/{k[5:]}" if k.startswith("eval_") else f"train/{k}"
            expected.setdefault(name, []).append((step, float(v)))
    stored = {
        k: list(zip(h.step.tolist(), h.value.tolist(), strict=True))
        for k in run.metrics
        for h in [run.history(k)]
    }
    assert stored == expected
    assert [s for s, _ in stored["train/loss"]] == [2, 4, 6]
    assert [s for s, _ in stored["eval/loss"]] == [3, 6]
    assert {
        "train/learning_rate",
        "train/grad_norm",
        "train/epoch",
        "train/train_runtime",
        "train/train_loss",
    } <= set(stored)
    assert stored["train/train_loss"] == [(MAX_STEPS, pytest.approx(t.state.log_history[-1]["train_loss"]))]
    # TrainingArguments and the model config, flattened.
    args = t.args.to_dict()
    assert run.params["learning_rate"] == 1e-3 == args["learning_rate"]
    assert run.params["max_steps"] == MAX_STEPS and run.params["report_to"] == args["report_to"]
    assert run.params["hub_token"] == "<HUB_TOKEN>"  # masked, as the Trainer masks it
    assert (run.params["model/hidden_size"], run.params["model/num_hidden_layers"]) == (32, 1)
    assert run.params["model/id2label/0"] == "LABEL_0"
    assert len([k for k in run.params if not k.startswith("model/")]) >= len(args)


def test_log_checkpoints_stores_each_checkpoint_directory_as_it_is_saved(tmp_path: Path) -> None:
    trainer(tmp_path, TracklogCallback(log_checkpoints=True), save_strategy="steps", save_steps=3).train()
    (run,) = tracklog.Store().runs()
    for step in (3, 6):
        ckpt = tmp_path / "out" / f"checkpoint-{step}"
        files = {
            f"checkpoint-{step}/{p.relative_to(ckpt).as_posix()}": p.stat().st_size
            for p in ckpt.rglob("*")
            if p.is_file()
        }
        assert f"checkpoint-{step}/model.safetensors" in files
        assert {
            k: v["size"] for k, v in run.artifacts.items() if k.startswith(f"checkpoint-{step}/")
        } == files
    assert {k.split("/")[0] for k in run.artifacts} == {"checkpoint-3", "checkpoint-6"}


def test_log_checkpoints_end_stores_the_best_checkpoint_once(tmp_path: Path) -> None:
    t = trainer(
        tmp_path,
        TracklogCallback(log_checkpoints="end"),
        save_strategy="steps",
        save_steps=3,
        load_best_model_at_end=True,
        metric_for_best_model="loss",
    )
    t.train()
    (run,) = tracklog.Store().runs()
    best = Path(t.state.best_model_checkpoint).name
    assert {k.split("/")[0] for k in run.artifacts} == {best}


def test_evaluate_after_train_resumes_the_run_and_a_second_train_with_other_args_is_a_new_run(
    tmp_path: Path,
) -> None:
    cb = TracklogCallback()
    t = trainer(tmp_path, cb)
    t.train()
    first = cb.run
    metrics = t.evaluate()
    assert cb.run is not None and cb.run.id == first.id and not cb.run.closed
    (run,) = tracklog.Store().runs()
    # A resumed session's first point of a key supersedes the key's points at that step and later.
    assert len(run.sessions) == 2 and run.history("eval/loss").step.tolist() == [3, 6]
    assert run.metrics["eval/loss"].last == pytest.approx(metrics["eval_loss"])

    t.args.learning_rate = 5e-4  # other arguments: a run of its own
    t.train()
    runs = tracklog.Store().runs()
    assert len(runs) == 2 and {r.params["learning_rate"] for r in runs} == {1e-3, 5e-4}
    assert {r.status for r in runs} == {"finished"}


def test_nothing_is_logged_off_the_world_process_zero(tmp_path: Path) -> None:
    cb = TracklogCallback()
    state = transformers.TrainerState(is_world_process_zero=False)
    cb.on_train_begin(training_args(tmp_path), state, None, model=tiny_bert())
    cb.on_log(training_args(tmp_path), state, None, logs={"loss": 1.0})
    cb.on_train_end(training_args(tmp_path), state, None)
    assert cb.run is None and not tracklog.Store().exists()


RAISES = """
import os
os.environ["HF_HUB_OFFLINE"] = "1"
import transformers
from tests.integrations.test_transformers import trainer
from tracklog.integrations.transformers import TracklogCallback
from pathlib import Path

class Boom(transformers.TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        if state.global_step == 4:
            raise RuntimeError("boom at step 4")

t = trainer(Path({tmp!r}), TracklogCallback())
t.add_callback(Boom())
{call}
"""


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("t.train()", "boom at step 4"),  # uncaught: tracklog's exception hook
        (  # caught: the run ends failed at exit, not finished
            "try:\n    t.train()\nexcept RuntimeError:\n    print('caught')",
            "transformers Trainer.train() raised before its end hook ran, and the exception was caught",
        ),
    ],
    ids=["uncaught", "caught"],
)
def test_a_train_that_raises_ends_the_run_failed(tmp_path: Path, call: str, message: str) -> None:
    script = textwrap.dedent(RAISES).format(tmp=str(tmp_path), call=call)
    out = subprocess.run([PY, "-c", script], env=python_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == (1 if call == "t.train()" else 0), out.stderr[-3000:]
    (run,) = tracklog.Store().runs()
    assert run.status == "failed"
    assert run.error == {"type": "RuntimeError", "message": message}
    assert run.history("train/loss").step.tolist() == [2]  # step 4's loss is logged after on_step_end
