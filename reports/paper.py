"""Paper tables and figures: the published number beside ours, the difference and a verdict.

Every published row of a target (see :mod:`cutbench.paper`) becomes one row: per quantity the published
value, ours (mean ± std over the seeds that finished) and Δ = ours − published, and a verdict made by
:mod:`cutbench.stats`. How a row is judged depends on the scale:

* **paper scale**: each quantity the paper publishes (ACC, NMI, ARI, a cut value) is judged on its own by
  :func:`cutbench.stats.equivalence`: ``reproduced`` when the 95 % t interval of our mean over seeds lies
  within the equivalence margin of the published value (:func:`cutbench.stats.equivalence_margin`: 0.01 for
  a score, 5 % for a cut value, plus half a unit of the published value's last digit); ``below`` /
  ``above`` when the whole interval lies beyond it; ``inconclusive`` when it straddles (too few seeds, or
  too much scatter, to say). Δ carries each quantity's mark (``=`` reproduced, ``↓`` below, ``↑`` above,
  ``?`` inconclusive). The row is ``reproduced`` when every published quantity is; otherwise it names the
  quantities that are not (``below (ARI)``, ``differs (ACC below; ARI above)``, ``inconclusive (1 seed:
  ACC, NMI)``). Whether below or above is worse follows each quantity's direction (a lower cut value is
  better), and so do the colours.
* **ci scale** is a smoke test of a stated reduction (fewer images, steps and seeds): its numbers are shown
  beside the paper's but never judged against them (``ci: not comparable``). They are checked instead
  against cutbench's own stored ci-scale results (:func:`cutbench.paper.read_ci_reference`) with
  :func:`cutbench.stats.judge_change`: ``ci: as reference`` or ``ci: changed from reference (...)``.
* ``not run: REASON`` (data missing and how to get it, or not part of this scale's study), ``out of scope:
  REASON`` (a method or dataset cutbench does not cover), ``failed: ERROR`` (every cell failed; never
  averaged as a zero), ``timed`` (times are put beside the paper's with both machines named, not judged:
  the hardware differs).

A figure's published statements (``claims``) are measured as their checks say, over every seed with the
spread shown; a claim that cannot fail at a scale (a run shorter than the claim's horizon) says so.
Claims about orderings (``orderings``: "NeuNcut outperforms Ncut and SpectralNet in almost all settings")
are checked as orderings: a paired test over shared seeds per setting, Holm-corrected over the claim.
"""

from __future__ import annotations

import html
import math
import shutil
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cutbench import CutbenchError, stats
from cutbench.paper import MANIFEST, Target, folder_records, folder_target, read_manifest
from cutbench.paper_claims import by_setting, claim_cells, iterations_per_epoch
from cutbench.paper_rows import OrderingResult, check_orderings, compare, row_id
from cutbench.reports import html as pages
from cutbench.reports.plots import new_figure, save_figure, series_colors
from cutbench.reports.tables import latex_escape
from cutbench.verdicts import CI_VERDICTS, PAPER_VERDICTS, VERDICTS, Quantity, Row, parse_number, record_value

MARKS = {"reproduced": "=", "below": "↓", "above": "↑", "inconclusive": "?"}


# ------------------------------------------------------------------------------------------ record access


# --------------------------------------------------------------------------------------------- comparing


# ------------------------------------------------------------------------------------------------ orderings


def _ordering_sentence(result: OrderingResult) -> str:
    return (f"{result.claim}. Published numbers: holds in {result.published_holds} comparisons. "
            f"Ours: {result.verdict}.")


def orderings_markdown(results: list[OrderingResult]) -> str:
    lines = []
    for result in results:
        lines += [f"**Claim:** {_ordering_sentence(result)}", "", "| setting | against | ours |",
                  "| :--- | :--- | :--- |"]
        lines += [f"| {setting} | {other} | {outcome} |" for setting, other, outcome in result.pairs]
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ figure claims


# ----------------------------------------------------------------------------------------------- tables


def _decimals_for(value: float, decimals: int = 3) -> int:
    """3 decimals for metrics; fewer for larger numbers (times, iteration counts)."""
    return 0 if abs(value) >= 100 else min(decimals, 1) if abs(value) >= 10 else decimals


