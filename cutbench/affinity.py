"""The one affinity layer: any affinity specification, made ready for any method.

A method's ``affinity`` parameter may be

* a heat kernel on the features (kind ``"heat_kernel"``): a :class:`~cutbench.graph.Affinity`, a dict
  of its fields, or a preset name of :data:`~cutbench.graph.AFFINITY_PRESETS` (``"knn"``,
  ``"neuncut"``, ...);
* a learned affinity: kind ``"siamese"`` (:class:`~cutbench.siamese.SiameseAffinity`, a heat kernel on a
  learned embedding; the name ``"siamese"``) or ``"self_expressive"``
  (:class:`~cutbench.senet.SelfExpressiveAffinity`, SENet's coefficients; the names ``"senet"`` and
  ``"senet_cpu"``), or a dict with its ``"kind"``.

:func:`prepare_affinity` turns any of them into a :class:`PreparedAffinity` on a method's training
data, whose :meth:`~PreparedAffinity.batch` gives the dense affinity of a mini-batch and
:meth:`~PreparedAffinity.graph` the sparse graph of all training points; :class:`DeviceGraph` holds
such a graph on the device for methods that gather its rows there (SpecNet2). Every method goes
through this module, so every method takes every kind; a method that cannot take a kind says so in
its ``capabilities.affinity_kinds`` and study expansion refuses the cell before anything runs.

A learned affinity is trained once per (data, specification without its kernel, seed, device) while
an :class:`AffinityCache` is active (a runner activates one per cell); without one, each
:func:`prepare_affinity` call trains its own.
"""

from __future__ import annotations

import contextvars
import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from contextlib import contextmanager

import numpy as np
import scipy.sparse as sp
import torch

from cutbench import CutbenchError
from cutbench._validation import resolve_device, seed_generators
from cutbench.canonical import canonical_json
from cutbench.graph import AFFINITY_PRESETS, Affinity, PreparedAffinity, points_on_device
from cutbench.learned import LearnedAffinity
from cutbench.senet import SELF_EXPRESSIVE_KIND, SENET_PRESETS, SelfExpressiveAffinity
from cutbench.siamese import SIAMESE_KIND, SiameseAffinity

HEAT_KERNEL = "heat_kernel"
"""Kind of a heat-kernel affinity on the features (an :class:`~cutbench.graph.Affinity`)."""

LEARNED_AFFINITIES: dict[str, type[LearnedAffinity]] = {SIAMESE_KIND: SiameseAffinity,
                                                         SELF_EXPRESSIVE_KIND: SelfExpressiveAffinity}
"""Learned affinity specifications by kind, each a :class:`~cutbench.learned.LearnedAffinity`."""

LEARNED_PRESETS = {SIAMESE_KIND: SiameseAffinity(), **SENET_PRESETS}
"""Learned affinities by name: ``"siamese"``, ``"senet"`` (the reference SENet) and ``"senet_cpu"``."""

AFFINITY_KINDS = (HEAT_KERNEL, *LEARNED_AFFINITIES)
"""Every affinity kind cutbench knows."""

_SYMMETRY_RTOL = 1e-5  # a precomputed graph counts as symmetric when max|W - W^T| <= this * max|W|


# --------------------------------------------------------------------------------------------
# Specifications
# --------------------------------------------------------------------------------------------
def resolve_affinity(value):
    """The specification object of any accepted affinity value (see the module docstring).

    Raises
    ------
    CutbenchError
        For an unknown kind, preset or field; the message lists what is accepted.
    """
    if isinstance(value, (Affinity, *LEARNED_AFFINITIES.values())):
        return value
    if isinstance(value, Mapping) and "kind" in value:
        kind = value["kind"]
        if kind == HEAT_KERNEL:
            return Affinity.from_any({key: item for key, item in value.items() if key != "kind"})
        if kind not in LEARNED_AFFINITIES:
            raise CutbenchError(f"unknown affinity kind {kind!r}; accepted kinds: "
                                f"{', '.join(map(repr, AFFINITY_KINDS))}.")
        return LEARNED_AFFINITIES[kind].from_dict(value)
    if isinstance(value, str) and value in LEARNED_PRESETS:
        return LEARNED_PRESETS[value]
    if isinstance(value, str) and value not in AFFINITY_PRESETS:
        raise CutbenchError(f"unknown affinity {value!r}; accepted names: "
                            f"{', '.join(map(repr, [*AFFINITY_PRESETS, *LEARNED_PRESETS]))} "
                            "(or pass a specification or a dict of its fields).")
    return Affinity.from_any(value)


