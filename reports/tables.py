"""Summary tables: mean ± std over ok cells, rendered as Markdown, LaTeX (booktabs), HTML or CSV.

:func:`summarize` turns the records (one row per cell) into one row per group. The renderers take that
summary. Failed, timed-out and skipped cells never enter a mean: they are counted in the ``ok`` column
("2/3"), and a group with no ok cell shows its status ("failed", "timeout", ...) instead of numbers.

Number format, applied by :func:`format_mean_std` in every rendered format:

- metrics: 3 decimals, e.g. ``0.982 ± 0.004``;
- seconds (quantities whose name ends in ``_s``): 3 significant digits of the mean, never scientific
  notation, and the std with the same number of decimals, e.g. ``12.3 ± 0.4``, ``0.0123 ± 0.0008``,
  ``1234 ± 56``. Times span milliseconds to hours, so a fixed number of decimals would either hide
  short times or print noise digits for long ones.

With a single ok seed the std is undefined and only the mean is shown.

Bold marks the best mean *and every configuration not significantly worse than it* on the same dataset
(:func:`cutbench.stats.mark_best`: paired tests over shared seeds against the best, Holm-corrected, at
:data:`cutbench.stats.ALPHA`), per quantity and in its direction (a time is best when lowest). A mean that
is best only within the seeds' noise is therefore not singled out. When significance cannot be judged
(a configuration with one ok seed), nothing is bold and the summary's ``attrs["notes"]`` says why.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cutbench import CutbenchError, stats
from cutbench.affinity import affinity_label
from cutbench.metrics import METRICS, is_metric, metric_direction, metric_label
from cutbench.store import STATUSES

TABLE_STATUSES = (*STATUSES, "missing")
"""Statuses a table row may have: a record's, or ``missing`` for a planned cell never stored (an
interrupted study), so a configuration's count reads e.g. 1/3, not 1/1."""

DEFAULT_METRICS = ("acc", "nmi", "ari")
"""The metrics a summary table shows unless told otherwise (every one in :data:`cutbench.metrics.METRICS` is recorded)."""
TABLE_CUT = "ncut_value"
"""The cut value a study's table shows beside the default metrics, for the cells that recorded it."""
DEFAULT_TIMES = ("fit_s",)
LAYOUTS = ("long", "wide")

_COUNT_COLUMNS = ("n_ok", "n_total", "status")


def is_seconds(quantity: str) -> bool:
    """Whether ``quantity`` is a duration in seconds (by the ``_s`` suffix convention of the records)."""
    return quantity.endswith("_s")


def higher_is_better(quantity: str, directions: Mapping[str, bool] | None = None) -> bool | None:
    """Direction of a quantity for "best" highlighting.

    Parameters
    ----------
    quantity : str
        Column name, e.g. ``"acc"`` or ``"fit_s"``.
    directions : mapping of str to bool, optional
        Overrides and additions (quantity -> True when higher is better).

    Returns
    -------
    bool or None
        The declared direction of a metric (:data:`cutbench.metrics.METRICS`), False for times
        (``*_s``), None when unknown (never highlighted).
    """
    if directions is not None and quantity in directions:
        return bool(directions[quantity])
    if is_metric(quantity):
        return metric_direction(quantity)
    if is_seconds(quantity):
        return False
    return None


def quantity_label(quantity: str) -> str:
    """Column header for a quantity: a metric's declared label (``"acc" -> "ACC"``), ``"fit_s" -> "fit [s]"``,
    others unchanged."""
    if is_metric(quantity):
        return metric_label(quantity)
    if is_seconds(quantity):
        return f"{quantity[:-2]} [s]"
    return quantity


def _decimals(mean: float, seconds: bool) -> int:
    if not seconds:
        return 3
    if mean == 0:
        return 2
    return max(0, 2 - math.floor(math.log10(abs(mean))))


