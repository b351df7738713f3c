"""Affinity builders checked against direct numpy formulas (explicit pairwise differences, np.exp, argsort)."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.neighbors import NearestNeighbors

from cutbench import CutbenchError
from cutbench.graph import (
    AFFINITY_PRESETS,
    DENSE_MAX_SAMPLES,
    Affinity,
    batch_affinity,
    degrees,
    knn_graph,
    knn_search,
    l2_normalize_rows,
    pairwise_sq_dists,
)

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


# -- independent references ------------------------------------------------------------------------------
def explicit_sq_dists(X):
    diff = X[:, None, :] - X[None, :, :]
    return (diff**2).sum(axis=-1)


def reference_affinity(X, affinity):
    """Heat kernel from explicit differences; kNN by stable argsort (ties -> lowest index)."""
    X = np.asarray(X, dtype=np.float64)
    if affinity.normalize_rows:
        X = X / (np.sqrt((X**2).sum(axis=1, keepdims=True)) + 1e-6)
    n = len(X)
    sq = explicit_sq_dists(X)
    off_diagonal = ~np.eye(n, dtype=bool)
    if affinity.n_neighbors is None:
        kept = off_diagonal
    else:
        ranked = np.argsort(np.where(off_diagonal, sq, np.inf), axis=1, kind="stable")
        kept = np.zeros((n, n), dtype=bool)
        kept[np.arange(n)[:, None], ranked[:, :affinity.n_neighbors]] = True
    sigma = np.median(np.sqrt(sq[kept])) if affinity.sigma == "median" else affinity.sigma
    W = np.where(kept, np.exp(-sq / (2 * sigma**2)), 0.0)
    W = (W + W.T) / 2 if affinity.symmetrize == "mean" else np.maximum(W, W.T)
    np.fill_diagonal(W, 1.0 if affinity.self_loops else 0.0)
    return W


@pytest.fixture
def points():
    return np.random.default_rng(0).normal(size=(60, 4))


# -- Affinity spec ---------------------------------------------------------------------------------------
def test_presets_and_round_trip():
    assert AFFINITY_PRESETS["knn"] == Affinity()
    neuncut = Affinity.from_any("neuncut")
    assert (neuncut.sigma, neuncut.n_neighbors, neuncut.self_loops, neuncut.normalize_rows) == (3.0, None, True, True)
    spec = Affinity(sigma=np.float32(2.0), n_neighbors=np.int64(5), symmetrize="max")
    assert spec.to_dict() == {"sigma": 2.0, "n_neighbors": 5, "self_loops": False, "normalize_rows": False,
                              "symmetrize": "max"}
    assert type(spec.sigma) is float and type(spec.n_neighbors) is int
    assert Affinity.from_any(spec.to_dict()) == spec
    assert Affinity.from_any(spec) is spec


@pytest.mark.parametrize("kwargs, match", [
    ({"sigma": 0.0}, r"^Affinity: sigma must be a number > 0 or 'median'; got 0\.0\.$"),
    ({"sigma": -1}, r"sigma must be a number > 0 or 'median'; got -1\."),
    ({"sigma": float("nan")}, r"sigma must be a number > 0 or 'median'; got nan\."),
    ({"sigma": "mean"}, r"sigma must be a number > 0 or 'median'; got 'mean'\."),
    ({"sigma": True}, r"sigma must be a number > 0 or 'median'; got True\."),
    ({"n_neighbors": 0}, r"n_neighbors must be an integer >= 1 or None \(a dense graph\); got 0\."),
    ({"n_neighbors": 2.5}, r"n_neighbors must be an integer >= 1"),
    ({"symmetrize": "sum"}, r"symmetrize must be one of 'mean', 'max'"),
    ({"self_loops": "yes"}, r"self_loops must be True or False"),
])
def test_affinity_rejects_bad_values(kwargs, match):
    with pytest.raises(CutbenchError, match=match):
        Affinity(**kwargs)
    with pytest.raises(CutbenchError, match=match):
        Affinity.from_any(kwargs)


def test_from_any_rejects_unknown_keys_presets_and_types():
    with pytest.raises(CutbenchError, match=r"unknown affinity key\(s\) \['k'\]; accepted keys: 'sigma', "
                                            r"'n_neighbors', 'self_loops', 'normalize_rows', 'symmetrize'"):
        Affinity.from_any({"sigma": 1.0, "k": 3})
    with pytest.raises(CutbenchError, match=r"unknown affinity preset 'gauss'; accepted presets: 'knn', 'neuncut', "
                                            r"'cnc', 'knn_self_loops'"):
        Affinity.from_any("gauss")
    with pytest.raises(CutbenchError, match=r"got int"):
        Affinity.from_any(3)


# -- helpers ---------------------------------------------------------------------------------------------
def test_pairwise_sq_dists_matches_explicit_differences(points):
    X = torch.tensor(points)
    Y = torch.tensor(points[:7] + 0.5)
    np.testing.assert_allclose(pairwise_sq_dists(X).numpy(), explicit_sq_dists(points), atol=1e-12)
    assert (torch.diagonal(pairwise_sq_dists(X)) == 0).all()
    cross = ((points[:, None, :] - (points[:7] + 0.5)[None]) ** 2).sum(-1)
    np.testing.assert_allclose(pairwise_sq_dists(X, Y).numpy(), cross, atol=1e-12)


def test_pairwise_sq_dists_is_differentiable(points):
    X = torch.tensor(points[:10], requires_grad=True)
    pairwise_sq_dists(X).sum().backward()
    # d/dx_i sum_{j,k} ||x_j - x_k||^2 = 4 sum_k (x_i - x_k)
    expected = 4 * (10 * points[:10] - points[:10].sum(axis=0))
    np.testing.assert_allclose(X.grad.numpy(), expected, atol=1e-10)


def test_l2_normalize_rows_numpy_and_torch(points):
    expected = points / (np.sqrt((points**2).sum(axis=1, keepdims=True)) + 1e-6)
    np.testing.assert_allclose(l2_normalize_rows(points), expected, rtol=1e-12)
    np.testing.assert_allclose(l2_normalize_rows(torch.tensor(points)).numpy(), expected, rtol=1e-12)
    with pytest.raises(CutbenchError, match="2-D"):
        l2_normalize_rows(points[0])


def test_degrees_for_every_matrix_kind(points):
    W = reference_affinity(points, Affinity(n_neighbors=5))
    expected = W.sum(axis=1)
    np.testing.assert_allclose(degrees(W), expected)
    np.testing.assert_allclose(degrees(sp.csr_matrix(W)), expected)
    np.testing.assert_allclose(degrees(torch.tensor(W, dtype=torch.float32)), expected, rtol=1e-6)
    np.testing.assert_allclose(degrees(torch.tensor(W).to_sparse()), expected)
    assert degrees(sp.csr_matrix(W)).dtype == np.float64
    with pytest.raises(CutbenchError, match="square"):
        degrees(np.ones((3, 4)))


# -- per-batch builder -----------------------------------------------------------------------------------
@pytest.mark.parametrize("affinity", [
    Affinity(sigma=1.3, n_neighbors=None),
    Affinity(sigma="median", n_neighbors=None, self_loops=True),
    Affinity(sigma=1.3, n_neighbors=5),
    Affinity(sigma="median", n_neighbors=5, symmetrize="max", self_loops=True),
    Affinity(sigma=3.0, n_neighbors=None, normalize_rows=True, self_loops=True),
    Affinity(sigma="median", n_neighbors=3, normalize_rows=True),
], ids=repr)
def test_batch_affinity_matches_numpy_heat_kernel(points, affinity):
    W = batch_affinity(torch.tensor(points), affinity)
    assert W.shape == (60, 60) and W.dtype == torch.float64
    np.testing.assert_allclose(W.numpy(), reference_affinity(points, affinity), rtol=1e-10, atol=1e-13)
    assert torch.equal(W, W.T)


def test_batch_affinity_self_loops_set_the_diagonal(points):
    X = torch.tensor(points)
    for n_neighbors in (None, 5):
        with_loops = batch_affinity(X, Affinity(n_neighbors=n_neighbors, self_loops=True))
        without = batch_affinity(X, Affinity(n_neighbors=n_neighbors, self_loops=False))
        assert (with_loops.diagonal() == 1).all() and (without.diagonal() == 0).all()
        off = ~torch.eye(60, dtype=torch.bool)
        assert torch.equal(with_loops[off], without[off])


def test_batch_affinity_keeps_float32_and_returns_a_constant(points):
    X = torch.tensor(points, dtype=torch.float32, requires_grad=True)
    W = batch_affinity(X, Affinity(n_neighbors=5))
    assert W.dtype == torch.float32 and not W.requires_grad
    np.testing.assert_allclose(W.numpy(), reference_affinity(points, Affinity(n_neighbors=5)), atol=2e-6)


def test_batch_affinity_rejects_bad_input(points):
    with pytest.raises(CutbenchError, match=r"n_neighbors=60 must be smaller than the number of points \(60\)"):
        batch_affinity(torch.tensor(points), Affinity(n_neighbors=60))
    with pytest.raises(CutbenchError, match="2-D batch of at least 2 points"):
        batch_affinity(torch.ones(5), Affinity())
    with pytest.raises(CutbenchError, match="unknown affinity preset"):
        batch_affinity(torch.tensor(points), "dense")
    with pytest.raises(CutbenchError, match="median distance .* is 0"):
        batch_affinity(torch.zeros(6, 2), Affinity(n_neighbors=2))


# -- kNN search and ties ---------------------------------------------------------------------------------
def test_knn_search_keeps_exactly_s_nearest_without_self(points):
    s = 6
    indices, sq = knn_search(points, s, device="cpu", chunk_size=17)
    assert indices.shape == (60, s) and sq.shape == (60, s) and indices.dtype == np.int64
    assert not (indices == np.arange(60)[:, None]).any()
    assert all(len(set(row)) == s for row in indices)
    full = explicit_sq_dists(points)
    np.fill_diagonal(full, np.inf)
    expected = np.sort(np.argsort(full, axis=1, kind="stable")[:, :s], axis=1)
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(sq, np.take_along_axis(full, indices, axis=1), rtol=1e-10)


def test_ties_go_to_the_lowest_index_everywhere():
    # Equally spaced points: every inner point has two neighbours at distance 1.
    X = np.arange(10, dtype=np.float64)[:, None]
    indices, _ = knn_search(X, 1, device="cpu")
    np.testing.assert_array_equal(indices.ravel(), [1, 0, 1, 2, 3, 4, 5, 6, 7, 8])
    for chunk_size in (1, 3, None):
        again, _ = knn_search(X, 3, device="cpu", chunk_size=chunk_size)
        np.testing.assert_array_equal(again[4], [2, 3, 5])
        np.testing.assert_array_equal(again[9], [6, 7, 8])
    affinity = Affinity(sigma=1.0, n_neighbors=1, symmetrize="max")
    W_batch = batch_affinity(torch.tensor(X), affinity).numpy()
    np.testing.assert_allclose(W_batch, reference_affinity(X, affinity))
    np.testing.assert_allclose(knn_graph(X, affinity, device="cpu", chunk_size=4).toarray(), W_batch)


def test_duplicate_points_tie_deterministically():
    X = np.repeat([[0.0, 0.0], [5.0, 1.0], [0.0, 0.5]], 4, axis=0)[np.random.default_rng(4).permutation(12)]
    affinity = Affinity(sigma=1.0, n_neighbors=2)
    expected = reference_affinity(X, affinity)
    np.testing.assert_allclose(batch_affinity(torch.tensor(X), affinity).numpy(), expected)
    for chunk_size in (1, 5, None):
        np.testing.assert_allclose(knn_graph(X, affinity, device="cpu", chunk_size=chunk_size).toarray(), expected)


# -- full-graph builder ----------------------------------------------------------------------------------
FULL_GRAPH_CASES = [
    Affinity(sigma=1.3, n_neighbors=None),
    Affinity(sigma="median", n_neighbors=None, self_loops=True),
    Affinity(sigma=1.3, n_neighbors=5, symmetrize="max"),
    Affinity(sigma="median", n_neighbors=5),
    Affinity(sigma="median", n_neighbors=5, self_loops=True, normalize_rows=True),
    AFFINITY_PRESETS["neuncut"],
]


@pytest.mark.parametrize("affinity", FULL_GRAPH_CASES, ids=repr)
def test_knn_graph_agrees_with_numpy_and_with_batch_builder(points, affinity):
    W = knn_graph(points, affinity, device="cpu", chunk_size=16)
    assert isinstance(W, sp.csr_matrix) and W.dtype == np.float64 and W.shape == (60, 60)
    dense = W.toarray()
    np.testing.assert_allclose(dense, reference_affinity(points, affinity), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(dense, batch_affinity(torch.tensor(points), affinity).numpy(),
                               rtol=1e-10, atol=1e-13)
    assert (W != W.T).nnz == 0


@pytest.mark.parametrize("affinity", [Affinity(n_neighbors=7), Affinity(n_neighbors=None, sigma="median")], ids=repr)
def test_chunk_size_does_not_change_the_graph(affinity):
    X = np.random.default_rng(1).normal(size=(120, 3))
    graphs = [knn_graph(X, affinity, device="cpu", chunk_size=c) for c in (2, 7, 50, 120, None)]
    for W in graphs[1:]:
        np.testing.assert_array_equal(W.indptr, graphs[0].indptr)
        np.testing.assert_array_equal(W.indices, graphs[0].indices)
        np.testing.assert_allclose(W.data, graphs[0].data, rtol=1e-12)


def test_knn_graph_structure_before_and_after_symmetrisation(points):
    s = 5
    indices, _ = knn_search(points, s, device="cpu")
    for rule in ("mean", "max"):
        W = knn_graph(points, Affinity(sigma=2.0, n_neighbors=s, symmetrize=rule), device="cpu").toarray()
        kept = np.zeros_like(W, dtype=bool)
        kept[np.arange(60)[:, None], indices] = True
        # Nonzeros are exactly the union of the kNN relation and its transpose.
        np.testing.assert_array_equal(W > 0, kept | kept.T)
        one_way = kept & ~kept.T
        full = np.exp(-explicit_sq_dists(points) / 8.0)
        factor = 0.5 if rule == "mean" else 1.0
        np.testing.assert_allclose(W[one_way], factor * full[one_way], rtol=1e-10)


def test_knn_graph_accepts_torch_input_and_float32(points):
    affinity = Affinity(n_neighbors=5)
    from_numpy = knn_graph(points, affinity, device="cpu")
    from_torch = knn_graph(torch.tensor(points), affinity, device="cpu")
    assert (from_numpy != from_torch).nnz == 0
    from_float32 = knn_graph(points.astype(np.float32), affinity, device="cpu")
    assert from_float32.dtype == np.float64
    np.testing.assert_allclose(from_float32.toarray(), from_numpy.toarray(), atol=1e-5)


def test_knn_graph_moderate_size_matches_sklearn_neighbours():
    X = np.random.default_rng(2).normal(size=(3000, 2))
    s = 10
    W = knn_graph(X, Affinity(n_neighbors=s), device="cpu")
    _, neighbours = NearestNeighbors(n_neighbors=s + 1).fit(X).kneighbors(X)
    ours, _ = knn_search(X, s, device="cpu")
    np.testing.assert_array_equal(ours, np.sort(neighbours[:, 1:], axis=1))
    assert (W != W.T).nnz == 0 and W.diagonal().max() == 0
    assert (np.diff(W.indptr) >= s).all() and (degrees(W) > 0).all()


def test_knn_graph_rejects_bad_input(points):
    with pytest.raises(CutbenchError, match=r"n_neighbors=60 must be smaller than the number of points \(60\)"):
        knn_graph(points, Affinity(n_neighbors=60), device="cpu")
    with pytest.raises(CutbenchError, match="chunk_size must be a positive integer"):
        knn_graph(points, Affinity(), device="cpu", chunk_size=0)
    with pytest.raises(CutbenchError, match="device must be"):
        knn_graph(points, Affinity(), device="tpu")
    with pytest.raises(CutbenchError, match="NaN or inf"):
        knn_graph(np.full((5, 2), np.nan), Affinity(n_neighbors=2), device="cpu")
    with pytest.raises(CutbenchError, match=r"n=20001 exceeds the limit of 20000. Set n_neighbors"):
        knn_graph(np.zeros((DENSE_MAX_SAMPLES + 1, 1)), Affinity(n_neighbors=None, sigma=1.0), device="cpu")
    with pytest.raises(CutbenchError, match="knn_search needs an integer n_neighbors"):
        knn_search(points, None)


@pytest.mark.slow
def test_knn_graph_20k_points_matches_sklearn():
    X = np.random.default_rng(3).normal(size=(20_000, 2)).astype(np.float32)
    s = 10
    W = knn_graph(X, Affinity(n_neighbors=s), device="cpu")
    _, neighbours = NearestNeighbors(n_neighbors=s + 1).fit(X.astype(np.float64)).kneighbors(X.astype(np.float64))
    kept = sp.csr_matrix((np.ones(20_000 * s), np.sort(neighbours[:, 1:], axis=1).ravel(),
                          np.arange(0, 20_000 * s + 1, s)), shape=W.shape)
    union = kept + kept.T
    # float32 distances may swap a few near-ties; the structure must match almost everywhere.
    assert abs(((W > 0).astype(np.int8) - (union > 0).astype(np.int8))).nnz < 0.001 * union.nnz
    assert (W != W.T).nnz == 0


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("affinity", FULL_GRAPH_CASES, ids=repr)
def test_cuda_builders_match_cpu(points, affinity):
    cpu = knn_graph(points, affinity, device="cpu")
    gpu = knn_graph(points, affinity, device="cuda", chunk_size=16)
    np.testing.assert_allclose(gpu.toarray(), cpu.toarray(), rtol=1e-9, atol=1e-12)
    W_gpu = batch_affinity(torch.tensor(points, device="cuda"), affinity)
    assert W_gpu.device.type == "cuda"
    np.testing.assert_allclose(W_gpu.cpu().numpy(), cpu.toarray(), rtol=1e-9, atol=1e-12)
