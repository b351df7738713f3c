"""NeuNcut / NeuRcut: losses against independent float64 formulas, training, prediction, validation."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_blobs, make_circles, make_moons

from cutbench import CutbenchError, CutbenchWarning
from cutbench.graph import Affinity, knn_graph
from cutbench.methods.neuncut import NeuNcut, NeuRcut, ncut_loss, rcut_loss
from reference import hungarian_accuracy

LOSSES = {"ncut": ncut_loss, "rcut": rcut_loss}
ORTH_NORMS = ["fro_over_k", "fro_sq"]
KNN = Affinity(sigma="median", n_neighbors=10)
FAST_FIT = dict(affinity=KNN, gamma=80.0, lr=5e-3, batch_size=500, epochs=30, device="cpu")



def random_graph(m, rng):
    W = rng.random((m, m))
    return np.triu(W, 1) + np.triu(W, 1).T


def random_memberships(m, k, rng):
    logits = rng.normal(scale=2.0, size=(m, k))
    P = np.exp(logits - logits.max(axis=1, keepdims=True))
    return P / P.sum(axis=1, keepdims=True)


def as_t(array):
    return torch.tensor(array, dtype=torch.float64)


def size_weights(kind, W):
    """Per-point weight of the cluster-size estimate: degree (Ncut) or 1 (RatioCut)."""
    return W.sum(axis=1) if kind == "ncut" else np.ones(len(W))


# ---- losses --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("orth_norm", ORTH_NORMS)
def test_one_hot_aligned_with_blocks_gives_zero_terms(kind, orth_norm):
    rng = np.random.default_rng(0)
    sizes = [5, 8, 3]
    W = np.zeros((16, 16))
    start = 0
    for size in sizes:
        W[start:start + size, start:start + size] = random_graph(size, rng) + 0.1
        start += size
    labels = np.repeat(np.arange(3), sizes)
    P = np.eye(3)[labels]
    _, trace, orth = LOSSES[kind](as_t(P), as_t(W), gamma=1.0, orth_norm=orth_norm)
    assert abs(trace.item()) < 1e-12
    assert orth.item() == pytest.approx(0.0, abs=1e-6)  # only the 1e-6 inside the sqrt remains


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("orth_norm", ORTH_NORMS)
def test_terms_match_explicit_laplacian_formulas(kind, orth_norm):
    rng = np.random.default_rng(1)
    m, k, gamma = 40, 4, 7.0
    W, P = random_graph(m, rng), random_memberships(m, k, rng)
    D = np.diag(W.sum(axis=1))
    L = D - W
    sizes = size_weights(kind, W) @ P
    H = P / np.sqrt(sizes + 1e-6)
    gram = H.T @ (D if kind == "ncut" else np.eye(m)) @ H
    assert np.all(np.diag(gram) <= 1.0)  # Theorem 1: equality only for one-hot memberships
    expected_trace = sum(P[:, l] @ L @ P[:, l] / (sizes[l] + 1e-6) for l in range(k))
    deviation = np.linalg.norm(gram - np.eye(k))
    expected_orth = deviation / k if orth_norm == "fro_over_k" else deviation**2

    loss, trace, orth = LOSSES[kind](as_t(P), as_t(W), gamma=gamma, orth_norm=orth_norm)
    assert trace.item() == pytest.approx(expected_trace, rel=1e-10)
    assert np.trace(H.T @ L @ H) == pytest.approx(expected_trace, rel=1e-10)
    assert orth.item() == pytest.approx(expected_orth, rel=1e-10)
    assert loss.item() == pytest.approx(expected_trace + gamma / 2 * expected_orth, rel=1e-10)


@pytest.mark.parametrize("kind", LOSSES)
def test_one_hot_trace_is_the_cut_value_by_counting(kind):
    rng = np.random.default_rng(2)
    m, k = 30, 3
    W = random_graph(m, rng)
    labels = rng.permutation(np.arange(m) % k)
    expected = 0.0
    for cluster in range(k):
        inside = labels == cluster
        cut = sum(W[i, j] for i in range(m) for j in range(m) if inside[i] and not inside[j])
        size = sum(W[i, j] for i in range(m) for j in range(m) if inside[i]) if kind == "ncut" else inside.sum()
        expected += cut / size
    _, trace, _ = LOSSES[kind](as_t(np.eye(k)[labels]), as_t(W), gamma=1.0)
    assert trace.item() == pytest.approx(expected, rel=1e-6)  # the 1e-6 added to each size


@pytest.mark.parametrize("kind", LOSSES)
def test_detached_volume_changes_the_gradient_not_the_value(kind):
    rng = np.random.default_rng(3)
    W = as_t(random_graph(25, rng))
    logits = torch.tensor(rng.normal(size=(25, 3)), dtype=torch.float64)
    values, gradients = [], []
    for detach in (False, True):
        leaf = logits.clone().requires_grad_(True)
        loss, _, _ = LOSSES[kind](torch.softmax(leaf, dim=1), W, gamma=10.0, detach_volume=detach)
        loss.backward()
        values.append(loss.item())
        gradients.append(leaf.grad)
    assert values[0] == pytest.approx(values[1], rel=1e-12)
    assert not torch.allclose(gradients[0], gradients[1], rtol=1e-3, atol=1e-8)


def test_neurcut_normalisation_equals_paper_loss_with_scaled_gamma():
    rng = np.random.default_rng(4)
    W = as_t(random_graph(20, rng) * 37.0)
    P = as_t(random_memberships(20, 3, rng))
    mean_degree = W.sum().item() / 20
    normalised, _, _ = NeuRcut(gamma=5.0)._batch_loss(P, W)
    paper, _, _ = rcut_loss(P, W, gamma=5.0 * mean_degree)
    assert normalised.item() * mean_degree == pytest.approx(paper.item(), rel=1e-10)
    literal, _, _ = NeuRcut(gamma=5.0, normalize_affinity=False)._batch_loss(P, W)
    assert literal.item() == pytest.approx(rcut_loss(P, W, gamma=5.0)[0].item(), rel=1e-12)


# ---- training ------------------------------------------------------------------------------
def two_shapes(shape, n, seed):
    if shape == "moons":
        return make_moons(n, noise=0.05, random_state=seed)
    return make_circles(n, noise=0.05, factor=0.5, random_state=seed)


@pytest.mark.parametrize("method", [NeuNcut, NeuRcut])
def test_separates_blobs_and_generalises(method):
    # The reference feeds unit-norm rows of 500-d features, so the network starts with small
    # pre-activations; blob coordinates span about +-10 and saturate the softmax at initialisation
    # (measured: ACC 0.5-0.72). A global isotropic rescaling restores that regime and changes no
    # distance ranking, hence neither the kNN graph nor its median bandwidth.
    X, y = make_blobs(4500, centers=4, cluster_std=0.6, random_state=0)
    X = 0.1 * (X - X.mean(axis=0)) / X.std()
    X_train, y_train, X_test, y_test = X[:1500], y[:1500], X[1500:], y[1500:]
    model = method(4, random_state=0, **FAST_FIT).fit(X_train)
    assert hungarian_accuracy(y_train, model.labels_) >= 0.95
    assert hungarian_accuracy(y_test, model.predict(X_test)) >= 0.95
    assert model.history_["orth"][-1] < model.history_["orth"][0]


def test_rcut_loss_minimum_on_double_rings_is_the_ring_partition():
    # Locates the moons/rings limitation below: the loss is not at fault. Minimised over free
    # memberships (no network), from a near-uniform start that leans along a straight line, the
    # RatioCut loss reaches the ring partition with zero cut; the network does not (it stays in a
    # soft straight cut, which for the Ncut loss is a stationary point even over free memberships).
    X, y = make_circles(400, noise=0.05, factor=0.5, random_state=0)
    W = torch.tensor(knn_graph(X, KNN, device="cpu").toarray())
    logits = (0.01 * torch.tensor(np.c_[X[:, 0], -X[:, 0]])).requires_grad_()
    optimizer = torch.optim.Adam([logits], lr=0.05)
    for _ in range(1000):
        loss, trace, _ = rcut_loss(torch.softmax(logits, dim=1), W, gamma=0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert hungarian_accuracy(y, logits.argmax(dim=1).numpy()) == 1.0
    assert trace.item() < 1e-4  # zero cut, up to the memberships not being exactly one-hot


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "Known limitation, measured: from raw 2-D coordinates the relaxed-cut training settles in a "
    "straight-line cut (ACC ~0.65-0.88 on moons, ~0.50 on rings) for every gamma (0.001-200), lr, "
    "batch size, epoch budget, input scale (0.1-10), bias initialisation, kNN or dense kernel, "
    "gamma continuation and the paper's loss form (squared norm, volumes detached or not) tried; "
    "the exact eigenvectors of the same graph (Ncut) separate both, and so does the RatioCut loss "
    "minimised over free memberships (test above). Strict: a fix makes this fail loudly."))
@pytest.mark.parametrize("method", [NeuNcut, NeuRcut])
@pytest.mark.parametrize("shape", ["moons", "rings"])
def test_separates_two_shapes_and_generalises(method, shape):
    X_train, y_train = two_shapes(shape, 1500, seed=0)
    model = method(2, random_state=0, **FAST_FIT).fit(X_train)
    assert hungarian_accuracy(y_train, model.labels_) >= 0.95


def test_fitted_state_and_prediction_api():
    X, _ = two_shapes("rings", 400, seed=0)
    model = NeuNcut(2, affinity=KNN, batch_size=100, epochs=4, random_state=0, device="cpu").fit(X)
    assert model.labels_.dtype == np.int64 and model.labels_.shape == (400,)
    assert model.n_features_in_ == 2 and model.n_iter_ == 4
    assert set(model.history_) == {"loss", "trace", "orth", "lr"}
    assert all(len(values) == 4 for values in model.history_.values())
    lrs = model.history_["lr"]
    assert lrs[0] == pytest.approx(5e-3) and all(a > b for a, b in zip(lrs, lrs[1:]))
    np.testing.assert_allclose(model.history_["loss"],
                               np.add(model.history_["trace"], 40.0 * np.array(model.history_["orth"])),
                               rtol=1e-6)  # float32 sums
    proba = model.predict_proba(X)
    assert proba.shape == (400, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    labels = model.predict(X)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, proba.argmax(axis=1))
    np.testing.assert_array_equal(labels, model.labels_)
    np.testing.assert_array_equal(model.predict(torch.tensor(X, dtype=torch.float32)), labels)
    chunked = clone(model).set_params(predict_batch_size=7).fit(X)
    np.testing.assert_array_equal(chunked.predict(X), labels)
    with pytest.raises(ValueError, match="X has 5 features, but NeuNcut is expecting 2 features as input"):
        model.predict(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="X has 5 features, but NeuNcut is expecting 2 features as input"):
        model.predict(torch.zeros(3, 5))


@pytest.mark.filterwarnings("ignore:NeuNcut used only")  # lr 1e-12 leaves the network untrained on purpose
def test_network_shape_and_initialisation():
    X, _ = two_shapes("moons", 200, seed=0)
    model = NeuNcut(3, affinity=KNN, hidden_dims=(16, 8), batch_size=50, epochs=1, lr=1e-12,
                    random_state=0, device="cpu").fit(X)
    linears = [layer for layer in model.model_ if isinstance(layer, torch.nn.Linear)]
    assert [(layer.in_features, layer.out_features) for layer in linears] == [(2, 16), (16, 8), (8, 3)]
    assert sum(isinstance(layer, torch.nn.ReLU) for layer in model.model_) == 2
    assert not any(isinstance(layer, torch.nn.Softmax) for layer in model.model_)
    # lr ~ 0: weights are still at their initial draw: kaiming bound sqrt(6 / fan_in), xavier
    # bound sqrt(6 / (fan_in + fan_out)), zero biases.
    assert linears[0].weight.abs().max() <= np.sqrt(6 / 2)
    assert linears[1].weight.abs().max() <= np.sqrt(6 / 16)
    assert linears[2].weight.abs().max() <= np.sqrt(6 / (8 + 3))
    assert all(layer.bias.abs().max() < 1e-9 for layer in linears)


def test_seeded_fit_is_reproducible_and_leaves_global_rng_alone():
    X, _ = two_shapes("moons", 300, seed=0)
    params = dict(affinity=KNN, batch_size=100, epochs=3, device="cpu")
    state = torch.random.get_rng_state()
    first = NeuRcut(2, random_state=7, **params).fit(X)
    assert torch.equal(torch.random.get_rng_state(), state)
    second = NeuRcut(2, random_state=7, **params).fit(X)
    np.testing.assert_array_equal(first.labels_, second.labels_)
    assert first.history_ == second.history_
    other = NeuRcut(2, random_state=8, **params).fit(X)
    assert other.history_["loss"] != first.history_["loss"]


def test_float64_training():
    X, _ = two_shapes("moons", 200, seed=0)
    model = NeuNcut(2, affinity=KNN, batch_size=100, epochs=2, dtype="float64", random_state=0,
                    device="cpu").fit(X)
    assert next(model.model_.parameters()).dtype == torch.float64
    assert model.predict_proba(X).dtype == np.float64


def test_collapse_is_warned_about():
    X, _ = two_shapes("moons", 300, seed=0)
    with pytest.warns(CutbenchWarning, match="collapsed"):
        NeuNcut(4, affinity=KNN, gamma=0.0, batch_size=100, epochs=20, random_state=0, device="cpu").fit(X)


# ---- validation ----------------------------------------------------------------------------
X_SMALL = np.random.default_rng(0).normal(size=(20, 3))


@pytest.mark.parametrize("method", [NeuNcut, NeuRcut])
@pytest.mark.parametrize(("X", "params", "match"), [
    (np.where(np.eye(20, 3) > 0, np.nan, X_SMALL), {}, "NaN"),
    (X_SMALL[:, 0], {}, "Expected 2D array, got 1D array instead"),
    (torch.from_numpy(X_SMALL[:, 0]), {}, "X must be 2-D"),
    (X_SMALL, {"n_clusters": 0}, "n_clusters must be an integer >= 1; got 0"),
    (X_SMALL, {"n_clusters": 21}, "exceeds the number of samples"),
    (X_SMALL, {"batch_size": 1}, "smaller than n_clusters"),
    (X_SMALL, {"orth_norm": "fro"}, "orth_norm must be one of"),
    (X_SMALL, {"gamma": -1.0}, "gamma must be"),
    (X_SMALL, {"lr": 0.0}, "lr must be"),
    (X_SMALL, {"epochs": 0}, "epochs must be"),
    (X_SMALL, {"dtype": "float16"}, "dtype must be one of"),
    (X_SMALL, {"hidden_dims": (512, 0)}, "hidden_dims"),
    (X_SMALL, {"affinity": "nope"}, "unknown affinity 'nope'; accepted names: 'knn', 'neuncut', 'cnc'"),
])
def test_bad_input_is_refused(method, X, params, match):
    model = method(**{"n_clusters": 2, "batch_size": 10, "epochs": 1, "device": "cpu", **params})
    with pytest.raises(ValueError, match=match):  # a CutbenchError, or scikit-learn's ValueError for the shape
        model.fit(X)


@pytest.mark.parametrize("method", [NeuNcut, NeuRcut])
def test_a_batch_larger_than_the_data_is_clipped_with_a_warning(method):
    with pytest.warns(CutbenchWarning, match="batch_size=21 is more than the 20 training samples: trained with "
                                             "batch_size=20"):
        model = method(n_clusters=2, batch_size=21, epochs=1, device="cpu", random_state=0).fit(X_SMALL)
    assert model.labels_.shape == (20,)


def test_constructor_only_stores_and_clones():
    model = NeuRcut(3, gamma=12.0, normalize_affinity=False, hidden_dims=(4,))
    assert clone(model).get_params() == model.get_params()
    assert NeuNcut().get_params()["affinity"] == "neuncut"
    assert (NeuNcut.name, NeuRcut.name) == ("neuncut", "neurcut")
    assert NeuNcut.capabilities.gpu and NeuNcut.capabilities.minibatch and NeuNcut.capabilities.out_of_sample


def test_predict_before_fit_is_refused():
    with pytest.raises(Exception, match="not fitted"):
        NeuNcut().predict(X_SMALL)


# ---- CUDA ----------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", [NeuNcut, NeuRcut])
def test_cuda_matches_cpu_accuracy(method):
    X_train, y_train = two_shapes("rings", 1500, seed=0)
    X_test, y_test = two_shapes("rings", 3000, seed=1)
    accuracies = {}
    for device in ("cpu", "cuda"):
        model = method(2, random_state=0, **{**FAST_FIT, "device": device}).fit(X_train)
        assert next(model.model_.parameters()).device.type == device
        accuracies[device] = hungarian_accuracy(y_test, model.predict(X_test))
    assert accuracies["cuda"] >= 0.95
    assert accuracies["cuda"] == pytest.approx(accuracies["cpu"], abs=0.01)


def test_divergence_is_an_error_naming_the_first_bad_epoch():
    class Diverging(NeuNcut):
        """NaN from the fifth batch on: 4 batches per epoch, so epoch 2 is the first bad one."""

        def _batch_loss(self, P, W):
            self.batches_seen_ = getattr(self, "batches_seen_", 0) + 1
            loss, trace_term, orth_term = super()._batch_loss(P, W)
            return (loss * float("nan") if self.batches_seen_ > 4 else loss), trace_term, orth_term

    X, _ = two_shapes("moons", 200, seed=0)
    with pytest.raises(CutbenchError, match=r"diverged at epoch 2 \(loss=nan\); lower lr"):
        Diverging(2, affinity=KNN, batch_size=50, epochs=3, hidden_dims=(8,), device="cpu", random_state=0).fit(X)


def test_predicting_many_rows_keeps_host_memory_flat():
    """Labelling 500,000 rows in chunks must not grow the process by what the chunks' activations took:
    keeping every small chunk output between them fragmented the heap (2 KB a row: 19 GB at 10 million)."""
    import subprocess
    import sys

    script = (
        "import resource, numpy as np, torch\n"
        "from cutbench.methods import NeuNcut\n"
        "X = np.random.default_rng(0).normal(size=(500_000, 2)).astype(np.float32)\n"
        "model = NeuNcut(2, epochs=1, batch_size=100, affinity='knn', device='cpu', random_state=0).fit(X[:1000])\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "labels = model.predict(X)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024, labels.shape[0])\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    grown_mb, n = map(int, out.stdout.split())
    assert n == 500_000
    assert grown_mb < 300, f"predict grew the process by {grown_mb} MB for 500,000 rows"
