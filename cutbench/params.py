"""Declared parameters: each parameter's constraints are written once and read everywhere.

A class (an estimator, an affinity specification) declares ``_parameter_constraints``, a mapping
from each parameter to a list of constraints, any one of which may accept the value, in the style
of scikit-learn's ``_parameter_constraints``. From that one declaration come

* validation (:func:`validate_params`): an error that names the owner, the parameter, the value and
  everything the parameter accepts, e.g. ``NeuNcut: epochs must be an integer >= 1; got 0.``;
* canonical values (:func:`canonical_params`): an integral float where an integer is meant becomes
  that integer, an integer where a real number is meant becomes a float, a list of widths a tuple, so
  that a study cell's key depends on the value and not on how it was written (``gamma: 80`` and
  ``gamma: 80.0`` are one cell).

scikit-learn's own machinery (``sklearn.utils._param_validation``) is private, so it may change in
any release, and it has no notion of a canonical value; these few classes give both.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import numpy as np
import torch

from cutbench import CutbenchError


class Constraint:
    """One way a parameter may be valid: ``accepts`` tests, ``canonical`` normalises, ``describe`` names it."""

    def accepts(self, value) -> bool:
        raise NotImplementedError

    def canonical(self, value):
        """``value`` written canonically; only called on values this constraint accepts (after
        :meth:`coerce`)."""
        return value

    def coerce(self, value):
        """A value written another way that means the same to this constraint (e.g. ``80.0`` for an
        integer), or ``value`` unchanged. Used when canonicalising, never when validating."""
        return value

    def describe(self) -> str:
        raise NotImplementedError


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _bound_text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class Interval(Constraint):
    """A number in an interval: ``Interval(int, 1, None)`` is an integer >= 1.

    Parameters
    ----------
    kind : {int, float}
        ``int`` accepts integers only (not ``True``/``False``); ``float`` accepts any finite real.
    low, high : number or None
        The bounds; None leaves that side open.
    closed : {"both", "left", "right", "neither"}, default="both"
        Which bounds are included.
    """

    def __init__(self, kind, low=None, high=None, *, closed="both"):
        if kind not in (int, float):
            raise TypeError("Interval kind must be int or float")
        if closed not in ("both", "left", "right", "neither"):
            raise TypeError("closed must be 'both', 'left', 'right' or 'neither'")
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def accepts(self, value) -> bool:
        if self.kind is int:
            if not _is_integer(value):
                return False
        elif not (_is_real(value) and math.isfinite(value)):
            return False
        if self.low is not None:
            if value < self.low or (value == self.low and self.closed in ("right", "neither")):
                return False
        if self.high is not None:
            if value > self.high or (value == self.high and self.closed in ("left", "neither")):
                return False
        return True

    def coerce(self, value):
        if self.kind is int and _is_real(value) and not _is_integer(value) and math.isfinite(value) \
                and float(value).is_integer():
            return int(value)
        return value

    def canonical(self, value):
        return int(value) if self.kind is int else float(value)

    def describe(self) -> str:
        what = "an integer" if self.kind is int else "a number"
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.low is not None and self.high is not None:
            return (f"{what} in {'[' if left else '('}{_bound_text(self.low)}, {_bound_text(self.high)}"
                    f"{']' if right else ')'}")
        if self.low is not None:
            return f"{what} {'>=' if left else '>'} {_bound_text(self.low)}"
        if self.high is not None:
            return f"{what} {'<=' if right else '<'} {_bound_text(self.high)}"
        return what


class Options(Constraint):
    """One of a fixed set of values (usually strings)."""

    def __init__(self, *values):
        self.values = values

    def accepts(self, value) -> bool:
        return isinstance(value, (str, numbers.Number)) and not isinstance(value, (bool, np.bool_)) \
            and value in self.values

    def describe(self) -> str:
        if len(self.values) == 1:
            return repr(self.values[0])
        return "one of " + ", ".join(map(repr, self.values))


class Text(Constraint):
    """Any string."""

    def accepts(self, value) -> bool:
        return isinstance(value, str)

    def describe(self) -> str:
        return "a string"


class Boolean(Constraint):
    """``True`` or ``False`` (numpy booleans included; not 0/1)."""

    def accepts(self, value) -> bool:
        return isinstance(value, (bool, np.bool_))

    def canonical(self, value):
        return bool(value)

    def describe(self) -> str:
        return "True or False"


class NoneValue(Constraint):
    """``None``, with what it means for the parameter (e.g. ``None (one pass per epoch)``)."""

    def __init__(self, meaning: str = ""):
        self.meaning = meaning

    def accepts(self, value) -> bool:
        return value is None

    def describe(self) -> str:
        return f"None ({self.meaning})" if self.meaning else "None"


class Widths(Constraint):
    """Layer widths: a non-empty tuple (or list) of integers >= 1, e.g. ``(512, 512)``."""

    def __init__(self, example=(512, 512), *, allow_empty=False):
        self.example, self.allow_empty = example, allow_empty

    def accepts(self, value) -> bool:
        return isinstance(value, (tuple, list)) and (self.allow_empty or len(value) > 0) \
            and all(_is_integer(width) and width >= 1 for width in value)

    def coerce(self, value):
        if isinstance(value, (tuple, list)):
            return tuple(Interval(int, 1).coerce(width) for width in value)
        return value

    def canonical(self, value):
        return tuple(int(width) for width in value)

    def describe(self) -> str:
        return f"a tuple of positive integers, e.g. {self.example}"


class RandomState(Constraint):
    """A seed: None, an integer in [0, 2**32), or a ``numpy.random.Generator``."""

    def accepts(self, value) -> bool:
        return value is None or isinstance(value, np.random.Generator) or (
            _is_integer(value) and 0 <= value < 2**32)

    def coerce(self, value):
        return Interval(int).coerce(value)

    def canonical(self, value):
        return int(value) if _is_integer(value) else value

    def describe(self) -> str:
        return "None, an integer in [0, 2**32) or a numpy.random.Generator"


class Device(Constraint):
    """A device name: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (a ``torch.device`` too)."""

    def accepts(self, value) -> bool:
        text = str(value) if isinstance(value, torch.device) else value
        if not isinstance(text, str):
            return False
        if text in ("auto", "cpu", "cuda"):
            return True
        return text.startswith("cuda:") and text[5:].isdigit()

    def canonical(self, value):
        return str(value)

    def describe(self) -> str:
        return "'auto', 'cpu', 'cuda' or 'cuda:N'"


class Satisfies(Constraint):
    """A value a function accepts (returns without raising); the function may return its canonical form.

    For parameters whose validity belongs to another module, such as an affinity specification:
    the function's own error message is kept (it names the problem in detail).
    """

    def __init__(self, function, description: str):
        self.function, self.description = function, description

    def accepts(self, value) -> bool:
        self.function(value)  # raises a CutbenchError with the detailed reason
        return True

    def canonical(self, value):
        result = self.function(value)
        return value if result is None else result

    def describe(self) -> str:
        return self.description


def _describe(constraints) -> str:
    texts = [constraint.describe() for constraint in constraints]
    return texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " or " + texts[-1]


def _first_accepting(owner: str, name: str, value, constraints):
    for constraint in constraints:
        try:
            if constraint.accepts(value):
                return constraint
        except CutbenchError as exc:
            if len(constraints) == 1:
                raise CutbenchError(f"{owner}: {name}: {exc}") from None
    raise CutbenchError(f"{owner}: {name} must be {_describe(constraints)}; got {value!r}.")


def validate_params(owner: str, constraints: Mapping[str, list], params: Mapping) -> None:
    """Refuse any parameter that no constraint of its declaration accepts.

    Parameters
    ----------
    owner : str
        Opens the message, e.g. the class name ``"NeuNcut"``.
    constraints : mapping of str to list of Constraint
        The declaration; a parameter without an entry is not checked.
    params : mapping
        Parameter values, e.g. ``estimator.get_params(deep=False)``.

    Raises
    ------
    CutbenchError
        ``"<owner>: <name> must be <what it accepts>; got <value>."``
    """
    for name, value in params.items():
        if name in constraints:
            _first_accepting(owner, name, value, constraints[name])


def canonical_params(owner: str, constraints: Mapping[str, list], params: Mapping) -> dict:
    """``params`` validated and written canonically (see the module docstring); a new dict.

    A value is first tried as written, then as each constraint would read it (``80.0`` as the
    integer 80), so equal values give equal output whatever their spelling.
    """
    out = {}
    for name, value in params.items():
        declared = constraints.get(name)
        if declared is None:
            out[name] = value
            continue
        for constraint in declared:
            coerced = constraint.coerce(value)
            try:
                if constraint.accepts(coerced):
                    out[name] = constraint.canonical(coerced)
                    break
            except CutbenchError:
                continue
        else:
            _first_accepting(owner, name, value, declared)  # raises with the full message
    return out


__all__ = ["Boolean", "Constraint", "Device", "Interval", "NoneValue", "Options", "RandomState", "Satisfies", "Text",
           "Widths", "canonical_params", "validate_params"]
