"""Paper tables and figures: the published number beside ours, the difference and a verdict.

Every published row of a target (see :mod:`cutbench.paper`) becomes one row: per quantity the
published value, ours (mean ± std over the seeds that finished) and Δ = ours − published, and one
verdict from the accuracy (or, without one, the first compared quantity):

* ``reproduced``: |Δ| ≤ max(0.01, 2·std);
* ``below`` / ``above``: outside that band, lower / higher than published;
* ``not run: REASON``: no cell of this folder measures the row (data missing and how to get it, not
  part of this scale's study, or not run yet);
* ``failed: ERROR``: every cell of the row failed or timed out (never averaged as a zero).

Times (``timings.*``) are not given a verdict: they are put beside the paper's with both machines
named. A figure's published statements (``claims``) are measured as their checks say; a claim that
is not a number is ``reproduced`` or ``differs``.
"""

from __future__ import annotations

import html
import math
import shutil
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cutbench import CutbenchError
from cutbench.paper import MANIFEST, Target, folder_records, folder_target, read_manifest, record_fields
from cutbench.reports import html as pages
from cutbench.reports.plots import new_figure, save_figure, series_colors
from cutbench.reports.tables import latex_escape

TOLERANCE = 0.01
"""The smallest band around a published value that counts as reproduced (one point of ACC)."""
VERDICTS = ("reproduced", "below", "above", "differs", "not run", "failed", "timed")
STABLE_DROP = 0.02
"""A gamma is in the stable range while its mean ACC is within this of the best gamma's (Fig. 3's reading)."""
FLOOR_TOLERANCE = 0.02
"""Relative tolerance on the L_orth floor, as :func:`cutbench.methods.neuncut.search_gamma` uses."""


def verdict(published: float | None, mean: float, std: float) -> str:
    """``reproduced`` if |mean − published| ≤ max(:data:`TOLERANCE`, 2·std), else ``below`` or ``above``."""
    if published is None or not math.isfinite(mean):
        return "n/a"
    band = max(TOLERANCE, 2 * (std if math.isfinite(std) else 0.0))
    if abs(mean - published) <= band + 1e-12:
        return "reproduced"
    return "below" if mean < published else "above"


@dataclass
class Quantity:
    published: float | None
    mean: float = math.nan
    std: float = math.nan
    n: int = 0
    text: str | None = None  # a claim that is not a number (e.g. "512x512")
    published_text: str | None = None

    @property
    def delta(self) -> float:
        return self.mean - self.published if self.published is not None and math.isfinite(self.mean) else math.nan


@dataclass
class Row:
    """One published row (or claim) and what this folder measured for it."""

    key: dict
    quantities: dict
    verdict: str
    detail: str = ""
    n_ok: int = 0
    n_cells: int = 0
    seeds: list = field(default_factory=list)

    @property
    def verdict_word(self) -> str:
        return self.verdict.split(":")[0]


# ------------------------------------------------------------------------------------------ record access


def record_value(record: dict, path: str) -> float:
    """A number in a record by dotted path (``metrics.acc``, ``timings.fit.seconds``); NaN if absent."""
    value = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return math.nan
        value = value[part]
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def _quantity_spec(spec) -> tuple[tuple[str, ...], float]:
    """``(record paths, divisor)`` of a published quantity: ``metrics.acc``, or ``{path: ..., divide_by: 60}``
    where ``path`` may be a list of paths to add up (stages a method does not have count as absent)."""
    if isinstance(spec, str):
        return (spec,), 1.0
    paths = spec["path"] if isinstance(spec["path"], list) else [spec["path"]]
    return tuple(paths), float(spec.get("divide_by", 1.0))


def _quantity_value(record: dict, paths: tuple[str, ...], divisor: float) -> float:
    values = [record_value(record, path) for path in paths]
    present = [value for value in values if math.isfinite(value)]
    return sum(present) / divisor if present else math.nan


def _is_time(spec) -> bool:
    return all(path.startswith("timings.") for path in _quantity_spec(spec)[0])


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return math.nan, math.nan
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def _number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if text else ""


def _failure(record: dict) -> str:
    """``failed: ERROR`` (``failed: timeout: ...`` for a cell that ran out of time)."""
    status = "" if record["status"] == "failed" else f"{record['status']}: "
    return f"failed: {status}{_first_line(record.get('error'))}"


