"""The thread policy: how many threads a cell may use, applied to torch, BLAS and OpenMP alike.

CPU times depend on the thread count and on what else the machine runs, and on CPU so do the
network methods' accuracies (floating-point sums are split differently: digits NeuNcut, same seeds,
0.701 with 2 threads and 0.694 with 1). So the count is set once per run (``cutbench run --threads``),
applied inside every cell to torch and, through threadpoolctl, to every BLAS and OpenMP pool
(k-means, eigensolvers), and recorded with the result together with the machine's load average at
the start and the end of the cell. Defaults: every core for the inline executor; the cores shared out
among the workers of a parallel executor, and on a busy machine only the cores other work leaves idle
when the run starts (:func:`choose_threads`, which says why).
"""

from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psutil
from threadpoolctl import threadpool_info, threadpool_limits

from cutbench import CutbenchError


def cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ThreadChoice:
    """Threads per cell, and why that many (printed when a run starts and kept in every record)."""

    threads: int
    reason: str


_REUSE_SECONDS = 10.0
_last_measured: tuple[float, float] | None = None  # (monotonic time, busy cores)


def busy_cores(seconds: float = 0.5) -> float:
    """How many of this process's cores other work keeps busy right now: their CPU use summed over a
    ``seconds`` sample (unlike the load average, which trails the last minute: an idle machine just
    after a run still shows load 1). A measurement of the last 10 s is reused (the command and its
    executor both ask when a run starts)."""
    global _last_measured
    now = time.monotonic()
    if _last_measured is not None and now - _last_measured[0] < _REUSE_SECONDS:
        return _last_measured[1]
    mine = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    per_cpu = psutil.cpu_percent(interval=seconds, percpu=True)
    busy = round(sum(per_cpu[i] for i in mine if i < len(per_cpu)) / 100, 2)
    _last_measured = (time.monotonic(), busy)
    return busy


def quiet_idle_threads() -> str | None:
    """On a busy machine, make idle OpenMP threads sleep instead of spin (``OMP_WAIT_POLICY=PASSIVE``,
    unless the environment sets a policy); returns why, or None when nothing was changed.

    Must run before torch starts OpenMP. Measured on the 2-core box (see the README): with two threads
    under a load of four spinning processes, passive waiting made a run faster; on an idle machine it
    made the quick study slower, as sleeping threads are slow to wake for the next small operation, so
    an idle machine keeps OpenMP's default.
    """
    if "OMP_WAIT_POLICY" in os.environ or busy_cores() < 0.5:
        return None
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return "OMP_WAIT_POLICY=PASSIVE: the machine is busy, so idle OpenMP threads sleep instead of spinning"


def choose_threads(threads: int | None, workers: int = 1, *, busy: float | None = None) -> ThreadChoice:
    """Threads per cell: ``threads`` checked against the cores, or the default for ``workers`` workers.

    The default shares the cores out among the workers and, on a busy machine, gives each cell only
    the cores other work leaves idle (at least one), rounded: threads that wait for a core slow every
    cell down (on the 2-core box at load 12-17 the quick study ran 8-10 times faster with one thread
    than with two). ``busy`` is the cores' worth of CPU other work uses when the run starts (default:
    :func:`busy_cores`, measured now).

    Raises
    ------
    CutbenchError
        ``threads`` below 1, or more threads across the workers than the machine has cores (every
        cell would then be slowed by the others: an oversubscribed machine).
    """
    available = cores()
    workers = max(workers, 1)
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise CutbenchError(f"--threads must be an integer >= 1; got {threads!r}.")
        if threads * workers > available:
            per_worker = "" if workers == 1 else f" with {workers} workers"
            raise CutbenchError(f"--threads {threads}{per_worker} asks for {threads * workers} threads, more than "
                                f"the {available} cores of this machine, so cells would slow each other down: use "
                                f"--threads <= {max(1, available // workers)}.")
        return ThreadChoice(threads, "given by --threads")
    share = max(1, available // workers)
    among = "" if workers == 1 else f" shared out among {workers} workers"
    busy = busy_cores() if busy is None else busy
    load = load_average()
    measured = f"{busy:.1f} of {available} cores busy with other work" + (
        f", load average {load:.2f}" if load is not None else "")
    chosen = max(1, min(share, math.floor(max(available - busy, 0.0) / workers + 0.5)))
    if chosen == share:
        return ThreadChoice(share, f"the {available} cores{among}; the machine is idle enough ({measured})")
    return ThreadChoice(chosen, f"not {share}: the machine is busy ({measured}), and threads waiting for a core "
                                "would slow every cell down; --threads N overrides")


@contextmanager
def limited_threads(threads: int | None):
    """Run the enclosed block with ``threads`` torch threads and BLAS/OpenMP threads (None: as they are)."""
    if threads is None:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(previous)


def thread_settings() -> dict[str, Any]:
    """Thread counts that change CPU timings, as they are now; recorded with every result."""
    import torch  # here, not at the top: quiet_idle_threads must be importable before torch starts OpenMP

    pools = {f"{pool['internal_api']}_threads": pool["num_threads"] for pool in threadpool_info()}
    return {
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        **pools,
        **{var: os.environ.get(var) for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                "OMP_WAIT_POLICY")},
    }


def load_average() -> float | None:
    """The machine's 1-minute load average (None where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


__all__ = ["ThreadChoice", "busy_cores", "choose_threads", "cores", "limited_threads", "load_average",
           "quiet_idle_threads", "thread_settings"]
