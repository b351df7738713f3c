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
import warnings
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from cutbench import CutbenchError, CutbenchWarning
from cutbench._validation import check_batch_size, check_hidden_dims, check_number, seed_generators
from cutbench.graph import Affinity, batch_affinity
from cutbench.methods.base import Capabilities, ClusteringMethod, as_numpy_labels, forward_in_chunks

OPTIMIZERS = ("adam", "rmsprop")
"""``"adam"``: the paper (§5.7). ``"rmsprop"``: the reference code (TF1 RMSProp, decay 0.9, epsilon 1e-10)."""

GUMBEL_EPS = 1e-20
"""Inside both logarithms of the Gumbel noise, as in the reference code."""

TAU_UPDATE_EVERY = 20
"""The reference updates the temperature at the end of every epoch whose index is a multiple of 20."""

MIN_LR = 1e-9
"""Training stops once the learning rate has been dropped to this value or below (reference code)."""

_DTYPES = {"float32": torch.float32, "float64": torch.float64}

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


def build_cnc_net(n_features, hidden_dims, n_clusters, *, generator, dtype=torch.float32) -> nn.Sequential:
    """Tanh hidden layers and a linear layer to ``k`` logits (the reference ``CncNet``).

    Keras' default initialisation of the reference: Glorot-uniform weights, zero biases, drawn from the
    CPU ``generator`` only (layers are created on the meta device) so a seed gives the same network on
    every device.
    """
    widths = [n_features, *hidden_dims, n_clusters]
    layers: list[nn.Module] = []
    for width_in, width_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(width_in, width_out, device="meta", dtype=dtype), nn.Tanh()]
    model = nn.Sequential(*layers[:-1]).to_empty(device="cpu")
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight, generator=generator)
                layer.bias.zero_()
    return model


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
    affinity : str, dict or Affinity, default=Affinity(n_neighbors=2, self_loops=True)
        Per-batch affinity. The default is the reference's 3 nearest neighbours counting the point
        itself, median bandwidth.
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
    capabilities: ClassVar[Capabilities] = Capabilities(gpu=True, minibatch=True, out_of_sample=True)

    def __init__(self, n_clusters=2, *, affinity=Affinity(n_neighbors=2, self_loops=True), hidden_dims=(512, 512),
                 lr=5e-3, lr_drop=0.5, patience=35, optimizer="adam", batch_size=256, steps_per_epoch=100,
                 epochs=1000, tau_start=1.5, tau_min=0.5, tau_decay=3e-5, balance_weight=0.0,
                 predict_batch_size=10000, device="auto", random_state=None, dtype="float32"):
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

    def _check_params(self, n_samples: int, affinity: Affinity) -> int:
        """Validate the hyper-parameters; return the batch size."""
        batch_size = check_batch_size(self.batch_size, n_samples, self.n_clusters)
        if affinity.n_neighbors is not None and affinity.n_neighbors >= batch_size:
            raise CutbenchError(f"the batch affinity asks for n_neighbors={affinity.n_neighbors} but a batch has "
                                f"only batch_size={batch_size} points (at most {batch_size - 1} neighbours each); "
                                f"use batch_size > {affinity.n_neighbors} or fewer neighbours.")
        if self.optimizer not in OPTIMIZERS:
            raise CutbenchError(f"optimizer must be one of {OPTIMIZERS} ('adam': paper, 'rmsprop': reference "
                                f"code); got {self.optimizer!r}.")
        if self.dtype not in _DTYPES:
            raise CutbenchError(f"dtype must be one of {tuple(_DTYPES)}; got {self.dtype!r}.")
        check_number("lr", self.lr, minimum=0, strict=True)
        check_number("lr_drop", self.lr_drop, minimum=0, strict=True)
        if self.lr_drop >= 1:
            raise CutbenchError(f"lr_drop must be in (0, 1); got {self.lr_drop!r}.")
        check_number("patience", self.patience, minimum=0, integer=True)
        check_number("steps_per_epoch", self.steps_per_epoch, minimum=1, integer=True)
        check_number("epochs", self.epochs, minimum=1, integer=True)
        check_number("tau_min", self.tau_min, minimum=0, strict=True)
        check_number("tau_start", self.tau_start, minimum=self.tau_min,
                     hint=" The temperature starts at or above its floor tau_min.")
        check_number("tau_decay", self.tau_decay, minimum=0)
        check_number("balance_weight", self.balance_weight, minimum=0,
                     hint=" Use 0 (paper) or 0.01 (reference code).")
        check_number("predict_batch_size", self.predict_batch_size, minimum=1, integer=True)
        check_hidden_dims(self.hidden_dims)
        return batch_size

    def _make_optimizer(self, parameters):
        if self.optimizer == "adam":
            return torch.optim.Adam(parameters, lr=self.lr)
        return torch.optim.RMSprop(parameters, lr=self.lr, alpha=0.9, eps=1e-10)

    def fit(self, X, y=None):
        """Train the network on ``X`` and label it with ``argmax`` of the logits.

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
        affinity = Affinity.from_any(self.affinity)
        batch_size = self._check_params(n_samples, affinity)
        device = self._device()
        dtype = _DTYPES[self.dtype]
        rng, generator, _ = seed_generators(self.random_state)
        # A separate stream on the device for the noise, so CPU batches and init stay device-independent.
        noise_generator = torch.Generator(device=device).manual_seed(int(rng.integers(0, 2**62)))

        X_train = torch.as_tensor(X).to(device=device, dtype=dtype)
        model = build_cnc_net(n_features, tuple(self.hidden_dims), self.n_clusters, generator=generator,
                              dtype=dtype).to(device)
        optimizer = self._make_optimizer(model.parameters())
        taus = temperature_schedule(self.tau_start, self.tau_min, self.epochs, self.tau_decay)
        history = {"loss": [], "expected_ncut": [], "balance": [], "tau": [], "lr": []}
        best_loss, epochs_without_improvement = math.inf, 0
        for epoch, tau in enumerate(taus):
            lr = optimizer.param_groups[0]["lr"]
            totals = torch.zeros(3, device=device, dtype=dtype)
            for _ in range(self.steps_per_epoch):
                batch = torch.randperm(n_samples, generator=generator)[:batch_size].to(device)
                X_batch = X_train[batch]
                W = batch_affinity(X_batch, affinity)
                P = gumbel_softmax(model(X_batch), tau, noise_generator)
                expected_ncut = expected_ncut_loss(P, W)
                balance = balance_penalty(P)
                loss = expected_ncut + self.balance_weight * balance
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                totals += torch.stack([loss.detach(), expected_ncut.detach(), balance.detach()])
            mean_loss, mean_ncut, mean_balance = (totals / self.steps_per_epoch).tolist()  # one host sync
            if not math.isfinite(mean_loss):
                # Seen when a cluster empties: its expected volume underflows and the gradient ~ 1/Γ
                # overflows the optimiser's squared-gradient average.
                raise CutbenchError(f"CNC training diverged at epoch {epoch + 1} (loss={mean_loss}), usually because "
                                    "a cluster collapsed (its expected volume underflows). Use balance_weight=0.01 "
                                    f"(reference code), dtype='float64', or a lower lr (now {self.lr}).")
            for key, value in zip(history, (mean_loss, mean_ncut, mean_balance, tau, lr)):
                history[key].append(value)
            if mean_loss < best_loss:
                best_loss, epochs_without_improvement = mean_loss, 0
            else:
                epochs_without_improvement += 1
            if epochs_without_improvement > self.patience:
                for group in optimizer.param_groups:
                    group["lr"] *= self.lr_drop
                epochs_without_improvement = 0
                if optimizer.param_groups[0]["lr"] <= MIN_LR:
                    break

        self.model_ = model
        self.affinity_ = affinity
        self.tau_ = history["tau"][-1]
        self.n_features_in_ = n_features
        self.history_ = history
        self.n_iter_ = len(history["loss"])
        self.labels_ = as_numpy_labels(forward_in_chunks(self.model_, X_train, self.predict_batch_size,
                                                         lambda logits: logits.argmax(dim=1)))
        n_used = len(np.unique(self.labels_))
        if n_used < self.n_clusters:
            warnings.warn(f"CNC used only {n_used} of {self.n_clusters} clusters on the training data (a collapsed "
                          "solution); try balance_weight=0.01 (reference code) or a larger batch_size.",
                          CutbenchWarning, stacklevel=2)
        return self

    def predict(self, X):
        """Deterministic assignment ``argmax F(X)`` (no Gumbel noise, unlike the reference code).

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)
            Any points, seen in ``fit`` or not.

        Returns
        -------
        labels : numpy.ndarray of shape (n_samples,), dtype int64
        """
        X = self._validate_predict_input(X)
        return as_numpy_labels(forward_in_chunks(self.model_, X, self.predict_batch_size,
                                                 lambda logits: logits.argmax(dim=1)))

    def predict_proba(self, X):
        """Noise-free memberships ``softmax(F(X) / tau_)``.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)

        Returns
        -------
        proba : numpy.ndarray of shape (n_samples, n_clusters)
        """
        X = self._validate_predict_input(X)
        return forward_in_chunks(self.model_, X, self.predict_batch_size,
                                 lambda logits: torch.softmax(logits / self.tau_, dim=1)).numpy()


__all__ = ["CNC", "expected_ncut_loss", "balance_penalty", "gumbel_softmax", "temperature_schedule",
           "build_cnc_net", "PRESETS", "OPTIMIZERS"]
