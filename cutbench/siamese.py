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

A trained network is memoised in-process, keyed by the content of ``X``, the specification (except its
kernel, which training does not use), the seed and the device, so methods that share a Siamese network on
the same data train it once, whatever kernel each applies to the embedding. The study runner empties
the memo before each cell, so a cell's recorded affinity time always includes the training. Nothing is
written to disk: the PyTorch reference's file cache silently reused weights trained on another dataset.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from cutbench import CutbenchError
from cutbench._validation import check_features, resolve_device, seed_generators
from cutbench.graph import Affinity, batch_affinity, knn_graph, knn_search

SIAMESE_KIND = "siamese"
"""Value of the ``"kind"`` key that marks a dict as a :class:`SiameseAffinity`."""

MEMO_SIZE = 4
"""Trained Siamese networks kept in the in-process memo (least recently used dropped first)."""

_DISTANCE_EPS = 1e-7  # d = sqrt(max(||.||^2, eps)): the square root has no finite gradient at 0
_MIN_LR = 1e-7  # training stops once the plateau schedule has decayed the learning rate this far
_LR_DECAY = 0.1

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "softplus": nn.Softplus, "tanh": nn.Tanh}
"""Activation names accepted by :func:`seeded_mlp`."""

_memo: OrderedDict = OrderedDict()


def seeded_mlp(widths, *, activation="relu", output_activation=None, generator, dtype=torch.float32) -> nn.Sequential:
    """A Linear/activation stack ``widths[0] -> ... -> widths[-1]`` drawn from ``generator`` only.

    Weights and biases follow torch's default ``nn.Linear`` initialisation (Kaiming-uniform with
    ``a = sqrt(5)``, biases uniform in ``±1/sqrt(fan_in)``), which is what the PyTorch references use.
    The layers are created on the meta device and filled on the CPU, so the global torch RNG is never
    consumed and the same seed gives the same network on any device.

    Parameters
    ----------
    widths : sequence of int
        Input width, hidden widths, output width.
    activation : str, default="relu"
        Activation after each hidden layer, a key of :data:`ACTIVATIONS`.
    output_activation : str or None, default=None
        Activation after the last layer; None leaves it linear.
    generator : torch.Generator
        CPU generator the parameters are drawn from.
    dtype : torch.dtype, default=torch.float32

    Returns
    -------
    torch.nn.Sequential on the CPU
    """
    for name in (activation, output_activation):
        if name is not None and name not in ACTIVATIONS:
            raise CutbenchError(f"unknown activation {name!r}; accepted: {', '.join(map(repr, ACTIVATIONS))}.")
    layers: list[nn.Module] = []
    n_layers = len(widths) - 1
    for index, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(width_in, width_out, device="meta", dtype=dtype))
        after = activation if index < n_layers - 1 else output_activation
        if after is not None:
            layers.append(ACTIVATIONS[after]())
    model = nn.Sequential(*layers).to_empty(device="cpu")
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
                bound = 1.0 / math.sqrt(layer.in_features)
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return model


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


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise CutbenchError(f"SiameseAffinity.{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def _check_real(name, value, minimum, *, strict):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (value > minimum if strict else value >= minimum):
        raise CutbenchError(f"SiameseAffinity.{name} must be a finite number {'>' if strict else '>='} {minimum}; "
                            f"got {value!r}.")
    return float(value)


@dataclass(frozen=True)
class SiameseAffinity:
    """Specification of a Siamese affinity: the network, its contrastive training and the heat kernel.

    Pass it (or its ``to_dict()``, or the preset name ``"siamese"``) as the ``affinity`` of any method
    that resolves its affinity with :func:`cutbench.graph.prepare_affinity` (Ncut, NeuNcut, NeuRcut,
    SpectralNet). The method trains it on its training data with its own seed and device, unless
    ``random_state`` fixes the seed here.

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

    def __post_init__(self):
        # Frozen dataclass: normalised values are set through object.__setattr__.
        set_field = object.__setattr__
        set_field(self, "kernel", Affinity.from_any(self.kernel))
        widths = self.hidden_dims
        if not isinstance(widths, (tuple, list)) or not all(
                isinstance(w, numbers.Integral) and not isinstance(w, bool) and w >= 1 for w in widths):
            raise CutbenchError(f"SiameseAffinity.hidden_dims must be a tuple of positive integers, e.g. "
                                f"(1024, 1024, 512); got {widths!r}.")
        set_field(self, "hidden_dims", tuple(int(w) for w in widths))
        for name, minimum in (("embedding_dim", 1), ("n_positives", 1), ("epochs", 1), ("batch_size", 1),
                              ("patience", 1)):
            set_field(self, name, _check_int(name, getattr(self, name), minimum))
        set_field(self, "pos_margin", _check_real("pos_margin", self.pos_margin, 0.0, strict=False))
        set_field(self, "neg_margin", _check_real("neg_margin", self.neg_margin, self.pos_margin, strict=True))
        set_field(self, "lr", _check_real("lr", self.lr, 0.0, strict=True))
        if self.random_state is not None:
            set_field(self, "random_state", _check_int("random_state", self.random_state, 0))

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
        if "hidden_dims" in fields and isinstance(fields["hidden_dims"], list):
            fields["hidden_dims"] = tuple(fields["hidden_dims"])
        return cls(**fields)

    def fit(self, X, *, device="auto", random_state=None) -> SiameseEmbedding:
        """Train the Siamese network on ``X``, or return the memoised one trained on the same data.

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
        device = resolve_device(device)
        seed = self.random_state
        if seed is None:
            _, _, seed = seed_generators(random_state)
        # The seed enters the key once, resolved: a spec fixing seed s and a method passing s share a network.
        # The kernel is left out: training never uses it, so specs differing only in it share a network.
        params = {name: value for name, value in self.to_dict().items() if name not in ("random_state", "kernel")}
        key = (_fingerprint(X), json.dumps(params, sort_keys=True), seed, str(device))
        if key in _memo:
            _memo.move_to_end(key)
            fitted = _memo[key]
            if fitted.kernel == self.kernel:
                return fitted
            return SiameseEmbedding(self, fitted.network, fitted.history, fitted.n_features_in)
        fitted = _train(self, X, device, seed)
        _memo[key] = fitted
        while len(_memo) > MEMO_SIZE:
            _memo.popitem(last=False)
        return fitted


def clear_memo() -> None:
    """Forget every memoised Siamese network (frees their memory)."""
    _memo.clear()


def _fingerprint(X) -> str:
    """sha256 of the values, shape and dtype of ``X``: the data part of the memo key."""
    array = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else X
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.shape}|{array.dtype}".encode())
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