def _fmt(value: float, *, decimals: int | None = None, sign: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    decimals = _decimals_for(value) if decimals is None else decimals
    text = f"{value:+.{decimals}f}" if sign else f"{value:.{decimals}f}"
    return text.replace("-0.000", "0.000").replace("+0.000", "0.000")


def _ours(q: Quantity, plus_minus: str = " ± ") -> str:
    if q.text is not None:
        return q.text
    if not math.isfinite(q.mean):
        return "—"
    decimals = _decimals_for(q.mean)
    return _fmt(q.mean) + (plus_minus + _fmt(q.std, decimals=decimals) if math.isfinite(q.std) else "")


def _published_text(q: Quantity) -> str:
    if q.published_text is not None:
        return q.published_text
    return _fmt(q.published) if q.published is not None else "—"


def _delta_text(q: Quantity) -> str:
    text = _fmt(q.delta, sign=True)
    return f"{text} {MARKS[q.verdict]}" if q.verdict in MARKS and text != "—" else text


def table_columns(rows: list[Row]) -> list[str]:
    quantities = list(rows[0].quantities) if rows else []
    return [*(rows[0].key if rows else []), *(f"{q} {what}" for q in quantities for what in ("paper", "ours", "Δ")),
            "seeds", "verdict"]


def table_cells(row: Row, plus_minus: str = " ± ") -> list[str]:
    cells = [str(v) for v in row.key.values()]
    for q in row.quantities.values():
        cells += [_published_text(q), _ours(q, plus_minus), _delta_text(q)]
    cells.append(f"{row.n_ok}/{row.n_cells}" if row.n_cells else "—")
    cells.append(row.verdict + (f" ({row.detail})" if row.detail else ""))
    return cells


def summary_counts(rows: list[Row]) -> dict:
    """How many rows fall in each verdict category (:data:`VERDICTS`), in that order."""
    counts: dict = {}
    for row in rows:
        counts[row.verdict_word] = counts.get(row.verdict_word, 0) + 1
    order = {word: i for i, word in enumerate(VERDICTS)}
    return dict(sorted(counts.items(), key=lambda item: order.get(item[0], len(order))))


def summary_line(rows: list[Row]) -> str:
    return ", ".join(f"{n} {word}" for word, n in summary_counts(rows).items())


def rule_text(scale: str) -> str:
    """How this scale's rows are judged, in one sentence (under every table of that scale)."""
    if scale == "ci":
        return ("ci scale is a smoke test of a stated reduction: ours is shown beside the paper's, never judged "
                "against it; each row is checked against cutbench's own stored ci-scale results (a change when a "
                f"test over seeds is significant at α = {stats.ALPHA:g} and larger than {stats.SCORE_MIN_EFFECT:g}; "
                "with one seed, by that tolerance alone; `cutbench paper reference` stores them).")
    return (f"reproduced: the {stats.CONFIDENCE:.0%} t interval of our mean over seeds lies within ±"
            f"{stats.SCORE_MARGIN:g} of the published score (±{stats.RELATIVE_MARGIN:.0%} for other quantities), "
            "plus half a unit of its last printed digit; below/above: the whole interval beyond that margin; "
            "inconclusive: neither (Δ marks each quantity: = reproduced, ↓ below, ↑ above, ? inconclusive).")


def to_markdown(target: Target, heading: str, rows: list[Row], scale: str = "paper",
                orderings: list[OrderingResult] = ()) -> str:
    columns = table_columns(rows)
    lines = [f"### {heading}", "", f"Source: {target.source}. {summary_line(rows)}. {rule_text(scale)}", "",
             "| " + " | ".join(columns) + " |",
             "| " + " | ".join("---:" if " " in c and c.split()[-1] in ("paper", "ours", "Δ") else ":---"
                               for c in columns) + " |"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in table_cells(row)) + " |" for row in rows]
    if orderings:
        lines += ["", orderings_markdown(list(orderings)).rstrip()]
    return "\n".join(lines) + "\n"


