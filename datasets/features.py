"""Feature pipelines: a dataset's X transformed by a list of steps, each expensive step cached on disk.

A pipeline is a list of steps, each ``{"name": ..., **params}`` or a bare name, applied in order by
:func:`compute_features`. The built-in steps:

=================  ===========================================================================
``raw``            identity (image datasets already hold pixels scaled to [0, 1], flattened)
``pca``            projection on the top ``n_components`` principal axes, centred or not
``scatnet``        kymatio scattering transform of images (:mod:`cutbench.datasets.scatnet`)
``autoencoder``    code of a trained d-500-500-2000-10 autoencoder (:mod:`cutbench.datasets.autoencoder`)
``center``         subtract the column means
``l2_normalize``   divide each row by its Euclidean norm plus 1e-6 (the reference NeuNcut's ``p_normalize``)
=================  ===========================================================================

Presets (:data:`PRESETS`, resolved by :func:`resolve_features`) name the pipelines of the papers, e.g.
``"scatnet"`` = ScatNet, uncentred PCA to 500 dimensions and, for E-MNIST only, mean removal.

Cache: the output of every step registered with ``cached=True`` (``pca``, ``scatnet``,
``autoencoder``) is stored as ``<cache root>/<key>.npy`` with a ``<key>.json`` sidecar, where the
key is the SHA-256 of the dataset's fingerprint and the canonical JSON of the steps up to and
including that one. The cache root is ``data_dir()/features`` unless given. Entries are written
atomically (a temporary file renamed into place, the sidecar last), and an entry is used only when
its sidecar's shape, dtype and SHA-256 match the array; anything else is rebuilt, with a warning.
Cheap steps are recomputed every time. The device a step runs on is not part of the key: CUDA and
CPU results of a step agree to float32 rounding, and whichever was stored first is reused.
"""

from __future__ import annotations

import contextvars
import hashlib
import inspect
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from cutbench import CutbenchError, CutbenchWarning
from cutbench._validation import resolve_device
from cutbench.atomic import write_atomically
from cutbench.canonical import canonical_json
from cutbench.datasets._files import data_dir
from cutbench.datasets.base import Dataset, coerce_param
from cutbench.plugins import Plugin, is_entry_point, is_target, load
from cutbench.progress import progress_bar

CACHE_FOLDER = "features"
"""Folder under :func:`data_dir` holding cached feature matrices."""

L2_EPSILON = 1e-6
"""Added to each row norm by ``l2_normalize``, as the reference NeuNcut and SENet code do."""

CHUNK_ROWS = 8192
"""Rows processed at a time by ``pca`` and ``l2_normalize``; bounds their working memory."""


@dataclass(frozen=True)
class _Step:
    function: Callable[..., np.ndarray]
    defaults: dict
    cached: bool
    seeded: bool

    def accepted(self) -> str:
        if not self.defaults:
            return "none (this step takes no parameters)"
        return ", ".join(f"{key}={value!r}" for key, value in self.defaults.items())


_STEPS: dict[str, _Step] = {}
_PIPELINE_ARGUMENTS = ("X", "meta", "device", "random_state")


def register_step(name: str, *, cached: bool = True):
    """Decorator registering ``function`` as feature step ``name``.

    ``function(X, meta, *, device, **params) -> ndarray`` gets the current features (an (n, d)
    float32 array), the dataset's ``meta`` (read only) and the ``torch.device`` to compute on, and
    returns the new (n, d') features. Its other keyword parameters, all with defaults, are the
    step's parameters; their defaults define accepted names and types as for datasets. A step
    with a ``random_state`` parameter is *seeded*: its seed is recorded with (and keys the cache
    of) its output, and defaults to the ``random_state`` of :func:`compute_features`.

    Parameters
    ----------
    name : str
        Name used in pipelines.
    cached : bool, default True
        Store the step's output on disk; turn off for steps cheaper than reading their output back.
    """

    def decorator(function):
        if name in _STEPS:
            raise CutbenchError(f"feature step {name!r} is already registered (by "
                                f"{_STEPS[name].function.__module__}); choose another name.")
        defaults, seeded = {}, False
        for parameter in list(inspect.signature(function).parameters.values())[2:]:
            if parameter.name == "device":
                continue
            if parameter.name == "random_state":
                seeded = True
            elif parameter.kind != parameter.KEYWORD_ONLY or parameter.default is parameter.empty:
                raise CutbenchError(f"feature step {name!r}: parameter {parameter.name!r} must be keyword-only "
                                    "with a default (def step(X, meta, *, device, name=default, ...)).")
            else:
                defaults[parameter.name] = parameter.default
        _STEPS[name] = _Step(function, defaults, cached, seeded)
        return function

    return decorator


