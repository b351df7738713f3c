"""Self-expressive affinity (SENet): coefficients that write each point as a sparse combination of the others.

Zhang et al., "Learning a Self-Expressive Network for Subspace Clustering" (CVPR 2021), as the NeuNcut
paper uses it for its setting V (research notes §8). Two networks, query ``f_q`` and key ``f_k``
(ReLU hidden layers, tanh output of width ``embedding_dim``), give the coefficient of point ``j`` in
the expression of point ``i``:

    c_ij = sign(u_ij) · max(|u_ij| − b, 0) / embedding_dim,      u_ij = f_q(x_i)ᵀ f_k(x_j),

with ``b`` one learnable soft threshold (initialised at 0) and ``c_ii = 0``. Per batch ``B`` of query
points the loss is the elastic-net self-expression over *all* training points,

    [ γ/2 Σ_{i∈B} ‖x_i − Σ_{j≠i} c_ij x_j‖² + Σ_{i∈B, j≠i} (λ|c_ij| + (1 − λ)/2 c_ij²) ] / |B|,

minimised with Adam, a cosine learning rate and the gradient clipped to a global norm of 0.001. Points
on a union of subspaces are expressed by points of their own subspace, so ``|C|`` connects them.

The affinity, every option explicit (:class:`SelfExpressiveAffinity`):

* full graph of the training points: ``C`` computed in row blocks, per row the ``top_k`` coefficients
  largest in magnitude kept with their signs (``coefficients="signed"``, as released; ``"absolute"`` keeps
  ``|c_ij|``, a variant), rows L2-normalised when ``row_normalize``; then ``graph="knn"`` (SENet's MNIST
  recipe: a 0/1 ``n_neighbors``-NN graph in the space of the coefficient rows, symmetrised as ½(A + Aᵀ)) or
  ``graph="symmetric"`` (SENet's CIFAR recipe: ½(|C| + |C|ᵀ));
* per mini-batch (NeuNcut and the other mini-batch methods): ``C_B`` among the batch's points,
  optionally its ``batch_top_s`` largest ``|c|`` per row, and ½(|C_B| + |C_B|ᵀ).

Training is cached like the Siamese network's (see :mod:`cutbench.affinity`), and timed by the runner
as the cell's affinity stage. Two presets: ``"senet"``, the released code's (research notes §8), and
``"senet_cpu"``, sized for a 2-core CPU (stated in :data:`SENET_PRESETS`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from cutbench import CutbenchError
from cutbench._validation import check_features, resolve_device, seed_generators
from cutbench.graph import l2_normalize_rows
from cutbench.learned import LearnedAffinity
from cutbench.params import Boolean, Interval, NoneValue, Options, Widths, canonical_params
from cutbench.training import Trainer, seeded_mlp

SELF_EXPRESSIVE_KIND = "self_expressive"
"""Value of the ``"kind"`` key that marks a dict as a :class:`SelfExpressiveAffinity`."""

GRAPHS = ("knn", "symmetric")
COEFFICIENTS = ("signed", "absolute")
"""What the full graph is built from: the kept coefficients as they are (``signed``, the released code) or their
magnitudes (``absolute``, a variant)."""


@dataclass(frozen=True)
class SelfExpressiveAffinity(LearnedAffinity):
    """Specification of a self-expressive (SENet) affinity: the networks, their training, the graph.

    Parameters
    ----------
    hidden_dims : tuple of int, default=(1024, 1024, 1024)
        Hidden ReLU widths of the query and the key networks: the released code's ``hid_dims`` (three hidden
        layers, then the output layer: 4 Linear layers, 3.95 M parameters per network on 784-d input).
    embedding_dim : int, default=1024
        Output width (tanh); the coefficients are divided by it (reference "shrink").
    gamma : float, default=200.0
        Weight of the reconstruction (reference: 200 for MNIST, F-MNIST and CIFAR; 150 for E-MNIST).
    l1_ratio : float, default=0.9
        λ of the elastic net ``λ|c| + (1 − λ)/2 c²``.
    lr : float, default=1e-3
        Adam learning rate, cosine-annealed to 0 over the epochs.
    steps : int, default=100000
        The step budget (reference ``total_iters``: 100,000). As released, an epoch is ``n // batch_size`` query
        batches, training runs ``steps // (n // batch_size)`` whole epochs (at least one), so it takes at most
        ``steps`` steps, and the cosine schedule spans those epochs.
    batch_size : int, default=100
        Query points per step.
    key_block : int, default=10000
        Keys forwarded at once in the reconstruction (memory only; the result does not depend on it).
    grad_clip : float, default=0.001
        Global gradient-norm clip of every step (reference).
    normalize_input : bool, default=True
        L2-normalise the rows of X first (reference).
    top_k : int, default=1000
        Coefficients kept per row of the full graph's coefficient matrix, the largest by magnitude.
    coefficients : {"signed", "absolute"}, default="signed"
        The kept coefficients as they are (the released code: the kNN graph searches the signed, row-normalised
        coefficient rows) or their magnitudes ``|c_ij|`` (a variant; earlier cutbench versions used it). The
        ``"symmetric"`` graph takes magnitudes either way.
    row_normalize : bool, default=True
        L2-normalise the kept coefficient rows.
    graph : {"knn", "symmetric"}, default="knn"
        Full graph from the coefficients (see the module docstring).
    n_neighbors : int, default=3
        Neighbours of the ``"knn"`` graph in coefficient space.
    batch_top_s : int or None, default=None
        Per mini-batch, keep each row's ``batch_top_s`` largest ``|c|`` (None: all).
    random_state : int or None, default=None
        Seed of the networks and the batches; None uses the seed of the method.
    """

    hidden_dims: tuple = (1024, 1024, 1024)
    embedding_dim: int = 1024
    gamma: float = 200.0
    l1_ratio: float = 0.9
    lr: float = 1e-3
    steps: int = 100_000
    batch_size: int = 100
    key_block: int = 10_000
    grad_clip: float = 0.001
    normalize_input: bool = True
    top_k: int = 1000
    coefficients: str = "signed"
    row_normalize: bool = True
    graph: str = "knn"
    n_neighbors: int = 3
    batch_top_s: int | None = None
    random_state: int | None = None

    kind: ClassVar[str] = SELF_EXPRESSIVE_KIND
    _parameter_constraints: ClassVar[dict] = {
        "hidden_dims": [Widths((1024, 1024, 1024), allow_empty=True)],
        "embedding_dim": [Interval(int, 1)],
        "gamma": [Interval(float, 0, None, closed="neither")],
        "l1_ratio": [Interval(float, 0, 1)],
        "lr": [Interval(float, 0, None, closed="neither")],
        "steps": [Interval(int, 1)],
        "batch_size": [Interval(int, 1)],
        "key_block": [Interval(int, 1)],
        "grad_clip": [Interval(float, 0, None, closed="neither")],
        "normalize_input": [Boolean()],
        "top_k": [Interval(int, 1)],
        "coefficients": [Options(*COEFFICIENTS)],
        "row_normalize": [Boolean()],
        "graph": [Options(*GRAPHS)],
        "n_neighbors": [Interval(int, 1)],
        "batch_top_s": [Interval(int, 1), NoneValue("all")],
        "random_state": [Interval(int, 0), NoneValue("the seed of the method")],
    }

    def __post_init__(self):
        fields = canonical_params("SelfExpressiveAffinity", self._parameter_constraints,
                                  {field.name: getattr(self, field.name) for field in dataclasses.fields(self)})
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict:
        """Plain dict with ``kind="self_expressive"``; ``resolve_affinity(s.to_dict()) == s``."""
        fields = dataclasses.asdict(self)
        fields["hidden_dims"] = list(self.hidden_dims)
        return {"kind": SELF_EXPRESSIVE_KIND, **fields}

    @classmethod
    def from_dict(cls, value: Mapping) -> SelfExpressiveAffinity:
        """Build from a dict of the fields; ``"preset"`` starts from a named preset (``"senet"``, ``"senet_cpu"``)."""
        fields = {key: item for key, item in value.items() if key not in ("kind", "preset")}
        base = {}
        if "preset" in value:
            if value["preset"] not in SENET_PRESETS:
                raise CutbenchError(f"unknown self-expressive preset {value['preset']!r}; accepted: "
                                    f"{', '.join(map(repr, SENET_PRESETS))}.")
            base = dataclasses.asdict(SENET_PRESETS[value["preset"]])
        accepted = [field.name for field in dataclasses.fields(cls)]
        unknown = [key for key in fields if key not in accepted]
        if unknown:
            raise CutbenchError(f"unknown SelfExpressiveAffinity key(s) {unknown}; accepted keys: kind, preset, "
                                f"{', '.join(accepted)}.")
        return cls(**{**base, **fields})

    def training_params(self) -> dict:
        """The fields that decide the trained networks (the graph recipe is applied afterwards)."""
        graph_only = ("top_k", "coefficients", "row_normalize", "graph", "n_neighbors", "batch_top_s", "random_state",
                      "key_block")
        return {name: value for name, value in self.to_dict().items() if name not in graph_only}

    def fit(self, X, *, device="auto", random_state=None) -> SelfExpressiveModel:
        """Train the query and key networks on ``X`` (see the module docstring)."""
        X = check_features(X, min_samples=2)
        seed = self.random_state if self.random_state is not None else seed_generators(random_state)[2]
        return _train(self, X, resolve_device(device), seed)

    def prepare(self, fitted: SelfExpressiveModel, points: torch.Tensor) -> SelfExpressivePrepared:
        """The affinity of ``points`` (the training points) under the trained networks."""
        return SelfExpressivePrepared(self, fitted, points)


SENET_PRESETS = {
    # The released code (research notes §8, MNIST and F-MNIST): 3 hidden layers of 1024 and a 1024 tanh output,
    # 100,000 steps of 100 queries, the kNN graph on the signed coefficient rows.
    "senet": SelfExpressiveAffinity(),
    # Sized for a 2-core CPU: 2 hidden layers of 256 and a 256 output, 2,000 steps; everything else as released.
    "senet_cpu": SelfExpressiveAffinity(hidden_dims=(256, 256), embedding_dim=256, steps=2000),
}
"""Named specifications: ``affinity: senet`` / ``affinity: senet_cpu``, or ``{kind: self_expressive, preset: ...}``."""


class SelfExpressiveModel(nn.Module):
    """The trained query and key networks and the soft threshold."""

    def __init__(self, query: nn.Sequential, key: nn.Sequential, embedding_dim: int):
        super().__init__()
        self.query, self.key = query, key
        self.threshold = nn.Parameter(torch.zeros((), device=next(query.parameters()).device))
        self.shrink = 1.0 / embedding_dim

    def coefficients(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """``c_ij`` of the rows of ``queries`` in terms of the rows of ``keys`` (the diagonal is the caller's)."""
        u = self.query(queries) @ self.key(keys).T
        return self.shrink * torch.sign(u) * torch.relu(u.abs() - self.threshold)


def self_expression_loss(model: SelfExpressiveModel, X: torch.Tensor, batch: torch.Tensor, *, gamma: float,
                         l1_ratio: float, key_block: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, reconstruction term, regulariser)`` of the query points ``batch`` (indices into ``X``), each per
    query point: ``[γ/2 Σ_{i∈B} ‖x_i − Σ_{j≠i} c_ij x_j‖² + Σ_{i∈B, j≠i} (λ|c_ij| + (1 − λ)/2 c_ij²)] / |B|``, every
    point of ``X`` a key, ``key_block`` keys at a time."""
    n, d = X.shape
    reconstruction = torch.zeros(len(batch), d, device=X.device)
    regulariser = torch.zeros((), device=X.device)
    for start in range(0, n, key_block):
        keys = torch.arange(start, min(start + key_block, n), device=X.device)
        c = model.coefficients(X[batch], X[keys])
        c = c * (batch[:, None] != keys[None, :])  # c_ii = 0
        reconstruction = reconstruction + c @ X[keys]
        regulariser = regulariser + l1_ratio * c.abs().sum() + (1 - l1_ratio) / 2 * c.square().sum()
    residual = 0.5 * gamma * (X[batch] - reconstruction).square().sum()
    return (residual + regulariser) / len(batch), residual / len(batch), regulariser / len(batch)


def _train(spec: SelfExpressiveAffinity, X, device: torch.device, seed: int) -> SelfExpressiveModel:
    generator = torch.Generator().manual_seed(seed)
    X = torch.as_tensor(X).to(device=device, dtype=torch.float32)
    if spec.normalize_input:
        X = l2_normalize_rows(X)
    n, d = X.shape
    if n < 2:
        raise CutbenchError("the self-expressive affinity needs at least 2 points.")
    widths = [d, *spec.hidden_dims, spec.embedding_dim]
    query = seeded_mlp(widths, activation="relu", output_activation="tanh", init="neuncut", generator=generator)
    key = seeded_mlp(widths, activation="relu", output_activation="tanh", init="neuncut", generator=generator)
    model = SelfExpressiveModel(query.to(device), key.to(device), spec.embedding_dim)
    batch_size = min(spec.batch_size, n)
    # The released rule: whole epochs of n // batch_size steps, as many as fit in the step budget.
    steps_per_epoch = max(n // batch_size, 1)
    epochs = max(spec.steps // steps_per_epoch, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.lr)
    trainer = Trainer("SENet", model, optimizer, terms=("loss", "reconstruction", "regulariser"),
                      scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=0),
                      clip_grad_norm=spec.grad_clip, hint=f"lower lr (now {spec.lr}) or gamma (now {spec.gamma}).")

    def epoch_steps(epoch):
        order = torch.randperm(n, generator=generator).to(device)
        for step in range(steps_per_epoch):
            batch = order[step * batch_size:(step + 1) * batch_size]
            loss, residual, regulariser = self_expression_loss(model, X, batch, gamma=spec.gamma,
                                                               l1_ratio=spec.l1_ratio, key_block=spec.key_block)
            yield loss, torch.stack([loss.detach(), residual.detach(), regulariser.detach()])

    model.history = trainer.run(epochs, epoch_steps)
    return model


class SelfExpressivePrepared:
    """A trained self-expressive affinity on the training points: per-batch affinities and the full graph.

    Attributes
    ----------
    spec : SelfExpressiveAffinity
    points : torch.Tensor
        The training points (as given to the method; normalised internally when the spec says so).
    kernel : None
        A self-expressive affinity has no heat kernel (methods that need one say so).
    """

    kernel = None

    def __init__(self, spec: SelfExpressiveAffinity, model: SelfExpressiveModel, points: torch.Tensor):
        self.spec, self.model, self.points = spec, model, points
        self._inputs = l2_normalize_rows(points.float()) if spec.normalize_input else points.float()

    @torch.no_grad()
    def batch(self, index) -> torch.Tensor:
        """½(|C_B| + |C_B|ᵀ) among the training points ``index`` (optionally the top-s per row), zero diagonal."""
        rows = self._inputs[index]
        c = self.model.coefficients(rows, rows).abs()
        c.fill_diagonal_(0.0)
        s = self.spec.batch_top_s
        if s is not None and s < c.shape[1] - 1:
            kept = torch.topk(c, s, dim=1).indices
            c = torch.zeros_like(c).scatter_(1, kept, c.gather(1, kept))
        return ((c + c.T) / 2).to(self.points.dtype)

    @torch.no_grad()
    def coefficient_matrix(self, *, block: int = 2048) -> sp.csr_matrix:
        """C of all training points: per row the ``top_k`` coefficients largest in magnitude, signed or their
        magnitudes (``coefficients``), rows L2-normalised if asked."""
        X = self._inputs
        n = X.shape[0]
        k = min(self.spec.top_k, n - 1)
        rows, cols, values = [], [], []
        for start in range(0, n, block):
            index = torch.arange(start, min(start + block, n), device=X.device)
            c = self.model.coefficients(X[index], X)
            c[torch.arange(len(index), device=X.device), index] = 0.0
            kept = torch.topk(c.abs(), k, dim=1).indices
            chosen = c.gather(1, kept) if self.spec.coefficients == "signed" else c.abs().gather(1, kept)
            rows.append(index.repeat_interleave(k).cpu())
            cols.append(kept.reshape(-1).cpu())
            values.append(chosen.reshape(-1).to(torch.float64).cpu())
        C = sp.csr_matrix((torch.cat(values).numpy(), (torch.cat(rows).numpy(), torch.cat(cols).numpy())),
                          shape=(n, n))
        C.eliminate_zeros()
        if self.spec.row_normalize:
            norms = np.sqrt(np.asarray(C.multiply(C).sum(axis=1)).ravel())
            C = sp.diags(1.0 / np.maximum(norms, np.finfo(np.float64).tiny)) @ C
        return C.tocsr()

    def graph(self, *, chunk_size=None, report: dict | None = None) -> sp.csr_matrix:
        """The full graph of the training points (see the module docstring)."""
        from sklearn.neighbors import kneighbors_graph

        C = self.coefficient_matrix()
        if report is not None:
            report["knn_backend"] = "self_expressive"
        if self.spec.graph == "symmetric":
            magnitudes = abs(C)
            return ((magnitudes + magnitudes.T) * 0.5).tocsr()
        n_neighbors = min(self.spec.n_neighbors, C.shape[0] - 1)
        # in float32, as the released code searches them (sklearn.preprocessing.normalize(C).astype(float32))
        connectivity = kneighbors_graph(C.astype(np.float32), n_neighbors=n_neighbors, include_self=False)
        return (0.5 * (connectivity + connectivity.T)).tocsr()


__all__ = ["COEFFICIENTS", "GRAPHS", "SELF_EXPRESSIVE_KIND", "SENET_PRESETS", "SelfExpressiveAffinity", "SelfExpressiveModel",
           "SelfExpressivePrepared", "self_expression_loss"]