def to_latex(target: Target, heading: str, rows: list[Row]) -> str:
    columns = table_columns(rows)
    align = "".join("r" if c.split()[-1] in ("paper", "ours", "Δ") else "l" for c in columns)
    body = [" & ".join(latex_escape(c) for c in columns) + r" \\"]
    for row in rows:
        body.append(" & ".join(latex_escape(c).replace(latex_escape(" ± "), r" $\pm$ ")
                               for c in table_cells(row)) + r" \\")
    return "\n".join([r"\begin{table}[t]", r"\centering", r"\small",
                      rf"\caption{{{latex_escape(heading)}. {latex_escape(summary_line(rows))}.}}",
                      rf"\begin{{tabular}}{{{align}}}", r"\toprule", body[0], r"\midrule", *body[1:],
                      r"\bottomrule", r"\end{tabular}", r"\end{table}", ""])


def row_class(row: Row) -> str:
    """The HTML row class, by the verdict and each quantity's direction: ``improvement`` (green) reproduced,
    ``regression`` (red) worse than published, ``better`` (blue) better than published, ``inconclusive``
    (amber), ``new`` (grey) otherwise."""
    word = row.verdict_word
    if word == "reproduced":
        return "improvement"
    if word in ("below", "above", "differs"):
        return "regression" if row.worse else "better"
    return "inconclusive" if word == "inconclusive" else "new"


def to_html(target: Target, heading: str, rows: list[Row], scale: str = "paper",
            orderings: list[OrderingResult] = ()) -> str:
    columns = table_columns(rows)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = "".join(f'<td class="num">{html.escape(c)}</td>' if i >= len(row.key) and i < len(columns) - 2
                        else f"<td>{html.escape(c)}</td>" for i, c in enumerate(table_cells(row)))
        body.append(f'<tr class="{row_class(row)}">{cells}</tr>')
    claims = "".join(
        f"<p><strong>Claim:</strong> {html.escape(_ordering_sentence(r))}</p><table><thead><tr><th>setting</th>"
        "<th>against</th>"
        "<th>ours</th></tr></thead><tbody>"
        + "".join(f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td><td>{html.escape(c)}</td></tr>"
                  for a, b, c in r.pairs) + "</tbody></table>" for r in orderings)
    return (f'<p>Source: {html.escape(target.source)}. {html.escape(summary_line(rows))}. '
            f'{html.escape(rule_text(scale))}</p>'
            f'<table class="cutbench-paper"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
            + claims)


# ---------------------------------------------------------------------------------------------- figures


def _wrapped(title: str, figure_width: float = 8.0) -> str:
    """The title broken into lines that fit a figure ``figure_width`` inches wide at 8 points."""
    return textwrap.fill(title, max(40, int(15 * figure_width)))


def _row_label(row: Row, skip: Sequence[str] = ()) -> str:
    return " · ".join(str(v) for k, v in row.key.items() if k not in skip)


def _primary(rows: list[Row]) -> str | None:
    names = list(rows[0].quantities) if rows else []
    return "ACC" if "ACC" in names else (names[0] if names else None)


def plot_bars(target: Target, heading: str, rows: list[Row], stem: Path) -> list[Path]:
    """Published (hatched) and ours (mean ± std) per row, for the primary quantity."""
    quantity = _primary(rows)
    shown = [row for row in rows if quantity and (row.quantities[quantity].published is not None
                                                  or math.isfinite(row.quantities[quantity].mean))]
    figure = new_figure((max(6.0, 0.55 * len(shown) + 2), 4.2), 120)
    axes = figure.add_subplot()
    x = np.arange(len(shown))
    paper = [row.quantities[quantity].published or np.nan for row in shown]
    ours = [row.quantities[quantity].mean for row in shown]
    err = [row.quantities[quantity].std if math.isfinite(row.quantities[quantity].std) else 0 for row in shown]
    axes.bar(x - 0.2, paper, 0.4, label="published", color="#c9cfdb", hatch="//", edgecolor="#5b6375")
    axes.bar(x + 0.2, ours, 0.4, yerr=err, label="ours", color="#2f6db5", capsize=2)
    for i in range(len(shown)):
        if not math.isfinite(ours[i]):
            axes.text(x[i] + 0.2, 0.02, "not run", rotation=90, fontsize=7, ha="center", va="bottom")
    axes.set_xticks(x, [_row_label(r) for r in shown], rotation=60, ha="right", fontsize=7)
    axes.set_ylabel(quantity or "")
    axes.set_title(_wrapped(heading, figure.get_figwidth()), fontsize=8)
    axes.legend(fontsize=8)
    return save_figure(figure, stem)