def affinity_kind(value) -> str:
    """The kind of an affinity value: ``"heat_kernel"`` or a learned kind such as ``"siamese"``."""
    spec = resolve_affinity(value)
    return HEAT_KERNEL if isinstance(spec, Affinity) else spec.kind


def canonical_affinity(value) -> dict:
    """An affinity value as the plain dict of its specification: equal specifications give equal dicts."""
    return resolve_affinity(value).to_dict()


def affinity_label(spec: Mapping) -> str:
    """Short text for an affinity given as a dict: ``"affinity=<kind>"`` for a learned one (e.g.
    ``"affinity=siamese"``), else ``"s=<n_neighbors>"`` (``"s=dense"`` without sparsification). Used in
    cell and table labels."""
    if "kind" in spec and spec["kind"] != HEAT_KERNEL:
        return f"affinity={spec['kind']}"
    neighbors = spec.get("n_neighbors")
    return f"s={'dense' if neighbors is None else neighbors}"


# --------------------------------------------------------------------------------------------
# Learned affinities, trained once per cache
# --------------------------------------------------------------------------------------------
_active_cache: contextvars.ContextVar = contextvars.ContextVar("cutbench_affinity_cache", default=None)


class AffinityCache:
    """Trained learned affinities, reused while the cache is active.

    A runner creates one per cell and activates it around the cell's affinity and fit stages, so the
    affinity stage trains the network and every fit of the cell reuses it; nothing outlives the cell.

    Parameters
    ----------
    max_entries : int, default=4
        Trained networks kept; the least recently used is dropped first.
    """

    def __init__(self, max_entries: int = 4):
        self.max_entries = max_entries
        self._entries: OrderedDict = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    @contextmanager
    def active(self):
        """Make this the cache :func:`prepare_affinity` uses in the enclosed block."""
        token = _active_cache.set(self)
        try:
            yield self
        finally:
            _active_cache.reset(token)

    def fitted(self, spec, X: torch.Tensor, device: torch.device, seed: int):
        """The trained network of ``spec`` on ``X``: from the cache, or trained now and kept."""
        # The kernel is left out: training never uses it, so specifications differing only in it share a network.
        key = (_fingerprint(X), spec.kind, canonical_json(spec.training_params()), seed, str(device))
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        fitted = spec.fit(X, device=device, random_state=seed)
        self._entries[key] = fitted
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return fitted


def _fingerprint(X) -> str:
    """sha256 of the values, shape and dtype of ``X``: the data part of a cache key."""
    array = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else X
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.shape}|{array.dtype}".encode())
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Prepared affinities
# --------------------------------------------------------------------------------------------
def prepare_affinity(value, X, *, device="auto", random_state=None) -> PreparedAffinity:
    """Resolve ``value`` (see :func:`resolve_affinity`) and make it ready on the training data ``X``.

    This is the one entry point methods use, so every method accepts every kind of affinity. A heat
    kernel on the features needs no training: ``points`` is ``X`` on ``device``. A learned affinity is
    trained on ``X`` (or taken from the active :class:`AffinityCache`) and ``points`` is the embedding
    of ``X``, in the dtype of ``X`` when ``X`` is a floating-point tensor.

    Parameters
    ----------
    value : Affinity, SiameseAffinity, dict or str
    X : array-like or torch.Tensor of shape (n, d)
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device, default="auto"
    random_state : None, int or numpy.random.Generator, default=None
        Seed of a learned affinity whose specification does not fix one.

    Returns
    -------
    PreparedAffinity
    """
    spec = resolve_affinity(value)
    points = points_on_device(X, resolve_device(device))
    if isinstance(spec, Affinity):
        return PreparedAffinity(spec, spec, points)
    seed = spec.random_state if spec.random_state is not None else seed_generators(random_state)[2]
    cache = _active_cache.get()
    fitted = (cache.fitted(spec, points, points.device, seed) if cache is not None
              else spec.fit(points, device=points.device, random_state=seed))
    return spec.prepare(fitted, points)


