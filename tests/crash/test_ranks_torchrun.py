"""The real torchrun: a DDP job on CPU (gloo), 4 ranks into one run; one rank SIGKILLed and
the job restarted from its checkpoint into the same run (``--max-restarts=1``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tracklog

from ..conftest import python_env

pytest.importorskip("torch")
pytestmark = pytest.mark.slow

STEPS = 20

# A tiny DDP job. Rank 0 checkpoints every 5 steps between barriers; a restarted job loads
# it and resumes from its step. With argv[2] >= 0, rank 2 SIGKILLs itself at that step in
# the first attempt.
SCRIPT = r"""
import os, signal, sys
from datetime import timedelta
import torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
import tracklog

ckpt_dir, die_at, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
attempt = int(os.environ["TORCHELASTIC_RESTART_COUNT"])
# Each attempt's process group over its own key prefix of the agent's store: gloo would
# otherwise read the dead attempt's peer addresses after a restart and fail to connect.
base = dist.TCPStore(
    os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False, timeout=timedelta(seconds=120)
)
store = dist.PrefixStore(f"attempt-{attempt}", base)
dist.init_process_group("gloo", store=store, rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]))
rank = dist.get_rank()
ckpt = os.path.join(ckpt_dir, "ckpt.pt")
torch.manual_seed(0)
model = torch.nn.Linear(4, 1)
start = 0
if os.path.exists(ckpt):
    saved = torch.load(ckpt)
    model.load_state_dict(saved["model"])
    start = saved["step"]
ddp = DDP(model)
opt = torch.optim.SGD(ddp.parameters(), lr=0.05)
run = tracklog.start_run("ddp", params={"lr": 0.05, "world": dist.get_world_size()}, resume_step=start or None)
data = torch.Generator().manual_seed(rank)
for step in range(start, steps):
    x = torch.randn(8, 4, generator=data)
    loss = ((ddp(x) - x.sum(1, keepdim=True)) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    run.log_metric("loss", loss.item(), step=step)
    run.log_metric("rank", float(rank), step=step)
    if step % 5 == 4:
        dist.barrier()
        if rank == 0:
            torch.save({"model": model.state_dict(), "step": step + 1}, ckpt + ".tmp")
            os.replace(ckpt + ".tmp", ckpt)
        dist.barrier()
    if attempt == 0 and rank == 2 and step == die_at:
        run.flush()
        os.kill(os.getpid(), signal.SIGKILL)
run.close()
dist.destroy_process_group()
"""


def _torchrun(tmp_path: Path, root: Path, die_at: int) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or "torchrun"
    cmd = [
        torchrun,
        "--standalone",
        "--nproc_per_node=4",
        "--max-restarts=1",
        str(script),
        str(tmp_path),
        str(die_at),
        str(STEPS),
    ]
    env = {**python_env(), "TRACKLOG_DIR": str(root), "TRACKLOG_GIT": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def test_torchrun_logs_every_rank_into_one_run(tmp_path: Path, root: Path) -> None:
    done = _torchrun(tmp_path, root, die_at=-1)
    assert done.returncode == 0, done.stderr[-3000:]
    store = tracklog.Store(root)
    runs = store.runs()
    assert len(runs) == 1 and runs[0].id.startswith("torchrun-")
    state = runs[0]
    assert state.status == "finished" and sorted(state.ranks) == [0, 1, 2, 3] and state.world_size == 4
    assert state.params == {"lr": 0.05, "world": 4} and state.conflicts == {}
    for r in range(4):
        assert store.history(state.id, "loss", rank=r).step.tolist() == list(range(STEPS))
        assert set(store.history(state.id, "rank", rank=r).value.tolist()) == {float(r)}
    assert {s.launcher for s in state.sessions} == {"torchrun"}


def test_a_rank_killed_under_torchrun_restarts_from_its_checkpoint_into_the_same_run(
    tmp_path: Path, root: Path
) -> None:
    done = _torchrun(tmp_path, root, die_at=12)
    assert done.returncode == 0, done.stderr[-3000:]
    store = tracklog.Store(root)
    (state,) = store.runs()
    assert state.status == "finished"
    assert all(x.sessions == 2 for x in state.ranks.values()), state.ranks
    by_rank = {r: [s for s in state.sessions if s.rank == r] for r in range(4)}
    assert by_rank[2][0].status == "crashed"  # the kill is in the fold
    assert all(
        ss[0].status in ("failed", "killed") for r, ss in by_rank.items() if r != 2
    )  # torchrun stopped them
    assert all([s.restart for s in ss] == [0, 1] for ss in by_rank.values())
    assert all(ss[1].resume_step == 10 for ss in by_rank.values())  # the checkpoint after step 9
    for r in range(4):
        steps = store.history(state.id, "loss", rank=r).step.tolist()
        assert steps == list(range(STEPS)), (r, steps)  # no orphan step twice
    assert state == tracklog.replay(root / "runs" / state.id)
