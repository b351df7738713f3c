"""The thread policy: how many threads a cell may use, applied to torch, BLAS and OpenMP alike.

CPU times depend on the thread count and on what else the machine runs, and on CPU so do the
network methods' accuracies (floating-point sums are split differently: digits NeuNcut, same seeds,
0.701 with 2 threads and 0.694 with 1). So the count is set once per run (``cutbench run --threads``),
applied inside every cell to torch and, through threadpoolctl, to every BLAS and OpenMP pool
(k-means, eigensolvers), and recorded with the result together with the machine's load average at
the start and the end of the cell. Defaults: every core for the inline executor; the cores shared out
among the workers of a parallel executor, and on a busy machine only the cores the load average leaves
idle (:func:`choose_threads`, which says why). Idle OpenMP threads sleep rather than spin
(``OMP_WAIT_POLICY=PASSIVE``, set by the ``cutbench`` command unless the environment sets it).
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
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


def choose_threads(threads: int | None, workers: int = 1, *, load: float | None = None) -> ThreadChoice:
    """Threads per cell: ``threads`` checked against the cores, or the default for ``workers`` workers.

    The default shares the cores out among the workers and, on a busy machine, gives each cell only
    the cores the load leaves idle (at least one): threads that wait for a core slow every cell down
    (on the 2-core box at load 12-17 the quick study ran 8-10 times faster with one thread than with
    two). ``load`` is the 1-minute load average when the run starts (default: read now).

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
    load = load_average() if load is None else load
    if load is None:
        return ThreadChoice(share, f"the {available} cores{among} (this OS reports no load average)")
    idle = max(available - load, 0.0)
    chosen = max(1, min(share, math.floor(idle / workers + 0.5)))
    if chosen == share:
        return ThreadChoice(share, f"the {available} cores{among}; the machine is idle enough "
                                   f"(load average {load:.2f})")
    return ThreadChoice(chosen, f"not {share}: the machine is busy (load average {load:.2f} on {available} cores), "
                                "and threads waiting for a core would slow every cell down; --threads N overrides")


@contextmanager
def limited_threads(threads: int | None):
    """Run the enclosed block with ``threads`` torch threads and BLAS/OpenMP threads (None: as they are)."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(previous)


def thread_settings() -> dict[str, Any]:
    """Thread counts that change CPU timings, as they are now; recorded with every result."""
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


__all__ = ["ThreadChoice", "choose_threads", "cores", "limited_threads", "load_average", "thread_settings"]
