"""Executors: where the cells of a study run.

- :class:`InlineExecutor` (the default, and the one for published timings): one cell after
  another in this process.
- :class:`LocalPoolExecutor`: worker processes on this machine, one per GPU pinned through
  ``CUDA_VISIBLE_DEVICES`` (CPU workers with the cores split between them when there is no GPU).
- :class:`DaskExecutor`: a ``dask.distributed`` cluster (a scheduler address, or a LocalCluster).

Workers write their records straight to the result store; the store is the only channel back to
the driver, which only learns each cell's key and status.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import queue
import subprocess
import sys
import threading
from typing import Iterator

from cutbench import CutbenchError
from cutbench.runner import DatasetCache, identify_cell, run_cell
from cutbench.store import ResultStore, cell_key
from cutbench.study import Cell

_DATASETS = DatasetCache()  # one per worker process
_CHILD_GRACE_SECONDS = 30.0


def execute_cell(cell: Cell, store_root: str, study_name: str) -> tuple[str, str]:
    """Run one cell, write its record to the store, return ``(key, status)``.

    A cell with a time limit that cannot use SIGALRM here (not the main thread, e.g. a dask
    worker thread) runs in a child process that is killed if it outlives the limit.
    """
    limit = cell.timing.get("time_limit")
    if limit is not None and threading.current_thread() is not threading.main_thread():
        return _execute_in_child(cell, store_root, study_name, limit)
    record, labels = run_cell(cell, _DATASETS, study_name)
    ResultStore(store_root).write(record, labels)
    return record["key"], record["status"]


def child_main() -> None:
    """Entry point of a child process: run the pickled ``(cell, store_root, study_name)`` on stdin."""
    cell, store_root, study_name = pickle.load(sys.stdin.buffer)
    execute_cell(cell, store_root, study_name)


def _execute_in_child(cell: Cell, store_root: str, study_name: str, limit: float) -> tuple[str, str]:
    # A plain subprocess, not multiprocessing: dask worker processes are daemons and may not fork children.
    payload = pickle.dumps((cell, store_root, study_name))
    command = [sys.executable, "-c", "from cutbench.executors import child_main; child_main()"]
    key = cell_key(identify_cell(cell, _DATASETS)[0])
    earlier = ResultStore(store_root).get(key)  # a failed record being retried, or None
    try:
        child = subprocess.run(command, input=payload, capture_output=True, timeout=limit + _CHILD_GRACE_SECONDS)
        if ResultStore(store_root).get(key) in (None, earlier):
            tail = child.stderr.decode(errors="replace")[-2000:]
            _write_lost(cell, store_root, study_name, "failed",
                        f"the cell's process died (exit code {child.returncode}): {tail}")
    except subprocess.TimeoutExpired:
        _write_lost(cell, store_root, study_name, "timeout",
                    f"the cell ran past its time limit of {limit:g} s and its process was killed")
    return key, ResultStore(store_root).get(key)["status"]


def _write_lost(cell: Cell, store_root: str, study_name: str, status: str, error: str) -> None:
    """Record a cell whose process could not record it itself."""
    from cutbench.provenance import provenance

    config = identify_cell(cell, _DATASETS)[0]
    ResultStore(store_root).write({"study": study_name, "key": cell_key(config), "config": config,
                                   "status": status, "error": error, "provenance": provenance()})


class InlineExecutor:
    """Run cells one after another in this process (best timing fidelity)."""

    name = "inline"

    def map(self, cells: list[Cell], store_root: str, study_name: str) -> Iterator[tuple[Cell, str, str]]:
        for cell in cells:
            yield (cell, *execute_cell(cell, store_root, study_name))


def _pool_worker(tasks, results, gpu: str | None, threads: int, store_root: str, study_name: str):
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    import torch

    torch.set_num_threads(threads)
    while True:
        item = tasks.get()
        if item is None:
            return
        index, cell = item
        results.put(("start", os.getpid(), index))
        try:
            key, status = execute_cell(cell, store_root, study_name)
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
    """

    name = "pool"

    def __init__(self, workers: int | None = None, gpus: list[str] | None = None):
        self.workers = workers
        self.gpus = gpus

    def _plan(self) -> list[tuple[str | None, int]]:
        import torch

        gpus = self.gpus
        if gpus is None and torch.cuda.is_available():
            gpus = [str(i) for i in range(torch.cuda.device_count())]
        cores = os.cpu_count() or 1
        if gpus:
            n = self.workers or len(gpus)
            return [(gpus[i % len(gpus)], max(1, cores // n)) for i in range(n)]
        n = self.workers or 2
        return [(None, max(1, cores // n))] * n

    def map(self, cells, store_root, study_name):
        ctx = mp.get_context("spawn")  # CUDA cannot be forked
        tasks, results = ctx.Queue(), ctx.Queue()
        for item in enumerate(cells):
            tasks.put(item)
        procs = []
        for gpu, threads in self._plan():
            tasks.put(None)
            p = ctx.Process(target=_pool_worker, args=(tasks, results, gpu, threads, store_root, study_name),
                            daemon=True)
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
        Worker processes of the LocalCluster (one thread each).
    """

    name = "dask"

    def __init__(self, address: str | None = None, workers: int = 2):
        self.address = address
        self.workers = workers

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
            futures = {client.submit(execute_cell, cell, store_root, study_name, pure=False): cell for cell in cells}
            for future in as_completed(futures):
                yield (futures[future], *future.result())
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


EXECUTORS = {"inline": InlineExecutor, "pool": LocalPoolExecutor, "dask": DaskExecutor}


def make_executor(name: str, **options):
    if name not in EXECUTORS:
        raise CutbenchError(f"unknown executor {name!r}; accepted: {', '.join(EXECUTORS)}.")
    return EXECUTORS[name](**options)
