"""kNN backends of the full graph: exact and approximate search agree on small data, the recorded recall
is what a direct count gives, and bad or missing backends are clear errors."""

import numpy as np
import pytest

from cutbench import CutbenchError
from cutbench.graph import KNN_BACKENDS, Affinity, knn_graph, knn_recall
from cutbench.runner import DatasetCache, run_cell
from cutbench.study import expand_study

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def points():
    rng = np.random.default_rng(0)
    return np.r_[rng.normal(size=(800, 16)), rng.normal(size=(700, 16)) + 3].astype(np.float32)


def brute_force_neighbors(X, s):
    sq = ((X[:, None, :].astype(np.float64) - X[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(sq, np.inf)
    return np.argsort(sq, axis=1, kind="stable")[:, :s]


@pytest.mark.parametrize("backend", sorted(set(KNN_BACKENDS) - {"exact"}))
def test_every_backend_agrees_with_exact_search(points, backend):
    pytest.importorskip("faiss" if backend.startswith("faiss") else backend)
    report = {}
    W = knn_graph(points, Affinity(knn_backend=backend), device="cpu", report=report)
    truth = brute_force_neighbors(points, 10)
    recall = np.mean([np.isin(t, f).mean() for t, f in zip(truth, report["neighbors"])])
    assert recall >= 0.99, recall
    assert report["knn_backend"] == backend and not (report["neighbors"] == np.arange(len(points))[:, None]).any()
    exact = knn_graph(points, Affinity(), device="cpu")
    assert abs((W > 0).astype(int) - (exact > 0).astype(int)).sum() <= 0.02 * exact.nnz


def test_knn_recall_is_the_direct_count(points):
    truth = brute_force_neighbors(points, 10)
    damaged = truth.copy()
    rng = np.random.default_rng(1)
    damaged[rng.random(damaged.shape) < 0.2] = -1  # about a fifth of the lists are wrong
    rows = np.sort(np.random.default_rng(7).choice(len(points), size=300, replace=False))
    direct = np.mean([np.isin(truth[r], damaged[r]).mean() for r in rows])
    assert knn_recall(points, Affinity(), damaged, sample=300, seed=7, device="cpu") == pytest.approx(direct)
    assert knn_recall(points, Affinity(), truth, sample=300, seed=7, device="cpu") == 1.0


def test_a_cell_records_its_backend_and_the_recall_of_its_graph(points, tmp_path):
    pytest.importorskip("faiss")
    np.savez(tmp_path / "points.npz", X=points, y=np.repeat([0, 1], [800, 700]))
    raw = {"name": "ann", "datasets": [{"name": "features_file", "params": {"path": str(tmp_path / "points.npz")}}],
           "methods": [{"name": "ncut", "params": {"affinity": {"n_neighbors": 10, "knn_backend": "faiss_hnsw"}}}],
           "seeds": [3], "device": "cpu", "timing": {"warmup": 0, "repeats": 1}}
    (cell,) = expand_study(raw).cells
    record, _ = run_cell(cell, DatasetCache(), "ann")
    assert record["status"] == "ok", record.get("traceback")
    knn = record["knn"]
    assert knn["backend"] == "faiss_hnsw" and knn["recall_rows"] == 500 and knn["recall_seed"] == 3
    report = {}
    knn_graph(points, Affinity(knn_backend="faiss_hnsw"), device="cpu", report=report)
    assert knn["recall"] == pytest.approx(knn_recall(points, Affinity(), report["neighbors"], sample=500, seed=3,
                                                     device="cpu"))
    assert cell.method_params["affinity"]["knn_backend"] == "faiss_hnsw"  # part of the cell's key


def test_unknown_and_missing_backends_say_what_to_do(points, monkeypatch):
    with pytest.raises(CutbenchError, match=r"unknown kNN backend 'annoy'; accepted: 'exact', 'faiss_flat', "
                                            r"'faiss_hnsw', 'pynndescent' \(all but 'exact' need pip install "
                                            r"'cutbench\[ann\]'"):
        Affinity(knn_backend="annoy")
    import cutbench.graph

    real_import = cutbench.graph.importlib.import_module

    def without_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(cutbench.graph.importlib, "import_module", without_faiss)
    with pytest.raises(CutbenchError, match=r"knn_backend='faiss_hnsw' needs the package faiss-cpu, which is not "
                                            r"installed: pip install faiss-cpu"):
        knn_graph(points, Affinity(knn_backend="faiss_hnsw"), device="cpu")
    with pytest.raises(CutbenchError, match="n_neighbors=None asks for a dense graph"):
        Affinity(knn_backend="faiss_hnsw", n_neighbors=None)
