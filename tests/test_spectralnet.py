"""SpectralNet: orthonormalisation layer, loss and kernels against independent formulas; training; validation."""

import numpy as np
import pytest
import torch
from reference import hungarian_accuracy
from sklearn.base import clone
from sklearn.datasets import make_blobs, make_circles, make_moons
from sklearn.preprocessing import StandardScaler

from cutbench import CutbenchError
from cutbench.methods.registry import make_method
from cutbench.methods.spectralnet import (
    SPECTRALNET_PRESETS,
    SpectralNet,
    global_median_sigma,
    local_median_affinity,
    orthonorm_weights,
    spectral_loss,
)

# Small network and budget that separate the 2-D shapes for several seeds in about a second (rings: ~4 s).
FAST = dict(hidden_dims=(64, 64), activation="leaky_relu", optimizer="adam", lr=1e-2, batch_size=128,
            epochs=30, steps_per_epoch=10, affinity=dict(n_neighbors=8, self_loops=True), device="cpu")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These networks are tiny: on a busy 2-core machine, intra-op threads cost far more than they save."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)



def shape(name, n, seed):
    if name == "moons":
        X, y = make_moons(n, noise=0.05, random_state=seed)
    elif name == "rings":
        X, y = make_circles(n, noise=0.03, factor=0.5, random_state=seed)
    else:
        X, y = make_blobs(n, centers=[[0, 0], [6, 0], [0, 6]], cluster_std=0.5, random_state=seed)
    return X, y


# ---- building blocks -----------------------------------------------------------------------
@pytest.mark.parametrize("method", ["qr", "cholesky"])
def test_orthonormalised_output_has_gram_m_identity(method):
    rng = np.random.default_rng(0)
    Y_tilde = torch.tanh(torch.tensor(rng.normal(size=(50, 4)), dtype=torch.float32))
    weights, deficient = orthonorm_weights(Y_tilde, method)
    Y = Y_tilde.double() @ weights
    assert not bool(deficient)
    assert weights.dtype == torch.float64
    np.testing.assert_allclose((Y.T @ Y).numpy(), 50 * np.eye(4), atol=1e-6)
    # A = sqrt(m) T^-1 with T upper triangular and a positive diagonal.
    T = np.linalg.inv(weights.numpy()) * np.sqrt(50)
    np.testing.assert_allclose(np.tril(T, -1), 0, atol=1e-10)
    assert (np.diag(T) > 0).all()


