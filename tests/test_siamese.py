"""Siamese affinity: loss against its formula, learned metric, the runner's cache, spec round trips, use by
every method."""

import numpy as np
import pytest
import torch
from sklearn.datasets import make_moons

from cutbench import CutbenchError
from cutbench.affinity import AffinityCache, PreparedAffinity, prepare_affinity, resolve_affinity
from cutbench.graph import Affinity, batch_affinity, knn_graph, knn_search
from cutbench.methods import CNC, Ncut, NeuNcut, SpecNet2, SpectralNet
from cutbench.siamese import SiameseAffinity, contrastive_loss

# A small network that learns the moons' neighbourhoods in about a second on one CPU thread.
SMALL = SiameseAffinity(hidden_dims=(32, 32), embedding_dim=4, epochs=20, kernel=dict(n_neighbors=8))


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These networks are tiny: on a busy 2-core machine, intra-op threads cost far more than they save."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def moons():
    X, y = make_moons(300, noise=0.05, random_state=0)
    return X.astype(np.float32), y


def test_contrastive_loss_matches_formula():
    rng = np.random.default_rng(0)
    left, right = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))
    right[0] = left[0]  # a zero distance: the loss must stay finite there
    positive = np.array([True, False] * 4)
    d = np.sqrt(np.maximum(((left - right) ** 2).sum(1), 1e-7))
    expected = np.where(positive, np.maximum(d - 0.05, 0) ** 2, np.maximum(1.0 - d, 0) ** 2).mean()
    got = contrastive_loss(torch.tensor(left), torch.tensor(right), torch.tensor(positive), pos_margin=0.05,
                           neg_margin=1.0)
    assert float(got) == pytest.approx(expected, rel=1e-12)


def test_learned_space_keeps_neighbours_close_and_classes_apart(moons):
    X, y = moons
    embedding = SMALL.fit(X, device="cpu", random_state=0)
    Z = embedding.transform(X).numpy()
    neighbors, _ = knn_search(X, 2)
    positive_distance = np.linalg.norm(Z[:, None, :] - Z[neighbors], axis=-1).mean()
    random_pairs = np.random.default_rng(0).integers(0, len(X), (len(X), 2))
    random_distance = np.linalg.norm(Z[:, None, :] - Z[random_pairs], axis=-1).mean()
    assert positive_distance < 0.2 * random_distance
    assert embedding.history["loss"][-1] < embedding.history["loss"][0]
    # The heat-kernel graph on the embedding puts (almost) no weight between the two moons.
    prepared = prepare_affinity(SMALL, X, device="cpu", random_state=0)
    W = prepared.graph().tocoo()
    assert W.data[y[W.row] != y[W.col]].sum() < 1e-3 * W.data.sum()
    np.testing.assert_allclose(prepared.batch(torch.arange(50)).numpy(),
                               batch_affinity(torch.from_numpy(Z[:50]), SMALL.kernel).numpy())


def test_an_active_cache_trains_once_per_data_spec_and_seed(moons):
    X, _ = moons
    cache = AffinityCache()
    with cache.active():
        first = prepare_affinity(SMALL, X, device="cpu", random_state=0).points
        assert len(cache) == 1
        torch.testing.assert_close(prepare_affinity(SMALL, X.copy(), device="cpu", random_state=0).points, first)
        # A spec fixing the same seed, or differing only in its kernel, shares the network.
        prepare_affinity(SiameseAffinity(**{**SMALL.__dict__, "random_state": 0}), X, device="cpu")
        other_kernel = SiameseAffinity(**{**SMALL.__dict__, "kernel": Affinity(n_neighbors=3, self_loops=True)})
        shared = prepare_affinity(other_kernel, X, device="cpu", random_state=0)
        assert len(cache) == 1 and shared.kernel == Affinity(n_neighbors=3, self_loops=True)
        prepare_affinity(SMALL, X, device="cpu", random_state=1)
        prepare_affinity(SMALL, X[:-1], device="cpu", random_state=0)
        assert len(cache) == 3
    # Without an active cache every call trains its own network; seeded training is reproducible.
    again = prepare_affinity(SMALL, X, device="cpu", random_state=0).points
    assert len(cache) == 3
    torch.testing.assert_close(again, first, rtol=0, atol=0)


