"""Runs the cells of a study and stores one record per cell.

The flow of one cell is one-way: dataset -> features -> (affinity) -> fit -> predict -> metrics ->
record. Every stage is timed by :mod:`cutbench.timing`; the method itself never times anything.
A cell that raises is stored as ``failed`` with its error and the study goes on.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import signal
import subprocess
import sys
import threading
import time
import traceback
import warnings
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
import torch
from sklearn.base import clone

from cutbench import CutbenchError, CutbenchWarning, DataUnavailableError
from cutbench._validation import resolve_device
from cutbench.affinity import HEAT_KERNEL, AffinityCache, affinity_kind, canonical_affinity, prepare_affinity
from cutbench.convergence import record_convergence
from cutbench.datasets import compute_features, load_dataset, resolve_features
from cutbench.graph import APPROXIMATE_BACKENDS, knn_recall
from cutbench.identity import cell_config, cell_key, cell_plugins
from cutbench.methods.base import as_numpy_labels
from cutbench.methods.registry import make_method
from cutbench.metrics import METRICS, Metric, evaluate, get_metric
from cutbench.progress import progress_bar
from cutbench.provenance import provenance
from cutbench.records import finite_metrics
from cutbench.store import STATUSES, ResultStore
from cutbench.study import Cell, Study
from cutbench.threads import ThreadChoice, choose_threads, cores, limited_threads, load_average
from cutbench.timing import StageTimer


class DatasetCache:
    """Datasets loaded once per process and shared by every cell that uses them."""

    def __init__(self):
        self._loaded = {}

    def get(self, name: str, params: dict):
        key = (name, tuple(sorted(params.items())))
        if key not in self._loaded:
            self._loaded[key] = load_dataset(name, **params)
        return self._loaded[key]


def train_indices(n: int, train_size: int | None, seed: int) -> np.ndarray:
    """The training subset: ``train_size`` points drawn uniformly without replacement (all when None)."""
    if train_size is None or train_size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=train_size, replace=False))


class CellTimeout(Exception):
    """A cell ran past its time limit."""


@contextmanager
def time_limit(seconds: float | None):
    """Raise :class:`CellTimeout` in the enclosed block after ``seconds`` (None: no limit).

    Uses SIGALRM, so it works in a process's main thread; executors that run cells in other
    threads run each limited cell in a child process instead (see :mod:`cutbench.executors`).
    """
    if seconds is None:
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("time_limit needs the main thread; run the cell in a child process instead")

    def expire(signum, frame):
        raise CellTimeout(f"the cell ran past its time limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


RECALL_ROWS = 500
"""Rows on which the recall of an approximate kNN graph is measured against exact search."""

_NO_CUDA = "CUDA is not available on this machine; run the cell on a GPU host or set device: auto."


def identify_cell(cell: Cell, datasets: DatasetCache):
    """``(config, dataset, device, problem)`` of a cell.

    ``problem`` is None when the cell can run, the string reason when it must be skipped, or the
    exception that prevents it (dataset unavailable). The config, and so the key, is the same
    whether or not the dataset loads (its fingerprint is None when it does not, and is not part of
    the key), so a cell that failed on broken data is found, and replaced, once the data is fixed.
    """
    if cell.device.startswith("cuda") and not torch.cuda.is_available():
        return cell_config(cell, None, cell.device), None, None, _NO_CUDA
    device = resolve_device(cell.device)
    try:
        dataset = datasets.get(cell.dataset, cell.dataset_params)
    except Exception as exc:  # noqa: BLE001 - recorded as a failed cell
        return cell_config(cell, None, str(device)), None, device, exc
    return cell_config(cell, dataset.meta["fingerprint"], str(device)), dataset, device, None


def is_done(record: dict | None, config: dict, *, retry_failed: bool = False) -> bool:
    """Whether a stored ``record`` settles the cell of ``config``, so that it need not run again.

    It does when it is an outcome on the same data (its fingerprint equals the data's now, or the
    data cannot be loaded now) and it is ``ok`` (or any outcome, unless failures are retried).
    """
    if record is None:
        return False
    now = config["dataset"]["fingerprint"]
    stored = record["config"]["dataset"].get("fingerprint")
    if now is not None and stored != now:
        return False  # an outcome on other (e.g. broken, or since changed) data
    return record["status"] == "ok" or not retry_failed


def run_cell(cell: Cell, datasets: DatasetCache, study_name: str, *,
             identified: tuple | None = None) -> tuple[dict, np.ndarray | None]:
    """Run one cell; returns its record and predicted labels (None unless it succeeded).

    ``identified`` is the cell's :func:`identify_cell` when the caller has it already (its claim needed the
    key), so a cell is identified once per process. The record keeps the machine's load average at the
    cell's start and end and the core count, so a report can tell which timings an oversubscribed machine
    made.
    """
    started = time.perf_counter()
    load_at_start = load_average()
    config, dataset, device, problem = identified or identify_cell(cell, datasets)
    record = {"study": study_name, "key": cell_key(config), "config": config, "status": "failed", "error": None}
    labels = None
    try:
        if isinstance(problem, str):
            record.update(status="skipped", error=problem)
        elif problem is not None:
            raise problem
        else:
            with time_limit(cell.timing.get("time_limit")), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                labels = _run_stages(cell, dataset, device, record)
            record["status"] = "ok"
            # kept with the result: e.g. a disconnected graph or an unconverged eigensolver
            record["warnings"] = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    except CellTimeout as exc:
        labels = None
        record.update(status="timeout", error=str(exc))
    except torch.cuda.OutOfMemoryError as exc:
        labels = None
        record.update(status="failed", error_kind="oom", error=f"CUDA out of memory: {exc}",
                      traceback=traceback.format_exc())
        torch.cuda.empty_cache()
    except Exception as exc:  # noqa: BLE001 - every failure becomes a stored failed record
        labels = None
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        if isinstance(exc, DataUnavailableError):
            record["error_kind"] = "data_missing"  # reports say "not run" and how to get the data
    for stage in ("metrics", "timings", "history", "convergence") if record["status"] != "ok" else ():
        record.pop(stage, None)  # partial results of a cell that did not finish are not results
    record["cell_wall_seconds"] = time.perf_counter() - started
    record["load"] = {"start": load_at_start, "end": load_average(), "cores": cores()}
    plugins = cell_plugins(cell)
    record["provenance"] = {**provenance(), **({"plugins": plugins} if plugins else {})}
    return record, labels


def _run_stages(cell: Cell, dataset, device: torch.device, record: dict) -> np.ndarray:
    """features -> (affinity) -> fit -> predict -> metrics, each stage timed; fills ``record``."""
    timer = StageTimer(device)
    # Features are computed (or read from the feature cache) and land on the device before any
    # timed method stage; whether the cache was hit is recorded, as it dominates this stage's time.
    with timer.stage("features"):
        featured = compute_features(dataset, resolve_features(cell.features, cell.dataset), device=device)
        X = torch.from_numpy(featured.X).to(device)
    y = dataset.y
    cache = featured.meta["features_cache"]
    record["features"] = {"steps": featured.meta["features"], "d": featured.meta["d"], "cache": cache,
                          "cache_hit": None if set(cache) == {"off"} else "miss" not in cache,
                          "fingerprint": featured.meta["fingerprint"]}

    method = make_method(cell.method, n_clusters=dataset.meta["k"], random_state=cell.seed,
                         device=str(device), **cell.method_params)
    caps = method.capabilities
    # Transductive methods can only label what they are fitted on, so they are fitted on all points.
    fit_idx = (train_indices(len(y), cell.protocol["train_size"], cell.seed) if caps.out_of_sample
               else np.arange(len(y)))
    requested = cell.protocol["train_size"]
    if caps.out_of_sample and requested is not None and requested > len(y):
        warnings.warn(CutbenchWarning(f"protocol.train_size={requested} is more than the {len(y)} points of the "
                                      f"dataset: trained on all {len(y)} (recorded as n_fit)."))
    X_fit = X[torch.from_numpy(fit_idx).to(device)] if len(fit_idx) < len(y) else X
    record.update(fit_on="subset" if len(fit_idx) < len(y) else "all", n_fit=int(len(fit_idx)),
                  capabilities=caps.to_dict())

    warmup, repeats = cell.timing["warmup"], cell.timing["repeats"]
    fit_kwargs = {}
    learned = bool(caps.affinity_kinds) and affinity_kind(method.affinity) != HEAT_KERNEL
    # This cell's cache of learned affinities: the affinity stage trains the network, every fit of the
    # cell reuses it, and nothing outlives the cell, so the affinity time always includes the training.
    affinity_cache = AffinityCache()
    with affinity_cache.active():
        if caps.precomputed_graph or learned:
            # A learned affinity's later runs would only hit the cache, so it is timed once (that run is
            # also its cold time).
            built = {}

            def build_affinity():
                built["prepared"] = prepare_affinity(method.affinity, X_fit, device=device, random_state=cell.seed)
                return built["prepared"].graph(report=built) if caps.precomputed_graph else None

            graph = timer.run("affinity", build_affinity, warmup=0 if learned else warmup,
                              repeats=1 if learned else repeats)
            if caps.precomputed_graph:
                fit_kwargs["graph"] = graph
                record["knn"] = _knn_report(built, cell.seed)
        # Each run fits a fresh clone: a warm-up run must not warm-start the measured one.
        fitted = timer.run("fit", lambda: clone(method).fit(X_fit, **fit_kwargs), warmup=warmup, repeats=repeats)
    if caps.out_of_sample:
        labels = as_numpy_labels(timer.run("predict", lambda: fitted.predict(X), warmup=warmup, repeats=repeats))
    else:
        labels = as_numpy_labels(fitted.labels_)

    timings = timer.to_dict()
    timings["total"] = {"seconds": sum(t["seconds"] for t in timings.values())}
    scored = np.arange(len(y))
    if cell.protocol.get("evaluate") == "held_out":  # test accuracy: only the points not trained on
        scored = np.setdiff1d(scored, fit_idx)
        if not len(scored):
            raise CutbenchError("protocol.evaluate: held_out leaves no point to score: the method trained on all "
                                f"{len(y)} points; use a train_size below the dataset's size.")
        record["n_scored"] = int(len(scored))
    metric_set = cell_metrics(cell)
    needs = {need for metric in metric_set for need in metric.needs}
    X_scored = X[torch.from_numpy(scored).to(device)] if len(scored) < len(y) else X
    # the method's own full graph is the scored points' only when it was built on exactly them
    same_points = len(scored) == len(y) == len(fit_idx) and not learned
    graph = (_scoring_graph(method, X_scored, fit_kwargs.get("graph") if same_points else None, device, record,
                            scored) if "graph" in needs else None)
    embedding = _embedding(fitted, X_scored, caps, len(scored) == len(y)) if "embedding" in needs else None
    metrics, notes = evaluate(metric_set, labels[scored], y_true=y[scored], graph=graph, embedding=embedding)
    metrics, not_finite = finite_metrics(metrics)
    notes.update(not_finite)
    if notes:
        record["metric_notes"] = notes
    history = _history(fitted)
    record.update(metrics=metrics, timings=timings, history=history)
    convergence = record_convergence(history)
    if convergence is not None:  # a network: did its objective converge before training stopped?
        record["convergence"] = convergence
    return labels


def cell_metrics(cell: Cell) -> list[Metric]:
    """The metrics a cell records, with their options: the study's ``metrics`` (every built-in one by
    default); NMI's average method is the protocol's ``nmi_average_method`` unless the study sets it on NMI."""
    specs = cell.metrics if cell.metrics is not None else [{"name": name} for name in METRICS]
    metrics = []
    for spec in specs:
        metric = get_metric(spec["name"])
        options = {key: value for key, value in spec.items() if key != "name"}
        if metric.name == "nmi":
            options.setdefault("average_method", cell.protocol["nmi_average_method"])
        metrics.append(metric.with_options(**options))
    return metrics


class ScoringGraphCache:
    """The scoring graphs this process built, by features, scored points and kernel.

    Every cell of a study on one dataset scores the same points on the same kernel, and that graph costs
    about a minute on 70,000 points with one thread: it is built once per process (each pool or dask
    worker), outside every timed stage, and at most :attr:`size` are kept.
    """

    size = 2

    def __init__(self):
        self._graphs = {}

    def get(self, key: tuple, build):
        if key not in self._graphs:
            while len(self._graphs) >= self.size:
                self._graphs.pop(next(iter(self._graphs)))
            self._graphs[key] = build()
        return self._graphs[key]


def _scoring_graph(method, X_scored: torch.Tensor, method_graph, device, record: dict, scored: np.ndarray):
    """The graph the cut values are measured on, built outside every timed stage: the full graph the method
    was given when it labelled exactly the scored points, else the heat-kernel graph of the scored points
    (the method's own kernel when it is a kNN kernel; the default kNN kernel for a method without one, with
    a learned one, or with a dense one, whose n x n graph a large dataset cannot hold: NeuNcut's reference
    kernel scores 70,000 points at paper scale)."""
    affinity = getattr(method, "affinity", None)
    own = affinity is not None and affinity_kind(affinity) == HEAT_KERNEL
    spec = affinity if own and canonical_affinity(affinity)["n_neighbors"] is not None else "knn"
    fingerprint = record.get("features", {}).get("fingerprint")
    if method_graph is not None:
        graph = method_graph
    elif fingerprint is None:  # features that cannot be told apart are not cached
        graph = prepare_affinity(spec, X_scored, device=device).graph()
    else:
        key = (fingerprint, hashlib.sha256(np.ascontiguousarray(scored)).hexdigest(),
               json.dumps(canonical_affinity(spec), sort_keys=True, default=str), str(device))
        graph = _SCORING_GRAPHS.get(key, lambda: prepare_affinity(spec, X_scored, device=device).graph())
    record["cut_graph"] = {"affinity": canonical_affinity(spec), "n": int(X_scored.shape[0]),
                           "source": "the method's graph" if method_graph is not None else "built for scoring"}
    return graph


def _embedding(fitted, X_scored: torch.Tensor, caps, all_points: bool):
    """The method's embedding of the scored points, or None when it has none."""
    if hasattr(fitted, "transform") and caps.out_of_sample:
        return np.asarray(fitted.transform(X_scored))
    embedding = getattr(fitted, "embedding_", None)
    return np.asarray(embedding) if embedding is not None and all_points else None