def _missing_data_reason(records: list[dict]) -> str | None:
    for record in records:
        if record.get("error_kind") == "data_missing":
            lines = (record.get("error") or "").splitlines()
            how = next((line for line in lines if line.startswith("To get it")), _first_line(record.get("error")))
            return f"data missing: {how}"
    return None


# --------------------------------------------------------------------------------------------- comparing


def compare(target: Target, scale: str, records: list[dict], study=None) -> list[Row]:
    """One :class:`Row` per published row (or claim) of ``target``, from the ``records`` of its ``study``
    (default: the study of ``scale``)."""
    if target.claims:
        return [_claim_row(target, claim, records) for claim in target.claims]
    fields = [(record, record_fields(record)) for record in records]
    study_cells = [cell.fields() for cell in (study or target.study(scale)).cells]
    rows = []
    for _, published in target.published().iterrows():
        key = {column: published[column] for column in target.key}
        matching = [record for record, f in fields if target.matches(published, f)]
        ok = [record for record in matching if record["status"] == "ok"]
        quantities = {}
        for column, spec in target.quantities.items():
            paths, divisor = _quantity_spec(spec)
            mean, std = _mean_std([_quantity_value(r, paths, divisor) for r in ok])
            quantities[column] = Quantity(_number(published[column]), mean, std, len(ok))
        row = Row(key, quantities, "", n_ok=len(ok), n_cells=len(matching),
                  seeds=sorted(r["config"]["seed"] for r in ok))
        if ok:
            row.verdict = _row_verdict(target, quantities)
            failed = [r for r in matching if r["status"] != "ok"]
            if failed:
                row.detail = (f"{len(failed)} of {len(matching)} cells did not finish "
                              f"({failed[0]['status']}: {_first_line(failed[0].get('error'))})")
            if row.verdict == "timed":
                row.detail = _hardware_note(target, published, ok)
        elif matching:
            missing = _missing_data_reason(matching)
            row.verdict = f"not run: {missing}" if missing else _failure(matching[0])
        else:
            reason = target.not_run_reason(published)
            if reason is None:
                planned = any(target.matches(published, cell) for cell in study_cells)
                reason = (f"not run yet: `cutbench paper run {target.name} --scale {scale}` runs it" if planned
                          else f"not part of the {scale}-scale study"
                               + (f" ({target.ci_why})" if scale == "ci" else ""))
            row.verdict = f"not run: {reason}"
        rows.append(row)
    return rows


def _row_verdict(target: Target, quantities: dict) -> str:
    compared = [column for column, spec in target.quantities.items()
                if not _is_time(spec) and quantities[column].published is not None]
    if not compared:
        return "timed" if any(_is_time(spec) for spec in target.quantities.values()) \
            else "not run: the paper gives no number for this row"
    primary = "ACC" if "ACC" in compared else compared[0]
    q = quantities[primary]
    return verdict(q.published, q.mean, q.std)


def _hardware_note(target: Target, published, records: list[dict]) -> str:
    theirs = published.get(target.time_hardware, "") if target.time_hardware else ""
    prov = records[-1].get("provenance") or {}
    ours = prov.get("gpu_name") if str(records[-1]["config"].get("device", "")).startswith("cuda") else prov.get("cpu")
    threads = (prov.get("threads") or {}).get("torch")
    return (f"paper: {theirs or 'hardware not stated'}; ours: {ours or 'unknown'}"
            + (f", {threads} torch threads" if threads else ""))


# ------------------------------------------------------------------------------------------ figure claims


def _claim_cells(target: Target, claim, records: list[dict]) -> list[tuple[dict, dict]]:
    dataset = {m.column: m for m in target.match}.get("dataset")
    wanted_dataset = dataset.wanted(claim.dataset) if dataset else None
    out = []
    for record in records:
        if record["status"] != "ok":
            continue
        f = record_fields(record)
        if wanted_dataset is not None and f.get("dataset") != wanted_dataset:
            continue
        if all(str(f.get(k)) == str(v) for k, v in claim.where.items()):
            out.append((record, f))
    return out


def _by_setting(cells, over: str) -> dict:
    groups: dict = {}
    for record, f in cells:
        value = f.get(over)
        groups.setdefault(tuple(value) if isinstance(value, list) else value, []).append(record)
    return groups


def _order(value) -> tuple:
    """Settings in a natural order: networks by depth then widths, numbers by value."""
    if isinstance(value, tuple):
        return (len(value), value)
    return (0, (value,)) if isinstance(value, (int, float)) else (1, (str(value),))


