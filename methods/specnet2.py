"""SpecNet2: an orthogonalisation-free spectral embedding learned by a network, then k-means.

Chen, Lu, Lin, Yang, "SpecNet2: Orthogonalization-free spectral embedding by neural networks"
(MSML 2022), reference code ``ziyuchen7/SpecNet2`` @ 336f9bf. A network ``Y = f(X)`` with ``n_components``
outputs minimises, on the full affinity graph ``W`` (degrees ``d = W 1``, ``vol = 1ᵀd``),

    f(Y) = −(2/n) tr(Yᵀ W̃ Y) + (1/n³) tr((Yᵀ D Y)²),      W̃ = W − d dᵀ / vol,

whose global minimisers are ``Y = U Λ^½ Q`` with ``U`` the top non-trivial generalised eigenvectors
(``W u = λ D u``, ``UᵀDU = n² I``) and ``Q`` any rotation. The deflation ``W̃`` removes the trivial
eigenvector ``1``; no orthogonalisation layer is needed. The row-block gradient is explicit,

    ∂f/∂Y_B = 4 [ −(W̃ Y)_B / n + D_B Y_B (Yᵀ D Y) / n³ ],

and is pushed through the network with the detached surrogate ``Σ Y_B ⊙ G_B`` (the gradient of the
surrogate with respect to the parameters is the exact row-block gradient of ``f``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.linalg
import torch
from sklearn.cluster import KMeans as SklearnKMeans

from cutbench import CutbenchError
from cutbench._validation import check_batch_size, seed_generators
from cutbench.affinity import DeviceGraph, check_affinity_graph, check_batch_size_for, prepare_affinity
from cutbench.methods.base import AFFINITY, EVERY_AFFINITY, Capabilities, ClusteringMethod, EmbeddingMixin
from cutbench.params import Interval, NoneValue, Options, Widths
from cutbench.training import DTYPE_CONSTRAINT, DTYPES, Trainer, forward_in_chunks, seeded_mlp

VARIANTS = ("neighbor", "local")
"""Gradient variants: exact graph rows with a cache of all outputs, or the batch subgraph only."""

LOCAL_GRAPHS = ("subgraph", "batch")
"""Batch graph of the ``local`` variant: ``W[B, B]`` of the full graph (reference) or a fresh batch kNN graph."""

PRESETS = {
    # python/para.json (one moon) and batch_run/two_moons: 1 hidden layer of 128, Adam 1e-3, batch 4, 300 epochs.
    "two_moons": dict(hidden_dims=(128,), lr=1e-3, batch_size=4, epochs=300, variant="neighbor"),
    # batch_run/MNIST (mnist_para.json): 2 hidden layers of 256, Adam 1e-4, batch 2/4/8, 150-242 epochs.
    "mnist": dict(hidden_dims=(256, 256), lr=1e-4, batch_size=4, epochs=200, variant="neighbor"),
}
"""Per-dataset constructor arguments from the reference repository (methods.md §6.3).