_STEP_PLUGINS: dict[str, Plugin] = {}  # step name -> the plugin registered under it in this process


def features_plugin(name) -> Plugin | None:
    """The feature-step plugin ``name`` names (``module:function``, ``file.py:function`` or an entry point of
    group ``cutbench.features``), registered in this process as a step under its function's name; None for
    a preset. A study uses it as a one-step pipeline: ``features: {name: path/to/file.py:step, param: value}``.

    Raises
    ------
    CutbenchError
        When it cannot be loaded, its signature is not a step's, or its name is a built-in step's or preset's.
    """
    if not isinstance(name, str) or name in PRESETS or not (is_target(name) or is_entry_point("feature step", name)):
        return None
    plugin = load("feature step", name)
    registered = _STEP_PLUGINS.get(plugin.name)
    if registered is None and (plugin.name in _STEPS or plugin.name in PRESETS):
        raise CutbenchError(f"feature step plugin {name!r} is named {plugin.name!r}, like a built-in step or preset; "
                            "rename the function.")
    if not callable(plugin.obj):
        raise CutbenchError(f"feature step plugin {name!r} is a {type(plugin.obj).__name__}, not a function "
                            "def step(X, meta, *, device, param=default, ...) -> array.")
    if registered is None or registered.obj is not plugin.obj:  # the last one named wins (a study refuses two)
        _STEPS.pop(plugin.name, None)
        register_step(plugin.name, cached=getattr(plugin.obj, "cached", True))(plugin.obj)
        _STEP_PLUGINS[plugin.name] = plugin
    return plugin


def list_steps() -> list[str]:
    """Names of the registered feature steps, sorted."""
    return sorted(_STEPS)


def _plain(value):
    """Tuples as lists, so a resolved step is what its canonical JSON reads back as."""
    return [_plain(item) for item in value] if isinstance(value, (list, tuple)) else value


def resolve_step(step, random_state: int = 0) -> dict:
    """``{"name": ..., **params}`` with every parameter of the step, defaults filled in and checked.

    Parameters
    ----------
    step : str or dict
        A bare step name or ``{"name": name, **params}``.
    random_state : int, default 0
        Seed given to a seeded step that does not set its own ``random_state``.

    Raises
    ------
    CutbenchError
        Unknown step (lists the registered ones) or parameter (lists the accepted ones), or a value
        of the wrong type.
    """
    if isinstance(step, str):
        step = {"name": step}
    if not isinstance(step, dict) or not isinstance(step.get("name"), str):
        raise CutbenchError(f"a feature step is a name or a mapping {{'name': ..., **params}}; got {step!r}. "
                            f"Steps: {', '.join(list_steps())}.")
    name = step["name"]
    if name not in _STEPS:
        raise CutbenchError(f"unknown feature step {name!r}; available: {', '.join(list_steps())}.")
    spec = _STEPS[name]
    params = {key: value for key, value in step.items() if key != "name"}
    accepted = set(spec.defaults) | ({"random_state"} if spec.seeded else set())
    unknown = sorted(set(params) - accepted)
    if unknown:
        extra = ", random_state (the step's seed)" if spec.seeded else ""
        raise CutbenchError(f"feature step {name!r} got unknown parameter(s) {', '.join(map(repr, unknown))}; "
                            f"accepted: {spec.accepted()}{extra}.")
    resolved = {"name": name}
    for key, default in spec.defaults.items():
        resolved[key] = _plain(coerce_param(f"feature step {name!r}", key, params.get(key, default), default))
    if spec.seeded:
        seed = coerce_param(f"feature step {name!r}", "random_state", params.get("random_state", random_state), 0)
        if seed < 0:
            raise CutbenchError(f"feature step {name!r}: random_state={seed} must be a non-negative integer seed.")
        resolved["random_state"] = seed
    return resolved


# --------------------------------------------------------------------------- presets

