"""Study parts and the protocol options the paper targets need: scoring only held-out points, the cut values
of a labelling, and missing data recorded as such."""

import numpy as np
import pytest

from cutbench import CutbenchError
from cutbench.affinity import canonical_affinity, prepare_affinity
from cutbench.datasets import load_dataset
from cutbench.metrics import accuracy, ncut_value, rcut_value
from cutbench.runner import DatasetCache, run_cell, train_indices
from cutbench.study import apply_override, expand_study

pytestmark = pytest.mark.usefixtures("one_thread")

BASE = {"name": "p", "datasets": [{"name": "blobs", "params": {"n": 300}}], "seeds": [0], "device": "cpu",
        "timing": {"warmup": 0, "repeats": 1}}


def _study(**extra):
    return expand_study({**BASE, **extra})


def test_parts_replace_the_keys_they_give_and_name_their_cells():
    study = _study(methods=["kmeans"], parts=[
        {"name": "raw"},
        {"name": "pca", "features": {"name": "pca", "n_components": 2}, "methods": ["kmeans", "ncut"]},
    ])
    assert [(c.part, c.method, c.features["name"]) for c in study.cells] == [
        ("raw", "kmeans", "raw"), ("pca", "kmeans", "pca"), ("pca", "ncut", "pca")]
    assert study.cells[0].fields()["part"] == "raw" and study.cells[0].label().startswith("[raw] ")
    with pytest.raises(CutbenchError, match="every part needs a name of its own"):
        _study(methods=["kmeans"], parts=[{"name": "a"}, {"name": "a"}])
    with pytest.raises(CutbenchError, match="unknown key 'timing' in a part"):
        _study(methods=["kmeans"], parts=[{"name": "a", "timing": {}}])
    with pytest.raises(CutbenchError, match="needs a 'methods' key \\(part 'a'\\)"):
        _study(parts=[{"name": "a"}])


def test_overrides_reach_the_parts():
    raw = {**BASE, "protocol": {"train_size": 100}, "parts": [
        {"name": "a", "methods": [{"name": "neuncut", "params": {"epochs": 3, "batch_size": 20}}]},
        {"name": "b", "protocol": {"train_size": 200}, "affinity": {"kind": "siamese"},
         "methods": [{"name": "neuncut", "params": {"epochs": 3, "batch_size": 20}}]},
    ]}
    assert apply_override(raw, "neuncut.epochs=2") == ["parts[1].methods[1] (neuncut)", "parts[2].methods[1] (neuncut)"]
    assert apply_override(raw, "protocol.train_size=50") == ["protocol.train_size", "parts[2].protocol.train_size"]
    assert apply_override(raw, "parts.b.affinity.epochs=1") == ["parts.b: affinity.epochs"]
    with pytest.raises(CutbenchError, match="parts.<name>.<key> addresses one part; the study's parts are a, b"):
        apply_override(raw, "parts.c.seeds=[1]")
    cells = expand_study(raw).cells
    assert [(c.part, c.protocol["train_size"], c.method_params["epochs"]) for c in cells] == [("a", 50, 2), ("b", 50, 2)]
    assert cells[1].method_params["affinity"]["epochs"] == 1


def test_a_cell_without_parts_keeps_its_key():
    """Studies without parts (and without the new protocol options) keep the keys of their stored results."""
    from cutbench.identity import cell_config

    cell = _study(methods=["kmeans"]).cells[0]
    config = cell_config(cell, None, "cpu")
    assert "part" not in config and set(config["protocol"]) == {"train_size", "nmi_average_method"}


def test_held_out_scoring_uses_only_the_points_not_trained_on():
    (cell,) = _study(methods=[{"name": "neuncut", "params": {"epochs": 2, "batch_size": 100}}],
                     protocol={"train_size": 200, "evaluate": "held_out"}).cells
    record, labels = run_cell(cell, DatasetCache(), "p")
    assert record["status"] == "ok", record.get("error")
    y = load_dataset("blobs", n=300).y
    held_out = np.setdiff1d(np.arange(300), train_indices(300, 200, 0))
    assert record["n_scored"] == 100 == len(held_out)
    assert record["metrics"]["acc"] == pytest.approx(accuracy(y[held_out], labels[held_out]))
    with pytest.raises(CutbenchError, match="held_out needs a train_size"):
        _study(methods=["kmeans"], protocol={"evaluate": "held_out"})
    with pytest.raises(CutbenchError, match="protocol: evaluate must be one of 'all', 'held_out'"):
        _study(methods=["kmeans"], protocol={"evaluate": "test"})


