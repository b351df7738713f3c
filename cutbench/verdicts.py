"""The paper job's verdict vocabulary and the row it fills: a published quantity beside ours, and its verdict.

:mod:`cutbench.paper_rows` fills rows from a target's published table, :mod:`cutbench.paper_claims` from its
figure claims; :mod:`cutbench.reports.paper` renders them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cutbench import stats
from cutbench.metrics import metric_direction

VERDICTS = ("reproduced", "below", "above", "differs", "inconclusive", "ci: as reference", "ci: changed",
            "ci: no reference", "not run", "out of scope", "failed", "timed")
"""Row verdict words, in the order summaries count them."""


PAPER_VERDICTS = ("reproduced", "below", "above", "differs", "inconclusive", "not run", "out of scope", "failed",
                  "timed")


CI_VERDICTS = ("ci: as reference", "ci: changed", "ci: no reference", "not run", "out of scope", "failed", "timed")


MIN_CLAIM_SEEDS = 3
"""A figure's claim about a chosen setting (Fig. 4's gamma, Fig. 5's iterations) is judged over at least this
many seeds; with fewer it is ``inconclusive``."""


def higher_is_better(path: str) -> bool:
    """The direction of a record quantity: metrics as they declare it (the cut values lower), times lower."""
    name = path.split(".")[-1]
    if path.startswith("timings."):
        return False
    direction = metric_direction(name)
    return True if direction is None else direction


@dataclass
class Quantity:
    """One published quantity of a row and ours: per-seed values, their estimate, and its verdict."""

    published: float | None
    values: dict = field(default_factory=dict)  # seed -> our value
    text: str | None = None  # a claim that is not a number (e.g. "512x512")
    published_text: str | None = None
    name: str = ""  # the record quantity, e.g. "acc", "ncut_value"
    higher: bool = True
    seconds: bool = False  # a time
    verdict: str = ""  # reproduced / below / above / inconclusive / n/a, or "" when not judged

    @property
    def estimate(self) -> stats.Estimate:
        return stats.estimate(self.values.values())

    @property
    def mean(self) -> float:
        return self.estimate.mean

    @property
    def std(self) -> float:
        return self.estimate.std

    @property
    def n(self) -> int:
        return self.estimate.n

    @property
    def delta(self) -> float:
        return self.mean - self.published if self.published is not None and math.isfinite(self.mean) else math.nan

    def worse(self) -> bool:
        """Whether this quantity's verdict says ours is worse than published (by its direction)."""
        return (self.verdict == "below") == self.higher if self.verdict in ("below", "above") else False


@dataclass
class Row:
    """One published row (or claim) and what this folder measured for it."""

    key: dict
    quantities: dict
    verdict: str
    detail: str = ""
    n_ok: int = 0
    n_cells: int = 0
    seeds: list = field(default_factory=list)
    cells: frozenset = frozenset()  # the experiment keys of its cells: one experiment, whatever row shows it

    @property
    def verdict_word(self) -> str:
        return verdict_word(self.verdict)

    @property
    def worse(self) -> bool:
        return any(q.worse() for q in self.quantities.values())


def verdict_word(verdict: str) -> str:
    """The summary category of a verdict text: ``"below (ARI)"`` -> ``"below"``, ``"ci: changed from ..."`` ->
    ``"ci: changed"``, ``"not run: ..."`` -> ``"not run"``."""
    if verdict.startswith("ci: "):
        return next((word for word in CI_VERDICTS if verdict.startswith(word)), verdict)
    return verdict.split(":")[0].split(" (")[0]


def record_value(record: dict, path: str) -> float:
    """A number in a record by dotted path (``metrics.acc``, ``timings.fit.seconds``); NaN if absent."""
    value = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return math.nan
        value = value[part]
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def parse_number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if text else ""


def failure_text(record: dict) -> str:
    """``failed: ERROR`` (``failed: timeout: ...`` for a cell that ran out of time)."""
    status = "" if record["status"] == "failed" else f"{record['status']}: "
    return f"failed: {status}{first_line(record.get('error'))}"


def combine(verdicts: list[tuple[str, str]], n_seeds: int) -> str:
    """A row's verdict from its quantities' verdicts, naming those that are not ``reproduced``."""
    off = [(name, v) for name, v in verdicts if v in ("below", "above")]
    unsure = [name for name, v in verdicts if v == "inconclusive"]
    unsure_text = f"; inconclusive: {', '.join(unsure)}" if unsure and off else ""
    if off:
        kinds = {v for _, v in off}
        if len(kinds) == 1:
            return f"{kinds.pop()} ({', '.join(name for name, _ in off)}{unsure_text})"
        return f"differs ({'; '.join(f'{name} {v}' for name, v in off)}{unsure_text})"
    if unsure:
        return f"inconclusive ({n_seeds} seed{'s' if n_seeds != 1 else ''}: {', '.join(unsure)})"
    return "reproduced"


def scale_gate(scale: str, verdict: str) -> str:
    """At ci scale a claim is measured and shown, never judged against the paper."""
    return f"ci: not comparable (would read: {verdict})" if scale == "ci" else verdict


__all__ = ["CI_VERDICTS", "MIN_CLAIM_SEEDS", "PAPER_VERDICTS", "VERDICTS", "Quantity", "Row", "combine", "failure_text",
           "first_line", "higher_is_better", "parse_number", "record_value", "scale_gate", "verdict_word"]
