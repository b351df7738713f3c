"""The self-expressive (SENet) affinity: its coefficients against their formula, points on a union of
subspaces expressed by their own subspace, the graph recipes, and every method using it."""

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

from cutbench import CutbenchError
from cutbench.affinity import AffinityCache, affinity_kind, prepare_affinity, resolve_affinity
from cutbench.methods import Ncut
from cutbench.metrics import accuracy
from cutbench.senet import SENET_PRESETS, SelfExpressiveAffinity

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = SelfExpressiveAffinity(hidden_dims=(128,), embedding_dim=128, steps=500, batch_size=50)


@pytest.fixture(scope="module")
def subspaces():
    """4 random 3-dimensional subspaces of R^30, 80 points each."""
    rng = np.random.default_rng(0)
    X = [rng.normal(size=(80, 3)) @ np.linalg.qr(rng.normal(size=(30, 3)))[0].T for _ in range(4)]
    return np.vstack(X).astype(np.float32), np.repeat(np.arange(4), 80)


@pytest.fixture(scope="module")
def trained(subspaces):
    X, _ = subspaces
    return prepare_affinity(SMALL, X, device="cpu", random_state=0)


@pytest.mark.filterwarnings("ignore:the graph has .* connected components")  # about one per subspace: the goal
def test_points_of_a_union_of_subspaces_are_expressed_by_their_own_subspace(subspaces, trained):
    X, y = subspaces
    C = trained.coefficient_matrix().toarray()
    assert np.abs(C)[y[:, None] == y[None, :]].sum() >= 0.95 * np.abs(C).sum()
    assert np.all(np.diag(C) == 0)
    labels = Ncut(4, random_state=0).fit(X, graph=trained.graph()).labels_
    assert accuracy(y, labels) >= 0.95
    batch = torch.arange(0, 320, 4)
    W = trained.batch(batch).numpy()
    yb = y[::4]
    np.testing.assert_allclose(W, W.T)
    assert np.all(np.diag(W) == 0) and W[yb[:, None] == yb[None, :]].sum() >= 0.95 * W.sum()
    assert trained.model.history["loss"][-1] < trained.model.history["loss"][0]


def test_coefficients_follow_their_formula(trained):
    model = trained.model
    rng = np.random.default_rng(1)
    A, B = rng.normal(size=(5, 30)).astype(np.float32), rng.normal(size=(7, 30)).astype(np.float32)
    with torch.no_grad():
        q = model.query(torch.from_numpy(A)).double().numpy()
        k = model.key(torch.from_numpy(B)).double().numpy()
        b = float(model.threshold)
        got = model.coefficients(torch.from_numpy(A), torch.from_numpy(B)).double().numpy()
    u = q @ k.T
    np.testing.assert_allclose(got, np.sign(u) * np.maximum(np.abs(u) - b, 0) / 128, rtol=1e-5, atol=1e-8)


def test_graph_recipes_follow_their_definition(trained):
    C = trained.coefficient_matrix()
    assert (np.diff(C.indptr) <= 319).all()
    np.testing.assert_allclose(np.sqrt(np.asarray(C.multiply(C).sum(axis=1)).ravel()), 1.0, rtol=1e-6)
    # "knn": the 3 nearest coefficient rows of each row (self excluded), 0/1, then (A + Aᵀ) / 2.
    _, neighbours = NearestNeighbors(n_neighbors=4).fit(C).kneighbors(C)
    A = np.zeros(C.shape)
    for i, row in enumerate(neighbours):
        A[i, [j for j in row if j != i][:3]] = 1.0
    np.testing.assert_allclose(trained.graph().toarray(), (A + A.T) / 2)
    symmetric = prepare_affinity(SelfExpressiveAffinity(**{**SMALL.__dict__, "graph": "symmetric"}),
                                 trained.points, device="cpu", random_state=0)
    dense = symmetric.coefficient_matrix().toarray()
    np.testing.assert_allclose(symmetric.graph().toarray(), (np.abs(dense) + np.abs(dense).T) / 2)
    top = SelfExpressiveAffinity(**{**SMALL.__dict__, "batch_top_s": 3})
    W = prepare_affinity(top, trained.points, device="cpu", random_state=0).batch(torch.arange(40)).numpy()
    assert ((W > 0).sum(axis=1) <= 6).all()  # at most 3 of its own and 3 reverse entries per row


def test_spec_resolution_presets_and_bad_values():
    assert resolve_affinity("senet") == SENET_PRESETS["senet"] == SelfExpressiveAffinity()
    assert resolve_affinity("senet_cpu").steps == 2000 and resolve_affinity("senet_cpu").hidden_dims == (256, 256)
    assert resolve_affinity({"kind": "self_expressive", "preset": "senet_cpu", "steps": 10}).steps == 10
    assert resolve_affinity(SMALL.to_dict()) == SMALL and affinity_kind("senet") == "self_expressive"
    assert SENET_PRESETS["senet"].gamma == 200.0 and SENET_PRESETS["senet"].grad_clip == 0.001
    with pytest.raises(CutbenchError, match="unknown self-expressive preset 'big'"):
        resolve_affinity({"kind": "self_expressive", "preset": "big"})
    with pytest.raises(CutbenchError, match=r"SelfExpressiveAffinity: l1_ratio must be a number in \[0, 1\]"):
        SelfExpressiveAffinity(l1_ratio=1.5)


