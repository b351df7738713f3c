"""Method names -> estimator classes, imported lazily so one method's missing extra never breaks the others."""

from __future__ import annotations

import importlib

from cutbench import CutbenchError

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
    return sorted(METHODS)


def get_method(name: str):
    """The estimator class registered as ``name``."""
    if name not in METHODS:
        raise CutbenchError(f"unknown method {name!r}; accepted: {', '.join(list_methods())}.")
    module, cls = METHODS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_method(name: str, **params):
    """Instantiate method ``name``; unknown parameters are an error listing the accepted ones."""
    cls = get_method(name)
    accepted = sorted(cls().get_params(deep=False))
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise CutbenchError(f"unknown parameter(s) {', '.join(unknown)} for method {name!r}; "
                            f"accepted: {', '.join(accepted)}.")
    return cls(**params)
