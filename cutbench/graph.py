"""Heat-kernel affinities: a dense per-batch builder (torch) and a chunked full-graph builder (scipy.sparse).

``W_ij = exp(-||x_i - x_j||^2 / (2 sigma^2))``, optionally on L2-normalised rows, optionally kept only for
the ``s = n_neighbors`` nearest neighbours of each row (self excluded) and then symmetrised. Both builders
follow the same rules, so ``batch_affinity(X, a)`` and ``knn_graph(X, a).toarray()`` agree on the same points:

- ``sigma="median"`` is the median Euclidean distance over the kept kNN pairs (self excluded, before
  symmetrisation); with ``n_neighbors=None`` it is the median over all off-diagonal pairs. The median of an
  even count is the mean of the two middle values (numpy's convention).
- Neighbours are chosen by distance; among equidistant candidates for the last place, the lowest column
  index wins, so the graph does not depend on the device, the chunking or the order of ``torch.topk``.
- The diagonal is set last: 1 with ``self_loops=True``, 0 otherwise.

SpectralNet's two bandwidth rules (:func:`local_median_affinity`, :func:`global_median_sigma`) live here
too. Which kernel a method uses, and on which points, is decided by :mod:`cutbench.affinity`.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from cutbench import CutbenchError
from cutbench._validation import check_features, resolve_device
from cutbench.params import Boolean, Interval, NoneValue, Options, Satisfies, canonical_params

DENSE_MAX_SAMPLES = 20_000
"""Largest ``n`` for which ``knn_graph`` builds a dense graph (``n_neighbors=None``): n^2 float64 entries."""

_CHUNK_BYTES = 256 * 2**20  # default budget for one chunk x n block of squared distances
_SYMMETRIZE_RULES = ("mean", "max")
_ROW_NORM_EPS = 1e-6


KNN_BACKENDS = {
    "exact": "exact search in torch, chunked over rows, on the CPU or CUDA (the default)",
    "faiss_flat": "exact search with faiss IndexFlatL2 (BLAS on the CPU)",
    "faiss_hnsw": "approximate: faiss HNSW graph, M=32, efConstruction=100, efSearch=max(64, 2(s+1))",
    "pynndescent": "approximate: NN-descent (pynndescent) with max(30, s+1) neighbours, the s nearest kept",
}
"""kNN backends of a full graph, with their fixed parameters; all but "exact" are optional extras."""

_BACKEND_PACKAGES = {"faiss_flat": ("faiss", "faiss-cpu"), "faiss_hnsw": ("faiss", "faiss-cpu"),
                     "pynndescent": ("pynndescent", "pynndescent")}
APPROXIMATE_BACKENDS = ("faiss_hnsw", "pynndescent")


def _check_backend(name) -> str:
    if name not in KNN_BACKENDS:
        raise CutbenchError(f"unknown kNN backend {name!r}; accepted: {_quoted(KNN_BACKENDS)} (all but 'exact' need "
                            "pip install 'cutbench[ann]', i.e. faiss-cpu and pynndescent).")
    return name


def _backend_module(name: str):
    module, package = _BACKEND_PACKAGES[name]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise CutbenchError(f"knn_backend={name!r} needs the package {package}, which is not installed: pip install "
                            f"{package} (or pip install 'cutbench[ann]'), or use knn_backend='exact'.") from exc


def _quoted(names) -> str:
    return ", ".join(repr(name) for name in names)


def _check_n_neighbors(n_neighbors):
    """``n_neighbors`` of a search: an integer >= 1 (an integral float is read as that integer)."""
    constraint = Interval(int, 1)
    value = constraint.coerce(n_neighbors)
    if not constraint.accepts(value):
        raise CutbenchError(f"n_neighbors must be an integer >= 1 (entries kept per row); got {n_neighbors!r}.")
    return int(value)


@dataclass(frozen=True)
class Affinity:
    """Heat-kernel affinity specification, recorded with every result.

    Parameters
    ----------
    sigma : float or "median", default="median"
        Kernel bandwidth (> 0), or ``"median"``: the median Euclidean distance over the kept kNN pairs
        (self excluded, before symmetrisation), or over all off-diagonal pairs when ``n_neighbors=None``.
    n_neighbors : int or None, default=10
        ``s``, the entries kept per row: the ``s`` largest affinities (nearest neighbours), self excluded.
        ``None`` keeps every entry (dense graph).
    self_loops : bool, default=False
        Diagonal is 1 when True, 0 when False.
    normalize_rows : bool, default=False
        L2-normalise feature rows first, ``x / (||x|| + 1e-6)``, as the reference NeuNcut code does.
    symmetrize : {"mean", "max"}, default="mean"
        Applied after the kNN step: ``(W + W^T) / 2`` or ``max(W, W^T)``.
    knn_backend : str, default="exact"
        How the full graph's neighbours are found (see :data:`KNN_BACKENDS`): exact search, or an
        approximate one for large ``n``. Mini-batch affinities are always exact.
    """

    sigma: float | str = "median"
    n_neighbors: int | None = 10
    self_loops: bool = False
    normalize_rows: bool = False
    symmetrize: str = "mean"
    knn_backend: str = "exact"

    _parameter_constraints: ClassVar[dict] = {
        "sigma": [Interval(float, 0, None, closed="neither"), Options("median")],
        "n_neighbors": [Interval(int, 1), NoneValue("a dense graph")],
        "self_loops": [Boolean()],
        "normalize_rows": [Boolean()],
        "symmetrize": [Options(*_SYMMETRIZE_RULES)],
        "knn_backend": [Satisfies(lambda name: _check_backend(name), "a kNN backend")],
    }

    def __post_init__(self):
        # Frozen dataclass: canonical values (80 -> 80.0 for sigma, numpy scalars -> Python) are set
        # through object.__setattr__, so equal specifications compare and serialise equal.
        fields = canonical_params("Affinity", self._parameter_constraints, dataclasses.asdict(self))
        for name, value in fields.items():
            object.__setattr__(self, name, value)
        if self.knn_backend != "exact" and self.n_neighbors is None:
            raise CutbenchError(f"Affinity: knn_backend={self.knn_backend!r} searches neighbours, but n_neighbors=None "
                                "asks for a dense graph; give n_neighbors (e.g. 10) or knn_backend='exact'.")

    def to_dict(self) -> dict:
        """Plain dict of the fields; ``Affinity.from_any(a.to_dict()) == a``. The kNN backend is left out
        at its default (exact search), so specifications written before it existed keep their keys."""
        fields = dataclasses.asdict(self)
        if fields["knn_backend"] == "exact":
            del fields["knn_backend"]
        return fields

    @classmethod
    def from_any(cls, value) -> Affinity:
        """Resolve an ``Affinity``, a dict of its fields or a preset name from ``AFFINITY_PRESETS``."""
        if isinstance(value, Affinity):
            return value
        if isinstance(value, str):
            if value not in AFFINITY_PRESETS:
                raise CutbenchError(f"unknown affinity preset {value!r}; accepted presets: "
                                    f"{_quoted(AFFINITY_PRESETS)} (or pass an Affinity or a dict).")
            return AFFINITY_PRESETS[value]
        if isinstance(value, Mapping):
            accepted = [field.name for field in dataclasses.fields(cls)]
            unknown = [key for key in value if key not in accepted]
            if unknown:
                raise CutbenchError(f"unknown affinity key(s) {unknown}; accepted keys: {_quoted(accepted)}.")
            return cls(**value)
        raise CutbenchError(f"affinity must be an Affinity, a dict of its fields or a preset name "
                            f"({_quoted(AFFINITY_PRESETS)}); got {type(value).__name__}.")


AFFINITY_PRESETS = {
    # s = 10 nearest neighbours, median bandwidth: the shared kernel of cutbench's studies.
    "knn": Affinity(),
    # The NeuNcut reference code: dense, self-loops, sigma 3 on L2-normalised rows.
    "neuncut": Affinity(sigma=3.0, n_neighbors=None, self_loops=True, normalize_rows=True),
    # The CNC reference: the 3 nearest neighbours counting the point itself (2 others plus self-loops).
    "cnc": Affinity(n_neighbors=2, self_loops=True),
    # The kNN kernel with self-loops, which SpecNet2's neighbour variant needs.
    "knn_self_loops": Affinity(self_loops=True),
}
"""Heat kernels by name: any ``affinity`` parameter accepts these names."""


def _check_n_neighbors_fit(n_neighbors: int | None, n_points: int) -> None:
    if n_neighbors is not None and n_neighbors >= n_points:
        raise CutbenchError(f"n_neighbors={n_neighbors} must be smaller than the number of points ({n_points}): "
                            f"each point has at most {n_points - 1} neighbours. Use n_neighbors <= {n_points - 1} "
                            "or n_neighbors=None for a dense graph.")


def l2_normalize_rows(X):
    """Rows divided by their L2 norm plus 1e-6 (numpy array or torch tensor in, same kind out)."""
    if isinstance(X, torch.Tensor):
        if X.ndim != 2:
            raise CutbenchError(f"X must be 2-D; got shape {tuple(X.shape)}.")
        return X / (torch.linalg.vector_norm(X, dim=1, keepdim=True) + _ROW_NORM_EPS)
    X = np.asarray(X)
    if X.ndim != 2:
        raise CutbenchError(f"X must be 2-D; got shape {X.shape}.")
    return X / (np.linalg.norm(X, axis=1, keepdims=True) + _ROW_NORM_EPS)


def pairwise_sq_dists(X: torch.Tensor, Y: torch.Tensor | None = None) -> torch.Tensor:
    """Squared Euclidean distances ``||x_i - y_j||^2`` via one matrix product, clamped at 0.

    Never forms an ``m x n x d`` tensor. With ``Y=None`` the distances are among the rows of ``X`` and the
    diagonal is exactly 0. Differentiable. The expansion ``|x|^2 + |y|^2 - 2 x.y`` loses precision for
    points far from the origin, so callers building graphs centre the data first.
    """
    x_sq = (X * X).sum(dim=1)
    y_sq = x_sq if Y is None else (Y * Y).sum(dim=1)
    other = X if Y is None else Y
    needs_grad = torch.is_grad_enabled() and (X.requires_grad or other.requires_grad)
    sq = torch.addmm(y_sq[None, :], X, other.T, alpha=-2.0)
    if needs_grad:
        sq = (sq + x_sq[:, None]).clamp_min(0.0)
    else:  # in place: a single m x n allocation, which matters for the chunked full-graph builder
        sq = sq.add_(x_sq[:, None]).clamp_min_(0.0)
    if Y is None:
        sq.diagonal().zero_()
    return sq


def _knn_columns(sq: torch.Tensor, n_neighbors: int) -> torch.Tensor:
    """Columns of the ``n_neighbors`` smallest entries of each row, in increasing column order.

    Entries to exclude (the point itself) must be +inf; ``n_neighbors`` < number of columns. Among
    entries equal to the last kept value the lowest columns win, which makes the result independent of
    how ``torch.topk`` orders ties.
    """
    values, columns = torch.topk(sq, n_neighbors + 1, dim=1, largest=False, sorted=True)
    columns = columns[:, :n_neighbors].sort(dim=1).values
    # Only where the last kept value ties with the first dropped one can topk's choice be arbitrary.
    tied = values[:, n_neighbors - 1] == values[:, n_neighbors]
    if bool(tied.any()):
        rows = tied.nonzero().squeeze(1)
        sub = sq[rows]
        kth = values[rows, n_neighbors - 1 : n_neighbors]
        below = sub < kth
        at_kth = sub == kth
        missing = n_neighbors - below.sum(dim=1, keepdim=True)
        keep = below | (at_kth & (at_kth.cumsum(dim=1) <= missing))
        columns[rows] = keep.nonzero()[:, 1].reshape(-1, n_neighbors)
    return columns


def _torch_median(values: torch.Tensor, n_skip: int = 0) -> torch.Tensor:
    """Median of ``values`` (mean of the two middle values), ignoring its ``n_skip`` smallest entries."""
    flat = values.reshape(-1)
    count = flat.numel() - n_skip
    low = torch.kthvalue(flat, n_skip + (count + 1) // 2).values
    high = torch.kthvalue(flat, n_skip + count // 2 + 1).values
    return (low + high) / 2


def _check_median_sigma(sigma: float, pairs: str) -> None:
    if not sigma > 0:
        raise CutbenchError(f"sigma='median' gives 0: the median distance over {pairs} is 0 (many duplicate "
                            "points). Remove duplicates or set a fixed sigma > 0.")


def _symmetrize_dense(W: torch.Tensor, rule: str) -> torch.Tensor:
    return (W + W.T) / 2 if rule == "mean" else torch.maximum(W, W.T)


@torch.no_grad()
def batch_affinity(X: torch.Tensor, affinity: Affinity) -> torch.Tensor:
    """Dense ``m x m`` heat-kernel affinity of a batch, on the device and dtype of ``X``, symmetric.

    Meant for training loops: no Python loop over rows, no ``m x m x d`` tensor, and no autograd graph
    (the result is a constant even if ``X`` requires grad). ``X`` is trusted to be finite (the methods
    validate their input once in ``fit``). Half-precision input is computed in float32 and cast back.

    Parameters
    ----------
    X : torch.Tensor of shape (m, d)
        The batch; a numpy array is converted to a CPU tensor.
    affinity : Affinity, dict or preset name
        See :class:`Affinity`; ``n_neighbors`` must be smaller than ``m``.

    Returns
    -------
    torch.Tensor of shape (m, m)
    """
    affinity = Affinity.from_any(affinity)
    X = torch.as_tensor(X)
    if X.ndim != 2 or X.shape[0] < 2:
        raise CutbenchError(f"batch_affinity needs a 2-D batch of at least 2 points; got shape {tuple(X.shape)}.")
    out_dtype = X.dtype
    work_dtype = X.dtype if X.dtype in (torch.float32, torch.float64) else torch.float32
    X = X.to(work_dtype)
    m = X.shape[0]
    _check_n_neighbors_fit(affinity.n_neighbors, m)
    if affinity.normalize_rows:
        X = l2_normalize_rows(X)
    sq = pairwise_sq_dists(X - X.mean(dim=0))

    if affinity.n_neighbors is None:
        if affinity.sigma == "median":
            dist = sq.sqrt()
            dist.diagonal().fill_(-math.inf)  # the m diagonal entries sort first and are skipped
            sigma = _torch_median(dist, n_skip=m)
            _check_median_sigma(float(sigma), "all off-diagonal pairs of the batch")
        else:
            sigma = affinity.sigma
        W = torch.exp(sq / (-2.0 * sigma**2))
    else:
        sq_no_self = sq.clone()
        sq_no_self.diagonal().fill_(math.inf)
        cols = _knn_columns(sq_no_self, affinity.n_neighbors)
        kept_sq = sq.gather(1, cols)
        if affinity.sigma == "median":
            sigma = _torch_median(kept_sq.sqrt())
            _check_median_sigma(float(sigma), "the kept kNN pairs of the batch")
        else:
            sigma = affinity.sigma
        W = torch.zeros_like(sq).scatter_(1, cols, torch.exp(kept_sq / (-2.0 * sigma**2)))
    W = _symmetrize_dense(W, affinity.symmetrize)
    W.diagonal().fill_(1.0 if affinity.self_loops else 0.0)
    return W.to(out_dtype)


def points_on_device(X, device: torch.device) -> torch.Tensor:
    """Checked features as a float32/float64 tensor on ``device`` (half precision is too coarse for distances)."""
    X = check_features(X, min_samples=2)
    if isinstance(X, np.ndarray):
        X = torch.from_numpy(np.require(X, requirements=["C", "W"]))
    if X.dtype not in (torch.float32, torch.float64):  # half precision is too coarse for distances
        X = X.float()
    return X.to(device)


def _chunk_rows(chunk_size, n: int, itemsize: int) -> int:
    if chunk_size is None:
        return max(1, min(n, _CHUNK_BYTES // (n * itemsize)))
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise CutbenchError(f"chunk_size must be a positive integer (rows per chunk) or None (automatic, "
                            f"~256 MB per chunk); got {chunk_size!r}.")
    return int(min(chunk_size, n))


def _prepare_points(X, affinity: Affinity, device) -> torch.Tensor:
    X = points_on_device(X, resolve_device(device))
    if affinity.normalize_rows:
        X = l2_normalize_rows(X)
    return X - X.mean(dim=0)  # centring keeps the matmul expansion of the distances accurate


@torch.no_grad()
def _knn_search_prepared(X: torch.Tensor, n_neighbors: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    n = X.shape[0]
    cols_parts, sq_parts = [], []
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        sq = pairwise_sq_dists(X[start:stop], X)
        local = torch.arange(stop - start, device=X.device)
        sq[local, local + start] = math.inf
        cols = _knn_columns(sq, n_neighbors)
        cols_parts.append(cols.cpu())
        sq_parts.append(sq.gather(1, cols).cpu())
    return torch.cat(cols_parts).numpy(), torch.cat(sq_parts).to(torch.float64).numpy()


def knn_search(X, n_neighbors: int, *, device="auto", chunk_size=None) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``n_neighbors`` nearest neighbours of every row of ``X`` (self excluded), chunked over rows.

    Equidistant candidates for the last place go to the lowest index. ``knn_graph`` uses the same search
    (after the optional row normalisation), so this is also the unsymmetrised kNN structure of the graph.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n, d)
    n_neighbors : int
        ``1 <= n_neighbors < n``.
    device : {"auto", "cpu", "cuda"}, default="auto"
    chunk_size : int or None, default=None
        Rows per chunk; None keeps a chunk x n distance block within ~256 MB.

    Returns
    -------
    indices : ndarray of shape (n, n_neighbors), int64
        Neighbour indices of each row, in increasing index order (not distance order).
    sq_dists : ndarray of shape (n, n_neighbors), float64
        The matching squared Euclidean distances.
    """
    if n_neighbors is None:
        raise CutbenchError("knn_search needs an integer n_neighbors >= 1; got None.")
    n_neighbors = _check_n_neighbors(n_neighbors)
    X = points_on_device(X, resolve_device(device))
    _check_n_neighbors_fit(n_neighbors, X.shape[0])
    X = X - X.mean(dim=0)
    return _knn_search_prepared(X, n_neighbors, _chunk_rows(chunk_size, X.shape[0], X.element_size()))