def plot_sweep(target: Target, heading: str, rows: list[Row], stem: Path) -> list[Path]:
    """The primary quantity against a swept key column; ours as lines with bands, published as markers."""
    x_column = target.figure["x"]
    quantity = _primary(rows)
    series: dict = {}
    for row in rows:
        x = parse_number(row.key[x_column])
        if x is None:
            continue
        series.setdefault(_row_label(row, (x_column,)), []).append((x, row.quantities[quantity]))
    figure = new_figure((7.0, 4.2), 120)
    axes = figure.add_subplot()
    for color, (label, points) in zip(series_colors(len(series)), sorted(series.items()), strict=True):
        points.sort(key=lambda item: item[0])
        xs = np.array([p[0] for p in points])
        published = np.array([p[1].published if p[1].published is not None else np.nan for p in points])
        mean = np.array([p[1].mean for p in points])
        std = np.nan_to_num(np.array([p[1].std for p in points]))
        axes.plot(xs, published, "x--", color=color, alpha=0.7, label=f"{label} (published)")
        if np.isfinite(mean).any():
            axes.plot(xs, mean, "o-", color=color, label=f"{label} (ours)")
            axes.fill_between(xs, mean - std, mean + std, color=color, alpha=0.15)
    if target.figure.get("log_x", True):
        axes.set_xscale("log")
    axes.set_xlabel(x_column)
    axes.set_ylabel(quantity or "")
    axes.set_title(_wrapped(heading, figure.get_figwidth()), fontsize=8)
    axes.legend(fontsize=7)
    return save_figure(figure, stem)


def plot_gamma(target: Target, heading: str, records: list[dict], rows: list[Row], stem: Path) -> list[Path]:
    """Fig. 3 (ACC against γ, the published stable range shaded) or Fig. 4 (L_Lap and L_orth at each γ,
    the floor and the chosen γ marked, the published values dashed)."""
    search = target.figure["kind"] == "gamma_search"
    over = target.figure.get("over", "gamma")
    datasets = sorted({row.key["dataset"] for row in rows})
    figure = new_figure((5.0 * len(datasets), 4.0), 120)
    for index, dataset in enumerate(datasets):
        axes = figure.add_subplot(1, len(datasets), index + 1)
        claim = next(c for c in target.claims if c.dataset == dataset)
        groups = by_setting(claim_cells(target, claim, records), over)
        gammas = sorted(float(g) for g in groups)
        if search:
            for loss, color in (("trace", "#2f6db5"), ("orth", "#c0392b")):
                per = [stats.estimate([min((r.get("history") or {}).get(loss) or [math.nan]) for r in groups[g]])
                       for g in gammas]
                axes.errorbar(gammas, [e.mean for e in per], yerr=[np.nan_to_num(e.std) for e in per], fmt="o-",
                              color=color, capsize=2,
                              label=f"{ {'trace': 'L_Lap', 'orth': 'L_orth'}[loss]} (mean ± std over seeds)")
            for row in rows:
                if row.key["dataset"] != dataset or row.quantities["value"].published is None:
                    continue
                value = row.quantities["value"].published
                if "floor" in row.key["quantity"]:
                    axes.axhline(value, color="#c0392b", ls="--", lw=1, label=f"published floor {value:g}")
                else:
                    axes.axvline(value, color="k", ls="--", lw=1, label=f"published γ ≥ {value:g}")
                    chosen = sorted(row.quantities["value"].values.values())
                    for position, gamma in enumerate(chosen):
                        axes.axvline(gamma, color="#2f9e55", lw=1.5, alpha=0.6,
                                     label=f"ours: chosen γ per seed ({', '.join(f'{g:g}' for g in chosen)})"
                                     if position == 0 else None)
            axes.set_ylabel("lowest loss over training")
        else:
            means = [stats.estimate([record_value(r, "metrics.acc") for r in groups[g]]) for g in gammas]
            axes.errorbar(gammas, [e.mean for e in means], yerr=[np.nan_to_num(e.std) for e in means],
                          fmt="o-", color="#2f6db5", capsize=2, label="ours (mean ± std over seeds)")
            row = next(r for r in rows if r.key["dataset"] == dataset)
            low, high = (float(p) for p in row.quantities["value"].published_text.split("-"))
            axes.axvspan(low, high, color="#c9cfdb", alpha=0.6, label=f"published stable γ {low:g}-{high:g}")
            axes.set_ylabel("ACC")
        axes.set_xscale("log")
        axes.set_xlabel("γ")
        axes.set_title(f"{dataset}", fontsize=9)
        axes.legend(fontsize=7)
    figure.suptitle(_wrapped(heading, figure.get_figwidth()), fontsize=8)
    return save_figure(figure, stem)


