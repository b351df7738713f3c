"""Executors and resume: pool and dask produce the inline records; kill -9 loses no finished cell."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from cutbench.executors import DaskExecutor, LocalPoolExecutor
from cutbench.identity import cell_key
from cutbench.runner import identify_cell, run_study
from cutbench.store import ResultStore
from cutbench.study import expand_study

TINY = {"name": "exec", "datasets": [{"name": "double_rings", "params": {"n": 300}},
                                     {"name": "blobs", "params": {"n": 150, "n_clusters": 3}}],
        "affinity": {"sigma": "median", "n_neighbors": 8},
        "methods": ["kmeans", "ncut"], "protocol": {"train_size": 100}, "seeds": [0, 1], "device": "cpu",
        "timing": {"warmup": 0, "repeats": 1}}

# Fields that legitimately differ between two runs of the same cell.
_VOLATILE = {"timings", "cell_wall_seconds", "provenance", "load", "thread_choice"}


def comparable(store):
    out = {}
    for rec in store.records():
        out[rec["key"]] = ({k: v for k, v in rec.items() if k not in _VOLATILE}, store.labels(rec["key"]).tolist())
    return out


@pytest.fixture(scope="module")
def inline_records(tmp_path_factory):
    store = ResultStore(tmp_path_factory.mktemp("inline"))
    run_study(expand_study(TINY), store, progress=lambda m: None)
    return comparable(store)


def test_pool_executor_gives_the_inline_records(tmp_path, inline_records):
    store = ResultStore(tmp_path)
    lines = []
    counts = run_study(expand_study(TINY), store, executor=LocalPoolExecutor(workers=2), progress=lines.append)
    assert counts["ok"] == 8, (counts, [line for line in lines if " ok " not in line])
    assert comparable(store) == inline_records
    assert any("ETA" in line for line in lines)


def test_a_cell_that_finishes_just_before_its_worker_exits_is_not_recorded_lost(tmp_path, monkeypatch):
    """The driver's wait for a message times out while the worker finishes its last cell and exits.

    Forced here: the driver reads the worker's "start", then its next wait comes back empty only once
    the worker is gone, the "done" unread. The old driver recorded that finished cell as lost.
    """
    import multiprocessing
    import queue

    import cutbench.executors

    real_get_context = multiprocessing.get_context

    class RacingContext:
        def __init__(self, method):
            self._ctx = real_get_context(method)

        def __getattr__(self, name):
            return getattr(self._ctx, name)

        def Queue(self):  # noqa: N802 - mirrors multiprocessing's API
            q = self._ctx.Queue()
            read, last = q.get, [None]

            def get(block=True, timeout=None):
                if timeout is not None and last[0] == "start":
                    last[0] = None
                    while multiprocessing.active_children():
                        time.sleep(0.05)
                    raise queue.Empty
                message = read(block, timeout)
                last[0] = message[0] if isinstance(message, tuple) else None
                return message

            q.get = get  # the driver's side only: a queue pickles without its instance attributes
            return q

    monkeypatch.setattr(cutbench.executors.mp, "get_context", RacingContext)
    raw = {**TINY, "datasets": TINY["datasets"][:1], "methods": ["kmeans"], "seeds": [0]}
    store = ResultStore(tmp_path)
    counts = run_study(expand_study(raw), store, executor=LocalPoolExecutor(workers=1), progress=lambda m: None)
    assert counts["ok"] == 1
    assert next(store.records())["status"] == "ok"


def test_dask_local_cluster_gives_the_inline_records(tmp_path, inline_records):
    pytest.importorskip("dask.distributed")
    store = ResultStore(tmp_path)
    counts = run_study(expand_study(TINY), store, executor=DaskExecutor(workers=2), progress=lambda m: None)
    assert counts["ok"] == 8
    assert comparable(store) == inline_records


def test_dask_worker_enforces_the_time_limit_in_a_child_process(tmp_path):
    pytest.importorskip("dask.distributed")
    raw = {"name": "t", "datasets": [{"name": "double_rings", "params": {"n": 2000}}],
           "methods": [{"name": "neuncut", "params": {"epochs": 100000, "batch_size": 100}}],
           "device": "cpu", "timing": {"warmup": 0, "time_limit": 3}}
    store = ResultStore(tmp_path)
    counts = run_study(expand_study(raw), store, executor=DaskExecutor(workers=1), progress=lambda m: None)
    assert counts["timeout"] == 1
    assert "time limit of 3 s" in next(store.records())["error"]


STUDY_FOR_KILL = textwrap.dedent("""
    name: killme
    datasets:
      - name: double_rings
        params: {n: 1000}
    affinity: {sigma: median, n_neighbors: 8}
    methods:  # about a second per cell, so the kill lands mid-study even on a busy machine
      - name: neuncut
        params: {batch_size: 250, epochs: 25, hidden_dims: [64, 64]}
        grid: {gamma: [70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81]}
    seeds: [0]
    device: cpu
    timing: {warmup: 0, repeats: 1}