The reference MNIST graph (kNN with 320 neighbours, sigma the median distance to the 16th neighbour) is
not expressible as an :class:`~cutbench.graph.Affinity`; the default affinity (``"knn_self_loops"``) has
the self-loops the ``neighbor`` variant needs.
"""


# --------------------------------------------------------------------------------------------
# Objective and gradient
# --------------------------------------------------------------------------------------------
def specnet2_objective(Y, W):
    """The SpecNet2 objective ``f(Y)`` on a whole (small, dense) graph.

    Parameters
    ----------
    Y : torch.Tensor of shape (n, p)
        Embedding of all ``n`` nodes.
    W : torch.Tensor of shape (n, n)
        Symmetric nonnegative affinity.

    Returns
    -------
    torch.Tensor
        Scalar ``−(2/n) tr(Yᵀ W̃ Y) + (1/n³) tr((YᵀDY)²)`` with ``W̃ = W − d dᵀ / vol``; differentiable.
    """
    n = Y.shape[0]
    degrees = W.sum(dim=1)
    deflated_WY = W @ Y - degrees[:, None] * ((degrees @ Y) / degrees.sum())[None, :]
    gram = Y.T @ (degrees[:, None] * Y)
    return -2.0 / n * (Y * deflated_WY).sum() + (gram @ gram).trace() / n**3


def specnet2_row_gradient(WY_rows, Y_rows, degree_rows, mean_dY, YDY, n):
    """Explicit gradient of :func:`specnet2_objective` with respect to a block of rows ``B``.

    Parameters
    ----------
    WY_rows : torch.Tensor of shape (b, p)
        ``(W Y)_B``, the graph rows of the block times the embedding.
    Y_rows : torch.Tensor of shape (b, p)
        ``Y_B``.
    degree_rows : torch.Tensor of shape (b,)
        ``d_B``.
    mean_dY : torch.Tensor of shape (p,)
        ``dᵀY / vol``, so that ``(d dᵀ Y / vol)_B = d_B ⊗ mean_dY``.
    YDY : torch.Tensor of shape (p, p)
        ``Yᵀ D Y``.
    n : int
        Number of nodes of the graph the objective is defined on.

    Returns
    -------
    torch.Tensor of shape (b, p)
        ``4 [−(W̃ Y)_B / n + D_B Y_B (YᵀDY) / n³]``.
    """
    deflated_WY = WY_rows - degree_rows[:, None] * mean_dY[None, :]
    return 4.0 * (-deflated_WY / n + (degree_rows[:, None] * Y_rows) @ YDY / n**3)


# --------------------------------------------------------------------------------------------
# Estimator
# --------------------------------------------------------------------------------------------
class SpecNet2(EmbeddingMixin, ClusteringMethod):
    """SpecNet2 spectral embedding network, Rayleigh–Ritz rotation on the full graph, then k-means.

    Training minimises :func:`specnet2_objective` with the explicit row-block gradient
    (:func:`specnet2_row_gradient`) pushed through a detached surrogate, as the reference code does
    for every variant:

    * ``variant="neighbor"`` (reference MNIST setting): each step forwards the batch ``B`` and the
      union of its graph neighbours ``N(B)``, so ``(WY)_B = W[B, N(B)] Y_{N(B)}`` is exact. ``YᵀDY``
      and ``dᵀY`` come from a cache of all ``n`` outputs, initialised by one full forward and
      updated on the rows ``N(B)`` after every step (so they are stale elsewhere). The batch rows are
      read from ``N(B)``, which is why the graph must have self-loops. The cached sums are recomputed
      from the cache once per epoch to stop float32 round-off from accumulating (the reference
      updates them incrementally forever, in float64).
    * ``variant="local"``: the objective of the batch graph alone (``n`` replaced by ``m``, degrees
      and deflation from the batch graph). The batch graph is ``W[B, B]`` of the full graph
      (``local_graph="subgraph"``, the reference) or a fresh ``batch_affinity(X_B)``
      (``local_graph="batch"``, as SpectralNet and CNC build theirs); the subgraph of a sparse kNN
      graph keeps only about ``m·s/n`` neighbours per point.

    After training, the outputs ``Y`` of all training points are rotated by the Rayleigh–Ritz step
    of the reference: solve the ``p×p`` generalised problem ``(YᵀWY) v = μ (YᵀDY) v`` (``WY`` by a
    sparse product on the device, never a dense ``n×n`` matrix; the small problem in float64), sort
    by decreasing ``μ``, scale by ``n`` and set ``U = Y V``. k-means on ``U`` gives the labels; new
    points are embedded with the same ``V`` and assigned to the nearest centre.

    Where this follows the reference rather than the paper: the per-dataset settings, the
    surrogate-gradient trick, the cache, and the rotation. Divergences from the reference: it runs
    on CUDA in float32 by default (the reference is CPU float64 only; ``dtype="float64"`` restores
    the precision), the cache belongs to the fit (the reference keeps it as global state shared by
    all runs in a process), and monitoring uses the cached objective instead of dense eigensolves.

    Parameters
    ----------
    n_clusters : int, default=2
        Number of clusters for k-means.
    affinity : str, dict, Affinity or SiameseAffinity, default="knn_self_loops"
        Full-graph affinity (:func:`cutbench.affinity.prepare_affinity`), unless ``fit`` receives
        ``graph=``. The default is the kNN heat kernel (10 neighbours, median sigma) with self-loops,
        which the ``neighbor`` variant requires. Also the per-batch affinity when
        ``local_graph="batch"``.
    n_components : int or None, default=None
        Output width ``p`` of the network (non-trivial eigenvectors learned). None means
        ``n_clusters - 1`` (at least 1): the trivial eigenvector is deflated, and being constant it
        would add nothing to k-means, so ``k - 1`` non-trivial ones carry the ``k``-way spectral
        embedding. The reference uses 2 for the moons and 6 for MNIST.
    variant : {"neighbor", "local"}, default="neighbor"
        Gradient variant (see above).
    local_graph : {"subgraph", "batch"}, default="subgraph"
        Batch graph of the ``local`` variant; ignored by ``neighbor``.
    hidden_dims : tuple of int, default=(256, 256)
        Widths of the ReLU hidden layers (reference MNIST: 256 × 2; moons: 128 × 1).
    lr : float, default=1e-4
        Adam learning rate (reference MNIST; 1e-3 for the moons).
    batch_size : int, default=4
        Rows ``B`` per step. ``neighbor`` needs ``1 <= batch_size <= n`` (the reference uses 2, 4
        and 8 for MNIST; the forwarded neighbourhood is much larger). ``local`` needs
        ``n_clusters <= batch_size <= n``, and ``batch_size > n_neighbors`` with
        ``local_graph="batch"``. Each epoch is one shuffled pass in ``n // batch_size`` steps.
    epochs : int, default=200
        Passes over the training points (reference MNIST: 150-242).
    n_init : int, default=10
        k-means++ restarts of the final k-means (on the CPU).
    predict_batch_size : int, default=10000
        Rows per forward pass outside the training steps.
    device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"
    random_state : int, numpy.random.Generator or None, default=None
        Seeds the initialisation, the batch order and k-means (reproducible on the CPU).
    dtype : {"float32", "float64"}, default="float32"
        Floating-point type of the network, the cache and the graph on the device. The
        Rayleigh–Ritz products are always float64.

    ``fit(X, graph=None)`` accepts a precomputed symmetric affinity of ``X`` (scipy sparse, numpy or
    torch, with self-loops for ``variant="neighbor"``) instead of building one from ``affinity``.

    Attributes
    ----------
    model_ : torch.nn.Sequential
        The trained network, on the fitted device.
    rotation_ : numpy.ndarray of shape (n_components_, n_components_)
        Rayleigh–Ritz eigenvectors scaled by ``n``: ``embedding = model_(X) @ rotation_``.
    ritz_values_ : numpy.ndarray of shape (n_components_,)
        Rayleigh–Ritz values ``μ``, decreasing (approximations of the top non-trivial eigenvalues of
        ``D⁻¹W``).
    embedding_ : numpy.ndarray of shape (n_samples, n_components_)
        Rotated embedding of the training points, the input of k-means.
    cluster_centers_ : numpy.ndarray of shape (n_clusters, n_components_)
    labels_ : numpy.ndarray of shape (n_samples,), dtype int64
    history_ : dict of list of float
        Per epoch: ``"loss"``, the objective ``f`` of the cached outputs at the end of the epoch
        (``neighbor``) or the mean batch objective (``local``), and the ``"lr"`` used.
    affinity_ : Affinity or None
        The resolved affinity; None when a precomputed graph was given and not used per batch.
    n_components_ : int
    n_features_in_ : int
    n_iter_ : int
    """

    name: ClassVar[str] = "specnet2"
    capabilities: ClassVar[Capabilities] = Capabilities(gpu=True, minibatch=True, out_of_sample=True,
                                                        precomputed_graph=True, affinity_kinds=EVERY_AFFINITY)
    check_params: ClassVar[dict] = {"affinity": {"n_neighbors": 3, "self_loops": True}, "hidden_dims": (16,),
                                  "batch_size": 4, "epochs": 2, "n_init": 1}
    expected_failed_checks: ClassVar[dict] = {"check_methods_subset_invariance": (
        "a float32 network's output for a row can differ in its last bit with the rows it is batched with (BLAS "
        "blocking), and the Rayleigh-Ritz rotation scales the embedding by n, so transform on a subset differs by "
        "~1e-7 relative, the check's tolerance; with dtype='float64' it passes (tested)")}
    _parameter_constraints: ClassVar[dict] = {
        **ClusteringMethod._parameter_constraints,
        "affinity": [AFFINITY],
        "n_components": [Interval(int, 1), NoneValue("n_clusters - 1")],
        "variant": [Options(*VARIANTS)],
        "local_graph": [Options(*LOCAL_GRAPHS)],
        "hidden_dims": [Widths((256, 256))],
        "lr": [Interval(float, 0, None, closed="neither")],
        "batch_size": [Interval(int, 1)],
        "epochs": [Interval(int, 1)],
        "n_init": [Interval(int, 1)],
        "predict_batch_size": [Interval(int, 1)],
        "dtype": [DTYPE_CONSTRAINT],
    }

    def __init__(self, n_clusters=2, *, affinity="knn_self_loops", n_components=None, variant="neighbor",
                 local_graph="subgraph", hidden_dims=(256, 256), lr=1e-4, batch_size=4, epochs=200, n_init=10,
                 predict_batch_size=10000, device="auto", random_state=None, dtype="float32"):
        self.n_clusters = n_clusters
        self.affinity = affinity
        self.n_components = n_components
        self.variant = variant
        self.local_graph = local_graph
        self.hidden_dims = hidden_dims
        self.lr = lr
        self.batch_size = batch_size
        self.epochs = epochs
        self.n_init = n_init
        self.predict_batch_size = predict_batch_size
        self.device = device
        self.random_state = random_state
        self.dtype = dtype

    # -- validation ---------------------------------------------------------------------------
    def _check_sizes(self, n_samples: int) -> tuple[int, int]:
        """The rules that depend on the data; return ``(n_components, batch_size)``."""
        n_components = max(self.n_clusters - 1, 1) if self.n_components is None else self.n_components
        if not n_components < n_samples:
            raise CutbenchError(f"n_components must be below n_samples = {n_samples}; got {n_components}.")
        if self.variant == "local":
            return int(n_components), check_batch_size(self.batch_size, n_samples, self.n_clusters)
        # Only the gradient rows are batched: the forwarded neighbourhood holds far more points,
        # so batches smaller than n_clusters are valid (the reference MNIST runs use 2-8 for 10).
        return int(n_components), check_batch_size(self.batch_size, n_samples, n_clusters=1)

    def _checked_graph(self, W, n_samples):
        W = check_affinity_graph(W, n_samples)
        if self.variant == "neighbor":
            missing = int((W.diagonal() <= 0).sum())
            if missing:
                raise CutbenchError(f"SpecNet2 with variant='neighbor' needs a graph with self-loops (each batch "
                                    f"row is read from its own neighbour set), but {missing} of {n_samples} nodes "
                                    "have a zero diagonal. Use an affinity with self_loops=True, add the identity "
                                    "to the graph (W + scipy.sparse.identity(n)), or use variant='local'.")
        degrees = np.asarray(W.sum(axis=1)).ravel()
        if (degrees <= 0).any():
            raise CutbenchError(f"the graph has {int((degrees <= 0).sum())} node(s) with zero degree, so D Y "
                                "vanishes there and the Rayleigh–Ritz problem is singular; use self_loops=True "
                                "or a larger n_neighbors.")
        return W

    # -- fit ------------------------------------------------------------------------------------
    def _fit(self, X, graph=None):
        n_samples, n_features = X.shape
        n_components, batch_size = self._check_sizes(n_samples)
        device = self._device()
        dtype = DTYPES[self.dtype]
        _, generator, seed = seed_generators(self.random_state)

        X_train = torch.as_tensor(X).to(device=device, dtype=dtype)
        batch_graphs = self.variant == "local" and self.local_graph == "batch"
        prepared = None
        if graph is None or batch_graphs:
            # On the input as given: the graph is built at the precision of the features, whatever dtype
            # the network trains in.
            prepared = prepare_affinity(self.affinity, X, device=device, random_state=seed)
            if batch_graphs:
                check_batch_size_for(prepared, batch_size)
        W = self._checked_graph(prepared.graph() if graph is None else graph, n_samples)
        device_graph = DeviceGraph(W, device, dtype)
        model = seeded_mlp([n_features, *self.hidden_dims, n_components], activation="relu", generator=generator,
                           dtype=dtype).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.lr)
        trainer = Trainer("SpecNet2", model, optimizer, hint=f"lower lr (now {self.lr}) or use dtype='float64'.")
        if self.variant == "neighbor":
            steps = self._neighbor_steps(model, X_train, device_graph, batch_size, generator)
        else:
            steps = self._local_steps(model, X_train, device_graph, prepared, batch_size, generator)
        self.history_ = trainer.run(self.epochs, steps)

        self.model_ = model
        self.n_components_ = n_components
        self.affinity_ = None if prepared is None else prepared.spec
        self.n_iter_ = int(self.epochs)
        self._rayleigh_ritz(X_train, device_graph)
        kmeans = SklearnKMeans(n_clusters=self.n_clusters, n_init=int(self.n_init), random_state=seed)
        self.labels_ = kmeans.fit_predict(self.embedding_).astype(np.int64)
        self.cluster_centers_ = kmeans.cluster_centers_
        self.kmeans_ = kmeans

    def _neighbor_steps(self, model, X, graph: DeviceGraph, batch_size, generator):
        """Epochs of the ``neighbor`` variant; each ends with the objective of the cached outputs."""
        n = graph.n
        degrees = graph.degrees
        cache = forward_in_chunks(model, X, self.predict_batch_size, to_cpu=False)

        def epoch_steps(epoch):
            # Exact sums from the cache once per epoch; incremental updates in between.
            YDY = cache.T @ (degrees[:, None] * cache)
            dY = degrees @ cache
            order = torch.randperm(n, generator=generator).to(X.device)
            for step in range(n // batch_size):
                batch = order[step * batch_size:(step + 1) * batch_size]
                neighbours, block = graph.rows(batch)
                Y_neighbours = model(X[neighbours])
                new = Y_neighbours.detach()
                old = cache[neighbours]
                degree_n = degrees[neighbours][:, None]
                YDY += new.T @ (degree_n * new) - old.T @ (degree_n * old)
                dY += (degree_n * (new - old)).sum(dim=0)
                cache[neighbours] = new
                # Self-loops put every batch row in its own neighbour set, so the lookup always succeeds.
                Y_batch = Y_neighbours[torch.searchsorted(neighbours, batch)]
                gradient = specnet2_row_gradient(block @ new, Y_batch.detach(), degrees[batch],
                                                 dY / graph.volume, YDY, n)
                yield (Y_batch * gradient).sum(), None
            with torch.no_grad():
                return self._cached_objective(cache, graph).reshape(1)

        return epoch_steps

    def _local_steps(self, model, X, graph: DeviceGraph, prepared, batch_size, generator):
        """Epochs of the ``local`` variant; each step reports the objective of its batch graph."""
        n = graph.n

        def epoch_steps(epoch):
            order = torch.randperm(n, generator=generator).to(X.device)
            for step in range(n // batch_size):
                batch = order[step * batch_size:(step + 1) * batch_size]
                W_batch = graph.subgraph(batch) if self.local_graph == "subgraph" else prepared.batch(batch).to(X.dtype)
                Y_batch = model(X[batch])
                with torch.no_grad():
                    new = Y_batch.detach()
                    degree_b = W_batch.sum(dim=1)
                    # An edgeless subgraph has volume 0; its deflation term is then 0, not NaN.
                    mean_dY = (degree_b @ new) / degree_b.sum().clamp_min(torch.finfo(new.dtype).tiny)
                    YDY = new.T @ (degree_b[:, None] * new)
                    gradient = specnet2_row_gradient(W_batch @ new, new, degree_b, mean_dY, YDY, batch_size)
                    objective = -2.0 / batch_size * (new * (W_batch @ new - degree_b[:, None] * mean_dY)).sum() \
                        + (YDY @ YDY).trace() / batch_size**3
                yield (Y_batch * gradient).sum(), objective.reshape(1)

        return epoch_steps

    @staticmethod
    def _cached_objective(Y, graph: DeviceGraph) -> torch.Tensor:
        n = graph.n
        YDY = Y.T @ (graph.degrees[:, None] * Y)
        dY = graph.degrees @ Y
        trace_WY = (Y * graph.matmul(Y)).sum() - (dY @ dY) / graph.volume
        return -2.0 / n * trace_WY + (YDY @ YDY).trace() / n**3

    def _rayleigh_ritz(self, X, graph: DeviceGraph):
        """Rotate the outputs onto Ritz vectors of ``(W, D)`` in their span (reference post-processing)."""
        Y = forward_in_chunks(self.model_, X, self.predict_batch_size, to_cpu=False).to(torch.float64)
        WY = graph.matmul(Y)
        YWY = (Y.T @ WY).cpu().numpy()
        YDY = (Y.T @ (graph.degrees.to(torch.float64)[:, None] * Y)).cpu().numpy()
        try:
            values, vectors = scipy.linalg.eigh((YWY + YWY.T) / 2, (YDY + YDY.T) / 2)
        except np.linalg.LinAlgError as exc:
            raise CutbenchError(f"the Rayleigh–Ritz step failed: the {Y.shape[1]} network outputs are linearly "
                                "dependent on the graph (Yᵀ D Y is singular), e.g. a collapsed network. Train "
                                "longer, lower lr, or use fewer n_components.") from exc
        order = np.argsort(-values, kind="stable")
        self.ritz_values_ = values[order]
        self.rotation_ = vectors[:, order] * graph.n
        self.embedding_ = Y.cpu().numpy() @ self.rotation_

    # -- inference --------------------------------------------------------------------------------
    def _transform(self, X):
        """Rotated embedding ``model_(X) @ rotation_`` of any points (float64)."""
        embedding = forward_in_chunks(self.model_, X, self.predict_batch_size, lambda Y: Y.to(torch.float64))
        return embedding.numpy() @ self.rotation_

    def _predict(self, X):
        """Assign each row of ``X`` to the nearest k-means centre of its rotated embedding."""
        return self.kmeans_.predict(self._transform(X))


__all__ = ["SpecNet2", "specnet2_objective", "specnet2_row_gradient", "PRESETS", "VARIANTS", "LOCAL_GRAPHS"]