def plot_curves(target: Target, heading: str, records: list[dict], stem: Path) -> list[Path]:
    """Fig. 5: L_orth and L_Lap against the training iteration, one line per seed."""
    figure = new_figure((9.0, 3.8), 120)
    ok = [r for r in records if r["status"] == "ok" and (r.get("history") or {}).get("orth")]
    for index, (loss, label) in enumerate((("orth", "L_orth"), ("trace", "L_Lap"))):
        axes = figure.add_subplot(1, 2, index + 1)
        for color, record in zip(series_colors(len(ok)), ok, strict=True):
            values = record["history"][loss]
            steps = iterations_per_epoch(record) * (np.arange(len(values)) + 1)
            axes.plot(steps, values, color=color,
                      label=f"{record['config']['dataset']['name']} seed {record['config']['seed']}")
        axes.set_xlabel("iteration")
        axes.set_ylabel(f"{label} (epoch mean)")
        axes.legend(fontsize=7)
    figure.suptitle(_wrapped(heading, figure.get_figwidth()), fontsize=8)
    return save_figure(figure, stem)


def plot_network_size(target: Target, heading: str, records: list[dict], rows: list[Row], stem: Path) -> list[Path]:
    """Fig. 2: ACC (mean ± std over seeds) against the width, one bar series per depth; the paper's best
    network (the claim's setting) is starred."""
    by_network: dict[tuple, list[float]] = {}
    for record in records:
        if record["status"] == "ok":
            dims = tuple(record["config"]["method"]["params"]["hidden_dims"])
            by_network.setdefault(dims, []).append(record["metrics"]["acc"])
    figure = new_figure((7.0, 3.8), 120)
    axes = figure.add_subplot(1, 1, 1)
    widths = sorted({dims[0] for dims in by_network})
    depths = sorted({len(dims) for dims in by_network})
    best = next((q.published_text for row in rows for q in row.quantities.values() if q.published_text), None)
    bar = 0.8 / max(1, len(depths))
    for offset, (color, depth) in enumerate(zip(series_colors(len(depths)), depths, strict=True)):
        for position, width in enumerate(widths):
            values = by_network.get((width,) * depth)
            if not values:
                continue
            x = position + (offset - (len(depths) - 1) / 2) * bar
            axes.bar(x, np.mean(values), bar, yerr=np.std(values) if len(values) > 1 else None, color=color,
                     label=f"{depth} hidden layer{'s' if depth > 1 else ''}" if position == 0 else None)
            if best == "x".join([str(width)] * depth):
                axes.annotate("★ paper's best", (x, np.mean(values)), ha="center", va="bottom", fontsize=7)
    axes.set_xticks(range(len(widths)), [str(width) for width in widths])
    axes.set_xlabel("width of each hidden layer")
    axes.set_ylabel("ACC (ours)")
    axes.legend(fontsize=7)
    figure.suptitle(_wrapped(heading, figure.get_figwidth()), fontsize=8)
    return save_figure(figure, stem)


