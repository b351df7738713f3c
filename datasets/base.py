"""The dataset record, its fingerprint, and the registry of loaders.

A loader is a function whose keyword parameters, all with defaults, are the parameters the
dataset accepts; it returns ``(X, y)``, or ``(X, y, extra_meta)`` to describe the data further
(e.g. ``image_shape``, ``class_names``). Registering it with ``@register_dataset("name")`` is all a
new dataset needs: the registry checks parameter names and types against the signature, fills
in defaults, and builds the ``meta`` record (including the fingerprint) for every dataset alike.
"""

from __future__ import annotations

import hashlib
import inspect
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from cutbench import CutbenchError
from cutbench.canonical import canonical_json


@dataclass(frozen=True, eq=False)
class Dataset:
    """Points, ground-truth labels and a description of where they came from.

    Attributes
    ----------
    X : ndarray of shape (n, d), float32
        Features, C-contiguous.
    y : ndarray of shape (n,), int64
        Classes ``0 .. k-1``.
    meta : dict
        ``name``; ``params`` (every parameter, defaults included, as passed to the loader);
        ``n``, ``d``, ``k`` (number of classes, ``y.max() + 1``); ``class_counts`` (list of
        ``k`` ints); ``fingerprint`` (see :func:`dataset_fingerprint`). Loaders may add more:
        the real datasets add ``image_shape`` ((h, w) or (h, w, c), image sets only),
        ``class_names`` (one per class, where known) and ``files`` (where each file was read).
    """

    X: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    meta: dict


def dataset_fingerprint(name: str, params: dict, X: np.ndarray, y: np.ndarray) -> str:
    """Hex SHA-256 over the name, the canonical JSON of ``params``, and the bytes of X and y.

    X is hashed as little-endian float32 and y as little-endian int64 (C order), so the
    fingerprint is the same on every platform.
    """
    digest = hashlib.sha256()
    digest.update(name.encode())
    digest.update(b"\0")
    digest.update(canonical_json(params, strict=True).encode())
    digest.update(b"\0")
    digest.update(np.ascontiguousarray(X, dtype="<f4"))
    digest.update(np.ascontiguousarray(y, dtype="<i8"))
    return digest.hexdigest()


@dataclass(frozen=True)
class _Loader:
    function: Callable[..., tuple]
    defaults: dict

    def accepted(self) -> str:
        if not self.defaults:
            return "none (this dataset takes no parameters)"
        return ", ".join(f"{key}={value!r}" for key, value in self.defaults.items())


_REGISTRY: dict[str, _Loader] = {}


