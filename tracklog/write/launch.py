"""Who this process is in a launched job: its rank, the world size, node, restart and job.

Read from the launcher's environment variables only: no communication between ranks and no
import of torch or MPI. docs/RANKS.md ("Launchers: what tracklog reads") holds the table of
variables, the precedence and the run-id rule; this docstring is its short form.

- **Precedence.** When several launchers' variables are set, the one closest to the process
  wins: torchrun, then Open MPI, then PMI (MPICH, Intel MPI), then PMIx, then SLURM. A
  launcher's variables describe the processes *it* started, and an inner launcher inherits the
  outer one's environment: under ``srun torchrun``, ``SLURM_PROCID`` numbers the torchrun agents
  and ``RANK`` the workers, and it is a worker that logs. The variables of a launcher that lost
  are not read at all (not even checked).
- **SLURM counts only inside an srun step** (``SLURM_STEP_ID`` set): a batch script itself has
  ``SLURM_NTASKS`` of the whole allocation and ``SLURM_PROCID=0``, but is one process.
- **Malformed values** (not a plain non-negative decimal integer, a rank not below the world
  size, a world size of 0) raise ``ValidationError`` naming the variable and its value. An
  empty variable counts as unset.
- **Explicit arguments** (``identify(rank=, world_size=)``) override the environment; the
  launcher and job identity still come from it.

The run-id rule: ``derived_run_id`` hashes the launcher, its job identity and the experiment
into a run id, only when the world size is above 1 and the launcher names its job, so every
rank of one job lands in the same run without a word between them, and a requeued or
elastically restarted job (same job identity, new restart count, maybe a new world size)
lands there too. A job identity must be unique over time, not just among running jobs:
torchrun's rendezvous id (unless it is torchrun's default, the literal ``none``), SLURM's
``[cluster:]job.step`` (with the array task), and an MPI job's namespace only inside a SLURM
job, scoped by its job id (MPI's own ids embed mpirun's host and pid, which recur). ``ambient_run_id`` adds ``$TRACKLOG_RUN_ID`` (it wins over derivation) and
the process-level rule that only the first run a process starts gets either: a script that
starts several runs one after another keeps them apart.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from ..errors import ValidationError
from ..store.paths import check_run_id
from .validate import check_key

Launcher = Literal["torchrun", "slurm", "mpi"]

ENV_RUN_ID: Final = "TRACKLOG_RUN_ID"
MAX_ID_NUMBER: Final = 2**31 - 1  # ranks, sizes, node ids and restart counts above this are typos
# torchrun's default --rdzv-id: the same literal for every job, so it identifies none.
NO_RDZV_ID: Final = "none"
DERIVED_ID_VERSION: Final = "tracklog derived run id 1"  # hashed in; changing it moves every run
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: int() also takes "+3", " 3", "3_0" and "٣"
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_CLUSTER = re.compile(r"[A-Za-z0-9_.-]{1,128}")


@dataclass(frozen=True)
class Launch:
    """This process's place in its job, as the launcher's environment (or the caller) says.

    ``rank`` is in ``[0, world_size)``; ``local_rank`` is the rank among the job's processes on
    this node (None when the launcher does not say); ``node`` is the node's index in the job
    (torchrun's ``GROUP_RANK``, ``SLURM_NODEID``; None for MPI); ``restart`` counts the
    launcher's restarts of this process (0 at the first attempt); ``job`` is the job's
    identity, unique over time (None when the launcher gives none: see the module docstring);
    ``launcher`` is None outside any launcher.
    """

    rank: int = 0
    local_rank: int | None = 0
    world_size: int = 1
    node: int | None = None
    restart: int = 0
    job: str | None = None
    launcher: Launcher | None = None

    @property
    def distributed(self) -> bool:
        """True when the job has more than one process."""
        return self.world_size > 1


@dataclass(frozen=True)
class _Found:
    """What one launcher's variables say, before explicit arguments and the final checks."""

    launcher: Launcher
    rank: int
    rank_var: str
    world_size: int | None  # None: this launcher gives the rank only (PMIx)
    world_var: str | None
    local_rank: int | None = None
    local_var: str | None = None
    node: int | None = None
    restart: int = 0
    job: str | None = None


# -- reading variables ---------------------------------------------------------------------------


def _get(env: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    """The first of ``names`` that is set and not empty, with its value."""
    for name in names:
        value = env.get(name)
        if value:  # unset and empty are alike: `export RANK=` sets nothing
            return name, value
    return None


def _number(name: str, raw: str) -> int:
    if not _DIGITS.fullmatch(raw) or int(raw) > MAX_ID_NUMBER:
        raise ValidationError(
            f"launcher variable {name}={raw!r} is not a non-negative integer "
            f"(plain decimal digits, at most {MAX_ID_NUMBER}); fix or unset it"
        )
    return int(raw)


def _int(env: Mapping[str, str], *names: str) -> tuple[str, int] | None:
    got = _get(env, *names)
    return None if got is None else (got[0], _number(*got))


def _need(env: Mapping[str, str], launcher: str, given: str, *names: str) -> tuple[str, int]:
    got = _int(env, *names)
    if got is None:
        raise ValidationError(
            f"{launcher}: {given} is set but {' or '.join(names)} is not; the launch environment "
            "is incomplete (pass rank= and world_size= to say it yourself)"
        )
    return got


def _identity(name: str, raw: str) -> str:
    if not raw.isprintable() or len(raw) > 1024:
        raise ValidationError(
            f"launcher variable {name}={raw[:80]!r} is not a printable job identity of at most 1024 chars"
        )
    return raw


# -- one probe per launcher ----------------------------------------------------------------------


def _torchrun(env: Mapping[str, str]) -> _Found | None:
    elastic = _get(env, "TORCHELASTIC_RUN_ID")
    if elastic is None and not (env.get("RANK") and env.get("WORLD_SIZE")):
        return None  # a lone RANK may mean anything; torch's convention sets both
    given = "TORCHELASTIC_RUN_ID" if elastic is not None else "RANK"
    rank_var, rank = _need(env, "torchrun", given, "RANK")
    world_var, world = _need(env, "torchrun", given, "WORLD_SIZE")
    local = _int(env, "LOCAL_RANK")
    node = _int(env, "GROUP_RANK")
    restart = _int(env, "TORCHELASTIC_RESTART_COUNT")
    job = None
    if elastic is not None and elastic[1] != NO_RDZV_ID:
        job = _identity(*elastic)
    return _Found(
        "torchrun",
        rank,
        rank_var,
        world,
        world_var,
        local[1] if local else None,
        local[0] if local else None,
        node[1] if node else None,
        restart[1] if restart else 0,
        job,
    )


def _slurm_job(env: Mapping[str, str]) -> str | None:
    """``[<cluster>:]<job id>`` of the SLURM job around this process, or None outside one."""
    job_id = _int(env, "SLURM_JOB_ID", "SLURM_JOBID")
    if job_id is None:
        return None
    cluster = _get(env, "SLURM_CLUSTER_NAME")
    if cluster is None:
        return str(job_id[1])
    if not _CLUSTER.fullmatch(cluster[1]):
        raise ValidationError(
            f"launcher variable SLURM_CLUSTER_NAME={cluster[1][:80]!r} is not a cluster name "
            "(letters, digits, '_', '.', '-')"
        )
    return f"{cluster[1]}:{job_id[1]}"


def _mpi_job(env: Mapping[str, str]) -> str | None:
    """An MPI job's identity: its namespace or job id, within the SLURM job around it.

    MPI's own ids are unique only among jobs running at the same time (Open MPI's embed
    mpirun's host and pid, or a 16-bit hash of them), so two jobs months apart may share
    one; a SLURM job id is never reused on its cluster. Outside SLURM: None (no derivation).
    """
    got = _get(env, "PMIX_NAMESPACE", "PMI_JOBID", "OMPI_MCA_ess_base_jobid", "OMPI_MCA_orte_ess_jobid")
    slurm = _slurm_job(env)
    if got is None or slurm is None:
        return None
    return f"{slurm}/{_identity(*got)}"


def _mpi_like(
    env: Mapping[str, str], label: str, rank_name: str, size_name: str, local_name: str
) -> _Found | None:
    """Open MPI and PMI (MPICH, Intel MPI) say the same three things under their own names."""
    if not (env.get(rank_name) or env.get(size_name)):
        return None
    given = rank_name if env.get(rank_name) else size_name
    rank_var, rank = _need(env, label, given, rank_name)
    world_var, world = _need(env, label, given, size_name)
    local = _int(env, local_name)
    return _Found(
        "mpi",
        rank,
        rank_var,
        world,
        world_var,
        local[1] if local else None,
        local[0] if local else None,
        job=_mpi_job(env),
    )


def _open_mpi(env: Mapping[str, str]) -> _Found | None:
    return _mpi_like(
        env, "Open MPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"
    )


def _pmi(env: Mapping[str, str]) -> _Found | None:
    return _mpi_like(env, "PMI", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID")


def _pmix(env: Mapping[str, str]) -> _Found | None:
    got = _int(env, "PMIX_RANK")
    if got is None:
        return None
    slurm = _slurm(env)
    if slurm is not None:
        # srun --mpi=pmix starts the ranks itself: its step describes them, job identity included.
        if slurm.rank != got[1]:
            raise ValidationError(
                f"PMIX_RANK={env['PMIX_RANK']!r} and SLURM_PROCID={env.get('SLURM_PROCID')!r} disagree "
                "inside one srun step; pass rank= and world_size= to say which is this process"
            )
        return slurm
    return _Found("mpi", got[1], got[0], None, None, job=_mpi_job(env))


def _slurm(env: Mapping[str, str]) -> _Found | None:
    step = _int(env, "SLURM_STEP_ID", "SLURM_STEPID")
    if step is None:
        return None  # a batch script or salloc shell: the allocation, not a task of a step
    rank_var, rank = _need(env, "SLURM", step[0], "SLURM_PROCID")
    world_var, world = _need(env, "SLURM", step[0], "SLURM_NTASKS", "SLURM_NPROCS")
    local = _int(env, "SLURM_LOCALID")
    node = _int(env, "SLURM_NODEID")
    restart = _int(env, "SLURM_RESTART_COUNT")
    slurm_job = _slurm_job(env)
    job = None
    if slurm_job is not None:
        job = f"{slurm_job}.{step[1]}"
        array_job = _int(env, "SLURM_ARRAY_JOB_ID")
        array_task = _int(env, "SLURM_ARRAY_TASK_ID")
        if array_job is not None and array_task is not None:
            job = f"{job} array {array_job[1]}_{array_task[1]}"
    return _Found(
        "slurm",
        rank,
        rank_var,
        world,
        world_var,
        local[1] if local else None,
        local[0] if local else None,
        node[1] if node else None,
        restart[1] if restart else 0,
        job,
    )


PROBES: Final = (_torchrun, _open_mpi, _pmi, _pmix, _slurm)  # the precedence, first wins


# -- the public functions ------------------------------------------------------------------------


def detect(env: Mapping[str, str] | None = None) -> Launch:
    """This process's ``Launch`` from ``env`` (default ``os.environ``) alone."""
    return identify(env=env)


def identify(
    rank: int | None = None, world_size: int | None = None, env: Mapping[str, str] | None = None
) -> Launch:
    """The ``Launch`` of this process: ``rank`` and ``world_size`` when given, else the launcher's.

    Raises ``ValidationError`` for a malformed variable or argument, naming it and its value.
    """
    env = os.environ if env is None else env
    found = None
    for probe in PROBES:
        found = probe(env)
        if found is not None:
            break
    for what, value in (("rank", rank), ("world_size", world_size)):
        if value is not None and (type(value) is not int or not 0 <= value <= MAX_ID_NUMBER):
            raise ValidationError(f"{what} must be an int in [0, {MAX_ID_NUMBER}], got {value!r}")
    if rank is not None:
        r, r_from = rank, "the rank argument"
    elif found is not None:
        r, r_from = found.rank, f"{found.rank_var}={env[found.rank_var]!r}"
    else:
        r, r_from = 0, "the default"
    if world_size is not None:
        w, w_from = world_size, "the world_size argument"
    elif found is not None and found.world_size is not None:
        w, w_from = found.world_size, f"{found.world_var}={env[found.world_var or '']!r}"
    elif found is not None:
        raise ValidationError(
            f"{found.rank_var}={env[found.rank_var]!r} gives this process's rank, but no launcher "
            "variable gives the world size; pass world_size="
        )
    else:
        w, w_from = 1, "the default (no launcher variables, no world_size argument)"
    if w < 1:
        raise ValidationError(f"world size must be at least 1, got {w} from {w_from}")
    if r >= w:
        raise ValidationError(f"rank {r} (from {r_from}) is not below the world size {w} (from {w_from})")
    if found is None:
        return Launch(rank=r, world_size=w)
    if found.local_rank is not None and found.local_rank >= w:
        raise ValidationError(
            f"local rank {found.local_var}={env[found.local_var or '']!r} is not below the world size "
            f"{w} (from {w_from})"
        )
    return Launch(r, found.local_rank, w, found.node, found.restart, found.job, found.launcher)


def derived_run_id(launch: Launch, experiment: str) -> str | None:
    """The run id every rank of ``launch``'s job computes alike, or None.

    Only for a job of more than one process whose launcher names the job (``launch.job``):
    a single process never derives. The id is ``<launcher>-`` then 26 Crockford base32 chars
    of a SHA-256 over the launcher, the job identity (for SLURM: cluster, job id, step id,
    array job and task) and the experiment; rank, node, world size and restart count are left out, so
    every rank, a requeue and an elastic restart (even to another world size) agree.
    Different jobs or experiments collide with probability ~2^-130.
    """
    if launch.world_size <= 1 or launch.job is None or launch.launcher is None:
        return None
    experiment = check_key(experiment, "experiment")
    text = json.dumps([DERIVED_ID_VERSION, launch.launcher, launch.job, experiment], ensure_ascii=False)
    value = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:17], "big") >> 6  # 130 bits
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return check_run_id(f"{launch.launcher}-{''.join(reversed(chars))}")


# -- the first run of a process ------------------------------------------------------------------

# Process-level: has this process started a run yet? Set by note_run_started, never cleared
# (reset() aside, for tests). Not cleared in a forked child either: a child of a process that
# started a run must not derive its parent's id and merge into the parent's run.
_started = False
_guard = threading.Lock()


def ambient_run_id(launch: Launch, experiment: str, env: Mapping[str, str] | None = None) -> str | None:
    """The run id a ``start_run`` given no ``run_id`` should use, or None for a fresh one.

    ``$TRACKLOG_RUN_ID`` when set (any world size), else ``derived_run_id``; either only for
    the first run this process starts (see ``note_run_started``), so a script that starts
    several runs one after another inside one job never merges them. Does not itself count
    as starting a run. Two threads starting the process's first runs at the same moment may
    both be answered; a job's first run is normally started by its main thread.
    """
    with _guard:
        if _started:
            return None
    env = os.environ if env is None else env
    given = env.get(ENV_RUN_ID)
    if given:
        try:
            return check_run_id(given)
        except ValidationError:
            raise ValidationError(
                f"{ENV_RUN_ID}={given!r} is not a valid run id: use 1-128 letters, digits, '.', '_' "
                "or '-', starting with a letter or digit"
            ) from None
    return derived_run_id(launch, experiment)


def note_run_started() -> None:
    """Record that this process has started a run: ``ambient_run_id`` answers None from now on."""
    global _started
    with _guard:
        _started = True


def first_run_pending() -> bool:
    """True until this process has started a run."""
    with _guard:
        return not _started


def reset() -> None:
    """Forget that this process started a run (for tests)."""
    global _started
    with _guard:
        _started = False
