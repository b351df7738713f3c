"""Across datasets: average ranks, the Friedman test and the Nemenyi post-hoc test of a study's configurations.

The statistics are :func:`cutbench.stats.rank_analysis`'s; this module picks the scores out of the records
and renders the result (Markdown and HTML tables; the diagram is :func:`cutbench.reports.plots.plot_critical_difference`).
"""

from __future__ import annotations

import html

import pandas as pd

from cutbench import CutbenchError, stats
from cutbench.reports.tables import higher_is_better, quantity_label


def rank_scores(frame: pd.DataFrame, metric: str = "acc") -> pd.DataFrame:
    """The mean of ``metric`` over ok seeds, one row per dataset, one column per configuration (NaN where a
    configuration has no ok cell on a dataset). ``frame`` holds records with ``dataset`` and ``method``
    columns already labelled (:func:`cutbench.reports.configuration_labels`)."""
    ok = frame[frame["status"].eq("ok")]
    if ok.empty:
        raise CutbenchError("no ok cell to rank.")
    values = pd.to_numeric(ok[metric], errors="coerce")
    table = values.groupby([ok["dataset"], ok["method"]], sort=False).mean().unstack("method")
    return table.reindex(columns=list(pd.unique(frame["method"])), index=list(pd.unique(frame["dataset"])))


def analyse(frame: pd.DataFrame, metric: str = "acc") -> stats.RankAnalysis | str:
    """The rank analysis of ``metric``, or the reason it cannot be made (too few datasets or configurations)."""
    try:
        return stats.rank_analysis(rank_scores(frame, metric), higher_is_better=bool(higher_is_better(metric)))
    except CutbenchError as error:
        return str(error)


def _rows(analysis: stats.RankAnalysis) -> list[list[str]]:
    rows = []
    for name, average in analysis.average_ranks.items():
        different = [str(other) for other in analysis.average_ranks.index
                     if other != name and analysis.posthoc.loc[name, other] < analysis.alpha]
        rows.append([str(name), f"{average:.2f}", *(f"{analysis.ranks.loc[d, name]:g}" for d in analysis.ranks.index),
                     ", ".join(different) or "none"])
    return rows


def _header(analysis: stats.RankAnalysis) -> list[str]:
    return ["configuration", "average rank", *map(str, analysis.ranks.index), "significantly different from"]


def to_markdown(analysis: stats.RankAnalysis, metric: str = "acc") -> str:
    """The ranks per dataset, their average, and which configurations the Nemenyi test separates."""
    header = _header(analysis)
    lines = [f"Ranks by {quantity_label(metric)} (1 = best, ties share the mean rank). {analysis.summary()}", "",
             "| " + " | ".join(header) + " |", "| :--- | " + " | ".join("---:" for _ in header[1:-1]) + " | :--- |"]
    lines += ["| " + " | ".join(cell.replace("|", r"\|") for cell in row) + " |" for row in _rows(analysis)]
    if analysis.left_out:
        lines += ["", f"Left out (a configuration has no ok cell there): {', '.join(analysis.left_out)}."]
    return "\n".join(lines) + "\n"


def to_html(analysis: stats.RankAnalysis, metric: str = "acc") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in _header(analysis))
    body = "".join("<tr>" + "".join(f'<td class="{"num" if 0 < i < len(row) - 1 else "text"}">{html.escape(c)}</td>'
                                    for i, c in enumerate(row)) + "</tr>" for row in _rows(analysis))
    left = (f"<p>Left out (a configuration has no ok cell there): {html.escape(', '.join(analysis.left_out))}.</p>"
            if analysis.left_out else "")
    return (f"<p>Ranks by {html.escape(quantity_label(metric))} (1 = best). {html.escape(analysis.summary())}</p>"
            f'<table class="cutbench-ranks"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{left}')


__all__ = ["analyse", "rank_scores", "to_html", "to_markdown"]
