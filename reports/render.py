"""Everything a results folder renders: tables, plots and one self-contained ``report.html``;
and the comparison of two folders. Pure functions of the stored records."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from cutbench import stats
from cutbench.convergence import RULE
from cutbench.reports import html as pages
from cutbench.reports import ranks
from cutbench.reports.compare import compare_frames, rule_text, seed_note, side_of, to_html_table
from cutbench.reports.compare import to_markdown as comparison_markdown
from cutbench.reports.plots import plot_critical_difference, plot_metric_bars
from cutbench.reports.tables import (
    MARK_RULE,
    TABLE_CUT,
    configuration_labels,
    dataset_labels,
    shown_metrics,
    summarize,
    to_html,
    to_latex,
    to_markdown,
)
from cutbench.store import flatten_record


def oversubscription_warning(frame: pd.DataFrame) -> str | None:
    """A warning naming the cells that ran while the machine's load exceeded its cores, or None."""
    if "load_end" not in frame or frame["load_end"].isna().all():
        return None
    load = frame[["load_start", "load_end"]].max(axis=1)
    busy = frame[load > frame["cores"]]
    if busy.empty:
        return None
    return (f"warning: {len(busy)} of {len(frame)} cells ran on an oversubscribed machine (load average up to "
            f"{load.max():.1f} on {int(busy['cores'].max())} cores): their times are not comparable with cells run on "
            "an idle machine (their results are: those depend on the thread count, recorded, not on the load).")


def thread_note(frame: pd.DataFrame) -> str | None:
    """Which thread counts the results were made with (they change CPU times, and network results)."""
    if "threads" not in frame or frame["threads"].isna().all():
        return None
    counts = sorted({int(t) for t in frame["threads"].dropna()})
    return f"threads per cell: {', '.join(map(str, counts))} (torch, BLAS and OpenMP)"


def cpu_note(frame: pd.DataFrame) -> str | None:
    """The CPU model(s) the results were made on: network results on CPU depend on it (its kernels)."""
    if "cpu" not in frame or frame["cpu"].isna().all():
        return None
    return f"CPU: {'; '.join(sorted({str(c) for c in frame['cpu'].dropna()}))}"


def render_report(store, out: Path, stages: Sequence[str] = ("fit",), *, rank_metric: str = "acc",
                  echo=print) -> list[Path]:
    """Export the store's table and render ``table.md``/``.tex``/``.html``, the accuracy plot and ``report.html``.

    ``stages`` names the timed stages whose seconds the tables show, in that order. Bold cells follow
    :data:`cutbench.reports.tables.MARK_RULE`. With at least two datasets and three configurations, the
    configurations are also ranked by ``rank_metric`` across datasets (``ranks.md``, Friedman and Nemenyi
    tests, ``critical_difference.png``). The Markdown tables and any warnings are passed to ``echo``.
    """
    written = store.export(out / "results")
    frame = store.to_frame()
    coverage = store.coverage()
    stored_line = coverage_line(coverage)
    if frame.empty:
        return written
    # Rows in the order the cells ran (the study's order), one per configuration, never a mix. Parsed,
    # as records written before timestamps had microseconds hold whole seconds.
    frame = frame.sort_values("timestamp", kind="stable", na_position="last", ignore_index=True,
                              key=lambda stamps: pd.to_datetime(stamps, utc=True, format="ISO8601"))
    # Planned cells never stored join the table as "missing" rows (a count of 1/3, not 1/1), labelled with
    # the stored ones; only the table sees them.
    planned = pd.concat([frame, _missing_rows(store, coverage)], ignore_index=True)
    planned = planned.assign(method=configuration_labels(planned), dataset=dataset_labels(planned))
    frame = planned.iloc[:len(frame)].copy()
    summary = summarize(planned, metrics=shown_metrics(frame), times=[f"{stage}_s" for stage in stages])
    machine = "; ".join(note for note in (thread_note(frame), cpu_note(frame)) if note)
    legend = [MARK_RULE + ".", *summary.attrs["notes"], *([machine] if machine else [])]
    if summary["n_unconverged"].sum():
        legend.append(f"unconverged: ok cells whose network stopped before its objective converged ({RULE}).")
    markdown = to_markdown(summary) + "\n" + "\n".join(f"{line}  " for line in legend) + "\n"
    fragment = to_html(summary)
    for name, text in (("table.md", markdown), ("table.tex", to_latex(summary)), ("table.html", fragment)):
        (out / name).write_text(text)
        written.append(out / name)
    plots = plot_metric_bars(frame, "acc", path_stem=out / "acc")
    written += plots
    cut_plots = (plot_metric_bars(frame, TABLE_CUT, path_stem=out / "ncut")
                 if TABLE_CUT in frame and frame[TABLE_CUT].notna().any() else [])
    written += cut_plots
    analysis = ranks.analyse(frame, rank_metric)
    if isinstance(analysis, str):
        across = f"<p>{pages.html.escape(f'No ranking across datasets: {analysis}')}</p>"
    else:
        (out / "ranks.md").write_text(ranks.to_markdown(analysis, rank_metric))
        diagram = plot_critical_difference(analysis, path_stem=out / "critical_difference")
        written += [out / "ranks.md", *diagram]
        across = ranks.to_html(analysis, rank_metric) + pages.figure(diagram[0], "critical-difference diagram")
        markdown += "\n" + ranks.to_markdown(analysis, rank_metric)
    warnings = [stored_line if coverage["missing"] else None, oversubscription_warning(frame),
                store.problems_summary()]
    records = list(store.latest_by_configuration().values())
    study = ", ".join(sorted({str(s) for s in frame["study"].dropna()})) or out.name
    body = [pages.section("Results", pages.notes(warnings) + fragment
                          + "".join(f"<p>{pages.html.escape(line)}</p>" for line in legend)),
            pages.section("Across datasets", across),
            pages.section("Accuracy", pages.figure(plots[0], "ACC per dataset and configuration, mean ± std over seeds")),
            *([pages.section("Normalised cut", pages.figure(
                cut_plots[0], "Ncut value of each labelling (lower is better) per dataset and configuration, mean ± std "
                              "over seeds"))] if cut_plots else []),
            pages.section("Cells that did not finish", pages.failures(frame)),
            pages.section("Provenance", pages.provenance(records))]
    (out / "report.html").write_text(pages.page(f"cutbench study {study}", stored_line or f"{len(frame)} cells in {out}",
                                                body))
    written.append(out / "report.html")
    echo(markdown)
    for line in warnings:
        if line:
            echo(line)
    return written


