"""Study files: validation with line numbers, grid expansion, and running a tiny study end to end."""

import textwrap

import numpy as np
import pytest

from cutbench import CutbenchError
from cutbench.methods import registry
from cutbench.methods.base import Capabilities
from cutbench.methods.neuncut import NeuNcut
from cutbench.runner import DatasetCache, run_cell, run_study
from cutbench.store import ResultStore
from cutbench.study import expand_study, load_study, select_cells

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
    ("name: x\ndatasets: [blobs]\nmethods: [spectral]\n", r"unknown method 'spectral'; built in: .*ncut"),
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
    with pytest.raises(CutbenchError, match="no study file .* and no built-in study of that name; built-in: .*quick"):
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
           "methods": [{"name": "neuncut", "params": {"batch_size": 20, "epochs": 2, "lr": 1e30}},
                       {"name": "kmeans"}],
           "protocol": {"train_size": 40}, "device": "cpu", "timing": {"warmup": 0, "repeats": 1}}
    study = expand_study(raw)  # lr 1e30: neuncut diverges at fit
    store = ResultStore(tmp_path)
    counts = run_study(study, store, progress=lambda m: None)
    assert counts["failed"] == 1 and counts["ok"] == 1
    failed = next(r for r in store.records() if r["status"] == "failed")
    assert "NeuNcut training diverged at epoch 1" in failed["error"] and "metrics" not in failed
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


def test_sweep_axes_expand(tmp_path):
    raw = {"name": "sweep",
           "datasets": [{"name": "double_rings", "grid": {"n": [300, 600]}}],
           "affinity": {"sigma": "median", "n_neighbors": [3, 10]},
           "methods": ["kmeans", {"name": "neuncut", "params": {"epochs": 2}, "grid": {"batch_size": [100, 200]}}],
           "protocol": {"train_size": [200, 250]}, "seeds": [0, 1], "device": ["cpu", "cuda"]}
    study = expand_study(raw)
    # per dataset n (2) x train size (2) x seed (2) x device (2) = 16, times
    # kmeans (no affinity axis: 1) + neuncut (2 batch sizes x 2 s values: 4)
    assert len(study.cells) == 16 * 5
    neuncut = [c for c in study.cells if c.method == "neuncut"]
    assert {c.method_params["affinity"]["n_neighbors"] for c in neuncut} == {3, 10}
    assert {c.dataset_params["n"] for c in study.cells} == {300, 600}
    assert {c.protocol["train_size"] for c in study.cells} == {200, 250}
    assert all("affinity" not in c.method_params for c in study.cells if c.method == "kmeans")


def test_method_affinity_fields_override_the_study_affinity():
    raw = {"name": "a", "datasets": ["blobs"], "affinity": {"sigma": 2.0, "n_neighbors": 5},
           "methods": [{"name": "ncut", "grid": {"affinity.n_neighbors": [7, 9]}},
                       {"name": "neuncut", "params": {"affinity": "neuncut"}}]}
    cells = expand_study(raw).cells
    ncut = [c.method_params["affinity"] for c in cells if c.method == "ncut"]
    assert [(a["sigma"], a["n_neighbors"]) for a in ncut] == [(2.0, 7), (2.0, 9)]
    neuncut = next(c.method_params["affinity"] for c in cells if c.method == "neuncut")
    assert neuncut["sigma"] == 3.0 and neuncut["normalize_rows"] is True and neuncut["n_neighbors"] is None


