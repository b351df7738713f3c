"""How each method's cost grows with n: power-law exponents fitted per method and stage, and a log-log plot.

For each configuration and timed stage, the median time over ok seeds at each size is fitted by least
squares as ``log t = a + b log n``; ``b`` is the exponent (1: linear, 2: quadratic). Times below
``min_seconds`` are left out of the fit (there a fixed overhead, not the growth, is measured), and a fit
needs at least three sizes. The table names, per configuration, the largest size that finished and the
first that ran out of time, so where a method stops scaling is read at a glance.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from cutbench import CutbenchError
from cutbench.reports.plots import new_figure, save_figure, series_colors
from cutbench.reports.tables import configuration_labels, quantity_label

STAGES = ("affinity_s", "fit_s", "predict_s", "total_s")


def fit_exponent(sizes, seconds) -> tuple[float, float, float]:
    """``(exponent, its standard error, prefactor)`` of ``seconds ≈ prefactor * sizes**exponent``."""
    x, y = np.log(np.asarray(sizes, dtype=float)), np.log(np.asarray(seconds, dtype=float))
    if len(x) < 3:
        raise CutbenchError(f"an exponent needs at least 3 sizes; got {len(x)}.")
    design = np.vstack([np.ones_like(x), x]).T
    (intercept, slope), residuals, *_ = np.linalg.lstsq(design, y, rcond=None)
    dof = len(x) - 2
    sigma2 = float(residuals[0]) / dof if dof > 0 and len(residuals) else 0.0
    stderr = float(np.sqrt(sigma2 / ((x - x.mean()) ** 2).sum())) if dof > 0 else float("nan")
    return float(slope), stderr, float(np.exp(intercept))


def _medians(frame: pd.DataFrame, x: str, stage: str) -> pd.DataFrame:
    ok = frame[(frame.status == "ok") & frame[stage].notna()]
    return ok.groupby(["configuration", x], sort=False)[stage].median().reset_index()


def scaling_table(frame: pd.DataFrame, *, x: str = "dataset.n", stages: Sequence[str] = STAGES,
                  min_seconds: float = 0.05) -> pd.DataFrame:
    """One row per configuration and stage: the fitted exponent, its error, the sizes it covers, and the
    largest size that finished (``timeout`` cells mark where the method stopped)."""
    if x not in frame:
        raise CutbenchError(f"the records have no column {x!r}; run a study whose cells vary it (e.g. a dataset grid "
                            "over n).")
    frame = frame.assign(configuration=configuration_labels(frame))
    rows = []
    for stage in stages:
        if stage not in frame or frame[stage].isna().all():
            continue
        for configuration, points in _medians(frame, x, stage).groupby("configuration", sort=False):
            points = points[points[stage] >= min_seconds]
            cells = frame[frame.configuration == configuration]
            stopped = cells[cells.status == "timeout"][x]
            row = {"configuration": configuration, "stage": stage, "points": len(points),
                   "n_min": points[x].min() if len(points) else np.nan,
                   "n_max": points[x].max() if len(points) else np.nan,
                   "largest_ok": cells[cells.status == "ok"][x].max(),
                   "first_timeout": stopped.min() if len(stopped) else np.nan}
            if len(points) >= 3:
                row["exponent"], row["stderr"], row["prefactor"] = fit_exponent(points[x], points[stage])
            rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    lines = ["| configuration | stage | exponent | sizes fitted | largest n ok | first n out of time |",
             "| :--- | :--- | ---: | ---: | ---: | ---: |"]
    for row in table.itertuples():
        exponent = (f"{row.exponent:.2f} ± {row.stderr:.2f}" if "exponent" in table and np.isfinite(row.exponent)
                    else "–")
        sizes = f"{int(row.n_min):,}–{int(row.n_max):,} ({row.points})" if row.points else "–"
        stopped = f"{int(row.first_timeout):,}" if np.isfinite(row.first_timeout) else "–"
        lines.append(f"| {row.configuration} | {quantity_label(row.stage)} | {exponent} | {sizes} | "
                     f"{int(row.largest_ok):,} | {stopped} |")
    return "\n".join(lines) + "\n"


def plot_scaling(frame: pd.DataFrame, path_stem, *, x: str = "dataset.n", stages: Sequence[str] = STAGES,
                 min_seconds: float = 0.05) -> list[Path]:
    """Log-log panels, one per stage: median time per size for every configuration, and its fitted line."""
    frame = frame.assign(configuration=configuration_labels(frame))
    stages = [stage for stage in stages if stage in frame and frame[stage].notna().any()]
    configurations = list(dict.fromkeys(frame.configuration))
    colors = dict(zip(configurations, series_colors(len(configurations))))
    figure = new_figure((5.0 * len(stages), 4.2), 150)
    table = scaling_table(frame, x=x, stages=stages, min_seconds=min_seconds)
    for index, stage in enumerate(stages):
        axes = figure.add_subplot(1, len(stages), index + 1)
        for configuration, points in _medians(frame, x, stage).groupby("configuration", sort=False):
            axes.plot(points[x], points[stage], "o", color=colors[configuration], markersize=4)
            fitted = table[(table.configuration == configuration) & (table.stage == stage)]
            if len(fitted) and "exponent" in fitted and np.isfinite(fitted.exponent.iloc[0]):
                row = fitted.iloc[0]
                sizes = np.geomspace(row.n_min, row.n_max, 20)
                axes.plot(sizes, row.prefactor * sizes ** row.exponent, "-", color=colors[configuration], lw=1.2)
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel(x)
        axes.set_ylabel(f"{quantity_label(stage)} (median over seeds)")
        axes.grid(True, which="both", alpha=0.25)
    handles = [Line2D([], [], color=colors[c], marker="o", label=c) for c in configurations]
    handles.append(Line2D([], [], color="black", lw=1.2, label="fitted power law"))
    figure.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    return save_figure(figure, path_stem)


__all__ = ["STAGES", "fit_exponent", "plot_scaling", "scaling_table", "to_markdown"]
