"""CNC: clustering by learning to optimise expected normalised cuts (Nazi et al., arXiv 1910.07623).

A network ``F`` maps each point to ``k`` logits ``Z``; during training the memberships are a
Gumbel-softmax sample ``P = softmax((Z + g) / τ)``. Per mini-batch with affinity ``W`` (degrees
``d = W 1``) the loss is the expected normalised cut of paper Eq. 6,

    E = Σ_reduce (P ⊘ Γ)(1 − P)ᵀ ⊙ W = Σ_ℓ Σ_ij W_ij P_iℓ (1 − P_jℓ) / Γ_ℓ,      Γ = Pᵀ d,

optionally plus the reference code's balance prior ``mean_ℓ (Σ_i P_iℓ − m/k)²``. Inference is the
deterministic ``argmax Z`` (paper Algorithm 1, line 9).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from cutbench import CutbenchError
from cutbench._validation import check_batch_size, seed_generators
from cutbench.affinity import check_batch_size_for, prepare_affinity
from cutbench.graph import Affinity
from cutbench.methods.base import AFFINITY, EVERY_AFFINITY, Capabilities, ClusteringMethod
from cutbench.params import Interval, Options, Widths
from cutbench.training import (
    DTYPE_CONSTRAINT,
    DTYPES,
    Trainer,
    argmax_labels,
    plateau_schedule,
    seeded_mlp,
    softmax_memberships,
    warn_if_collapsed,
)

OPTIMIZERS = ("adam", "rmsprop")
"""``"adam"``: the paper (§5.7). ``"rmsprop"``: the reference code (TF1 RMSProp, decay 0.9, epsilon 1e-10)."""

GUMBEL_EPS = 1e-20
"""Inside both logarithms of the Gumbel noise, as in the reference code."""

TAU_UPDATE_EVERY = 20
"""The reference updates the temperature at the end of every epoch whose index is a multiple of 20."""

MIN_LR = 1e-9
"""Training stops once the learning rate has been dropped to this value or below (reference code)."""

PRESETS = {
    # Paper §5.7 (the clustering-net settings; the paper feeds Siamese/AE embeddings to the net).
    "mnist": dict(hidden_dims=(512, 512), batch_size=256, affinity=Affinity(n_neighbors=2, self_loops=True),
                  lr=5e-3, lr_drop=0.5, tau_start=1.5, tau_min=0.5),
    "reuters": dict(hidden_dims=(512, 512, 512), batch_size=128, affinity=Affinity(n_neighbors=2, self_loops=True),
                    lr=1e-4, lr_drop=0.5, tau_start=1.5, tau_min=1.0),
    "cifar10": dict(hidden_dims=(512, 512), batch_size=256, affinity=Affinity(n_neighbors=1, self_loops=True),
                    lr=1e-4, lr_drop=0.1, tau_start=2.5, tau_min=0.5),
    "cifar100": dict(hidden_dims=(512, 512, 512), batch_size=1024, affinity=Affinity(n_neighbors=2, self_loops=True),
                     lr=1e-3, lr_drop=0.5, tau_start=1.5, tau_min=1.0),
    # The released code's MNIST run (setup.py / networks.py): RMSProp, floor 1.0, balance prior 0.01.
    "mnist_code": dict(hidden_dims=(512, 512), batch_size=256, affinity=Affinity(n_neighbors=2, self_loops=True),
                       lr=5e-3, lr_drop=0.5, tau_start=1.5, tau_min=1.0, optimizer="rmsprop", balance_weight=0.01),
}
"""Per-dataset constructor arguments (methods.md §7.4). "k nearest neighbours" in the paper counts the
point itself (the code keeps the 3 nearest including self), hence ``n_neighbors = k - 1`` plus self-loops."""


# --------------------------------------------------------------------------------------------
# Loss pieces
# --------------------------------------------------------------------------------------------
def expected_ncut_loss(P, W):
    """Expected normalised cut of soft memberships on a batch graph (paper Eq. 6).

    Parameters
    ----------
    P : torch.Tensor of shape (m, k)
        Memberships (rows on the probability simplex).
    W : torch.Tensor of shape (m, m)
        Symmetric nonnegative affinity; a constant.

    Returns
    -------
    torch.Tensor
        ``Σ_ℓ Σ_ij W_ij P_iℓ (1 − P_jℓ) / Γ_ℓ`` with ``Γ = Pᵀ (W 1)`` (not detached, as in the code).
        For one-hot ``P`` it is the Ncut value of the labelling; a cluster with ``Γ_ℓ = 0`` (empty)
        contributes 0.
    """
    volumes = W.sum(dim=1) @ P
    # Σ_ij W_ij P_iℓ (1 − P_jℓ) = Γ_ℓ − P_ℓᵀ W P_ℓ for symmetric W: no m×m×k tensor is formed.
    expected_cuts = volumes - (P * (W @ P)).sum(dim=0)
    # An empty cluster has Γ_ℓ = 0 and cut 0: clamping makes it 0 instead of 0/0 = NaN.
    return (expected_cuts / volumes.clamp_min(torch.finfo(P.dtype).tiny)).sum()


def balance_penalty(P):
    """The reference code's balance prior: ``mean_ℓ (Σ_i P_iℓ − m/k)²`` (squared counts, not normalised)."""
    m, k = P.shape
    return (P.sum(dim=0) - m / k).square().mean()