def _setting_text(value) -> str:
    return "x".join(map(str, value)) if isinstance(value, tuple) else f"{value:g}" if isinstance(value, float) \
        else str(value)


def _claim_row(target: Target, claim, records: list[dict]) -> Row:
    published = target.published()
    match = published[(published.figure == claim.figure) & (published.dataset == claim.dataset)
                      & (published.quantity == claim.quantity)].iloc[0]
    key = {"figure": claim.figure, "dataset": claim.dataset, "quantity": claim.quantity}
    text = match["value"]
    cells = _claim_cells(target, claim, records)
    q = Quantity(_number(text), published_text=text)
    row = Row(key, {"value": q}, "", n_ok=len(cells), n_cells=len(cells),
              seeds=sorted({r["config"]["seed"] for r, _ in cells}))
    if not cells:
        failed = [r for r in records if r["status"] != "ok"]
        row.verdict = "not run: no finished cell for this claim" if not failed else _failure(failed[0])
        return row
    check = claim.check
    if check == "mean":
        q.mean, q.std = _mean_std([record_value(r, "metrics.acc") for r, _ in cells])
        q.n = len(cells)
        row.verdict = verdict(q.published, q.mean, q.std)
    elif check == "best_setting":
        groups = _by_setting(cells, claim.over)
        means = {value: _mean_std([record_value(r, "metrics.acc") for r in rs])[0] for value, rs in groups.items()}
        best = max(means, key=means.get)
        q.text = f"{_setting_text(best)} (ACC {means[best]:.3f})"
        row.verdict = "reproduced" if _setting_text(best) == text else "differs"
        row.detail = "mean ACC per setting: " + ", ".join(f"{_setting_text(v)} {m:.3f}" for v, m in
                                                          sorted(means.items(), key=lambda item: _order(item[0])))
    elif check == "stable_range":
        groups = _by_setting(cells, claim.over)
        means = {float(value): _mean_std([record_value(r, "metrics.acc") for r in rs])[0]
                 for value, rs in groups.items()}
        best = max(means.values())
        stable = sorted(value for value, mean in means.items() if mean >= best - STABLE_DROP)
        q.text = f"{stable[0]:g}-{stable[-1]:g}"
        low, high = (float(part) for part in text.split("-"))
        row.verdict = "reproduced" if stable[0] <= low and stable[-1] >= high else "differs"
        row.detail = (f"γ within {STABLE_DROP} of the best mean ACC ({best:.3f}); mean ACC per γ: "
                      + ", ".join(f"{v:g} {m:.3f}" for v, m in sorted(means.items())))
    elif check in ("orth_floor", "gamma_threshold"):
        floors, chosen = _gamma_search_per_seed(cells, claim.over)
        values = floors if check == "orth_floor" else chosen
        q.mean, q.std = _mean_std(values)
        q.n = len(values)
        if check == "orth_floor":
            row.verdict = verdict(q.published, q.mean, q.std)
        else:
            q.text = ", ".join(f"{v:g}" for v in chosen) + " (per seed)"
            median = float(np.median(chosen))
            row.verdict = ("reproduced" if math.isclose(median, q.published) else
                           "below" if median < q.published else "above")
        row.detail = "per seed: " + ", ".join(f"floor {f:.4f} → γ {c:g}" for f, c in zip(floors, chosen, strict=True))
    elif check == "iterations_to_floor":
        iterations = [_iterations_to_floor(record) for record, _ in cells]
        q.mean, q.std = _mean_std(iterations)
        q.n = len(iterations)
        row.verdict = "reproduced" if q.mean <= q.published else "above"
        row.detail = ("iterations until L_orth is within 2 % of its lowest value, per seed: "
                      + ", ".join(f"{i:.0f}" for i in iterations))
    return row


def _gamma_search_per_seed(cells, over: str) -> tuple[list[float], list[float]]:
    """The §4.6 search on stored training histories, one per seed: ``(floors, chosen gammas)``."""
    from cutbench.methods.neuncut import choose_gamma

    by_seed: dict = {}
    for record, f in cells:
        history = record.get("history") or {}
        if history.get("orth"):
            by_seed.setdefault(record["config"]["seed"], []).append((float(f[over]), min(history["orth"])))
    floors, chosen = [], []
    for seed in sorted(by_seed):
        gammas, orth = zip(*by_seed[seed], strict=True)
        floor, gamma = choose_gamma(gammas, orth, FLOOR_TOLERANCE)
        floors.append(floor)
        chosen.append(gamma)
    return floors, chosen


