"""Label-free criteria the papers give for choosing a setting: NeuNcut's gamma rule (§4.6).

They read training curves only, never labels, so both a method (``search_gamma``) and the paper job's claim
checks (Fig. 4's floor, the chosen gamma) apply the same rule.
"""

from __future__ import annotations

FLOOR_TOLERANCE = 0.02
"""Relative tolerance on the L_orth floor of NeuNcut's gamma rule (the search's default)."""


def on_floor(orthogonality: float, floor: float, tolerance: float) -> bool:
    """Whether an ``L_orth`` value keeps the floor: ``L_orth <= floor * (1 + tolerance) + 1e-6``."""
    return orthogonality <= floor * (1 + tolerance) + 1e-6


def choose_gamma(gammas, orthogonality, tolerance: float = FLOOR_TOLERANCE) -> tuple[float, float]:
    """The rule of :func:`cutbench.methods.neuncut.search_gamma` on measured losses: ``(floor, chosen gamma)``.

    ``gammas`` and ``orthogonality`` (the lowest ``L_orth`` reached with each) are in the same order;
    the floor is ``L_orth`` at the largest gamma, and the chosen gamma the smallest one reached by
    scanning down from the largest while ``L_orth <= floor * (1 + tolerance) + 1e-6``.
    """
    order = sorted(range(len(gammas)), key=lambda i: -float(gammas[i]))
    floor = float(orthogonality[order[0]])
    chosen = float(gammas[order[0]])
    for i in order:
        if not on_floor(orthogonality[i], floor, tolerance):
            break
        chosen = float(gammas[i])
    return floor, chosen


__all__ = ["FLOOR_TOLERANCE", "choose_gamma", "on_floor"]
