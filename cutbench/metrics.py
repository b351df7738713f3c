"""External clustering metrics (ACC, NMI, ARI, NCA) and the Ncut / RatioCut value of a labelling.

Label vectors may be numpy arrays, lists or torch tensors of arbitrary (non-contiguous) integer labels.
Predicted and true label sets need not have the same size: clusters that no point was assigned to are
simply absent from the labels and play no role.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

from cutbench import CutbenchError

NMI_AVERAGE_METHODS = ("min", "geometric", "arithmetic", "max")


def _as_labels(y, name: str) -> np.ndarray:
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim != 1:
        raise CutbenchError(f"{name} must be a 1-D vector of labels; got shape {y.shape}.")
    if y.size == 0:
        raise CutbenchError(f"{name} is empty; at least one labelled point is needed.")
    if y.dtype.kind == "f":
        if not (np.isfinite(y).all() and (y == np.round(y)).all()):
            raise CutbenchError(f"{name} must hold integer labels; got non-integer floats (e.g. NaN or 0.5).")
        y = y.astype(np.int64)
    elif y.dtype.kind not in "biuUS":
        raise CutbenchError(f"{name} must hold integer (or string) labels; got dtype {y.dtype}.")
    return y


def _check_label_pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise CutbenchError(f"y_true and y_pred must have the same length; got {len(y_true)} and {len(y_pred)}.")
    return y_true, y_pred


def accuracy(y_true, y_pred) -> float:
    """Clustering accuracy: the best one-to-one matching of clusters to classes (Hungarian method).

    Solved on the rectangular contingency table, so the number of predicted clusters may differ from the
    number of classes; points of unmatched clusters (or classes) count as errors.
    """
    y_true, y_pred = _check_label_pair(y_true, y_pred)
    table = contingency_matrix(y_true, y_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / len(y_true))


def nmi(y_true, y_pred, *, average_method: str = "arithmetic") -> float:
    """Normalised mutual information (sklearn) with an explicit normalisation.

    ``average_method`` is one of "min", "geometric", "arithmetic", "max"; the NeuNcut and SENet papers used
    "geometric", sklearn >= 0.22 defaults to "arithmetic". Always report which one was used.
    """
    if average_method not in NMI_AVERAGE_METHODS:
        raise CutbenchError(f"average_method must be one of {', '.join(map(repr, NMI_AVERAGE_METHODS))}; "
                            f"got {average_method!r}.")
    y_true, y_pred = _check_label_pair(y_true, y_pred)
    return float(normalized_mutual_info_score(y_true, y_pred, average_method=average_method))


def ari(y_true, y_pred) -> float:
    """Adjusted Rand index (sklearn)."""
    y_true, y_pred = _check_label_pair(y_true, y_pred)
    return float(adjusted_rand_score(y_true, y_pred))


def normalized_clustering_accuracy(y_true, y_pred) -> float:
    """Normalised clustering accuracy (NCA; Gagolewski, J. Classification 42, 2025), asymmetric.

    With the K x L contingency table ``C`` (rows: the K true classes, row sums ``c_i``)::

        NCA = max_sigma (1/K) sum_i (C[i, sigma(i)] / c_i - 1/K) / (1 - 1/K)
            = (max_sigma sum_i C[i, sigma(i)] / c_i - 1) / (K - 1)

    the average per-class recall under the best one-to-one matching ``sigma`` of classes to clusters,
    rescaled so that 1 is a perfect match and 0 the recall of a uniform assignment. It weighs every true
    class equally whatever its size. As in the definition documented by genieclust/clustbench, a table with
    L != K is completed with zero rows/columns: with fewer clusters than classes some classes are matched
    to an empty cluster (recall 0); with more, the points of the unmatched clusters count as errors. For
    square tables this equals ``genieclust.compare_partitions.normalized_clustering_accuracy`` (genieclust
    1.3 refuses L != K). Can be negative (down to -1/(K-1)); needs at least 2 true classes.
    """
    y_true, y_pred = _check_label_pair(y_true, y_pred)
    table = contingency_matrix(y_true, y_pred).astype(np.float64)
    n_classes, n_clusters = table.shape
    if n_classes < 2:
        raise CutbenchError("normalized_clustering_accuracy needs at least 2 true classes; y_true has 1.")
    recall = table / table.sum(axis=1, keepdims=True)
    if n_clusters < n_classes:  # the missing clusters are empty: zero recall
        recall = np.hstack([recall, np.zeros((n_classes, n_classes - n_clusters))])
    rows, cols = linear_sum_assignment(recall, maximize=True)
    return float((recall[rows, cols].sum() - 1.0) / (n_classes - 1))


def _as_affinity_matrix(W):
    """A float64 scipy CSR matrix or numpy array from scipy sparse, numpy or torch (dense or sparse) input."""
    if isinstance(W, torch.Tensor):
        W = W.detach().cpu()
        if W.layout == torch.strided:
            W = W.to(torch.float64).numpy()
        else:
            coo = W.to_sparse_coo().coalesce()
            rows, cols = coo.indices().numpy()
            W = sp.coo_matrix((coo.values().to(torch.float64).numpy(), (rows, cols)), shape=tuple(coo.shape))
    if sp.issparse(W):
        W = sp.csr_matrix(W, dtype=np.float64)
        values = W.data
    else:
        W = np.asarray(W, dtype=np.float64)
        values = W
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise CutbenchError(f"W must be a square (n, n) affinity matrix; got shape {W.shape}.")
    if not np.isfinite(values).all() or (values < 0).any():
        raise CutbenchError("W must hold finite, non-negative affinities; found NaN, inf or negative entries.")
    return W


def _cuts_and_volumes(W, labels):
    """Per non-empty cluster: its label, cut(A, V \\ A), vol(A) (sum of degrees) and |A|."""
    W = _as_affinity_matrix(W)
    labels = _as_labels(labels, "labels")
    if len(labels) != W.shape[0]:
        raise CutbenchError(f"labels has length {len(labels)} but W is {W.shape[0]} x {W.shape[0]}; "
                            "give one label per node.")
    ids, codes = np.unique(labels, return_inverse=True)
    n_clusters = len(ids)
    if sp.issparse(W):
        coo = W.tocoo()
        between = codes[coo.row] != codes[coo.col]
        cut = np.bincount(codes[coo.row[between]], weights=coo.data[between], minlength=n_clusters)
        degree = np.asarray(W.sum(axis=1)).ravel()
    else:
        between = codes[:, None] != codes[None, :]
        cut = np.bincount(codes, weights=np.where(between, W, 0.0).sum(axis=1), minlength=n_clusters)
        degree = W.sum(axis=1)
    volume = np.bincount(codes, weights=degree, minlength=n_clusters)
    size = np.bincount(codes, minlength=n_clusters)
    return ids, cut, volume, size


def ncut_value(W, labels) -> float:
    """Normalised cut ``sum_l cut(A_l, V \\ A_l) / vol(A_l)`` of a labelling on a symmetric affinity ``W``.

    ``W`` is a scipy sparse matrix, a numpy array or a torch tensor; ``vol(A)`` is the sum of the degrees
    (row sums, self-loops included) in ``A``. Empty clusters do not appear in ``labels`` and contribute 0.
    A non-empty cluster of zero volume (only isolated nodes) makes Ncut undefined: CutbenchError.
    """
    ids, cut, volume, _ = _cuts_and_volumes(W, labels)
    if (volume <= 0).any():
        raise CutbenchError(f"cluster(s) {ids[volume <= 0].tolist()} have zero volume (all their nodes have "
                            "degree 0), so Ncut is undefined; use a connected graph (larger sigma or n_neighbors, "
                            "or self-loops) or rcut_value.")
    return float((cut / volume).sum())


def rcut_value(W, labels) -> float:
    """Ratio cut ``sum_l cut(A_l, V \\ A_l) / |A_l|`` of a labelling; ``W`` as in :func:`ncut_value`."""
    _, cut, _, size = _cuts_and_volumes(W, labels)
    return float((cut / size).sum())


@dataclass(frozen=True)
class Metric:
    """An external metric, declared once: the store, the tables and the plots read this declaration.

    Attributes
    ----------
    name : str
        Its key in records and result columns, e.g. ``"acc"``.
    function : callable
        ``function(y_true, y_pred, *, nmi_average_method)`` returning a float.
    higher_is_better : bool
        The direction tables use to mark the best value and plots state on their axis.
    label : str
        Column header, e.g. ``"ACC"``.
    """

    name: str
    function: Callable[..., float]
    higher_is_better: bool
    label: str


METRICS: dict[str, Metric] = {metric.name: metric for metric in (
    Metric("acc", lambda y_true, y_pred, **_: accuracy(y_true, y_pred), True, "ACC"),
    Metric("nmi", lambda y_true, y_pred, *, nmi_average_method: nmi(y_true, y_pred, average_method=nmi_average_method),
           True, "NMI"),
    Metric("ari", lambda y_true, y_pred, **_: ari(y_true, y_pred), True, "ARI"),
    Metric("nca", lambda y_true, y_pred, **_: normalized_clustering_accuracy(y_true, y_pred), True, "NCA"),
)}
"""Every metric a result records, by name; adding a metric is one entry here."""


def evaluate(y_true, y_pred, *, nmi_average_method: str = "arithmetic") -> dict:
    """Every metric of :data:`METRICS` at once, e.g. ``{"acc", "nmi", "ari", "nca"}``, as Python floats."""
    return {name: float(metric.function(y_true, y_pred, nmi_average_method=nmi_average_method))
            for name, metric in METRICS.items()}
