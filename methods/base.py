"""The contract every cutbench method implements.

Methods are scikit-learn estimators: ``__init__`` stores its arguments only; the parameters are
declared once in ``_parameter_constraints`` (see :mod:`cutbench.params`) and validated before every
``fit``; ``fit`` learns state whose names end in ``_``; input goes through scikit-learn's
``validate_data`` (torch tensors, which may live on a GPU, through the same rules here). Out-of-sample
methods have ``predict``; transductive ones have none. Methods never time themselves, write files or
read the result store: the harness does that around them.

A subclass sets ``name``, ``capabilities``, ``_parameter_constraints`` and ``check_params`` and implements
``_fit(X, **fit_params)`` (``X`` already validated), and where it applies ``_predict(X)``,
``_predict_proba(X)`` or (with :class:`EmbeddingMixin`) ``_transform(X)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, validate_data

from cutbench import CutbenchError
from cutbench._validation import check_features, check_magnitude, check_scale, resolve_device
from cutbench.affinity import AFFINITY_KINDS, canonical_affinity
from cutbench.params import Device, Interval, RandomState, Satisfies, canonical_params, validate_params

AFFINITY = Satisfies(canonical_affinity, "a heat-kernel preset or Affinity, 'siamese', or a specification dict")
"""The constraint of every method's ``affinity`` parameter: anything :mod:`cutbench.affinity` resolves."""


@dataclass(frozen=True)
class Capabilities:
    """What a method can do; the harness reads these to plan and to refuse cells.

    gpu: runs on CUDA when ``device`` asks for it.
    minibatch: trains on mini-batches (has ``batch_size``).
    out_of_sample: ``predict`` labels points not seen in ``fit``. Transductive methods have no
        ``predict`` and are fitted on all points by the harness.
    precomputed_graph: ``fit`` accepts ``graph=`` (a full sparse affinity that the harness builds
        and times as its own ``affinity`` stage).
    affinity_kinds: the affinity kinds its ``affinity`` parameter takes (see
        :data:`cutbench.affinity.AFFINITY_KINDS`); empty for a method without an affinity. A study
        cell giving it another kind is refused at expansion.
    """

    gpu: bool = False
    minibatch: bool = False
    out_of_sample: bool = False
    precomputed_graph: bool = False
    affinity_kinds: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)


EVERY_AFFINITY = AFFINITY_KINDS
"""``affinity_kinds`` of a method that takes every kind the affinity layer knows."""


def _is_out_of_sample(method) -> bool:
    return method.capabilities.out_of_sample


def _has_probabilities(method) -> bool:
    return _is_out_of_sample(method) and hasattr(method, "_predict_proba")


