"""Everything a results folder renders: tables, plots and one self-contained ``report.html``;
and the comparison of two folders. Pure functions of the stored records."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from cutbench.reports import html as pages
from cutbench.reports.compare import compare_frames, side_of, to_html_table, to_markdown as comparison_markdown
from cutbench.reports.plots import plot_metric_bars
from cutbench.reports.tables import configuration_labels, dataset_labels, summarize, to_html, to_latex, to_markdown


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


def render_report(store, out: Path, stages: Sequence[str] = ("fit",), *, echo=print) -> list[Path]:
    """Export the store's table and render ``table.md``/``.tex``/``.html``, the accuracy plot and ``report.html``.

    ``stages`` names the timed stages whose seconds the tables show, in that order. The Markdown table
    and any warnings are passed to ``echo``.
    """
    written = store.export(out / "results")
    frame = store.to_frame()
    if frame.empty:
        return written
    # Rows in the order the cells ran (the study's order), one per configuration, never a mix. Parsed,
    # as records written before timestamps had microseconds hold whole seconds.
    frame = frame.sort_values("timestamp", kind="stable", na_position="last", ignore_index=True,
                              key=lambda stamps: pd.to_datetime(stamps, utc=True, format="ISO8601"))
    frame = frame.assign(method=configuration_labels(frame), dataset=dataset_labels(frame))
    summary = summarize(frame, times=[f"{stage}_s" for stage in stages])
    markdown = to_markdown(summary)
    fragment = to_html(summary)
    for name, text in (("table.md", markdown), ("table.tex", to_latex(summary)), ("table.html", fragment)):
        (out / name).write_text(text)
        written.append(out / name)
    plots = plot_metric_bars(frame, "acc", path_stem=out / "acc")
    written += plots
    warnings = [oversubscription_warning(frame), store.problems_summary()]
    records = list(store.latest_by_configuration().values())
    study = ", ".join(sorted({str(s) for s in frame["study"].dropna()})) or out.name
    body = [pages.section("Results", pages.notes(warnings) + fragment
                          + f"<p>{pages.html.escape(thread_note(frame) or '')}</p>"),
            pages.section("Accuracy", pages.figure(plots[0], "ACC per dataset and configuration, mean ± std over seeds")),
            pages.section("Cells that did not finish", pages.failures(frame)),
            pages.section("Provenance", pages.provenance(records))]
    (out / "report.html").write_text(pages.page(f"cutbench study {study}", f"{len(frame)} cells in {out}", body))
    written.append(out / "report.html")
    echo(markdown)
    for line in warnings:
        if line:
            echo(line)
    return written


def render_comparison(old_store, new_store, out: Path, *, noise_factor: float = 2.0,
                      time_threshold: float = 0.25, time_floor: float = 0.01) -> tuple[pd.DataFrame, str, list[Path]]:
    """Compare two folders; write ``comparison.md`` and a self-contained ``report.html`` into ``out``.

    Returns the comparison table (see :func:`cutbench.reports.compare.compare_frames`), its Markdown
    and the written paths.
    """
    old_frame, new_frame = old_store.to_frame(), new_store.to_frame()
    table = compare_frames(old_frame, new_frame, noise_factor=noise_factor, time_threshold=time_threshold,
                           time_floor=time_floor)
    old, new = side_of(old_frame, str(old_store.root)), side_of(new_frame, str(new_store.root))
    markdown = comparison_markdown(table, old, new)
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.md").write_text(markdown)
    counts = table.verdict.value_counts().to_dict()
    summary = ", ".join(f"{counts[v]} {v}" for v in ("regression", "improvement", "same", "new", "removed")
                        if v in counts)
    records = [*old_store.latest_by_configuration().values(), *new_store.latest_by_configuration().values()]
    rule = (f"A metric changed when its mean over seeds moved by more than {noise_factor:g} seed standard "
            f"deviations; a time when it also moved by more than {time_threshold:.0%}.")
    body = [pages.section("Summary", f"<p>Old: {pages.html.escape(old.describe())}<br>New: "
                          f"{pages.html.escape(new.describe())}</p><p>{summary}. {pages.html.escape(rule)}</p>"),
            pages.section("Changes", to_html_table(table)),
            pages.section("Cells that did not finish (new)", pages.failures(new_frame)),
            pages.section("Provenance", pages.provenance(records))]
    (out / "report.html").write_text(pages.page("cutbench comparison", f"{old.label} → {new.label}", body))
    return table, markdown, [out / "comparison.md", out / "report.html"]


__all__ = ["oversubscription_warning", "render_comparison", "render_report", "thread_note"]