def _knn_report(built: dict, seed: int) -> dict:
    """The kNN backend of a full graph and, for an approximate one, its recall against exact search on 500
    rows (measured here, outside the timed affinity stage)."""
    report = {"backend": built.get("knn_backend")}
    if report["backend"] in APPROXIMATE_BACKENDS and "neighbors" in built:
        prepared = built["prepared"]
        report.update(recall=knn_recall(prepared.points, prepared.kernel, built["neighbors"], sample=RECALL_ROWS,
                                        seed=seed, device=prepared.points.device),
                      recall_rows=RECALL_ROWS, recall_seed=seed)
    return report


def _history(fitted) -> dict | None:
    history = getattr(fitted, "history_", None)
    if not history:
        return None
    return {k: [float(v) for v in values] for k, values in history.items()}


# ---------------------------------------------------------------------------------------------
# Executing cells: the store is the only channel back to the caller
# ---------------------------------------------------------------------------------------------
_DATASETS = DatasetCache()  # one per worker process
_SCORING_GRAPHS = ScoringGraphCache()
_CHILD_GRACE_SECONDS = 30.0


def execute_cell(cell: Cell, store_root: str, study_name: str,
                 threads: ThreadChoice | None = None) -> tuple[str, str]:
    """Run one cell with ``threads`` threads (None: as set), write its record to the store, return
    ``(key, status)``. The thread choice and its reason are kept in the record.

    The cell is claimed in the store while it runs, so two drivers on one folder never compute it
    twice: a cell claimed by another live process returns ``"busy"``, and one that another process
    finished meanwhile returns ``"stored"``. A cell with a time limit that cannot use SIGALRM here (not
    the main thread, e.g. a dask worker thread) runs in a child process that is killed if it outlives
    the limit.
    """
    limit = cell.timing.get("time_limit")
    if limit is not None and threading.current_thread() is not threading.main_thread():
        return _execute_in_child(cell, store_root, study_name, limit, threads)
    store = ResultStore(store_root)
    identified = identify_cell(cell, _DATASETS)
    config = identified[0]
    key = cell_key(config)
    with store.claim(key) as held:
        if not held:
            return key, "busy"
        if is_done(store.get(key), config, retry_failed=True):  # an ok outcome written meanwhile
            return key, "stored"
        with limited_threads(threads.threads if threads else None):
            record, labels = run_cell(cell, _DATASETS, study_name, identified=identified)
        if threads is not None:
            record["thread_choice"] = {"threads": threads.threads, "reason": threads.reason}
        store.write(record, labels)
    return key, record["status"]


