"""write/system.py: system metrics sampled by a background thread, logged under ``system/``.

There is no GPU on the machines these tests run on: the GPU path is tested against a fake
NVML module put in ``sys.modules`` in place of nvidia-ml-py's ``pynvml``.
"""

from __future__ import annotations

import errno
import math
import os
import re
import subprocess
import sys
import threading
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tracklog
from tests.conftest import PY, events_of, python_env, wait_for
from tracklog.errors import TracklogWarning, ValidationError
from tracklog.write import system

psutil = pytest.importorskip("psutil", reason="system metrics need psutil (the `system` extra)")

FAST = 0.05  # seconds between samples in these tests
PSUTIL_KEYS = {
    "system/cpu_percent",
    "system/process_cpu_percent",
    "system/process_rss_bytes",
    "system/memory_used_bytes",
    "system/memory_percent",
    "system/disk_read_bytes",
    "system/disk_write_bytes",
    "system/net_sent_bytes",
    "system/net_recv_bytes",
}


@pytest.fixture(autouse=True)
def _no_env_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(system.ENV_SWITCH, raising=False)


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """NVML as on a machine without an NVIDIA driver (whether nvidia-ml-py is installed or not)."""
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(gpus=0, driver=False))


def _system_points(path: Path) -> dict[str, list[tuple[int, float, float]]]:
    out: dict[str, list[tuple[int, float, float]]] = {}
    for e in events_of(path):
        if e.kind == "metric" and e.key.startswith("system/"):  # type: ignore[union-attr]
            out.setdefault(e.key, []).append((e.step, e.value, e.time))  # type: ignore[arg-type]
    return out


def _samplers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("tracklog-system-")]


def _wait_samples(run: tracklog.Run, n: int) -> None:
    assert run._sampler is not None
    sampler = run._sampler
    wait_for(lambda: sampler.samples >= n, what=f"{n} system samples")


def test_samples_are_plausible_and_come_at_the_interval(no_gpu: None) -> None:
    run = tracklog.start_run(system_metrics=True, system_interval=FAST)
    started = next(e.time for e in events_of(run.path) if e.kind == "run_start")
    blob = np.ones(4_000_000)  # 32 MB this process holds while it is sampled
    _wait_samples(run, 4)
    run.close()
    points = _system_points(run.path)
    assert set(points) == PSUTIL_KEYS
    n = len(points["system/cpu_percent"])
    assert n >= 4
    for key, series in points.items():
        assert [s for s, _, _ in series] == list(range(n)), key  # one record per sample, steps 0, 1, ...
    # Never faster than the interval: the k-th sample (from 0) comes (k + 1) intervals in, or later.
    for k, (_, _, t) in enumerate(points["system/cpu_percent"]):
        assert t - started >= (k + 1) * FAST - 5e-3  # slack: wall clock vs monotonic
    total = psutil.virtual_memory().total
    for key in ("system/cpu_percent", "system/memory_percent"):
        assert all(0 <= v <= 100 for _, v, _ in points[key]), key
    assert all(0 <= v <= 100 * os.cpu_count() for _, v, _ in points["system/process_cpu_percent"])  # type: ignore[operator]
    assert all(blob.nbytes < v < total for _, v, _ in points["system/process_rss_bytes"])
    assert all(0 < v < total for _, v, _ in points["system/memory_used_bytes"])
    for key in (
        "system/disk_read_bytes",
        "system/disk_write_bytes",
        "system/net_sent_bytes",
        "system/net_recv_bytes",
    ):
        values = [v for _, v, _ in points[key]]
        assert values[0] >= 0 and values == sorted(values), key  # totals since the start: monotone
    assert not math.isnan(points["system/cpu_percent"][-1][1])


def test_the_sampler_thread_is_gone_after_close(no_gpu: None) -> None:
    before = set(_samplers())
    run = tracklog.start_run(system_metrics=True, system_interval=3600)  # asleep for an hour
    mine = set(_samplers()) - before
    assert [t.name for t in mine] == [f"tracklog-system-{run.id}"]
    run.close()  # wakes it: close never waits out an interval
    assert not any(t.is_alive() for t in mine)
    assert set(threading.enumerate()) & mine == set()
    assert _system_points(run.path) == {}


def test_the_context_manager_and_a_failure_stop_it_too(no_gpu: None) -> None:
    with pytest.raises(RuntimeError), tracklog.start_run(system_metrics=True, system_interval=FAST) as run:
        _wait_samples(run, 1)
        raise RuntimeError("boom")
    assert run._sampler is not None and not run._sampler.alive
    ends = [e.value for e in events_of(run.path) if e.kind == "run_end"]
    assert [v["status"] for v in ends] == ["failed"]  # type: ignore[index]
    # Nothing after the end record: the sampler stopped before it was written.
    assert events_of(run.path)[-1].kind == "run_end"


