"""Parallel executors: where the cells of a study run when not one after another in this process.

The default, :class:`cutbench.runner.InlineExecutor` (the one for published timings), runs one
cell after another in this process; the executors here run cells elsewhere:

- :class:`LocalPoolExecutor`: worker processes on this machine, one per GPU pinned through
  ``CUDA_VISIBLE_DEVICES`` (CPU workers with the cores split between them when there is no GPU).
- :class:`DaskExecutor`: a ``dask.distributed`` cluster (a scheduler address, or a LocalCluster).

Workers write their records straight to the result store; the store is the only channel back to
the driver, which only learns each cell's key and status.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from functools import cached_property

from cutbench import CutbenchError
from cutbench.identity import cell_key
from cutbench.runner import _DATASETS, InlineExecutor, _write_lost, execute_cell, identify_cell
from cutbench.threads import ThreadChoice, choose_threads

_ORPHAN_POLL_SECONDS = 0.1


def _exit_with(parent: int) -> None:
    """End this process as soon as ``parent`` is no longer its parent (the driver was killed)."""
    while os.getppid() == parent:
        time.sleep(_ORPHAN_POLL_SECONDS)
    os._exit(1)  # the cell it was running is left unrecorded and its claim stale, so the next run redoes it


def _pool_worker(tasks, results, gpu: str | None, threads: ThreadChoice, store_root: str, study_name: str, parent: int):
    # A worker whose driver is killed (even with SIGKILL, which no handler sees) must not go on working
    # through the queue it inherited: it watches its parent and exits when it is re-parented.
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    # Ctrl-C is the driver's to handle (one line, then it stops the workers), not a traceback per worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    while True:
        item = tasks.get()
        if item is None:
            return
        index, cell = item
        results.put(("start", os.getpid(), index))
        try:
            key, status = execute_cell(cell, store_root, study_name, threads)
        except Exception as exc:  # noqa: BLE001 - e.g. the store became unwritable
            key, status = None, f"failed: {type(exc).__name__}: {exc}"
        results.put(("done", os.getpid(), index, key, status))


class LocalPoolExecutor:
    """Worker processes on this machine: one per GPU, or CPU workers sharing the cores.

    Parameters
    ----------
    workers : int, optional
        Number of workers; default one per visible GPU, else 2 CPU workers.
    gpus : list of str, optional
        GPU ids to pin, one worker each (default: all visible GPUs).
    threads : int, optional
        Threads per worker (:func:`cutbench.threads.choose_threads`); default the cores shared out, fewer
        on a busy machine.
    """

    name = "pool"

    def __init__(self, workers: int | None = None, gpus: list[str] | None = None, threads: int | None = None):
        self.workers = check_workers(workers)
        self.gpus = gpus
        self.threads = threads

    def _gpus(self) -> list[str]:
        import torch

        if self.gpus is None and torch.cuda.is_available():
            return [str(i) for i in range(torch.cuda.device_count())]
        return list(self.gpus or [])

    @cached_property
    def thread_choice(self) -> ThreadChoice:
        """Threads per worker, chosen once (at the load of the run's start)."""
        return choose_threads(self.threads, self.workers or len(self._gpus()) or 2)

    def _plan(self) -> list[tuple[str | None, ThreadChoice]]:
        gpus = self._gpus()
        if gpus:
            return [(gpus[i % len(gpus)], self.thread_choice) for i in range(self.workers or len(gpus))]
        return [(None, self.thread_choice)] * (self.workers or 2)

    def map(self, cells, store_root, study_name):
        ctx = mp.get_context("spawn")  # CUDA cannot be forked
        tasks, results = ctx.Queue(), ctx.Queue()
        for item in enumerate(cells):
            tasks.put(item)
        procs = []
        for gpu, threads in self._plan():
            tasks.put(None)
            p = ctx.Process(target=_pool_worker, args=(tasks, results, gpu, threads, store_root, study_name,
                                                       os.getpid()), daemon=True)
            p.start()
            procs.append(p)
        running, done = {}, 0
        self.running = running  # pid -> index of the cell it runs; read by monitors and tests
        try:
            while done < len(cells):
                try:
                    messages, dead = [results.get(timeout=1.0)], []
                except queue.Empty:
                    # Note the dead, then read: a worker flushes its messages before it exits, so a cell
                    # still held by a dead worker after this drain is truly lost. Deciding without reading
                    # would call lost a cell that finished just before its worker exited.
                    dead = [p for p in procs if not p.is_alive()]
                    messages = _drain(results)
                for message in messages:
                    if message[0] == "start":
                        running[message[1]] = message[2]
                    else:
                        _, pid, index, key, status = message
                        running.pop(pid, None)
                        done += 1
                        yield cells[index], key, status
                for p in dead:  # a worker that died takes its cell down with it: record that
                    if p.pid in running:
                        index = running.pop(p.pid)
                        _write_lost(cells[index], store_root, study_name, "failed",
                                    f"the worker process died (exit code {p.exitcode})")
                        done += 1
                        yield cells[index], cell_key(identify_cell(cells[index], _DATASETS)[0]), "failed"
                if len(dead) == len(procs) and not running and done < len(cells):
                    raise CutbenchError("all pool workers exited with cells left; see the records for errors.")
        finally:
            for p in procs:
                p.join(timeout=5)
                if p.is_alive():
                    p.kill()


def _drain(results) -> list:
    """Every message already in the queue, without waiting."""
    messages = []
    while True:
        try:
            messages.append(results.get_nowait())
        except queue.Empty:
            return messages


class DaskExecutor:
    """Cells as tasks on a dask.distributed cluster.

    Parameters
    ----------
    address : str, optional
        A scheduler address (``tcp://host:8786``); default: a LocalCluster on the loopback interface.
    workers : int
        Worker processes of the LocalCluster (one task at a time each).
    threads : int, optional
        Threads per cell (:func:`cutbench.threads.choose_threads`); default the cores shared out
        among the local workers, fewer on a busy machine.
    """

    name = "dask"

    def __init__(self, address: str | None = None, workers: int = 2, threads: int | None = None):
        self.address = address
        self.workers = check_workers(workers) or 2
        self.thread_choice = choose_threads(threads, self.workers)

    def map(self, cells, store_root, study_name):
        try:
            from dask.distributed import Client, LocalCluster, as_completed
        except ImportError as exc:
            raise CutbenchError("the dask executor needs dask.distributed: pip install 'cutbench[dask]'.") from exc
        cluster = None
        if self.address is None:
            cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                   host="127.0.0.1", dashboard_address=None)
        client = Client(self.address or cluster)
        try:
            futures = {client.submit(execute_cell, cell, store_root, study_name, self.thread_choice, pure=False): cell
                       for cell in cells}
            for future in as_completed(futures):
                yield (futures[future], *future.result())
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


EXECUTORS = {"inline": InlineExecutor, "pool": LocalPoolExecutor, "dask": DaskExecutor}
"""Executors by the name ``cutbench run --executor`` takes."""


def check_workers(workers: int | None) -> int | None:
    """``workers`` (None: the executor's default) if it is an integer >= 1; otherwise a clear error."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise CutbenchError(f"workers must be an integer >= 1; got {workers!r}.")
    return workers


def make_executor(name: str, **options):
    if name not in EXECUTORS:
        raise CutbenchError(f"unknown executor {name!r}; accepted: {', '.join(EXECUTORS)}.")
    return EXECUTORS[name](**options)