def test_training_is_cached_and_kept_apart_from_the_graph_recipe(subspaces):
    X, _ = subspaces
    cache = AffinityCache()
    tiny = SelfExpressiveAffinity(hidden_dims=(16,), embedding_dim=16, steps=5, batch_size=40)
    with cache.active():
        prepare_affinity(tiny, X, device="cpu", random_state=0)
        prepare_affinity(SelfExpressiveAffinity(**{**tiny.__dict__, "graph": "symmetric", "top_k": 10}), X,
                         device="cpu", random_state=0)
        assert len(cache) == 1
        prepare_affinity(SelfExpressiveAffinity(**{**tiny.__dict__, "gamma": 50.0}), X, device="cpu", random_state=0)
        assert len(cache) == 2


# ---- as released: a transcription of zhangsz1998/Self-Expressive-Network (main.py) on fixed inputs --------------
def released_knn_graph(C, non_zeros=1000, n_neighbors=3):
    """main.py's get_sparse_rep (diagonal zeroed, the non_zeros largest |c| per row kept with their signs),
    evaluate's sklearn normalize(...).astype(float32) and get_knn_Aff (symmetric mode), on a dense C."""
    from scipy import sparse
    from sklearn.neighbors import kneighbors_graph
    from sklearn.preprocessing import normalize

    C = C.copy()
    N = C.shape[0]
    non_zeros = min(N, non_zeros)
    np.fill_diagonal(C, 0.0)
    index = np.argsort(-np.abs(C), axis=1, kind="stable")[:, :non_zeros]
    values = np.take_along_axis(C, index, axis=1)
    C_sparse = sparse.csr_matrix((values.ravel(), index.ravel(), [non_zeros * i for i in range(N + 1)]), shape=(N, N))
    C_knn = kneighbors_graph(normalize(C_sparse).astype(np.float32), n_neighbors, mode="connectivity",
                             include_self=False)
    return 0.5 * (C_knn + C_knn.T)


def released_loss(model, X, batch, gamma, lmbd, block_size):
    """main.py's training step: coefficients of the batch against every block, the diagonal's contribution
    subtracted from the reconstruction and the regulariser, then (γ/2 rec + reg) / batch_size."""
    def regularizer(c):
        return lmbd * torch.abs(c).sum() + (1.0 - lmbd) / 2.0 * torch.pow(c, 2).sum()

    data, rows = X, X[batch]
    q_batch, k_batch = model.query(rows), model.key(rows)
    rec_batch, reg = torch.zeros_like(rows), torch.zeros(1)
    for j in range(round(len(data) // block_size)):
        block = data[j * block_size:(j + 1) * block_size]
        u = q_batch.mm(model.key(block).t())
        c = model.shrink * torch.sign(u) * torch.relu(torch.abs(u) - model.threshold)
        rec_batch = rec_batch + c.mm(block)
        reg = reg + regularizer(c)
    u = (q_batch * k_batch).sum(dim=1, keepdim=True)
    diag_c = torch.sign(u) * torch.relu(torch.abs(u) - model.threshold) * model.shrink
    rec_batch = rec_batch - diag_c * rows
    reg = reg - regularizer(diag_c)
    rec_loss = torch.sum(torch.pow(rows - rec_batch, 2))
    return ((0.5 * gamma * rec_loss + reg) / len(batch)).squeeze()


def test_the_preset_has_the_released_architecture():
    from cutbench.training import seeded_mlp

    preset = SENET_PRESETS["senet"]
    network = seeded_mlp([784, *preset.hidden_dims, preset.embedding_dim], activation="relu",
                         output_activation="tanh", init="neuncut", generator=torch.Generator().manual_seed(0))
    linears = [layer for layer in network if isinstance(layer, torch.nn.Linear)]
    assert [layer.out_features for layer in linears] == [1024, 1024, 1024, 1024]  # hid_dims [1024]*3 + out_dims
    assert sum(p.numel() for p in network.parameters()) == 3_952_640
    assert isinstance(network[-1], torch.nn.Tanh) and preset.coefficients == "signed"


def test_the_graph_is_the_released_codes_on_the_signed_coefficients(subspaces, trained):
    model = trained.model
    inputs = trained._inputs
    with torch.no_grad():
        C = model.coefficients(inputs, inputs).double().numpy()
    ours = trained.graph()
    assert (ours != released_knn_graph(C)).nnz == 0
    absolute = prepare_affinity(SelfExpressiveAffinity(**{**SMALL.__dict__, "coefficients": "absolute"}),
                                trained.points, device="cpu", random_state=0)
    assert (absolute.graph() != released_knn_graph(np.abs(C))).nnz == 0  # the variant: the reference given |C|


def test_the_loss_and_the_step_rule_are_the_released_codes(subspaces, trained):
    from cutbench.senet import self_expression_loss

    X = trained._inputs
    batch = torch.arange(7, 57)
    with torch.no_grad():
        ours = self_expression_loss(trained.model, X, batch, gamma=200.0, l1_ratio=0.9, key_block=80)[0]
        theirs = released_loss(trained.model, X, batch, gamma=200.0, lmbd=0.9, block_size=80)
    assert float(ours) == pytest.approx(float(theirs), rel=1e-5)
    # whole epochs of n // batch_size = 320 // 50 = 6 steps, as many as fit in 500 steps: 83 epochs, 498 steps
    assert len(trained.model.history["loss"]) == 500 // (320 // 50)
