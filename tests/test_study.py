"""Study files: validation with line numbers, grid expansion, and running a tiny study end to end."""

import textwrap

import numpy as np
import pytest

from cutbench import CutbenchError
from cutbench.runner import DatasetCache, run_cell, run_study
from cutbench.store import ResultStore
from cutbench.study import expand_study, load_study

TINY = """
name: tiny
datasets:
  - name: blobs
    params: {n: 300, n_clusters: 3}
  - name: double_rings
    params: {n: 400}
affinity: {sigma: median, n_neighbors: 8}
methods:
  - name: kmeans
  - name: ncut
    grid: {n_init: [2, 4]}
protocol: {train_size: 200}
seeds: [0, 1]
device: cpu
timing: {warmup: 0, repeats: 1}
"""


def write(tmp_path, text, name="study.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_grid_expands_to_the_expected_cells(tmp_path):
    study = load_study(write(tmp_path, TINY))
    # 2 datasets x (1 kmeans + 2 ncut grid points) x 2 seeds
    assert len(study.cells) == 12
    ncut = [c for c in study.cells if c.method == "ncut"]
    assert sorted({c.method_params["n_init"] for c in ncut}) == [2, 4]
    # the shared affinity reaches every method that takes one, and only those
    assert all(c.method_params["affinity"]["n_neighbors"] == 8 for c in ncut)
    assert all("affinity" not in c.method_params for c in study.cells if c.method == "kmeans")


@pytest.mark.parametrize("bad, message", [
    ("name: x\ndatasets: [blobs]\nmethods: [kmeans]\nsedes: [1]\n", r"line 4: unknown key 'sedes'.*accepted"),
    ("name: x\ndatasets: [blobs]\nmethods: [spectral]\n", r"unknown method 'spectral'; accepted: .*ncut"),
    ("name: x\ndatasets: [mnist9]\nmethods: [kmeans]\n", r"mnist9"),
    ("name: x\ndatasets: [blobs]\nmethods:\n  - name: kmeans\n    params: {n_int: 3}\n", r"unknown parameter.*n_int.*accepted"),
    ("name: x\ndatasets: [blobs]\nmethods: [kmeans]\nprotocol: {nmi_average_method: mean}\n", r"nmi_average_method must be one of"),
    ("name: x\ndatasets: [blobs]\nmethods: [kmeans]\nprotocol: {train: 3}\n", r"unknown key 'train' in protocol"),
    ("name: x\ndatasets: [blobs]\nmethods: [kmeans]\nseeds: []\n", r"seeds must be a non-empty list"),
    ("name: x\ndatasets: [blobs]\nmethods:\n  - name: kmeans\n    grid: {n_init: []}\n", r"non-empty list"),
    ("name: x\ndatasets: [blobs]\nmethods:\n  - name: kmeans\n    params: {n_clusters: 3}\n", r"set by the harness"),
    ("name: x\ndatasets: [blobs]\nmethods: [ncut]\naffinity: {sigma: -1}\n", r"sigma"),
    ("name: x\ndatasets: [blobs]\nmethods: [kmeans]\ndevice: tpu\n", r"unknown device 'tpu'"),
    ("name: x\nmethods: [kmeans]\n", r"needs a 'datasets'"),
])
def test_bad_study_files_name_the_problem(tmp_path, bad, message):
    with pytest.raises(CutbenchError, match=message):
        load_study(write(tmp_path, bad))


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(CutbenchError, match="does not exist"):
        load_study(tmp_path / "nope.yaml")
    with pytest.raises(CutbenchError, match="not valid YAML"):
        load_study(write(tmp_path, "name: [unclosed\n"))


def test_tiny_study_runs_and_resumes(tmp_path):
    study = load_study(write(tmp_path, TINY))
    store = ResultStore(tmp_path / "out")
    messages = []
    counts = run_study(study, store, progress=messages.append)
    assert counts["ran"] == 12 and counts["ok"] == 12, messages
    frame = store.to_frame()
    assert (frame.status == "ok").all()
    rings = frame[(frame.dataset == "double_rings") & (frame.method == "ncut")]
    assert (rings.acc >= 0.99).all()
    # k-means is fitted on the 200-point subset and predicts all 400; Ncut is fitted on all
    kmeans = next(r for r in store.records() if r["config"]["method"]["name"] == "kmeans")
    assert kmeans["fit_on"] == "subset" and kmeans["n_fit"] == 200
    assert len(store.labels(kmeans["key"])) == 400
    assert set(kmeans["timings"]) >= {"features", "fit", "predict", "total"}
    assert kmeans["provenance"]["packages"]["torch"]
    # a second run recomputes nothing
    again = run_study(study, store, progress=messages.append)
    assert again == {**again, "ran": 0, "stored": 12}


def test_failing_method_gives_failed_record_and_the_study_goes_on(tmp_path):
    raw = {"name": "f", "datasets": [{"name": "blobs", "params": {"n": 60, "n_clusters": 3}}],
           "methods": [{"name": "neuncut", "params": {"batch_size": 50, "epochs": 1, "orth_norm": "fro_over_k"}},
                       {"name": "kmeans"}],
           "protocol": {"train_size": 40}, "device": "cpu", "timing": {"warmup": 0, "repeats": 1}}
    study = expand_study(raw)  # batch 50 > 40 training points: neuncut must fail at fit
    store = ResultStore(tmp_path)
    counts = run_study(study, store, progress=lambda m: None)
    assert counts["failed"] == 1 and counts["ok"] == 1
    failed = next(r for r in store.records() if r["status"] == "failed")
    assert "batch_size=50" in failed["error"] and "metrics" not in failed
    assert not (tmp_path / "labels" / f"{failed['key']}.npy").exists()


def test_cuda_cell_without_gpu_is_skipped_with_reason(tmp_path, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    raw = {"name": "g", "datasets": [{"name": "blobs", "params": {"n": 60}}], "methods": ["kmeans"], "device": "cuda"}
    record, labels = run_cell(expand_study(raw).cells[0], DatasetCache(), "g")
    assert record["status"] == "skipped" and "CUDA is not available" in record["error"] and labels is None


def test_labels_cover_every_point(tmp_path):
    raw = {"name": "l", "datasets": [{"name": "blobs", "params": {"n": 90, "n_clusters": 3}}],
           "methods": ["kmeans"], "protocol": {"train_size": 30}, "device": "cpu"}
    record, labels = run_cell(expand_study(raw).cells[0], DatasetCache(), "l")
    assert record["status"] == "ok" and labels.shape == (90,) and np.unique(labels).size == 3
    assert record["timings"]["fit"]["cold_seconds"] is not None
