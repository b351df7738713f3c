"""A paper target's published rows beside the cells that regenerate them: matching, values per seed, verdicts,
the ci reference, and the paper's ordering claims.

How a row is judged is described in :mod:`cutbench.reports.paper`, which renders the rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from cutbench import stats
from cutbench.identity import experiment_key
from cutbench.paper import Target, read_ci_reference, record_fields
from cutbench.paper_claims import claim_row
from cutbench.verdicts import (
    Quantity,
    Row,
    combine,
    failure_text,
    first_line,
    higher_is_better,
    parse_number,
    record_value,
    verdict_word,
)


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


def _missing_data_reason(records: list[dict]) -> str | None:
    for record in records:
        if record.get("error_kind") == "data_missing":
            lines = (record.get("error") or "").splitlines()
            how = next((line for line in lines if line.startswith("To get it")), first_line(record.get("error")))
            return f"data missing: {how}"
    return None


def _seed_values(records: list[dict], paths: tuple[str, ...], divisor: float) -> dict:
    values = {r["config"]["seed"]: _quantity_value(r, paths, divisor) for r in records}
    return {seed: v for seed, v in values.items() if math.isfinite(v)}


def row_id(key: dict) -> str:
    """A row's name in the ci reference: its key values joined."""
    return " · ".join(str(v) for v in key.values())


def compare(target: Target, scale: str, records: list[dict], study=None, *, reference: dict | None = None,
            labels: Callable[[str], np.ndarray] | None = None) -> list[Row]:
    """One :class:`Row` per published row (or claim) of ``target``, from the ``records`` of its ``study``
    (default: the study of ``scale``).

    ``reference`` is the ci reference (default: the packaged one, :func:`cutbench.paper.read_ci_reference`);
    ``labels`` gives a record's predicted labels by key (claims that look at them, e.g. Fig. 4's floor).
    """
    reference = read_ci_reference() if reference is None and scale == "ci" else reference
    if target.claims:
        rows = [claim_row(target, claim, scale, records, labels) for claim in target.claims]
        for row in rows if scale == "ci" else ():
            if row.verdict.startswith("ci: not comparable"):  # measured: check it against our own reference
                would = row.verdict.removeprefix("ci: not comparable ")
                row.verdict = f"{_reference_verdict(target, row, reference, records)} {would}"
        return rows
    fields = [(record, record_fields(record)) for record in records]
    study_cells = [cell.fields() for cell in (study or target.study(scale)).cells]
    rows = []
    for _, published in target.published().iterrows():
        key = {column: published[column] for column in target.key}
        out_of_scope = target.out_of_scope_reason(published)
        if out_of_scope:
            rows.append(Row(key, _published_quantities(target, published), f"out of scope: {out_of_scope}"))
            continue
        matching = [record for record, f in fields if target.matches(published, f)]
        ok = [record for record in matching if record["status"] == "ok"]
        quantities = _published_quantities(target, published)
        for column, spec in target.quantities.items():
            quantities[column].values = _seed_values(ok, *_quantity_spec(spec))
        row = Row(key, quantities, "", n_ok=len(ok), n_cells=len(matching),
                  seeds=sorted(r["config"]["seed"] for r in ok),
                  cells=frozenset(experiment_key(r["config"]) for r in matching))
        if ok:
            if scale == "ci" and any(not q.seconds for q in quantities.values()):
                row.verdict = _reference_verdict(target, row, reference, ok)
            elif scale == "ci":
                row.verdict = "timed"
            else:
                row.verdict = _row_verdict(target, quantities, len(ok))
            failed = [r for r in matching if r["status"] != "ok"]
            if failed:
                row.detail = (f"{len(failed)} of {len(matching)} cells did not finish "
                              f"({failed[0]['status']}: {first_line(failed[0].get('error'))})")
            if row.verdict == "timed":
                row.detail = _hardware_note(target, published, ok)
            _mark_unconverged(row, ok)
        elif matching:
            missing = _missing_data_reason(matching)
            row.verdict = f"not run: {missing}" if missing else failure_text(matching[0])
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


def _mark_unconverged(row: Row, ok: list[dict]) -> None:
    """Say when a row's network cells stopped before their objective converged (cutbench.convergence): in the
    verdict of a row that is not reproduced (its gap may be the budget's), and in the detail."""
    stopped = sum((record.get("convergence") or {}).get("converged") is False for record in ok)
    if not stopped:
        return
    note = f"not converged in {stopped} of {len(ok)} cells"
    if verdict_word(row.verdict) in ("below", "above", "differs", "inconclusive"):
        row.verdict = f"{row.verdict} ({note})"
    row.detail = f"{row.detail}; {note}" if row.detail else note


def _published_quantities(target: Target, published) -> dict:
    out = {}
    for column, spec in target.quantities.items():
        path = _quantity_spec(spec)[0][0]
        out[column] = Quantity(parse_number(published[column]), published_text=str(published[column]) or None,
                               name=path.split(".")[-1], higher=higher_is_better(path), seconds=_is_time(spec))
    return out


def _row_verdict(target: Target, quantities: dict, n_ok: int) -> str:
    """Each published quantity judged on its own (:func:`cutbench.stats.equivalence`), then combined."""
    compared = [column for column, spec in target.quantities.items()
                if not _is_time(spec) and quantities[column].published is not None]
    if not compared:
        return "timed" if any(_is_time(spec) for spec in target.quantities.values()) \
            else "not run: the paper gives no number for this row"
    for column in compared:
        q = quantities[column]
        q.verdict = stats.equivalence(q.estimate, q.published, stats.equivalence_margin(q.name, q.published_text))
    return combine([(column, quantities[column].verdict) for column in compared], n_ok)