def test_cut_values_are_those_of_the_labelling_on_the_scored_points_graph():
    (cell,) = _study(methods=["kmeans"]).cells
    record, labels = run_cell(cell, DatasetCache(), "p")
    X = load_dataset("blobs", n=300).X
    graph = prepare_affinity("knn", X.astype(np.float32), device="cpu").graph()
    assert record["metrics"]["ncut_value"] == pytest.approx(ncut_value(graph, labels), rel=1e-6)
    assert record["metrics"]["rcut_value"] == pytest.approx(rcut_value(graph, labels), rel=1e-6)
    assert record["cut_graph"]["n"] == 300 and record["cut_graph"]["affinity"]["n_neighbors"] == 10


def test_cells_scoring_the_same_points_on_the_same_kernel_build_that_graph_once(monkeypatch):
    from cutbench import runner

    built = []
    real = runner.prepare_affinity
    monkeypatch.setattr(runner, "_SCORING_GRAPHS", runner.ScoringGraphCache())
    monkeypatch.setattr(runner, "prepare_affinity", lambda spec, X, **kw: built.append(len(X)) or real(spec, X, **kw))
    cells = _study(methods=["kmeans"], seeds=[0, 1]).cells + _study(
        datasets=[{"name": "blobs", "params": {"n": 200}}], methods=["kmeans"]).cells
    records = [run_cell(cell, DatasetCache(), "p") for cell in cells]
    assert built == [300, 200]  # seeds 0 and 1 share the 300-point graph; 200 points get their own
    X = load_dataset("blobs", n=300).X
    graph = prepare_affinity("knn", X.astype(np.float32), device="cpu").graph()
    for record, labels in records[:2]:
        assert record["metrics"]["ncut_value"] == pytest.approx(ncut_value(graph, labels), rel=1e-6)


def test_missing_data_is_recorded_as_missing_with_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CUTBENCH_DATA", str(tmp_path))
    (cell,) = expand_study({**BASE, "datasets": ["mnist"], "methods": ["kmeans"]}).cells
    record, _ = run_cell(cell, DatasetCache(), "p")
    assert record["status"] == "failed" and record["error_kind"] == "data_missing"
    assert "To get it:" in record["error"]


def test_a_rule_between_a_parameter_and_the_study_affinity_is_checked_at_expansion():
    """SpectralNet's default bandwidth rule needs a heat kernel: with a study-level SENet affinity the study is
    refused before anything runs, naming the fix."""
    with pytest.raises(CutbenchError, match="use scale='affinity'"):
        _study(methods=[{"name": "spectralnet", "params": {"batch_size": 100}}],
               affinity={"kind": "self_expressive", "preset": "senet_cpu"})
    (cell,) = _study(methods=[{"name": "spectralnet", "params": {"scale": "affinity", "batch_size": 100}}],
                     affinity={"kind": "self_expressive", "preset": "senet_cpu"}).cells
    assert cell.method_params["scale"] == "affinity"


def test_a_graph_method_trained_on_a_subset_has_its_cuts_measured_on_the_graph_of_all_scored_points():
    """SpecNet2 takes a full graph of its 80 training points but labels all 120: the cut values are those of
    the labelling on the kNN graph of the 120 points, not on the training graph."""
    from cutbench.methods import get_method

    (cell,) = _study(methods=[{"name": "specnet2", "params": get_method("specnet2").check_params}],
                     datasets=[{"name": "blobs", "params": {"n": 120}}], protocol={"train_size": 80}).cells
    record, labels = run_cell(cell, DatasetCache(), "p")
    assert record["status"] == "ok", record.get("error")
    X = load_dataset("blobs", n=120).X
    graph = prepare_affinity(cell.method_params["affinity"], X, device="cpu").graph()
    assert record["cut_graph"] == {"affinity": canonical_affinity(cell.method_params["affinity"]), "n": 120,
                                   "source": "built for scoring"}
    assert record["metrics"]["ncut_value"] == pytest.approx(ncut_value(graph, labels), rel=1e-6)


def test_a_method_with_a_dense_kernel_has_its_cuts_measured_on_the_default_knn_graph():
    """NeuNcut's reference kernel is dense (every pair): at paper scale its n x n graph of 70,000 scored points
    cannot be built, so the cut values are measured on the default kNN kernel at every size."""
    (cell,) = _study(methods=[{"name": "neuncut", "params": {"epochs": 2, "batch_size": 100, "affinity": "neuncut"}}]
                     ).cells
    record, labels = run_cell(cell, DatasetCache(), "p")
    assert record["status"] == "ok", record.get("error")
    X = load_dataset("blobs", n=300).X
    graph = prepare_affinity("knn", X.astype(np.float32), device="cpu").graph()
    assert record["cut_graph"]["affinity"] == canonical_affinity("knn")
    assert record["metrics"]["ncut_value"] == pytest.approx(ncut_value(graph, labels), rel=1e-6)
