"""k-means on the raw features: the trivial baseline every spectral method should beat."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster import KMeans as SklearnKMeans
from sklearn.metrics import pairwise_distances_argmin

from cutbench._validation import seed_generators
from cutbench.methods.base import Capabilities, ClusteringMethod
from cutbench.params import Interval


def _to_host_array(X):
    """Features as a numpy array on the host (torch tensors are detached and copied off the device)."""
    if isinstance(X, torch.Tensor):
        return X.detach().cpu().numpy()
    return X


class KMeans(ClusteringMethod):
    """Lloyd k-means with k-means++ seeding (a thin wrapper of :class:`sklearn.cluster.KMeans`).

    Parameters
    ----------
    n_clusters : int, default=2
        Number of clusters k (1 <= k <= n_samples).
    n_init : int, default=10
        Number of k-means++ restarts; the run with the lowest inertia is kept.
    max_iter : int, default=300
        Maximum number of Lloyd iterations per restart.
    device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"
        Accepted (and validated) for interface uniformity with the other methods. k-means always
        runs on the CPU: torch input, on any device, is copied to host memory first.
    random_state : None, int or numpy.random.Generator, default=None
        Seed of the k-means++ initialisations.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,), int64
        Cluster of each training point.
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        Centre of each cluster.
    inertia_ : float
        Sum of squared distances of the training points to their centre.
    n_iter_ : int
        Lloyd iterations of the kept restart.
    n_features_in_ : int
        Number of features seen in ``fit``.
    """

    name = "kmeans"
    capabilities = Capabilities(gpu=False, minibatch=False, out_of_sample=True, precomputed_graph=False)
    check_params = {"n_init": 1}
    _parameter_constraints = {
        **ClusteringMethod._parameter_constraints,
        "n_init": [Interval(int, 1)],
        "max_iter": [Interval(int, 1)],
    }

    def __init__(self, n_clusters=2, *, n_init=10, max_iter=300, device="auto", random_state=None):
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.max_iter = max_iter
        self.device = device
        self.random_state = random_state

    def _fit(self, X):
        X = _to_host_array(X)
        self._device()  # validates that the device exists; the computation itself stays on the CPU
        _, _, seed = seed_generators(self.random_state)
        kmeans = SklearnKMeans(n_clusters=self.n_clusters, n_init=self.n_init, max_iter=self.max_iter,
                               random_state=seed)
        kmeans.fit(X)
        self.labels_ = kmeans.labels_.astype(np.int64)
        self.cluster_centers_ = kmeans.cluster_centers_
        self.inertia_ = float(kmeans.inertia_)
        self.n_iter_ = int(kmeans.n_iter_)

    def _predict(self, X):
        """Label each row of ``X`` with its nearest (Euclidean) cluster centre."""
        X = _to_host_array(X)
        return pairwise_distances_argmin(X, self.cluster_centers_.astype(X.dtype, copy=False))