def test_off_by_default_and_no_thread(no_gpu: None) -> None:
    before = set(_samplers())
    with tracklog.start_run() as run:
        assert run._sampler is None and set(_samplers()) == before
    assert _system_points(run.path) == {}


def test_the_environment_switch_wins_over_the_argument(no_gpu: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(system.ENV_SWITCH, "0")
    with tracklog.start_run(system_metrics=True, system_interval=FAST) as run:
        assert run._sampler is None
    monkeypatch.setenv(system.ENV_SWITCH, "1")
    with tracklog.start_run(system_interval=FAST) as run:  # system_metrics=False, the default
        _wait_samples(run, 1)
    assert "system/cpu_percent" in _system_points(run.path)
    monkeypatch.setenv(system.ENV_SWITCH, "")  # empty: unset, the argument decides
    with tracklog.start_run(system_interval=FAST) as run:
        assert run._sampler is None


@pytest.mark.parametrize(
    ("kw", "env", "message"),
    [
        (
            {"system_metrics": True},
            "yes",
            "TRACKLOG_SYSTEM_METRICS='yes' must be 0 (off) or 1 (on), or unset",
        ),
        ({"system_metrics": "on"}, None, "system_metrics must be True or False, got 'on'"),
        ({"system_metrics": 1}, None, "system_metrics must be True or False, got 1"),
        ({"system_interval": 0}, None, "system_interval must be a number of seconds in (0, 3600], got 0"),
        ({"system_interval": -1.0}, None, "system_interval must be"),
        ({"system_interval": float("nan")}, None, "system_interval must be"),
        ({"system_interval": "10"}, None, "system_interval must be"),
        ({"system_interval": True}, None, "system_interval must be"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_written(
    kw: dict[str, Any], env: str | None, message: str, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if env is not None:
        monkeypatch.setenv(system.ENV_SWITCH, env)
    with pytest.raises(ValidationError, match=re.escape(message)):
        tracklog.start_run(**kw)
    assert not (root / "runs").exists() or not any((root / "runs").iterdir())


def test_without_psutil_one_warning_and_nothing_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil raises ImportError
    monkeypatch.setattr(system, "_warned_no_psutil", False)
    before = set(_samplers())
    with pytest.warns(TracklogWarning, match=r"needs psutil.*pip install 'tracklog\[system\]'") as caught:
        with tracklog.start_run(system_metrics=True, system_interval=FAST) as first:
            first.log_metric("loss", 1.0)
        with tracklog.start_run(system_metrics=True, system_interval=FAST) as second:
            assert set(_samplers()) == before
    assert len([w for w in caught if issubclass(w.category, TracklogWarning)]) == 1  # once per process
    for run in (first, second):
        assert run._sampler is None and _system_points(run.path) == {}
    assert [e.key for e in events_of(first.path) if e.kind == "metric"] == ["loss"]


def test_the_warning_points_at_the_callers_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)
    monkeypatch.setattr(system, "_warned_no_psutil", False)
    with pytest.warns(TracklogWarning, match="needs psutil") as caught:
        tracklog.start_run(system_metrics=True).close()
    assert [Path(w.filename).name for w in caught] == ["test_system.py"]


def test_a_psutil_that_cannot_start_warns_and_the_run_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    def denied() -> None:
        raise psutil.AccessDenied(os.getpid())

    monkeypatch.setattr(psutil, "Process", denied)
    with pytest.warns(TracklogWarning, match="system metrics cannot start"):
        run = tracklog.start_run(system_metrics=True, system_interval=FAST)
    with run:
        assert run._sampler is None
        run.log_metric("loss", 1.0)
    assert _system_points(run.path) == {}


def test_import_tracklog_never_imports_psutil_or_nvml(tmp_path: Path) -> None:
    code = (
        "import sys, tracklog\n"
        "with tracklog.start_run(root=sys.argv[1]) as run:\n"
        "    run.log_metric('a', 1.0)\n"
        "print(sorted(m for m in ('psutil', 'pynvml') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [PY, "-c", code, str(tmp_path / "s")], env=python_env(), capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_a_resumed_run_continues_the_sample_steps(no_gpu: None) -> None:
    with tracklog.start_run(system_metrics=True, system_interval=FAST) as run:
        _wait_samples(run, 2)
    first = len(_system_points(run.path)["system/cpu_percent"])
    with tracklog.start_run(run_id=run.id, resume=True, system_metrics=True, system_interval=FAST) as again:
        _wait_samples(again, 2)
    total = len(_system_points(run.path)["system/cpu_percent"])
    h = tracklog.Store().history(run.id, "system/cpu_percent")
    assert len(h) == total > first  # the resume rule superseded none of the first session's
    assert h.step.tolist() == list(range(total))


def test_a_failing_source_is_named_once_and_the_others_go_on(
    no_gpu: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:
        raise OSError(errno.EACCES, "Permission denied", "/proc/meminfo")

    monkeypatch.setattr(psutil, "virtual_memory", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tracklog.start_run(system_metrics=True, system_interval=FAST) as run:
            _wait_samples(run, 3)
            run.log_metric("loss", 0.5)  # the job logs on, unharmed
    mine = [str(w.message) for w in caught if issubclass(w.category, TracklogWarning)]
    assert len(mine) == 1 and "reading memory failed" in mine[0] and "Permission denied" in mine[0]
    points = _system_points(run.path)
    assert "system/memory_percent" not in points and "system/process_rss_bytes" not in points
    assert len(points["system/cpu_percent"]) >= 3
    assert ("loss", 0, 0.5) in [(e.key, e.step, e.value) for e in events_of(run.path) if e.kind == "metric"]


def test_a_failure_of_the_log_call_stops_sampling_without_raising(no_gpu: None) -> None:
    calls = []

    def failing(values: object, step: int) -> None:
        calls.append(step)
        raise ZeroDivisionError("a bug in the sampler's path")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sampler = system.SystemSampler.start(failing, FAST, 0, "tracklog-system-test")
        assert sampler is not None
        wait_for(lambda: not sampler.alive, what="the sampler to stop")
    assert calls == [0]
    assert [str(w.message) for w in caught if issubclass(w.category, TracklogWarning)] == [
        'tracklog system metrics: sampling stopped: ZeroDivisionError("a bug in the sampler\'s path")'
    ]


def test_strict_mode_write_failure_stops_the_sampler(no_gpu: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from tracklog.log import writer as writer_mod

    real = writer_mod._write
    failing = threading.Event()

    def write(fd: int, data: bytes) -> int:
        if failing.is_set():
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(writer_mod, "_write", write)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = tracklog.start_run(system_metrics=True, system_interval=FAST, strict=True)
        _wait_samples(run, 1)
        failing.set()
        assert run._sampler is not None
        sampler = run._sampler
        wait_for(lambda: not sampler.alive, what="the sampler to stop")
        with pytest.raises(tracklog.WriteError):
            run.log_metric("loss", 1.0)  # the job hears of it from its own call, as strict promises
        failing.clear()
        run.close()
    mine = [str(w.message) for w in caught if issubclass(w.category, TracklogWarning)]
    assert any("sampling stopped" in m and "No space left" in m for m in mine)


def test_a_forked_child_has_no_sampler_and_the_parent_keeps_sampling(no_gpu: None) -> None:
    run = tracklog.start_run(system_metrics=True, system_interval=FAST)
    _wait_samples(run, 1)
    r, w = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() of a threaded process
        pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            s = run._sampler
            code = 0 if s is not None and not s.alive and not _samplers() else 2
            s.stop()  # type: ignore[union-attr]  # returns at once: nothing to wait for here
        finally:
            os.write(w, bytes([code]))
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    child = os.read(r, 1)
    os.close(r)
    assert run._sampler is not None
    at_fork = run._sampler.samples
    _wait_samples(run, at_fork + 2)
    run.close()
    assert child == b"\x00"
    steps = [s for s, _, _ in _system_points(run.path)["system/cpu_percent"]]
    assert steps == list(range(len(steps)))


# -- the GPU path, against a fake NVML ------------------------------------------------------------


class _NVMLError(Exception):
    pass


class _NotSupported(_NVMLError):
    pass


def _fake_nvml(gpus: int, driver: bool = True, no_power: set[int] | None = None) -> types.ModuleType:
    """A stand-in for nvidia-ml-py's ``pynvml`` with ``gpus`` devices (none is present here)."""
    nvml = types.ModuleType("pynvml")
    nvml.NVMLError = _NVMLError  # type: ignore[attr-defined]
    nvml.NVMLError_NotSupported = _NotSupported  # type: ignore[attr-defined]
    nvml.NVML_TEMPERATURE_GPU = 0  # type: ignore[attr-defined]
    nvml.calls = []  # type: ignore[attr-defined]

    def init() -> None:
        nvml.calls.append("init")  # type: ignore[attr-defined]
        if not driver:
            raise _NVMLError("NVML Shared Library Not Found")

    def power(h: int) -> int:
        if h in (no_power or set()):
            raise _NotSupported("Not Supported")
        return 70_500 + h * 1000  # milliwatts

    def temperature(h: int, sensor: int) -> int:
        assert sensor == nvml.NVML_TEMPERATURE_GPU  # type: ignore[attr-defined]
        return 40 + h

    nvml.nvmlInit = init  # type: ignore[attr-defined]
    nvml.nvmlShutdown = lambda: nvml.calls.append("shutdown")  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetCount = lambda: gpus  # type: ignore[attr-defined]

    def by_index(i: int) -> int:
        if not 0 <= i < gpus:
            raise _NVMLError("invalid index")
        return i

    def by_uuid(u: str) -> int:
        if u not in (uuids := [f"GPU-{i:04d}" for i in range(gpus)]):
            raise _NVMLError("not found")
        return uuids.index(u)

    nvml.nvmlDeviceGetHandleByIndex = by_index  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetHandleByUUID = by_uuid  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=30 + h, memory=5)  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=(h + 1) * 2**30, total=16 * 2**30)  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetTemperature = temperature  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetPowerUsage = power  # type: ignore[attr-defined]
    return nvml


@pytest.fixture
def two_fake_gpus(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    nvml = _fake_nvml(gpus=2, no_power={1})  # GPU 1 cannot report its power
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    yield nvml


def test_each_gpu_is_sampled_through_nvml(two_fake_gpus: types.ModuleType) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tracklog.start_run(system_metrics=True, system_interval=FAST) as run:
            _wait_samples(run, 2)
    assert [w for w in caught if issubclass(w.category, TracklogWarning)] == []  # NotSupported is quiet
    points = _system_points(run.path)
    gpu = {k: [v for _, v, _ in s] for k, s in points.items() if k.startswith("system/gpu")}
    assert set(gpu) == {
        "system/gpu0/utilization",
        "system/gpu0/memory_used",
        "system/gpu0/temperature",
        "system/gpu0/power_w",
        "system/gpu1/utilization",
        "system/gpu1/memory_used",
        "system/gpu1/temperature",
    }
    assert set(gpu["system/gpu0/utilization"]) == {30.0} and set(gpu["system/gpu1/utilization"]) == {31.0}
    assert set(gpu["system/gpu1/memory_used"]) == {2.0 * 2**30}
    assert set(gpu["system/gpu0/temperature"]) == {40.0}
    assert set(gpu["system/gpu0/power_w"]) == {70.5}  # milliwatts to watts
    # GPU readings share the psutil ones' record and step.
    assert [s for s, _, _ in points["system/gpu0/utilization"]] == [
        s for s, _, _ in points["system/cpu_percent"]
    ]
    assert two_fake_gpus.calls == ["init", "shutdown"]  # type: ignore[attr-defined]


def test_a_gpu_reading_that_fails_otherwise_is_named_once(two_fake_gpus: types.ModuleType) -> None:
    def lost(h: int) -> object:
        raise _NVMLError("GPU is lost")

    two_fake_gpus.nvmlDeviceGetUtilizationRates = lost  # type: ignore[attr-defined]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tracklog.start_run(system_metrics=True, system_interval=FAST) as run:
            _wait_samples(run, 3)
    mine = sorted(str(w.message) for w in caught if issubclass(w.category, TracklogWarning))
    assert len(mine) == 2 and all("utilization of GPU" in m and "GPU is lost" in m for m in mine)
    points = _system_points(run.path)
    assert "system/gpu0/utilization" not in points and "system/gpu0/temperature" in points


def test_no_driver_means_no_gpu_keys_and_no_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = _fake_nvml(gpus=0, driver=False)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tracklog.start_run(system_metrics=True, system_interval=FAST) as run:
            _wait_samples(run, 1)
    assert [w for w in caught if issubclass(w.category, TracklogWarning)] == []
    assert set(_system_points(run.path)) == PSUTIL_KEYS
    assert nvml.calls == ["init"]  # type: ignore[attr-defined]


def test_without_nvidia_ml_py_the_psutil_metrics_still_come(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with tracklog.start_run(system_metrics=True, system_interval=FAST) as run:
        _wait_samples(run, 1)
    assert set(_system_points(run.path)) == PSUTIL_KEYS


@pytest.mark.parametrize(
    ("visible", "sampled"),
    [("1", [31.0]), ("GPU-0001,0", [31.0, 30.0]), ("0,7,1", [30.0]), ("", []), ("none", [])],
)
def test_only_the_gpus_cuda_visible_devices_names_are_sampled_in_its_order(
    monkeypatch: pytest.MonkeyPatch, visible: str, sampled: list[float]
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(gpus=2))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    with tracklog.start_run(system_metrics=True, system_interval=FAST) as run:
        _wait_samples(run, 1)
    points = _system_points(run.path)
    got = [points[f"system/gpu{i}/utilization"][0][1] for i in range(len(sampled))]
    assert got == sampled  # CUDA's numbering: gpu0 is the first visible one
    assert f"system/gpu{len(sampled)}/utilization" not in points
