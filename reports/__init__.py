"""Tables and figures built from result records (one row per cell, see ``ResultStore.to_frame``).

Every function here is a pure function of the records DataFrame: failed, timed-out and skipped cells are
excluded from every mean and counted in an ``ok`` column, never averaged in as zeros.
"""

from cutbench.reports.plots import plot_metric_bars, plot_metric_vs_param
from cutbench.reports.tables import (
    configuration_labels,
    dataset_labels,
    format_mean_std,
    higher_is_better,
    summarize,
    to_csv,
    to_html,
    to_latex,
    to_markdown,
)

__all__ = [
    "configuration_labels",
    "dataset_labels",
    "format_mean_std",
    "higher_is_better",
    "plot_metric_bars",
    "plot_metric_vs_param",
    "summarize",
    "to_csv",
    "to_html",
    "to_latex",
    "to_markdown",
]