def plot_predictions(target: Target, heading: str, store, records: list[dict], stem: Path) -> list[Path]:
    """Fig. 1: what the paper shows (the true shapes, 'nearly 100 %') beside what NeuNcut labels here."""
    from cutbench.datasets import load_dataset

    ok = [r for r in records if r["status"] == "ok"]
    shown = {}
    for record in sorted(ok, key=lambda r: r["config"]["seed"]):
        shown.setdefault(record["config"]["dataset"]["name"], record)
    figure = new_figure((8.0, 3.6 * max(1, len(shown))), 110)
    for index, (name, record) in enumerate(sorted(shown.items())):
        config = record["config"]["dataset"]
        data = load_dataset(config["name"], **config["params"])
        labels = store.labels(record["key"])
        pick = np.random.default_rng(0).choice(len(labels), size=min(20000, len(labels)), replace=False)
        for column, (title, colouring) in enumerate((("published: the true shapes (ACC ≈ 1.0)", data.y),
                                                     (f"ours: NeuNcut, ACC {record['metrics']['acc']:.3f}", labels))):
            axes = figure.add_subplot(len(shown), 2, 2 * index + column + 1)
            axes.scatter(data.X[pick, 0], data.X[pick, 1], c=colouring[pick], s=1, cmap="coolwarm", rasterized=True)
            axes.set_title(f"{name}, {len(labels):,} points — {title}", fontsize=8)
            axes.set_aspect("equal")
            axes.set_xticks([])
            axes.set_yticks([])
    figure.suptitle(_wrapped(heading, figure.get_figwidth()), fontsize=8)
    return save_figure(figure, stem)


# ----------------------------------------------------------------------------------------------- render


@dataclass(frozen=True)
class FigureInput:
    """What a figure of a paper target may draw on: the target, its heading, the rows, the records, the store."""

    target: Target
    heading: str
    rows: list
    records: list
    store: object


FIGURES: dict[str, Callable[[FigureInput, Path], list[Path]]] = {
    "bars": lambda d, stem: plot_bars(d.target, d.heading, d.rows, stem),
    "sweep": lambda d, stem: plot_sweep(d.target, d.heading, d.rows, stem),
    "gamma_sensitivity": lambda d, stem: plot_gamma(d.target, d.heading, d.records, d.rows, stem),
    "gamma_search": lambda d, stem: plot_gamma(d.target, d.heading, d.records, d.rows, stem),
    "curves": lambda d, stem: plot_curves(d.target, d.heading, d.records, stem),
    "predictions": lambda d, stem: plot_predictions(d.target, d.heading, d.store, d.records, stem),
    "network_size": lambda d, stem: plot_network_size(d.target, d.heading, d.records, d.rows, stem),
    "none": lambda d, stem: [],
}
"""Every figure kind a target may ask for (``figure: {kind: ...}``) and how it is drawn: a new kind is one
function and one entry here."""


def check_figure(target: Target) -> str:
    """The target's figure kind, refused when no entry of :data:`FIGURES` draws it."""
    kind = target.figure.get("kind")
    if kind not in FIGURES:
        raise CutbenchError(f"{target.path}: figure kind {kind!r} is unknown; accepted: {', '.join(FIGURES)} "
                            "(cutbench.reports.paper.FIGURES).")
    return kind


def _reference_for(manifest: dict) -> dict | None:
    """The ci reference a run is checked against: none for a run given ``--set`` overrides (another
    configuration than the reference's), the packaged one otherwise."""
    return {"targets": {}} if manifest.get("overrides") else None


