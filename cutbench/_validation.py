"""Checks that depend on the data, shared by the graph builders, the methods and the harness.

The types and ranges of parameters are declared, not checked here: see :mod:`cutbench.params`.
"""

from __future__ import annotations

import numpy as np
import torch

from cutbench import CutbenchError


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


def check_batch_size(batch_size: int, n_samples: int, n_clusters: int) -> int:
    """A mini-batch must hold at least ``n_clusters`` and at most ``n_samples`` points (the type is a
    declared parameter constraint, checked before ``fit``)."""
    if batch_size > n_samples:
        raise CutbenchError(f"batch_size={batch_size} exceeds the number of training samples n={n_samples}; "
                            f"use batch_size <= {n_samples} or train on more samples.")
    if batch_size < n_clusters:
        raise CutbenchError(f"batch_size={batch_size} is smaller than n_clusters={n_clusters}; a batch must be "
                            f"able to hold every cluster: use batch_size >= {n_clusters}.")
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