""")


def test_kill_minus_9_then_rerun_recomputes_no_finished_cell(tmp_path):
    (tmp_path / "s.yaml").write_text(STUDY_FOR_KILL)
    cmd = [sys.executable, "-m", "cutbench.cli", "run", "s.yaml", "--out", "res"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = tmp_path / "res" / "records"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(records.glob("*.json"))) < 3:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in records.glob("*.json")}
    assert 3 <= len(finished) < 12, "the study must be killed mid-way for this test to mean anything"
    rerun = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(finished)} already stored, {12 - len(finished)} to run" in rerun.stdout
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in records.glob("*.json")}
    assert len(after) == 12
    assert all(after[name] == finished[name] for name in finished)  # untouched, not recomputed
    assert not list(records.glob(".*.part"))


def test_a_retried_cell_whose_process_dies_replaces_the_earlier_record(tmp_path, monkeypatch):
    import cutbench.runner

    cell = expand_study({**TINY, "methods": ["kmeans"], "seeds": [0]}).cells[0]
    store = ResultStore(tmp_path)
    config = identify_cell(cell, cutbench.runner._DATASETS)[0]
    key = cell_key(config)
    store.write({"study": "exec", "key": key, "config": config, "status": "failed", "error": "an earlier run's error"})
    monkeypatch.setattr(cutbench.runner.sys, "executable", "false")  # a child that exits 1 and writes nothing
    assert cutbench.runner._execute_in_child(cell, str(tmp_path), "exec", limit=5) == (key, "failed")
    assert "the cell's process died (exit code 1)" in store.get(key)["error"]


def test_a_worker_that_dies_is_recorded_as_failed(tmp_path):
    import threading

    raw = {"name": "die", "datasets": [{"name": "double_rings", "params": {"n": 2000}}],
           "methods": [{"name": "neuncut", "params": {"epochs": 100000, "batch_size": 100}}],
           "device": "cpu", "timing": {"warmup": 0}}
    executor = LocalPoolExecutor(workers=1)

    def kill_the_busy_worker():
        deadline = time.time() + 120
        while time.time() < deadline:
            busy = list(getattr(executor, "running", {}))
            if busy:
                os.kill(busy[0], signal.SIGKILL)
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_the_busy_worker)
    killer.start()
    store = ResultStore(tmp_path)
    counts = run_study(expand_study(raw), store, executor=executor, progress=lambda m: None)
    killer.join()
    rec = next(store.records())
    assert counts["failed"] == 1 and rec["status"] == "failed" and "died" in rec["error"]
    assert np.isnan(store.to_frame().acc.iloc[0])


def test_killing_the_driver_of_a_pool_leaves_no_worker_running(tmp_path):
    import psutil

    (tmp_path / "s.yaml").write_text(STUDY_FOR_KILL)
    cmd = [sys.executable, "-m", "cutbench.cli", "run", "s.yaml", "--out", "res", "--executor", "pool", "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = tmp_path / "res" / "records"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(records.glob("*.json"))) < 2:
        time.sleep(0.05)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 2, "the pool's workers must be running for this test to mean anything"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = len(list(records.glob("*.json")))

    def gone(child):
        try:
            return child.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    deadline = time.time() + 10
    while time.time() < deadline and not all(map(gone, children)):
        time.sleep(0.1)
    assert all(map(gone, children)), [child.cmdline() for child in children if not gone(child)]
    time.sleep(2)
    assert len(list(records.glob("*.json"))) <= at_kill + 2  # at most the cells being written at the kill
    assert len(list(records.glob("*.json"))) < 12


def test_two_drivers_on_one_folder_compute_each_cell_once(tmp_path):
    (tmp_path / "s.yaml").write_text(STUDY_FOR_KILL)
    cmd = [sys.executable, "-m", "cutbench.cli", "run", "s.yaml", "--out", "res"]
    first = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = [process.communicate(timeout=600) for process in (first, second)]
    assert first.returncode == second.returncode == 0, outputs
    ran = [int(out.split("done in ")[1].split(": ")[1].split(" run")[0]) for out, _ in outputs]
    assert sum(ran) == 12, [out[-500:] for out, _ in outputs]
    records = [__import__("json").loads(p.read_text()) for p in (tmp_path / "res" / "records").glob("*.json")]
    assert len(records) == 12 and all(r["status"] == "ok" and "previous_outcomes" not in r for r in records)
    assert not list((tmp_path / "res" / "claims").iterdir())


def test_the_thread_policy_is_applied_inside_each_cell_and_recorded(tmp_path):
    from threadpoolctl import threadpool_info

    from cutbench.runner import InlineExecutor

    store = ResultStore(tmp_path)
    study = expand_study({**TINY, "methods": ["kmeans"], "seeds": [0]})
    run_study(study, store, executor=InlineExecutor(threads=1), progress=lambda m: None)
    record = next(store.records())
    threads = record["provenance"]["threads"]  # read inside the cell, under the policy
    assert threads["torch_threads"] == 1
    assert all(threads[f"{pool['internal_api']}_threads"] == 1 for pool in threadpool_info())
    assert record["load"]["cores"] >= 1 and record["load"]["start"] is not None
    row = store.to_frame().iloc[0]
    assert row["threads"] == 1 and row["cores"] == record["load"]["cores"]


def test_thread_counts_are_checked_against_the_cores(monkeypatch):
    from cutbench import CutbenchError
    from cutbench import threads as threads_module

    monkeypatch.setattr(threads_module, "cores", lambda: 2)
    choose = threads_module.choose_threads
    assert choose(None, busy=0.1).threads == 2 and choose(None, workers=2, busy=0.1).threads == 1
    assert choose(1, busy=2.0) == threads_module.ThreadChoice(1, "given by --threads")
    with pytest.raises(CutbenchError, match=r"--threads must be an integer >= 1; got 0\."):
        choose(0)
    with pytest.raises(CutbenchError, match=r"--threads 3 asks for 3 threads, more than the 2 cores .* --threads <= 2"):
        choose(3)
    with pytest.raises(CutbenchError, match=r"--threads 2 with 2 workers asks for 4 threads.*--threads <= 1"):
        choose(2, workers=2)


@pytest.mark.parametrize("cores, busy, workers, expected", [
    (2, 0.0, 1, 2), (2, 0.4, 1, 2), (2, 0.6, 1, 1), (2, 2.0, 1, 1),                  # the 2-core box
    (16, 3.2, 1, 13), (16, 0.5, 4, 4), (16, 10.0, 2, 3), (16, 16.0, 4, 1),           # a larger machine
])
def test_the_default_thread_count_leaves_out_the_cores_other_work_uses(monkeypatch, cores, busy, workers, expected):
    from cutbench import threads as threads_module

    monkeypatch.setattr(threads_module, "cores", lambda: cores)
    choice = threads_module.choose_threads(None, workers, busy=busy)
    # the idle cores shared out among the workers, rounded, at least 1 and at most the share
    assert choice.threads == expected == max(1, min(cores // workers, round((cores - busy) / workers + 1e-9)))
    if expected < cores // workers:
        assert f"not {cores // workers}: the machine is busy ({busy:.1f} of {cores} cores busy" in choice.reason
        assert "--threads N overrides" in choice.reason
    else:
        assert f"idle enough ({busy:.1f} of {cores} cores busy with other work" in choice.reason


def test_busy_cores_sees_a_spinning_process_the_load_average_has_not_caught_up_with(monkeypatch):
    monkeypatch.undo()  # the real measurement, not the suite's idle machine (conftest)
    from cutbench.threads import busy_cores

    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert busy_cores(0.5) >= 0.7  # one core's worth, measured now (the 1-minute average lags)
    finally:
        spinner.kill()
        spinner.wait()


def test_a_busy_machine_gets_one_thread_per_cell_and_the_record_says_why(tmp_path, monkeypatch):
    from cutbench import threads as threads_module
    from cutbench.runner import InlineExecutor

    monkeypatch.setattr(threads_module, "cores", lambda: 2)
    monkeypatch.setattr(threads_module, "busy_cores", lambda: 2.0)  # both cores taken (the issue: load 12-17)
    lines = []
    run_study(expand_study({**TINY, "methods": ["kmeans"], "seeds": [0]}), ResultStore(tmp_path),
              executor=InlineExecutor(), progress=lines.append)
    assert "threads per cell: 1, not 2: the machine is busy (2.0 of 2 cores busy with other work" in "\n".join(lines)
    records = list(ResultStore(tmp_path).records())
    assert records and all(record["thread_choice"]["threads"] == 1 and "busy" in record["thread_choice"]["reason"]
                           and record["provenance"]["threads"]["torch_threads"] == 1 for record in records)


def test_the_report_warns_about_cells_run_on_an_oversubscribed_machine():
    import pandas as pd

    from cutbench.reports.render import oversubscription_warning

    frame = pd.DataFrame({"load_start": [0.5, 3.9], "load_end": [1.0, 4.2], "cores": [2, 2]})
    assert oversubscription_warning(frame).startswith("warning: 1 of 2 cells ran on an oversubscribed machine "
                                                      "(load average up to 4.2 on 2 cores)")
    assert oversubscription_warning(frame.iloc[:1]) is None


def test_idle_openmp_threads_sleep_only_on_a_busy_machine(monkeypatch):
    from cutbench import threads as threads_module

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert threads_module.quiet_idle_threads() is None and "OMP_WAIT_POLICY" not in os.environ  # idle (conftest)
    monkeypatch.setattr(threads_module, "busy_cores", lambda seconds=0.5: 1.5)
    assert "the machine is busy" in threads_module.quiet_idle_threads()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's choice is kept
    assert threads_module.quiet_idle_threads() is None and os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
