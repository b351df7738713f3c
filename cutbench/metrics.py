"""External clustering metrics (ACC, NMI, ARI, NCA) and the Ncut / RatioCut value of a labelling.

Label vectors may be numpy arrays, lists or torch tensors of arbitrary (non-contiguous) integer labels.
Predicted and true label sets need not have the same size: clusters that no point was assigned to are
simply absent from the labels and play no role.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

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


INPUTS = ("labels", "graph", "embedding")
"""What a metric may need: the true labels (``y_true``), the affinity graph of the scored points (``graph``,
a scipy sparse matrix) or the method's embedding of them (``embedding``, an (n, c) array). Every metric gets
the predicted labels (``y_pred``)."""


@dataclass(frozen=True)
class Metric:
    """A metric, declared once: the store, the tables, the plots and ``compare`` read this declaration.

    Attributes
    ----------
    name : str
        Its key in records and result columns, e.g. ``"acc"``.
    function : callable
        ``function(y_pred=..., **inputs, **options)`` returning a float, where ``inputs`` are those of
        ``needs`` (``y_true``, ``graph``, ``embedding``).
    higher_is_better : bool
        The direction tables use to mark the best value and plots state on their axis.
    label : str
        Column header, e.g. ``"ACC"``; the name when empty.
    needs : tuple of str
        Of :data:`INPUTS`. A metric that needs an embedding is null, with the reason, for a method that
        has none.
    options : mapping
        The metric's own options with their values (e.g. NMI's ``average_method``); a study sets them on the
        metric (``metrics: [{name: nmi, average_method: geometric}]``).
    choices : mapping
        For an option that takes one of a few values, those values (checked when the option is set).
    """

    name: str
    function: Callable[..., float]
    higher_is_better: bool
    label: str = ""
    needs: tuple[str, ...] = ("labels",)
    options: Mapping[str, Any] = field(default_factory=dict)
    choices: Mapping[str, tuple] = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise CutbenchError(f"a metric's name must be a plain identifier (it names a results column); got "
                                f"{self.name!r}.")
        unknown = sorted(set(self.needs) - set(INPUTS))
        if unknown or not self.needs:
            raise CutbenchError(f"metric {self.name!r} needs {list(self.needs)!r}; each need is one of "
                                f"{', '.join(INPUTS)}.")
        if not callable(self.function):
            raise CutbenchError(f"metric {self.name!r}: function must be callable; got {type(self.function).__name__}.")
        if not isinstance(self.higher_is_better, bool):
            raise CutbenchError(f"metric {self.name!r}: higher_is_better must be True or False.")
        object.__setattr__(self, "label", self.label or self.name)
        object.__setattr__(self, "options", dict(self.options))

    def with_options(self, **options) -> Metric:
        """This metric with some of its options set; an unknown option is an error naming the accepted ones."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            accepted = ", ".join(f"{k} (default {v!r})" for k, v in self.options.items()) or "none"
            raise CutbenchError(f"metric {self.name!r} has no option(s) {', '.join(unknown)}; accepted: {accepted}.")
        for key, value in options.items():
            if key in self.choices and value not in self.choices[key]:
                raise CutbenchError(f"metric {self.name!r}: option {key} must be one of "
                                    f"{', '.join(map(repr, self.choices[key]))}; got {value!r}.")
        return replace(self, options={**self.options, **options})

    def __call__(self, y_pred, *, y_true=None, graph=None, embedding=None) -> float:
        """The metric's value for the inputs it needs (the others are ignored)."""
        given = {"labels": ("y_true", y_true), "graph": ("graph", graph), "embedding": ("embedding", embedding)}
        inputs = dict(given[need] for need in self.needs)
        return self.function(y_pred=y_pred, **inputs, **self.options)


def _nmi(y_true, y_pred, *, average_method):
    return nmi(y_true, y_pred, average_method=average_method)


def _ncut(y_pred, graph):
    return ncut_value(graph, y_pred)


def _rcut(y_pred, graph):
    return rcut_value(graph, y_pred)


