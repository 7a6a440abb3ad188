"""System metrics: a background thread samples the machine and logs it under ``system/``.

``start_run(system_metrics=True, system_interval=10.0)`` starts one ``SystemSampler`` per
run. Every ``system_interval`` seconds (start to start; the first sample one interval after
the start) it logs one ``log_metrics`` record through the run's own logging path, at step
``n`` for its ``n``-th sample in the run: a resumed run continues after the earlier
sessions' samples, so the resume rule supersedes none of them, except that a
``resume_step=s`` supersedes earlier points at steps ``>= s`` of every key, ``system/`` ones
included (the fold's rule), and the new session's samples then start at ``s``:

- psutil: ``system/cpu_percent`` (the machine, 0-100), ``system/process_cpu_percent`` (this
  process, 100 = one core busy), ``system/process_rss_bytes``, ``system/memory_used_bytes``
  (total minus available, the amount ``memory_percent`` is a share of),
  ``system/memory_percent``, ``system/disk_read_bytes``, ``system/disk_write_bytes``,
  ``system/net_sent_bytes``, ``system/net_recv_bytes``. The four I/O counters are machine-wide
  **totals since the sampler started** (not per-interval deltas): monotone, so a sample lost
  to a crash loses nothing, and a rate is the difference of two points over their time.
- nvidia-ml-py (``pynvml``), only where NVML finds a GPU: ``system/gpu{i}/utilization``
  (percent), ``system/gpu{i}/memory_used`` (bytes), ``system/gpu{i}/temperature`` (degrees C),
  ``system/gpu{i}/power_w`` (watts), ``i`` being NVML's device index (all of the node's GPUs,
  whatever ``CUDA_VISIBLE_DEVICES`` says). A reading a GPU does not support is left out.

The training thread never waits for a sample: the sampler only takes the run's lock for the
one ``log_metrics`` call. A failure inside the sampler never reaches the job, in any mode: a
source that raises is named in one ``TracklogWarning`` and dropped, the others go on. Write
failures are the run's as for any log call (held and retried; with ``strict=True`` the
sampler's ``WriteError`` stops the sampler, with a warning, while the job's own log calls
raise it as strict mode promises). ``close`` stops the thread before the run's end is written;
a forked child has no sampler (threads do not survive ``fork``) and its copy is marked stopped.

psutil is imported only when a sampler starts (never by ``import tracklog``); without it
``system_metrics=True`` warns once per process and logs nothing. NVML is opened in the
sampler's thread, so a slow driver never delays ``start_run``.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Final

from ..errors import RunClosedError, TracklogWarning, ValidationError, WriteError

SYSTEM_INTERVAL_S: Final = 10.0
ENV_SWITCH: Final = "TRACKLOG_SYSTEM_METRICS"
PREFIX: Final = "system/"
JOIN_TIMEOUT_S: Final = 5.0  # close waits this long for a sample in flight (a hung NVML call)

LogFn = Callable[[Mapping[str, float], int], None]
_warned_no_psutil = False  # per process: a script starting many runs hears it once


def enabled(requested: object, env: Mapping[str, str] | None = None) -> bool:
    """Whether a run samples: ``$TRACKLOG_SYSTEM_METRICS`` (``0`` or ``1``) when set, else
    ``requested``. The environment wins over the argument: it is the switch of whoever
    launches the job on that machine (off where sampling is unwanted, on for a script that
    does not ask), as ``TRACKLOG_GIT=0`` is."""
    if type(requested) is not bool:
        raise ValidationError(f"system_metrics must be True or False, got {requested!r}")
    raw = (os.environ if env is None else env).get(ENV_SWITCH, "")
    if raw == "":
        return requested
    if raw not in ("0", "1"):
        raise ValidationError(f"{ENV_SWITCH}={raw!r} must be 0 (off) or 1 (on), or unset")
    return raw == "1"


def check_interval(value: object) -> float:
    if type(value) not in (int, float) or not 0 < value <= 3600:  # type: ignore[operator]
        raise ValidationError(f"system_interval must be a number of seconds in (0, 3600], got {value!r}")
    return float(value)  # type: ignore[arg-type]


def _warn(message: str) -> None:
    warnings.warn(f"tracklog system metrics: {message}", TracklogWarning, stacklevel=2)


class _Psutil:
    """The machine and this process, through psutil (imported by the caller)."""

    def __init__(self, psutil: Any) -> None:
        self.psutil = psutil
        self.proc = psutil.Process()
        # cpu_percent(None) compares with the previous call: prime both now.
        psutil.cpu_percent(None)
        self.proc.cpu_percent(None)
        self.base: dict[str, float] = {}
        self.groups: dict[str, Callable[[], dict[str, float]]] = {
            "cpu": self._cpu,
            "memory": self._memory,
            "disk": self._disk,
            "network": self._network,
        }
        for read in (self._disk, self._network):  # the baselines of the totals
            try:
                read()
            except Exception:
                pass  # the group will fail (and be named) at its first sample

    def _cpu(self) -> dict[str, float]:
        return {
            "system/cpu_percent": float(self.psutil.cpu_percent(None)),
            "system/process_cpu_percent": float(self.proc.cpu_percent(None)),
        }

    def _memory(self) -> dict[str, float]:
        vm = self.psutil.virtual_memory()
        return {
            "system/process_rss_bytes": float(self.proc.memory_info().rss),
            "system/memory_used_bytes": float(vm.total - vm.available),
            "system/memory_percent": float(vm.percent),
        }

    def _since_start(self, values: dict[str, float]) -> dict[str, float]:
        for key, value in values.items():
            self.base.setdefault(key, value)
        return {key: value - self.base[key] for key, value in values.items()}

    def _disk(self) -> dict[str, float]:
        io = self.psutil.disk_io_counters()
        if io is None:  # no disks psutil can see (some containers): nothing to report
            return {}
        return self._since_start(
            {"system/disk_read_bytes": float(io.read_bytes), "system/disk_write_bytes": float(io.write_bytes)}
        )

    def _network(self) -> dict[str, float]:
        io = self.psutil.net_io_counters()
        if io is None:
            return {}
        return self._since_start(
            {"system/net_sent_bytes": float(io.bytes_sent), "system/net_recv_bytes": float(io.bytes_recv)}
        )


def _visible_handles(nvml: Any, visible: str | None) -> list[Any]:
    """The GPUs this process may use, in CUDA's numbering: all of them, or those
    ``CUDA_VISIBLE_DEVICES`` names (indices or ``GPU-``/``MIG-`` UUIDs), in its order, up to
    the first it cannot find, as CUDA reads it. So each rank of a many-process run, given its
    own GPU that way, samples that GPU as ``system/gpu0``, not every GPU of the node."""
    if visible is None:
        return [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
    out = []
    for part in visible.split(","):
        part = part.strip()
        try:
            if part.isdigit():
                out.append(nvml.nvmlDeviceGetHandleByIndex(int(part)))
            elif part.startswith(("GPU-", "MIG-")):
                out.append(nvml.nvmlDeviceGetHandleByUUID(part))
            else:
                break
        except Exception:
            break
    return out


class _Nvml:
    """Every GPU NVML finds. ``open`` returns None where there is no driver or no GPU."""

    READINGS: Final = ("utilization", "memory_used", "temperature", "power_w")

    def __init__(self, nvml: Any, handles: list[Any]) -> None:
        self.nvml = nvml
        self.handles = handles
        self.off: set[tuple[int, str]] = set()  # readings a GPU refused
        self.unsupported = getattr(nvml, "NVMLError_NotSupported", None)

    @classmethod
    def open(cls) -> _Nvml | None:
        try:
            import pynvml  # nvidia-ml-py
        except Exception:
            return None
        try:
            pynvml.nvmlInit()
        except Exception:
            return None  # no driver, no GPU: the normal case on a CPU machine
        try:
            handles = _visible_handles(pynvml, os.environ.get("CUDA_VISIBLE_DEVICES"))
        except Exception as exc:
            _warn(f"NVML found no usable GPU ({exc!r}); GPU metrics are off")
            handles = []
        if not handles:
            cls._shutdown(pynvml)
            return None
        return cls(pynvml, handles)

    def read(self, handle: Any, what: str) -> float:
        nvml = self.nvml
        if what == "utilization":
            return float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        if what == "memory_used":
            return float(nvml.nvmlDeviceGetMemoryInfo(handle).used)
        if what == "temperature":
            return float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
        return float(nvml.nvmlDeviceGetPowerUsage(handle)) / 1000.0  # milliwatts

    def sample(self) -> dict[str, float]:
        out = {}
        for i, handle in enumerate(self.handles):
            for what in self.READINGS:
                if (i, what) in self.off:
                    continue
                try:
                    out[f"system/gpu{i}/{what}"] = self.read(handle, what)
                except Exception as exc:
                    self.off.add((i, what))
                    if self.unsupported is None or not isinstance(exc, self.unsupported):
                        _warn(f"reading {what} of GPU {i} failed ({exc!r}); it is no longer sampled")
        return out

    def close(self) -> None:
        self._shutdown(self.nvml)

    @staticmethod
    def _shutdown(nvml: Any) -> None:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass


class SystemSampler:
    """One run's sampling thread. ``start`` returns None (after one warning per process)
    when psutil is missing; ``stop`` wakes and joins the thread."""

    def __init__(self, psutil: Any, log: LogFn, interval: float, first_step: int, name: str) -> None:
        self._source = _Psutil(psutil)
        self._log = log
        self._interval = interval
        self._step = first_step
        self._stop = threading.Event()
        self._forked = False
        self.samples = 0  # samples logged by this session
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @staticmethod
    def first_step(next_steps: Mapping[str, int], default_step: int) -> int:
        """The step of a session's first sample: after every ``system/`` point of earlier sessions."""
        return max((s for k, s in next_steps.items() if k.startswith(PREFIX)), default=default_step)

    @classmethod
    def start(cls, log: LogFn, interval: float, first_step: int, name: str) -> SystemSampler | None:
        global _warned_no_psutil
        try:
            import psutil
        except ImportError:
            if not _warned_no_psutil:
                _warned_no_psutil = True
                warnings.warn(
                    "tracklog: system_metrics=True needs psutil, which is not installed; no system "
                    "metrics are logged (pip install 'tracklog[system]')",
                    TracklogWarning,
                    stacklevel=4,  # the caller of start_run
                )
            return None
        try:
            sampler = cls(psutil, log, interval, first_step, name)
        except Exception as exc:  # a psutil that cannot read this process: the run goes on without
            warnings.warn(
                f"tracklog: system metrics cannot start ({exc!r}); none are logged for this run",
                TracklogWarning,
                stacklevel=4,
            )
            return None
        sampler._thread.start()
        return sampler

    @property
    def alive(self) -> bool:
        return not self._forked and self._thread.is_alive()

    def stop(self, join: bool = True) -> None:
        """Stop sampling; with ``join``, wait (at most ``JOIN_TIMEOUT_S``) for the thread to end.

        ``join=False`` is for a signal handler: the thread may wait on a lock it interrupted.
        """
        self._stop.set()
        if join and not self._forked and self._thread is not threading.current_thread():
            self._thread.join(JOIN_TIMEOUT_S)

    def forget_in_child(self) -> None:
        """After fork: the thread did not come along; never wait for it or sample here."""
        self._forked = True
        self._stop.set()

    def _run(self) -> None:
        gpus = None
        try:
            gpus = _Nvml.open()
            groups = dict(self._source.groups)
            next_at = time.monotonic() + self._interval
            while not self._stop.wait(max(0.0, next_at - time.monotonic())):
                next_at = max(next_at + self._interval, time.monotonic())
                values: dict[str, float] = {}
                for name, read in list(groups.items()):
                    try:
                        values.update(read())
                    except Exception as exc:
                        del groups[name]
                        _warn(f"reading {name} failed ({exc!r}); it is no longer sampled")
                if gpus is not None:
                    values.update(gpus.sample())
                if not values or self._stop.is_set():
                    continue
                self._log(values, self._step)
                self._step += 1
                self.samples += 1
        except RunClosedError:
            pass  # the run ended while a sample was in flight
        except WriteError as exc:  # strict mode: the job's own log calls raise it
            _warn(f"sampling stopped: {exc}")
        except Exception as exc:  # never let the thread's failure reach the job
            _warn(f"sampling stopped: {exc!r}")
        finally:
            if gpus is not None:
                gpus.close()