def _backend_search(X: torch.Tensor, n_neighbors: int, backend: str) -> tuple[np.ndarray, np.ndarray]:
    """``n_neighbors`` neighbours of every row of the prepared ``X`` by a faiss or pynndescent backend.

    Same output as :func:`_knn_search_prepared` (self excluded; squared distances in float64), except
    that rows are in distance order and ties are not broken by index. Uses as many threads as torch.
    """
    module = _backend_module(backend)
    points = np.ascontiguousarray(X.detach().cpu().numpy(), dtype=np.float32)
    n, d = points.shape
    k = n_neighbors + 1  # the point itself is (usually) its own nearest neighbour
    threads = torch.get_num_threads()
    if backend == "pynndescent":
        search = module.NNDescent(points, n_neighbors=max(30, k), random_state=0, n_jobs=threads)
        indices, distances = search.neighbor_graph
        sq = distances.astype(np.float64) ** 2
    else:
        module.omp_set_num_threads(threads)
        if backend == "faiss_flat":
            index = module.IndexFlatL2(d)
        else:
            index = module.IndexHNSWFlat(d, 32)
            index.hnsw.efConstruction = 100
        index.add(points)
        if backend == "faiss_hnsw":
            index.hnsw.efSearch = max(64, 2 * k)
        sq, indices = index.search(points, k)
        sq = sq.astype(np.float64)
    # Drop each row's own index (wherever it landed) and any missing slot, keep the nearest n_neighbors.
    sq = np.where((indices == np.arange(n)[:, None]) | (indices < 0), np.inf, sq)
    order = np.argsort(sq, axis=1, kind="stable")[:, :n_neighbors]
    cols, sq = np.take_along_axis(indices, order, 1).astype(np.int64), np.take_along_axis(sq, order, 1)
    if not np.isfinite(sq).all():
        raise CutbenchError(f"knn_backend={backend!r} found fewer than {n_neighbors} neighbours for some of the {n} "
                            "points; use knn_backend='exact' or fewer neighbours.")
    return cols, np.maximum(sq, 0.0)


