"""Nothing lost, nothing silent: a store that checks its own files, outcomes that follow the
configuration, claims that keep two drivers from computing a cell twice."""

import errno
import json
import os
import stat

import numpy as np
import pytest

from cutbench import CutbenchError
from cutbench.cli import main
from cutbench.identity import cell_key
from cutbench.runner import DatasetCache, execute_cell, identify_cell, run_study
from cutbench.store import ResultStore
from cutbench.study import expand_study

TWO_CELLS = {"name": "integrity", "datasets": [{"name": "blobs", "params": {"n": 60}}], "methods": ["kmeans"],
             "seeds": [0, 1], "device": "cpu", "timing": {"warmup": 0, "repeats": 1}}


def quiet(_):
    return None


@pytest.fixture
def store_with_two_cells(tmp_path):
    store = ResultStore(tmp_path / "res")
    run_study(expand_study(TWO_CELLS), store, progress=quiet)
    keys = sorted(p.stem for p in (tmp_path / "res" / "records").glob("*.json"))
    assert len(keys) == 2
    return store, keys


def test_a_truncated_record_is_named_counted_missing_and_recomputed(store_with_two_cells, capsys):
    store, keys = store_with_two_cells
    path = store.root / "records" / f"{keys[0]}.json"
    text = path.read_text()
    path.write_text(text[:len(text) // 2])
    fresh = ResultStore(store.root)
    assert len(fresh.to_frame()) == 1
    assert f"{path}: not valid JSON" in fresh.problems_summary() and "truncated or corrupt" in fresh.problems_summary()
    assert main(["collect", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert "1 records" in out and f"skipped 1 unusable stored file(s), counted as missing: {path}" in out
    counts = run_study(expand_study(TWO_CELLS), ResultStore(store.root), progress=quiet)
    assert counts["ran"] == 1 and counts["stored"] == 1 and json.loads(path.read_text())["status"] == "ok"


def test_an_incomplete_record_is_named_and_does_not_crash_the_report(store_with_two_cells, capsys):
    store, keys = store_with_two_cells
    path = store.root / "records" / f"{keys[1]}.json"
    record = json.loads(path.read_text())
    del record["config"]
    path.write_text(json.dumps(record))
    assert main(["report", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert "1/2" in out and f"{path}: incomplete record: missing config" in out
    assert "stored: 1 of the 2 planned cells (1 ok); missing: 1 (never run, interrupted, or unusable)" in out


def test_truncated_labels_make_the_record_missing(store_with_two_cells):
    store, keys = store_with_two_cells
    labels = store.root / "labels" / f"{keys[0]}.npy"
    labels.write_bytes(labels.read_bytes()[:100])
    fresh = ResultStore(store.root)
    assert fresh.get(keys[0]) is None
    assert "its labels file" in fresh.problems_summary()
    with pytest.raises(CutbenchError, match=r"labels file .* truncated or corrupt\. Run the study again"):
        fresh.labels(keys[0])
    assert run_study(expand_study(TWO_CELLS), fresh, progress=quiet)["ran"] == 1
    assert ResultStore(store.root).labels(keys[0]).shape == (60,)


def test_labels_that_do_not_match_the_record_are_caught_by_their_hash(store_with_two_cells):
    store, keys = store_with_two_cells
    np.save(store.root / "labels" / f"{keys[0]}.npy", np.zeros(60, dtype=np.int64))  # right size, other labels
    with pytest.raises(CutbenchError, match="does not match the record's sha256: the labels were changed or swapped"):
        store.labels(keys[0])


def test_a_full_disk_is_a_clear_error_and_loses_nothing(store_with_two_cells, monkeypatch):
    store, keys = store_with_two_cells
    before = {p.name: p.read_bytes() for p in (store.root / "records").iterdir()}

    class FullDisk:
        def __init__(self, fd, mode):
            os.close(fd)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("cutbench.store.os.fdopen", FullDisk)
    record = store.get(keys[0])
    with pytest.raises(CutbenchError, match=rf"no space left on the device to write {keys[0]}.json in "
                                            rf"{store.root / 'records'}: nothing stored before was lost"):
        store.write(record)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in (store.root / "records").iterdir()} == before


def test_stored_files_are_readable_as_the_umask_allows(tmp_path):
    previous = os.umask(0o022)
    try:
        store = ResultStore(tmp_path)
        run_study(expand_study({**TWO_CELLS, "seeds": [0]}), store, progress=quiet)
    finally:
        os.umask(previous)
    for path in [*(tmp_path / "records").glob("*.json"), *(tmp_path / "labels").glob("*.npy")]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_a_failure_on_broken_data_is_replaced_once_the_data_is_fixed(tmp_path, capsys):
    data = tmp_path / "features.npz"
    raw = {"name": "fixed", "datasets": [{"name": "features_file", "params": {"path": str(data)}}],
           "methods": ["kmeans"], "seeds": [0], "device": "cpu", "timing": {"warmup": 0, "repeats": 1}}
    store = ResultStore(tmp_path / "res")
    assert run_study(expand_study(raw), store, progress=quiet)["failed"] == 1
    rng = np.random.default_rng(0)
    np.savez(data, X=np.r_[rng.normal(size=(30, 2)), rng.normal(size=(30, 2)) + 8], y=np.repeat([0, 1], 30))
    # The data now loads: the stored failure was about other data, so a plain re-run replaces it.
    counts = run_study(expand_study(raw), store, progress=quiet)
    assert counts["ran"] == 1 and counts["ok"] == 1
    frame = ResultStore(tmp_path / "res").to_frame()
    assert len(frame) == 1 and frame.status.tolist() == ["ok"]
    (record,) = ResultStore(tmp_path / "res").records()
    assert [outcome["status"] for outcome in record["previous_outcomes"]] == ["failed"]
    assert "features.npz" in record["previous_outcomes"][0]["error"]
    assert run_study(expand_study(raw), store, progress=quiet)["stored"] == 1


def test_retry_failed_reruns_exactly_the_cells_whose_latest_outcome_is_not_ok(tmp_path):
    raw = {**TWO_CELLS, "methods": [{"name": "neuncut", "params": {"batch_size": 30, "epochs": 1, "lr": 1e30,
                                                                    "hidden_dims": [4]}}, "kmeans"]}
    store = ResultStore(tmp_path)
    counts = run_study(expand_study(raw), store, progress=quiet)
    assert counts["failed"] == 2 and counts["ok"] == 2  # lr 1e30 diverges
    assert run_study(expand_study(raw), store, progress=quiet)["ran"] == 0
    again = run_study(expand_study(raw), store, retry_failed=True, progress=quiet)
    assert again["ran"] == 2 and again["stored"] == 2


def test_a_cell_claimed_by_a_live_process_is_not_computed_again(tmp_path):
    cell = expand_study({**TWO_CELLS, "seeds": [0]}).cells[0]
    store = ResultStore(tmp_path)
    key = cell_key(identify_cell(cell, DatasetCache())[0])
    with store.claim(key) as held:
        assert held
        assert execute_cell(cell, str(tmp_path), "s") == (key, "busy")  # this process is alive: respected
    assert execute_cell(cell, str(tmp_path), "s") == (key, "ok")
    assert execute_cell(cell, str(tmp_path), "s") == (key, "stored")  # finished meanwhile: not recomputed
    # A claim left by a process that no longer exists is taken over.
    dead = {"pid": 2**22 + 12345, "host": __import__("socket").gethostname(), "started": "then"}
    (tmp_path / "claims" / f"{key}.claim").write_text(json.dumps(dead))
    store.write({**store.get(key), "status": "failed", "error": "x"})
    assert execute_cell(cell, str(tmp_path), "s") == (key, "ok")
    assert not list((tmp_path / "claims").iterdir())


# ---- study validation: refused before anything runs, with the file and the line ------------------
@pytest.mark.parametrize("text, message", [
    ("name: x\ndatasets: [blobs]\nmethods: [kmeans]\nseeds: [0, -1]\n",
     r"study.yaml, line 4: seeds must be a non-empty list of integers in \[0, 2\*\*32\)"),
    ("name: x\ndatasets: [blobs]\nmethods:\n  - name: neuncut\n    params: {epochs: 2, gamma: 80, epochs: 3}\n",
     r"study.yaml, line 5: key 'epochs' appears again \(first on line 5\); YAML would keep only the last value"),
    ("name: x\nname: y\ndatasets: [blobs]\nmethods: [kmeans]\n", r"line 2: key 'name' appears again \(first on line 1\)"),
    ("name: x\ndatasets: [blobs]\nmethods:\n  - name: neuncut\n    params: {epochs: -3}\n",
     r"study.yaml, line 4: NeuNcut: epochs must be an integer >= 1; got -3\."),
    ("name: x\ndatasets:\n  - {name: blobs, params: {n: 0}}\nmethods: [neuncut]\n",
     r"study.yaml, line 2: dataset 'blobs' has n=0 points; give it n >= 1"),
    ("name: x\ndatasets:\n  - {name: blobs, params: {n: 500}}\nmethods: [kmeans]\nprotocol:\n  train_size: 800\n",
     r"study.yaml, line 6: protocol.train_size=800 is more than the n=500 points of dataset 'blobs'"),
])
def test_impossible_studies_are_refused_with_file_and_line(tmp_path, text, message):
    from cutbench.study import load_study

    (tmp_path / "study.yaml").write_text(text)
    with pytest.raises(CutbenchError, match=message):
        load_study(tmp_path / "study.yaml")


def test_a_train_size_above_a_real_datasets_size_is_recorded_and_warned(tmp_path):
    raw = {"name": "big", "datasets": ["digits"], "methods": ["kmeans"], "protocol": {"train_size": 5000},
           "seeds": [0], "device": "cpu", "timing": {"warmup": 0, "repeats": 1}}
    store = ResultStore(tmp_path)
    run_study(expand_study(raw), store, progress=quiet)
    (record,) = store.records()
    assert record["status"] == "ok" and record["n_fit"] == 1797 and record["config"]["protocol"]["train_size"] == 5000
    assert any("train_size=5000 is more than the 1797 points" in warning for warning in record["warnings"])


# ---- input scale: refused before any method trains ---------------------------------------------
@pytest.mark.parametrize("name", __import__("cutbench.methods", fromlist=["x"]).list_methods())
@pytest.mark.parametrize("scale, message", [
    (1e30, r"X holds values up to .*e\+30: squared distances between its rows overflow float32"),
    (1e-30, r"the features of X vary by at most .*e-30: squared distances between its rows underflow float32"),
])
def test_extreme_magnitudes_are_refused_before_training(name, scale, message):
    from cutbench.methods import get_method

    X = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32) * np.float32(scale)
    method = get_method(name)(3, device="cpu", random_state=0)
    with pytest.raises(CutbenchError, match=message + ".*standardise the features first"):
        method.fit(X)
    assert not hasattr(method, "labels_")


@pytest.mark.filterwarnings("ignore:NeuNcut used only")  # one epoch on unscaled data: collapsed, as warned
def test_a_network_warns_about_features_far_from_unit_scale():
    from cutbench import CutbenchWarning
    from cutbench.methods import KMeans, NeuNcut

    X = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32) * 1000
    with pytest.warns(CutbenchWarning, match="far from the unit scale networks train on"):
        NeuNcut(3, batch_size=20, epochs=1, device="cpu", random_state=0).fit(X)
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("error")
        KMeans(3, random_state=0).fit(X)  # k-means does not care about the scale
