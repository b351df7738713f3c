"""Ncut: eigenvectors against dense numpy eigh, recovery of non-convex clusters, graph validation."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.datasets import make_blobs, make_circles, make_moons
from sklearn.neighbors import kneighbors_graph

from cutbench import CutbenchError, CutbenchWarning
from cutbench.graph import Affinity, knn_graph
from cutbench.methods import ncut as ncut_module
from cutbench.methods.ncut import Ncut
from cutbench.methods.registry import get_method
from reference import hungarian_accuracy

SOLVERS = ["arpack", "lobpcg"]
# Well-separated rings and moons give a kNN graph with one component per cluster.
ignore_disconnected = pytest.mark.filterwarnings(
    "ignore:the graph has .* connected components:cutbench.CutbenchWarning")



def heat_kernel_knn_graph(X, n_neighbors=10):
    """Symmetrised kNN heat-kernel graph built with sklearn, independent of cutbench.graph."""
    distances = kneighbors_graph(X, n_neighbors, mode="distance")
    sigma = np.median(distances.data)
    distances.data = np.exp(-distances.data**2 / (2 * sigma**2))
    return ((distances + distances.T) / 2).tocsr()


def dense_top_eigenpairs(W, k):
    """Top-k eigenpairs of D^-1/2 W D^-1/2 by dense numpy eigh."""
    W = W.toarray() if sp.issparse(W) else np.asarray(W)
    inv_sqrt_degree = 1 / np.sqrt(W.sum(axis=1))
    values, vectors = np.linalg.eigh(inv_sqrt_degree[:, None] * W * inv_sqrt_degree[None, :])
    return values[::-1][:k], vectors[:, ::-1][:, :k]


def projector_distance(U, V):
    """Spectral norm of the difference of the orthogonal projectors onto span(U) and span(V)."""
    return np.linalg.norm(U @ U.T - V @ V.T, 2)


@pytest.fixture(scope="module")
def three_blobs_graph():
    X, y = make_blobs(300, centers=3, cluster_std=1.5, random_state=0)
    return X, y, heat_kernel_knn_graph(X)


@pytest.fixture(scope="module")
def rings():
    return make_circles(1000, factor=0.5, noise=0.05, random_state=0)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("n_components", [3, 5])
def test_eigenvectors_match_dense_eigh(three_blobs_graph, solver, n_components):
    X, _, W = three_blobs_graph
    model = Ncut(3, n_components=n_components, eigen_solver=solver, eigen_tol=1e-10, device="cpu",
                 random_state=0).fit(X, graph=W)
    ref_values, ref_vectors = dense_top_eigenpairs(W, n_components)
    assert model.eigen_solver_ == solver
    assert model.affinity_graph_stats_["n_connected_components"] == 1
    np.testing.assert_allclose(model.eigenvalues_, ref_values, atol=1e-9)
    assert projector_distance(model.eigenvectors_, ref_vectors) < 1e-6
    np.testing.assert_allclose(model.eigenvectors_.T @ model.eigenvectors_, np.eye(n_components), atol=1e-9)
    assert model.eigen_residual_ < 1e-9


def test_embedding_rows_are_unit_norm_unless_disabled(three_blobs_graph):
    X, _, W = three_blobs_graph
    normalized = Ncut(3, device="cpu", random_state=0).fit(X, graph=W)
    np.testing.assert_allclose(np.linalg.norm(normalized.embedding_, axis=1), 1.0, rtol=1e-12)
    raw = Ncut(3, normalize_embedding=False, device="cpu", random_state=0).fit(X, graph=W)
    np.testing.assert_array_equal(raw.embedding_, raw.eigenvectors_)


@pytest.mark.parametrize("solver", SOLVERS)
def test_tiny_graph_falls_back_to_dense_eigh(solver):
    # torch.lobpcg needs n >= 3 * block; the ARPACK route solves small components densely.
    X, _ = make_blobs(24, centers=2, random_state=0)
    W = heat_kernel_knn_graph(X, n_neighbors=8)
    model = Ncut(2, n_components=10, eigen_solver=solver, device="cpu", random_state=0).fit(X, graph=W)
    ref_values, ref_vectors = dense_top_eigenpairs(W, 10)
    assert model.eigen_solver_ == "dense"
    np.testing.assert_allclose(model.eigenvalues_, ref_values, atol=1e-12)
    assert projector_distance(model.eigenvectors_, ref_vectors) < 1e-8


@ignore_disconnected
@pytest.mark.parametrize("solver", SOLVERS)
def test_recovers_double_rings(rings, solver):
    X, y = rings
    model = Ncut(2, eigen_solver=solver, device="cpu", random_state=0).fit(X)
    assert hungarian_accuracy(y, model.labels_) >= 0.99
    assert model.eigen_residual_ < 1e-5
    assert model.labels_.dtype == np.int64 and model.labels_.shape == (len(X),)


@ignore_disconnected
@pytest.mark.parametrize("solver", SOLVERS)
def test_recovers_two_moons(solver):
    X, y = make_moons(1000, noise=0.05, random_state=0)
    model = Ncut(2, eigen_solver=solver, device="cpu", random_state=0).fit(X)
    assert hungarian_accuracy(y, model.labels_) >= 0.99


@ignore_disconnected
def test_precomputed_graph_gives_the_same_labels_as_the_internal_build(rings):
    X, _ = rings
    internal = Ncut(2, affinity="knn", device="cpu", random_state=0).fit(X)
    graph = knn_graph(X, Affinity.from_any("knn"), device="cpu")
    precomputed = Ncut(2, device="cpu", random_state=0).fit(X, graph=graph)
    np.testing.assert_array_equal(precomputed.labels_, internal.labels_)
    assert internal.affinity_ == Affinity.from_any("knn")
    assert precomputed.affinity_ is None


@pytest.mark.parametrize("as_type", ["numpy", "torch_dense", "torch_sparse"])
def test_graph_accepts_dense_and_torch_inputs(three_blobs_graph, as_type):
    X, _, W = three_blobs_graph
    graph = {"numpy": W.toarray(), "torch_dense": torch.from_numpy(W.toarray()),
             "torch_sparse": torch.from_numpy(W.toarray()).to_sparse()}[as_type]
    reference = Ncut(3, device="cpu", random_state=0).fit(X, graph=W)
    model = Ncut(3, device="cpu", random_state=0).fit(X, graph=graph)
    np.testing.assert_array_equal(model.labels_, reference.labels_)


def test_isolated_node_is_an_error(three_blobs_graph):
    X, _, W = three_blobs_graph
    W = W.tolil()
    W[5, :] = 0
    W[:, 5] = 0
    with pytest.raises(CutbenchError, match=r"1 node\(s\) with zero degree.*self_loops=True"):
        Ncut(3, device="cpu").fit(X, graph=W.tocsr())


@pytest.mark.parametrize("solver", SOLVERS)
def test_disconnected_graph_warns_and_gets_the_repeated_eigenvalue_right(solver):
    # Single-vector Lanczos over the whole block-diagonal M finds eigenvalue 1 only once.
    X, y = make_blobs(900, centers=[[0, 0], [50, 0], [0, 50]], cluster_std=1.0, random_state=0)
    W = heat_kernel_knn_graph(X, n_neighbors=5)
    with pytest.warns(CutbenchWarning, match="3 connected components"):
        model = Ncut(3, n_components=5, eigen_solver=solver, eigen_tol=1e-10, device="cpu",
                     random_state=0).fit(X, graph=W)
    assert model.eigen_solver_ == solver
    assert model.affinity_graph_stats_["n_connected_components"] == 3
    ref_values, ref_vectors = dense_top_eigenpairs(W, 5)
    np.testing.assert_allclose(model.eigenvalues_, ref_values, atol=1e-9)
    np.testing.assert_allclose(model.eigenvalues_[:3], 1.0, atol=1e-9)
    assert projector_distance(model.eigenvectors_, ref_vectors) < 1e-6
    assert hungarian_accuracy(y, model.labels_) >= 0.99


@pytest.mark.parametrize(("edit", "message"), [
    (lambda W: W + sp.random(*W.shape, density=0.01, random_state=0), "not symmetric"),
    (lambda W: W - 2 * sp.eye(W.shape[0]), "negative weight"),
    (lambda W: W + sp.csr_matrix(([np.nan], ([0], [0])), shape=W.shape), "NaN or inf"),
    (lambda W: W[:-1, :-1], "graph has 299 nodes but X has 300"),
    (lambda W: W[:, :-1], "must be square"),
])
def test_invalid_graphs_are_errors(three_blobs_graph, edit, message):
    X, _, W = three_blobs_graph
    with pytest.raises(CutbenchError, match=message):
        Ncut(3, device="cpu").fit(X, graph=edit(W))


@pytest.mark.parametrize(("params", "message"), [
    ({"eigen_solver": "amg"}, "eigen_solver must be one of"),
    ({"eigen_tol": 0.0}, "eigen_tol must be a number in"),
    ({"eigen_tol": "1e-6"}, "eigen_tol must be a number in"),
    ({"n_components": 0}, r"Ncut: n_components must be an integer >= 1 or None \(n_clusters\); got 0\."),
    ({"n_components": 300}, r"n_components must be below n_samples = 300; got 300\."),
    ({"n_init": 0}, r"Ncut: n_init must be an integer >= 1; got 0\."),
    ({"normalize_embedding": "yes"}, "normalize_embedding must be True or False"),
])
def test_invalid_parameters_are_errors(three_blobs_graph, params, message):
    X, _, W = three_blobs_graph
    with pytest.raises(CutbenchError, match=message):
        Ncut(3, device="cpu", **params).fit(X, graph=W)


@pytest.mark.parametrize("solver", SOLVERS)
def test_seeded_fits_are_reproducible(three_blobs_graph, solver):
    X, _, W = three_blobs_graph
    model = Ncut(3, n_components=4, eigen_solver=solver, device="cpu", random_state=7)
    first = clone(model).fit(X, graph=W)
    second = clone(model).fit(X, graph=W)
    np.testing.assert_array_equal(first.labels_, second.labels_)
    np.testing.assert_allclose(first.embedding_, second.embedding_, atol=1e-10)


def test_unconverged_lobpcg_warns_with_its_residual(three_blobs_graph, monkeypatch):
    X, _, W = three_blobs_graph
    monkeypatch.setattr(ncut_module, "_LOBPCG_MAX_ITER", 1)
    with pytest.warns(CutbenchWarning, match="lobpcg eigensolve did not converge: eigen_residual_"):
        model = Ncut(3, eigen_solver="lobpcg", device="cpu", random_state=0).fit(X, graph=W)
    assert model.eigen_residual_ > 1e-5


def test_is_transductive_and_registered(three_blobs_graph):
    X, _, W = three_blobs_graph
    model = Ncut(3, device="cpu", random_state=0).fit(X, graph=W)
    assert not hasattr(model, "predict")  # transductive: fit_predict labels the points it is fitted on
    np.testing.assert_array_equal(Ncut(3, device="cpu", random_state=0).fit_predict(X, graph=W), model.labels_)
    assert get_method("ncut") is Ncut
    assert Ncut.capabilities.precomputed_graph and Ncut.capabilities.gpu
    assert not Ncut.capabilities.out_of_sample


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@ignore_disconnected
def test_cuda_lobpcg_matches_cpu_on_rings(rings):
    X, y = rings
    cpu = Ncut(2, eigen_solver="arpack", device="cpu", random_state=0).fit(X)
    cuda = Ncut(2, device="cuda", random_state=0).fit(torch.as_tensor(X, device="cuda"))
    assert cuda.eigen_solver_ == "lobpcg"
    assert cuda.eigen_residual_ < 1e-5
    np.testing.assert_allclose(cuda.eigenvalues_, cpu.eigenvalues_, atol=1e-6)
    assert hungarian_accuracy(y, cuda.labels_) == hungarian_accuracy(y, cpu.labels_) >= 0.99
