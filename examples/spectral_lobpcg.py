"""An external method for cutbench: scikit-learn's SpectralClustering with the LOBPCG eigensolver.

It clusters the same sparse affinity graph the harness builds for Ncut (``capabilities.precomputed_graph``),
so the comparison with Ncut isolates the eigensolver and the assignment step. Name it in a study as
``examples/spectral_lobpcg.py:SpectralLOBPCG`` (or by a path relative to the study file).
"""

from typing import ClassVar

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import SpectralClustering

from cutbench.methods.base import AFFINITY, Capabilities, ClusteringMethod
from cutbench.params import Interval, Options


class SpectralLOBPCG(ClusteringMethod):
    """Spectral clustering of a kNN heat-kernel graph by scikit-learn (LOBPCG eigensolver).

    Parameters
    ----------
    n_clusters : int, default=2
        Number of clusters.
    affinity : str or dict, default="knn"
        The graph, as for every cutbench method (a preset such as "knn", or a specification dict); the
        harness builds and times it, and gives it to ``fit`` as ``graph=``.
    assign_labels : {"kmeans", "discretize", "cluster_qr"}, default="kmeans"
        How scikit-learn turns the embedding into labels.
    n_init : int, default=10
        k-means restarts (``assign_labels="kmeans"``).
    device : str, default="auto"
        Accepted for the common interface; scikit-learn runs on the CPU.
    random_state : int or None, default=None
        Seed of LOBPCG's start and of k-means.
    """

    name: ClassVar[str] = "spectral_lobpcg"
    capabilities: ClassVar[Capabilities] = Capabilities(out_of_sample=False, precomputed_graph=True, affinity_kinds=("heat_kernel",))
    _parameter_constraints: ClassVar[dict] = {
        **ClusteringMethod._parameter_constraints,
        "affinity": [AFFINITY],
        "assign_labels": [Options("kmeans", "discretize", "cluster_qr")],
        "n_init": [Interval(int, 1)],
    }
    # `cutbench check` and the estimator checks run on 10 to 100 points: a graph they can give
    check_params: ClassVar[dict] = {"affinity": {"n_neighbors": 3}, "n_init": 1}
    # found by `cutbench check`: one cause, scikit-learn's, not this wrapper's
    expected_failed_checks: ClassVar[dict] = {check: (
        "scikit-learn's LOBPCG path raises a bare ValueError when LOBPCG returns a single vector, which happens on "
        "some of the checks' 10- to 30-point graphs (sklearn/manifold/_spectral_embedding.py, "
        "`if embedding.shape[0] == 1: raise ValueError`)")
        for check in ("check_dont_overwrite_parameters", "check_methods_subset_invariance", "check_fit2d_1feature",
                      "check_fit2d_predict1d")}

    def __init__(self, n_clusters=2, *, affinity="knn", assign_labels="kmeans", n_init=10, device="auto",
                 random_state=None):
        self.n_clusters = n_clusters
        self.affinity = affinity
        self.assign_labels = assign_labels
        self.n_init = n_init
        self.device = device
        self.random_state = random_state

    def _fit(self, X, graph=None):
        if graph is None:  # called outside the harness: build the graph the harness would
            from cutbench.affinity import prepare_affinity

            graph = prepare_affinity(self.affinity, X, device="cpu", random_state=self.random_state).graph()
        W = sp.csr_matrix(graph, dtype=np.float64)
        model = SpectralClustering(self.n_clusters, affinity="precomputed", eigen_solver="lobpcg",
                                   assign_labels=self.assign_labels, n_init=self.n_init,
                                   random_state=self.random_state)
        self.labels_ = model.fit_predict(W).astype(np.int64)
