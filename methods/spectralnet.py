"""SpectralNet: a network whose orthonormalised outputs minimise the Laplacian quadratic form of batch graphs.

Shaham, Stanton, Li, Nadler, Basri, Kluger, "SpectralNet: Spectral Clustering using Deep Neural Networks"
(ICLR 2018). The network ``f`` ends in ``k`` tanh units followed by a linear orthonormalisation layer
``Y = f(X) · A`` with ``A`` chosen on an independent batch so that ``Yᵀ Y = m I`` there. Each step draws
two batches of ``m`` points: on the *orthonormalisation* batch ``Ỹ = f(X_o)`` is factored as ``Ỹ = Q T``
(``T`` upper triangular with a positive diagonal) and ``A = sqrt(m) T⁻¹``; on the *gradient* batch the loss

    Σ_ij W_ij ||y_i - y_j||² / (2m) = tr(Yᵀ (D - W) Y) / m

is minimised with ``W`` the batch affinity, so the columns of ``Y`` approach the bottom eigenvectors of the
unnormalised graph Laplacian. Clustering is k-means on ``Y`` of all points, with the stored ``A`` of the
last step; new points are embedded the same way and assigned to the nearest k-means centre.

Where the paper, the original TF code (``KlugerLab/SpectralNet``) and the PyTorch code
(``shaham-lab/SpectralNet``) differ, each variant is an option:

* ``orth_grad="through"`` (default; both codes) back-propagates through the factorisation of the
  orthonormalisation batch; ``"detached"`` holds ``A`` constant in the gradient step, as the paper says.
* ``orthonorm="qr"`` (PyTorch code, with the positive-diagonal canonicalisation of its later PR #10)
  or ``"cholesky"`` (TF code: Cholesky of ``ỸᵀỸ + 1e-7 I``). Both run in float64; in exact arithmetic
  they give the same ``T``.
* ``scale="global_median"`` (default; TF code): one ``sigma`` computed before training, the median over a
  random sample of ``batch_size`` points of the distance to the ``scale_neighbor``-th nearest point of
  the sample (the point itself counts as the first), then ``exp(-d² / (2 sigma²))``.
  ``scale="batch_median"`` (PyTorch code, ``is_local_scale=False``): one ``sigma`` per batch, the median
  over the batch of the distance to the ``scale_neighbor``-th nearest point of the batch, and
  ``exp(-d² / sigma²)`` without the factor 2. ``scale="local_median"`` (PyTorch code, its default):
  ``sigma_j`` = median of the distances from ``j`` to its ``n_neighbors`` nearest points and itself, and
  ``W_ij = exp(-d_ij² / sigma_j²)`` indexed by the column, without the factor 2, as that code does.
  ``scale="affinity"`` uses the affinity's own ``sigma``.
* Both codes use the unnormalised Laplacian (the paper also discusses the normalised one); so does this.
* Epochs are ``steps_per_epoch`` random batches (TF: 100) or, with ``steps_per_epoch=None``, one pass
  (PyTorch). The learning rate drops x0.1 after ``patience`` epochs without a lower loss and training
  stops once it reaches 1e-7. ``validation_fraction=0.1`` is both released codes: 10 % of the points,
  drawn at random, are held out of training and the schedule watches their loss (with the last
  orthonormalisation, in batches of ``batch_size``); ``0`` (default) trains on every point and watches
  the mean training loss of the epoch. The presets (``SPECTRALNET_PRESETS``) follow the released codes.

The per-batch affinity is computed on the device from the batch (the PyTorch code runs a CPU kNN per
batch). With a :class:`cutbench.siamese.SiameseAffinity` the kernel sees the Siamese embeddings, as in
the paper's MNIST and Reuters settings. ``SPECTRALNET_PRESETS`` holds the reference settings.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numpy as np
import torch
from sklearn.cluster import KMeans as SklearnKMeans

from cutbench import CutbenchError
from cutbench._validation import check_batch_size, seed_generators
from cutbench.affinity import check_batch_size_for, prepare_affinity, resolve_affinity
from cutbench.graph import (
    Affinity,
    batch_median_affinity,
    global_median_sigma,
    l2_normalize_rows,
    local_median_affinity,
)
from cutbench.methods.base import AFFINITY, EVERY_AFFINITY, Capabilities, ClusteringMethod, EmbeddingMixin
from cutbench.params import Interval, NoneValue, Options, Widths
from cutbench.siamese import SiameseAffinity
from cutbench.training import ACTIVATIONS, Trainer, forward_in_chunks, plateau_schedule, seeded_mlp

SCALES = ("global_median", "batch_median", "local_median", "affinity")
ORTHONORMS = ("qr", "cholesky")
ORTH_GRADS = ("through", "detached")
OPTIMIZERS = ("rmsprop", "adam")

CHOLESKY_JITTER = 1e-7
"""Added to the diagonal of ỸᵀỸ before the Cholesky factorisation, as in the TF code."""

_MIN_LR = 1e-7  # training stops once the plateau schedule has decayed the learning rate this far
_LR_DECAY = 0.1
# A batch output counts as rank-deficient when its smallest singular value is below this multiple of the
# largest: the numerical-rank rule for float32 network outputs (max(m, k) * eps is applied on top).
_RANK_EPS = float(torch.finfo(torch.float32).eps)

SPECTRALNET_PRESETS = {
    # Every preset holds out 10 % of the points and lowers the learning rate on their loss, as both released
    # codes do (validation_fraction=0.1).
    # TF code, MNIST (AE codes as input; the Siamese is trained 400 epochs with RMSProp there).
    "mnist": dict(affinity=SiameseAffinity(kernel=Affinity(n_neighbors=2, self_loops=True)),
                  scale="global_median", scale_neighbor=2, hidden_dims=(1024, 1024, 512), activation="relu",
                  optimizer="rmsprop", lr=1e-3, batch_size=1024, epochs=400, steps_per_epoch=100, patience=20,
                  validation_fraction=0.1),
    # TF code, Reuters: siam_k = 100 with 20 pairs per point there; here the 20 nearest are the positives.
    "reuters": dict(affinity=SiameseAffinity(kernel=Affinity(n_neighbors=29, self_loops=True), n_positives=20,
                                             epochs=20, patience=1),
                    scale="global_median", scale_neighbor=10, hidden_dims=(512, 256, 128), activation="relu",
                    optimizer="rmsprop", lr=5e-5, batch_size=2048, epochs=300, steps_per_epoch=100, patience=5,
                    validation_fraction=0.1),
    # TF code, nested C ("cc"), dense Gaussian affinity; its softplus layers' batch norm is left out.
    "cc": dict(affinity=Affinity(n_neighbors=None, self_loops=True), scale="global_median", scale_neighbor=2,
               hidden_dims=(50, 50, 50), activation="softplus", optimizer="rmsprop", lr=1e-3, batch_size=128,
               epochs=300, steps_per_epoch=100, patience=30, validation_fraction=0.1),
    # PyTorch package defaults: the local (per-point) bandwidth rule.
    "pytorch": dict(affinity=Affinity(n_neighbors=30, self_loops=True), scale="local_median",
                    hidden_dims=(1024, 1024, 512), activation="leaky_relu", optimizer="adam", lr=1e-3,
                    batch_size=1024, epochs=30, steps_per_epoch=None, patience=10, validation_fraction=0.1),
    # PyTorch two-moons example (standardised 2-D input): is_local_scale=False, its per-batch global rule.
    "two_moons": dict(affinity=Affinity(n_neighbors=8, self_loops=True), scale="batch_median", scale_neighbor=2,
                      hidden_dims=(128, 128), activation="leaky_relu", optimizer="adam", lr=1e-2, batch_size=712,
                      epochs=40, steps_per_epoch=None, patience=10, validation_fraction=0.1),
}
"""Reference settings by name: ``SpectralNet(n_clusters=k, **SPECTRALNET_PRESETS["mnist"])``."""


def spectral_loss(Y, W):
    """``Σ_ij W_ij ||y_i - y_j||² / (2m)``, i.e. ``tr(Yᵀ (D - W) Y) / m`` for symmetric ``W``.

    Parameters
    ----------
    Y : torch.Tensor of shape (m, k)
    W : torch.Tensor of shape (m, m)
        Symmetric nonnegative affinity, same dtype as ``Y``.

    Returns
    -------
    torch.Tensor
        Scalar.
    """
    degree_term = (W.sum(dim=1) * Y.square().sum(dim=1)).sum()
    affinity_term = (Y * (W @ Y)).sum()
    return (degree_term - affinity_term) / Y.shape[0]


def orthonorm_weights(Y_tilde, method="qr"):
    """``A = sqrt(m) T⁻¹`` with ``Ỹ = Q T`` (``T`` upper triangular, positive diagonal), in float64.

    Parameters
    ----------
    Y_tilde : torch.Tensor of shape (m, k)
        Network outputs on the orthonormalisation batch, ``m >= k``.
    method : {"qr", "cholesky"}, default="qr"
        ``"qr"``: reduced QR with rows of ``R`` sign-flipped to a positive diagonal. ``"cholesky"``:
        ``T = Lᵀ`` with ``L Lᵀ = ỸᵀỸ + 1e-7 I``.

    Returns
    -------
    weights : torch.Tensor of shape (k, k), float64
        ``(Ỹ A)ᵀ (Ỹ A) = m I`` when ``Ỹ`` has rank ``k``. Differentiable.
    rank_deficient : torch.Tensor, bool scalar
        True when ``Ỹ`` is numerically of rank < ``k`` (singular-value ratio of ``T`` at most
        ``max(m, k) * eps_float32``, or a failed Cholesky); ``weights`` are then meaningless. Kept on the
        device so that a training loop need not synchronise every step.
    """
    m, k = Y_tilde.shape
    Y64 = Y_tilde.to(torch.float64)
    if method == "qr":
        _, R = torch.linalg.qr(Y64)
        signs = torch.where(R.diagonal() < 0, -1.0, 1.0).to(R.dtype)
        T = R * signs[:, None]
        failed = torch.zeros((), dtype=torch.bool, device=Y_tilde.device)
    elif method == "cholesky":
        gram = Y64.T @ Y64 + CHOLESKY_JITTER * torch.eye(k, dtype=torch.float64, device=Y_tilde.device)
        L, info = torch.linalg.cholesky_ex(gram)
        T = L.T
        failed = info != 0
    else:
        raise CutbenchError(f"orthonorm must be one of {ORTHONORMS}; got {method!r}.")
    singular = torch.linalg.svdvals(T.detach())
    if method == "cholesky":  # T carries the jitter: singular values of Ỹ are sqrt(s² - jitter)
        singular = (singular.square() - CHOLESKY_JITTER).clamp_min(0.0).sqrt()
    rank_deficient = failed | ~(singular[-1] > singular[0] * max(m, k) * _RANK_EPS)
    identity = torch.eye(k, dtype=torch.float64, device=Y_tilde.device)
    # A failed factor holds garbage; the identity keeps the solve finite until the caller raises.
    T = torch.where(rank_deficient, identity, T)
    weights = math.sqrt(m) * torch.linalg.solve_triangular(T, identity, upper=True)
    return weights, rank_deficient


class _BatchStream:
    """Batches of ``batch_size`` indices, each drawn without replacement: consecutive slices of a random
    permutation, redrawn when too few indices remain (one permutation serves ``n // batch_size`` batches)."""

    def __init__(self, n, batch_size, generator, device):
        self.n, self.batch_size, self.generator, self.device = n, batch_size, generator, device
        self.order, self.position = None, n

    def next(self):
        if self.position + self.batch_size > self.n:
            self.order = torch.randperm(self.n, generator=self.generator).to(self.device)
            self.position = 0
        batch = self.order[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        return batch


class SpectralNet(EmbeddingMixin, ClusteringMethod):
    """SpectralNet: tanh network + orthonormalisation layer trained on batch Laplacians, then k-means.

    See the module docstring for the method and for where it follows the paper or the reference codes.

    Parameters
    ----------
    n_clusters : int, default=2
        Number of clusters ``k``; also the embedding dimension (the network's output width).
    affinity : str, dict, Affinity or SiameseAffinity, default="knn"
        Per-batch affinity, resolved with :func:`cutbench.affinity.prepare_affinity`: a heat kernel on the
        features, or on the embeddings of a Siamese network trained first (``"siamese"``). Its
        ``n_neighbors`` must be below ``batch_size``. Self-loops do not change the loss.
    scale : {"global_median", "batch_median", "local_median", "affinity"}, default="global_median"
        Kernel bandwidth: TF code (one sigma before training), PyTorch code's global rule (one sigma per
        batch, no factor 2), PyTorch code's local rule (per-point sigma), or the affinity's own ``sigma`` (a
        number, or ``"median"`` per batch). The first three need the affinity's ``sigma="median"`` (it is
        replaced); ``"batch_median"`` and ``"local_median"`` also need an integer ``n_neighbors``.
    scale_neighbor : int, default=2
        For ``"global_median"`` and ``"batch_median"``: the neighbour rank whose distance is used, the point
        itself being rank 1.
    hidden_dims : tuple of int, default=(1024, 1024, 512)
        Hidden widths (TF MNIST setting).
    activation : {"relu", "leaky_relu", "softplus", "tanh"}, default="relu"
        Hidden activation (TF: ReLU; PyTorch: LeakyReLU).
    orthonorm : {"qr", "cholesky"}, default="qr"
        Factorisation of the orthonormalisation layer (float64).
    orth_grad : {"through", "detached"}, default="through"
        Back-propagate through the factorisation (both codes) or not (paper).
    optimizer : {"rmsprop", "adam"}, default="rmsprop"
        ``"rmsprop"`` is ``torch.optim.RMSprop`` with decay 0.9 (TF1's; TF1 also puts eps inside the root
        and starts the accumulator at 1, which torch does not). ``"adam"`` is the PyTorch code's choice.
    lr : float, default=1e-3
        Initial learning rate.
    batch_size : int, default=1024
        Points per gradient batch and per orthonormalisation batch; ``n_clusters <= batch_size <= n``.
    epochs : int, default=400
        Maximum number of epochs.
    steps_per_epoch : int or None, default=100
        Steps (two batches each) per epoch; None means ``n // batch_size`` (one pass).
    patience : int, default=20
        Epochs without a lower mean loss before the learning rate is multiplied by 0.1.
    validation_fraction : float, default=0.0
        Share of the points held out of training, whose loss the learning-rate schedule watches (both
        released codes: 0.1); 0 trains on every point and watches the training loss.
    n_init : int, default=10
        k-means restarts on the embedding.
    predict_batch_size : int, default=10000
        Rows per forward pass when embedding.
    device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"
    random_state : None, int or numpy.random.Generator, default=None
        Seeds the network, the batches, the scale sample, k-means and (unless it fixes its own) the
        Siamese affinity. Reproducible on the CPU.

    Attributes
    ----------
    model_ : torch.nn.Sequential
        The network up to its tanh output (without the orthonormalisation), on the fitted device.
    orthonorm_weights_ : torch.Tensor of shape (n_clusters, n_clusters), float64
        The orthonormalisation matrix ``A`` of the last training step, used for every embedding.
    embedding_ : numpy.ndarray of shape (n_samples, n_clusters)
        ``f(X) A`` of the training points.
    kmeans_ : sklearn.cluster.KMeans
        Fitted on ``embedding_``.
    labels_ : numpy.ndarray of shape (n_samples,), int64
    affinity_ : Affinity or SiameseAffinity
        The resolved affinity specification.
    sigma_ : float or None
        The global bandwidth for ``scale="global_median"``, else None.
    history_ : dict of list of float
        Per-epoch mean ``"loss"``, the held-out ``"val_loss"`` (with ``validation_fraction > 0``) and the
        ``"lr"`` used in that epoch.
    n_iter_ : int
        Epochs run.
    n_features_in_ : int
    """

    name: ClassVar[str] = "spectralnet"
    capabilities: ClassVar[Capabilities] = Capabilities(gpu=True, minibatch=True, out_of_sample=True,
                                                        affinity_kinds=EVERY_AFFINITY)
    check_params: ClassVar[dict] = {"affinity": {"n_neighbors": 3, "self_loops": True}, "hidden_dims": (16,),
                                  "batch_size": 10, "epochs": 30, "steps_per_epoch": 5, "n_init": 1,
                                  "optimizer": "adam", "lr": 0.01}
    expected_failed_checks: ClassVar[dict] = {check: (
        "SpectralNet's outputs end in tanh: on this check's data (centred at 100, not standardised) they saturate at "
        "±1, the batch output has rank 1 and SpectralNet refuses to orthonormalise it, with an error that says to "
        "standardise the features (as both references do)")
        for check in ("check_fit_idempotent", "check_fit_check_is_fitted", "check_n_features_in")}
    _parameter_constraints: ClassVar[dict] = {
        **ClusteringMethod._parameter_constraints,
        "affinity": [AFFINITY],
        "scale": [Options(*SCALES)],
        "scale_neighbor": [Interval(int, 2)],
        "hidden_dims": [Widths((1024, 1024, 512))],
        "activation": [Options(*ACTIVATIONS)],
        "orthonorm": [Options(*ORTHONORMS)],
        "orth_grad": [Options(*ORTH_GRADS)],
        "optimizer": [Options(*OPTIMIZERS)],
        "lr": [Interval(float, 0, None, closed="neither")],
        "batch_size": [Interval(int, 1)],
        "epochs": [Interval(int, 1)],
        "steps_per_epoch": [Interval(int, 1), NoneValue("one pass over the data per epoch")],
        "patience": [Interval(int, 1)],
        "validation_fraction": [Interval(float, 0, 1, closed="left")],
        "n_init": [Interval(int, 1)],
        "predict_batch_size": [Interval(int, 1)],
    }

    def __init__(self, n_clusters=2, *, affinity="knn", scale="global_median", scale_neighbor=2,
                 hidden_dims=(1024, 1024, 512), activation="relu", orthonorm="qr", orth_grad="through",
                 optimizer="rmsprop", lr=1e-3, batch_size=1024, epochs=400, steps_per_epoch=100, patience=20,
                 validation_fraction=0.0,
                 n_init=10, predict_batch_size=10000, device="auto", random_state=None):
        self.n_clusters = n_clusters
        self.affinity = affinity
        self.scale = scale
        self.scale_neighbor = scale_neighbor
        self.hidden_dims = hidden_dims
        self.activation = activation
        self.orthonorm = orthonorm
        self.orth_grad = orth_grad
        self.optimizer = optimizer
        self.lr = lr
        self.batch_size = batch_size
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.n_init = n_init
        self.predict_batch_size = predict_batch_size
        self.device = device
        self.random_state = random_state

    def _check_param_relations(self):
        spec = resolve_affinity(self.affinity)
        if self.scale != "affinity" and not isinstance(spec, Affinity) and getattr(spec, "kernel", None) is None:
            raise CutbenchError(f"scale={self.scale!r} sets the bandwidth of a heat kernel, but the "
                                f"{type(spec).__name__} affinity has none; use scale='affinity'.")

    def _check_kernel(self, prepared, batch_size: int):
        check_batch_size_for(prepared, batch_size)
        kernel = prepared.kernel
        if kernel is None:
            if self.scale != "affinity":
                raise CutbenchError(f"scale={self.scale!r} sets the bandwidth of a heat kernel, but the "
                                    f"{type(prepared.spec).__name__} affinity has none; use scale='affinity'.")
            return
        if self.scale != "affinity" and kernel.sigma != "median":
            raise CutbenchError(f"scale={self.scale!r} computes sigma itself, but the affinity fixes "
                                f"sigma={kernel.sigma}; use an affinity with sigma='median' or scale='affinity'.")
        if self.scale in ("local_median", "batch_median") and kernel.n_neighbors is None:
            raise CutbenchError(f"scale={self.scale!r} needs a kNN affinity (integer n_neighbors, e.g. 30); got "
                                "n_neighbors=None. Use scale='global_median' for a dense affinity.")

    def _batch_affinity_fn(self, prepared, batch_size, generator):
        """The per-batch affinity ``index -> W`` and the global sigma (or None)."""
        kernel = prepared.kernel
        if self.scale == "affinity":
            return prepared.batch, None
        if self.scale == "local_median":
            def local(index):
                return local_median_affinity(prepared.points[index], kernel.n_neighbors,
                                             self_loops=kernel.self_loops, symmetrize=kernel.symmetrize)
            return local, None
        if self.scale == "batch_median":
            def per_batch(index):
                return batch_median_affinity(prepared.points[index], kernel.n_neighbors, self.scale_neighbor,
                                             self_loops=kernel.self_loops, symmetrize=kernel.symmetrize)
            return per_batch, None
        # The kernel normalises rows before measuring distances, so the scale is measured the same way.
        points = l2_normalize_rows(prepared.points) if kernel.normalize_rows else prepared.points
        sigma = global_median_sigma(points, self.scale_neighbor, sample_size=batch_size, generator=generator)
        return prepared.with_kernel(dataclasses.replace(kernel, sigma=sigma)).batch, sigma

    def _fit(self, X):
        n_samples, n_features = X.shape
        device = self._device()
        _, generator, seed = seed_generators(self.random_state)
        # The released codes' hold-out: a random (1 - f) share trains, the rest is only watched.
        order = (torch.randperm(n_samples, generator=generator) if self.validation_fraction > 0
                 else torch.arange(n_samples)).to(device)
        n_train = int((1 - self.validation_fraction) * n_samples)
        train_index, valid_index = order[:n_train], order[n_train:]
        if n_train < 2 or (self.validation_fraction > 0 and len(valid_index) < 2):
            raise CutbenchError(f"validation_fraction={self.validation_fraction} leaves {n_train} training and "
                                f"{len(valid_index)} held-out points of {n_samples}; give more points or a "
                                "validation_fraction that leaves at least 2 on each side.")
        batch_size = check_batch_size(self.batch_size, n_train, self.n_clusters)

        X_train = torch.as_tensor(X).to(device=device, dtype=torch.float32)
        prepared = prepare_affinity(self.affinity, X_train, device=device, random_state=seed)
        self._check_kernel(prepared, batch_size)
        batch_affinity_of, sigma = self._batch_affinity_fn(prepared, batch_size, generator)

        model = seeded_mlp([n_features, *self.hidden_dims, self.n_clusters], activation=self.activation,
                           output_activation="tanh", generator=generator).to(device)
        if self.optimizer == "adam":
            optimizer = torch.optim.Adam(model.parameters(), lr=self.lr)
        else:
            optimizer = torch.optim.RMSprop(model.parameters(), lr=self.lr, alpha=0.9)
        steps = self.steps_per_epoch if self.steps_per_epoch is not None else n_train // batch_size
        grad_batches = _BatchStream(n_train, batch_size, generator, device)
        orth_batches = _BatchStream(n_train, batch_size, generator, device)
        detached = self.orth_grad == "detached"
        weights = None
        # The held-out loss, as the PyTorch code's validate(): consecutive batches, the last orthonormalisation.
        valid_batches = torch.tensor_split(valid_index, max(1, -(-len(valid_index) // batch_size)))
        if self.validation_fraction > 0:
            check_batch_size_for(prepared, min(len(batch) for batch in valid_batches))

        @torch.no_grad()
        def validation_loss():
            losses = [spectral_loss(model(X_train[index]).to(torch.float64) @ weights,
                                    batch_affinity_of(index).to(torch.float64)) for index in valid_batches]
            return float(torch.stack(losses).mean())

        trainer = Trainer("SpectralNet", model, optimizer,
                          scheduler=plateau_schedule(optimizer, factor=_LR_DECAY, patience=self.patience),
                          min_lr=_MIN_LR, hint=f"lower lr (now {self.lr:g}).",
                          watch=validation_loss if self.validation_fraction > 0 else None)

        def epoch_steps(epoch):
            nonlocal weights
            rank_deficient = torch.zeros((), dtype=torch.bool, device=device)
            for _ in range(steps):
                with torch.set_grad_enabled(not detached):
                    orth_index = train_index[orth_batches.next()]
                    weights, deficient = orthonorm_weights(model(X_train[orth_index]), self.orthonorm)
                rank_deficient |= deficient
                index = train_index[grad_batches.next()]
                Y = model(X_train[index]).to(torch.float64) @ weights
                loss = spectral_loss(Y, batch_affinity_of(index).to(torch.float64))
                yield loss, loss.detach().reshape(1)
            # Checked once per epoch, so the device is not synchronised every step.
            if bool(rank_deficient):
                raise CutbenchError(
                    f"SpectralNet could not orthonormalise a batch in epoch {epoch + 1}: the network output on "
                    f"{batch_size} points has rank < n_clusters={self.n_clusters}. Standardise the features if they "
                    "are far from zero (large inputs saturate the tanh outputs at ±1), use a larger batch_size "
                    f"(each batch must contain every cluster), a lower lr (now {optimizer.param_groups[0]['lr']:g}), "
                    "fewer clusters, or a better affinity (e.g. train the Siamese network longer).")

        self.history_ = trainer.run(self.epochs, epoch_steps)
        self.model_ = model
        self.orthonorm_weights_ = weights.detach()
        self.affinity_ = prepared.spec
        self.sigma_ = sigma
        self.n_iter_ = len(self.history_["loss"])
        self.embedding_ = self._embed(X_train)
        self.kmeans_ = SklearnKMeans(n_clusters=self.n_clusters, n_init=int(self.n_init), random_state=seed)
        self.labels_ = self.kmeans_.fit_predict(self.embedding_).astype(np.int64)

    def _embed(self, X) -> np.ndarray:
        """``f(X) A`` in chunks of ``predict_batch_size`` on the fitted device, as float64 numpy."""
        embedding = forward_in_chunks(self.model_, X, self.predict_batch_size,
                                      lambda Y: Y.to(torch.float64) @ self.orthonorm_weights_)
        return embedding.numpy()

    def _transform(self, X):
        """Spectral embedding ``f(X) A`` of any points, with the stored orthonormalisation (float64)."""
        return self._embed(X)

    def _predict(self, X):
        """Assign each row of ``X`` to the nearest k-means centre of its embedding."""
        return self.kmeans_.predict(self._embed(X))