def iterations_per_epoch(record: dict) -> int:
    """Mini-batch steps per epoch of a NeuNcut-style trainer: the training points in batches."""
    params = record["config"]["method"]["params"]
    batch = params.get("batch_size") or record.get("n_fit", 1)
    return max(1, math.ceil(record.get("n_fit", batch) / batch))


def _iterations_to_floor(record: dict) -> float:
    from cutbench.methods.neuncut import on_floor

    orth = (record.get("history") or {}).get("orth") or []
    if not orth:
        return math.nan
    floor = min(orth)
    epoch = next(i for i, value in enumerate(orth) if on_floor(value, floor, FLOOR_TOLERANCE))
    return float((epoch + 1) * iterations_per_epoch(record))


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


def table_columns(rows: list[Row]) -> list[str]:
    quantities = list(rows[0].quantities) if rows else []
    return [*(rows[0].key if rows else []), *(f"{q} {what}" for q in quantities for what in ("paper", "ours", "Δ")),
            "seeds", "verdict"]


def table_cells(row: Row, plus_minus: str = " ± ") -> list[str]:
    cells = [str(v) for v in row.key.values()]
    for q in row.quantities.values():
        cells += [_published_text(q), _ours(q, plus_minus), _fmt(q.delta, sign=True)]
    cells.append(f"{row.n_ok}/{row.n_cells}" if row.n_cells else "—")
    cells.append(row.verdict + (f" ({row.detail})" if row.detail else ""))
    return cells


def summary_counts(rows: list[Row]) -> dict:
    """How many rows are reproduced, below, above, differ, were not run, failed, or are timings."""
    counts = {word: 0 for word in VERDICTS}
    for row in rows:
        counts[row.verdict_word] = counts.get(row.verdict_word, 0) + 1
    return {word: n for word, n in counts.items() if n}


def summary_line(rows: list[Row]) -> str:
    return ", ".join(f"{n} {word}" for word, n in summary_counts(rows).items())


def to_markdown(target: Target, heading: str, rows: list[Row]) -> str:
    columns = table_columns(rows)
    lines = [f"### {heading}", "", f"Source: {target.source}. {summary_line(rows)}.", "",
             "| " + " | ".join(columns) + " |",
             "| " + " | ".join("---:" if " " in c and c.split()[-1] in ("paper", "ours", "Δ") else ":---"
                               for c in columns) + " |"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in table_cells(row)) + " |" for row in rows]
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


_VERDICT_CLASS = {"reproduced": "improvement", "below": "regression", "above": "improvement", "differs": "regression"}