class SiameseEmbedding:
    """A trained Siamese network and the heat kernel of its specification.

    Attributes
    ----------
    spec : SiameseAffinity
    network : torch.nn.Sequential
        The trained network, in eval mode, on the device it was trained on.
    history : dict of list of float
        Per-epoch mean contrastive ``"loss"`` and the ``"lr"`` used in that epoch.
    n_features_in : int
    """

    def __init__(self, spec: SiameseAffinity, network: nn.Sequential, history: dict, n_features_in: int):
        self.spec = spec
        self.network = network
        self.history = history
        self.n_features_in = n_features_in

    @property
    def kernel(self) -> Affinity:
        return self.spec.kernel

    def transform(self, X, *, chunk_size: int = 65536) -> torch.Tensor:
        """Embeddings ``z = f(X)`` of shape (n, embedding_dim), float32, on the network's device."""
        X = check_features(X)
        if X.shape[1] != self.n_features_in:
            raise CutbenchError(f"X has {X.shape[1]} features but the Siamese network was trained on "
                                f"{self.n_features_in}; pass features from the same pipeline.")
        parameter = next(self.network.parameters())
        outputs = []
        with torch.inference_mode():
            for start in range(0, X.shape[0], chunk_size):
                chunk = torch.as_tensor(X[start:start + chunk_size]).to(parameter.device, parameter.dtype)
                outputs.append(self.network(chunk))
        return torch.cat(outputs)

    def batch_affinity(self, X) -> torch.Tensor:
        """:func:`cutbench.graph.batch_affinity` of the kernel on the embeddings of the batch ``X``."""
        return batch_affinity(self.transform(X), self.kernel)

    def knn_graph(self, X, *, chunk_size=None) -> sp.csr_matrix:
        """:func:`cutbench.graph.knn_graph` of the kernel on the embeddings of ``X``."""
        Z = self.transform(X)
        return knn_graph(Z, self.kernel, device=Z.device, chunk_size=chunk_size)


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
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=_LR_DECAY, patience=spec.patience)
    n_pairs = left.numel()
    history = {"loss": [], "lr": []}
    for epoch in range(spec.epochs):
        lr = optimizer.param_groups[0]["lr"]
        if lr <= _MIN_LR:
            break
        history["lr"].append(lr)
        order = torch.randperm(n_pairs, generator=generator).to(device)
        total = torch.zeros((), device=device)
        for start in range(0, n_pairs, spec.batch_size):
            batch = order[start:start + spec.batch_size]
            n_batch = batch.numel()
            # One forward pass over both members of every pair.
            z = network(X_device[torch.cat([left[batch], right[batch]])])
            loss = contrastive_loss(z[:n_batch], z[n_batch:], is_positive[batch], pos_margin=spec.pos_margin,
                                    neg_margin=spec.neg_margin)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * n_batch
        mean_loss = float(total) / n_pairs  # one host transfer per epoch
        if not math.isfinite(mean_loss):
            raise CutbenchError(f"Siamese training diverged at epoch {epoch + 1} (loss={mean_loss}); lower lr "
                                f"(now {spec.lr}).")
        history["loss"].append(mean_loss)
        scheduler.step(mean_loss)
    network.eval()
    network.requires_grad_(False)
    return SiameseEmbedding(spec, network, history, n_features)