def test_qr_and_cholesky_give_the_same_factor():
    Y_tilde = torch.randn(64, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    qr, _ = orthonorm_weights(Y_tilde, "qr")
    cholesky, _ = orthonorm_weights(Y_tilde, "cholesky")
    np.testing.assert_allclose(qr.numpy(), cholesky.numpy(), rtol=1e-6)


def test_orthonorm_gradient_flows_only_when_asked():
    Y_tilde = torch.randn(20, 2, dtype=torch.float64, requires_grad=True)
    weights, _ = orthonorm_weights(Y_tilde)
    weights.sum().backward()
    assert Y_tilde.grad is not None and bool(torch.isfinite(Y_tilde.grad).all())
    with torch.no_grad():
        assert not orthonorm_weights(Y_tilde)[0].requires_grad


@pytest.mark.parametrize("method", ["qr", "cholesky"])
def test_rank_deficient_output_is_flagged(method):
    column = torch.rand(30, 1)
    weights, deficient = orthonorm_weights(torch.cat([column, 2 * column, torch.rand(30, 1)], dim=1), method)
    assert bool(deficient)
    assert bool(torch.isfinite(weights).all())


def test_spectral_loss_matches_pairwise_sum():
    rng = np.random.default_rng(2)
    W = rng.random((12, 12))
    W = (W + W.T) / 2
    Y = rng.normal(size=(12, 3))
    expected = sum(W[i, j] * np.sum((Y[i] - Y[j]) ** 2) for i in range(12) for j in range(12)) / (2 * 12)
    assert float(spectral_loss(torch.tensor(Y), torch.tensor(W))) == pytest.approx(expected, rel=1e-12)


def test_local_median_affinity_matches_reference_formula():
    rng = np.random.default_rng(3)
    Z = rng.normal(size=(25, 3))
    s = 4
    dist = np.sqrt(((Z[:, None, :] - Z[None, :, :]) ** 2).sum(-1))
    order = np.argsort(dist + np.diag(np.full(25, np.inf)), axis=1)[:, :s]
    sigma = np.median(np.concatenate([np.zeros((25, 1)), np.take_along_axis(dist, order, 1)], axis=1), axis=1)
    W = np.zeros((25, 25))
    for i in range(25):
        for j in order[i]:
            W[i, j] = np.exp(-dist[i, j] ** 2 / sigma[j] ** 2)  # sigma of the column, no factor 2
    W = (W + W.T) / 2
    np.fill_diagonal(W, 1.0)
    np.testing.assert_allclose(local_median_affinity(torch.tensor(Z), s).numpy(), W, atol=1e-12)


def test_global_median_sigma_counts_the_point_itself():
    rng = np.random.default_rng(4)
    Z = rng.normal(size=(40, 2))
    dist = np.sqrt(((Z[:, None, :] - Z[None, :, :]) ** 2).sum(-1))
    expected = np.median(np.sort(dist, axis=1)[:, 2])  # scale_neighbor=3: the second other point
    sigma = global_median_sigma(torch.tensor(Z), 3, sample_size=100, generator=torch.Generator().manual_seed(0))
    assert sigma == pytest.approx(expected, rel=1e-10)


# ---- training ------------------------------------------------------------------------------
@pytest.mark.parametrize("name, epochs", [("moons", 30), ("rings", 100), ("blobs", 30)])
def test_separates_shapes_and_predicts_unseen_points(name, epochs):
    scaler = StandardScaler()
    X, y = shape(name, 400, seed=0)
    X = scaler.fit_transform(X).astype(np.float32)
    model = SpectralNet(len(np.unique(y)), random_state=0, **{**FAST, "epochs": epochs}).fit(X)
    assert hungarian_accuracy(y, model.labels_) >= 0.95
    X_new, y_new = shape(name, 300, seed=1)
    assert hungarian_accuracy(y_new, model.predict(scaler.transform(X_new).astype(np.float32))) >= 0.95
    assert model.embedding_.shape == (400, len(np.unique(y)))
    assert len(model.history_["loss"]) == model.n_iter_ == epochs


def test_seeded_fit_is_reproducible_and_predict_uses_stored_orthonormalisation():
    X, _ = shape("moons", 200, seed=0)
    params = {**FAST, "epochs": 3}
    first = SpectralNet(2, random_state=5, **params).fit(X)
    second = clone(first).fit(X)
    np.testing.assert_array_equal(first.labels_, second.labels_)
    np.testing.assert_array_equal(first.embedding_, second.embedding_)
    np.testing.assert_array_equal(first.predict(X), first.labels_)
    np.testing.assert_allclose(first.transform(X), first.embedding_)


@pytest.mark.parametrize("options", [dict(orthonorm="cholesky"), dict(orth_grad="detached"),
                                     dict(scale="local_median"), dict(scale="affinity"), dict(optimizer="rmsprop")])
def test_reference_variants_train(options):
    X, _ = shape("blobs", 200, seed=0)
    model = SpectralNet(3, random_state=0, **{**FAST, "epochs": 2, **options}).fit(X)
    assert np.isfinite(model.history_["loss"]).all()
    assert (model.sigma_ is not None) == (model.scale == "global_median")


def test_rank_deficient_batch_gives_a_clear_error():
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0]], dtype=np.float32), 25, axis=0)  # two distinct rows: rank 2 < 3
    model = SpectralNet(3, scale="affinity", random_state=0,
                        **{**FAST, "batch_size": 20, "epochs": 1, "affinity": dict(sigma=1.0, n_neighbors=3)})
    with pytest.raises(CutbenchError, match="rank < n_clusters=3.*larger batch_size"):
        model.fit(X)


# ---- validation ----------------------------------------------------------------------------
@pytest.mark.parametrize("params, message", [
    (dict(batch_size=2), "batch_size=2 is smaller than n_clusters=3"),
    (dict(batch_size=16, affinity=dict(n_neighbors=20)), "use batch_size > 20"),
    (dict(affinity=dict(sigma=2.0)), "scale='global_median' computes sigma itself"),
    (dict(scale="local_median", affinity=dict(n_neighbors=None)), "needs a kNN affinity"),
    (dict(scale="global_median", scale_neighbor=500), "scale_neighbor=500 must be in"),
    (dict(scale="nope"), "scale must be one of"),
    (dict(orthonorm="svd"), "orthonorm must be one of"),
    (dict(orth_grad="maybe"), "orth_grad must be one of"),
    (dict(hidden_dims=(0,)), "hidden_dims must be"),
    (dict(lr=0.0), "lr must be"),
    (dict(steps_per_epoch=0), "steps_per_epoch must be"),
])
def test_bad_parameters_name_the_constraint(params, message):
    X, _ = shape("blobs", 60, seed=0)
    with pytest.raises(CutbenchError, match=message):
        SpectralNet(3, random_state=0, **{**FAST, "batch_size": 60, **params}).fit(X)


def test_fewer_points_than_neighbours_is_an_error():
    X, _ = shape("blobs", 6, seed=0)
    with pytest.raises(CutbenchError, match="n_neighbors=8.*batch_size > 8"):
        SpectralNet(3, random_state=0, **{**FAST, "batch_size": 6}).fit(X)


