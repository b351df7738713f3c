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
from cutbench.params import Boolean, Interval, Text
from cutbench.plugins import Plugin, is_entry_point, is_target, load


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
        _REGISTRY[name] = _loader(name, function)
        return function

    return decorator


def _loader(name: str, function) -> _Loader:
    """The loader of ``function``, whose parameters must all be keyword-passable with defaults."""
    if not callable(function):
        raise CutbenchError(f"dataset {name!r} is a {type(function).__name__}, not a loader function; name a function "
                            "def load(n=..., random_state=0) -> (X, y).")
    defaults = {}
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD, parameter.POSITIONAL_ONLY):
            raise CutbenchError(f"loader for {name!r} has {parameter.kind.description} parameter {parameter.name!r}; "
                                "loaders take keyword parameters with defaults only.")
        if parameter.default is parameter.empty:
            raise CutbenchError(f"loader for {name!r} has no default for parameter {parameter.name!r}; "
                                "every loader parameter needs a default.")
        defaults[parameter.name] = parameter.default
    return _Loader(function, defaults)


_PLUGINS: dict[str, Plugin] = {}  # display name -> the plugin registered under it in this process


def dataset_plugin(name) -> Plugin | None:
    """The dataset plugin ``name`` names (``module:function``, ``file.py:function`` or an entry point of group
    ``cutbench.datasets``), registered in this process under its function's name; None for a built-in.

    Raises
    ------
    CutbenchError
        When it cannot be loaded, is not a loader (keyword parameters with defaults), or its name is a
        built-in's or another plugin's.
    """
    if not isinstance(name, str) or (name in _REGISTRY and name not in _PLUGINS) or not (
            is_target(name) or is_entry_point("dataset", name)):
        return None
    plugin = load("dataset", name)
    registered = _PLUGINS.get(plugin.name)
    if registered is None and (plugin.name in _REGISTRY or any(_spelling(other) == _spelling(plugin.name)
                                                              for other in _REGISTRY)):
        raise CutbenchError(f"dataset plugin {name!r} is named {plugin.name!r}, like a built-in dataset; its "
                            "results would be mistaken for the built-in's: rename the loader function.")
    if registered is None or registered.obj is not plugin.obj:  # the last one named wins (a study refuses two)
        _REGISTRY[plugin.name] = _loader(name, plugin.obj)
        _PLUGINS[plugin.name] = plugin
    return plugin


def list_datasets() -> list[str]:
    """The built-in datasets' names, sorted (plugins are named by their spec, see :func:`dataset_plugin`)."""
    return sorted(set(_REGISTRY) - set(_PLUGINS))


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
        plugin = dataset_plugin(name)
        if plugin is not None:
            return plugin.name
        if name in _REGISTRY:
            return name
        matches = [registered for registered in _REGISTRY if _spelling(registered) == _spelling(name)]
        if len(matches) == 1:
            return matches[0]
    raise CutbenchError(f"unknown dataset {name!r}; available: {', '.join(list_datasets())} (case, '-', '_' and "
                        "spaces do not matter), or a plugin: package.module:function or path/to/file.py:function.")


def _get_loader(name) -> _Loader:
    return _REGISTRY[canonical_dataset_name(name)]


def declared_constraint(default):
    """The constraint (:mod:`cutbench.params`, the estimators' own) a loader's or step's parameter is declared
    by through its default's type; None for a default of another type (any JSON value)."""
    if isinstance(default, bool):
        return Boolean()
    if isinstance(default, int):
        return _STRICT_INTEGER
    if isinstance(default, float):
        return Interval(float)
    if isinstance(default, str):
        return Text()
    return None


_STRICT_INTEGER = Interval(int)  # as declared: 10.0 is not an integer here (it is not coerced)


def coerce_param(owner: str, key: str, value, default):
    """Check ``value`` against the type of ``default`` and return it as a plain Python value.

    ``owner`` names what the parameter belongs to in messages, e.g. ``"dataset 'two_moons'"``.

    bool defaults take bools only; int defaults take integers (not bools, not floats); float
    defaults take any finite real number and return a float, so ``noise=0`` and ``noise=0.0``
    resolve (and fingerprint) alike; str defaults take strings. Other defaults (e.g. None) take
    any JSON-serialisable value.
    """
    where = f"{owner} parameter {key!r}"
    constraint = declared_constraint(default)
    if constraint is not None:
        if not constraint.accepts(value):
            hint = f" Pass e.g. {key}=int(value)." if isinstance(constraint, Interval) and constraint.kind is int else ""
            raise CutbenchError(f"{where} must be {constraint.describe()}; got {value!r} ({type(value).__name__})."
                                + hint)
        return constraint.canonical(value)
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
