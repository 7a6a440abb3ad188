"""write/launch.py: a process's rank, world and job from its launcher's environment; the run-id rule."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.conftest import PY, ROOT_DIR, python_env
from tracklog.errors import ValidationError
from tracklog.store.paths import check_run_id
from tracklog.write import launch
from tracklog.write.launch import Launch, ambient_run_id, derived_run_id, detect, identify

# What each launcher really sets (the variables tracklog reads, plus some it does not).
TORCHRUN = {
    "RANK": "5",
    "LOCAL_RANK": "1",
    "WORLD_SIZE": "8",
    "LOCAL_WORLD_SIZE": "4",
    "GROUP_RANK": "1",
    "TORCHELASTIC_RESTART_COUNT": "0",
    "TORCHELASTIC_MAX_RESTARTS": "3",
    "TORCHELASTIC_RUN_ID": "job-4711",
    "MASTER_ADDR": "node1",
    "MASTER_PORT": "29500",
}
SLURM_TASK = {
    "SLURM_JOB_ID": "123456",
    "SLURM_JOBID": "123456",
    "SLURM_STEP_ID": "0",
    "SLURM_STEPID": "0",
    "SLURM_PROCID": "6",
    "SLURM_LOCALID": "2",
    "SLURM_NTASKS": "8",
    "SLURM_NODEID": "1",
    "SLURM_NNODES": "2",
}
# The batch script of an sbatch -n 8: the allocation, but one process.
SLURM_BATCH = {
    "SLURM_JOB_ID": "123456",
    "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0",
    "SLURM_NTASKS": "8",
    "SLURM_NODEID": "0",
}
OPEN_MPI = {
    "OMPI_COMM_WORLD_RANK": "3",
    "OMPI_COMM_WORLD_SIZE": "4",
    "OMPI_COMM_WORLD_LOCAL_RANK": "1",
    "OMPI_COMM_WORLD_LOCAL_SIZE": "2",
    "PMIX_RANK": "3",
    "PMIX_NAMESPACE": "prterun-host1-81234@1",
}
HYDRA = {"PMI_RANK": "2", "PMI_SIZE": "4", "MPI_LOCALRANKID": "0", "PMI_FD": "6"}


def test_no_launcher_is_one_process() -> None:
    assert detect({}) == Launch(rank=0, local_rank=0, world_size=1, node=None, restart=0, job=None)
    assert not detect({}).distributed
    assert detect({"PATH": "/usr/bin", "HOME": "/root"}).launcher is None


def test_torchrun() -> None:
    got = detect(TORCHRUN)
    assert got == Launch(
        rank=5, local_rank=1, world_size=8, node=1, restart=0, job="job-4711", launcher="torchrun"
    )
    assert got.distributed
    assert detect({**TORCHRUN, "TORCHELASTIC_RESTART_COUNT": "2"}).restart == 2


def test_torch_env_convention_without_the_elastic_agent_has_no_job() -> None:
    # RANK and WORLD_SIZE by hand (or torch.distributed.launch, DeepSpeed, Accelerate).
    got = detect({"RANK": "1", "WORLD_SIZE": "2"})
    assert (got.launcher, got.rank, got.world_size, got.local_rank, got.job) == ("torchrun", 1, 2, None, None)


def test_torchruns_default_rdzv_id_identifies_no_job() -> None:
    # `torchrun --nproc-per-node=4 x.py` (no --rdzv-id, no --standalone) sets the literal "none".
    got = detect({**TORCHRUN, "TORCHELASTIC_RUN_ID": "none"})
    assert got.launcher == "torchrun" and got.job is None
    assert derived_run_id(got, "mnist") is None


def test_a_lone_rank_variable_is_not_a_launch() -> None:
    assert detect({"RANK": "captain"}).launcher is None
    assert detect({"WORLD_SIZE": "4"}).launcher is None


def test_slurm_task_of_an_srun_step() -> None:
    got = detect({**SLURM_TASK, "SLURM_RESTART_COUNT": "1"})
    assert got == Launch(
        rank=6, local_rank=2, world_size=8, node=1, restart=1, job="123456.0", launcher="slurm"
    )


def test_slurm_array_task_is_its_own_job() -> None:
    got = detect({**SLURM_TASK, "SLURM_ARRAY_JOB_ID": "123450", "SLURM_ARRAY_TASK_ID": "6"})
    assert got.job == "123456.0 array 123450_6"


def test_the_slurm_cluster_scopes_its_job_ids() -> None:
    # Two clusters writing to one store number their jobs independently.
    got = detect({**SLURM_TASK, "SLURM_CLUSTER_NAME": "hpc-1"})
    assert got.job == "hpc-1:123456.0"
    assert derived_run_id(got, "mnist") != derived_run_id(detect(SLURM_TASK), "mnist")
    other = detect({**SLURM_TASK, "SLURM_CLUSTER_NAME": "hpc-2"})
    assert derived_run_id(got, "mnist") != derived_run_id(other, "mnist")


def test_a_slurm_batch_script_is_one_process() -> None:
    # No SLURM_STEP_ID: SLURM_NTASKS is the allocation's, not this process's world.
    got = detect(SLURM_BATCH)
    assert (got.launcher, got.world_size, got.rank) == (None, 1, 0)


def test_slurm_old_variable_names() -> None:
    env = {k: v for k, v in SLURM_TASK.items() if k not in ("SLURM_JOB_ID", "SLURM_STEP_ID", "SLURM_NTASKS")}
    env["SLURM_NPROCS"] = "8"
    assert detect(env).job == "123456.0" and detect(env).world_size == 8


def test_open_mpi() -> None:
    got = detect(OPEN_MPI)
    assert got == Launch(rank=3, local_rank=1, world_size=4, node=None, restart=0, job=None, launcher="mpi")


def test_an_mpi_job_has_an_identity_only_inside_a_slurm_job() -> None:
    # mpirun's namespace embeds its host and pid: unique among running jobs, not over months.
    assert detect(OPEN_MPI).job is None and derived_run_id(detect(OPEN_MPI), "mnist") is None
    inside = {**OPEN_MPI, "SLURM_JOB_ID": "123456"}
    assert detect(inside).job == "123456/prterun-host1-81234@1"
    old = {k: v for k, v in inside.items() if not k.startswith("PMIX")}
    assert detect({**old, "OMPI_MCA_orte_ess_jobid": "3236233217"}).job == "123456/3236233217"
    assert detect({**old, "OMPI_MCA_ess_base_jobid": "99"}).job == "123456/99"
    assert detect(old).job is None  # no MPI id: the SLURM job alone would merge sequential mpiruns
    # Two mpiruns one after another in one batch script: two jobs.
    again = {**inside, "PMIX_NAMESPACE": "prterun-host1-81377@1"}
    assert derived_run_id(detect(inside), "mnist") != derived_run_id(detect(again), "mnist")


def test_mpich_and_intel_mpi_through_pmi() -> None:
    got = detect(HYDRA)
    assert (got.launcher, got.rank, got.world_size, got.local_rank, got.job) == ("mpi", 2, 4, 0, None)
    assert detect({**HYDRA, "PMI_JOBID": "77.3"}).job is None
    assert detect({**HYDRA, "PMI_JOBID": "77.3", "SLURM_JOB_ID": "77"}).job == "77/77.3"


def test_srun_with_pmix_is_read_as_slurm() -> None:
    env = {**SLURM_TASK, "PMIX_RANK": "6", "PMIX_NAMESPACE": "slurm.pmix.123456.0"}
    assert detect(env) == detect(SLURM_TASK)
    with pytest.raises(ValidationError, match="PMIX_RANK='5' and SLURM_PROCID='6' disagree"):
        detect({**env, "PMIX_RANK": "5"})


def test_pmix_alone_gives_no_world_size() -> None:
    with pytest.raises(ValidationError, match=r"PMIX_RANK='2'.*no launcher variable gives the world size"):
        detect({"PMIX_RANK": "2", "PMIX_NAMESPACE": "ns"})
    got = identify(world_size=4, env={"PMIX_RANK": "2", "PMIX_NAMESPACE": "ns", "SLURM_JOB_ID": "5"})
    assert (got.launcher, got.rank, got.world_size, got.job) == ("mpi", 2, 4, "5/ns")


# -- precedence ----------------------------------------------------------------------------------


def test_torchrun_under_srun_reads_torchruns_variables() -> None:
    # srun starts one torchrun agent per node (SLURM_PROCID numbers the agents); the agent
    # starts the workers, which inherit both sets of variables. The worker is the process.
    env = {**SLURM_TASK, "SLURM_PROCID": "1", "SLURM_NTASKS": "2", **TORCHRUN}
    assert detect(env) == detect(TORCHRUN)


def test_mpirun_inside_an_allocation_reads_mpis_variables() -> None:
    # Open MPI starts its daemons with srun: ranks inherit a step whose tasks are the daemons.
    env = {**SLURM_TASK, "SLURM_PROCID": "0", "SLURM_NTASKS": "2", **OPEN_MPI}
    got = detect(env)
    assert (got.launcher, got.rank, got.world_size, got.local_rank) == ("mpi", 3, 4, 1)
    assert got.job == "123456/prterun-host1-81234@1"
    got = detect({**SLURM_TASK, **HYDRA})
    assert (got.launcher, got.rank, got.world_size, got.local_rank) == ("mpi", 2, 4, 0)


def test_a_losing_launchers_variables_are_not_even_checked() -> None:
    assert detect({**TORCHRUN, "SLURM_STEP_ID": "0", "SLURM_PROCID": "junk"}) == detect(TORCHRUN)


# -- malformed values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "name", "value"),
    [
        ({**TORCHRUN, "RANK": "five"}, "RANK", "five"),
        ({**TORCHRUN, "RANK": "-1"}, "RANK", "-1"),
        ({**TORCHRUN, "RANK": "1.0"}, "RANK", "1.0"),
        ({**TORCHRUN, "RANK": " 1"}, "RANK", " 1"),
        ({**TORCHRUN, "RANK": "+1"}, "RANK", "+1"),
        ({**TORCHRUN, "RANK": "1_0"}, "RANK", "1_0"),  # int() takes this one
        ({**TORCHRUN, "RANK": "\u0663"}, "RANK", "\u0663"),  # ARABIC-INDIC DIGIT THREE: int() says 3
        ({**TORCHRUN, "WORLD_SIZE": "99999999999"}, "WORLD_SIZE", "99999999999"),
        ({**TORCHRUN, "LOCAL_RANK": "x"}, "LOCAL_RANK", "x"),
        ({**TORCHRUN, "TORCHELASTIC_RESTART_COUNT": "-2"}, "TORCHELASTIC_RESTART_COUNT", "-2"),
        ({**SLURM_TASK, "SLURM_NTASKS": "eight"}, "SLURM_NTASKS", "eight"),
        ({**SLURM_TASK, "SLURM_JOB_ID": "12a"}, "SLURM_JOB_ID", "12a"),
        ({**SLURM_TASK, "SLURM_STEP_ID": "batch"}, "SLURM_STEP_ID", "batch"),
        (
            {**SLURM_TASK, "SLURM_ARRAY_TASK_ID": "1-3", "SLURM_ARRAY_JOB_ID": "9"},
            "SLURM_ARRAY_TASK_ID",
            "1-3",
        ),
        ({**OPEN_MPI, "OMPI_COMM_WORLD_SIZE": "0x4"}, "OMPI_COMM_WORLD_SIZE", "0x4"),
        ({**HYDRA, "MPI_LOCALRANKID": "one"}, "MPI_LOCALRANKID", "one"),
        ({**SLURM_TASK, "SLURM_CLUSTER_NAME": "a b"}, "SLURM_CLUSTER_NAME", "a b"),
    ],
)
def test_a_malformed_variable_is_named_with_its_value(env: dict[str, str], name: str, value: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(f"{name}={value!r}")):
        detect(env)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {**TORCHRUN, "RANK": "8"},
            "rank 8 (from RANK='8') is not below the world size 8 (from WORLD_SIZE='8')",
        ),
        ({**SLURM_TASK, "SLURM_PROCID": "9"}, "rank 9 (from SLURM_PROCID='9') is not below"),
        (
            {**OPEN_MPI, "OMPI_COMM_WORLD_SIZE": "0"},
            "world size must be at least 1, got 0 from OMPI_COMM_WORLD_SIZE='0'",
        ),
        ({**HYDRA, "MPI_LOCALRANKID": "4"}, "local rank MPI_LOCALRANKID='4' is not below the world size 4"),
        (
            {"TORCHELASTIC_RUN_ID": "j", "WORLD_SIZE": "2"},
            "torchrun: TORCHELASTIC_RUN_ID is set but RANK is not",
        ),
        (
            {"OMPI_COMM_WORLD_RANK": "1"},
            "Open MPI: OMPI_COMM_WORLD_RANK is set but OMPI_COMM_WORLD_SIZE is not",
        ),
        ({"SLURM_STEP_ID": "0", "SLURM_NTASKS": "2"}, "SLURM: SLURM_STEP_ID is set but SLURM_PROCID is not"),
        (
            {**TORCHRUN, "TORCHELASTIC_RUN_ID": "a\nb"},
            "TORCHELASTIC_RUN_ID='a\\nb' is not a printable job identity",
        ),
    ],
)
def test_inconsistent_launch_variables_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        detect(env)


def test_an_empty_variable_counts_as_unset() -> None:
    assert detect({"RANK": "", "WORLD_SIZE": "", "SLURM_STEP_ID": ""}).launcher is None
    assert detect({**TORCHRUN, "LOCAL_RANK": ""}).local_rank is None


# -- explicit arguments --------------------------------------------------------------------------


def test_explicit_arguments_override_the_environment() -> None:
    got = identify(rank=0, world_size=2, env=TORCHRUN)
    assert (got.rank, got.world_size) == (0, 2)
    assert (got.launcher, got.job, got.node) == ("torchrun", "job-4711", 1)  # placement stays the launcher's
    assert identify(rank=7, env=TORCHRUN).rank == 7  # the other comes from the environment
    assert identify(world_size=6, env=TORCHRUN).world_size == 6
    assert identify(rank=2, world_size=3, env={}) == Launch(rank=2, world_size=3)


def test_a_malformed_variable_is_refused_even_where_an_argument_replaces_it() -> None:
    # A malformed variable is an error even when an argument replaces its value: the
    # environment is wrong and the job should hear of it.
    with pytest.raises(ValidationError, match="RANK='x'"):
        identify(rank=0, world_size=2, env={**TORCHRUN, "RANK": "x"})


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"rank": -1}, "rank must be an int in [0, 2147483647], got -1"),
        ({"rank": True}, "rank must be an int"),
        ({"rank": 1.0}, "rank must be an int"),
        ({"world_size": "4"}, "world_size must be an int"),
        ({"world_size": 0}, "world size must be at least 1, got 0 from the world_size argument"),
        ({"rank": 3}, "rank 3 (from the rank argument) is not below the world size 1 (from the default"),
        ({"rank": 4, "world_size": 4}, "rank 4 (from the rank argument) is not below the world size 4"),
    ],
)
def test_bad_explicit_arguments_are_refused(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        identify(env={}, **kw)  # type: ignore[arg-type]


def test_identify_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in TORCHRUN.items():
        monkeypatch.setenv(name, value)
    assert detect() == detect(TORCHRUN)
    assert identify(rank=1).rank == 1 and identify(rank=1).world_size == 8


# -- the run-id rule -----------------------------------------------------------------------------


def _ranks(env: dict[str, str], rank_vars: dict[str, str]) -> Iterator[Launch]:
    world = int(env[rank_vars["world"]])
    for r in range(world):
        yield detect({**env, rank_vars["rank"]: str(r), rank_vars.get("local", "_"): str(r % 2)})


@pytest.mark.parametrize(
    ("env", "rank_vars"),
    [
        (TORCHRUN, {"rank": "RANK", "world": "WORLD_SIZE", "local": "LOCAL_RANK"}),
        (SLURM_TASK, {"rank": "SLURM_PROCID", "world": "SLURM_NTASKS", "local": "SLURM_LOCALID"}),
        (
            {**OPEN_MPI, "SLURM_JOB_ID": "9"},
            {"rank": "OMPI_COMM_WORLD_RANK", "world": "OMPI_COMM_WORLD_SIZE"},
        ),
    ],
)
def test_every_rank_of_a_job_derives_the_same_valid_run_id(
    env: dict[str, str], rank_vars: dict[str, str]
) -> None:
    env = {k: v for k, v in env.items() if k != "PMIX_RANK"}
    ids = {derived_run_id(lau, "mnist") for lau in _ranks(env, rank_vars)}
    assert len(ids) == 1
    (rid,) = ids
    assert rid is not None and check_run_id(rid) == rid
    launcher = detect(env).launcher
    assert re.fullmatch(rf"{launcher}-[0-9a-hjkmnp-tv-z]{{26}}", rid)  # never mistaken for a ULID


def test_a_restarted_or_requeued_job_derives_the_same_id() -> None:
    first = derived_run_id(detect(TORCHRUN), "mnist")
    # torch elastic restarts every worker after a failure, maybe with fewer of them.
    restarted = {
        **TORCHRUN,
        "TORCHELASTIC_RESTART_COUNT": "1",
        "WORLD_SIZE": "4",
        "RANK": "3",
        "GROUP_RANK": "0",
    }
    assert derived_run_id(detect(restarted), "mnist") == first
    # SLURM requeues a preempted job under its own job id, counting restarts.
    slurm = derived_run_id(detect(SLURM_TASK), "mnist")
    assert (
        derived_run_id(detect({**SLURM_TASK, "SLURM_RESTART_COUNT": "3", "SLURM_NODEID": "0"}), "mnist")
        == slurm
    )


@pytest.mark.parametrize(
    "other",
    [
        {**SLURM_TASK, "SLURM_JOB_ID": "123457", "SLURM_JOBID": "123457"},  # another job
        {**SLURM_TASK, "SLURM_STEP_ID": "1", "SLURM_STEPID": "1"},  # the next srun of the same script
        {**SLURM_TASK, "SLURM_ARRAY_JOB_ID": "123450", "SLURM_ARRAY_TASK_ID": "6"},  # an array task
        {**SLURM_TASK, "SLURM_ARRAY_JOB_ID": "123450", "SLURM_ARRAY_TASK_ID": "7"},  # its sibling
    ],
)
def test_different_jobs_steps_and_array_tasks_derive_different_ids(other: dict[str, str]) -> None:
    ids = {
        derived_run_id(detect(SLURM_TASK), "mnist"),
        derived_run_id(
            detect({**SLURM_TASK, "SLURM_ARRAY_JOB_ID": "123450", "SLURM_ARRAY_TASK_ID": "5"}), "mnist"
        ),
        derived_run_id(detect(other), "mnist"),
    }
    assert len(ids) == 3


def test_the_experiment_and_the_launcher_are_part_of_the_id() -> None:
    base = detect(TORCHRUN)
    assert derived_run_id(base, "mnist") != derived_run_id(base, "cifar")
    # The same job string from another launcher is another job.
    as_mpi = Launch(rank=0, world_size=8, job="job-4711", launcher="mpi")
    assert derived_run_id(as_mpi, "mnist") != derived_run_id(base, "mnist")


def test_a_single_process_or_a_job_without_identity_never_derives() -> None:
    assert derived_run_id(detect({}), "mnist") is None
    assert (
        derived_run_id(
            detect({**SLURM_TASK, "SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}), "mnist"
        )
        is None
    )
    assert (
        derived_run_id(detect({**TORCHRUN, "WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"}), "mnist")
        is None
    )
    assert derived_run_id(identify(rank=0, world_size=4, env={}), "mnist") is None  # no job: no id
    assert (
        derived_run_id(identify(rank=0, world_size=1, env={**TORCHRUN, "LOCAL_RANK": "0"}), "mnist") is None
    )


def test_the_derived_id_is_pinned() -> None:
    # A job requeued across a tracklog upgrade must land in the same run: the rule is frozen.
    # If this value changes, DERIVED_ID_VERSION must change and CHANGELOG must say so.
    assert derived_run_id(detect(SLURM_TASK), "mnist") == "slurm-3znfdd010zt5ve6na6h6mnev1b"


def test_ranks_in_separate_interpreters_agree(tmp_path: Path) -> None:
    # Nothing process-specific (hash seeds, pids, times) may enter the id.
    code = (
        "import json, os, sys\n"
        "from tracklog.write.launch import detect, derived_run_id\n"
        "print(json.dumps(derived_run_id(detect(), sys.argv[1])))\n"
    )
    out = set()
    for rank, seed in ((0, "1"), (3, "2"), (7, "random")):
        env = {**python_env(), **SLURM_TASK, "SLURM_PROCID": str(rank), "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [PY, "-c", code, "mnist"], env=env, capture_output=True, text=True, check=True, cwd=tmp_path
        )
        out.add(json.loads(done.stdout))
    assert out == {derived_run_id(detect(SLURM_TASK), "mnist")}


def test_experiment_is_validated() -> None:
    with pytest.raises(ValidationError, match="experiment must not be empty"):
        derived_run_id(detect(TORCHRUN), "")


# -- $TRACKLOG_RUN_ID and the first run of a process ---------------------------------------------


@pytest.fixture
def fresh_process() -> Iterator[None]:
    launch.reset()
    yield
    launch.reset()


def test_tracklog_run_id_wins_over_derivation(fresh_process: None) -> None:
    env = {**TORCHRUN, "TRACKLOG_RUN_ID": "my-run"}
    assert ambient_run_id(detect(env), "mnist", env) == "my-run"
    assert ambient_run_id(detect({}), "mnist", {"TRACKLOG_RUN_ID": "solo"}) == "solo"  # any world size
    assert ambient_run_id(detect(TORCHRUN), "mnist", TORCHRUN) == derived_run_id(detect(TORCHRUN), "mnist")
    assert ambient_run_id(detect({}), "mnist", {}) is None


def test_a_bad_tracklog_run_id_is_named(fresh_process: None) -> None:
    with pytest.raises(ValidationError, match=re.escape("TRACKLOG_RUN_ID='../x' is not a valid run id")):
        ambient_run_id(detect({}), "mnist", {"TRACKLOG_RUN_ID": "../x"})


def test_only_the_first_run_of_a_process_gets_the_ambient_id(fresh_process: None) -> None:
    env = {**TORCHRUN, "TRACKLOG_RUN_ID": "my-run"}
    assert launch.first_run_pending()
    assert ambient_run_id(detect(env), "mnist", env) == "my-run"
    assert ambient_run_id(detect(env), "mnist", env) == "my-run"  # asking is not starting
    launch.note_run_started()
    assert not launch.first_run_pending()
    assert ambient_run_id(detect(env), "mnist", env) is None
    assert ambient_run_id(detect(TORCHRUN), "mnist", TORCHRUN) is None
    launch.reset()
    assert ambient_run_id(detect(TORCHRUN), "mnist", TORCHRUN) is not None


def test_ambient_run_id_reads_os_environ_by_default(
    fresh_process: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACKLOG_RUN_ID", "from-env")
    assert ambient_run_id(detect({}), "mnist") == "from-env"


# -- the documentation holds every variable read -------------------------------------------------


class _Recording(Mapping[str, str]):
    def __init__(self, data: dict[str, str]) -> None:
        self.data = data
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return self.data[key]

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return self.data.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def test_docs_ranks_names_every_variable_read(fresh_process: None) -> None:
    asked: set[str] = set()
    envs = [
        {},
        TORCHRUN,
        {**TORCHRUN, "TORCHELASTIC_RUN_ID": "none"},
        SLURM_TASK,
        {**SLURM_TASK, "SLURM_ARRAY_JOB_ID": "1", "SLURM_ARRAY_TASK_ID": "2", "SLURM_RESTART_COUNT": "1"},
        {k: v for k, v in SLURM_TASK.items() if k not in ("SLURM_JOB_ID", "SLURM_STEP_ID", "SLURM_NTASKS")}
        | {"SLURM_NPROCS": "8"},
        {**SLURM_TASK, "SLURM_CLUSTER_NAME": "c"},
        OPEN_MPI,
        {**OPEN_MPI, "SLURM_JOB_ID": "1"},
        {k: v for k, v in OPEN_MPI.items() if not k.startswith("PMIX")} | {"SLURM_JOBID": "1"},
        HYDRA,
        {**SLURM_TASK, "PMIX_RANK": "6"},
    ]
    for env in envs:
        rec = _Recording(dict(env))
        detect(rec)
        ambient_run_id(detect(rec), "mnist", rec)
        asked |= rec.asked
    doc = re.sub(r"```.*?```", "", (ROOT_DIR / "docs" / "RANKS.md").read_text(), flags=re.S)  # code blocks
    spans = " ".join(re.findall(r"`([^`]+)`", doc))
    documented = set(re.findall(r"[A-Z][A-Za-z0-9_]+", spans))
    assert asked - documented == set()
    assert {"TORCHELASTIC_RUN_ID", "SLURM_ARRAY_TASK_ID", "PMIX_RANK", "TRACKLOG_RUN_ID"} <= asked
