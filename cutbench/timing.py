"""The one place in cutbench that measures time and memory.

Every timed region goes through :class:`StageTimer`. On CUDA the device is synchronised before the
clock starts and again before it stops, so queued kernels are counted (a GPU figure without that is
a bug: benchopt issue #581). Peak memory is measured per stage: host resident-set size through the
kernel's resettable high-water mark (``/proc/self/clear_refs``), CUDA through torch's allocator
statistics.

A stage may be run several times: the first ``warmup`` runs are recorded as the *cold* time (what a
user pays once: CUDA context, kernel loading, allocator growth), the ``repeats`` runs after them are
the measured times, summarised by their median, minimum and maximum.
"""

from __future__ import annotations

import resource
import statistics
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from cutbench import CutbenchError

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


class DeviceClock:
    """Synchronisation and peak-memory hooks of one device; the CPU needs neither."""

    name = "cpu"
    synchronizes = False

    def synchronize(self) -> None:
        """Wait until all work queued on the device has finished."""

    def reset_peak_memory(self) -> None:
        """Start a new peak-memory window."""

    def peak_memory_bytes(self) -> int | None:
        """Peak device memory allocated since the last reset, or None for the host."""
        return None


class CudaClock(DeviceClock):
    """A CUDA device: ``torch.cuda.synchronize`` around every stage, allocator peak statistics."""

    synchronizes = True

    def __init__(self, device: torch.device):
        self.device = device
        self.name = str(device)

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)

    def reset_peak_memory(self) -> None:
        torch.cuda.reset_peak_memory_stats(self.device)

    def peak_memory_bytes(self) -> int | None:
        return int(torch.cuda.max_memory_allocated(self.device))


def clock_for(device) -> DeviceClock:
    """The clock that times work on ``device`` (a torch device or its name)."""
    device = torch.device(device)
    if device.type == "cuda":
        return CudaClock(device)
    if device.type == "cpu":
        return DeviceClock()
    raise CutbenchError(f"cannot time work on device {device}; accepted: 'cpu', 'cuda', 'cuda:N'.")


def _reset_host_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM); False where the kernel does not allow it."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def _host_peak_bytes(window_reset: bool) -> tuple[int, str]:
    """Peak RSS since the last reset, or the process-lifetime peak where no reset was possible."""
    if window_reset:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024, "stage"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process"


@dataclass
class StageRecord:
    """Timings and peak memory of one stage; seconds are the median of the measured repeats."""

    seconds: float
    runs: list[float]
    cold_seconds: float | None
    peak_rss_bytes: int
    peak_rss_scope: str
    peak_device_bytes: int | None
    device: str
    synchronized: bool

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["min_seconds"] = min(self.runs)
        out["max_seconds"] = max(self.runs)
        return out


@dataclass
class StageTimer:
    """Times named stages on one device.

    Parameters
    ----------
    device : torch.device or str
        Where the timed work runs; CUDA devices are synchronised around every measurement.
    clock : DeviceClock, optional
        Overrides the device's clock (tests use a stand-in to check the synchronisation order).
    perf_counter : callable, optional
        The host clock (``time.perf_counter``).
    """

    device: Any = "cpu"
    clock: DeviceClock | None = None
    perf_counter: Callable[[], float] = time.perf_counter
    stages: dict[str, StageRecord] = field(default_factory=dict)

    def __post_init__(self):
        if self.clock is None:
            self.clock = clock_for(self.device)

    @contextmanager
    def _measure(self, out: dict):
        """Time the enclosed block: synchronise, start, run, synchronise, stop; peak memory too."""
        self.clock.synchronize()
        window = _reset_host_peak()
        self.clock.reset_peak_memory()
        start = self.perf_counter()
        yield
        self.clock.synchronize()
        out["seconds"] = self.perf_counter() - start
        out["rss"], out["rss_scope"] = _host_peak_bytes(window)
        out["device_bytes"] = self.clock.peak_memory_bytes()

    def run(self, name: str, fn: Callable[[], Any], *, warmup: int = 0, repeats: int = 1) -> Any:
        """Run ``fn`` ``warmup + repeats`` times, time each run, record stage ``name``; return the last result.

        The first warm-up run's time is kept as ``cold_seconds``; with ``warmup=0`` the cold time is
        the first measured run (every run is then reported, cold included).
        """
        if warmup < 0 or repeats < 1:
            raise CutbenchError(f"timing needs warmup >= 0 and repeats >= 1; got warmup={warmup}, repeats={repeats}.")
        cold = None
        for i in range(warmup):
            m: dict = {}
            with self._measure(m):
                fn()
            if i == 0:
                cold = m["seconds"]
        runs, rss, device_bytes, result, scope = [], 0, None, None, "stage"
        for _ in range(repeats):
            m = {}
            with self._measure(m):
                result = fn()
            runs.append(m["seconds"])
            rss, scope = max(rss, m["rss"]), m["rss_scope"]
            if m["device_bytes"] is not None:
                device_bytes = max(device_bytes or 0, m["device_bytes"])
        self.stages[name] = StageRecord(
            seconds=statistics.median(runs), runs=runs, cold_seconds=cold if warmup else runs[0],
            peak_rss_bytes=rss, peak_rss_scope=scope, peak_device_bytes=device_bytes,
            device=self.clock.name, synchronized=self.clock.synchronizes)
        return result

    @contextmanager
    def stage(self, name: str):
        """Time one run of the enclosed block as stage ``name`` (no warm-up)."""
        m: dict = {}
        with self._measure(m):
            yield
        self.stages[name] = StageRecord(
            seconds=m["seconds"], runs=[m["seconds"]], cold_seconds=m["seconds"],
            peak_rss_bytes=m["rss"], peak_rss_scope=m["rss_scope"], peak_device_bytes=m["device_bytes"],
            device=self.clock.name, synchronized=self.clock.synchronizes)

    def to_dict(self) -> dict[str, dict]:
        return {name: rec.to_dict() for name, rec in self.stages.items()}