def _fixed(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    # "-0.000" (e.g. an ARI of -1e-5) reads as a sign error; the rounded value is zero.
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def format_mean_std(
    mean: float, std: float = math.nan, *, seconds: bool = False, plus_minus: str = " ± "
) -> str:
    """Format a mean and its standard deviation as ``"0.982 ± 0.004"``.

    Parameters
    ----------
    mean : float
        NaN gives ``"n/a"``.
    std : float, default NaN
        NaN (e.g. a single ok seed) drops the ``± std`` part.
    seconds : bool, default False
        Use the rule for durations (3 significant digits) instead of 3 decimals; see the module docstring.
    plus_minus : str, default " ± "
        Separator; LaTeX output passes ``" $\\pm$ "``.

    Returns
    -------
    str
    """
    if not math.isfinite(mean):
        return "n/a"
    decimals = _decimals(mean, seconds)
    text = _fixed(mean, decimals)
    if math.isfinite(std):
        text += plus_minus + _fixed(std, decimals)
    return text


# ---------------------------------------------------------------------------------------------- summary


def _check_records(df: pd.DataFrame, by: list[str], quantities: list[str]) -> None:
    if not isinstance(df, pd.DataFrame):
        raise CutbenchError(
            f"records must be a pandas DataFrame (ResultStore.to_frame()); got {type(df).__name__}."
        )
    if df.empty:
        raise CutbenchError("records are empty: nothing to summarise; run a study or loosen the filter.")
    if not by:
        raise CutbenchError("by must name at least one column, e.g. by=('dataset', 'method').")
    if not quantities:
        raise CutbenchError("nothing to summarise: pass at least one column in metrics or times.")
    if len(set(quantities)) != len(quantities) or set(quantities) & set(by):
        raise CutbenchError(
            f"metrics + times {quantities} and by {by} must be distinct column names without repeats."
        )
    missing = [c for c in [*by, "status", *quantities] if c not in df.columns]
    if missing:
        raise CutbenchError(f"records lack column(s) {missing}; available columns: {sorted(map(str, df.columns))}.")
    unknown = [s for s in pd.unique(df["status"]) if s not in TABLE_STATUSES]
    if unknown:
        raise CutbenchError(f"unknown status value(s) {unknown}; accepted: {list(TABLE_STATUSES)}.")


def _level_order(df: pd.DataFrame, key: str, order: Mapping[str, Sequence] | None) -> list:
    present = pd.unique(df[key].dropna())
    if order is None or key not in order:
        return list(present)
    given = list(order[key])
    if len(set(given)) != len(given):
        raise CutbenchError(f"order[{key!r}] has repeated values: {given}; list each value once.")
    missing = [v for v in present if v not in given]
    if missing:
        raise CutbenchError(
            f"order[{key!r}] lacks {missing}, found in the records; list every value of {key!r} "
            f"(or filter the records first). Values present: {list(present)}."
        )
    present_set = set(present)
    return [v for v in given if v in present_set]


def _dominant_status(statuses: pd.Series) -> str:
    if statuses.eq("ok").any():
        return "ok"
    counts = statuses.value_counts()
    # Ties go to the earlier entry of TABLE_STATUSES, so the choice never depends on row order.
    return max(TABLE_STATUSES[1:], key=lambda s: (counts.get(s, 0), -TABLE_STATUSES.index(s)))


CONFIGURATION_COLUMNS = ("features", "train_size", "device", "nmi_average_method")
"""Record columns that, like the ``features.*`` and ``param.*`` columns, set a method's configuration."""


def _setting_text(column: str, value) -> str:
    name = column.split(".", 1)[1] if column.startswith(("param.", "features.", "dataset.")) else column
    if name == "affinity" and isinstance(value, str) and value.startswith("{"):
        spec = json.loads(value)  # param.* columns hold dicts as canonical JSON
        return affinity_label(spec)
    return f"{name}={value}"


def configuration_labels(df: pd.DataFrame) -> pd.Series:
    """The method name of each record, followed by the settings that tell its configurations apart.

    Records of one method that differ in a parameter, the features, the training size, the device or
    the NMI convention are different configurations: averaging them together would mix results. For
    each method the columns (``param.*``, ``features.*`` and :data:`CONFIGURATION_COLUMNS`) with more
    than one value among its records are named, e.g. ``neuncut (s=10)`` and
    ``neuncut (affinity=siamese)``; a method with one configuration keeps its bare name.

    Parameters
    ----------
    df : pandas.DataFrame
        Records, one row per cell (``ResultStore.to_frame()``), with a ``method`` column.

    Returns
    -------
    pandas.Series of str
        Aligned with ``df``; pass it as ``df.assign(method=configuration_labels(df))`` to summarise
        per configuration.
    """
    candidates = [c for c in df.columns if c.startswith(("param.", "features.")) or c in CONFIGURATION_COLUMNS]
    return _labels(df, "method", candidates)


def dataset_labels(df: pd.DataFrame) -> pd.Series:
    """The dataset name of each record, followed by the dataset parameters that tell its variants apart.

    A dataset swept over a parameter (e.g. ``n`` in a scaling study) gives ``double_rings (n=1000)`` and
    so on, so its variants are never averaged together; a dataset used with one setting keeps its name.
    """
    return _labels(df, "dataset", [c for c in df.columns if c.startswith("dataset.")])


def _labels(df: pd.DataFrame, key: str, candidates: list[str]) -> pd.Series:
    labels = df[key].astype(str).copy()
    for name, rows in df.groupby(key, sort=False):
        varying = [c for c in candidates if _texts(rows[c]).nunique() > 1]
        for index, row in rows[varying].iterrows():
            settings = [_setting_text(c, v) for c, v in row.items() if not pd.isna(v)]
            if settings:
                labels[index] = f"{name} ({', '.join(settings)})"
        # Short texts can coincide (two affinities with s=10 that differ in their kNN search; a setting
        # left unset beside one set): such configurations get every differing field spelled out.
        for label, same in rows.groupby(labels[rows.index], sort=False) if varying else ():
            if len(same[varying].apply(_texts).drop_duplicates()) > 1:
                for index in same.index:
                    labels[index] = f"{label} [{_difference_text(same, varying, index)}]"
    return labels


def _texts(values: pd.Series) -> pd.Series:
    """Values as text, a missing one as "-" (``astype(str)`` would make it NA with pandas' string dtype, and
    ``nunique`` would not count it)."""
    return values.map(lambda value: "-" if pd.isna(value) else str(value))


def _difference_text(rows: pd.DataFrame, columns: list[str], index) -> str:
    """``field=value`` for each field in which ``rows`` differ, as row ``index`` has it (``-`` for unset)."""
    parts = []
    for column in columns:
        if _texts(rows[column]).nunique() < 2:
            continue
        value = rows.at[index, column]
        if isinstance(value, str) and value.startswith("{"):
            specs = [json.loads(v) if isinstance(v, str) and v.startswith("{") else {} for v in rows[column]]
            mine = json.loads(value)
            for field in sorted(set().union(*specs)):
                if len({json.dumps(spec.get(field)) for spec in specs}) > 1:
                    parts.append(f"{field}={mine.get(field, '-')}")
        else:
            name = column.split(".", 1)[1] if column.startswith(("param.", "features.", "dataset.")) else column
            parts.append(f"{name}={'-' if pd.isna(value) else value}")
    return ", ".join(parts)


def shown_metrics(df: pd.DataFrame) -> tuple[str, ...]:
    """The metrics a study's table shows: :data:`DEFAULT_METRICS`, the Ncut value and every plugin metric
    the records hold a value of (all built-ins stay in results.csv)."""
    recorded = [column for column in df.columns if is_metric(column) and df[column].notna().any()]
    extra = [name for name in recorded if name == TABLE_CUT or name not in METRICS]
    return (*DEFAULT_METRICS, *extra)


def summarize(
    df: pd.DataFrame,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    times: Sequence[str] = DEFAULT_TIMES,
    by: Sequence[str] = ("dataset", "method"),
    order: Mapping[str, Sequence] | None = None,
    best_among: str | None = None,
    directions: Mapping[str, bool] | None = None,
) -> pd.DataFrame:
    """Mean and std (ddof=1) of each metric and time per group, over ok cells only, and which groups are best.

    Parameters
    ----------
    df : pandas.DataFrame
        Records, one row per cell (``ResultStore.to_frame()``); needs ``status`` and the named columns.
    metrics, times : sequence of str
        Columns to average; metrics are shown first, then times.
    by : sequence of str, default ("dataset", "method")
        Grouping columns; they become the index levels of the summary.
    order : mapping of str to sequence, optional
        Explicit order of the values of some ``by`` columns, e.g. ``{"method": ["ncut", "neuncut"]}``.
        It must list every value present. Unlisted columns keep the order of first appearance in ``df``.
    best_among : str, optional
        The ``by`` level whose entries compete for "best" within the other levels; default "method" when
        present, else the last level.
    directions : mapping of str to bool, optional
        Extra or overriding higher-is-better flags (see :func:`higher_is_better`).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``by`` (categorical levels that carry the order; NaN keys sort last), with columns
        ``<q>_mean``, ``<q>_std`` and ``<q>_best`` for each quantity, then ``n_ok``, ``n_total`` and
        ``status``: "ok" when the group has an ok cell, otherwise its most frequent status. Means of
        groups without an ok cell are NaN, never 0. ``<q>_best`` is True for the best group and every
        group not significantly worse (:func:`cutbench.stats.mark_best`, paired over the ``seed`` column);
        ``attrs["notes"]`` lists why marks could not be judged where they could not.
    """
    by, quantities = list(by), [*metrics, *times]
    _check_records(df, by, quantities)
    if order is not None and set(order) - set(by):
        raise CutbenchError(f"order names {sorted(set(order) - set(by))}, which are not in by={by}.")

    is_ok = df["status"].eq("ok")
    try:
        values = df[quantities].apply(pd.to_numeric)
    except (TypeError, ValueError) as error:
        raise CutbenchError(f"metrics and times must be numeric columns; {error}") from error
    keys = [df[k] for k in by]
    grouping = dict(sort=False, dropna=False)
    moments = values.where(is_ok).groupby(keys, **grouping).agg(["mean", "std"])
    moments.columns = [f"{quantity}_{stat}" for quantity, stat in moments.columns]
    among = _best_among_level(by, best_among)
    row_marks, notes = _significance_marks(df[is_ok], values[is_ok], by, among, quantities, directions)
    marks = row_marks.reindex(df.index, fill_value=False).groupby(keys, **grouping).max()
    columns = [f"{q}_{stat}" for q in quantities for stat in ("mean", "std")]
    stats_columns = pd.concat([moments[columns], marks], axis=1)[
        [f"{q}_{stat}" for q in quantities for stat in ("mean", "std", "best")]]
    counts = is_ok.groupby(keys, **grouping).agg(n_ok="sum", n_total="size")
    # ok cells whose network stopped before its objective converged (cutbench.convergence); 0 without networks
    unconverged = (is_ok & (df["converged"] == False)) if "converged" in df else is_ok & False  # noqa: E712
    counts["n_unconverged"] = unconverged.groupby(keys, **grouping).sum()
    status = df["status"].groupby(keys, **grouping).agg(_dominant_status).rename("status")
    summary = pd.concat([stats_columns, counts, status], axis=1)

    # Categorical levels carry the display order with the summary, so renderers and plots need no df.
    levels = [
        pd.Categorical(summary.index.get_level_values(k), categories=_level_order(df, k, order)) for k in by
    ]
    if len(by) == 1:
        summary.index = pd.CategoricalIndex(levels[0], name=by[0])
    else:
        summary.index = pd.MultiIndex.from_arrays(levels, names=by)
    summary = summary.sort_index(na_position="last")
    summary.attrs["notes"] = notes
    return summary


def _significance_marks(ok: pd.DataFrame, values: pd.DataFrame, by: list[str], among: str, quantities: list[str],
                        directions: Mapping[str, bool] | None) -> tuple[pd.DataFrame, list[str]]:
    """Per ok record, ``<q>_best``: whether its group is marked (see :func:`summarize`); and the reasons marks
    could not be judged where they could not."""
    others = [k for k in by if k != among]
    seeds = ok["seed"] if "seed" in ok.columns else pd.Series(np.arange(len(ok)), index=ok.index)
    marks = pd.DataFrame(False, index=ok.index, columns=[f"{q}_best" for q in quantities])
    unjudged: dict[str, list[str]] = {}
    contexts = ok.groupby(others, sort=False, dropna=False) if others else [((), ok)]
    for context, block in contexts:
        context = context if isinstance(context, tuple) else (context,)
        members = list(block.groupby(among, sort=False, dropna=False))
        for quantity in quantities:
            direction = higher_is_better(quantity, directions)
            if direction is None:
                continue
            groups = {}
            for position, (_, cells) in enumerate(members):
                cell_seeds = seeds[cells.index]
                # Seeds repeated within a group (configurations not told apart) cannot be paired: by row instead.
                keys = cell_seeds if cell_seeds.is_unique else pd.Series(cells.index, index=cells.index)
                groups[position] = dict(zip(keys, values.loc[cells.index, quantity], strict=True))
            result = stats.mark_best(groups, direction)
            for position in result.marked:
                marks.loc[members[position][1].index, f"{quantity}_best"] = True
            if not result.marked and result.note.endswith("no significance can be judged"):
                where = " · ".join(map(str, context)) or "all"
                unjudged.setdefault(quantity_label(quantity), []).append(where)
    notes = [f"{quantity}: not marked on {', '.join(places)}: a configuration there has one ok seed, so no "
             "difference can be judged significant" for quantity, places in unjudged.items()]
    return marks, notes


MARK_RULE = (f"bold: the best mean and every configuration not significantly worse than it on the same dataset "
             f"(paired t test over shared seeds, Wilcoxon from {stats.WILCOXON_MIN_PAIRS} seeds, Holm-corrected, "
             f"α = {stats.ALPHA:g})")
"""What bold means, for a caption or a line under a table."""


# ------------------------------------------------------------------------------------------ table grid


def _quantities(summary: pd.DataFrame) -> list[str]:
    quantities = [c[: -len("_mean")] for c in summary.columns if c.endswith("_mean")]
    missing = [c for q in quantities for c in (f"{q}_std",) if c not in summary.columns]
    missing += [c for c in _COUNT_COLUMNS if c not in summary.columns]
    if not quantities or missing:
        raise CutbenchError(
            f"not a summary from summarize(): expected <q>_mean/<q>_std columns and {list(_COUNT_COLUMNS)}; "
            f"columns are {list(summary.columns)}."
        )
    return quantities


def _key_text(value) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:g}"
    return str(value)


