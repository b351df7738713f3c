"""Whether a network stopped training before its objective converged: one stated rule, label-free.

The rule reads the objective's per-epoch curve (a record's ``history``, first term) and looks at the last
fifth of the epochs (at least :data:`MIN_WINDOW`):

* ``converged``: over that window the objective moves by at most :data:`TOLERANCE` (5 %) of the whole
  curve's range (a flat curve has range 0 and is converged);
* otherwise ``still falling`` when the window's net change is a fall of at least half its spread,
  ``rising`` when it is such a rise, and ``oscillating`` when it goes up and down without a net trend.

A curve of fewer than :data:`MIN_EPOCHS` epochs is ``too short to judge``. Only labels-free quantities
are read: nothing here selects on ACC.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

TOLERANCE = 0.05
"""The largest movement over the last fifth, as a share of the curve's range, that counts as converged."""
WINDOW_FRACTION = 0.2
MIN_WINDOW = 3
MIN_EPOCHS = 5
VERDICTS = ("converged", "still falling", "rising", "oscillating", "too short to judge")
RULE = (f"converged when the objective moves by at most {TOLERANCE:.0%} of its whole range over the last "
        f"{WINDOW_FRACTION:.0%} of the epochs (at least {MIN_WINDOW}); else still falling, rising or oscillating "
        f"by its net change; fewer than {MIN_EPOCHS} epochs: too short to judge")
"""The rule in words, for legends and notes."""


@dataclass(frozen=True)
class Convergence:
    """A curve's verdict and the numbers behind it (``movement`` and ``net`` as shares of the range)."""

    verdict: str
    epochs: int
    window: int
    movement: float | None
    net: float | None

    @property
    def converged(self) -> bool | None:
        return None if self.verdict == "too short to judge" else self.verdict == "converged"

    def to_dict(self) -> dict:
        return {**asdict(self), "converged": self.converged, "rule": RULE}


def judge(curve) -> Convergence:
    """The verdict of :data:`RULE` on ``curve``, the objective per epoch (lower is better)."""
    values = np.asarray([float(v) for v in curve], dtype=np.float64)
    values = values[np.isfinite(values)]
    epochs = len(values)
    window = max(MIN_WINDOW, math.ceil(WINDOW_FRACTION * epochs))
    if epochs < MIN_EPOCHS:
        return Convergence("too short to judge", epochs, min(window, epochs), None, None)
    total = float(values.max() - values.min())
    tail = values[-window:]
    if total == 0.0:
        return Convergence("converged", epochs, window, 0.0, 0.0)
    movement = float(tail.max() - tail.min()) / total
    net = float(tail[-1] - tail[0]) / total
    if movement <= TOLERANCE:
        verdict = "converged"
    elif net <= -movement / 2:
        verdict = "still falling"
    elif net >= movement / 2:
        verdict = "rising"
    else:
        verdict = "oscillating"
    return Convergence(verdict, epochs, window, movement, net)


def record_convergence(history: dict | None) -> dict | None:
    """The verdict of a record's training history (its first curve, the objective); None without one."""
    if not history:
        return None
    name = next((key for key in history if key != "lr"), None)
    if name is None or not history[name]:
        return None
    return {"curve": name, **judge(history[name]).to_dict()}


__all__ = ["MIN_EPOCHS", "MIN_WINDOW", "RULE", "TOLERANCE", "VERDICTS", "WINDOW_FRACTION", "Convergence", "judge",
           "record_convergence"]
