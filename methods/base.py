"""The interface every cutbench method implements.

Methods are scikit-learn estimators: ``__init__`` stores its arguments only, ``fit`` learns state
whose names end in ``_``, ``predict`` labels new points where the method allows it. Methods never
time themselves, write files or read the result store: the harness does that around them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils.validation import check_is_fitted

from cutbench import CutbenchError
from cutbench._validation import check_features, check_n_clusters, resolve_device


@dataclass(frozen=True)
class Capabilities:
    """What a method can do; the harness reads these to plan and to skip cells.

    gpu: runs on CUDA when ``device`` asks for it.
    minibatch: trains on mini-batches (has ``batch_size``).
    out_of_sample: ``predict`` labels points not seen in ``fit``. Transductive methods are fitted
        on all points by the harness.
    precomputed_graph: ``fit`` accepts ``graph=`` (a full sparse affinity that the harness builds
        and times as its own ``affinity`` stage).
    """

    gpu: bool = False
    minibatch: bool = False
    out_of_sample: bool = False
    precomputed_graph: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


class TransductiveError(CutbenchError):
    """``predict`` was called on a method that can only label the points it was fitted on."""


class ClusteringMethod(ClusterMixin, BaseEstimator):
    """Base class: shared validation, device handling and the default ``predict``.

    Subclasses set ``name`` and ``capabilities`` and implement ``fit``; out-of-sample methods also
    implement ``predict`` (and ``predict_proba`` where the method yields soft assignments).
    """

    name: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()

    # -- helpers for subclasses -------------------------------------------------------------
    def _validate_fit_input(self, X):
        X = check_features(X, min_samples=2)
        check_n_clusters(self.n_clusters, X.shape[0])
        return X

    def _validate_predict_input(self, X):
        check_is_fitted(self, "labels_")
        X = check_features(X)
        n_features = getattr(self, "n_features_in_", None)
        if n_features is not None and X.shape[1] != n_features:
            raise CutbenchError(f"X has {X.shape[1]} features but {type(self).__name__} was fitted with "
                                f"{n_features}; pass features from the same pipeline.")
        return X

    def _device(self) -> torch.device:
        return resolve_device(getattr(self, "device", "cpu"))

    # -- the interface ------------------------------------------------------------------------
    def predict(self, X):
        """Label ``X``. Transductive methods raise :class:`TransductiveError`."""
        raise TransductiveError(f"{type(self).__name__} is transductive: it labels only the points it was "
                                "fitted on. Use fit_predict(X) (or fit(X).labels_) on all points.")

    def fit_predict(self, X, y=None, **fit_params):
        """Fit on ``X`` and return its labels (``labels_``)."""
        return self.fit(X, **fit_params).labels_


def forward_in_chunks(model, X, chunk_size, transform=None, *, to_cpu=True) -> torch.Tensor:
    """Run ``model`` over the rows of ``X`` in chunks, without autograd, and concatenate the outputs.

    Parameters
    ----------
    model : torch.nn.Module
        A fitted network; its first parameter decides the device and dtype the input is cast to.
    X : array-like or torch.Tensor of shape (n_samples, n_features)
        Rows to run through ``model``, on any device (each chunk is moved on its own).
    chunk_size : int
        Rows per forward pass (the methods' ``predict_batch_size``).
    transform : callable, optional
        Applied to the output of each chunk on the model's device, e.g. ``argmax`` or a
        projection, so that only its (usually smaller) result is kept and moved.
    to_cpu : bool, default=True
        Move each chunk's result to the CPU. ``False`` keeps the result on the model's device for
        further device-side work.

    Returns
    -------
    torch.Tensor
        The per-chunk results concatenated along the first axis; an ordinary tensor without
        autograd history, so it may be updated in place.
    """
    parameter = next(model.parameters())
    outputs = []
    with torch.inference_mode():
        for start in range(0, X.shape[0], chunk_size):
            # Chunking bounds the device memory of a forward pass over many points, and moving one
            # chunk at a time means X itself (e.g. a large numpy array) never has to fit there.
            chunk = torch.as_tensor(X[start:start + chunk_size])
            output = model(chunk.to(device=parameter.device, dtype=parameter.dtype))
            if transform is not None:
                output = transform(output)
            # Off the device as soon as computed: the device then holds one chunk's output at a time.
            outputs.append(output.cpu() if to_cpu else output)
    # Concatenated outside inference mode: the result is then an ordinary tensor, which callers
    # may update in place (SpecNet2's output cache), unlike the inference tensors above.
    return torch.cat(outputs)


def as_numpy_labels(labels) -> np.ndarray:
    """Labels as an int64 numpy vector, whatever the device they were computed on."""
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    return np.asarray(labels, dtype=np.int64)
