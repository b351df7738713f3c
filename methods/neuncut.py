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

import dataclasses
import warnings
from dataclasses import dataclass
from typing import ClassVar

import torch

from cutbench import CutbenchError, CutbenchWarning
from cutbench._validation import check_batch_size, seed_generators
from cutbench.affinity import prepare_affinity
from cutbench.criteria import FLOOR_TOLERANCE, choose_gamma, on_floor
from cutbench.methods.base import AFFINITY, EVERY_AFFINITY, Capabilities, ClusteringMethod
from cutbench.params import Boolean, Interval, Options, Widths
from cutbench.training import (
    DTYPE_CONSTRAINT,
    DTYPES,
    Trainer,
    argmax_labels,
    seeded_mlp,
    softmax_memberships,
    warn_if_collapsed,
)

ORTH_NORMS = ("fro_over_k", "fro_sq")
"""Accepted ``orth_norm`` values: reference code (``‖·‖_F / k``) and paper (``‖·‖²_F``)."""

SIZE_EPS = 1e-6
"""Added to each cluster-size estimate before the inverse square root, as in the reference code."""


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
# Estimators
# --------------------------------------------------------------------------------------------
class _NeuralCut(ClusteringMethod):
    """Shared estimator for NeuNcut and NeuRcut; subclasses define the per-batch loss."""

    capabilities: ClassVar[Capabilities] = Capabilities(gpu=True, minibatch=True, out_of_sample=True,
                                                        affinity_kinds=EVERY_AFFINITY)
    check_params: ClassVar[dict] = {"affinity": {"n_neighbors": 3}, "hidden_dims": (16,), "batch_size": 10,
                                  "epochs": 30, "lr": 0.02}
    _parameter_constraints: ClassVar[dict] = {
        **ClusteringMethod._parameter_constraints,
        "affinity": [AFFINITY],
        "gamma": [Interval(float, 0)],
        "hidden_dims": [Widths()],
        "lr": [Interval(float, 0, None, closed="neither")],
        "weight_decay": [Interval(float, 0)],
        "batch_size": [Interval(int, 1)],
        "epochs": [Interval(int, 1)],
        "orth_norm": [Options(*ORTH_NORMS)],
        "detach_volume": [Boolean()],
        "predict_batch_size": [Interval(int, 1)],
        "dtype": [DTYPE_CONSTRAINT],
    }

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

    def _fit(self, X):
        n_samples, n_features = X.shape
        batch_size = check_batch_size(self.batch_size, n_samples, self.n_clusters)
        device = self._device()
        dtype = DTYPES[self.dtype]
        _, generator, seed = seed_generators(self.random_state)

        X_train = torch.as_tensor(X).to(device=device, dtype=dtype)
        affinity = prepare_affinity(self.affinity, X_train, device=device, random_state=seed)
        model = seeded_mlp([n_features, *self.hidden_dims, self.n_clusters], activation="relu", init="neuncut",
                           generator=generator, dtype=dtype).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        trainer = Trainer(type(self).__name__, model, optimizer, terms=("loss", "trace", "orth"),
                          scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.epochs,
                                                                               eta_min=0),
                          hint=f"lower lr (now {self.lr}) or use dtype='float64'.")
        n_batches = n_samples // batch_size  # the reference drops the tail of each shuffled pass

        def epoch_steps(epoch):
            # Shuffled on the CPU generator, so the batches are the same on every device.
            order = torch.randperm(n_samples, generator=generator).to(device)
            for batch in range(n_batches):
                batch_index = order[batch * batch_size:(batch + 1) * batch_size]
                with torch.no_grad():
                    W = affinity.batch(batch_index)
                P = torch.softmax(model(X_train[batch_index]), dim=1)
                loss, trace_term, orth_term = self._batch_loss(P, W)
                yield loss, torch.stack([loss.detach(), trace_term.detach(), orth_term.detach()])

        self.history_ = trainer.run(self.epochs, epoch_steps)
        self.model_ = model
        self.affinity_ = affinity.spec
        self.n_iter_ = self.epochs
        self.labels_ = argmax_labels(model, X_train, self.predict_batch_size)
        warn_if_collapsed(type(self).__name__, self.labels_, self.n_clusters, f"increase gamma (now {self.gamma}).")

    def _predict(self, X):
        """Assign each row of ``X`` to the cluster with the largest network output."""
        return argmax_labels(self.model_, X, self.predict_batch_size)

    def _predict_proba(self, X):
        """Soft cluster memberships ``softmax(g(X))``; dtype follows the ``dtype`` parameter."""
        return softmax_memberships(self.model_, X, self.predict_batch_size)


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
    affinity : str, dict, Affinity or SiameseAffinity, default="neuncut"
        Per-batch affinity, resolved with :func:`cutbench.affinity.prepare_affinity` in ``fit`` (so a
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
    _parameter_constraints: ClassVar[dict] = {**_NeuralCut._parameter_constraints, "normalize_affinity": [Boolean()]}

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

    def _batch_loss(self, P, W):
        if self.normalize_affinity:
            mean_degree = W.sum() / W.shape[0]
            # An all-zero batch graph (e.g. an underflowing kernel) stays zero instead of turning NaN.
            W = W / mean_degree.clamp_min(torch.finfo(W.dtype).tiny)
        return rcut_loss(P, W, gamma=self.gamma, orth_norm=self.orth_norm, detach_volume=self.detach_volume)


# --------------------------------------------------------------------------------------------
# Label-free choice of gamma (paper §4.6)
# --------------------------------------------------------------------------------------------
DEFAULT_GAMMAS = (1e6, 1e4, 1e3, 500.0, 300.0, 240.0, 200.0, 160.0, 120.0, 100.0, 80.0, 60.0, 40.0, 20.0, 10.0, 1.0)
"""The penalty weights :func:`search_gamma` tries by default, from very large down."""


@dataclass(frozen=True)
class GammaSearch:
    """The outcome of :func:`search_gamma`.

    Attributes
    ----------
    gammas : tuple of float
        The penalty weights tried, decreasing.
    laplacian, orthogonality : tuple of float
        For each, the lowest epoch mean of ``L_Lap`` (the trace term) and of ``L_orth`` over training.
    floor : float
        The lowest ``L_orth`` at the largest gamma: the floor of the orthogonality term.
    chosen : float
        The smallest gamma, scanning down from the largest, whose ``L_orth`` stays within ``tolerance``
        of the floor: the lowest ``L_Lap`` that keeps the floor.
    tolerance : float
        Relative tolerance on the floor.
    """

    gammas: tuple
    laplacian: tuple
    orthogonality: tuple
    floor: float
    chosen: float
    tolerance: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def keeps_floor(self) -> tuple[bool, ...]:
        """For each gamma, whether its lowest ``L_orth`` stays on the floor (within ``tolerance``)."""
        return tuple(on_floor(orth, self.floor, self.tolerance) for orth in self.orthogonality)


def search_gamma(X, n_clusters: int, *, gammas=DEFAULT_GAMMAS, tolerance: float = FLOOR_TOLERANCE, method=None,
                 **params) -> GammaSearch:
    """Choose NeuNcut's gamma without labels, by the rule of the paper's §4.6.

    Train with a very large gamma and record the lowest ``L_orth`` reached: the floor of the
    orthogonality term. Then decrease gamma: the lowest ``L_Lap`` while ``L_orth`` keeps that floor
    marks the smallest feasible gamma. Below it ``L_orth`` rises off the floor and the clusters
    collapse (``L_Lap`` drops towards 0).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Training points (no labels are used).
    n_clusters : int
    gammas : sequence of float, default=DEFAULT_GAMMAS
        Penalty weights to try; they are tried from the largest down.
    tolerance : float, default=0.02
        ``L_orth`` keeps the floor while it is at most ``floor * (1 + tolerance) + 1e-6``.
    method : type, optional
        :class:`NeuNcut` (default) or :class:`NeuRcut`.
    **params
        Any other parameters of the method (epochs, batch size, affinity, seed...).

    Returns
    -------
    GammaSearch
    """
    if not gammas or tolerance < 0:
        raise CutbenchError("search_gamma needs at least one gamma and a tolerance >= 0.")
    method = NeuNcut if method is None else method
    gammas = tuple(sorted((float(g) for g in gammas), reverse=True))
    laplacian, orthogonality = [], []
    for gamma in gammas:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CutbenchWarning)  # collapse below the threshold is expected
            history = method(n_clusters, **{**params, "gamma": gamma}).fit(X).history_
        laplacian.append(min(history["trace"]))
        orthogonality.append(min(history["orth"]))
    floor, chosen = choose_gamma(gammas, orthogonality, tolerance)
    return GammaSearch(gammas, tuple(laplacian), tuple(orthogonality), floor, chosen, tolerance)


__all__ = ["DEFAULT_GAMMAS", "GammaSearch", "NeuNcut", "NeuRcut", "ORTH_NORMS", "SIZE_EPS", "choose_gamma", "ncut_loss",
           "on_floor", "rcut_loss", "search_gamma"]