def child_main() -> None:
    """Entry point of a child process: run the pickled ``(cell, store_root, study_name, threads)`` on stdin."""
    execute_cell(*pickle.load(sys.stdin.buffer))


def _execute_in_child(cell: Cell, store_root: str, study_name: str, limit: float,
                      threads: ThreadChoice | None = None) -> tuple[str, str]:
    # A plain subprocess, not multiprocessing: dask worker processes are daemons and may not fork children.
    payload = pickle.dumps((cell, store_root, study_name, threads))
    command = [sys.executable, "-c", "from cutbench.runner import child_main; child_main()"]
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
    config = identify_cell(cell, _DATASETS)[0]
    ResultStore(store_root).write({"study": study_name, "key": cell_key(config), "config": config,
                                   "status": status, "error": error, "provenance": provenance()})


class InlineExecutor:
    """Run cells one after another in this process (best timing fidelity).

    Parameters
    ----------
    threads : int, optional
        Threads per cell (:func:`cutbench.threads.choose_threads`); default every core, fewer on a busy
        machine.
    """

    name = "inline"

    def __init__(self, threads: int | None = None):
        self.thread_choice = choose_threads(threads)

    def map(self, cells: list[Cell], store_root: str, study_name: str) -> Iterator[tuple[Cell, str, str]]:
        for cell in cells:
            yield (cell, *execute_cell(cell, store_root, study_name, self.thread_choice))