def _reference_verdict(target: Target, row: Row, reference: dict | None, records: list[dict]) -> str:
    """A ci row against cutbench's own stored ci-scale results (:func:`cutbench.stats.judge_change`); a change
    names both CPUs when the reference was made on another one, since a network's seed moves with the CPU."""
    stored = ((reference or {}).get("targets", {}).get(target.name) or {}).get(row_id(row.key))
    no_reference = "ci: no reference"
    if not stored:
        return no_reference
    changed, compared = [], 0
    for column, q in row.quantities.items():
        old = {int(seed): value for seed, value in (stored.get(column) or {}).items()}
        if not old or not q.values or q.seconds:  # times depend on the machine and its load: shown, never judged
            continue
        compared += 1
        change = stats.judge_change(old, q.values, higher_is_better=q.higher, seconds=q.seconds)
        if change.verdict != "same":
            before = stats.estimate(old.values()).mean
            changed.append(f"{column} {before:.3f} → {q.mean:.3f}")
    if changed:
        ours = sorted({(r.get("provenance") or {}).get("cpu") or "unknown" for r in records})
        theirs = (reference or {}).get("cpu")
        if theirs and ours != [theirs]:
            changed.append(f"reference made on {theirs}, this run on {', '.join(ours)}")
        return f"ci: changed from reference ({'; '.join(changed)})"
    return "ci: as reference" if compared else no_reference


def _hardware_note(target: Target, published, records: list[dict]) -> str:
    theirs = published.get(target.time_hardware, "") if target.time_hardware else ""
    prov = records[-1].get("provenance") or {}
    ours = prov.get("gpu_name") if str(records[-1]["config"].get("device", "")).startswith("cuda") else prov.get("cpu")
    threads = (prov.get("threads") or {}).get("torch")
    return (f"paper: {theirs or 'hardware not stated'}; ours: {ours or 'unknown'}"
            + (f", {threads} torch threads" if threads else ""))


@dataclass
class OrderingResult:
    """An ordering claim checked: per (setting, competitor) pair the paired test, and the verdict."""

    claim: str
    verdict: str
    wins: int = 0
    losses: int = 0
    undecided: int = 0
    untestable: int = 0
    not_run: int = 0
    published_holds: str = ""
    pairs: list = field(default_factory=list)  # (setting text, competitor, outcome text)


def check_orderings(target: Target, scale: str, rows: list[Row]) -> list[OrderingResult]:
    """Each of the target's ordering claims, checked on ``rows`` with paired tests over shared seeds (Holm-
    corrected over the claim's comparisons). At ci scale the tests are shown but not judged."""
    results = []
    for ordering in target.orderings:
        by_setting: dict = {}
        for row in rows:
            setting = tuple((k, v) for k, v in row.key.items() if k != ordering.by)
            by_setting.setdefault(setting, {})[row.key[ordering.by]] = row
        pairs, tests, published_wins, published_pairs = [], [], 0, 0
        for setting, members in by_setting.items():
            winner = members.get(ordering.better)
            for other in ordering.than:
                loser = members.get(other)
                if winner is None or loser is None:
                    continue
                text = ", ".join(str(v) for _, v in setting)
                a, b = winner.quantities[ordering.quantity], loser.quantities[ordering.quantity]
                if a.published is not None and b.published is not None:
                    published_pairs += 1
                    published_wins += (a.published > b.published) == a.higher
                if not a.values or not b.values:
                    pairs.append([text, other, "not run", None])
                    continue
                comparison = stats.compare_samples(b.values, a.values)
                pairs.append([text, other, comparison, comparison.p_value])
                tests.append(len(pairs) - 1)
        adjusted = stats.holm([pairs[i][3] for i in tests])
        result = OrderingResult(ordering.claim, "", published_holds=f"{published_wins} of {published_pairs}")
        better_sign = 1 if rows and rows[0].quantities[ordering.quantity].higher else -1
        for index, p in zip(tests, adjusted, strict=True):
            comparison = pairs[index][2]
            if not comparison.judged:
                result.untestable += 1
                pairs[index][2] = f"not testable: one seed (Δ {comparison.difference:+.3f})"
                continue
            if p < stats.ALPHA and better_sign * comparison.difference > 0:
                outcome, result.wins = "wins", result.wins + 1
            elif p < stats.ALPHA:
                outcome, result.losses = "loses", result.losses + 1
            else:
                outcome, result.undecided = "no significant difference", result.undecided + 1
            pairs[index][2] = (f"{outcome} (Δ {comparison.difference:+.3f}, {comparison.test}, "
                               f"Holm p = {stats.p_text(p)})")
        result.not_run = sum(1 for pair in pairs if pair[2] == "not run")
        result.pairs = [tuple(pair[:3]) for pair in pairs]
        tested = len(tests)
        needed = ordering.needed(tested)
        if not tested:
            result.verdict = f"not run: no setting where {ordering.better} and a competitor both ran"
            results.append(result)
            continue
        if scale == "ci":
            result.verdict = "ci: not comparable"
        elif result.wins >= needed:
            result.verdict = "reproduced"
        elif result.wins + result.undecided + result.untestable < needed:
            result.verdict = "differs"
        else:
            result.verdict = "inconclusive"
        result.verdict += (f" ({ordering.better} significantly better in {result.wins} of {tested} comparisons run, "
                           f"'{ordering.holds_in}' needs {needed}; significantly worse in {result.losses})")
        results.append(result)
    return results


__all__ = ["OrderingResult", "check_orderings", "compare", "row_id"]
