"""NeuNcut and NeuRcut: a softmax MLP trained on a relaxed graph-cut loss of mini-batch graphs.

Both methods learn cluster memberships ``P = softmax(g(X))`` directly (no eigensolver, no k-means)
by minimising, per mini-batch of ``m`` points with dense affinity ``W`` and Laplacian
``L = D - W``,

    loss = tr(Hᵀ L H) + γ/2 · orth(H),    H = P · diag(size + 1e-6)^(-1/2),

where ``size`` estimates each cluster's size from ``P``:

* NeuNcut (Normalized cut; He et al., "Neural Normalized Cut", Pattern Recognition 2025, Eq. 10-12):
  ``size_ℓ = Σ_i d_i P_iℓ`` (soft volume) and ``orth = ‖Hᵀ D H − I‖``.
* NeuRcut (Ratio cut; same paper, §4.11, Eq. 17-18): ``size_ℓ = Σ_i P_iℓ`` (soft cardinality) and
  ``orth = ‖Hᵀ H − I‖``.

The trace term is the soft cut value ``Σ_ℓ P_ℓᵀ L P_ℓ / size_ℓ``; for one-hot ``P`` it equals
the Ncut (resp. RatioCut) value of the labelling on the batch graph. The diagonal of the
orthogonality Gram matrix is ``≤ 1``, with equality iff ``P`` is one-hot (paper, Theorem 1), so the
penalty pushes memberships towards hard assignments and away from collapsed ones.

Where the released NeuNcut code (``hewei98/NeuNcut`` @ 6642a28) and the paper disagree, the code is
the default and the paper is a switch: ``orth_norm="fro_over_k"`` (code: ``‖·‖_F / k``) versus
``"fro_sq"`` (paper: ``‖·‖²_F``); ``detach_volume=False`` (code: gradients flow through the size
estimate) versus ``True`` (paper's EM reading: the estimate is a constant in each gradient step).
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from cutbench import CutbenchError, CutbenchWarning
from cutbench._validation import check_batch_size, check_hidden_dims, check_number, seed_generators
from cutbench.graph import prepare_affinity
from cutbench.methods.base import Capabilities, ClusteringMethod, as_numpy_labels, forward_in_chunks

ORTH_NORMS = ("fro_over_k", "fro_sq")
"""Accepted ``orth_norm`` values: reference code (``‖·‖_F / k``) and paper (``‖·‖²_F``)."""

SIZE_EPS = 1e-6
"""Added to each cluster-size estimate before the inverse square root, as in the reference code."""

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------
def _relaxed_cut_loss(P, W, size_weights, *, gamma, orth_norm, detach_volume):
    """Shared body of :func:`ncut_loss` and :func:`rcut_loss`.

    ``size_weights`` is the per-point weight of the cluster-size estimate ``size = Pᵀ w``: the
    degrees for Ncut, ``None`` (all ones) for RatioCut. The same weights define the Gram matrix
    ``Pᵀ diag(w) P`` of the orthogonality term.
    """
    if orth_norm not in ORTH_NORMS:
        raise CutbenchError(f"orth_norm must be one of {ORTH_NORMS}; got {orth_norm!r}.")
    n_clusters = P.shape[1]
    degrees = W.sum(dim=1)
    if size_weights is None:
        weighted_P = P
    else:
        weighted_P = size_weights[:, None] * P
    sizes = weighted_P.sum(dim=0)
    if detach_volume:
        sizes = sizes.detach()
    inv_sqrt_sizes = (sizes + SIZE_EPS).rsqrt()

    # Σ_ℓ P_ℓᵀ (D − W) P_ℓ / size_ℓ without forming D or L: only m×k products besides W @ P.
    quad_degree = (degrees[:, None] * P * P).sum(dim=0)
    quad_affinity = (P * (W @ P)).sum(dim=0)
    trace_term = ((quad_degree - quad_affinity) * inv_sqrt_sizes.square()).sum()

    gram = weighted_P.T @ P
    deviation = gram * inv_sqrt_sizes[:, None] * inv_sqrt_sizes[None, :]
    deviation = deviation - torch.eye(n_clusters, dtype=P.dtype, device=P.device)
    if orth_norm == "fro_over_k":
        orth_term = torch.linalg.matrix_norm(deviation, ord="fro") / n_clusters
    else:
        orth_term = deviation.square().sum()
    loss = trace_term + 0.5 * gamma * orth_term
    return loss, trace_term, orth_term


def ncut_loss(P, W, *, gamma, orth_norm="fro_over_k", detach_volume=False):
    """Relaxed normalized-cut loss of NeuNcut for one mini-batch.

    Parameters
    ----------
    P : torch.Tensor of shape (m, k)
        Soft memberships (rows on the probability simplex, e.g. a softmax output).
    W : torch.Tensor of shape (m, m)
        Symmetric nonnegative affinity of the batch; treated as a constant.
    gamma : float
        Weight of the orthogonality penalty: ``loss = trace + gamma / 2 * orth``.
    orth_norm : {"fro_over_k", "fro_sq"}, default="fro_over_k"
        ``"fro_over_k"``: ``‖HᵀDH − I‖_F / k`` (reference code). ``"fro_sq"``: ``‖HᵀDH − I‖²_F``
        (paper, Eq. 10).
    detach_volume : bool, default=False
        Treat the volume estimate ``v = dᵀP`` as a constant in the gradient (paper's E-step
        reading, Remark 3) instead of differentiating through it (reference code).

    Returns
    -------
    loss, trace_term, orth_term : torch.Tensor
        Scalars. ``trace_term = Σ_ℓ P_ℓᵀ (D − W) P_ℓ / (v_ℓ + 1e-6)`` with ``d = W.sum(1)`` and
        ``v = dᵀP`` (Eq. 11), i.e. ``tr(HᵀLH)`` with ``H = P diag(v + 1e-6)^(-1/2)`` (Eq. 12).
        For one-hot ``P`` it is the Ncut value of the labelling on ``W`` (up to the 1e-6).
    """
    return _relaxed_cut_loss(P, W, W.sum(dim=1), gamma=gamma, orth_norm=orth_norm,
                             detach_volume=detach_volume)


def rcut_loss(P, W, *, gamma, orth_norm="fro_over_k", detach_volume=False):
    """Relaxed ratio-cut loss of NeuRcut for one mini-batch (paper §4.11, Eq. 18).

    Parameters
    ----------
    P : torch.Tensor of shape (m, k)
        Soft memberships (rows on the probability simplex).
    W : torch.Tensor of shape (m, m)
        Symmetric nonnegative affinity of the batch; treated as a constant. The trace term scales
        linearly with ``W`` while the penalty does not (see :class:`NeuRcut`).
    gamma : float
        Weight of the orthogonality penalty: ``loss = trace + gamma / 2 * orth``.
    orth_norm : {"fro_over_k", "fro_sq"}, default="fro_over_k"
        ``"fro_over_k"``: ``‖HᵀH − I‖_F / k`` (NeuNcut code convention). ``"fro_sq"``:
        ``‖HᵀH − I‖²_F`` (paper, Eq. 18).
    detach_volume : bool, default=False
        Treat the size estimate ``s = 1ᵀP`` as a constant in the gradient.

    Returns
    -------
    loss, trace_term, orth_term : torch.Tensor
        Scalars. ``trace_term = Σ_ℓ P_ℓᵀ (D − W) P_ℓ / (s_ℓ + 1e-6)``, i.e. ``tr(HᵀLH)`` with
        ``H = P diag(s + 1e-6)^(-1/2)``; for one-hot ``P`` it is the RatioCut value of the labelling.
    """
    return _relaxed_cut_loss(P, W, None, gamma=gamma, orth_norm=orth_norm, detach_volume=detach_volume)


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------
def build_mlp(n_features, hidden_dims, n_clusters, *, generator, dtype=torch.float32) -> nn.Sequential:
    """The NeuNcut network ``g``: Linear-ReLU blocks, then a linear layer to ``k`` logits.

    Initialisation follows the reference ``models.py``: hidden layers ``kaiming_uniform_`` (a=0)
    and the output layer ``xavier_uniform_``, all biases zero. Softmax is applied by the caller.
    Parameters are drawn on the CPU from ``generator`` only (the layers are created on the meta
    device, so the global torch RNG is never consumed): the same seed gives the same network on
    any device.
    """
    widths = [n_features, *hidden_dims]
    layers: list[nn.Module] = []
    for width_in, width_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(width_in, width_out, device="meta", dtype=dtype), nn.ReLU()]
    layers.append(nn.Linear(widths[-1], n_clusters, device="meta", dtype=dtype))
    model = nn.Sequential(*layers).to_empty(device="cpu")
    linears = [layer for layer in model if isinstance(layer, nn.Linear)]
    with torch.no_grad():
        for layer in linears[:-1]:
            nn.init.kaiming_uniform_(layer.weight, a=0, generator=generator)
            layer.bias.zero_()
        nn.init.xavier_uniform_(linears[-1].weight, generator=generator)
        linears[-1].bias.zero_()
    return model


# --------------------------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------------------------
class _NeuralCut(ClusteringMethod):
    """Shared estimator for NeuNcut and NeuRcut; subclasses define the per-batch loss."""

    capabilities: ClassVar[Capabilities] = Capabilities(gpu=True, minibatch=True, out_of_sample=True)

    def __init__(self, n_clusters=2, *, affinity="neuncut", gamma=80.0, hidden_dims=(512, 512), lr=5e-3,
                 weight_decay=1e-4, batch_size=1000, epochs=100, orth_norm="fro_over_k",
                 detach_volume=False, predict_batch_size=10000, device="auto", random_state=None,
                 dtype="float32"):
        self.n_clusters = n_clusters
        self.affinity = affinity
        self.gamma = gamma
        self.hidden_dims = hidden_dims
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.orth_norm = orth_norm
        self.detach_volume = detach_volume
        self.predict_batch_size = predict_batch_size
        self.device = device
        self.random_state = random_state
        self.dtype = dtype

    def _batch_loss(self, P, W):
        """``(loss, trace_term, orth_term)`` of one mini-batch; defined by each method."""
        raise NotImplementedError

    def _check_hyperparameters(self):
        check_number("gamma", self.gamma, minimum=0)
        check_number("lr", self.lr, minimum=0, strict=True)
        check_number("weight_decay", self.weight_decay, minimum=0)
        check_number("epochs", self.epochs, minimum=1, integer=True)
        check_number("predict_batch_size", self.predict_batch_size, minimum=1, integer=True)
        if self.orth_norm not in ORTH_NORMS:
            raise CutbenchError(f"orth_norm must be one of {ORTH_NORMS} ('fro_over_k': reference code, "
                                f"'fro_sq': paper); got {self.orth_norm!r}.")
        if self.dtype not in _DTYPES:
            raise CutbenchError(f"dtype must be one of {tuple(_DTYPES)}; got {self.dtype!r}.")
        if not isinstance(self.detach_volume, bool):
            raise CutbenchError(f"detach_volume must be True or False; got {self.detach_volume!r}.")
        check_hidden_dims(self.hidden_dims)

    def fit(self, X, y=None):
        """Train the network on ``X`` and label it.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)
            Training features; moved once to the device.
        y : ignored
            Present for scikit-learn API consistency.

        Returns
        -------
        self
        """
        X = self._validate_fit_input(X)
        n_samples, n_features = X.shape
        batch_size = check_batch_size(self.batch_size, n_samples, self.n_clusters)
        self._check_hyperparameters()
        device = self._device()
        dtype = _DTYPES[self.dtype]
        _, generator, seed = seed_generators(self.random_state)

        X_train = torch.as_tensor(X).to(device=device, dtype=dtype)
        affinity = prepare_affinity(self.affinity, X_train, device=device, random_state=seed)
        model = build_mlp(n_features, tuple(self.hidden_dims), self.n_clusters, generator=generator,
                          dtype=dtype).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.epochs, eta_min=0)
        n_batches = n_samples // batch_size  # the reference drops the tail of each shuffled pass
        # Per-epoch means stay on the device until training ends: logging must not add a host
        # synchronisation to every epoch of a timed fit.
        epoch_means = torch.empty(self.epochs, 3, device=device, dtype=dtype)
        learning_rates = []
        for epoch in range(self.epochs):
            learning_rates.append(optimizer.param_groups[0]["lr"])
            # Shuffled on the CPU generator, so the batches are the same on every device.
            order = torch.randperm(n_samples, generator=generator).to(device)
            totals = torch.zeros(3, device=device, dtype=dtype)
            for batch in range(n_batches):
                batch_index = order[batch * batch_size:(batch + 1) * batch_size]
                X_batch = X_train[batch_index]
                with torch.no_grad():
                    W = affinity.batch(batch_index)
                P = torch.softmax(model(X_batch), dim=1)
                loss, trace_term, orth_term = self._batch_loss(P, W)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                totals += torch.stack([loss.detach(), trace_term.detach(), orth_term.detach()])
            scheduler.step()
            epoch_means[epoch] = totals / n_batches
        epoch_means = epoch_means.cpu().to(torch.float64)
        diverged = (~torch.isfinite(epoch_means[:, 0])).nonzero()
        if len(diverged):
            first = int(diverged[0])
            raise CutbenchError(f"{type(self).__name__} training diverged at epoch {first + 1} "
                                f"(loss={epoch_means[first, 0].item()}); lower lr (now {self.lr}) or use "
                                "dtype='float64'.")
        history = {"loss": epoch_means[:, 0].tolist(), "trace": epoch_means[:, 1].tolist(),
                   "orth": epoch_means[:, 2].tolist(), "lr": learning_rates}

        self.model_ = model
        self.affinity_ = affinity.spec
        self.n_features_in_ = n_features
        self.history_ = history
        self.n_iter_ = self.epochs
        self.labels_ = as_numpy_labels(forward_in_chunks(self.model_, X_train, self.predict_batch_size,
                                                         lambda logits: logits.argmax(dim=1)))
        n_used = len(np.unique(self.labels_))
        if n_used < self.n_clusters:
            warnings.warn(f"{type(self).__name__} used only {n_used} of {self.n_clusters} clusters on the "
                          f"training data (a collapsed solution); increase gamma (now {self.gamma}).",
                          CutbenchWarning, stacklevel=2)
        return self

    def predict(self, X):
        """Assign each row of ``X`` to the cluster with the largest network output.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)
            Any number of points, seen in ``fit`` or not.

        Returns
        -------
        labels : numpy.ndarray of shape (n_samples,), dtype int64
        """
        X = self._validate_predict_input(X)
        return as_numpy_labels(forward_in_chunks(self.model_, X, self.predict_batch_size,
                                                 lambda logits: logits.argmax(dim=1)))

    def predict_proba(self, X):
        """Soft cluster memberships ``softmax(g(X))``.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)

        Returns
        -------
        proba : numpy.ndarray of shape (n_samples, n_clusters)
            Rows sum to one; dtype follows the ``dtype`` parameter.
        """
        X = self._validate_predict_input(X)
        return forward_in_chunks(self.model_, X, self.predict_batch_size,
                                 lambda logits: torch.softmax(logits, dim=1)).numpy()


class NeuNcut(_NeuralCut):
    """Neural Normalized Cut: a softmax MLP trained on a relaxed Ncut loss of mini-batch graphs.

    Follows He et al., "Neural Normalized Cut" (Pattern Recognition 2025), Eq. 9-12 and Algorithm 1,
    with the reference code's conventions by default (see :func:`ncut_loss`). Per batch:
    ``W = batch_affinity(X_b)``, ``d = W.sum(1)``, volumes ``v = dᵀP``,
    ``H = P diag(v + 1e-6)^(-1/2)`` and ``loss = tr(Hᵀ(D − W)H) + γ/2 · orth(HᵀDH − I)``.

    Parameters
    ----------
    n_clusters : int, default=2
        Number of clusters ``k`` (the network's output width).
    affinity : str, dict or Affinity, default="neuncut"
        Per-batch affinity, resolved with ``cutbench.graph.prepare_affinity`` in ``fit`` (so a
        ``SiameseAffinity`` works too). ``"neuncut"`` is the
        reference heat kernel: dense, self-loops, sigma 3 on L2-normalised rows. The reference also
        feeds L2-normalised features to the network; do that in the feature pipeline to reproduce it.
    gamma : float, default=80.0
        Orthogonality weight ``γ >= 0``. 80 is the reference code default; the paper uses 100
        (MNIST, F-MNIST, CIFAR-10, MNIST8M), 150 (TinyImageNet), 350 (E-MNIST), 500 (ImageNet-1k),
        and reports collapse below about 80 on MNIST. Values are tuned for ``orth_norm="fro_over_k"``.
    hidden_dims : tuple of int, default=(512, 512)
        Widths of the ReLU hidden layers (paper's best depth/width).
    lr : float, default=5e-3
        Adam learning rate, cosine-annealed to 0 over ``epochs`` (stepped once per epoch).
    weight_decay : float, default=1e-4
        Adam weight decay (the paper uses 0 for E-MNIST).
    batch_size : int, default=1000
        Mini-batch size ``m``; must satisfy ``n_clusters <= batch_size <= n_samples``. Each epoch is
        one shuffled pass in ``n_samples // batch_size`` batches (the tail is dropped, as in the code).
    epochs : int, default=100
        Passes over the training data (paper: 100 for MNIST; the code default is 300).
    orth_norm : {"fro_over_k", "fro_sq"}, default="fro_over_k"
        Penalty norm: reference code ``‖·‖_F / k`` or paper ``‖·‖²_F``.
    detach_volume : bool, default=False
        ``True`` holds the volume estimate constant in each gradient step (paper's EM description);
        ``False`` back-propagates through it (reference code).
    predict_batch_size : int, default=10000
        Rows per forward pass in ``predict``, ``predict_proba`` and the final labelling.
    device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"
        Where to train and infer.
    random_state : int, numpy.random.Generator or None, default=None
        Seeds the initialisation and the batch order (reproducible on the CPU).
    dtype : {"float32", "float64"}, default="float32"
        Floating-point type of the network and the data on the device.

    Attributes
    ----------
    model_ : torch.nn.Sequential
        The trained network ``g`` (logits; softmax is applied outside), on the fitted device.
    affinity_ : Affinity or SiameseAffinity
        The resolved affinity specification.
    labels_ : numpy.ndarray of shape (n_samples,), dtype int64
        Argmax memberships of the training points after training.
    history_ : dict of list of float
        Per-epoch means over batches of ``"loss"``, ``"trace"`` and ``"orth"``, and the ``"lr"``
        used in that epoch.
    n_features_in_ : int
        Number of input features.
    n_iter_ : int
        Number of epochs run.
    """

    name: ClassVar[str] = "neuncut"

    def _batch_loss(self, P, W):
        return ncut_loss(P, W, gamma=self.gamma, orth_norm=self.orth_norm, detach_volume=self.detach_volume)


class NeuRcut(_NeuralCut):
    """Neural Ratio Cut: the NeuNcut network trained on a relaxed RatioCut loss (paper §4.11).

    Per batch: ``W = batch_affinity(X_b)``, divided by its mean degree when
    ``normalize_affinity=True``; sizes ``s = 1ᵀP``, ``H = P diag(s + 1e-6)^(-1/2)`` and
    ``loss = tr(Hᵀ(D − W)H) + γ/2 · orth(HᵀH − I)`` (Eq. 18; see :func:`rcut_loss`). The paper
    releases no code; network, optimiser and schedule are NeuNcut's ("the same setting").

    The RatioCut trace ``Σ_ℓ cut_ℓ / |V_ℓ|`` grows with the degrees (it is about the mean degree
    times the Ncut value), whereas the penalty does not: with the reference heat kernel and
    ``m = 1000`` the degrees are about 900, so a NeuNcut-sized γ would make the penalty negligible,
    and any fixed γ would mean different things for different affinities and batch sizes. Dividing
    ``W`` by its mean degree ``d̄ = 1ᵀW1 / m`` (a per-batch constant) leaves the RatioCut
    minimisers unchanged, puts the trace on the Ncut scale (equal to it on regular graphs) and lets
    NeuNcut's γ carry over; it is equivalent to the paper's loss with ``γ_paper = γ · d̄``.

    Parameters
    ----------
    n_clusters, affinity, hidden_dims, lr, weight_decay, batch_size, epochs, predict_batch_size, \
device, random_state, dtype
        As in :class:`NeuNcut`.
    gamma : float, default=80.0
        Orthogonality weight, on the mean-degree-normalised scale when ``normalize_affinity`` is
        True, hence the NeuNcut default. With ``normalize_affinity=False`` (the paper's literal
        loss) scale it by the batch mean degree, about ``(batch_size - 1) * 0.9`` for the
        ``"neuncut"`` heat kernel. The paper reports NeuRcut only with the sparse, small-degree
        SENet affinity and "the same setting as NeuNcut" (γ = 100 on MNIST).
    orth_norm : {"fro_over_k", "fro_sq"}, default="fro_over_k"
        ``‖HᵀH − I‖_F / k`` (NeuNcut code convention) or ``‖HᵀH − I‖²_F`` (paper, Eq. 18).
    detach_volume : bool, default=False
        ``True`` holds the size estimate ``s`` constant in each gradient step.
    normalize_affinity : bool, default=True
        Divide each batch affinity by its mean degree before the loss (see above). ``False`` gives
        the paper's loss verbatim.

    Attributes
    ----------
    model_, affinity_, labels_, history_, n_features_in_, n_iter_
        As in :class:`NeuNcut`; ``history_["trace"]`` is on the normalised scale when
        ``normalize_affinity`` is True.
    """

    name: ClassVar[str] = "neurcut"

    def __init__(self, n_clusters=2, *, affinity="neuncut", gamma=80.0, hidden_dims=(512, 512), lr=5e-3,
                 weight_decay=1e-4, batch_size=1000, epochs=100, orth_norm="fro_over_k",
                 detach_volume=False, normalize_affinity=True, predict_batch_size=10000, device="auto",
                 random_state=None, dtype="float32"):
        super().__init__(n_clusters, affinity=affinity, gamma=gamma, hidden_dims=hidden_dims, lr=lr,
                         weight_decay=weight_decay, batch_size=batch_size, epochs=epochs,
                         orth_norm=orth_norm, detach_volume=detach_volume,
                         predict_batch_size=predict_batch_size, device=device, random_state=random_state,
                         dtype=dtype)
        self.normalize_affinity = normalize_affinity

    def _check_hyperparameters(self):
        super()._check_hyperparameters()
        if not isinstance(self.normalize_affinity, bool):
            raise CutbenchError(f"normalize_affinity must be True or False; got {self.normalize_affinity!r}.")

    def _batch_loss(self, P, W):
        if self.normalize_affinity:
            mean_degree = W.sum() / W.shape[0]
            # An all-zero batch graph (e.g. an underflowing kernel) stays zero instead of turning NaN.
            W = W / mean_degree.clamp_min(torch.finfo(W.dtype).tiny)
        return rcut_loss(P, W, gamma=self.gamma, orth_norm=self.orth_norm, detach_volume=self.detach_volume)


__all__ = ["NeuNcut", "NeuRcut", "ncut_loss", "rcut_loss", "build_mlp", "ORTH_NORMS", "SIZE_EPS"]