def test_predict_checks_features():
    X, _ = shape("blobs", 60, seed=0)
    model = SpectralNet(3, random_state=0, **{**FAST, "batch_size": 60, "epochs": 1}).fit(X)
    with pytest.raises(ValueError, match="X has 3 features, but SpectralNet is expecting 2 features as input"):
        model.predict(np.ones((4, 3)))


def test_registered_and_presets_are_valid_parameters():
    assert isinstance(make_method("spectralnet", n_clusters=3), SpectralNet)
    accepted = set(SpectralNet().get_params())
    for preset in SPECTRALNET_PRESETS.values():
        assert set(preset) <= accepted
        SpectralNet(**preset)._validate_params()
    assert SpectralNet.capabilities.out_of_sample and SpectralNet.capabilities.gpu


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_separates_moons_on_cuda():
    X, y = shape("moons", 400, seed=0)
    X = StandardScaler().fit_transform(X).astype(np.float32)
    model = SpectralNet(2, random_state=0, **{**FAST, "device": "cuda"}).fit(torch.from_numpy(X).cuda())
    assert hungarian_accuracy(y, model.labels_) >= 0.95
    assert model.orthonorm_weights_.device.type == "cuda"
    np.testing.assert_array_equal(model.predict(X), model.labels_)


def test_batch_median_affinity_is_the_pytorch_codes_global_rule():
    """A transcription of shaham-lab/SpectralNet's _get_affinity_matrix with is_local_scale=False:
    get_nearest_neighbors(X, k=n_nbg + 1), compute_scale(Dis, k=scale_k, is_local=False) (the median of the
    scale_k-th column), get_gaussian_kernel (exp(-D² / scale²) masked to the neighbours, then (W + Wᵀ) / 2)."""
    from sklearn.neighbors import NearestNeighbors

    from cutbench.graph import batch_median_affinity

    rng = np.random.default_rng(3)
    Z = rng.normal(size=(60, 4))
    n_nbg, scale_k = 8, 2
    Dis, Ids = NearestNeighbors(n_neighbors=n_nbg + 1).fit(Z).kneighbors(Z)
    scale = max(np.median(Dis[:, scale_k - 1]), 1e-7)
    D = np.sqrt(((Z[:, None, :] - Z[None, :, :]) ** 2).sum(-1))
    W = np.exp(-D ** 2 / scale ** 2)
    mask = np.zeros_like(W)
    for i, row in enumerate(Ids):
        mask[i, row] = 1
    W = (W * mask + (W * mask).T) / 2
    ours = batch_median_affinity(torch.tensor(Z), n_nbg, scale_k).numpy()
    np.testing.assert_allclose(ours, W, atol=1e-12)


def test_the_hold_out_lowers_the_learning_rate_on_a_validation_plateau():
    """validation_fraction=0.1 (both released codes): the learning rate follows torch's ReduceLROnPlateau on the
    held-out loss, not on the training loss."""
    X, _ = make_blobs(300, centers=3, cluster_std=0.6, random_state=0)
    X = StandardScaler().fit_transform(X).astype(np.float32)
    # a learning rate so small that the held-out loss stalls at once: the schedule must drop it
    model = SpectralNet(3, affinity={"n_neighbors": 5}, hidden_dims=(16,), batch_size=64, epochs=8,
                        steps_per_epoch=3, optimizer="adam", lr=1e-5, patience=1, validation_fraction=0.1,
                        n_init=1, device="cpu", random_state=0).fit(X)
    history = model.history_
    assert len(history["val_loss"]) == len(history["loss"]) == len(history["lr"])
    # torch's scheduler replayed on the recorded held-out losses gives the recorded learning rates
    replay = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-5)
    schedule = torch.optim.lr_scheduler.ReduceLROnPlateau(replay, factor=0.1, patience=1)
    expected = []
    for value in history["val_loss"]:
        expected.append(replay.param_groups[0]["lr"])
        schedule.step(value)
    np.testing.assert_allclose(history["lr"], expected)
    assert min(history["lr"]) < 1e-5  # the plateau was reached: the rate dropped at least once
    no_hold_out = clone(model).set_params(validation_fraction=0.0).fit(X)
    assert "val_loss" not in no_hold_out.history_


def test_a_hold_out_too_small_for_the_affinity_is_refused():
    X, _ = make_blobs(40, centers=2, random_state=0)
    with pytest.raises(CutbenchError, match="n_neighbors=10 neighbours per point, but a batch has only batch_size=4"):
        SpectralNet(2, affinity={"n_neighbors": 10}, hidden_dims=(8,), batch_size=20, epochs=1, steps_per_epoch=1,
                    validation_fraction=0.1, device="cpu", random_state=0).fit(X)