PRESETS: dict[str, dict] = {
    "raw": {},
    "pca": {"n_components": 50, "center": True},
    "scatnet": {"n_components": 500, "remove_mean": None},
    "ae": {"epochs": 50, "random_state": 0},
}
"""Named pipelines and their parameters with defaults; every preset also takes ``l2_normalize``.

* ``raw``: the dataset's features as loaded.
* ``pca``: PCA to ``n_components`` (centred unless ``center`` is False).
* ``scatnet``: the SENet/NeuNcut recipe (research notes §1.1): ScatNet (3,472 dims), uncentred PCA
  to ``n_components`` fitted on all loaded points, then column-mean removal when ``remove_mean``
  is True; None means "as the reference does": True for ``emnist_lowercase`` only.
* ``ae``: DEC's 784-500-500-2000-10 autoencoder code, trained ``epochs`` passes with seed
  ``random_state``.
* ``l2_normalize`` (default False) appends row L2 normalisation, which the reference NeuNcut applies
  before its heat kernel.
"""

_REMOVE_MEAN_BY_DEFAULT = ("emnist_lowercase",)


def _preset_spec(spec) -> tuple[str, dict]:
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise CutbenchError(f"features must be a preset name ({', '.join(PRESETS)}) or a mapping "
                            f"{{name: <preset>, <param>: <value>, ...}}; got {spec!r}.")
    name = spec["name"]
    defaults = _preset_defaults(name)
    unknown = sorted(set(spec) - set(defaults) - {"name"})
    if unknown:
        accepted = ", ".join(f"{key}={value!r}" for key, value in defaults.items())
        raise CutbenchError(f"features {name!r} got unknown parameter(s) {', '.join(map(repr, unknown))}; "
                            f"accepted: {accepted}.")
    params = {}
    for key, default in defaults.items():
        value = spec.get(key, default)
        if key == "remove_mean":
            if value is not None and not isinstance(value, bool):
                raise CutbenchError(f"features {name!r} parameter 'remove_mean' must be true, false or null "
                                    f"(null: as the reference, true for emnist_lowercase only); got {value!r}.")
            params[key] = value
        else:
            params[key] = coerce_param(f"features {name!r}", key, value, default)
    return name, params


def _preset_defaults(name: str) -> dict:
    """A preset's parameters with their defaults; a feature-step plugin is a one-step preset."""
    plugin = features_plugin(name)
    if plugin is not None:
        return {**_STEPS[plugin.name].defaults, "l2_normalize": False}
    if name not in PRESETS:
        raise CutbenchError(f"unknown features {name!r}; accepted: {', '.join(PRESETS)} "
                            "(e.g. {name: scatnet, l2_normalize: true}), or a feature-step plugin "
                            "(package.module:function or path/to/file.py:function).")
    return {**PRESETS[name], "l2_normalize": False}


def canonical_features(spec) -> dict:
    """The preset spec ``{"name": ..., **params}`` with every parameter, defaults filled in.

    Equal pipelines give equal dicts, so this is what studies record and key cells on.

    Raises
    ------
    CutbenchError
        Unknown preset or parameter, or a value of the wrong type; the message lists the accepted ones.
    """
    name, params = _preset_spec(spec)
    return {"name": name, **params}


def compact_features(spec) -> dict:
    """``{"name": ..., **params}`` with only the parameters that differ from the preset's defaults.

    Studies key cells on this form, so the keys of plain-preset cells (``{"name": "raw"}``) are
    the ones earlier versions stored and a resumed study finds them. A preset default must
    therefore never change meaning; add a parameter instead.
    """
    name, params = _preset_spec(spec)
    defaults = _preset_defaults(name)
    return {"name": name, **{key: value for key, value in params.items() if value != defaults[key]}}