def test_set_and_only_narrow_and_override(tmp_path):
    path = write(tmp_path, TINY)
    study = load_study(path, overrides=["ncut.n_init=3,5,7", "seeds=4", "protocol.train_size=150",
                                        "double_rings.n=500", "affinity.n_neighbors=6"])
    ncut = [c for c in study.cells if c.method == "ncut"]
    assert sorted({c.method_params["n_init"] for c in ncut}) == [3, 5, 7]
    assert {c.seed for c in study.cells} == {4}
    assert {c.protocol["train_size"] for c in study.cells} == {150}
    assert {c.dataset_params["n"] for c in study.cells if c.dataset == "double_rings"} == {500}
    assert {c.method_params["affinity"]["n_neighbors"] for c in ncut} == {6}
    only = select_cells(study.cells, ["method=ncut", "dataset=blobs"])
    assert len(only) == 3 and all(c.method == "ncut" and c.dataset == "blobs" for c in only)
    assert len(select_cells(study.cells, ["n_init=3,7"])) == 4
    with pytest.raises(CutbenchError, match="unknown key 'gama'; accepted: .*method"):
        select_cells(study.cells, ["gama=3"])
    with pytest.raises(CutbenchError, match="no cell matches"):
        select_cells(study.cells, ["method=neuncut"])
    with pytest.raises(CutbenchError, match=r"'spectral' matches no entry; it must be a method or dataset of the "
                                            r"study \(kmeans, ncut, blobs, double_rings\)"):
        load_study(path, overrides=["spectral.gamma=3"])


def test_time_limit_records_timeout_and_the_study_goes_on(tmp_path):
    raw = {"name": "t", "datasets": [{"name": "double_rings", "params": {"n": 2000}}],
           "methods": [{"name": "neuncut", "params": {"epochs": 10000, "batch_size": 100}}, "kmeans"],
           "device": "cpu", "timing": {"warmup": 0, "repeats": 1, "time_limit": 5}}
    store = ResultStore(tmp_path)
    counts = run_study(expand_study(raw), store, progress=lambda m: None)
    assert counts["timeout"] == 1 and counts["ok"] == 1
    timed_out = next(r for r in store.records() if r["status"] == "timeout")
    assert "time limit of 5 s" in timed_out["error"] and "metrics" not in timed_out
    assert timed_out["cell_wall_seconds"] < 15


def test_cuda_out_of_memory_is_a_failed_record(monkeypatch):
    import torch

    from cutbench.methods.kmeans import KMeans

    def oom(self, X, y=None):
        raise torch.cuda.OutOfMemoryError("tried to allocate 80.00 GiB")

    monkeypatch.setattr(KMeans, "fit", oom)
    raw = {"name": "o", "datasets": [{"name": "blobs", "params": {"n": 60}}], "methods": ["kmeans"], "device": "cpu"}
    record, labels = run_cell(expand_study(raw).cells[0], DatasetCache(), "o")
    assert record["status"] == "failed" and record["error_kind"] == "oom"
    assert "80.00 GiB" in record["error"] and labels is None


def test_time_limit_is_not_part_of_the_key():
    from cutbench.identity import cell_config, cell_key

    base = {"name": "k", "datasets": ["blobs"], "methods": ["kmeans"], "device": "cpu"}
    a = expand_study({**base, "timing": {"time_limit": 10}}).cells[0]
    b = expand_study({**base, "timing": {"time_limit": 99}}).cells[0]
    c = expand_study({**base, "timing": {"repeats": 3}}).cells[0]
    key = lambda cell: cell_key(cell_config(cell, "fp", "cpu"))
    assert key(a) == key(b) != key(c)


def test_warnings_are_kept_with_the_record():
    raw = {"name": "w", "datasets": [{"name": "blobs", "params": {"n": 90, "n_clusters": 3}}],
           "affinity": {"sigma": "median", "n_neighbors": 3}, "methods": ["ncut"], "device": "cpu",
           "timing": {"warmup": 0}}
    record, _ = run_cell(expand_study(raw).cells[0], DatasetCache(), "w")
    assert record["status"] == "ok"
    assert any("connected components" in w for w in record["warnings"])


