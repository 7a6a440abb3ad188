"""tracklog.integrations.lightning: real ``Trainer.fit`` runs on the CPU, a 2-layer MLP on data made here."""

from __future__ import annotations

import signal
import socket
import subprocess
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import tracklog

from ..conftest import PY, python_env

pl = pytest.importorskip("lightning.pytorch", reason="the lightning extra is not installed")
torch = pytest.importorskip("torch")

from tracklog.integrations.lightning import TracklogLogger  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:.*isinstance\\(treespec, LeafSpec\\).*"
    ),  # Lightning's, under torch 2.13
    pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`"),
]

N_BATCHES = 3  # limit_train_batches
HPARAMS = {"lr": 0.05, "hidden": 8, "opt": {"name": "sgd", "momentum": 0.9}, "act": torch.nn.Tanh}


def mlp_module(
    package: ModuleType, raise_at: int | None = None, exc: type[BaseException] = RuntimeError
) -> Any:
    """A LightningModule of ``package`` (lightning.pytorch or pytorch_lightning) that records what it logs."""

    class MLP(package.LightningModule):  # type: ignore[misc,name-defined]
        def __init__(self, lr: float, hidden: int, opt: dict[str, Any], act: type) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(torch.nn.Linear(4, hidden), act(), torch.nn.Linear(hidden, 1))
            self.seen: list[tuple[int, float]] = []
            self.val_seen: list[float] = []

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            if raise_at is not None and self.global_step == raise_at:
                raise exc(f"boom at step {self.global_step}")
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train/loss", loss)
            self.seen.append((self.global_step, loss.item()))
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("val/loss", loss)
            self.val_seen.append(loss.item())

        def test_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            self.log("test/loss", torch.nn.functional.mse_loss(self.net(x), y))

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(
                self.parameters(), lr=self.hparams.lr, momentum=self.hparams.opt["momentum"]
            )

    return MLP(**HPARAMS)


def loader() -> Any:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g)
    y = x.sum(dim=1, keepdim=True)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)


def trainer(package: ModuleType, tmp_path: Path, logger: Any, **kw: Any) -> Any:
    opts: dict[str, Any] = {
        "max_epochs": 2,
        "limit_train_batches": N_BATCHES,
        "limit_val_batches": 1,
        "num_sanity_val_steps": 0,
        "log_every_n_steps": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "accelerator": "cpu",
        "default_root_dir": str(tmp_path),
        "logger": logger,
    }
    return package.Trainer(**{**opts, **kw})


def steps(run: tracklog.RunState, key: str) -> list[int]:
    return run.history(key).step.tolist()


def test_a_clean_fit_ends_finished_with_the_hyperparams_and_every_step_logged(tmp_path: Path) -> None:
    model = mlp_module(pl)
    logger = TracklogLogger(name="mlp")
    trainer(pl, tmp_path, logger).fit(model, loader(), loader())

    (run,) = tracklog.Store().runs()
    assert (run.experiment, run.name, run.status, run.error) == ("lightning_logs", "mlp", "finished", None)
    assert logger.version == run.id and logger.name == "lightning_logs"
    assert run.params == {"lr": 0.05, "hidden": 8, "opt/name": "sgd", "opt/momentum": 0.9, "act": "Tanh"}
    # Each training step's loss at the trainer's step (the optimizer steps taken before it is logged).
    loss = run.history("train/loss")
    assert list(zip(loss.step.tolist(), loss.value.tolist(), strict=True)) == model.seen
    assert [s for s, _ in model.seen] == list(range(2 * N_BATCHES))
    # Validation once per epoch, at the step training had reached; Lightning adds "epoch".
    assert steps(run, "val/loss") == [N_BATCHES - 1, 2 * N_BATCHES - 1]
    assert run.history("val/loss").value.tolist() == model.val_seen
    assert set(run.metrics) == {"train/loss", "val/loss", "epoch"}
    assert run.history("epoch").value.tolist()[-1] == 1.0


def test_a_fit_that_raises_mid_fit_ends_failed_with_the_error(tmp_path: Path) -> None:
    model = mlp_module(pl, raise_at=4)
    with pytest.raises(RuntimeError, match="boom at step 4"):
        trainer(pl, tmp_path, TracklogLogger()).fit(model, loader())
    (run,) = tracklog.Store().runs()
    assert run.status == "failed"
    assert run.error == {"type": "RuntimeError", "message": "boom at step 4"}
    assert steps(run, "train/loss") == [0, 1, 2, 3]


def test_ctrl_c_in_a_fit_ends_the_run_killed(tmp_path: Path) -> None:
    model = mlp_module(pl, raise_at=2, exc=KeyboardInterrupt)
    before = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit):  # Lightning's graceful shutdown exits 1
            trainer(pl, tmp_path, TracklogLogger()).fit(model, loader())
    finally:
        signal.signal(signal.SIGINT, before)  # Lightning ignores further Ctrl-C
    (run,) = tracklog.Store().runs()
    assert (run.status, run.error, run.sessions[-1].signal) == ("killed", None, "SIGINT")
    assert steps(run, "train/loss") == [0, 1]


def test_test_after_fit_resumes_the_run(tmp_path: Path) -> None:
    model = mlp_module(pl)
    logger = TracklogLogger()
    t = trainer(pl, tmp_path, logger, max_epochs=1)
    t.fit(model, loader())
    t.test(model, loader(), verbose=False)
    (run,) = tracklog.Store().runs()
    assert run.status == "finished" and len(run.sessions) == 2
    assert [s.status for s in run.sessions] == ["finished", "finished"]
    assert steps(run, "test/loss") == [N_BATCHES]  # the step training had reached
    assert steps(run, "train/loss") == list(range(N_BATCHES))


def test_log_model_all_stores_every_checkpoint_as_it_is_saved(tmp_path: Path) -> None:
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, monitor="val/loss")
    trainer(pl, tmp_path, TracklogLogger(log_model="all"), callbacks=[ckpt], enable_checkpointing=True).fit(
        mlp_module(pl), loader(), loader()
    )
    (run,) = tracklog.Store().runs()
    names = {f"checkpoints/{p.name}" for p in (tmp_path / "ckpt").iterdir()}
    assert names == {"checkpoints/epoch=0-step=3.ckpt", "checkpoints/epoch=1-step=6.ckpt"}
    assert set(run.artifacts) == names
    for p in (tmp_path / "ckpt").iterdir():
        assert run.artifacts[f"checkpoints/{p.name}"]["size"] == p.stat().st_size
    assert run.tags["checkpoint.best"] == f"checkpoints/{Path(ckpt.best_model_path).name}"
    assert run.tags["checkpoint.best_score"] == pytest.approx(float(ckpt.best_model_score))


def test_log_model_true_stores_the_kept_checkpoints_when_training_ends(tmp_path: Path) -> None:
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=1, monitor="val/loss")
    logger = TracklogLogger(log_model=True)
    t = trainer(pl, tmp_path, logger, callbacks=[ckpt], enable_checkpointing=True, max_epochs=3)
    t.fit(mlp_module(pl), loader(), loader())
    (run,) = tracklog.Store().runs()
    kept = [p.name for p in (tmp_path / "ckpt").iterdir()]
    assert len(kept) == 1 and set(run.artifacts) == {f"checkpoints/{kept[0]}"}
    assert run.tags["checkpoint.best"] == f"checkpoints/{kept[0]}"


def test_without_log_model_no_checkpoint_is_stored_and_none_lands_in_the_store(tmp_path: Path) -> None:
    t = trainer(pl, tmp_path, TracklogLogger(), enable_checkpointing=True, max_epochs=1)
    t.fit(mlp_module(pl), loader())
    (run,) = tracklog.Store().runs()
    assert run.artifacts == {}
    # ModelCheckpoint's default place: the Trainer's root dir, experiment, run id, never the store.
    assert [p.name for p in (tmp_path / "lightning_logs" / run.id / "checkpoints").iterdir()] == [
        "epoch=0-step=3.ckpt"
    ]


def test_on_a_rank_other_than_zero_nothing_is_logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    monkeypatch.setattr(rank_zero_only, "rank", 1)
    logger = TracklogLogger()
    assert not isinstance(logger.experiment, tracklog.Run)  # Lightning's dummy experiment
    logger.log_hyperparams({"lr": 1})
    logger.log_metrics({"loss": 1.0}, 0)
    logger.finalize("success")
    assert logger.version is None
    assert not tracklog.Store().exists() or tracklog.Store().runs() == []


def test_prefix_and_values_that_are_not_numbers(tmp_path: Path) -> None:
    logger = TracklogLogger(prefix="ft")
    with pytest.warns(tracklog.TracklogWarning, match="'note' as a str, which is not a number"):
        logger.log_metrics({"loss": torch.tensor(0.5), "note": "hi", "n": 3}, step=7)
    logger.log_hyperparams({"a": {"b": {"c": 1}}, "t": torch.tensor([1.0, 2.0]), "none": None})
    logger.finalize("success")
    (run,) = tracklog.Store().runs()
    assert {k: (m.last, m.last_step) for k, m in run.metrics.items()} == {
        "ft-loss": (0.5, 7),
        "ft-n": (3.0, 7),
    }
    assert run.params == {"a/b/c": 1, "t": [1.0, 2.0], "none": None}


def test_a_pytorch_lightning_trainer_takes_the_same_logger(tmp_path: Path) -> None:
    ptl = pytest.importorskip("pytorch_lightning", reason="the pytorch_lightning package is not installed")
    model = mlp_module(ptl)
    trainer(ptl, tmp_path, TracklogLogger(), max_epochs=1).fit(model, loader())
    (run,) = tracklog.Store().runs()
    assert run.status == "finished" and steps(run, "train/loss") == list(range(N_BATCHES))


DDP_SCRIPT = """
import sys, torch, lightning.pytorch as pl
from tracklog.integrations.lightning import TracklogLogger

class MLP(pl.LightningModule):
    def __init__(self, lr=0.05):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train/loss", loss)
        self.log("rank", float(self.global_rank), reduce_fx="max", sync_dist=True)
        return loss
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

x = torch.randn(64, 4)
data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
trainer = pl.Trainer(max_epochs=1, limit_train_batches=3, log_every_n_steps=1, enable_progress_bar=False,
                     enable_model_summary=False, enable_checkpointing=len(sys.argv) > 1, accelerator="cpu",
                     devices=2, strategy="ddp", logger=TracklogLogger(all_ranks=len(sys.argv) > 1,
                                                                       log_model=len(sys.argv) > 1))
trainer.fit(MLP(), data)
print("rank", trainer.global_rank, "done")
"""


def _ddp(tmp_path: Path, *args: str) -> None:
    script = tmp_path / "ddp.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT))
    with socket.socket() as s:  # a free port for the two ranks' rendezvous, on loopback
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**python_env(), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    out = subprocess.run(
        [PY, str(script), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-4000:]


@pytest.mark.slow
def test_under_ddp_only_rank_zero_writes_one_run(tmp_path: Path) -> None:
    _ddp(tmp_path)
    (run,) = tracklog.Store().runs()
    assert run.ranks == {} and run.world_size == 1  # one writer: a single-process run
    assert run.status == "finished" and run.params == {"lr": 0.05}
    assert steps(run, "train/loss") == [0, 1, 2]  # once per step, not once per rank
    assert run.history("rank").value.tolist() == [1.0, 1.0, 1.0]  # both ranks took part
    assert len(run.sessions) == 1


@pytest.mark.slow
def test_under_ddp_all_ranks_write_one_run_each_as_its_rank(tmp_path: Path) -> None:
    _ddp(tmp_path, "all")
    (run,) = tracklog.Store().runs()
    assert run.status == "finished" and sorted(run.ranks) == [0, 1] and run.world_size == 2
    assert run.params == {"lr": 0.05} and run.conflicts == {}
    for r in (0, 1):
        assert run.history("train/loss", rank=r).step.tolist() == [0, 1, 2]
    # Checkpoints come from rank 0 alone (it saves the files), stored once.
    assert [a for a in run.artifacts if a.startswith("checkpoints/")]
    assert {s.rank for s in run.sessions} == {0, 1}
