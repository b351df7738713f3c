"""Method names -> estimator classes, imported lazily so one method's missing extra never breaks the others.

Besides the built-ins below, a study may name a method plugin (``package.module:Object``,
``path/to/file.py:Object`` or an entry point of group ``cutbench.methods``; see :mod:`cutbench.plugins`).
Every method, built in or not, is a :class:`~cutbench.methods.base.ClusteringMethod`.
"""

from __future__ import annotations

import importlib
import inspect

from cutbench import CutbenchError
from cutbench.plugins import Plugin, entry_points, load

# name -> "module:Class"; adding a method is one file in methods/ plus one line here.
METHODS: dict[str, str] = {
    "kmeans": "cutbench.methods.kmeans:KMeans",
    "ncut": "cutbench.methods.ncut:Ncut",
    "neuncut": "cutbench.methods.neuncut:NeuNcut",
    "neurcut": "cutbench.methods.neuncut:NeuRcut",
    "spectralnet": "cutbench.methods.spectralnet:SpectralNet",
    "specnet2": "cutbench.methods.specnet2:SpecNet2",
    "cnc": "cutbench.methods.cnc:CNC",
}


def list_methods() -> list[str]:
    """The built-in methods' names, sorted."""
    return sorted(METHODS)


def get_method(name: str):
    """The estimator class registered as ``name``, or of the method plugin ``name`` names."""
    if name in METHODS:
        module, cls = METHODS[name].split(":")
        return getattr(importlib.import_module(module), cls)
    return method_plugin(name).obj


def method_plugin(name: str) -> Plugin | None:
    """The plugin ``name`` names, checked against the method contract; None for a built-in."""
    if name in METHODS:
        return None
    try:
        plugin = load("method", name)
    except CutbenchError as exc:
        if ":" not in str(name) and name not in entry_points("method"):
            raise CutbenchError(f"unknown method {name!r}; built in: {', '.join(list_methods())}; or name a plugin "
                                "as package.module:Class or path/to/file.py:Class.") from None
        raise exc from None
    _check_contract(plugin)
    return plugin


def _check_contract(plugin: Plugin) -> None:
    from cutbench.methods.base import ClusteringMethod

    obj, spec = plugin.obj, plugin.spec
    if not inspect.isclass(obj):
        raise CutbenchError(f"method plugin {spec!r} is a {type(obj).__name__}, not a class; name the estimator "
                            "class (a subclass of cutbench.methods.base.ClusteringMethod).")
    if not callable(getattr(obj, "fit", None)):
        raise CutbenchError(f"method plugin {spec!r}: {obj.__name__} has no fit method, so it is not an estimator; "
                            "subclass cutbench.methods.base.ClusteringMethod and implement _fit.")
    if not issubclass(obj, ClusteringMethod):
        raise CutbenchError(f"method plugin {spec!r}: {obj.__name__} is not a cutbench.methods.base.ClusteringMethod; "
                            "subclass it (it validates parameters and data as the harness expects) and declare "
                            "name, capabilities and _parameter_constraints (see examples/spectral_amg.py).")
    if plugin.name in METHODS:
        raise CutbenchError(f"method plugin {spec!r} is named {plugin.name!r}, the name of a built-in method; its "
                            "results would be mistaken for the built-in's: give its class another name attribute.")
    try:
        obj()
    except Exception as exc:  # noqa: BLE001 - the contract: every parameter has a default
        raise CutbenchError(f"method plugin {spec!r}: {obj.__name__}() raised {type(exc).__name__}: {exc}; every "
                            "__init__ parameter needs a default, and __init__ only stores them.") from None


def make_method(name: str, **params):
    """Instantiate method ``name``; unknown parameters are an error listing the accepted ones."""
    cls = get_method(name)
    accepted = sorted(cls().get_params(deep=False))
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise CutbenchError(f"unknown parameter(s) {', '.join(unknown)} for method {name!r}; "
                            f"accepted: {', '.join(accepted)}.")
    return cls(**params)