def render_paper_target(store, folder: Path, *, target: str | None = None, scale: str | None = None,
                        echo=print) -> tuple[list[Row], list[Path]]:
    """Write ``paper.md``, ``paper.tex``, ``paper.html`` (styled, self-contained) and the figure of the paper
    run in ``folder`` (see :func:`cutbench.paper.folder_target`); return the rows and the files."""
    folder_target(folder, target=target, scale=scale)  # the folder holds what was asked for
    found, scale, study, records, left_out = folder_records(folder, store)
    heading = found.heading(scale, read_manifest(folder).get("overrides", ()))
    if left_out:
        echo(f"{left_out} stored record(s) of {folder} are not cells of {found.name} as defined now (an earlier "
             "definition of the target): left out.")
    rows = compare(found, scale, records, study, labels=store.labels,
                   reference=_reference_for(read_manifest(folder)))
    orderings = check_orderings(found, scale, rows)
    written = []
    markdown = to_markdown(found, heading, rows, scale, orderings)
    for name, text in (("paper.md", markdown), ("paper.tex", to_latex(found, heading, rows))):
        (folder / name).write_text(text)
        written.append(folder / name)
    plots = FIGURES[check_figure(found)](FigureInput(found, heading, rows, records, store), folder / "paper_figure")
    written += plots
    sections = [pages.section("Published beside ours", to_html(found, heading, rows, scale, orderings))]
    if plots:
        sections.append(pages.section("Figure", pages.figure(plots[0], heading)))
    if found.notes:
        sections.append(pages.section("Notes", "".join(f"<p>{html.escape(n)}</p>" for n in found.notes)))
    if records:
        sections.append(pages.section("Provenance", pages.provenance(records)))
    (folder / "paper.html").write_text(pages.page(heading, f"{len(records)} cells in {folder}", sections))
    written.append(folder / "paper.html")
    echo(markdown)
    return rows, written


def paper_folders(paths: Sequence[Path]) -> list[Path]:
    """The paper runs' folders among ``paths`` and directly under them, in order, each once."""
    found = []
    for path in map(Path, paths):
        candidates = [path] if (path / MANIFEST).is_file() else sorted(p for p in path.iterdir()
                                                                      if (p / MANIFEST).is_file()) \
            if path.is_dir() else []
        if not candidates:
            raise CutbenchError(f"{path} is not a paper run's folder and holds none (no {MANIFEST}); make them with "
                                "`cutbench paper run TARGET --out FOLDER`.")
        found += [c for c in candidates if c not in found]
    return found


REPORT_HEADER = """# Reproduction report: the NeuNcut and CNC papers' tables beside cutbench's

Written by `cutbench paper report` from stored results; regenerate it with

```bash
export CUTBENCH_DATA=DIR   # holding mnist/ and fashion-mnist/ (../shared/data)
cutbench paper run all --scale ci --out results/paper-ci
cutbench paper run TARGET --scale paper --out results/paper-full/TARGET-paper [--only ...]   # the runs listed below
cutbench paper report results/paper-ci results/paper-full --evidence benchmarks/paper/evidence.md \\
    --output benchmarks/paper/README.md
```

Every table: the published value, ours (mean ± std over seeds), Δ = ours − published and a verdict.
`ci scale` tables are a stated reduction of the paper's protocol (named in each title) that runs in
minutes on a 2-core CPU: a smoke test that every target runs end to end, never judged against the
paper's numbers; each ci row is checked against cutbench's own stored ci-scale results instead. `paper
scale` tables follow the paper's protocol (Table 1's hyper-parameters, the reference budgets) and are
judged quantity by quantity with confidence intervals over seeds.
"""


def _summary_table(scale: str, entries: list[tuple[str, list[Row], float]]) -> list[str]:
    """One scale's summary: per target its rows by verdict, then a total that counts each distinct experiment
    (the same cells behind rows of two targets) once."""
    words = PAPER_VERDICTS if scale == "paper" else CI_VERDICTS
    lines = ["| target | rows | " + " | ".join(words) + " | cell time [min] |",
             "| :--- | ---: | " + " | ".join("---:" for _ in words) + " | ---: |"]
    seen: set = set()
    totals = {word: 0 for word in words}
    shared = 0
    for name, rows, minutes in entries:
        counts = summary_counts(rows)
        lines.append(f"| {name} | {len(rows)} | " + " | ".join(str(counts.get(w, 0)) for w in words)
                     + f" | {minutes:.1f} |")
        for row in rows:
            identity = row.cells or (name, row_id(row.key))
            if identity in seen:
                shared += 1
                continue
            seen.add(identity)
            totals[row.verdict_word] = totals.get(row.verdict_word, 0) + 1
    lines.append(f"| **distinct experiments** | {sum(totals.values())} | "
                 + " | ".join(str(totals.get(w, 0)) for w in words) + " | |")
    if shared:
        lines.append(f"\n{shared} row(s) show the same cells as a row of another target (e.g. Ncut's setting IV in "
                     "Tables 2 and 8) and are counted once in the total.")
    return lines


