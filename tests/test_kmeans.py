"""KMeans baseline: separates blobs, predicts nearest centres, accepts torch input."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError

from cutbench import CutbenchError
from cutbench.methods.kmeans import KMeans
from cutbench.methods.registry import get_method

CENTERS = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])


@pytest.fixture(scope="module")
def blobs():
    return make_blobs(400, centers=CENTERS, cluster_std=0.5, random_state=0)


def test_separates_blobs_with_consistent_state(blobs):
    X, y = blobs
    model = KMeans(4, random_state=0).fit(X)
    assert model.labels_.dtype == np.int64
    # Each cluster is exactly one blob.
    for label in range(4):
        assert len(np.unique(y[model.labels_ == label])) == 1
    assert model.cluster_centers_.shape == (4, 2)
    assert model.n_features_in_ == 2
    squared_distances = ((X - model.cluster_centers_[model.labels_]) ** 2).sum()
    assert model.inertia_ == pytest.approx(squared_distances, rel=1e-6)


def test_predict_assigns_the_nearest_centre(blobs):
    X, _ = blobs
    model = KMeans(4, random_state=0).fit(X)
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    new_points = np.random.default_rng(1).uniform(-2.0, 12.0, size=(50, 2))
    distances = np.linalg.norm(new_points[:, None, :] - model.cluster_centers_[None], axis=2)
    predicted = model.predict(new_points)
    assert predicted.dtype == np.int64
    np.testing.assert_array_equal(predicted, distances.argmin(axis=1))


def test_torch_input_matches_numpy_input(blobs):
    X, _ = blobs
    from_numpy = KMeans(4, random_state=3).fit(X)
    from_torch = KMeans(4, random_state=3).fit(torch.from_numpy(X))
    np.testing.assert_array_equal(from_torch.labels_, from_numpy.labels_)
    np.testing.assert_array_equal(from_torch.predict(torch.from_numpy(X[:10])), from_numpy.labels_[:10])


def test_seeded_fits_are_reproducible(blobs):
    X, _ = blobs
    model = KMeans(4, n_init=1, random_state=11)
    np.testing.assert_array_equal(clone(model).fit(X).labels_, clone(model).fit(X).labels_)


@pytest.mark.parametrize(("params", "message"), [
    ({"n_init": 0}, r"KMeans: n_init must be an integer >= 1; got 0\."),
    ({"max_iter": 2.5}, r"KMeans: max_iter must be an integer >= 1; got 2\.5\."),
    ({"device": "tpu"}, "device must be"),
    ({"n_clusters": 0}, r"n_clusters must be an integer >= 1; got 0\."),
])
def test_invalid_parameters_are_errors(blobs, params, message):
    X, _ = blobs
    with pytest.raises(CutbenchError, match=message):
        KMeans(**{"n_clusters": 4, **params}).fit(X)


def test_predict_checks_fit_and_feature_count(blobs):
    X, _ = blobs
    with pytest.raises(NotFittedError):
        KMeans(4).predict(X)
    model = KMeans(4, random_state=0).fit(X)
    with pytest.raises(ValueError, match="X has 3 features, but KMeans is expecting 2 features as input"):
        model.predict(np.zeros((5, 3)))


def test_is_registered_as_out_of_sample_cpu_method():
    assert get_method("kmeans") is KMeans
    assert KMeans.capabilities.out_of_sample
    assert not KMeans.capabilities.gpu