def register_dataset(name: str):
    """Decorator registering ``function`` as the loader of dataset ``name``.

    Every parameter of ``function`` must be keyword-passable and have a default; the defaults
    define the accepted parameters and their types (see :func:`check_dataset_params`). The function
    returns ``(X, y)`` or ``(X, y, extra_meta)``; :func:`load_dataset` converts X and y to
    float32 / int64 and builds ``meta``, adding the entries of ``extra_meta`` (which must not
    redefine the keys it sets itself).
    """

    def decorator(function):
        if name in _REGISTRY:
            raise CutbenchError(f"dataset {name!r} is already registered (by {_REGISTRY[name].function.__module__}); "
                                "choose another name.")
        defaults = {}
        for parameter in inspect.signature(function).parameters.values():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD, parameter.POSITIONAL_ONLY):
                raise CutbenchError(f"loader for {name!r} has {parameter.kind.description} parameter {parameter.name!r}; "
                                    "loaders take keyword parameters with defaults only.")
            if parameter.default is parameter.empty:
                raise CutbenchError(f"loader for {name!r} has no default for parameter {parameter.name!r}; "
                                    "every loader parameter needs a default.")
            defaults[parameter.name] = parameter.default
        _REGISTRY[name] = _Loader(function, defaults)
        return function

    return decorator


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`, sorted."""
    return sorted(_REGISTRY)


def _spelling(name: str) -> str:
    return "".join(char for char in name.lower() if char.isalnum())


def canonical_dataset_name(name) -> str:
    """The registered name of a dataset, whatever its usual spelling.

    Case, hyphens, underscores and spaces are ignored, so ``"fashion-mnist"``, ``"Fashion MNIST"`` and
    ``"FashionMNIST"`` are all ``"fashion_mnist"``.

    Raises
    ------
    CutbenchError
        For a name no dataset is registered under; the message lists the registered names.
    """
    if isinstance(name, str):
        if name in _REGISTRY:
            return name
        matches = [registered for registered in _REGISTRY if _spelling(registered) == _spelling(name)]
        if len(matches) == 1:
            return matches[0]
    raise CutbenchError(f"unknown dataset {name!r}; available: {', '.join(list_datasets())} (case, '-', '_' and "
                        "spaces do not matter).")


def _get_loader(name) -> _Loader:
    return _REGISTRY[canonical_dataset_name(name)]


def coerce_param(owner: str, key: str, value, default):
    """Check ``value`` against the type of ``default`` and return it as a plain Python value.

    ``owner`` names what the parameter belongs to in messages, e.g. ``"dataset 'two_moons'"``.

    bool defaults take bools only; int defaults take integers (not bools, not floats); float
    defaults take any finite real number and return a float, so ``noise=0`` and ``noise=0.0``
    resolve (and fingerprint) alike; str defaults take strings. Other defaults (e.g. None) take
    any JSON-serialisable value.
    """
    where = f"{owner} parameter {key!r}"
    if isinstance(default, bool):
        if not isinstance(value, (bool, np.bool_)):
            raise CutbenchError(f"{where} must be True or False; got {value!r}.")
        return bool(value)
    if isinstance(default, int):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise CutbenchError(f"{where} must be an integer; got {value!r} ({type(value).__name__}). "
                                f"Pass e.g. {key}=int(value).")
        return int(value)
    if isinstance(default, float):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise CutbenchError(f"{where} must be a real number; got {value!r} ({type(value).__name__}).")
        if not math.isfinite(value):
            raise CutbenchError(f"{where} must be finite; got {value!r}.")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise CutbenchError(f"{where} must be a string; got {value!r} ({type(value).__name__}).")
        return value
    if isinstance(value, np.generic):
        value = value.item()
    try:
        canonical_json({key: value}, strict=True)
    except (TypeError, ValueError) as error:
        raise CutbenchError(f"{where} must be JSON-serialisable (it is recorded and fingerprinted); "
                            f"got {value!r}.") from error
    return value


def check_dataset_params(name: str, params: dict) -> dict:
    """The full parameter dict ``load_dataset(name, **params)`` would use, without loading.

    Checks the dataset name and each parameter's name and type, and fills in defaults; value
    ranges (e.g. ``noise >= 0``) are checked by the loader when the dataset is loaded.

    Parameters
    ----------
    name : str
        A name from :func:`list_datasets`, in any of its usual spellings (see :func:`canonical_dataset_name`).
    params : dict
        Parameters as they would be passed to :func:`load_dataset`; not modified.

    Returns
    -------
    dict
        Every accepted parameter in signature order, as plain Python values (e.g. ``noise=0``
        becomes ``0.0``); this is ``meta["params"]`` of the loaded dataset.

    Raises
    ------
    CutbenchError
        Unknown dataset (lists the available ones), unknown parameter (lists the accepted ones
        with their defaults), or a value of the wrong type.
    """
    name = canonical_dataset_name(name)
    loader = _get_loader(name)
    unknown = sorted(set(params) - set(loader.defaults))
    if unknown:
        raise CutbenchError(f"dataset {name!r} got unknown parameter(s) {', '.join(map(repr, unknown))}; "
                            f"accepted: {loader.accepted()}.")
    return {key: coerce_param(f"dataset {name!r}", key, params.get(key, default), default)
            for key, default in loader.defaults.items()}


def load_dataset(name: str, **params) -> Dataset:
    """Load (or generate) dataset ``name`` with ``params``; see :func:`list_datasets` for names.

    Returns
    -------
    Dataset
        float32 ``X``, int64 ``y`` and ``meta`` with the resolved parameters and fingerprint.

    Raises
    ------
    CutbenchError
        Unknown name or parameter, wrong type, or a value out of range; the message lists the
        accepted values.

    Examples
    --------
    >>> from cutbench.datasets import load_dataset
    >>> data = load_dataset("double_rings", n=1000, random_state=3)
    >>> data.X.shape, data.meta["class_counts"]
    ((1000, 2), [500, 500])
    """
    name = canonical_dataset_name(name)
    resolved = check_dataset_params(name, params)
    X, y, *extra = _get_loader(name).function(**resolved)
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.int64)
    n_classes = int(y.max()) + 1
    meta = {
        "name": name,
        "params": resolved,
        "n": int(X.shape[0]),
        "d": int(X.shape[1]),
        "k": n_classes,
        "class_counts": np.bincount(y, minlength=n_classes).tolist(),
        "fingerprint": dataset_fingerprint(name, resolved, X, y),
    }
    extra_meta = extra[0] if extra else {}
    clashes = sorted(set(extra_meta) & set(meta))
    if clashes:
        raise CutbenchError(f"loader for {name!r} returned meta key(s) {', '.join(map(repr, clashes))}, which "
                            "load_dataset sets itself; give them other names.")
    meta.update(extra_meta)
    return Dataset(X=X, y=y, meta=meta)
