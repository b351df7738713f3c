"""Checks that depend on the data, shared by the graph builders, the methods and the harness.

The types and ranges of parameters are declared, not checked here: see :mod:`cutbench.params`.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from cutbench import CutbenchError, CutbenchWarning


def check_features(X, *, name: str = "X", min_samples: int = 1):
    """Return ``X`` as a 2-D float array or tensor, refusing NaN/inf and wrong shapes.

    numpy input comes back as a float32/float64 numpy array; torch input stays a tensor on its
    device (integer tensors are cast to float32).
    """
    if isinstance(X, torch.Tensor):
        if X.ndim != 2:
            raise CutbenchError(f"{name} must be 2-D (n_samples, n_features); got shape {tuple(X.shape)}. "
                                "Reshape it, e.g. X.reshape(len(X), -1).")
        if not torch.is_floating_point(X):
            X = X.float()
        if not bool(torch.isfinite(X).all()):
            bad = int((~torch.isfinite(X)).any(dim=1).sum())
            raise CutbenchError(f"{name} contains NaN or inf in {bad} row(s); clean or drop those rows first.")
    else:
        X = np.asarray(X)
        if X.ndim != 2:
            raise CutbenchError(f"{name} must be 2-D (n_samples, n_features); got shape {X.shape}. "
                                "Reshape it, e.g. X.reshape(len(X), -1).")
        if X.dtype.kind not in "fiub":
            raise CutbenchError(f"{name} must be numeric; got dtype {X.dtype}.")
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float32)
        if not np.isfinite(X).all():
            bad = int((~np.isfinite(X)).any(axis=1).sum())
            raise CutbenchError(f"{name} contains NaN or inf in {bad} row(s); clean or drop those rows first.")
    if X.shape[0] < min_samples:
        raise CutbenchError(f"{name} has {X.shape[0]} samples; at least {min_samples} are needed.")
    if X.shape[1] < 1:
        raise CutbenchError(f"{name} has no features (shape {tuple(X.shape)}).")
    return X


NETWORK_SCALE = (1e-2, 1e2)
"""Largest absolute feature values between which the networks train as their references do (on
standardised inputs); outside, :func:`check_scale` warns."""

_FLOAT32 = np.finfo(np.float32)
_HEADROOM = 2.0**24  # squared distances keep this factor away from float32's overflow and underflow


def _scale_fix() -> str:
    return ("standardise the features first, e.g. sklearn.preprocessing.StandardScaler().fit_transform(X) or "
            "the l2_normalize option of the features pipeline")


def check_magnitude(X, owner: str) -> float:
    """Refuse features whose squared distances overflow float32; return ``max|X|``.

    Run on every input, training or new data (``predict``, ``transform``, ``predict_proba``): a
    fitted network or centroid set fed values around 1e30 returns labels that mean nothing.
    """
    magnitude = float(X.abs().max()) if isinstance(X, torch.Tensor) else float(np.abs(X).max())
    if 4.0 * X.shape[1] * magnitude**2 > float(_FLOAT32.max) / _HEADROOM:
        raise CutbenchError(f"{owner}: X holds values up to {magnitude:.3g}: squared distances between its rows "
                            f"overflow float32 (largest {float(_FLOAT32.max):.3g}), so affinities and network outputs "
                            f"would be meaningless; {_scale_fix()}.")
    return magnitude


def check_scale(X, owner: str, *, network: bool) -> None:
    """Refuse training features whose squared distances overflow or underflow float32; warn a network
    about features far from unit scale. Run before any training.

    Distances, heat kernels and network activations are computed in float32: with values around
    1e30 the squared distances are infinite, and with differences around 1e-30 they are all zero, so
    every method would return wrong labels while blaming something else (a bandwidth, a learning
    rate, duplicate points). Standardising the features fixes both.

    Raises
    ------
    CutbenchError
        When ``4 d max|X|^2`` is within a factor 2^24 of float32's largest value, or the largest
        range of a feature, squared, within 2^24 of its smallest normal number (0 included: all
        rows identical).

    Warns
    -----
    CutbenchWarning
        ``network`` methods, when ``max|X|`` is outside :data:`NETWORK_SCALE`.
    """
    magnitude = check_magnitude(X, owner)
    if isinstance(X, torch.Tensor):
        spread = float((X.amax(dim=0) - X.amin(dim=0)).max())
    else:
        spread = float((X.max(axis=0) - X.min(axis=0)).max())
    if spread == 0:
        raise CutbenchError(f"{owner}: all {X.shape[0]} rows of X are identical, so there is nothing to cluster; "
                            "check the features (e.g. a constant column set, or a failed feature pipeline).")
    if spread**2 < float(_FLOAT32.tiny) * _HEADROOM:
        raise CutbenchError(f"{owner}: the features of X vary by at most {spread:.3g}: squared distances between its "
                            f"rows underflow float32 (smallest normal {float(_FLOAT32.tiny):.3g}), so all points "
                            f"look like duplicates; {_scale_fix()}.")
    low, high = NETWORK_SCALE
    if network and not low <= magnitude <= high:
        warnings.warn(f"{owner}: X holds values up to {magnitude:.3g}, far from the unit scale networks train on "
                      f"({low:g} to {high:g}); expect degraded or collapsed clusters unless you {_scale_fix()}.",
                      CutbenchWarning, stacklevel=4)


def check_batch_size(batch_size: int, n_samples: int, n_clusters: int) -> int:
    """The mini-batch size to train with: ``batch_size``, clipped to ``n_samples`` with a warning.

    A batch larger than the training set is clipped, as scikit-learn's mini-batch estimators do (the
    warning reaches the cell's record); one smaller than ``n_clusters`` is refused, since a batch
    must be able to hold every cluster. The type is a declared parameter constraint, checked before
    ``fit``; the data (and so ``n_samples``) has been checked before this relation.
    """
    if batch_size < n_clusters:
        raise CutbenchError(f"batch_size={batch_size} is smaller than n_clusters={n_clusters}; a batch must be "
                            f"able to hold every cluster: use batch_size >= {n_clusters}.")
    if batch_size > n_samples:
        warnings.warn(f"batch_size={batch_size} is more than the {n_samples} training samples: trained with "
                      f"batch_size={n_samples} (every batch is the whole training set).", CutbenchWarning,
                      stacklevel=3)
        return int(n_samples)
    return int(batch_size)


def resolve_device(device) -> torch.device:
    """``"auto"`` picks CUDA when available, else the CPU; ``"cuda"`` without a GPU is an error."""
    if isinstance(device, torch.device):
        device = str(device)
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str):
        raise CutbenchError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {device!r}.")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CutbenchError(f"device={device!r} was asked for but CUDA is not available; use device='cpu' or 'auto'.")
    if device != "cpu" and not device.startswith("cuda"):
        raise CutbenchError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {device!r}.")
    return torch.device(device)


def seed_generators(random_state) -> tuple[np.random.Generator, torch.Generator, int]:
    """One integer seed for numpy and torch, drawn from ``random_state`` (None, int or Generator)."""
    if isinstance(random_state, np.random.Generator):
        seed = int(random_state.integers(0, 2**31 - 1))
    elif random_state is None:
        seed = int(np.random.default_rng().integers(0, 2**31 - 1))
    elif isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        seed = int(random_state)
    else:
        raise CutbenchError(f"random_state must be None, an int or a numpy Generator; got {random_state!r}.")
    torch_gen = torch.Generator().manual_seed(seed)
    return np.random.default_rng(seed), torch_gen, seed