def resolve_features(spec, dataset_name: str) -> list[dict]:
    """The resolved steps of preset ``spec`` (see :data:`PRESETS`) for dataset ``dataset_name``.

    Examples
    --------
    >>> resolve_features({"name": "pca", "n_components": 2, "l2_normalize": True}, "digits")
    [{'name': 'pca', 'n_components': 2, 'center': True}, {'name': 'l2_normalize'}]
    """
    name, params = _preset_spec(spec)
    plugin = features_plugin(name)
    if plugin is not None:
        steps = [{"name": plugin.name, **{k: v for k, v in params.items() if k != "l2_normalize"}}]
    elif name == "raw":
        steps = ["raw"]
    elif name == "pca":
        steps = [{"name": "pca", "n_components": params["n_components"], "center": params["center"]}]
    elif name == "scatnet":
        remove_mean = params["remove_mean"]
        if remove_mean is None:
            remove_mean = dataset_name in _REMOVE_MEAN_BY_DEFAULT
        steps = ["scatnet", {"name": "pca", "n_components": params["n_components"], "center": False}]
        steps += ["center"] if remove_mean else []
    else:
        steps = [{"name": "autoencoder", "epochs": params["epochs"], "random_state": params["random_state"]}]
    steps += ["l2_normalize"] if params["l2_normalize"] else []
    return [resolve_step(step) for step in steps]


# --------------------------------------------------------------------------- progress

_progress_enabled = contextvars.ContextVar("cutbench_feature_progress", default=False)


def feature_progress(label: str, total: int):
    """A progress bar of a long feature step, when :func:`compute_features` asks for one (see
    :func:`cutbench.progress.progress_bar`): ``update(count)`` after each batch, ``close()`` at the end."""
    return progress_bar(total, label, "pt", enabled=_progress_enabled.get(), unit_scale=True)


# --------------------------------------------------------------------------- cache


def cache_key(fingerprint: str, steps: list[dict]) -> str:
    """Hex SHA-256 of a dataset fingerprint and the canonical JSON of resolved ``steps``."""
    return hashlib.sha256(f"{fingerprint}\0{canonical_json({'steps': steps}, strict=True)}".encode()).hexdigest()


def _array_sha256(X: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(X, dtype="<f4")).hexdigest()


def _read_cache(root: Path, key: str) -> np.ndarray | None:
    """The cached array under ``key``, or None when absent; a damaged entry warns and counts as absent."""
    array_path, sidecar_path = root / f"{key}.npy", root / f"{key}.json"
    if not sidecar_path.is_file():
        return None  # never completed (the sidecar is written last)
    try:
        sidecar = json.loads(sidecar_path.read_text())
        X = np.load(array_path, allow_pickle=False)
        problem = None
        if list(X.shape) != sidecar["shape"] or X.dtype != np.float32:
            problem = f"holds {X.dtype} {X.shape}, its sidecar says float32 {tuple(sidecar['shape'])}"
        elif _array_sha256(X) != sidecar["sha256"]:
            problem = "its data do not match the checksum in its sidecar"
    except (OSError, ValueError, KeyError, TypeError, EOFError) as error:
        problem = f"unreadable ({type(error).__name__}: {error})"
    if problem is None:
        return X
    warnings.warn(CutbenchWarning(f"feature cache entry {array_path} {problem}; rebuilding it."), stacklevel=3)
    return None


def _write_cache(root: Path, key: str, X: np.ndarray, record: dict) -> None:
    write_atomically(root / f"{key}.npy", lambda stream: np.save(stream, X, allow_pickle=False))
    sidecar = {**record, "shape": list(X.shape), "dtype": "float32", "sha256": _array_sha256(X)}
    write_atomically(root / f"{key}.json", lambda stream: stream.write(json.dumps(sidecar, indent=1).encode()))


def _cache_root(cache) -> Path | None:
    if cache is False or cache is None:
        return None
    if cache is True:
        return data_dir() / CACHE_FOLDER
    if isinstance(cache, (str, os.PathLike)):
        return Path(cache).expanduser()
    raise CutbenchError(f"cache must be True (under data_dir()/features), False (no cache) or a folder; got {cache!r}.")


# --------------------------------------------------------------------------- pipeline