def to_html(target: Target, heading: str, rows: list[Row]) -> str:
    columns = table_columns(rows)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        css = _VERDICT_CLASS.get(row.verdict_word, "new")
        cells = "".join(f'<td class="num">{html.escape(c)}</td>' if i >= len(row.key) and i < len(columns) - 2
                        else f"<td>{html.escape(c)}</td>" for i, c in enumerate(table_cells(row)))
        body.append(f'<tr class="{css}">{cells}</tr>')
    return (f'<p>Source: {html.escape(target.source)}. {html.escape(summary_line(rows))}.</p>'
            f'<table class="cutbench-paper"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')


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
        x = _number(row.key[x_column])
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
        groups = _by_setting(_claim_cells(target, claim, records), over)
        gammas = sorted(float(g) for g in groups)
        if search:
            for loss, color in (("trace", "#2f6db5"), ("orth", "#c0392b")):
                per = [_mean_std([min((r.get("history") or {}).get(loss) or [math.nan]) for r in groups[g]])[0]
                       for g in gammas]
                axes.plot(gammas, per, "o-", color=color, label={"trace": "L_Lap", "orth": "L_orth"}[loss])
            for row in rows:
                if row.key["dataset"] != dataset or row.quantities["value"].published is None:
                    continue
                value = row.quantities["value"].published
                if "floor" in row.key["quantity"]:
                    axes.axhline(value, color="#c0392b", ls="--", lw=1, label=f"published floor {value:g}")
                else:
                    axes.axvline(value, color="k", ls="--", lw=1, label=f"published γ ≥ {value:g}")
                    if math.isfinite(row.quantities["value"].mean):
                        axes.axvline(row.quantities["value"].mean, color="#2f9e55", lw=1.5,
                                     label=f"ours: γ = {row.quantities['value'].mean:g}")
            axes.set_ylabel("lowest loss over training")
        else:
            means = [_mean_std([record_value(r, "metrics.acc") for r in groups[g]]) for g in gammas]
            axes.errorbar(gammas, [m for m, _ in means], yerr=[0 if not math.isfinite(s) else s for _, s in means],
                          fmt="o-", color="#2f6db5", capsize=2, label="ours")
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
    rows = compare(found, scale, records, study)
    written = []
    markdown = to_markdown(found, heading, rows)
    for name, text in (("paper.md", markdown), ("paper.tex", to_latex(found, heading, rows))):
        (folder / name).write_text(text)
        written.append(folder / name)
    kind = found.figure["kind"]
    stem = folder / "paper_figure"
    plots = []
    if kind == "bars":
        plots = plot_bars(found, heading, rows, stem)
    elif kind == "sweep":
        plots = plot_sweep(found, heading, rows, stem)
    elif kind in ("gamma_sensitivity", "gamma_search"):
        plots = plot_gamma(found, heading, records, rows, stem)
    elif kind == "curves":
        plots = plot_curves(found, heading, records, stem)
    elif kind == "predictions":
        plots = plot_predictions(found, heading, store, records, stem)
    elif kind == "network_size":
        plots = plot_network_size(found, heading, records, rows, stem)
    written += plots
    sections = [pages.section("Published beside ours", to_html(found, heading, rows))]
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
minutes on a 2-core CPU; they check that every target runs end to end, not that the paper's numbers
hold. `paper scale` tables follow the paper's protocol (Table 1's hyper-parameters, the reference
budgets).
"""


def reproduction_report(paths: Sequence[Path], evidence: str | None = None, figures: Path | None = None) -> str:
    """The reproduction report (Markdown) of the paper runs' folders in ``paths``: a summary of the verdicts,
    ``evidence`` (Markdown: what was tried for the gaps, written by hand from measurements), then every
    target's table, its notes and what its paper scale needs.

    With ``figures`` (a folder beside the report), each run's figure is copied there as ``<run folder>.png``
    and shown in the report by a relative link, so the report can be checked in with its figures.
    """
    from cutbench.store import ResultStore

    sections, summary, totals = [], [], {}
    for folder in paper_folders(paths):
        target, scale, study, records, _ = folder_records(folder, ResultStore(folder))
        heading = target.heading(scale, read_manifest(folder).get("overrides", ()))
        rows = compare(target, scale, records, study)
        counts = summary_counts(rows)
        for word, n in counts.items():
            totals[word] = totals.get(word, 0) + n
        cell_seconds = sum(r.get("cell_wall_seconds", 0.0) for r in records)
        machines = sorted({(r.get("provenance") or {}).get("cpu") or "unknown" for r in records})
        summary.append(f"| {target.name} | {scale} | {len(rows)} | "
                       + " | ".join(str(counts.get(word, 0)) for word in VERDICTS) + f" | {cell_seconds / 60:.1f} |")
        body = [to_markdown(target, heading, rows),
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
    header = ("| target | scale | rows | " + " | ".join(VERDICTS) + " | cell time [min] |\n"
              + "| :--- | :--- | ---: | " + " | ".join("---:" for _ in VERDICTS) + " | ---: |")
    total = ", ".join(f"{n} {word}" for word, n in totals.items() if n)
    return "\n\n".join([
        REPORT_HEADER.rstrip(),
        "## Summary",
        f"Verdict rule: `reproduced` when |ours − published| ≤ max({TOLERANCE}, 2·std over seeds) on ACC (or the "
        "first compared quantity); `below`/`above` outside it; times get no verdict (`timed`), the machines are "
        "named instead; a claim that is not a number is `reproduced` or `differs`. In all: " + total + ".",
        header + "\n" + "\n".join(summary),
        *([evidence.strip()] if evidence else []),
        "## Every target",
        *sections]) + "\n"


__all__ = ["FLOOR_TOLERANCE", "STABLE_DROP", "TOLERANCE", "VERDICTS", "Quantity", "Row", "compare",
           "iterations_per_epoch", "paper_folders", "record_value", "render_paper_target", "reproduction_report", "summary_counts", "summary_line",
           "table_cells", "table_columns", "to_html", "to_latex", "to_markdown", "verdict"]
