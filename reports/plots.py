"""Figures built from the records: grouped bars of a metric, and a metric against a swept parameter.

Both functions average over ok cells only (through :func:`cutbench.reports.summarize`) and mark groups
without an ok cell instead of drawing them as zero. Figures are drawn on a bare matplotlib ``Figure``
with the Agg canvas: no pyplot, no display, and no global figure registry that could leak figures; the
figure is released when the function returns. Each call saves ``<path_stem>.png`` and ``<path_stem>.pdf``
(the PDF without a creation date, so identical inputs give identical files).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import NullLocator

from cutbench import CutbenchError
from cutbench.reports.tables import (
    _key_text,
    higher_is_better,
    ordered_values,
    quantity_label,
    summarize,
)

_MAX_LABELLED_TICKS = 12


def new_figure(figsize: tuple[float, float], dpi: float) -> Figure:
    figure = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path_stem: str | Path) -> list[Path]:
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    # with_name, not with_suffix: stems such as "sweep_param.batch_size" contain dots.
    png, pdf = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")
    figure.savefig(png)
    figure.savefig(pdf, metadata={"CreationDate": None})
    return [png, pdf]


def series_colors(n: int) -> list:
    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _axis_label(metric: str) -> str:
    direction = higher_is_better(metric)
    if direction is None:
        return quantity_label(metric)
    return f"{quantity_label(metric)} ({'higher' if direction else 'lower'} is better)"


def _failure_handle(label: str) -> Line2D:
    return Line2D([], [], color="black", marker="x", linestyle="none", label=label)


def plot_metric_bars(
    df: pd.DataFrame,
    metric: str = "acc",
    *,
    by: Sequence[str] = ("dataset", "method"),
    path_stem: str | Path,
    order: Mapping[str, Sequence] | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float = 150,
    title: str | None = None,
) -> list[Path]:
    """Grouped bar chart of the mean ± std of one metric, over ok cells only.

    Parameters
    ----------
    df : pandas.DataFrame
        Records, one row per cell.
    metric : str, default "acc"
        Column to plot (a metric or a ``*_s`` time).
    by : (str, str), default ("dataset", "method")
        Column giving the groups on the x axis, then the column giving the bars within a group.
    path_stem : str or pathlib.Path
        Output path without extension; ``.png`` and ``.pdf`` are appended.
    order : mapping of str to sequence, optional
        Explicit order of groups and/or bars, as in :func:`cutbench.reports.summarize`.
    figsize : (float, float), optional
        Inches; default widens with the number of bars. PNG pixels are ``figsize * dpi``.
    dpi : float, default 150
    title : str, optional

    Returns
    -------
    list of pathlib.Path
        The PNG and PDF paths.

    Notes
    -----
    Error bars are the std over ok seeds (none with a single ok seed). A group without an ok seed gets
    a black "x" at zero with its status written above it; a group with some failed seeds is annotated
    "n_ok/n_total" above its bar. A combination absent from the records leaves an empty slot.
    """
    by = list(by)
    if len(by) != 2:
        raise CutbenchError(f"by must name two columns (groups, bars), e.g. ('dataset', 'method'); got {by}.")
    group_key, bar_key = by
    summary = summarize(df, metrics=(metric,), times=(), by=by, order=order)
    groups = ordered_values(summary.index, group_key)
    bars = ordered_values(summary.index, bar_key)
    rows = {tuple(_key_text(v) for v in key): row for key, row in zip(summary.index, summary.itertuples())}

    width = 0.8 / len(bars)
    if figsize is None:
        figsize = (max(7.0, 2.5 + len(groups) * (0.22 * len(bars) + 0.4)), 4.0)
    figure = new_figure(figsize, dpi)
    axes = figure.add_subplot()
    handles = []
    any_failed = any_partial = False
    for j, (bar, color) in enumerate(zip(bars, series_colors(len(bars)))):
        handles.append(Patch(facecolor=color, label=_key_text(bar)))
        for i, group in enumerate(groups):
            row = rows.get((_key_text(group), _key_text(bar)))
            if row is None:
                continue
            x = i + (j - (len(bars) - 1) / 2) * width
            if row.status != "ok":
                any_failed = True
                axes.plot(x, 0, marker="x", color="black", markersize=7, markeredgewidth=1.8, clip_on=False)
                axes.annotate(row.status, (x, 0), xytext=(0, 6), textcoords="offset points", rotation=90,
                              fontsize=7, ha="center", va="bottom")
                continue
            mean, std = getattr(row, f"{metric}_mean"), getattr(row, f"{metric}_std")
            has_std = bool(np.isfinite(std))
            axes.bar(x, mean, width * 0.92, color=color, yerr=std if has_std else None, capsize=2,
                     error_kw={"elinewidth": 1})
            if row.n_ok < row.n_total:
                any_partial = True
                top = mean + (std if has_std else 0.0)
                axes.annotate(f"{row.n_ok}/{row.n_total}", (x, top), xytext=(0, 2), textcoords="offset points",
                              fontsize=7, ha="center", va="bottom")

    if any_failed:
        handles.append(_failure_handle("no ok seed (status noted)"))
    if any_partial:
        handles.append(Line2D([], [], linestyle="none", label="k/n: k of n seeds ok"))
    axes.set_xticks(range(len(groups)), labels=[_key_text(g) for g in groups])
    if len(groups) > 4 or max(len(_key_text(g)) for g in groups) > 12:
        for tick in axes.get_xticklabels():
            tick.set(rotation=25, horizontalalignment="right", rotation_mode="anchor")
    axes.set_xlim(-0.6, len(groups) - 0.4)
    axes.margins(y=0.12)
    if summary[f"{metric}_mean"].min() >= 0 or summary[f"{metric}_mean"].isna().all():
        axes.set_ylim(bottom=0)
    axes.set_ylabel(_axis_label(metric))
    axes.set_xlabel(group_key)
    axes.yaxis.grid(True, alpha=0.3)
    axes.set_axisbelow(True)
    axes.legend(handles=handles, title=bar_key, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                fontsize=8, title_fontsize=8)
    if title is not None:
        axes.set_title(title)
    return save_figure(figure, path_stem)


def _log_x_wanted(values: np.ndarray) -> bool:
    """Log x when all values are positive and span more than one decade."""
    return bool(len(values) and values.min() > 0 and values.max() / values.min() > 10)


def plot_metric_vs_param(
    df: pd.DataFrame,
    x: str,
    metric: str,
    *,
    hue: str = "method",
    path_stem: str | Path,
    order: Mapping[str, Sequence] | None = None,
    figsize: tuple[float, float] = (6.4, 3.8),
    dpi: float = 150,
    title: str | None = None,
) -> list[Path]:
    """Line plot of a metric against a numeric swept column, mean ± std band over ok seeds.

    Parameters
    ----------
    df : pandas.DataFrame
        Records of one sweep on one dataset (and one feature set); filter first, because averaging
        over datasets would be meaningless. Mixed ``dataset`` or ``features`` values raise.
    x : str
        Numeric column swept, e.g. ``"train_size"`` or ``"param.batch_size"``.
    metric : str
        Column on the y axis (a metric or a ``*_s`` time).
    hue : str, default "method"
        One line per value of this column.
    path_stem : str or pathlib.Path
        Output path without extension; ``.png`` and ``.pdf`` are appended.
    order : mapping of str to sequence, optional
        Explicit order of the ``hue`` values (legend order); x is always sorted numerically.
    figsize : (float, float), default (6.4, 3.8)
        Inches; PNG pixels are ``figsize * dpi``.
    dpi : float, default 150
    title : str, optional

    Returns
    -------
    list of pathlib.Path
        The PNG and PDF paths.

    Notes
    -----
    The x axis is logarithmic when the values are positive and span more than a decade; with at most
    12 distinct values the ticks sit on them. Points without an ok seed break the line and are marked
    with an "x" at the bottom of the axes.
    """
    for column in ("dataset", "features"):
        if column in df.columns and df[column].nunique(dropna=False) > 1:
            raise CutbenchError(
                f"records mix {column} values {list(pd.unique(df[column]))}; a sweep plot averages over seeds "
                f"only, so filter to one first, e.g. df[df[{column!r}] == ...]."
            )
    if x not in df.columns:
        raise CutbenchError(f"records lack the swept column {x!r}; available: {sorted(map(str, df.columns))}.")
    if not pd.api.types.is_numeric_dtype(df[x]) or df[x].isna().any():
        raise CutbenchError(
            f"swept column {x!r} must be numeric without NaN (dtype {df[x].dtype}, {int(df[x].isna().sum())} NaN); "
            "filter out the cells that did not sweep it."
        )
    x_values = np.sort(pd.unique(df[x]).astype(float))
    summary = summarize(
        df, metrics=(metric,), times=(), by=(hue, x), order={**(order or {}), x: list(np.sort(pd.unique(df[x])))}
    )
    flat = summary.reset_index()
    hue_text = flat[hue].astype(object).map(_key_text)

    figure = new_figure(figsize, dpi)
    axes = figure.add_subplot()
    any_failed = False
    for value, color in zip(ordered_values(summary.index, hue), series_colors(flat[hue].nunique(dropna=False))):
        part = flat[hue_text == _key_text(value)]
        xs = part[x].to_numpy(dtype=float)
        means = part[f"{metric}_mean"].to_numpy(dtype=float)
        stds = np.nan_to_num(part[f"{metric}_std"].to_numpy(dtype=float))  # one ok seed: no band
        axes.plot(xs, means, marker="o", markersize=4, color=color, label=_key_text(value))
        axes.fill_between(xs, means - stds, means + stds, color=color, alpha=0.2, linewidth=0)
        failed = part["status"].ne("ok").to_numpy()
        if failed.any():
            any_failed = True
            axes.plot(xs[failed], np.full(failed.sum(), 0.03), marker="x", linestyle="none", color=color,
                      markersize=7, markeredgewidth=1.8, transform=axes.get_xaxis_transform(), clip_on=False)

    if _log_x_wanted(x_values):
        axes.set_xscale("log")
        if len(x_values) <= _MAX_LABELLED_TICKS:
            axes.set_xticks(x_values, labels=[f"{v:g}" for v in x_values])
            axes.xaxis.set_minor_locator(NullLocator())
    axes.set_xlabel(x.removeprefix("param."))
    axes.set_ylabel(_axis_label(metric))
    axes.grid(True, alpha=0.3)
    handles, _ = axes.get_legend_handles_labels()
    if any_failed:
        handles.append(_failure_handle("no ok seed at this x"))
    axes.legend(handles=handles, title=hue, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                fontsize=8, title_fontsize=8)
    if title is not None:
        axes.set_title(title)
    return save_figure(figure, path_stem)


def plot_gamma_search(search, title: str, path_stem: str | Path) -> list[Path]:
    """Figure 4 of the NeuNcut paper for one search: the lowest L_Lap and L_orth at each γ (log axis),
    the floor of L_orth and the chosen γ marked (``search`` is a ``cutbench.methods.neuncut.GammaSearch``)."""
    figure = new_figure((6.0, 4.0), 120)
    axes = figure.add_subplot(1, 1, 1)
    order = np.argsort(search.gammas)
    gammas = np.asarray(search.gammas, dtype=float)[order]
    axes.plot(gammas, np.asarray(search.laplacian)[order], "o-", color="#2f6db5", label="L_Lap (lowest over training)")
    axes.plot(gammas, np.asarray(search.orthogonality)[order], "o-", color="#c0392b",
              label="L_orth (lowest over training)")
    axes.axhline(search.floor, color="#c0392b", ls="--", lw=1, label=f"floor of L_orth {search.floor:.4g}")
    axes.axvline(search.chosen, color="#2f9e55", lw=1.5, label=f"chosen γ = {search.chosen:g}")
    axes.set_xscale("log")
    axes.set_xlabel("γ")
    axes.set_ylabel("loss")
    axes.legend(fontsize=7)
    axes.set_title(title, fontsize=8)
    return save_figure(figure, path_stem)


def draw_critical_difference(axes, analysis) -> dict:
    """Draw the critical-difference diagram of a :class:`cutbench.stats.RankAnalysis` on ``axes`` (scikit-posthocs
    draws it) and return scikit-posthocs' artists (``labels`` holds each configuration's "name (rank)" text).

    Configurations sit at their average rank (1 = best, on the left); a horizontal bar joins those whose
    Nemenyi test is not significant at the analysis's alpha, and the bar above the axis is the critical
    difference.
    """
    import scikit_posthocs

    names = list(analysis.average_ranks.index)
    return scikit_posthocs.critical_difference_diagram(
        analysis.average_ranks, analysis.posthoc, cd=analysis.critical_difference, alpha=analysis.alpha, ax=axes,
        label_fmt_left="{label} ({rank:.2f})", label_fmt_right="({rank:.2f}) {label}",
        label_props={"fontsize": 8}, color_palette=dict(zip(names, series_colors(len(names)), strict=True)))


def plot_critical_difference(analysis, *, path_stem: str | Path, title: str | None = None) -> list[Path]:
    """:func:`draw_critical_difference` in a figure of its own, saved as ``<path_stem>.png`` and ``.pdf``."""
    figure = new_figure((7.5, 1.2 + 0.32 * analysis.n_methods), 150)
    axes = figure.add_subplot()
    draw_critical_difference(axes, analysis)
    axes.set_title(title or (f"average rank over {analysis.n_datasets} datasets (1 = best); bars join "
                             f"configurations not significantly different (Nemenyi, α = {analysis.alpha:g})"),
                   fontsize=8)
    return save_figure(figure, path_stem)