def knn_recall(X, affinity: Affinity, neighbors: np.ndarray, *, sample: int = 500, seed: int = 0,
               device="auto") -> float:
    """Recall of kNN lists against exact search on ``sample`` rows drawn with ``seed``.

    The mean, over the sampled rows, of the fraction of each row's exact ``n_neighbors`` nearest
    neighbours (self excluded, ties to the lowest index) that ``neighbors`` lists.
    """
    affinity = Affinity.from_any(affinity)
    Xt = _prepare_points(X, affinity, device)
    n, s = neighbors.shape
    rows = np.sort(np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False))
    with torch.no_grad():
        sq = pairwise_sq_dists(Xt[torch.from_numpy(rows).to(Xt.device)], Xt)
        sq[torch.arange(len(rows), device=Xt.device), torch.from_numpy(rows).to(Xt.device)] = math.inf
        exact = _knn_columns(sq, s).cpu().numpy()
    found = neighbors[rows]
    return float(np.mean([np.isin(truth, listed).mean() for truth, listed in zip(exact, found)]))


def knn_graph(X, affinity: Affinity, *, device="auto", chunk_size=None, report: dict | None = None) -> sp.csr_matrix:
    """Full-graph heat-kernel affinity as a symmetric float64 ``scipy.sparse.csr_matrix``.

    Distances are computed on torch (CPU or CUDA) one chunk of rows at a time, so a kNN graph never holds
    an ``n x n`` block and scales to 100k+ points. A dense graph (``n_neighbors=None``) has n^2 entries
    and is allowed up to ``DENSE_MAX_SAMPLES`` points. Zero weights (kernel underflow) are not stored.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n, d)
    affinity : Affinity, dict or preset name
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where the distances are computed.
    chunk_size : int or None, default=None
        Rows per chunk; None keeps a chunk x n distance block within ~256 MB.
    report : dict, optional
        Filled with ``knn_backend`` and, for a kNN graph, ``neighbors`` (the unsymmetrised kNN lists),
        so that a caller can measure their recall (:func:`knn_recall`) outside a timed region.

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n, n), float64
    """
    affinity = Affinity.from_any(affinity)
    Xt = _prepare_points(X, affinity, device)
    n = Xt.shape[0]
    if affinity.n_neighbors is None and n > DENSE_MAX_SAMPLES:
        raise CutbenchError(f"n_neighbors=None builds a dense graph with n^2 entries; n={n} exceeds the limit of "
                            f"{DENSE_MAX_SAMPLES}. Set n_neighbors (e.g. 10) for a sparse kNN graph, or use "
                            "batch_affinity on mini-batches.")
    _check_n_neighbors_fit(affinity.n_neighbors, n)
    rows = _chunk_rows(chunk_size, n, Xt.element_size())
    if affinity.n_neighbors is None:
        W = _dense_graph(Xt, affinity, rows)
    else:
        W, neighbors = _sparse_knn_graph(Xt, affinity, rows)
        if report is not None:
            report["neighbors"] = neighbors
    if report is not None:
        report["knn_backend"] = affinity.knn_backend
    W.eliminate_zeros()
    W.sort_indices()
    return W