def reproduction_report(paths: Sequence[Path], evidence: str | None = None, figures: Path | None = None) -> str:
    """The reproduction report (Markdown) of the paper runs' folders in ``paths``: a summary of the verdicts per
    scale, ``evidence`` (Markdown: what was tried for the gaps, written by hand from measurements), then every
    target's table, its orderings, notes and what its paper scale needs.

    With ``figures`` (a folder beside the report), each run's figure is copied there as ``<run folder>.png``
    and shown in the report by a relative link, so the report can be checked in with its figures.
    """
    from cutbench.store import ResultStore

    sections, by_scale = [], {"paper": [], "ci": []}
    for folder in paper_folders(paths):
        store = ResultStore(folder)
        target, scale, study, records, _ = folder_records(folder, store)
        heading = target.heading(scale, read_manifest(folder).get("overrides", ()))
        rows = compare(target, scale, records, study, labels=store.labels,
                       reference=_reference_for(read_manifest(folder)))
        cell_seconds = sum(r.get("cell_wall_seconds", 0.0) for r in records)
        by_scale[scale].append((target.name, rows, cell_seconds / 60))
        machines = sorted({(r.get("provenance") or {}).get("cpu") or "unknown" for r in records})
        body = [to_markdown(target, heading, rows, scale, check_orderings(target, scale, rows)),
                f"{len(records)} cells, {cell_seconds / 60:.1f} min of cell time on {', '.join(machines) or '-'}."]
        body += [f"- {note}" for note in target.notes]
        if target.paper_scale:  # at paper scale too: what a partial run left out needs, and its cost
            body.append(f"\nPaper scale: {target.paper_scale}")
        if (folder / "paper_figure.png").is_file():
            if figures is None:
                body.append(f"\nFigure: `{folder.name}/paper_figure.png`.")
            else:
                figures.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(folder / "paper_figure.png", figures / f"{folder.name}.png")
                body.append(f"\n![{target.name}, {scale} scale]({figures.name}/{folder.name}.png)")
        sections.append("\n".join(body))
    summary = []
    for scale, title in (("paper", "Paper scale"), ("ci", "ci scale (smoke test, not compared with the paper)")):
        if by_scale[scale]:
            summary += [f"### {title}", rule_text(scale), "\n".join(_summary_table(scale, by_scale[scale]))]
    return "\n\n".join([REPORT_HEADER.rstrip(), "## Summary", *summary,
                         *([evidence.strip()] if evidence else []), "## Every target", *sections]) + "\n"


def ci_reference(paths: Sequence[Path]) -> dict:
    """cutbench's own ci-scale results of the paper runs in ``paths``, as :func:`cutbench.paper.read_ci_reference`
    reads them: per target, row and quantity, each seed's value; with the machine and commit they came from."""
    from cutbench.provenance import cpu_model, git_state
    from cutbench.store import ResultStore

    targets: dict = {}
    for folder in paper_folders(paths):
        target, scale, study, records, _ = folder_records(folder, ResultStore(folder))
        if scale != "ci":
            raise CutbenchError(f"{folder} holds a {scale}-scale run; the reference is made of ci-scale runs only.")
        if read_manifest(folder).get("overrides"):
            raise CutbenchError(f"{folder} was run with --set {', '.join(read_manifest(folder)['overrides'])}: the "
                                "reference is made of ci-scale runs as the targets define them; run them without --set.")
        for row in compare(target, scale, records, study, reference={"targets": {}}):
            values = {column: {str(seed): v for seed, v in q.values.items()} for column, q in row.quantities.items()
                      if q.values and not q.seconds}
            if values:
                targets.setdefault(target.name, {})[row_id(row.key)] = values
    return {"cpu": cpu_model(), "commit": git_state()["commit"], "targets": targets}


__all__ = ["FIGURES", "MARKS", "FigureInput", "check_figure", "ci_reference", "orderings_markdown", "paper_folders", "render_paper_target", "reproduction_report",
           "row_class", "rule_text", "summary_counts", "summary_line", "table_cells", "table_columns", "to_html",
           "to_latex", "to_markdown"]