class ClusteringMethod(ClusterMixin, BaseEstimator):
    """Base class: declared parameters, validated input, ``predict`` for out-of-sample methods.

    Subclasses set ``name``, ``capabilities`` and ``_parameter_constraints`` (extending this class's)
    and implement ``_fit``; see the module docstring.
    """

    name: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    check_params: ClassVar[dict] = {}
    """A tiny configuration for data of 10 to 100 points (budgets and the affinity's ``s`` cut): the one
    ``cutbench check`` and the test suite run scikit-learn's estimator checks and a study cell with."""
    expected_failed_checks: ClassVar[dict] = {}
    """scikit-learn estimator checks the method fails by its nature at ``check_params``: check name -> reason."""
    _parameter_constraints: ClassVar[dict] = {
        "n_clusters": [Interval(int, 1)],
        "device": [Device()],
        "random_state": [RandomState()],
    }

    # -- parameters -------------------------------------------------------------------------------
    @classmethod
    def canonical_params(cls, params: dict) -> dict:
        """``params`` validated and written canonically (``80`` vs ``80.0``, lists of widths as tuples,
        affinities as dicts), so that equal configurations have equal study keys."""
        return canonical_params(cls.__name__, cls._parameter_constraints, params)

    def _validate_params(self) -> None:
        """Check every declared parameter, then the rules that tie parameters together."""
        validate_params(type(self).__name__, self._parameter_constraints, self.get_params(deep=False))
        self._check_param_relations()

    def _check_param_relations(self) -> None:
        """Rules between parameters (e.g. a start above a floor); none by default."""

    def _device(self) -> torch.device:
        return resolve_device(self.device)

    # -- data -------------------------------------------------------------------------------------
    def _validate_training_data(self, X):
        """``X`` checked (2-D, numeric, finite, at least 2 samples) and ``n_features_in_`` set.

        numpy-like input goes through scikit-learn's ``validate_data`` (sparse input, 1-D input and
        complex values are refused with its messages; dtypes other than float32/float64 become
        float32); a torch tensor stays a tensor on its device and follows the same rules.
        """
        if isinstance(X, torch.Tensor):
            X = check_features(X, min_samples=2)
            self.n_features_in_ = X.shape[1]
        else:
            # Non-finite values are refused by check_features, whose message counts the rows to clean.
            X = check_features(validate_data(self, X, accept_sparse=False, dtype=(np.float32, np.float64),
                                             ensure_min_samples=2, ensure_all_finite=False), min_samples=2)
        if self.n_clusters > X.shape[0]:
            raise CutbenchError(f"n_clusters={self.n_clusters} exceeds the number of samples n={X.shape[0]}; "
                                "use more samples or fewer clusters.")
        check_scale(X, type(self).__name__, network=self.capabilities.minibatch)
        return X

    def _validate_new_data(self, X):
        """``X`` to label or embed after ``fit``: the training rules, and the fitted number of features."""
        check_is_fitted(self)
        if not isinstance(X, torch.Tensor):
            X = check_features(validate_data(self, X, reset=False, accept_sparse=False,
                                             dtype=(np.float32, np.float64), ensure_all_finite=False))
        else:
            X = check_features(X)
            if X.shape[1] != self.n_features_in_:
                raise CutbenchError(f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                                    f"{self.n_features_in_} features as input; pass features from the same pipeline.")
        check_magnitude(X, type(self).__name__)
        return X

    # -- the interface ------------------------------------------------------------------------------
    def fit(self, X, y=None, **fit_params):
        """Fit the method on ``X`` and label it (``labels_``).

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)
            Training features; a tensor may be on any device.
        y : ignored
            Present for scikit-learn API consistency.
        **fit_params
            Method-specific, e.g. ``graph=`` for methods with ``capabilities.precomputed_graph``.

        Returns
        -------
        self
        """
        self._validate_params()
        self._fit(self._validate_training_data(X), **fit_params)
        return self

    def _fit(self, X, **fit_params) -> None:
        raise NotImplementedError

    def fit_predict(self, X, y=None, **fit_params):
        """Fit on ``X`` and return its labels (``labels_``)."""
        return self.fit(X, **fit_params).labels_

    @available_if(_is_out_of_sample)
    def predict(self, X):
        """Label any points, seen in ``fit`` or not (out-of-sample methods only).

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)

        Returns
        -------
        labels : numpy.ndarray of shape (n_samples,), dtype int64
        """
        return as_numpy_labels(self._predict(self._validate_new_data(X)))

    @available_if(_has_probabilities)
    def predict_proba(self, X):
        """Soft cluster memberships of any points; rows sum to one.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)

        Returns
        -------
        proba : numpy.ndarray of shape (n_samples, n_clusters)
        """
        return self._predict_proba(self._validate_new_data(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        # Seeded fits repeat exactly on the CPU; CUDA kernels may reorder floating-point sums.
        tags.non_deterministic = (self.capabilities.gpu and str(getattr(self, "device", "cpu")) != "cpu"
                                  and torch.cuda.is_available())
        return tags


class EmbeddingMixin(TransformerMixin):
    """For methods that cluster a learned embedding (``embedding_``): ``transform`` embeds any points.

    Put it before :class:`ClusteringMethod` in the bases; the method implements ``_transform(X)``.
    """

    def transform(self, X):
        """The embedding of any points, seen in ``fit`` or not.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)

        Returns
        -------
        numpy.ndarray of shape (n_samples, n_components), float64
        """
        return self._transform(self._validate_new_data(X))

    def fit_transform(self, X, y=None, **fit_params):
        """Fit on ``X`` and return its embedding (``embedding_``)."""
        return self.fit(X, **fit_params).embedding_


def as_numpy_labels(labels) -> np.ndarray:
    """Labels as an int64 numpy vector, whatever the device they were computed on."""
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    return np.asarray(labels, dtype=np.int64)
