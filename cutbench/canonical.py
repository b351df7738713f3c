"""Canonical JSON: the one serialisation behind cell keys, dataset fingerprints and feature-cache keys."""

from __future__ import annotations

import json
from typing import Any

import numpy as np


def json_default(obj):
    """``default=`` hook for ``json.dumps``: numpy scalars, tuples, sets and ``to_dict`` objects as plain JSON."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (tuple, set)):
        return list(obj)
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"cannot serialise {type(obj).__name__} in a result record")


def canonical_json(obj: Any, *, strict: bool = False) -> str:
    """JSON with sorted keys and no whitespace: equal values always serialise to equal text.

    Parameters
    ----------
    obj : Any
        The value to serialise.
    strict : bool, default=False
        Accept plain JSON values only: no NaN or infinity and no conversion of numpy scalars,
        tuples, sets or objects with ``to_dict``. Used where the text is a fingerprint input and a
        value must be refused rather than converted.

    Returns
    -------
    str
    """
    if strict:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=json_default)
