"""Siamese affinity: a heat kernel evaluated in the output space of a contrastively trained network.

SpectralNet (Shaham et al., ICLR 2018, §4.2) learns the metric of its affinity with a Siamese network
``z = f(x)``: pairs of input-space nearest neighbours are positives, pairs of a point and a random
non-neighbour are negatives, and the contrastive loss (with ``d = ||z_i - z_j||``)

    y · max(d - m_pos, 0)² + (1 - y) · max(m_neg - d, 0)²

pulls positives together and pushes negatives beyond the margin ``m_neg``. The affinity is then a heat
kernel on ``z`` (NeuNcut paper, Eq. 15; its setting III uses it for Ncut and NeuNcut as well).

Defaults follow the original TF SpectralNet code (``KlugerLab/SpectralNet``, the same network in
google-research CNC): a ``[1024, 1024, 512, 10]`` MLP with ReLU on every layer *including the output*,
the ``n_positives = 2`` nearest neighbours of each point as positives and as many uniformly drawn
non-neighbours as negatives, positive margin 0.05 and negative margin 1. The training budget is the
PyTorch reference's (``shaham-lab/SpectralNet``: Adam 1e-3, batches of 128 pairs, 30 epochs, learning
rate x0.1 after 10 epochs without improvement, stop once it reaches 1e-7); the TF code runs up to 400
epochs of RMSProp. Both references monitor a 10% validation split; here the plateau is detected on the
training loss, since the objective is unsupervised and every pair is as good as any other. The NeuNcut
paper's variant (Eq. 14: three neighbours, no positive margin) is ``n_positives=3, pos_margin=0``.

Training is not memoised here: :mod:`cutbench.affinity` trains a learned affinity once per data set,
specification, seed and device while a runner's :class:`~cutbench.affinity.AffinityCache` is active
(one per study cell, so a cell's affinity time always includes the training). Nothing is written to
disk: the PyTorch reference's file cache silently reused weights trained on another dataset.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from cutbench import CutbenchError
from cutbench._validation import check_features, resolve_device, seed_generators
from cutbench.graph import Affinity, PreparedAffinity, knn_search
from cutbench.learned import LearnedAffinity
from cutbench.params import Interval, NoneValue, Satisfies, Widths, canonical_params
from cutbench.training import Trainer, forward_in_chunks, plateau_schedule, seeded_mlp

SIAMESE_KIND = "siamese"
"""Value of the ``"kind"`` key that marks a dict as a :class:`SiameseAffinity`."""

_DISTANCE_EPS = 1e-7  # d = sqrt(max(||.||^2, eps)): the square root has no finite gradient at 0
_MIN_LR = 1e-7  # training stops once the plateau schedule has decayed the learning rate this far
_LR_DECAY = 0.1


def contrastive_loss(z_left, z_right, is_positive, *, pos_margin, neg_margin):
    """Mean contrastive loss of a batch of pairs (TF SpectralNet form).

    ``y · max(d - pos_margin, 0)² + (1 - y) · max(neg_margin - d, 0)²`` with
    ``d = sqrt(max(||z_left - z_right||², 1e-7))`` and ``y`` = ``is_positive``.

    Parameters
    ----------
    z_left, z_right : torch.Tensor of shape (p, e)
        Embeddings of the two members of each pair.
    is_positive : torch.Tensor of shape (p,), bool
    pos_margin, neg_margin : float

    Returns
    -------
    torch.Tensor
        Scalar loss.
    """
    distance = (z_left - z_right).square().sum(dim=1).clamp_min(_DISTANCE_EPS).sqrt()
    positive = (distance - pos_margin).clamp_min(0.0).square()
    negative = (neg_margin - distance).clamp_min(0.0).square()
    return torch.where(is_positive, positive, negative).mean()


@dataclass(frozen=True)
class SiameseAffinity(LearnedAffinity):
    """Specification of a Siamese affinity: the network, its contrastive training and the heat kernel.

    Pass it (or its ``to_dict()``, or the name ``"siamese"``) as the ``affinity`` of any method: every
    method resolves its affinity with :func:`cutbench.affinity.prepare_affinity`, which trains the
    network on the method's training data with the method's seed and device, unless ``random_state``
    fixes the seed here.

    Parameters
    ----------
    kernel : Affinity, dict or preset name, default=Affinity()
        Heat kernel applied to the embeddings (kNN sparsification, sigma, self-loops, symmetrisation).
        The default is the ``"knn"`` preset (s = 10, median sigma); the TF SpectralNet MNIST setting is
        ``Affinity(n_neighbors=2, self_loops=True)`` (its ``n_nbrs = 3`` counts the point itself).
    hidden_dims : tuple of int, default=(1024, 1024, 512)
        Widths of the hidden ReLU layers.
    embedding_dim : int, default=10
        Output width; the output layer is ReLU as in both references.
    n_positives : int, default=2
        Positives per point: its ``n_positives`` nearest neighbours in input space (exact search);
        as many negatives are drawn uniformly (with replacement) from its non-neighbours.
    pos_margin : float, default=0.05
        Distance under which positives cost nothing (TF code; the PyTorch code and the NeuNcut paper use 0).
    neg_margin : float, default=1.0
        Distance beyond which negatives cost nothing.
    epochs : int, default=30
        Maximum passes over all pairs (shuffled each pass).
    batch_size : int, default=128
        Pairs per gradient step.
    lr : float, default=1e-3
        Adam learning rate.
    patience : int, default=10
        Epochs without a lower training loss before the learning rate is multiplied by 0.1.
    random_state : int or None, default=None
        Seed of the network, the negatives and the pair order; None uses the seed of the method.
    """

    kernel: Affinity = Affinity()
    hidden_dims: tuple = (1024, 1024, 512)
    embedding_dim: int = 10
    n_positives: int = 2
    pos_margin: float = 0.05
    neg_margin: float = 1.0
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    patience: int = 10
    random_state: int | None = None

    kind: ClassVar[str] = SIAMESE_KIND
    _parameter_constraints: ClassVar[dict] = {
        "kernel": [Satisfies(Affinity.from_any, "an Affinity, a dict of its fields or a preset name")],
        "hidden_dims": [Widths((1024, 1024, 512))],
        "embedding_dim": [Interval(int, 1)],
        "n_positives": [Interval(int, 1)],
        "pos_margin": [Interval(float, 0)],
        "neg_margin": [Interval(float, 0, None, closed="neither")],
        "epochs": [Interval(int, 1)],
        "batch_size": [Interval(int, 1)],
        "lr": [Interval(float, 0, None, closed="neither")],
        "patience": [Interval(int, 1)],
        "random_state": [Interval(int, 0), NoneValue("the seed of the method")],
    }

    def __post_init__(self):
        # Frozen dataclass: canonical values are set through object.__setattr__.
        fields = canonical_params("SiameseAffinity", self._parameter_constraints,
                                  {field.name: getattr(self, field.name) for field in dataclasses.fields(self)})
        if not fields["neg_margin"] > fields["pos_margin"]:
            raise CutbenchError(f"SiameseAffinity: neg_margin must be a number > pos_margin = {fields['pos_margin']:g}; "
                                f"got {fields['neg_margin']!r}.")
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict:
        """Plain dict with ``kind="siamese"``; ``resolve_affinity(s.to_dict()) == s``."""
        fields = dataclasses.asdict(self)
        fields["hidden_dims"] = list(self.hidden_dims)
        return {"kind": SIAMESE_KIND, **fields}

    @classmethod
    def from_dict(cls, value: Mapping) -> SiameseAffinity:
        """Build from a dict of the fields (a ``"kind": "siamese"`` entry is allowed); unknown keys are an error."""
        fields = {key: item for key, item in value.items() if key != "kind"}
        if value.get("kind", SIAMESE_KIND) != SIAMESE_KIND:
            raise CutbenchError(f"a SiameseAffinity dict must have kind={SIAMESE_KIND!r}; got {value['kind']!r}.")
        accepted = [field.name for field in dataclasses.fields(cls)]
        unknown = [key for key in fields if key not in accepted]
        if unknown:
            raise CutbenchError(f"unknown SiameseAffinity key(s) {unknown}; accepted keys: kind, {', '.join(accepted)}.")
        return cls(**fields)

    def training_params(self) -> dict:
        """The fields that decide the trained network: all but the kernel (applied after training) and the seed."""
        return {name: value for name, value in self.to_dict().items() if name not in ("kernel", "random_state")}

    def fit(self, X, *, device="auto", random_state=None) -> SiameseEmbedding:
        """Train the Siamese network on ``X``.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)
            Needs more than ``n_positives + 1`` rows, so that every point has a non-neighbour.
        device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"
        random_state : None, int or numpy.random.Generator, default=None
            Used when this specification's own ``random_state`` is None.

        Returns
        -------
        SiameseEmbedding
        """
        X = check_features(X, min_samples=2)
        seed = self.random_state if self.random_state is not None else seed_generators(random_state)[2]
        return _train(self, X, resolve_device(device), seed)

    def prepare(self, fitted: SiameseEmbedding, points: torch.Tensor) -> PreparedAffinity:
        """The heat kernel on the embedding of ``points`` (the training points), in their dtype."""
        return PreparedAffinity(self, self.kernel, fitted.transform(points).to(points.dtype))


class SiameseEmbedding:
    """A trained Siamese network: ``transform`` maps features to the space the kernel is applied in.

    Attributes
    ----------
    network : torch.nn.Sequential
        The trained network, in eval mode, on the device it was trained on.
    history : dict of list of float
        Per-epoch mean contrastive ``"loss"`` and the ``"lr"`` used in that epoch.
    n_features_in : int
    """

    def __init__(self, network: nn.Sequential, history: dict, n_features_in: int):
        self.network = network
        self.history = history
        self.n_features_in = n_features_in

    def transform(self, X, *, chunk_size: int = 65536) -> torch.Tensor:
        """Embeddings ``z = f(X)`` of shape (n, embedding_dim), float32, on the network's device."""
        X = check_features(X)
        if X.shape[1] != self.n_features_in:
            raise CutbenchError(f"X has {X.shape[1]} features but the Siamese network was trained on "
                                f"{self.n_features_in}; pass features from the same pipeline.")
        return forward_in_chunks(self.network, X, chunk_size, to_cpu=False)