def ordered_values(index: pd.Index, level: str) -> list:
    """Values of one index level in display order: category order when categorical, else first appearance."""
    values = index.get_level_values(level)
    present = pd.unique(values.dropna())
    if isinstance(values.dtype, pd.CategoricalDtype):
        present_set = set(present)
        present = [c for c in values.categories if c in present_set]
    return [*present, *([math.nan] if values.hasnans else [])]


def _best_among_level(by: Sequence[str], best_among: str | None) -> str:
    names = list(by)
    if best_among is None:
        return "method" if "method" in names else names[-1]
    if best_among not in names:
        raise CutbenchError(f"best_among={best_among!r} is not one of by={names}.")
    return best_among


def _best_mask(summary: pd.DataFrame, quantities: list[str]) -> pd.DataFrame:
    """The ``<q>_best`` marks of :func:`summarize` (none for a summary made without them)."""
    return pd.DataFrame({q: summary[f"{q}_best"].astype(bool) if f"{q}_best" in summary else False
                         for q in quantities}, index=summary.index)


@dataclass(frozen=True)
class _Cell:
    """One mean ± std cell; rendered per format (separator, bold) by the renderers."""

    mean: float
    std: float
    seconds: bool
    status: str
    best: bool

    def text(self, plus_minus: str) -> str:
        if self.status != "ok":
            return self.status
        return format_mean_std(self.mean, self.std, seconds=self.seconds, plus_minus=plus_minus)