def check_batch_size_for(prepared, batch_size: int) -> None:
    """Refuse a batch too small for the kNN kernel of a prepared affinity (each point needs its neighbours)."""
    kernel = prepared.kernel
    if kernel is not None and kernel.n_neighbors is not None and kernel.n_neighbors >= batch_size:
        raise CutbenchError(f"the affinity keeps n_neighbors={kernel.n_neighbors} neighbours per point, but a batch "
                            f"has only batch_size={batch_size} points (at most {batch_size - 1} neighbours each); use "
                            f"batch_size > {kernel.n_neighbors} or fewer neighbours.")


# --------------------------------------------------------------------------------------------
# Full graphs: precomputed input, and the graph on the device
# --------------------------------------------------------------------------------------------
def _graph_as_csr(graph) -> sp.csr_matrix:
    """A scipy sparse, numpy or torch (dense or sparse) matrix as a float64 CSR matrix on the host."""
    if isinstance(graph, torch.Tensor):
        graph = graph.detach().cpu()
        if graph.layout == torch.strided:
            graph = graph.numpy()
        else:
            coo = graph.to_sparse_coo().coalesce()
            rows, cols = coo.indices().numpy()
            graph = sp.coo_matrix((coo.values().numpy(), (rows, cols)), shape=tuple(coo.shape))
    if sp.issparse(graph):
        return sp.csr_matrix(graph, dtype=np.float64)
    dense = np.asarray(graph)
    if dense.dtype.kind not in "fiub":
        raise CutbenchError(f"graph must be a numeric matrix; got dtype {dense.dtype}.")
    if dense.ndim != 2:
        raise CutbenchError(f"graph must be a 2-D (n_samples, n_samples) matrix; got shape {dense.shape}.")
    return sp.csr_matrix(dense.astype(np.float64))


def check_affinity_graph(graph, n_samples: int) -> sp.csr_matrix:
    """Validate a full affinity graph and return it as an exactly symmetric float64 CSR matrix.

    The graph must be square with ``n_samples`` rows, finite, nonnegative and symmetric up to
    ``1e-5 * max|W|``; the returned matrix is ``(W + W^T) / 2``.
    """
    W = _graph_as_csr(graph)
    if W.shape[0] != W.shape[1]:
        raise CutbenchError(f"graph must be square (n_samples x n_samples); got shape {W.shape}.")
    if W.shape[0] != n_samples:
        raise CutbenchError(f"graph has {W.shape[0]} nodes but X has {n_samples} samples; build the graph "
                            "on the same points as X (one node per row of X, in the same order).")
    if not np.isfinite(W.data).all():
        raise CutbenchError(f"graph has {int((~np.isfinite(W.data)).sum())} NaN or inf weight(s); "
                            "affinities must be finite.")
    if W.nnz and W.data.min() < 0:
        raise CutbenchError(f"graph has {int((W.data < 0).sum())} negative weight(s) (min {W.data.min():.3g}); "
                            "affinities must be nonnegative, e.g. a heat kernel exp(-d^2 / (2 sigma^2)).")
    asymmetry = W - W.T
    largest_asymmetry = abs(asymmetry).max() if asymmetry.nnz else 0.0
    largest_weight = abs(W).max() if W.nnz else 0.0
    if largest_asymmetry > _SYMMETRY_RTOL * largest_weight:
        raise CutbenchError(f"graph is not symmetric: max|W - W^T| = {largest_asymmetry:.3g} "
                            f"(max|W| = {largest_weight:.3g}); symmetrise it first, e.g. (W + W.T) / 2.")
    return (W - 0.5 * asymmetry).tocsr()


class DeviceGraph:
    """A full sparse graph on the device: degrees, row gathers and sparse products, never dense n×n.

    Parameters
    ----------
    W : scipy.sparse matrix of shape (n, n)
        A checked graph (:func:`check_affinity_graph`).
    device : torch.device
    dtype : torch.dtype
    """

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
        """``W @ Y`` by a sparse product on the device."""
        return torch.sparse.mm(self.coo.to(Y.dtype), Y)


__all__ = ["AFFINITY_KINDS", "AffinityCache", "DeviceGraph", "HEAT_KERNEL", "LEARNED_AFFINITIES", "LEARNED_PRESETS",
           "PreparedAffinity",
           "affinity_kind", "affinity_label", "canonical_affinity", "check_affinity_graph", "check_batch_size_for", "prepare_affinity",
           "resolve_affinity"]
