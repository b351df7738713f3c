"""Nothing stuck, nothing silent: claims that cannot strand a cell, records checked against their schema and
labels, every CLI value checked, interrupted and partial studies reported as such, progress bars quiet
off a terminal."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone

import numpy as np
import psutil
import pytest

import cutbench.store as store_module
from benchmarks.faults.round3 import FullDisk
from cutbench import CutbenchError
from cutbench.cli import main
from cutbench.identity import cell_key
from cutbench.runner import DatasetCache, execute_cell, identify_cell, run_study
from cutbench.store import ResultStore
from cutbench.study import expand_study

TWO_SEEDS = {"name": "stuck", "datasets": [{"name": "blobs", "params": {"n": 60}}], "methods": ["kmeans"],
             "seeds": [0, 1], "device": "cpu", "timing": {"warmup": 0, "repeats": 1}}


def quiet(_):
    return None


@pytest.fixture
def one_cell(tmp_path):
    cell = expand_study({**TWO_SEEDS, "seeds": [0]}).cells[0]
    return cell, cell_key(identify_cell(cell, DatasetCache())[0]), tmp_path


def _claim_file(root, key):
    return root / "claims" / f"{key}.claim"


# ---- claims ---------------------------------------------------------------------------------------
def _live_claim_of_another_process():
    """A claim naming a live process of this host that is not this one (our parent, e.g. pytest's shell)."""
    parent = psutil.Process().parent()
    return {"pid": parent.pid, "host": socket.gethostname(), "process_started": parent.create_time(),
            "claimed": datetime.now(timezone.utc).isoformat()}


@pytest.mark.parametrize("content, reason", [
    ("", "the claim file is empty or corrupt (0 bytes)"),
    ('{"pid": 12', "the claim file is empty or corrupt (10 bytes)"),
    ("[1, 2]", "the claim file is empty or corrupt (6 bytes)"),
    (json.dumps({"pid": 2**22 + 7, "host": socket.gethostname(), "process_started": 1.0, "claimed": "x"}),
     f"process {2**22 + 7} no longer runs"),
])
def test_an_unusable_or_dead_claim_is_taken_over_with_a_message(one_cell, capsys, content, reason):
    cell, key, root = one_cell
    ResultStore(root)
    _claim_file(root, key).write_text(content)
    assert execute_cell(cell, str(root), "s") == (key, "ok")
    assert f"taking over the claim on cell {key}: {reason}" in capsys.readouterr().err
    assert not list((root / "claims").iterdir())


def test_a_claim_whose_pid_was_reused_is_taken_over(one_cell, capsys):
    cell, key, root = one_cell
    ResultStore(root)
    reused = {**_live_claim_of_another_process()}
    reused["process_started"] -= 3600.0  # the pid is alive, but it is a process started after the claim
    _claim_file(root, key).write_text(json.dumps(reused))
    assert execute_cell(cell, str(root), "s") == (key, "ok")
    assert f"process id {reused['pid']} now belongs to another process" in capsys.readouterr().err


def test_a_claim_of_an_earlier_version_with_a_reused_pid_is_taken_over(one_cell, capsys):
    cell, key, root = one_cell
    ResultStore(root)
    parent = psutil.Process().parent()
    old_format = {"pid": parent.pid, "host": socket.gethostname(), "started": "2000-01-01T00:00:00+00:00"}
    _claim_file(root, key).write_text(json.dumps(old_format))
    assert execute_cell(cell, str(root), "s") == (key, "ok")
    assert "now belongs to another process" in capsys.readouterr().err


def test_a_live_claim_is_respected_and_its_holder_named(one_cell):
    cell, key, root = one_cell
    store = ResultStore(root)
    _claim_file(root, key).write_text(json.dumps(_live_claim_of_another_process()))
    assert execute_cell(cell, str(root), "s") == (key, "busy")
    lines = []
    counts = run_study(expand_study({**TWO_SEEDS, "seeds": [0]}), store, progress=lines.append)
    assert counts["busy"] == 1 and store.get(key) is None
    holder = psutil.Process().parent().pid
    assert f"being computed by process {holder} on {socket.gethostname()}" in "\n".join(lines)
    assert "run the study again once it ends" in "\n".join(lines)


def test_a_claim_from_another_host_is_respected_until_it_expires(one_cell, capsys):
    cell, key, root = one_cell
    ResultStore(root)
    foreign = {"pid": 1, "host": "another-machine", "process_started": 0.0, "claimed": "2026-01-01T00:00:00+00:00"}
    path = _claim_file(root, key)
    path.write_text(json.dumps(foreign))
    assert execute_cell(cell, str(root), "s") == (key, "busy")  # fresh: its holder may be working
    expired = time.time() - store_module.CLAIM_EXPIRES_SECONDS - 60
    os.utime(path, (expired, expired))
    assert execute_cell(cell, str(root), "s") == (key, "ok")
    assert "process 1 on another-machine has not refreshed it for 6" in capsys.readouterr().err


def test_a_held_claim_is_whole_and_kept_fresh_by_its_heartbeat(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "CLAIM_HEARTBEAT_SECONDS", 0.05)
    store = ResultStore(tmp_path)
    with store.claim("k" * 20) as held:
        assert held
        path = _claim_file(tmp_path, "k" * 20)
        holder = json.loads(path.read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        assert holder["process_started"] == psutil.Process().create_time()
        os.utime(path, (1.0, 1.0))  # as if its holder had stopped long ago
        deadline = time.time() + 5
        while path.stat().st_mtime < 2.0 and time.time() < deadline:
            time.sleep(0.02)
        assert path.stat().st_mtime > time.time() - 5  # refreshed by the heartbeat
        with store.claim("k" * 20) as second:
            assert not second  # held by this live process: respected
    assert not list((tmp_path / "claims").iterdir())


def test_a_full_disk_at_claim_time_is_a_clear_error_and_leaves_nothing(one_cell, monkeypatch):
    cell, key, root = one_cell
    ResultStore(root)
    monkeypatch.setattr(store_module.os, "fdopen", FullDisk)
    with pytest.raises(CutbenchError, match=rf"no space left on the device to write {key}.claim in .*claims: "
                                            "nothing stored before was lost"):
        execute_cell(cell, str(root), "s")
    assert not list((root / "claims").iterdir())  # neither an empty claim nor its temporary file
    monkeypatch.undo()
    assert execute_cell(cell, str(root), "s") == (key, "ok")  # once space is back, the cell runs


# ---- the record schema, on each damaged form ------------------------------------------------------
@pytest.fixture
def stored(tmp_path):
    store = ResultStore(tmp_path)
    run_study(expand_study(TWO_SEEDS), store, progress=quiet)
    keys = sorted(p.stem for p in (tmp_path / "records").glob("*.json"))
    assert len(keys) == 2
    return store, keys


@pytest.mark.parametrize("damage, reason", [
    (lambda r: r.update(metrics={}), "incomplete record: missing metrics.acc"),
    (lambda r: r["metrics"].update(acc="high"), "does not match the record schema: metrics.acc: 'high' is not of type"),
    (lambda r: r["metrics"].update(nmi=float("nan")), "metric 'nmi' is nan, not a finite number"),
    (lambda r: r["metrics"].update(ari=None), "metric 'ari' is null without a reason in metric_notes"),
    (lambda r: r["config"].update(seed=99), "its config does not give its key"),
    (lambda r: r.update(status="done"), "does not match the record schema: status: 'done' is not one of"),
    (lambda r: r.pop("labels"), "incomplete record: missing labels"),
    (lambda r: r["labels"].update(sha256="abc"), "does not match the record schema: labels.sha256: 'abc' does not match"),
    (lambda r: r["timings"]["fit"].update(seconds=-1.0), "does not match the record schema: timings.fit.seconds: -1.0 is less than the minimum of 0"),
    (lambda r: r.update(key="0" * 20), "holds key '00000000000000000000', not its file name's"),
])
def test_each_damaged_record_is_named_with_its_reason_and_counted_missing(stored, capsys, damage, reason):
    store, keys = stored
    path = store.root / "records" / f"{keys[0]}.json"
    record = json.loads(path.read_text())
    damage(record)
    path.write_text(json.dumps(record))
    fresh = ResultStore(store.root)
    assert len(fresh.to_frame()) == 1
    assert f"{path}: {reason}" in fresh.problems_summary()
    assert main(["report", str(store.root)]) == 0  # no ArrowInvalid traceback: the record is left out
    out = capsys.readouterr().out
    assert "1/2" in out and reason in out and "missing: 1" in out
    assert main(["compare", str(store.root), str(store.root), "--out", str(store.root / "cmp")]) == 0
    assert run_study(expand_study(TWO_SEEDS), ResultStore(store.root), progress=quiet)["ran"] == 1  # recomputed
    assert ResultStore(store.root).get(keys[0])["status"] == "ok"


def test_a_null_metric_with_a_reason_is_a_valid_record(stored):
    store, keys = stored
    record = store.get(keys[0])
    record["metrics"]["ari"] = None
    record["metric_notes"] = {"ari": "evaluated to nan, which is not a number a table can use"}
    store.write(record, store.labels(keys[0]))
    assert ResultStore(store.root).get(keys[0])["metrics"]["ari"] is None


def test_a_record_that_breaks_the_schema_is_never_written(stored):
    store, keys = stored
    record = store.get(keys[0])
    before = (store.root / "records" / f"{keys[0]}.json").read_bytes()
    with pytest.raises(CutbenchError, match=r"refusing to store record .*: it metric 'acc' is inf, not a finite"):
        store.write({**record, "metrics": {**record["metrics"], "acc": float("inf")}})
    assert (store.root / "records" / f"{keys[0]}.json").read_bytes() == before


def test_the_runner_stores_a_non_finite_metric_as_null_with_a_reason():
    from cutbench.records import finite_metrics

    assert finite_metrics({"acc": 0.5, "ncut_value": float("nan")}) == (
        {"acc": 0.5, "ncut_value": None}, {"ncut_value": "evaluated to nan, which is not a number a table can use"})


# ---- labels checked whenever a record is used -----------------------------------------------------
def test_swapped_labels_of_the_same_length_are_detected_by_report_and_run(stored, capsys):
    store, keys = stored
    labels = store.root / "labels" / f"{keys[0]}.npy"
    np.save(labels, (np.load(labels) + 1) % 3)  # the swap: same length, other labels
    assert main(["report", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert "does not match the record's sha256: the labels were changed or swapped after the run" in out
    assert "1/2" in out
    assert run_study(expand_study(TWO_SEEDS), ResultStore(store.root), progress=quiet)["ran"] == 1


def test_the_labels_check_is_cached_by_size_and_mtime(stored, monkeypatch):
    store, keys = stored
    hashed = []
    real = store_module._labels_digest
    monkeypatch.setattr(store_module, "_labels_digest", lambda labels: hashed.append(1) or real(labels))

    def read_all():
        hashed.clear()
        assert len(list(ResultStore(store.root).records())) == 2
        return len(hashed)

    assert read_all() == 2  # first read of the store: every labels file hashed
    assert read_all() == 0  # unchanged: the check costs nothing (kept in labels/.verified.json)
    labels = store.root / "labels" / f"{keys[1]}.npy"
    np.save(labels, np.load(labels))  # same content, new modification time: hashed again, still valid
    assert read_all() == 1
    assert read_all() == 0


# ---- data checks before relations; batch sizes -----------------------------------------------------
def test_nan_input_is_named_before_any_size_relation():
    from cutbench.methods.registry import make_method

    X = np.full((10, 2), np.nan)
    for name in ("ncut", "spectralnet", "cnc", "specnet2", "neuncut"):
        with pytest.raises((CutbenchError, ValueError), match="NaN"):
            make_method(name, n_clusters=2, device="cpu").fit(X)


# ---- the CLI: every value checked, one-line errors -------------------------------------------------
def _cutbench(*args, cwd, input=None, **kwargs):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "cutbench.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, input=input, check=False, **kwargs)


@pytest.mark.parametrize("argv, message", [
    (["gamma-search", "two_moons", "--n", "0"], "argument --n: must be an integer >= 1; got 0"),
    (["run", "quick", "--executor", "pool", "--workers", "0"], "argument --workers: must be an integer >= 1; got 0"),
    (["gamma-search", "two_moons", "--clusters", "-2"], "argument --clusters: must be an integer >= 1; got -2"),
])
def test_counts_below_one_are_refused_by_the_parser(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_pool_of_zero_workers_is_refused_through_the_api():
    from cutbench.executors import make_executor

    for name in ("pool", "dask"):
        with pytest.raises(CutbenchError, match="workers must be an integer >= 1; got 0"):
            make_executor(name, workers=0)


def test_bad_cli_input_gets_one_line_not_a_traceback(tmp_path):
    (tmp_path / "latin1.yaml").write_bytes("name: café\ndatasets: [blobs]\nmethods: [kmeans]\n".encode("latin-1"))
    (tmp_path / "a-file").write_text("")
    (tmp_path / "escape.yaml").write_text("name: ../../escape\ndatasets: [blobs]\nmethods: [kmeans]\n")
    cases = [
        (["run", "latin1.yaml", "--dry-run"], "latin1.yaml is not UTF-8 text (byte 9 is b'\\xe9'); save it as UTF-8"),
        (["gamma-search", "two_moons", "--params", "[1,2"], "--params '[1,2' is not valid YAML"),
        (["gamma-search", "two_moons", "--features", "{name: [", "--n", "50"], "--features '{name: [' is not valid"),
        (["run", "escape.yaml", "--dry-run"], "study name '../../escape' must be a plain name"),
        (["gamma-search", "two_moons", "--out", "a-file/sub"], "cannot write to a-file/sub"),
        (["report", "nowhere"], "nowhere holds no results"),
    ]
    for argv, message in cases:
        result = _cutbench(*argv, cwd=tmp_path)
        assert result.returncode == 2, (argv, result.stderr)
        assert result.stderr.strip().startswith("cutbench: error:") and message in result.stderr, (argv, result.stderr)
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path.parent / "escape").exists()


def test_compare_into_a_folder_that_cannot_be_created_is_one_line(stored, tmp_path):
    store, _ = stored
    (tmp_path / "a-file").write_text("")
    result = _cutbench("compare", str(store.root), str(store.root), "--out", str(tmp_path / "a-file" / "cmp"),
                       cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"cannot write to {tmp_path / 'a-file' / 'cmp'}" in result.stderr and "give --out a folder" in result.stderr


@pytest.mark.parametrize("command", ["info", "list"])
def test_a_closed_pipe_ends_quietly(tmp_path, command):
    result = subprocess.run(f"{sys.executable} -m cutbench.cli {command} | head -0", shell=True, cwd=tmp_path,
                            capture_output=True, text=True, check=False)
    assert result.stderr == "" and result.returncode == 0


def test_report_on_an_empty_folder_says_so(tmp_path, capsys):
    ResultStore(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    assert f"{tmp_path} holds no usable records: nothing to report" in capsys.readouterr().err


def test_an_interrupted_study_is_reported_as_partial(tmp_path, capsys):
    study = expand_study({**TWO_SEEDS, "seeds": [0, 1, 2], "methods": ["kmeans", "ncut"]})
    store = ResultStore(tmp_path)
    run_study(study, store, progress=quiet)
    for path in sorted((tmp_path / "records").glob("*.json"))[1:]:  # as if it had stopped after one cell
        path.unlink()
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "stored: 1 of the 6 planned cells (1 ok); missing: 5 (never run, interrupted, or unusable)" in out
    counts = [line.rsplit("|", 2)[-2].strip() for line in out.splitlines() if line.startswith("| blobs")]
    assert sorted(counts) == ["0/3", "1/3"]  # not 1/1: the seeds never run are counted
    html = (tmp_path / "report.html").read_text()
    assert "stored: 1 of the 6 planned cells" in html


def test_ctrl_c_during_a_run_ends_with_one_line_and_the_run_resumes(tmp_path):
    (tmp_path / "slow.yaml").write_text(
        "name: slow\ndatasets:\n  - {name: blobs, params: {n: 300}}\nmethods:\n  - name: neuncut\n"
        "    params: {epochs: 400, batch_size: 100}\nseeds: [0, 1, 2, 3]\ndevice: cpu\n"
        "timing: {warmup: 0, repeats: 1}\n")
    # Ctrl-C as a terminal delivers it: a test run started in the background (`pytest &` from a script) has
    # SIGINT ignored, a child inherits that, and Python then installs no KeyboardInterrupt handler; a handled
    # signal is reset to the default at exec, so the child starts as from a terminal
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen([sys.executable, "-m", "cutbench.cli", "run", "slow.yaml", "--out", "res"],
                                   cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
    finally:
        signal.signal(signal.SIGINT, previous)
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "res" / "records").glob("*.json")):
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.strip()]
    stored = len(list((tmp_path / "res" / "records").glob("*.json")))
    assert line == (f"cutbench: interrupted. {stored} cell record(s) are stored in res, every cell that finished "
                    "(the one running was not stored); run the same command again to go on where it stopped.")
    assert not list((tmp_path / "res" / "claims").iterdir())  # the running cell's claim was released


# ---- progress bars -------------------------------------------------------------------------------
def test_progress_bars_are_drawn_only_on_a_terminal_outside_ci(monkeypatch):
    from cutbench import progress

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: False, raising=False)
    assert progress.progress_bar(10, "x").disable
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: True, raising=False)
    bar = progress.progress_bar(10, "x")
    assert not bar.disable
    bar.close()
    monkeypatch.setenv("CI", "true")
    assert progress.progress_bar(10, "x").disable
    assert progress.progress_bar(10, "x", enabled=False).disable
