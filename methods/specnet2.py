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
import scipy.sparse as sp
import torch
from sklearn.cluster import KMeans as SklearnKMeans
from torch import nn

from cutbench import CutbenchError
from cutbench._validation import check_batch_size, check_hidden_dims, check_number, seed_generators
from cutbench.graph import Affinity, batch_affinity, knn_graph
from cutbench.methods.base import Capabilities, ClusteringMethod, as_numpy_labels, forward_in_chunks
from cutbench.methods.ncut import check_affinity_graph

VARIANTS = ("neighbor", "local")
"""Gradient variants: exact graph rows with a cache of all outputs, or the batch subgraph only."""

LOCAL_GRAPHS = ("subgraph", "batch")
"""Batch graph of the ``local`` variant: ``W[B, B]`` of the full graph (reference) or a fresh batch kNN graph."""

_DTYPES = {"float32": torch.float32, "float64": torch.float64}

PRESETS = {
    # python/para.json (one moon) and batch_run/two_moons: 1 hidden layer of 128, Adam 1e-3, batch 4, 300 epochs.
    "two_moons": dict(hidden_dims=(128,), lr=1e-3, batch_size=4, epochs=300, variant="neighbor"),
    # batch_run/MNIST (mnist_para.json): 2 hidden layers of 256, Adam 1e-4, batch 2/4/8, 150-242 epochs.
    "mnist": dict(hidden_dims=(256, 256), lr=1e-4, batch_size=4, epochs=200, variant="neighbor"),
}
"""Per-dataset constructor arguments from the reference repository (methods.md §6.3).

The reference MNIST graph (kNN with 320 neighbours, sigma the median distance to the 16th neighbour) is
not expressible as an :class:`~cutbench.graph.Affinity`; pass an affinity with ``self_loops=True``.
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
# Network
# --------------------------------------------------------------------------------------------
def build_specnet2_net(n_features, hidden_dims, n_outputs, *, generator, dtype=torch.float32) -> nn.Sequential:
    """Linear-ReLU blocks and a linear output layer with no activation, as in the reference.

    The reference keeps PyTorch's default ``nn.Linear`` initialisation; it is reproduced here with an
    explicit CPU ``generator`` (layers are created on the meta device) so that the global torch RNG is
    never consumed and a seed gives the same network on every device.
    """
    widths = [n_features, *hidden_dims, n_outputs]
    layers: list[nn.Module] = []
    for width_in, width_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(width_in, width_out, device="meta", dtype=dtype), nn.ReLU()]
    model = nn.Sequential(*layers[:-1]).to_empty(device="cpu")
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.Linear):
                # nn.Linear.reset_parameters: kaiming_uniform(a=√5) weights, U(±1/√fan_in) biases.
                nn.init.kaiming_uniform_(layer.weight, a=5**0.5, generator=generator)
                bound = layer.in_features**-0.5
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return model


# --------------------------------------------------------------------------------------------
# Graph on the device
# --------------------------------------------------------------------------------------------
class _DeviceGraph:
    """The full sparse graph on the device: degrees, row gathers and sparse products, never dense n×n."""

    def __init__(self, W: sp.csr_matrix, device: torch.device, dtype: torch.dtype):
        W = sp.csr_matrix(W)
        W.sort_indices()
        self.n = W.shape[0]
        self.indptr = torch.from_numpy(W.indptr.astype(np.int64)).to(device)
        self.indices = torch.from_numpy(W.indices.astype(np.int64)).to(device)
        self.data = torch.from_numpy(W.data).to(device=device, dtype=dtype)
        self.degrees = torch.from_numpy(np.asarray(W.sum(axis=1)).ravel()).to(device=device, dtype=dtype)
        self.volume = self.degrees.sum()
        rows = torch.repeat_interleave(torch.arange(self.n, device=device), self.indptr.diff())
        self.coo = torch.sparse_coo_tensor(torch.stack([rows, self.indices]), self.data, (self.n, self.n),
                                           is_coalesced=True, check_invariants=False)

    def rows(self, batch: torch.Tensor):
        """Neighbour set ``N(B)`` (sorted, unique) and the dense block ``W[B, N(B)]``."""
        starts = self.indptr[batch]
        counts = self.indptr[batch + 1] - starts
        total = int(counts.sum())
        block_row = torch.repeat_interleave(torch.arange(len(batch), device=batch.device), counts,
                                            output_size=total)
        offsets = torch.cumsum(counts, 0) - counts
        positions = starts[block_row] + torch.arange(total, device=batch.device) - offsets[block_row]
        neighbours, block_col = torch.unique(self.indices[positions], return_inverse=True)
        block = torch.zeros(len(batch), len(neighbours), device=batch.device, dtype=self.data.dtype)
        block[block_row, block_col] = self.data[positions]
        return neighbours, block

    def subgraph(self, batch: torch.Tensor) -> torch.Tensor:
        """Dense ``W[B, B]``."""
        neighbours, block = self.rows(batch)
        inside = torch.searchsorted(neighbours, batch)
        inside = inside.clamp_max(len(neighbours) - 1)
        present = neighbours[inside] == batch
        sub = torch.zeros(len(batch), len(batch), device=batch.device, dtype=block.dtype)
        sub[:, present] = block[:, inside[present]]
        return sub

    def matmul(self, Y: torch.Tensor) -> torch.Tensor:
        return torch.sparse.mm(self.coo.to(Y.dtype), Y)


# --------------------------------------------------------------------------------------------
# Estimator
# --------------------------------------------------------------------------------------------
class SpecNet2(ClusteringMethod):
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
    affinity : str, dict or Affinity, default=Affinity(self_loops=True)
        Full-graph affinity, built with :func:`cutbench.graph.knn_graph` unless ``fit`` receives
        ``graph=``. The default is the kNN heat kernel (10 neighbours, median sigma) with self-loops,
        which the ``neighbor`` variant requires. Also the per-batch affinity when
        ``local_graph="batch"``.
    n_components : int or None, default=None
        Output width ``p`` of the network (non-trivial eigenvectors learned). None means
        ``n_clusters - 1``: the trivial eigenvector is deflated, and being constant it would add
        nothing to k-means, so ``k - 1`` non-trivial ones carry the ``k``-way spectral embedding.
        The reference uses 2 for the moons and 6 for MNIST.
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
        (``neighbor``) or the mean batch objective (``local``).
    affinity_ : Affinity or None
        The resolved affinity; None when a precomputed graph was given and not used per batch.
    n_components_ : int
    n_features_in_ : int
    n_iter_ : int
    """

    name: ClassVar[str] = "specnet2"
    capabilities: ClassVar[Capabilities] = Capabilities(gpu=True, minibatch=True, out_of_sample=True,
                                                        precomputed_graph=True)

    def __init__(self, n_clusters=2, *, affinity=Affinity(self_loops=True), n_components=None, variant="neighbor",
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
    def _check_params(self, n_samples: int) -> tuple[int, int]:
        """Validate the hyper-parameters; return ``(n_components, batch_size)``."""
        if self.variant not in VARIANTS:
            raise CutbenchError(f"variant must be one of {VARIANTS}; got {self.variant!r}.")
        if self.local_graph not in LOCAL_GRAPHS:
            raise CutbenchError(f"local_graph must be one of {LOCAL_GRAPHS} ('subgraph': W[B, B] of the full "
                                f"graph, as the reference; 'batch': a batch kNN graph); got {self.local_graph!r}.")
        if self.dtype not in _DTYPES:
            raise CutbenchError(f"dtype must be one of {tuple(_DTYPES)}; got {self.dtype!r}.")
        check_number("lr", self.lr, minimum=0, strict=True)
        check_number("epochs", self.epochs, minimum=1, integer=True)
        check_number("n_init", self.n_init, minimum=1, integer=True)
        check_number("predict_batch_size", self.predict_batch_size, minimum=1, integer=True)
        check_hidden_dims(self.hidden_dims, example=(256, 256))
        n_components = self.n_clusters - 1 if self.n_components is None else self.n_components
        if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) \
                or not 1 <= n_components < n_samples:
            raise CutbenchError(f"n_components must be None or an integer with 1 <= n_components < n_samples "
                                f"= {n_samples}; got {self.n_components!r}.")
        if self.variant == "local":
            batch_size = check_batch_size(self.batch_size, n_samples, self.n_clusters)
        else:
            # Only the gradient rows are batched: the forwarded neighbourhood holds far more points,
            # so batches smaller than n_clusters are valid (the reference MNIST runs use 2-8 for 10).
            check_number("batch_size", self.batch_size, minimum=1, integer=True,
                         hint=" The neighbor variant accepts any batch size from 1 to n.")
            if self.batch_size > n_samples:
                raise CutbenchError(f"batch_size={self.batch_size} exceeds the number of training samples "
                                    f"n={n_samples}; use batch_size <= {n_samples}.")
            batch_size = int(self.batch_size)
        return int(n_components), batch_size

    def _full_graph(self, X, graph, affinity, device):
        n_samples = X.shape[0]
        if graph is None:
            if affinity.n_neighbors is not None and affinity.n_neighbors >= n_samples:
                raise CutbenchError(f"the affinity asks for n_neighbors={affinity.n_neighbors} but X has only "
                                    f"{n_samples} points (at most {n_samples - 1} neighbours each); use "
                                    f"n_neighbors <= {n_samples - 1} or more points.")
            graph = knn_graph(X, affinity, device=device)
        W = check_affinity_graph(graph, n_samples)
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
    def fit(self, X, y=None, graph=None):
        """Train the embedding network on the graph of ``X``, rotate it and cluster it.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)
            Training features; moved once to the device.
        y : ignored
            Present for scikit-learn API consistency.
        graph : scipy sparse matrix, numpy array or torch tensor of shape (n_samples, n_samples), optional
            Precomputed symmetric affinity of ``X`` (with self-loops for ``variant="neighbor"``); built
            from ``affinity`` with :func:`cutbench.graph.knn_graph` when omitted.

        Returns
        -------
        self
        """
        X = self._validate_fit_input(X)
        n_samples, n_features = X.shape
        n_components, batch_size = self._check_params(n_samples)
        affinity = Affinity.from_any(self.affinity)
        if self.variant == "local" and self.local_graph == "batch" and affinity.n_neighbors is not None \
                and affinity.n_neighbors >= batch_size:
            raise CutbenchError(f"the batch affinity asks for n_neighbors={affinity.n_neighbors} but a batch has "
                                f"only batch_size={batch_size} points; use batch_size > {affinity.n_neighbors} "
                                "or fewer neighbours.")
        device = self._device()
        dtype = _DTYPES[self.dtype]
        _, generator, seed = seed_generators(self.random_state)

        W = self._full_graph(X, graph, affinity, device)
        device_graph = _DeviceGraph(W, device, dtype)
        X_train = torch.as_tensor(X).to(device=device, dtype=dtype)
        model = build_specnet2_net(n_features, tuple(self.hidden_dims), n_components, generator=generator,
                                   dtype=dtype).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.lr)
        if self.variant == "neighbor":
            history = self._train_neighbor(model, optimizer, X_train, device_graph, batch_size, generator)
        else:
            history = self._train_local(model, optimizer, X_train, device_graph, affinity, batch_size, generator)

        self.model_ = model
        self.n_components_ = n_components
        self.n_features_in_ = n_features
        self.affinity_ = affinity if graph is None or self.local_graph == "batch" else None
        self.history_ = history
        self.n_iter_ = int(self.epochs)
        self._rayleigh_ritz(X_train, device_graph)
        kmeans = SklearnKMeans(n_clusters=self.n_clusters, n_init=int(self.n_init), random_state=seed)
        self.labels_ = as_numpy_labels(kmeans.fit_predict(self.embedding_))
        self.cluster_centers_ = kmeans.cluster_centers_
        self.kmeans_ = kmeans
        return self

    def _train_neighbor(self, model, optimizer, X, graph: _DeviceGraph, batch_size, generator):
        n = graph.n
        degrees = graph.degrees
        cache = forward_in_chunks(model, X, self.predict_batch_size, to_cpu=False)
        history = {"loss": []}
        for epoch in range(self.epochs):
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
                optimizer.zero_grad(set_to_none=True)
                (Y_batch * gradient).sum().backward()
                optimizer.step()
            with torch.no_grad():
                loss = self._cached_objective(cache, graph)
            self._check_finite(loss, epoch)
            history["loss"].append(loss)
        return history

    def _train_local(self, model, optimizer, X, graph: _DeviceGraph, affinity, batch_size, generator):
        n = graph.n
        history = {"loss": []}
        n_steps = n // batch_size
        for epoch in range(self.epochs):
            order = torch.randperm(n, generator=generator).to(X.device)
            total = torch.zeros((), device=X.device, dtype=X.dtype)
            for step in range(n_steps):
                batch = order[step * batch_size:(step + 1) * batch_size]
                X_batch = X[batch]
                W_batch = graph.subgraph(batch) if self.local_graph == "subgraph" else batch_affinity(X_batch, affinity)
                Y_batch = model(X_batch)
                with torch.no_grad():
                    new = Y_batch.detach()
                    degree_b = W_batch.sum(dim=1)
                    # An edgeless subgraph has volume 0; its deflation term is then 0, not NaN.
                    mean_dY = (degree_b @ new) / degree_b.sum().clamp_min(torch.finfo(new.dtype).tiny)
                    YDY = new.T @ (degree_b[:, None] * new)
                    gradient = specnet2_row_gradient(W_batch @ new, new, degree_b, mean_dY, YDY, batch_size)
                    total += -2.0 / batch_size * (new * (W_batch @ new - degree_b[:, None] * mean_dY)).sum() \
                        + (YDY @ YDY).trace() / batch_size**3
                optimizer.zero_grad(set_to_none=True)
                (Y_batch * gradient).sum().backward()
                optimizer.step()
            loss = float(total) / n_steps  # one host transfer per epoch
            self._check_finite(loss, epoch)
            history["loss"].append(loss)
        return history

    def _check_finite(self, loss, epoch):
        if not np.isfinite(loss):
            raise CutbenchError(f"SpecNet2 training diverged at epoch {epoch + 1} (objective {loss}); lower lr "
                                f"(now {self.lr}) or use dtype='float64'.")

    @staticmethod
    def _cached_objective(Y, graph: _DeviceGraph) -> float:
        n = graph.n
        YDY = Y.T @ (graph.degrees[:, None] * Y)
        dY = graph.degrees @ Y
        trace_WY = (Y * graph.matmul(Y)).sum() - (dY @ dY) / graph.volume
        return float(-2.0 / n * trace_WY + (YDY @ YDY).trace() / n**3)

    def _rayleigh_ritz(self, X, graph: _DeviceGraph):
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
    def transform(self, X):
        """Rotated embedding ``model_(X) @ rotation_`` of any points.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)

        Returns
        -------
        numpy.ndarray of shape (n_samples, n_components_), float64
        """
        X = self._validate_predict_input(X)
        embedding = forward_in_chunks(self.model_, X, self.predict_batch_size, lambda Y: Y.to(torch.float64))
        return embedding.numpy() @ self.rotation_

    def predict(self, X):
        """Assign each row of ``X`` to the nearest k-means centre of its rotated embedding.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)
            Any points, seen in ``fit`` or not.

        Returns
        -------
        labels : numpy.ndarray of shape (n_samples,), dtype int64
        """
        return as_numpy_labels(self.kmeans_.predict(self.transform(X)))


__all__ = ["SpecNet2", "specnet2_objective", "specnet2_row_gradient", "build_specnet2_net", "PRESETS",
           "VARIANTS", "LOCAL_GRAPHS"]