@dataclass(frozen=True)
class _Grid:
    """A table before rendering: row labels, optional column groups, and cells.

    A cell is a _Cell, plain text (the ok column), or None for a (row, column group) combination absent
    from the records, which renderers show as a dash.
    """

    key_names: list[str]
    groups: list[str]  # column-group labels; empty for the long layout
    columns: list[str]  # value-column labels, repeated under each group
    rows: list[tuple[list[str], list[_Cell | str | None]]]


def _cells(summary: pd.DataFrame, position: int, quantities: list[str], mask: pd.DataFrame) -> list:
    row = summary.iloc[position]
    cells: list[_Cell | str] = [
        _Cell(
            mean=float(row[f"{q}_mean"]),
            std=float(row[f"{q}_std"]),
            seconds=is_seconds(q),
            status=str(row["status"]),
            best=bool(mask.iloc[position][q]),
        )
        for q in quantities
    ]
    unconverged = int(row.get("n_unconverged", 0) or 0)
    return [*cells, f"{int(row['n_ok'])}/{int(row['n_total'])}" + (f" ({unconverged} unconverged)" if unconverged else "")]


def _grid(summary: pd.DataFrame, *, layout: str, columns_level: str, bold_best: bool) -> _Grid:
    if layout not in LAYOUTS:
        raise CutbenchError(f"layout={layout!r} is not supported; accepted: {list(LAYOUTS)}.")
    quantities = _quantities(summary)
    mask = _best_mask(summary, quantities)
    if not bold_best:
        mask[:] = False
    columns = [*map(quantity_label, quantities), "ok"]
    names = [str(n) for n in summary.index.names]
    labels = [[_key_text(v) for v in (key if isinstance(key, tuple) else (key,))] for key in summary.index]

    if layout == "long":
        rows = [(labels[i], _cells(summary, i, quantities, mask)) for i in range(len(summary))]
        return _Grid(key_names=names, groups=[], columns=columns, rows=rows)

    if len(names) != 2 or columns_level not in names:
        raise CutbenchError(
            f"layout='wide' needs a two-level summary with a {columns_level!r} level "
            f"(e.g. by=('dataset', 'method')); index levels are {names}. Set columns_level to one of them."
        )
    group_at = names.index(columns_level)
    row_at = 1 - group_at
    groups = [_key_text(v) for v in ordered_values(summary.index, columns_level)]
    row_keys = [_key_text(v) for v in ordered_values(summary.index, names[row_at])]
    position = {(label[group_at], label[row_at]): i for i, label in enumerate(labels)}
    not_run = [None] * len(columns)
    rows = [
        (
            [row_key],
            [
                cell
                for group in groups
                for cell in (
                    _cells(summary, position[group, row_key], quantities, mask)
                    if (group, row_key) in position
                    else not_run
                )
            ],
        )
        for row_key in row_keys
    ]
    return _Grid(key_names=[names[row_at]], groups=groups, columns=columns, rows=rows)


