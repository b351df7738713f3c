"""Compare two result folders (e.g. one study run at two commits): what changed, beyond the noise.

Cells are matched by configuration (everything that decides a result except the seed and the data's
fingerprint); per configuration each metric and each stage time is summarised over its ok seeds on
both sides. The seeds' spread is the noise scale: a metric counts as changed only when its mean moves
by more than ``noise_factor`` times the larger of the two standard deviations (seeded cells repeat
exactly, so with a spread of 0 any move counts); a time counts as changed when it also moves by more
than ``time_threshold`` relative and by more than ``time_floor`` seconds (timings are noisy on shared
machines, and a few milliseconds are noise whatever their ratio). A configuration that was ok and now
has no ok seed is a regression of every metric; a quantity that neither side measures (the predict time
of a transductive method) is left out.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cutbench import CutbenchError
from cutbench.metrics import METRICS
from cutbench.reports.tables import configuration_labels, dataset_labels, format_mean_std, quantity_label

DEFAULT_TIMES = ("fit_s", "predict_s")
VERDICTS = ("regression", "improvement", "same", "new", "removed")


@dataclass(frozen=True)
class Side:
    """One of the compared folders: where it is, and the commit(s) its records were made at."""

    label: str
    commits: tuple[str, ...]
    dirty: bool

    def describe(self) -> str:
        commits = ", ".join(commit[:10] for commit in self.commits) or "unknown commit"
        return f"{self.label} (commit {commits}{', uncommitted changes' if self.dirty else ''})"


def side_of(frame: pd.DataFrame, label: str) -> Side:
    commits = tuple(sorted({str(c) for c in frame.get("git_commit", pd.Series(dtype=object)).dropna()}))
    return Side(label, commits, bool(frame.get("git_dirty", pd.Series(dtype=object)).fillna(False).astype(bool).any()))


def compare_frames(old: pd.DataFrame, new: pd.DataFrame, *, metrics: Sequence[str] = tuple(METRICS),
                   times: Sequence[str] = DEFAULT_TIMES, noise_factor: float = 2.0,
                   time_threshold: float = 0.25, time_floor: float = 0.01) -> pd.DataFrame:
    """One row per (configuration, quantity) with both sides' mean ± std, the change and a verdict.

    Parameters
    ----------
    old, new : pandas.DataFrame
        Records as ``ResultStore.to_frame()`` gives them (one row per configuration and seed).
    metrics, times : sequence of str
        Quantities compared; metrics are higher-is-better as declared in ``cutbench.metrics.METRICS``,
        times lower-is-better.
    noise_factor : float, default=2.0
        A change within this many seed standard deviations is ``same``.
    time_threshold : float, default=0.25
        A time must also change by more than this fraction to count.
    time_floor : float, default=0.01
        ... and by more than this many seconds.

    Returns
    -------
    pandas.DataFrame
        Columns ``dataset``, ``configuration``, ``quantity``, ``kind`` ("accuracy" or "time"),
        ``old_mean``, ``old_std``, ``old_n``, ``new_mean``, ``new_std``, ``new_n``, ``delta``,
        ``noise``, ``verdict`` (one of :data:`VERDICTS`).

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
    rows = []
    for group_key, cells in both.groupby("group_key", sort=False):
        first = cells.iloc[0]
        for quantity in [*metrics, *times]:
            kind = "accuracy" if quantity in METRICS else "time"
            sides = {}
            for side in ("old", "new"):
                present = cells[cells._side == side]
                ok = present[present.status == "ok"]
                sides[side] = (len(present), len(ok), pd.to_numeric(ok[quantity], errors="coerce").dropna())
            if all(n_ok and values.empty for _, n_ok, values in sides.values()):
                continue  # ok on both sides, measured on neither: not a quantity of this configuration
            rows.append({"dataset": first.dataset, "configuration": first.configuration, "quantity": quantity,
                         "kind": kind, **_change(sides, kind, noise_factor, time_threshold, time_floor)})
    return pd.DataFrame(rows)


def _stats(values: pd.Series) -> tuple[float, float]:
    if values.empty:
        return math.nan, math.nan
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _change(sides, kind: str, noise_factor: float, time_threshold: float, time_floor: float) -> dict:
    (n_old, ok_old, old), (n_new, ok_new, new) = sides["old"], sides["new"]
    old_mean, old_std = _stats(old)
    new_mean, new_std = _stats(new)
    noise = max(np.nan_to_num(old_std), np.nan_to_num(new_std))
    out = {"old_mean": old_mean, "old_std": old_std, "old_n": len(old), "new_mean": new_mean, "new_std": new_std,
           "new_n": len(new), "delta": new_mean - old_mean, "noise": noise}
    if n_old == 0:
        return {**out, "verdict": "new"}
    if n_new == 0:
        return {**out, "verdict": "removed"}
    if not ok_old and not ok_new:
        return {**out, "verdict": "same"}  # failed before and after
    if not ok_old or not ok_new:  # ok on one side only: a cell that now fails is worse in every respect
        return {**out, "verdict": "regression" if not ok_new else "improvement"}
    if old.empty or new.empty:  # measured on one side only (a stage added or removed)
        return {**out, "verdict": "removed" if new.empty else "new"}
    beyond_noise = abs(new_mean - old_mean) > noise_factor * noise + 1e-12
    if kind == "accuracy":
        if not beyond_noise:
            return {**out, "verdict": "same"}
        return {**out, "verdict": "regression" if new_mean < old_mean else "improvement"}
    beyond_noise = beyond_noise and abs(new_mean - old_mean) > time_floor
    ratio = new_mean / old_mean if old_mean > 0 else math.inf
    if beyond_noise and ratio > 1 + time_threshold:
        return {**out, "verdict": "regression"}
    if beyond_noise and ratio < 1 / (1 + time_threshold):
        return {**out, "verdict": "improvement"}
    return {**out, "verdict": "same"}


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
             _value(row.new_mean, row.new_std, row.new_n, row.kind == "time"), _delta(row), row.verdict]
            for row in table.itertuples()]


HEADER = ("dataset", "configuration", "quantity", "old", "new", "Δ", "verdict")


def to_markdown(table: pd.DataFrame, old: Side, new: Side) -> str:
    """The comparison as Markdown: who is compared, the regressions first, then every other row."""
    order = table.assign(_first=(table.verdict != "regression")).sort_values("_first", kind="stable")
    lines = [f"Comparing {old.describe()} with {new.describe()}.", "",
             "| " + " | ".join(HEADER) + " |", "| " + " | ".join([":---"] * 3 + ["---:"] * 3 + [":---"]) + " |"]
    for cells in table_cells(order):
        if cells[-1] == "regression":
            cells[-1] = "**regression**"
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


__all__ = ["DEFAULT_TIMES", "Side", "VERDICTS", "compare_frames", "flagged", "side_of", "to_html_table",
           "to_markdown"]