def compute_features(dataset: Dataset, steps, *, device="auto", cache=True, random_state: int = 0,
                     progress: bool = False) -> Dataset:
    """Apply the feature pipeline ``steps`` to ``dataset``, reusing cached results.

    Parameters
    ----------
    dataset : Dataset
        As returned by :func:`cutbench.datasets.load_dataset`.
    steps : list of (str or dict)
        Steps applied in order (see the module docstring); a single str or dict is one step. Use
        :func:`resolve_features` to turn a preset into steps.
    device : {"auto", "cpu", "cuda"} or torch.device, default "auto"
        Where steps compute (CUDA when available for "auto").
    cache : bool or path-like, default True
        True: cache under ``data_dir()/features``; False: no cache; a folder: cache there.
    random_state : int, default 0
        Seed of seeded steps (e.g. ``autoencoder``) that do not give their own.
    progress : bool, default False
        Report the progress of long steps on stderr.

    Returns
    -------
    Dataset
        Same ``y``; ``X`` the pipeline's float32 output; ``meta`` the dataset's with ``d``
        updated, ``features`` (the resolved steps), ``parent_fingerprint`` (the dataset's),
        ``fingerprint`` (:func:`cache_key` of the parent fingerprint and the steps),
        ``features_cache`` (per step: "hit" (read from the cache), "miss" (computed and stored),
        "off" (not cached) or "skipped" (not needed: a later step's output was cached)) and
        ``image_shape`` dropped when the output no longer has one value per pixel.

    Raises
    ------
    CutbenchError
        Unknown step or parameter, or a step that cannot apply to this dataset.
    """
    resolved = [resolve_step(step, random_state) for step in ([steps] if isinstance(steps, (str, dict)) else steps)]
    if not resolved:
        raise CutbenchError("a feature pipeline needs at least one step; use ['raw'] for the features as loaded.")
    root = _cache_root(cache)
    torch_device = resolve_device(device) if not isinstance(device, torch.device) else device
    fingerprint = dataset.meta["fingerprint"]
    # A plugin step's source hash keys its cache: editing the step recomputes its output.
    keyed = [{**step, "plugin": _STEP_PLUGINS[step["name"]].identity} if step["name"] in _STEP_PLUGINS else step
             for step in resolved]
    keys = [cache_key(fingerprint, keyed[:index + 1]) for index in range(len(resolved))]
    statuses = ["off" if root is None or not _STEPS[step["name"]].cached else "miss" for step in resolved]

    # Start after the last step whose output is cached: everything before it is not needed.
    X, start = dataset.X, 0
    for index in reversed(range(len(resolved))):
        if statuses[index] == "miss":
            cached = _read_cache(root, keys[index])
            if cached is not None:
                X, start, statuses[index] = cached, index + 1, "hit"
                statuses[:index] = ["skipped"] * index
                break
    token = _progress_enabled.set(progress)
    try:
        for index in range(start, len(resolved)):
            step = resolved[index]
            params = {key: value for key, value in step.items() if key != "name"}
            output = _STEPS[step["name"]].function(X, dataset.meta, device=torch_device, **params)
            X = _check_output(step["name"], output, len(dataset.y))
            if statuses[index] == "miss":
                _write_cache(root, keys[index], X, {"dataset_fingerprint": fingerprint, "dataset": dataset.meta["name"],
                                                    "steps": resolved[:index + 1], "device": str(torch_device)})
    finally:
        _progress_enabled.reset(token)

    meta = {**dataset.meta, "d": int(X.shape[1]), "features": resolved, "parent_fingerprint": fingerprint,
            "fingerprint": keys[-1], "features_cache": statuses}
    if "image_shape" in meta and int(np.prod(meta["image_shape"])) != X.shape[1]:
        del meta["image_shape"]
    return Dataset(X=X, y=dataset.y, meta=meta)


def _check_output(name: str, output, n_rows: int) -> np.ndarray:
    X = np.ascontiguousarray(output, dtype=np.float32)
    if X.ndim != 2 or X.shape[0] != n_rows:
        raise CutbenchError(f"feature step {name!r} returned shape {X.shape}; a step must return one row per "
                            f"point, ({n_rows}, d).")
    if not np.isfinite(X).all():
        raise CutbenchError(f"feature step {name!r} produced NaN or inf in {int((~np.isfinite(X)).any(1).sum())} "
                            "row(s); check its input (e.g. blank rows before a normalisation).")
    return X


# --------------------------------------------------------------------------- built-in steps


@register_step("raw", cached=False)
def raw(X, meta, *, device):
    """The features as loaded (image datasets: pixels in [0, 1], flattened row by row)."""
    return X


@register_step("center", cached=False)
def center(X, meta, *, device):
    """Subtract each column's mean (computed in float64)."""
    return X - X.mean(axis=0, dtype=np.float64).astype(np.float32)