def coverage_line(coverage: dict) -> str | None:
    """One line saying how many of the planned cells are stored, failed or missing (None without a plan)."""
    if not coverage["planned"]:
        return None
    statuses = ", ".join(f"{count} {status}" for status, count in sorted(coverage["by_status"].items()))
    line = f"stored: {coverage['stored']} of the {coverage['planned']} planned cells" + (
        f" ({statuses})" if statuses else "")
    if coverage["missing"]:
        line += (f"; missing: {len(coverage['missing'])} (never run, interrupted, or unusable): run the study "
                 "again into this folder to compute them")
    return line + "."


def _missing_rows(store, coverage: dict) -> pd.DataFrame:
    """A ``missing`` row for each planned cell with no usable record, in the columns of stored rows."""
    plan = store.plan()
    return pd.DataFrame([flatten_record({"study": plan[key]["study"], "key": key, "config": plan[key]["config"],
                                         "status": "missing"}) for key in coverage["missing"]])


def render_comparison(old_store, new_store, out: Path, *, alpha: float = stats.ALPHA,
                      min_effect: float = stats.SCORE_MIN_EFFECT, time_threshold: float = stats.TIME_MIN_RATIO,
                      time_floor: float = stats.TIME_MIN_SECONDS) -> tuple[pd.DataFrame, str, list[Path]]:
    """Compare two folders; write ``comparison.md`` and a self-contained ``report.html`` into ``out``.

    Returns the comparison table (see :func:`cutbench.reports.compare.compare_frames`), its Markdown
    and the written paths.
    """
    old_frame, new_frame = old_store.to_frame(), new_store.to_frame()
    table = compare_frames(old_frame, new_frame, alpha=alpha, min_effect=min_effect, time_threshold=time_threshold,
                           time_floor=time_floor)
    old, new = side_of(old_frame, str(old_store.root)), side_of(new_frame, str(new_store.root))
    rule = rule_text(alpha, min_effect, time_threshold, time_floor)
    markdown = comparison_markdown(table, old, new, rule)
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.md").write_text(markdown)
    counts = table.verdict.value_counts().to_dict()
    summary = ", ".join(f"{counts[v]} {v}" for v in ("regression", "improvement", "same", "new", "removed")
                        if v in counts)
    records = [*old_store.latest_by_configuration().values(), *new_store.latest_by_configuration().values()]
    notes = [seed_note(old, new)]
    if old.cpus != new.cpus:
        notes.append(f"the sides ran on different CPUs ({' / '.join(old.cpus) or 'unknown'} against "
                     f"{' / '.join(new.cpus) or 'unknown'}): network results on CPU move with the kernels a CPU "
                     "picks, so a change of a network cell may be the machine's, not the code's.")
    body = [pages.section("Summary", f"<p>Old: {pages.html.escape(old.describe())}<br>New: "
                          f"{pages.html.escape(new.describe())}</p>" + pages.notes(notes)
                          + f"<p>{summary}. {pages.html.escape(rule)}</p>"),
            pages.section("Changes", to_html_table(table)),
            pages.section("Cells that did not finish (new)", pages.failures(new_frame)),
            pages.section("Provenance", pages.provenance(records))]
    (out / "report.html").write_text(pages.page("cutbench comparison", f"{old.label} → {new.label}", body))
    return table, markdown, [out / "comparison.md", out / "report.html"]


__all__ = ["cpu_note", "oversubscription_warning", "render_comparison", "render_report", "thread_note"]
