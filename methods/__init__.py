"""The clustering methods, one module each, behind one scikit-learn interface.

``from cutbench.methods import NeuNcut, Ncut, ...`` imports a method's module only when its class is
first used, so one method's missing optional dependency never breaks the others.
"""

from __future__ import annotations

from cutbench.methods.registry import METHODS, get_method, list_methods, make_method

# Public class name -> registered name, e.g. "NeuNcut" -> "neuncut".
_CLASSES = {target.split(":")[1]: name for name, target in METHODS.items()}


def __getattr__(attribute: str):
    if attribute in _CLASSES:
        return get_method(_CLASSES[attribute])
    raise AttributeError(f"module 'cutbench.methods' has no attribute {attribute!r}")


def __dir__():
    return sorted([*globals(), *_CLASSES])


__all__ = [*sorted(_CLASSES), "get_method", "list_methods", "make_method"]