def test_learned_affinity_is_trained_in_its_own_timed_stage(tmp_path, monkeypatch):
    from cutbench import siamese

    trainings = []
    train = siamese._train
    monkeypatch.setattr(siamese, "_train", lambda *args: trainings.append(args) or train(*args))
    study = load_study(write(tmp_path, """
        name: siamese
        datasets:
          - name: blobs
            params: {n: 300, n_clusters: 3}
        methods:
          - name: ncut
            params:
              affinity: {kind: siamese, hidden_dims: [32, 16], embedding_dim: 4, epochs: 2}
          - name: neuncut
            params:
              batch_size: 100
              epochs: 2
              hidden_dims: [16]
              affinity: {kind: siamese, hidden_dims: [32, 16], embedding_dim: 4, epochs: 2}
        seeds: [0]
        device: cpu
        timing: {warmup: 1, repeats: 2}
        """))
    assert "affinity=siamese" in study.cells[0].label()
    store = ResultStore(tmp_path / "out")
    assert run_study(study, store, progress=lambda _: None)["ok"] == 2
    for record in store.records():
        affinity = record["timings"]["affinity"]
        # trained once: no warm-up run and one measured run, which is also the cold time
        assert len(affinity["runs"]) == 1 and affinity["cold_seconds"] == affinity["seconds"]
        assert record["config"]["method"]["params"]["affinity"]["kind"] == "siamese"
    # One training per cell: its fit reuses the network of its affinity stage, and the second cell does
    # not reuse the first cell's network (same data, spec and seed), so its time does not depend on order.
    assert len(trainings) == 2


# ---- overrides, canonical keys, refused affinity kinds --------------------------------------------
TWO_NEUNCUTS = """
name: two
datasets: [blobs]
methods:
  - name: neuncut
    params: {epochs: 2, batch_size: 50}
  - name: kmeans
  - name: neuncut
    params: {epochs: 3, batch_size: 50}
seeds: [0]
device: cpu
"""


def test_override_values_are_yaml_lists_mappings_and_grids(tmp_path):
    path = write(tmp_path, TWO_NEUNCUTS)
    study = load_study(path, overrides=["neuncut.hidden_dims=[64,64]"])
    assert {c.method_params["hidden_dims"] for c in study.cells if c.method == "neuncut"} == {(64, 64)}
    study = load_study(path, overrides=["neuncut.hidden_dims=[8],[16, 16]", "neuncut.gamma=80,100.5"])
    grid = {(c.method_params["hidden_dims"], c.method_params["gamma"], c.method_params["epochs"])
            for c in study.cells if c.method == "neuncut"}
    assert len(grid) == 2 * 2 * 2  # two entries, each a 2 x 2 grid
    assert {g[0] for g in grid} == {(8,), (16, 16)} and {g[1] for g in grid} == {80.0, 100.5}
    study = load_study(path, overrides=["neuncut.affinity={n_neighbors: 5, self_loops: true}"])
    affinities = [c.method_params["affinity"] for c in study.cells if c.method == "neuncut"]
    assert all(a["n_neighbors"] == 5 and a["self_loops"] is True for a in affinities)
    assert load_study(path, overrides=["seeds=[3,4]"]).cells[0].seed == 3
    assert {c.seed for c in load_study(path, overrides=["seeds=5,6"]).cells} == {5, 6}


def test_an_override_applies_to_every_matching_entry_or_the_addressed_one(tmp_path):
    path = write(tmp_path, TWO_NEUNCUTS)
    said = []
    study = load_study(path, overrides=["neuncut.lr=0.01"], report=said.append)
    assert said == ["--set neuncut.lr=0.01: changed methods[1] (neuncut), methods[3] (neuncut)"]
    assert [c.method_params.get("lr") for c in study.cells] == [0.01, None, 0.01]
    study = load_study(path, overrides=["neuncut#2.lr=0.02"], report=said.append)
    assert said[-1] == "--set neuncut#2.lr=0.02: changed methods[3] (neuncut)"
    assert [c.method_params.get("lr") for c in study.cells] == [None, None, 0.02]
    study = load_study(path, overrides=["blobs.n=120", "Blobs.n_clusters=4"])
    assert study.cells[0].dataset_params["n"] == 120 and study.cells[0].dataset_params["n_clusters"] == 4