@register_step("l2_normalize", cached=False)
def l2_normalize(X, meta, *, device):
    """Each row divided by its Euclidean norm plus 1e-6 (the reference NeuNcut's ``p_normalize``)."""
    out = np.empty_like(X, dtype=np.float32)
    for start in range(0, len(X), CHUNK_ROWS):
        rows = X[start:start + CHUNK_ROWS].astype(np.float64)
        out[start:start + CHUNK_ROWS] = rows / (np.linalg.norm(rows, axis=1, keepdims=True) + L2_EPSILON)
    return out


def principal_axes(X: np.ndarray, n_components: int, *, center: bool, device: torch.device) -> tuple:
    """The top ``n_components`` eigenvectors of the (centred or uncentred) scatter matrix of ``X``.

    The d x d scatter matrix XᵀX (centred: (X - mean)ᵀ(X - mean)) is accumulated in float64 from
    float32 products of ``CHUNK_ROWS`` rows at a time, on ``device``; only its top eigenpairs are
    kept, from a float64 eigen-decomposition on the CPU. With fewer rows than columns the n x n
    Gram matrix is decomposed instead (same axes, smaller problem). Columns are ordered by
    decreasing eigenvalue, and each eigenvector's sign is fixed so that its largest-magnitude entry
    is positive, so the result does not depend on the eigensolver.

    Returns
    -------
    components : ndarray of shape (d, n_components), float64
    mean : ndarray of shape (d,), float64
        The column means (zeros when ``center`` is False).
    eigenvalues : ndarray of shape (n_components,), float64
    """
    n, d = X.shape
    total = X.sum(axis=0, dtype=np.float64)
    mean = total / n if center else np.zeros(d)
    if n < d:
        rows = X.astype(np.float64) - mean
        eigenvalues, left = _top_eigenpairs(rows @ rows.T, n_components)
        components = rows.T @ left / np.sqrt(np.maximum(eigenvalues, np.finfo(float).tiny))
    else:
        scatter = torch.zeros(d, d, dtype=torch.float64, device=device)
        for start in range(0, n, CHUNK_ROWS):
            rows = torch.from_numpy(np.ascontiguousarray(X[start:start + CHUNK_ROWS], dtype=np.float32)).to(device)
            scatter += (rows.T @ rows).double()
        scatter = scatter.cpu().numpy()
        if center:
            scatter -= n * np.outer(mean, mean)
        eigenvalues, components = _top_eigenpairs(scatter, n_components)
    signs = np.sign(components[np.abs(components).argmax(axis=0), np.arange(n_components)])
    return components * signs, mean, eigenvalues


def _top_eigenpairs(symmetric: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` largest eigenvalues of a symmetric matrix, decreasing, and their eigenvectors."""
    # The full divide-and-conquer solver (syevd) beats the subset one (syevr) here even for 500 of 3,472.
    eigenvalues, eigenvectors = np.linalg.eigh(symmetric)
    return eigenvalues[::-1][:count], eigenvectors[:, ::-1][:, :count]


@register_step("pca")
def pca(X, meta, *, device, n_components=50, center=True):
    """Projection of every row on the top ``n_components`` principal axes of all rows.

    ``center=True``: ordinary PCA, ``(X - mean) @ V`` with V the top eigenvectors of the covariance.
    ``center=False``: the SENet/NeuNcut reference's "PCA", ``X @ V`` with V the top eigenvectors of
    the uncentred XᵀX (no mean subtraction, no whitening; its columns came in ascending order there,
    here descending, which no distance-based method sees). Fitted on all rows given (transductive).
    """
    n, d = X.shape
    if n_components < 1 or n_components > min(n, d):
        raise CutbenchError(f"feature step 'pca': n_components={n_components} must lie in 1..{min(n, d)} "
                            f"(at most the number of points, {n}, and of features, {d}).")
    components, mean, _ = principal_axes(X, n_components, center=center, device=device)
    out = np.empty((n, n_components), dtype=np.float32)
    projection = torch.from_numpy(components.astype(np.float32)).to(device)
    offset = torch.from_numpy((mean @ components).astype(np.float32)).to(device)
    for start in range(0, n, CHUNK_ROWS):
        rows = torch.from_numpy(np.ascontiguousarray(X[start:start + CHUNK_ROWS], dtype=np.float32)).to(device)
        out[start:start + len(rows)] = (rows @ projection - offset).cpu().numpy()
    return out