def gumbel_softmax(logits, tau, generator):
    """Soft Gumbel-softmax sample ``softmax((Z + g) / τ)``, ``g = −log(−log(u + ε) + ε)``, ``u ~ U[0, 1)``.

    ``generator`` must live on the device of ``logits``.
    """
    uniform = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    gumbel = -torch.log(-torch.log(uniform + GUMBEL_EPS) + GUMBEL_EPS)
    return torch.softmax((logits + gumbel) / tau, dim=1)


def temperature_schedule(tau_start, tau_min, epochs, decay=3e-5):
    """Temperature used in each epoch, reproducing the reference ``LearningHandler``.

    At the end of every epoch ``e`` with ``e % 20 == 0`` the code sets ``τ ← max(τ·exp(−decay·e), τ_min)``;
    the decay compounds, so after epoch ``20j`` the exponent is ``decay·20·j(j+1)/2``.

    Parameters
    ----------
    tau_start, tau_min : float
        Initial temperature and floor.
    epochs : int
        Number of epochs.
    decay : float, default=3e-5

    Returns
    -------
    list of float
        ``taus[e]`` is the temperature of epoch ``e``.
    """
    taus, tau = [], float(tau_start)
    for epoch in range(epochs):
        taus.append(tau)
        if epoch % TAU_UPDATE_EVERY == 0:
            tau = max(tau * math.exp(-decay * epoch), tau_min)
    return taus


