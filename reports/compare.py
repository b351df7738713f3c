"""Compare two result folders (e.g. one study run at two commits): what changed, beyond the noise.

Cells are matched by configuration (everything that decides a result except the seed and the data's
fingerprint); per configuration each metric and each stage time is compared over its ok seeds by
:func:`cutbench.stats.judge_change`: seeds both sides share are paired (paired t test, Wilcoxon from
:data:`cutbench.stats.WILCOXON_MIN_PAIRS` seeds), otherwise the sides are compared as independent samples
(Welch); a quantity changed when the test is significant at :data:`cutbench.stats.ALPHA` *and* the change
is larger than a stated minimum effect (:data:`cutbench.stats.SCORE_MIN_EFFECT` for a score; for a time,
:data:`cutbench.stats.TIME_MIN_RATIO` relative and :data:`cutbench.stats.TIME_MIN_SECONDS`). With one seed per
side the noise cannot be judged: the minimum effect alone decides, and the row says so. A configuration
that was ok and now has no ok seed is a regression of every metric; a quantity that neither side measures
(the predict time of a transductive method) is left out.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from cutbench import CutbenchError, stats
from cutbench.metrics import is_metric
from cutbench.reports.tables import (
    configuration_labels,
    dataset_labels,
    format_mean_std,
    higher_is_better,
    quantity_label,
)

DEFAULT_TIMES = ("fit_s", "predict_s")
VERDICTS = ("regression", "improvement", "same", "new", "removed")


@dataclass(frozen=True)
class Side:
    """One of the compared folders: where it is, the commit(s) its records were made at, on which CPU(s),
    and its seeds."""

    label: str
    commits: tuple[str, ...]
    dirty: bool
    cpus: tuple[str, ...] = ()
    seeds: tuple = ()

    def describe(self) -> str:
        commits = ", ".join(commit[:10] for commit in self.commits) or "unknown"
        cpus = f"; CPU {' / '.join(self.cpus)}" if self.cpus else ""
        seeds = f"; seeds {', '.join(map(str, self.seeds))}" if self.seeds else ""
        return f"{self.label} (commit {commits}{', uncommitted changes' if self.dirty else ''}{cpus}{seeds})"


def side_of(frame: pd.DataFrame, label: str) -> Side:
    def values(column):
        return tuple(sorted({str(v) for v in frame.get(column, pd.Series(dtype=object)).dropna()}))

    seeds = tuple(sorted({int(s) for s in frame.get("seed", pd.Series(dtype=object)).dropna()}))
    return Side(label, values("git_commit"),
                bool(frame.get("git_dirty", pd.Series(dtype=object)).fillna(False).astype(bool).any()),
                values("cpu"), seeds)


def seed_note(old: Side, new: Side) -> str | None:
    """What a comparison of sides with different seed sets does, or None when the seeds agree."""
    if set(old.seeds) == set(new.seeds):
        return None
    shared = sorted(set(old.seeds) & set(new.seeds))
    how = (f"configurations are compared on the {len(shared)} shared seed(s) {', '.join(map(str, shared))}, paired"
           if len(shared) >= 2 else "fewer than 2 seeds are shared, so the sides are compared as independent "
                                    "samples (Welch's t test)")
    return (f"the sides ran different seeds (old: {', '.join(map(str, old.seeds))}; new: "
            f"{', '.join(map(str, new.seeds))}): {how}.")


def compare_frames(old: pd.DataFrame, new: pd.DataFrame, *, metrics: Sequence[str] | None = None,
                   times: Sequence[str] = DEFAULT_TIMES, alpha: float = stats.ALPHA,
                   min_effect: float = stats.SCORE_MIN_EFFECT, time_threshold: float = stats.TIME_MIN_RATIO,
                   time_floor: float = stats.TIME_MIN_SECONDS) -> pd.DataFrame:
    """One row per (configuration, quantity) with both sides' mean ± std, the change, its test and a verdict.

    Parameters
    ----------
    old, new : pandas.DataFrame
        Records as ``ResultStore.to_frame()`` gives them (one row per configuration and seed).
    metrics, times : sequence of str
        Quantities compared, in the direction each metric declares (times: lower is better); by default every
        metric the two sides record, the Ncut and Rcut values and plugin metrics included.
    alpha : float, default :data:`cutbench.stats.ALPHA`
        Level of the test.
    min_effect : float, default :data:`cutbench.stats.SCORE_MIN_EFFECT`
        A metric must also move by more than this (the tolerance alone when one seed per side allows no test).
    time_threshold : float, default :data:`cutbench.stats.TIME_MIN_RATIO`
        A time must also change by more than this fraction ...
    time_floor : float, default :data:`cutbench.stats.TIME_MIN_SECONDS`
        ... and by more than this many seconds.

    Returns
    -------
    pandas.DataFrame
        Columns ``dataset``, ``configuration``, ``quantity``, ``kind`` ("accuracy" or "time"),
        ``old_mean``, ``old_std``, ``old_n``, ``new_mean``, ``new_std``, ``new_n``, ``delta`` (the tested
        change: the mean paired difference on shared seeds), ``p_value``, ``test`` (the test and effect size,
        or the tolerance rule), ``verdict`` (one of :data:`VERDICTS`).

    Raises
    ------
    CutbenchError
        When either side has no records, or they share no configuration.
    """
    for frame, name in ((old, "old"), (new, "new")):
        if frame.empty:
            raise CutbenchError(f"the {name} folder holds no records: nothing to compare; run the study there first.")
    both = pd.concat([old.assign(_side="old"), new.assign(_side="new")], ignore_index=True)
    both["configuration"] = configuration_labels(both)
    both["dataset"] = dataset_labels(both)
    common = set(old["group_key"]) & set(new["group_key"])
    if not common:
        raise CutbenchError("the two folders share no configuration (dataset, features, method, parameters, protocol "
                            "and device): compare runs of the same study.")
    if metrics is None:
        metrics = [column for column in both.columns if is_metric(column)]
    rows = []
    for _, cells in both.groupby("group_key", sort=False):
        first = cells.iloc[0]
        for quantity in [*metrics, *times]:
            kind = "accuracy" if is_metric(quantity) else "time"
            sides = {}
            for side in ("old", "new"):
                present = cells[cells._side == side]
                ok = present[present.status == "ok"]
                values = pd.to_numeric(ok[quantity], errors="coerce")
                sides[side] = (len(present), len(ok), dict(zip(ok.seed, values, strict=True)))
            if all(n_ok and not any(map(math.isfinite, values.values())) for _, n_ok, values in sides.values()):
                continue  # ok on both sides, measured on neither: not a quantity of this configuration
            row = {"dataset": first.dataset, "configuration": first.configuration, "quantity": quantity,
                   "kind": kind, **_change(sides, quantity, kind, alpha, min_effect, time_threshold, time_floor)}
            unconverged = _unconverged(cells)
            if unconverged:
                row["test"] = f"{row['test']}; {unconverged}" if row["test"] else unconverged
            rows.append(row)
    return pd.DataFrame(rows)


def _unconverged(cells: pd.DataFrame) -> str:
    """``"not converged: old 0/3, new 2/3"`` when a side has ok network cells that stopped before their objective
    converged (cutbench.convergence), else ``""``: such a change may be the budget's, not the code's."""
    if "converged" not in cells:
        return ""
    counts = {}
    for side in ("old", "new"):
        ok = cells[(cells._side == side) & (cells.status == "ok")]
        counts[side] = (int((ok["converged"] == False).sum()), len(ok))  # noqa: E712
    if not any(bad for bad, _ in counts.values()):
        return ""
    return "not converged: " + ", ".join(f"{side} {bad}/{n}" for side, (bad, n) in counts.items())


def _change(sides, quantity: str, kind: str, alpha: float, min_effect: float, time_threshold: float,
            time_floor: float) -> dict:
    (n_old, ok_old, old), (n_new, ok_new, new) = sides["old"], sides["new"]
    old_estimate, new_estimate = stats.estimate(old.values()), stats.estimate(new.values())
    out = {"old_mean": old_estimate.mean, "old_std": old_estimate.std, "old_n": old_estimate.n,
           "new_mean": new_estimate.mean, "new_std": new_estimate.std, "new_n": new_estimate.n,
           "delta": new_estimate.mean - old_estimate.mean, "p_value": math.nan, "test": ""}
    if n_old == 0:
        return {**out, "verdict": "new"}
    if n_new == 0:
        return {**out, "verdict": "removed"}
    if not ok_old and not ok_new:
        return {**out, "verdict": "same"}  # failed before and after
    if not ok_old or not ok_new:  # ok on one side only: a cell that now fails is worse in every respect
        return {**out, "verdict": "regression" if not ok_new else "improvement", "test": "ok on one side only"}
    if not old_estimate.n or not new_estimate.n:  # measured on one side only (a stage added or removed)
        return {**out, "verdict": "removed" if not new_estimate.n else "new"}
    change = stats.judge_change(old, new, higher_is_better=bool(higher_is_better(quantity)), seconds=kind == "time",
                                alpha=alpha, min_effect=min_effect, min_ratio=time_threshold, min_seconds=time_floor)
    tested = change.comparison
    detail = tested.text() if tested.judged else f"{tested.note}: tolerance only"
    return {**out, "delta": tested.difference, "p_value": tested.p_value, "test": detail, "verdict": change.verdict}


def rule_text(alpha: float = stats.ALPHA, min_effect: float = stats.SCORE_MIN_EFFECT,
              time_threshold: float = stats.TIME_MIN_RATIO, time_floor: float = stats.TIME_MIN_SECONDS) -> str:
    """How a comparison decides, in one sentence (printed above its table)."""
    return (f"A metric changed when the test over seeds is significant (p < {alpha:g}; paired on shared seeds) and "
            f"it moved by more than {min_effect:g}; a time when the test is significant and it moved by more than "
            f"{time_threshold:.0%} and {time_floor:g} s. With one seed per side the noise cannot be judged: the "
            "minimum change alone decides (\"tolerance only\").")


def flagged(table: pd.DataFrame, kinds: Sequence[str]) -> pd.DataFrame:
    """The regressions of the given kinds ("accuracy", "time")."""
    return table[(table.verdict == "regression") & table.kind.isin(list(kinds))]


def _value(mean: float, std: float, n: int, seconds: bool) -> str:
    if n == 0 or not math.isfinite(mean):
        return "–"
    return format_mean_std(mean, std if n > 1 else math.nan, seconds=seconds)


def _delta(row) -> str:
    if not math.isfinite(row.delta):
        return "–"
    if row.kind == "time":
        return f"{row.delta:+.3g} s ({row.new_mean / row.old_mean:.2f}×)" if row.old_mean > 0 else f"{row.delta:+.3g} s"
    return f"{row.delta:+.3f}"


def table_cells(table: pd.DataFrame) -> list[list[str]]:
    """The comparison as rows of display text: dataset, configuration, quantity, old, new, Δ, verdict."""
    return [[row.dataset, row.configuration, quantity_label(row.quantity),
             _value(row.old_mean, row.old_std, row.old_n, row.kind == "time"),
             _value(row.new_mean, row.new_std, row.new_n, row.kind == "time"), _delta(row), row.verdict, row.test]
            for row in table.itertuples()]


HEADER = ("dataset", "configuration", "quantity", "old", "new", "Δ", "verdict", "how judged")


def to_markdown(table: pd.DataFrame, old: Side, new: Side, rule: str | None = None) -> str:
    """The comparison as Markdown: who is compared (commits, CPUs, seeds), how it decides (``rule``, default
    :func:`rule_text`), the regressions first, then every other row."""
    order = table.assign(_first=(table.verdict != "regression")).sort_values("_first", kind="stable")
    note = seed_note(old, new)
    lines = [f"Comparing {old.describe()} with {new.describe()}.", *([f"Note: {note}"] if note else []), "",
             rule or rule_text(), "",
             "| " + " | ".join(HEADER) + " |", "| " + " | ".join([":---"] * 3 + ["---:"] * 3 + [":---"] * 2) + " |"]
    for cells in table_cells(order):
        if cells[-2] == "regression":
            cells[-2] = "**regression**"
        lines.append("| " + " | ".join(c.replace("|", r"\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def to_html_table(table: pd.DataFrame) -> str:
    """The comparison as an HTML table (regressions first, rows classed by verdict for styling)."""
    order = table.assign(_first=(table.verdict != "regression")).sort_values("_first", kind="stable")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADER)
    body = []
    for cells, verdict in zip(table_cells(order), order.verdict):
        tds = "".join(f'<td class="{"num" if i in (3, 4, 5) else "text"}">{html.escape(c)}</td>'
                      for i, c in enumerate(cells))
        body.append(f'<tr class="{verdict}">{tds}</tr>')
    return f'<table class="comparison"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


__all__ = [
    "DEFAULT_TIMES",
    "VERDICTS",
    "Side",
    "compare_frames",
    "flagged",
    "rule_text",
    "seed_note",
    "side_of",
    "to_html_table",
    "to_markdown",
]