def run_study(study: Study, store: ResultStore, *, executor=None, retry_failed: bool = False,
              cells: list[Cell] | None = None, progress: Callable[[str], None] = print) -> dict:
    """Run every cell of ``study`` (or the selected ``cells``) whose outcome is not already stored.

    A stored ``ok`` outcome on the same data is always kept; a stored failed/timeout/skipped one is
    re-run with ``retry_failed``, and any outcome on other data (e.g. data that was broken, or has
    changed) is re-run. Returns counts per outcome, plus ``stored`` (already settled), ``busy``
    (computed by another process on the same folder right now) and ``ran``.
    """
    executor = executor or InlineExecutor()
    cells = study.cells if cells is None else cells
    counts = {"ran": 0, "stored": 0, "busy": 0, **{status: 0 for status in STATUSES}}
    latest = store.latest_by_configuration()
    todo, planned = [], []
    for cell in cells:
        config = identify_cell(cell, _DATASETS)[0]  # the process's one cache: the inline executor reuses it
        planned.append(config)
        if is_done(latest.get(cell_key(config)), config, retry_failed=retry_failed):
            counts["stored"] += 1
        else:
            todo.append(cell)
    store.write_plan(study.name, planned)
    unusable = store.problems_summary()
    if unusable:
        progress(unusable)
    progress(f"{len(cells)} cells: {counts['stored']} already stored, {len(todo)} to run ({executor.name} executor)")
    choice = getattr(executor, "thread_choice", None)
    if todo and choice is not None:
        progress(f"threads per cell: {choice.threads}, {choice.reason}")
    started = time.perf_counter()
    bar = progress_bar(len(todo), "cells", "cell")
    for done, (cell, key, status) in enumerate(executor.map(todo, str(store.root), study.name), 1):
        if status in ("busy", "stored"):
            counts[status] += 1
            holder = (store.claim_holder(key) or "another process") if status == "busy" else None
            detail = (f"being computed by {holder}; run the study again once it ends" if status == "busy"
                      else "stored meanwhile by another process")
        else:
            counts["ran"] += 1
            counts[status if status in STATUSES else "failed"] += 1
            record = store.get(key) or {}
            if status == "ok":
                m, t = record["metrics"], record["timings"]
                shown = " ".join(f"{name}={_number(value)}" for name, value in list(m.items())[:2])  # the study's first
                detail = f"ok  {shown} fit={t['fit']['seconds']:.2f}s"
            else:
                detail = f"{status.upper()}  {record.get('error', status)}"
        elapsed = time.perf_counter() - started
        eta = elapsed / done * (len(todo) - done)
        with bar.external_write_mode():
            progress(f"{done}/{len(todo)} {cell.label()}: {detail}  (elapsed {elapsed:.0f}s, ETA {eta:.0f}s)")
        bar.update(1)
    bar.close()
    return counts


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