@pytest.mark.parametrize("override, message", [
    ("neuncut.hidden_dims=[64,", r"--set: '\[64,' is not a valid YAML value .*write lists as \[a, b\]"),
    ("neuncut.gamma=80,,100", r"empty value in '80,,100'"),
    ("spectralnet.lr=0.1", (r"'spectralnet' matches no entry; it must be a method or dataset of the study "
                            r"\(neuncut, kmeans, neuncut, blobs\)")),
    ("neuncut#3.lr=0.1", r"the study has 2 methods entries named 'neuncut', not 3"),
    ("neuncut#x.lr=0.1", r"NAME#N with N = 1, 2, \.\.\."),
    ("neuncut.gamma", r"--set needs KEY=VALUE"),
    ("neuncut.gamma=-1", r"line \d+: NeuNcut: gamma must be a number >= 0; got -1\."),
])
def test_bad_overrides_are_clear_errors(tmp_path, override, message):
    with pytest.raises(CutbenchError, match=message):
        load_study(write(tmp_path, TWO_NEUNCUTS), overrides=[override])


def test_cell_keys_depend_on_values_not_on_their_spelling(tmp_path):
    from cutbench.identity import cell_config, cell_key

    def keys(params, affinity):
        raw = {"name": "k", "datasets": ["blobs"], "methods": [{"name": "neuncut", "params": params}],
               "affinity": affinity, "seeds": [0], "device": "cpu"}
        return [cell_key(cell_config(cell, "fingerprint", "cpu")) for cell in expand_study(raw).cells]

    written_one_way = keys({"gamma": 80, "epochs": 40.0, "hidden_dims": [64, 64]}, {"sigma": 1, "n_neighbors": 10})
    written_another = keys({"gamma": 80.0, "epochs": 40, "hidden_dims": (64, 64)}, {"sigma": 1.0, "n_neighbors": 10.0})
    assert written_one_way == written_another
    assert keys({"gamma": 81}, None) != keys({"gamma": 80}, None)
    study = load_study(write(tmp_path, TWO_NEUNCUTS), overrides=["neuncut#1.gamma=80"])
    assert study.cells[0].method_params["gamma"] == 80.0 and isinstance(study.cells[0].method_params["gamma"], float)


class HeatKernelOnly(NeuNcut):
    """A method that takes heat kernels only, registered by the test below."""

    name = "heat_only"
    capabilities = Capabilities(minibatch=True, out_of_sample=True, affinity_kinds=("heat_kernel",))


def test_a_method_refuses_an_affinity_kind_it_cannot_take_at_expansion(monkeypatch):
    monkeypatch.setitem(registry.METHODS, "heat_only", f"{__name__}:HeatKernelOnly")
    siamese = {"kind": "siamese", "epochs": 1}
    raw = {"name": "r", "datasets": ["blobs"], "seeds": [0], "device": "cpu",
           "methods": [{"name": "heat_only", "params": {"affinity": siamese}}, {"name": "heat_only"}, "kmeans"]}
    study = expand_study(raw)
    assert [c.method for c in study.cells] == ["heat_only", "kmeans"]
    assert study.refused == ["blobs · heat_only: heat_only takes the affinity kinds heat_kernel, not 'siamese'"]
    with pytest.raises(CutbenchError, match=r"expands to no cells.*All were refused: blobs · heat_only: heat_only "
                                            r"takes the affinity kinds heat_kernel, not 'siamese'"):
        expand_study({**raw, "methods": [{"name": "heat_only"}], "affinity": siamese})


def test_dataset_names_accept_the_usual_spellings():
    cells = expand_study({"name": "d", "datasets": [{"name": "Two-Moons", "params": {"n": 100}}],
                          "methods": ["kmeans"], "device": "cpu"}).cells
    assert cells[0].dataset == "two_moons"
    with pytest.raises(CutbenchError, match=r"unknown dataset 'twomoon'; available: blobs, cifar10, .*two_moons"):
        expand_study({"name": "d", "datasets": ["twomoon"], "methods": ["kmeans"]})


def test_a_study_accepts_every_device_the_estimators_accept():
    """The study and the estimators share one device constraint: cuda:N is a device (skipped without CUDA)."""
    import torch

    from cutbench.runner import DatasetCache, run_cell

    (cell,) = expand_study({"name": "d", "datasets": [{"name": "blobs", "params": {"n": 60}}], "methods": ["kmeans"],
                            "device": "cuda:1"}).cells
    assert cell.device == "cuda:1"
    if not torch.cuda.is_available():
        record, _ = run_cell(cell, DatasetCache(), "d")
        assert record["status"] == "skipped" and "CUDA is not available" in record["error"]