# --------------------------------------------------------------------------------------------
# Estimator
# --------------------------------------------------------------------------------------------
class CNC(ClusteringMethod):
    """CNC: a network trained on the expected normalised cut of mini-batch kNN graphs.

    Per step: a batch of ``batch_size`` points drawn uniformly without replacement, its affinity
    ``W = batch_affinity(X_B)``, memberships ``P = gumbel_softmax(F(X_B), τ)`` and
    ``loss = expected_ncut_loss(P, W) + balance_weight · balance_penalty(P)``. An epoch is
    ``steps_per_epoch`` steps; the temperature follows :func:`temperature_schedule`, and the learning
    rate is multiplied by ``lr_drop`` whenever the epoch loss has not improved for more than
    ``patience`` epochs, stopping once it reaches 1e-9.

    Follows the paper (Nazi et al., §4, Eq. 6, §5.7 and Algorithm 1) by default: Adam, no balance
    term, the MNIST temperature floor 0.5, and the deterministic ``argmax`` of the logits at
    inference. Follows the reference code (``google-research/clustering_normalized_cuts``) in what the
    paper leaves open: tanh hidden layers with a linear output, Glorot initialisation, the compounding
    temperature schedule, soft (never straight-through) Gumbel samples, volumes not detached,
    100-step epochs, patience 35. Options expose the code's divergences: ``optimizer="rmsprop"``,
    ``balance_weight=0.01``, ``tau_min=1.0`` (preset ``"mnist_code"``).

    Divergences from both: the reference samples Gumbel noise at prediction time too, so its labels
    are random; here ``predict`` is ``argmax F(X)``. The plateau rule watches the training loss of
    the epoch (the code watches a held-out validation loss). The per-batch affinity is a
    :class:`~cutbench.graph.Affinity` (the code's bandwidth is one global median distance to the
    5th neighbour of 256 Siamese embeddings). ``optimizer="rmsprop"`` is torch's RMSprop with TF1's
    decay 0.9 and epsilon 1e-10, but torch starts the squared-gradient average at 0 and adds epsilon
    outside the square root, where TF1 starts at 1 and adds it inside.

    Parameters
    ----------
    n_clusters : int, default=2
        Number of clusters ``k`` (the network's output width).
    affinity : str, dict, Affinity or SiameseAffinity, default="cnc"
        Per-batch affinity (:func:`cutbench.affinity.prepare_affinity`). The default preset is the
        reference's 3 nearest neighbours counting the point itself, median bandwidth.
    hidden_dims : tuple of int, default=(512, 512)
        Widths of the tanh hidden layers (paper MNIST).
    lr : float, default=5e-3
        Initial learning rate (paper MNIST).
    lr_drop : float, default=0.5
        Factor in (0, 1) applied to the learning rate on a plateau (paper "decay").
    patience : int, default=35
        Epochs without improvement tolerated before a drop (reference code).
    optimizer : {"adam", "rmsprop"}, default="adam"
    batch_size : int, default=256
        Points per step, ``n_clusters <= batch_size <= n_samples`` and above ``affinity.n_neighbors``.
    steps_per_epoch : int, default=100
        Steps per epoch, the unit of the temperature and learning-rate schedules (reference: 100).
    epochs : int, default=1000
        Maximum number of epochs (reference: 1000, i.e. 100k steps).
    tau_start : float, default=1.5
    tau_min : float, default=0.5
        Temperature start and floor (paper MNIST; the code's floor is 1.0).
    tau_decay : float, default=3e-5
        Rate of the compounding temperature decay (reference code).
    balance_weight : float, default=0.0
        Weight of :func:`balance_penalty`; 0 is the paper, 0.01 the reference code.
    predict_batch_size : int, default=10000
        Rows per forward pass at inference.
    device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"
    random_state : int, numpy.random.Generator or None, default=None
        Seeds the initialisation, the batches and the Gumbel noise (reproducible on the CPU).
    dtype : {"float32", "float64"}, default="float32"

    Attributes
    ----------
    model_ : torch.nn.Sequential
        The trained network (logits), on the fitted device.
    affinity_ : Affinity
    tau_ : float
        Temperature of the last epoch; ``predict_proba`` uses it without noise.
    labels_ : numpy.ndarray of shape (n_samples,), dtype int64
    history_ : dict of list of float
        Per epoch: mean ``"loss"``, ``"expected_ncut"`` and ``"balance"`` over its steps, and the
        ``"tau"`` and ``"lr"`` used.
    n_features_in_ : int
    n_iter_ : int
        Epochs run (fewer than ``epochs`` when the learning rate reached 1e-9).
    """

    name: ClassVar[str] = "cnc"
    capabilities: ClassVar[Capabilities] = Capabilities(gpu=True, minibatch=True, out_of_sample=True,
                                                        affinity_kinds=EVERY_AFFINITY)
    check_params: ClassVar[dict] = {"affinity": {"n_neighbors": 3, "self_loops": True}, "hidden_dims": (16,),
                                  "batch_size": 10, "epochs": 20, "steps_per_epoch": 10, "lr": 0.02,
                                  "balance_weight": 0.01}
    _parameter_constraints: ClassVar[dict] = {
        **ClusteringMethod._parameter_constraints,
        "affinity": [AFFINITY],
        "hidden_dims": [Widths()],
        "lr": [Interval(float, 0, None, closed="neither")],
        "lr_drop": [Interval(float, 0, 1, closed="neither")],
        "patience": [Interval(int, 0)],
        "optimizer": [Options(*OPTIMIZERS)],
        "batch_size": [Interval(int, 1)],
        "steps_per_epoch": [Interval(int, 1)],
        "epochs": [Interval(int, 1)],
        "tau_start": [Interval(float, 0, None, closed="neither")],
        "tau_min": [Interval(float, 0, None, closed="neither")],
        "tau_decay": [Interval(float, 0)],
        "balance_weight": [Interval(float, 0)],
        "predict_batch_size": [Interval(int, 1)],
        "dtype": [DTYPE_CONSTRAINT],
    }

    def __init__(self, n_clusters=2, *, affinity="cnc", hidden_dims=(512, 512), lr=5e-3, lr_drop=0.5, patience=35,
                 optimizer="adam", batch_size=256, steps_per_epoch=100, epochs=1000, tau_start=1.5, tau_min=0.5,
                 tau_decay=3e-5, balance_weight=0.0, predict_batch_size=10000, device="auto", random_state=None,
                 dtype="float32"):
        self.n_clusters = n_clusters
        self.affinity = affinity
        self.hidden_dims = hidden_dims
        self.lr = lr
        self.lr_drop = lr_drop
        self.patience = patience
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.epochs = epochs
        self.tau_start = tau_start
        self.tau_min = tau_min
        self.tau_decay = tau_decay
        self.balance_weight = balance_weight
        self.predict_batch_size = predict_batch_size
        self.device = device
        self.random_state = random_state
        self.dtype = dtype

    def _check_param_relations(self):
        if self.tau_start < self.tau_min:
            raise CutbenchError(f"CNC: tau_start must be a number >= tau_min = {self.tau_min}; got {self.tau_start!r}. "
                                "The temperature starts at or above its floor.")

    def _make_optimizer(self, parameters):
        if self.optimizer == "adam":
            return torch.optim.Adam(parameters, lr=self.lr)
        return torch.optim.RMSprop(parameters, lr=self.lr, alpha=0.9, eps=1e-10)

    def _fit(self, X):
        n_samples, n_features = X.shape
        batch_size = check_batch_size(self.batch_size, n_samples, self.n_clusters)
        device = self._device()
        dtype = DTYPES[self.dtype]
        rng, generator, seed = seed_generators(self.random_state)
        # A separate stream on the device for the noise, so CPU batches and init stay device-independent.
        noise_generator = torch.Generator(device=device).manual_seed(int(rng.integers(0, 2**62)))

        X_train = torch.as_tensor(X).to(device=device, dtype=dtype)
        affinity = prepare_affinity(self.affinity, X_train, device=device, random_state=seed)
        check_batch_size_for(affinity, batch_size)
        model = seeded_mlp([n_features, *self.hidden_dims, self.n_clusters], activation="tanh", init="glorot",
                           generator=generator, dtype=dtype).to(device)
        optimizer = self._make_optimizer(model.parameters())
        trainer = Trainer("CNC", model, optimizer, terms=("loss", "expected_ncut", "balance"),
                          scheduler=plateau_schedule(optimizer, factor=self.lr_drop, patience=self.patience,
                                                     strict=True),
                          min_lr=MIN_LR,
                          # Seen when a cluster empties: its expected volume underflows and the gradient
                          # ~ 1/Γ overflows the optimiser's squared-gradient average.
                          hint="usually a cluster collapsed (its expected volume underflows). Use "
                               f"balance_weight=0.01 (reference code), dtype='float64', or a lower lr (now {self.lr}).")
        taus = temperature_schedule(self.tau_start, self.tau_min, self.epochs, self.tau_decay)

        def epoch_steps(epoch):
            for _ in range(self.steps_per_epoch):
                batch = torch.randperm(n_samples, generator=generator)[:batch_size].to(device)
                W = affinity.batch(batch)
                P = gumbel_softmax(model(X_train[batch]), taus[epoch], noise_generator)
                expected_ncut = expected_ncut_loss(P, W)
                balance = balance_penalty(P)
                loss = expected_ncut + self.balance_weight * balance
                yield loss, torch.stack([loss.detach(), expected_ncut.detach(), balance.detach()])

        history = trainer.run(self.epochs, epoch_steps)
        history["tau"] = taus[:len(history["loss"])]
        self.history_ = history
        self.model_ = model
        self.affinity_ = affinity.spec
        self.tau_ = history["tau"][-1]
        self.n_iter_ = len(history["loss"])
        self.labels_ = argmax_labels(model, X_train, self.predict_batch_size)
        warn_if_collapsed("CNC", self.labels_, self.n_clusters,
                          "try balance_weight=0.01 (reference code) or a larger batch_size.")

    def _predict(self, X):
        """Deterministic assignment ``argmax F(X)`` (no Gumbel noise, unlike the reference code)."""
        return argmax_labels(self.model_, X, self.predict_batch_size)

    def _predict_proba(self, X):
        """Noise-free memberships ``softmax(F(X) / tau_)``."""
        return softmax_memberships(self.model_, X, self.predict_batch_size, self.tau_)


__all__ = ["CNC", "expected_ncut_loss", "balance_penalty", "gumbel_softmax", "temperature_schedule", "PRESETS",
           "OPTIMIZERS"]