def _sparse_knn_graph(X: torch.Tensor, affinity: Affinity, rows: int) -> tuple[sp.csr_matrix, np.ndarray]:
    n, s = X.shape[0], affinity.n_neighbors
    if affinity.knn_backend == "exact":
        cols, sq = _knn_search_prepared(X, s, rows)
    else:
        cols, sq = _backend_search(X, s, affinity.knn_backend)
    if affinity.sigma == "median":
        sigma = float(np.median(np.sqrt(sq)))
        _check_median_sigma(sigma, "the kept kNN pairs")
    else:
        sigma = affinity.sigma
    weights = np.exp(sq / (-2.0 * sigma**2))
    W = sp.csr_matrix((weights.ravel(), cols.ravel(), np.arange(0, n * s + 1, s)), shape=(n, n))
    W = (W + W.T) * 0.5 if affinity.symmetrize == "mean" else W.maximum(W.T)
    if affinity.self_loops:  # the kNN step excluded self, so the diagonal is empty here
        W = W + sp.identity(n, dtype=np.float64, format="csr")
    return sp.csr_matrix(W, dtype=np.float64), cols


@torch.no_grad()
def _dense_graph(X: torch.Tensor, affinity: Affinity, rows: int) -> sp.csr_matrix:
    # The n x n float64 buffer becomes the CSR data array, so the result costs no second copy.
    n = X.shape[0]
    buffer = np.empty((n, n), dtype=np.float64)
    if affinity.sigma == "median":
        for start in range(0, n, rows):
            buffer[start:start + rows] = pairwise_sq_dists(X[start:start + rows], X).cpu().numpy()
        np.sqrt(buffer, out=buffer)
        np.fill_diagonal(buffer, -np.inf)  # the n diagonal entries sort first and are skipped
        flat = buffer.reshape(-1)
        count = n * (n - 1)
        middle = [n + (count - 1) // 2, n + count // 2]
        flat.partition(middle)
        sigma = float(flat[middle].mean())
        _check_median_sigma(sigma, "all off-diagonal pairs")
    else:
        sigma = affinity.sigma
    for start in range(0, n, rows):
        sq = pairwise_sq_dists(X[start:start + rows], X).to(torch.float64)
        buffer[start:start + rows] = torch.exp(sq / (-2.0 * sigma**2)).cpu().numpy()
    _symmetrize_in_place(buffer, affinity.symmetrize)
    np.fill_diagonal(buffer, 1.0 if affinity.self_loops else 0.0)
    indices = np.tile(np.arange(n, dtype=np.int32 if n * n < 2**31 else np.int64), n)
    indptr = np.arange(0, n * n + 1, n, dtype=indices.dtype)
    return sp.csr_matrix((buffer.reshape(-1), indices, indptr), shape=(n, n))


def _symmetrize_in_place(W: np.ndarray, rule: str, block: int = 2048) -> None:
    """Symmetrise a square array block by block, so no second n x n array is allocated."""
    n = W.shape[0]
    for i in range(0, n, block):
        for j in range(i, n, block):
            upper, lower = W[i:i + block, j:j + block], W[j:j + block, i:i + block]
            sym = (upper + lower.T) / 2 if rule == "mean" else np.maximum(upper, lower.T)
            upper[...] = sym
            lower[...] = sym.T


def degrees(W) -> np.ndarray:
    """Row sums of an affinity matrix (scipy sparse, numpy array or torch tensor) as float64 numpy."""
    if sp.issparse(W):
        _check_square(W.shape)
        return np.asarray(W.sum(axis=1), dtype=np.float64).ravel()
    if isinstance(W, torch.Tensor):
        _check_square(W.shape)
        W = W.detach()
        if W.layout != torch.strided:
            return torch.sparse.sum(W.to_sparse_coo().to(torch.float64), dim=1).to_dense().cpu().numpy()
        return W.sum(dim=1, dtype=torch.float64).cpu().numpy()
    W = np.asarray(W)
    _check_square(W.shape)
    return W.sum(axis=1, dtype=np.float64)


def _check_square(shape) -> None:
    if len(shape) != 2 or shape[0] != shape[1]:
        raise CutbenchError(f"an affinity matrix must be square (n, n); got shape {tuple(shape)}.")


# ---- SpectralNet's bandwidth rules (its scale='local_median', 'batch_median' and 'global_median') ----
_LOCAL_SIGMA_FLOOR = 1e-7  # the PyTorch SpectralNet code clamps its local scales here


def local_median_affinity(Z, n_neighbors, *, self_loops=True, symmetrize="mean"):
    """Per-batch kNN affinity with local scales, as the PyTorch SpectralNet code builds it.

    ``sigma_j`` = median of the distances from ``z_j`` to its ``n_neighbors`` nearest points and itself
    (the zero included), at least 1e-7; ``W_ij = exp(-||z_i - z_j||² / sigma_j²)`` on the ``n_neighbors``
    nearest neighbours of ``i`` (self excluded), 0 elsewhere; then symmetrised; diagonal 1 or 0.

    Parameters
    ----------
    Z : torch.Tensor of shape (m, d)
    n_neighbors : int
        ``1 <= n_neighbors < m``.
    self_loops : bool, default=True
    symmetrize : {"mean", "max"}, default="mean"

    Returns
    -------
    torch.Tensor of shape (m, m), dtype and device of ``Z``
    """
    def per_column(sq, kept_sq, columns):
        with_self = torch.cat([torch.zeros(len(sq), 1, dtype=sq.dtype, device=sq.device), kept_sq], dim=1)
        return torch.quantile(with_self.sqrt(), 0.5, dim=1).clamp_min(_LOCAL_SIGMA_FLOOR)[columns]

    return _knn_batch_affinity(Z, n_neighbors, per_column, self_loops=self_loops, symmetrize=symmetrize)


def batch_median_affinity(Z, n_neighbors, scale_neighbor, *, self_loops=True, symmetrize="mean"):
    """Per-batch kNN affinity with one bandwidth per batch, as the PyTorch SpectralNet code builds it with
    ``is_local_scale=False``.

    ``sigma`` = the median over the batch's points of the distance to their ``scale_neighbor``-th nearest
    point of the batch (the point itself is the first), at least 1e-7; ``W_ij = exp(-||z_i - z_j||² / sigma²)``
    (no factor 2) on the ``n_neighbors`` nearest neighbours of ``i`` (self excluded), 0 elsewhere; then
    symmetrised; diagonal 1 or 0.

    Parameters
    ----------
    Z : torch.Tensor of shape (m, d)
    n_neighbors : int
        ``1 <= n_neighbors < m``.
    scale_neighbor : int
        ``2 <= scale_neighbor <= m``.
    self_loops : bool, default=True
    symmetrize : {"mean", "max"}, default="mean"

    Returns
    -------
    torch.Tensor of shape (m, m), dtype and device of ``Z``
    """
    def one_for_the_batch(sq, kept_sq, columns):
        m = len(sq)
        if not 2 <= scale_neighbor <= m:
            raise CutbenchError(f"scale_neighbor={scale_neighbor} must be in [2, {m}] (the point itself counts as "
                                f"neighbour 1; the batch has {m} points).")
        kth = torch.kthvalue(sq, scale_neighbor, dim=1).values.clamp_min(0).sqrt()
        return torch.quantile(kth, 0.5).clamp_min(_LOCAL_SIGMA_FLOOR)

    return _knn_batch_affinity(Z, n_neighbors, one_for_the_batch, self_loops=self_loops, symmetrize=symmetrize)


def _knn_batch_affinity(Z, n_neighbors, bandwidth, *, self_loops, symmetrize):
    """The PyTorch SpectralNet code's batch kernel: ``exp(-d² / sigma²)`` (no factor 2) on each point's
    ``n_neighbors`` nearest (self excluded), 0 elsewhere, symmetrised, diagonal 1 or 0. ``bandwidth(sq,
    kept_sq, columns)`` gives sigma, broadcastable to the kept entries (one per column, or one for all)."""
    with torch.no_grad():
        sq = pairwise_sq_dists(Z - Z.mean(dim=0))
        m = sq.shape[0]
        if not 1 <= n_neighbors < m:
            raise CutbenchError(f"n_neighbors={n_neighbors} must be in [1, {m - 1}] for a batch of {m} points; "
                                f"use a batch_size above n_neighbors.")
        no_self = sq.clone()
        no_self.diagonal().fill_(math.inf)
        kept_sq, columns = torch.topk(no_self, n_neighbors, dim=1, largest=False)
        sigma = bandwidth(sq, kept_sq, columns)
        W = torch.zeros_like(sq).scatter_(1, columns, torch.exp(-kept_sq / sigma.square()))
        W = _symmetrize_dense(W, symmetrize)
        W.diagonal().fill_(1.0 if self_loops else 0.0)
    return W


def global_median_sigma(Z, scale_neighbor, *, sample_size, generator):
    """Median over a random sample of points of the distance to the ``scale_neighbor``-th nearest sample point.

    The point itself is its own first neighbour (TF convention), so ``scale_neighbor=2`` is the nearest
    other point.

    Parameters
    ----------
    Z : torch.Tensor of shape (n, d)
    scale_neighbor : int
        ``2 <= scale_neighbor <= sample size``.
    sample_size : int
        Points drawn without replacement (at most ``n``).
    generator : torch.Generator
        CPU generator of the sample.

    Returns
    -------
    float
    """
    sample_size = min(sample_size, Z.shape[0])
    if not 2 <= scale_neighbor <= sample_size:
        raise CutbenchError(f"scale_neighbor={scale_neighbor} must be in [2, {sample_size}] (the point itself "
                            f"counts as neighbour 1; the sample has {sample_size} points).")
    sample = Z[torch.randperm(Z.shape[0], generator=generator)[:sample_size].to(Z.device)]
    with torch.no_grad():
        sq = pairwise_sq_dists(sample - sample.mean(dim=0))
        kth = torch.kthvalue(sq, scale_neighbor, dim=1).values.sqrt()
    sigma = float(np.median(kth.cpu().numpy()))
    if not sigma > 0:
        raise CutbenchError("the global median scale is 0: most sampled points have a duplicate. Remove "
                            "duplicates, use a larger scale_neighbor, or scale='affinity' with a fixed sigma.")
    return sigma


@dataclass(frozen=True)
class PreparedAffinity:
    """An affinity specification made ready on the training data of a method.

    Attributes
    ----------
    spec : Affinity or SiameseAffinity
        The resolved specification (what a method records as ``affinity_``).
    kernel : Affinity
        The heat kernel evaluated on ``points``.
    points : torch.Tensor of shape (n, d')
        The training points the kernel sees, on the method's device: the features themselves, or their
        learned embedding.
    """

    spec: object
    kernel: Affinity
    points: torch.Tensor

    def batch(self, index) -> torch.Tensor:
        """Dense affinity of the training points ``index`` (see :func:`~cutbench.graph.batch_affinity`),
        on their device."""
        return batch_affinity(self.points[index], self.kernel)

    def graph(self, *, chunk_size=None, report: dict | None = None) -> sp.csr_matrix:
        """Full graph of all training points (see :func:`~cutbench.graph.knn_graph`, and its ``report``),
        built on their device."""
        return knn_graph(self.points, self.kernel, device=self.points.device, chunk_size=chunk_size, report=report)

    def with_kernel(self, kernel: Affinity) -> PreparedAffinity:
        """The same points under another kernel (e.g. with a bandwidth a method measured itself)."""
        return replace(self, kernel=kernel)