def _negatives(neighbors: torch.Tensor, n_per_point: int, generator: torch.Generator) -> torch.Tensor:
    """``n_per_point`` uniform draws per point among the points that are neither itself nor its neighbours."""
    n = neighbors.shape[0]
    owner = torch.arange(n)[:, None]
    drawn = torch.randint(n, (n, n_per_point), generator=generator)
    while True:
        # Collisions are rare (probability (k + 1) / n per draw), so a few redraws settle them.
        bad = (drawn == owner) | (drawn[:, :, None] == neighbors[:, None, :]).any(dim=2)
        n_bad = int(bad.sum())
        if n_bad == 0:
            return drawn
        drawn[bad] = torch.randint(n, (n_bad,), generator=generator)


def _train(spec: SiameseAffinity, X, device: torch.device, seed: int) -> SiameseEmbedding:
    n_samples, n_features = X.shape
    if n_samples < spec.n_positives + 2:
        raise CutbenchError(f"the Siamese affinity needs more than n_positives + 1 = {spec.n_positives + 1} points "
                            f"(each point needs a non-neighbour as a negative); got n={n_samples}. Use more points "
                            f"or n_positives <= {max(n_samples - 2, 1)}.")
    generator = torch.Generator().manual_seed(seed)
    X_device = torch.as_tensor(X).to(device=device, dtype=torch.float32)
    neighbors, _ = knn_search(X_device, spec.n_positives, device=device)
    neighbors = torch.from_numpy(neighbors)
    anchors = torch.arange(n_samples).repeat_interleave(spec.n_positives)
    left = torch.cat([anchors, anchors]).to(device)
    right = torch.cat([neighbors.reshape(-1), _negatives(neighbors, spec.n_positives, generator).reshape(-1)])
    right = right.to(device)
    is_positive = torch.arange(left.numel(), device=device) < anchors.numel()

    network = seeded_mlp([n_features, *spec.hidden_dims, spec.embedding_dim], activation="relu",
                         output_activation="relu", generator=generator).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=spec.lr)
    trainer = Trainer("Siamese", network, optimizer, scheduler=plateau_schedule(optimizer, factor=_LR_DECAY,
                                                                                 patience=spec.patience),
                      min_lr=_MIN_LR, hint=f"lower lr (now {spec.lr}).")
    n_pairs = left.numel()

    def epoch_steps(epoch):
        order = torch.randperm(n_pairs, generator=generator).to(device)
        for start in range(0, n_pairs, spec.batch_size):
            batch = order[start:start + spec.batch_size]
            n_batch = batch.numel()
            # One forward pass over both members of every pair.
            z = network(X_device[torch.cat([left[batch], right[batch]])])
            loss = contrastive_loss(z[:n_batch], z[n_batch:], is_positive[batch], pos_margin=spec.pos_margin,
                                    neg_margin=spec.neg_margin)
            yield loss, loss.detach().reshape(1), n_batch  # the epoch loss is the mean over pairs

    history = trainer.run(spec.epochs, epoch_steps)
    return SiameseEmbedding(network, history, n_features)