METRICS: dict[str, Metric] = {metric.name: metric for metric in (
    Metric("acc", accuracy, True, "ACC"),
    Metric("nmi", _nmi, True, "NMI", options={"average_method": "arithmetic"},
           choices={"average_method": NMI_AVERAGE_METHODS}),
    Metric("ari", ari, True, "ARI"),
    Metric("nca", normalized_clustering_accuracy, True, "NCA"),
    Metric("ncut_value", _ncut, False, "Ncut", needs=("graph",)),
    Metric("rcut_value", _rcut, False, "Rcut", needs=("graph",)),
)}
"""The built-in metrics, by name: every cell records all of them unless its study names others; adding a
metric is one entry here (or a plugin, see :func:`get_metric`)."""


def get_metric(name) -> Metric:
    """The built-in metric ``name``, or the metric plugin it names (``package.module:object``,
    ``path/to/file.py:object`` or an entry point of group ``cutbench.metrics``), a :class:`Metric`."""
    if name in METRICS:
        return METRICS[name]
    from cutbench.plugins import entry_points, is_target, load

    if not (is_target(name) or name in entry_points("metric")):
        raise CutbenchError(f"unknown metric {name!r}; built in: {', '.join(METRICS)}; or name a plugin as "
                            "package.module:object or path/to/file.py:object (a cutbench.metrics.Metric).")
    plugin = load("metric", name)
    if not isinstance(plugin.obj, Metric):
        raise CutbenchError(f"metric plugin {name!r} is a {type(plugin.obj).__name__}, not a cutbench.metrics.Metric; "
                            "wrap it: Metric('my_metric', function, higher_is_better=True, needs=('labels',)).")
    if plugin.obj.name in METRICS:
        raise CutbenchError(f"metric plugin {name!r} is named {plugin.obj.name!r}, like a built-in metric; its values "
                            "would be mistaken for the built-in's: give it another name.")
    return plugin.obj


_RECORDED: dict[str, tuple[bool, str]] = {}  # plugin metric -> (higher_is_better, label), from stored records


def note_recorded_metrics(entries) -> None:
    """Remember the direction and label of the plugin metrics a stored configuration names (its ``metrics``
    entries carry them), so reports can rank and label their columns."""
    for entry in entries or ():
        if "higher_is_better" in entry:
            _RECORDED[entry["name"]] = (bool(entry["higher_is_better"]), entry.get("label") or entry["name"])


def metric_direction(name: str) -> bool | None:
    """True when a higher value of metric ``name`` is better, False when lower, None for an unknown name."""
    if name in METRICS:
        return METRICS[name].higher_is_better
    return _RECORDED[name][0] if name in _RECORDED else None


def metric_label(name: str) -> str | None:
    """The column header of metric ``name`` (None for an unknown name)."""
    if name in METRICS:
        return METRICS[name].label
    return _RECORDED[name][1] if name in _RECORDED else None


def is_metric(name: str) -> bool:
    return metric_direction(name) is not None


def metric_plugin(name):
    """The :class:`~cutbench.plugins.Plugin` of a metric plugin, None for a built-in."""
    if name in METRICS:
        return None
    from cutbench.plugins import load

    get_metric(name)
    return load("metric", name)


def evaluate(metrics, y_pred, **inputs) -> tuple[dict[str, float | None], dict[str, str]]:
    """Every metric of ``metrics`` on the labelling ``y_pred`` and the ``inputs`` (``y_true``, ``graph``,
    ``embedding``), as Python floats, and a reason for each one that could not be computed (None).

    A value that is not a real number is an error naming the metric: a plugin must return floats.
    """
    values, notes = {}, {}
    for metric in metrics:
        missing = [need for need in metric.needs if inputs.get(_INPUT_ARGUMENT[need]) is None]
        if missing:
            values[metric.name] = None
            notes[metric.name] = f"needs {' and '.join(missing)}, which this cell does not have"
            continue
        value = metric(y_pred, **inputs)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise CutbenchError(f"metric {metric.name!r} returned {value!r} ({type(value).__name__}), not a number; "
                                "a metric's function must return a float.")
        values[metric.name] = float(value)
    return values, notes


_INPUT_ARGUMENT = {"labels": "y_true", "graph": "graph", "embedding": "embedding"}