def test_spec_round_trips_and_resolution():
    assert resolve_affinity(SMALL.to_dict()) == SMALL
    assert resolve_affinity("siamese") == SiameseAffinity()
    assert resolve_affinity(SMALL) is SMALL
    assert resolve_affinity("knn") == Affinity()
    assert SMALL.to_dict()["kind"] == "siamese" and SMALL.to_dict()["kernel"]["n_neighbors"] == 8
    with pytest.raises(CutbenchError, match="unknown SiameseAffinity key.*margin"):
        resolve_affinity({"kind": "siamese", "margin": 1.0})
    with pytest.raises(CutbenchError, match="unknown affinity kind 'senet'; accepted kinds: 'heat_kernel', 'siamese'"):
        resolve_affinity({"kind": "senet"})
    assert resolve_affinity({"kind": "heat_kernel", "n_neighbors": 3}) == Affinity(n_neighbors=3)


@pytest.mark.parametrize("params, message", [
    (dict(n_positives=0), "SiameseAffinity: n_positives must be an integer >= 1; got 0"),
    (dict(neg_margin=0.01), "neg_margin must be a number > pos_margin = 0.05"),
    (dict(hidden_dims=(8, -1)), "hidden_dims must be a tuple of positive integers"),
    (dict(kernel="nope"), "unknown affinity preset"),
    (dict(lr=float("nan")), "lr must be a number > 0; got nan"),
])
def test_bad_spec_names_the_constraint(params, message):
    with pytest.raises(CutbenchError, match=message):
        SiameseAffinity(**params)


def test_too_few_points_and_wrong_width_are_errors(moons):
    X, _ = moons
    with pytest.raises(CutbenchError, match="needs more than n_positives \\+ 1 = 3 points"):
        SMALL.fit(X[:3], device="cpu", random_state=0)
    embedding = SMALL.fit(X, device="cpu", random_state=0)
    with pytest.raises(CutbenchError, match="3 features but the Siamese network was trained on 2"):
        embedding.transform(np.ones((4, 3)))


def test_prepare_affinity_of_a_plain_kernel_is_the_features(moons):
    X, _ = moons
    prepared = prepare_affinity("knn", X, device="cpu")
    assert isinstance(prepared, PreparedAffinity) and prepared.kernel == prepared.spec == Affinity()
    np.testing.assert_array_equal(prepared.points.numpy(), X)
    index = torch.arange(0, 300, 3)
    np.testing.assert_array_equal(prepared.batch(index).numpy(), batch_affinity(X[::3], Affinity()).numpy())
    assert (prepared.graph() != knn_graph(X, Affinity())).nnz == 0


def test_every_method_accepts_the_siamese_affinity(moons):
    X, y = moons
    cache = AffinityCache()
    with cache.active():
        ncut = Ncut(2, affinity=SMALL.to_dict(), random_state=0, device="cpu").fit(X)
        assert ncut.affinity_ == SMALL
        assert max(np.mean(ncut.labels_ == y), np.mean(ncut.labels_ != y)) >= 0.95
        neuncut = NeuNcut(2, affinity=SMALL, random_state=0, device="cpu", batch_size=150, epochs=3).fit(X)
        assert neuncut.affinity_ == SMALL and neuncut.predict(X).shape == (300,)
        spectralnet = SpectralNet(2, affinity=SMALL, random_state=0, device="cpu", hidden_dims=(32, 32),
                                  batch_size=150, epochs=3, steps_per_epoch=5, optimizer="adam").fit(X)
        assert spectralnet.affinity_ == SMALL and spectralnet.sigma_ > 0
        cnc = CNC(2, affinity=SMALL, random_state=0, device="cpu", hidden_dims=(16,), batch_size=64, epochs=2,
                  steps_per_epoch=3).fit(X)
        assert cnc.affinity_ == SMALL
        with_loops = SiameseAffinity(**{**SMALL.__dict__, "kernel": Affinity(n_neighbors=8, self_loops=True)})
        specnet2 = SpecNet2(2, affinity=with_loops, random_state=0, device="cpu", hidden_dims=(16,), batch_size=32,
                            epochs=1, n_init=1).fit(X)
        assert specnet2.affinity_ == with_loops
    # One Siamese training served all five methods (same data, training spec, seed and device).
    assert len(cache) == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_siamese_trains_on_cuda(moons):
    X, y = moons
    prepared = prepare_affinity(SMALL, torch.from_numpy(X).cuda(), device="cuda", random_state=0)
    assert prepared.points.device.type == "cuda"
    W = prepared.graph().tocoo()
    assert W.data[y[W.row] != y[W.col]].sum() < 1e-3 * W.data.sum()