def _render_value(cell: _Cell | str | None, plus_minus: str, bold: Callable[[str], str], dash: str) -> str:
    if cell is None:
        return dash
    if isinstance(cell, str):
        return cell
    text = cell.text(plus_minus)
    return bold(text) if cell.best else text


# -------------------------------------------------------------------------------------------- renderers


def _markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", r"\|") for c in cells) + " |"


def to_markdown(
    summary: pd.DataFrame,
    *,
    layout: str = "long",
    columns_level: str = "dataset",
    bold_best: bool = True,
) -> str:
    """Render a summary as a GitHub-flavoured Markdown table (written here; no tabulate needed).

    Parameters
    ----------
    summary : pandas.DataFrame
        Output of :func:`summarize`.
    layout : {"long", "wide"}, default "long"
        "long": one row per group (e.g. dataset, method); columns are metrics, times, then ok.
        "wide": paper style for a two-level summary; rows are the other level (methods), column groups
        are ``columns_level`` (datasets), each with metrics, times and ok. Markdown has one header row,
        so wide headers read "<group> <column>".
    columns_level : str, default "dataset"
        Index level spread over column groups in the wide layout.
    bold_best : bool, default True
        Bold the groups :func:`summarize` marked: the best and every one not significantly worse than it
        (:data:`MARK_RULE`).

    Returns
    -------
    str
        The table, one line per row, ending in a newline.
    """
    grid = _grid(summary, layout=layout, columns_level=columns_level, bold_best=bold_best)
    values = (
        [f"{g} {c}" for g in grid.groups for c in grid.columns] if grid.groups else list(grid.columns)
    )
    lines = [
        _markdown_row([*grid.key_names, *values]),
        "| " + " | ".join([":---"] * len(grid.key_names) + ["---:"] * len(values)) + " |",
    ]
    for labels, cells in grid.rows:
        rendered = [_render_value(c, " ± ", lambda t: f"**{t}**", "–") for c in cells]
        lines.append(_markdown_row([*labels, *rendered]))
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters (``_`` -> ``\\_`` etc.) in a label."""
    return "".join(_LATEX_SPECIAL.get(char, char) for char in text)


def to_latex(
    summary: pd.DataFrame,
    *,
    layout: str = "long",
    columns_level: str = "dataset",
    bold_best: bool = True,
    caption: str | None = None,
    label: str | None = None,
) -> str:
    """Render a summary as a booktabs LaTeX ``table`` (needs ``\\usepackage{booktabs}``).

    Parameters
    ----------
    summary, layout, columns_level, bold_best
        As in :func:`to_markdown`. The best cell is wrapped in ``\\textbf{}``.
    caption, label : str, optional
        Inserted verbatim (they may contain LaTeX) as ``\\caption{}`` and ``\\label{}``.

    Returns
    -------
    str
        A ``table`` environment. Row labels and headers are escaped; in the long layout repeated
        leading labels are left blank and each first-level block (dataset) is separated by ``\\midrule``.
    """
    grid = _grid(summary, layout=layout, columns_level=columns_level, bold_best=bold_best)
    n_keys, n_groups = len(grid.key_names), max(len(grid.groups), 1)
    lines = [r"\begin{table}[htbp]", r"\centering"]
    if caption is not None:
        lines.append(rf"\caption{{{caption}}}")
    if label is not None:
        lines.append(rf"\label{{{label}}}")
    lines += [rf"\begin{{tabular}}{{{'l' * n_keys}{'r' * len(grid.columns) * n_groups}}}", r"\toprule"]
    if grid.groups:
        width = len(grid.columns)
        spans = [rf"\multicolumn{{{width}}}{{c}}{{{latex_escape(g)}}}" for g in grid.groups]
        lines.append(" & ".join([""] * n_keys + spans) + r" \\")
        lines.append(" ".join(
            rf"\cmidrule(lr){{{n_keys + 1 + i * width}-{n_keys + (i + 1) * width}}}"
            for i in range(len(grid.groups))
        ))
    header = [*grid.key_names, *grid.columns * n_groups]
    lines += [" & ".join(latex_escape(h) for h in header) + r" \\", r"\midrule"]
    previous: list[str] = []
    for labels, cells in grid.rows:
        if previous and not grid.groups and labels[0] != previous[0]:
            lines.append(r"\midrule")
        shown = [
            "" if not grid.groups and j < n_keys - 1 and labels[: j + 1] == previous[: j + 1] else latex_escape(t)
            for j, t in enumerate(labels)
        ]
        rendered = [_render_value(c, r" $\pm$ ", lambda t: rf"\textbf{{{t}}}", "--") for c in cells]
        lines.append(" & ".join([*shown, *rendered]) + r" \\")
        previous = labels
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_html(
    summary: pd.DataFrame,
    *,
    layout: str = "long",
    columns_level: str = "dataset",
    bold_best: bool = True,
) -> str:
    """Render a summary as an HTML ``<table class="cutbench-summary">``; best cells in ``<strong>``.

    Parameters are as in :func:`to_markdown`; the wide layout gets a two-row header with ``colspan``.
    """
    grid = _grid(summary, layout=layout, columns_level=columns_level, bold_best=bold_best)
    esc = html.escape
    lines = ['<table class="cutbench-summary">', "<thead>"]
    if grid.groups:
        keys = "".join(f'<th rowspan="2">{esc(k)}</th>' for k in grid.key_names)
        spans = "".join(f'<th colspan="{len(grid.columns)}">{esc(g)}</th>' for g in grid.groups)
        lines.append(f"<tr>{keys}{spans}</tr>")
        lines.append("<tr>" + "".join(f"<th>{esc(c)}</th>" for c in grid.columns * len(grid.groups)) + "</tr>")
    else:
        lines.append("<tr>" + "".join(f"<th>{esc(c)}</th>" for c in [*grid.key_names, *grid.columns]) + "</tr>")
    lines += ["</thead>", "<tbody>"]
    for labels, cells in grid.rows:
        rendered = [
            _render_value(c, " ± ", lambda t: f"<strong>{t}</strong>", "–") for c in cells
        ]
        row = "".join(f"<td>{esc(t)}</td>" for t in labels) + "".join(f"<td>{t}</td>" for t in rendered)
        lines.append(f"<tr>{row}</tr>")
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines) + "\n"


def to_csv(summary: pd.DataFrame, path: str | Path) -> Path:
    """Write the summary's numbers at full precision (index levels first) for other tools to read.

    CSV is the machine-readable format: no rounding, no bold, no ``±``; ``n_ok``, ``n_total`` and
    ``status`` keep failures visible. Parent directories are created.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    _quantities(summary)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    summary.to_csv(path)
    return path
