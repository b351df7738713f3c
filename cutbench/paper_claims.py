"""A figure's published claims measured on stored cells, one check per claim kind.

A target lists ``claims`` when its published values are statements in the text (Fig. 4: "the L_orth floor
is 0.70 on MNIST"), not table cells. Each claim names a check; :data:`CLAIM_CHECKS` maps every check to the
function that measures and judges it, so a new check is one function and one entry there (target files are
validated against the same table).
"""

from __future__ import annotations

import math

import numpy as np

from cutbench import CutbenchError, stats
from cutbench.criteria import FLOOR_TOLERANCE, choose_gamma, on_floor
from cutbench.identity import experiment_key
from cutbench.study import config_fields
from cutbench.verdicts import (
    MIN_CLAIM_SEEDS,
    Quantity,
    Row,
    combine,
    failure_text,
    parse_number,
    record_value,
    scale_gate,
)


def claim_cells(target, claim, records: list[dict]) -> list[tuple[dict, dict]]:
    dataset = {m.column: m for m in target.match}.get("dataset")
    wanted_dataset = dataset.wanted(claim.dataset) if dataset else None
    out = []
    for record in records:
        if record["status"] != "ok":
            continue
        f = config_fields(record["config"])
        if wanted_dataset is not None and f.get("dataset") != wanted_dataset:
            continue
        if all(str(f.get(k)) == str(v) for k, v in claim.where.items()):
            out.append((record, f))
    return out


def by_setting(cells, over: str) -> dict:
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


def _acc_by_seed(records: list[dict]) -> dict:
    return {r["config"]["seed"]: record_value(r, "metrics.acc") for r in records}


def claim_row(target, claim, scale: str, records: list[dict], labels) -> Row:
    """The row of one figure claim of ``target`` (a :class:`~cutbench.paper.Target`): the published statement,
    ours measured on the claim's finished cells by its check (:data:`CLAIM_CHECKS`), and the verdict (at ci
    scale measured and shown, never judged against the paper). ``labels`` gives a record's labels by key."""
    published = target.published()
    match = published[(published.figure == claim.figure) & (published.dataset == claim.dataset)
                      & (published.quantity == claim.quantity)].iloc[0]
    key = {"figure": claim.figure, "dataset": claim.dataset, "quantity": claim.quantity}
    text = match["value"]
    cells = claim_cells(target, claim, records)
    q = Quantity(parse_number(text), published_text=text, name=claim.quantity)
    row = Row(key, {"value": q}, "", n_ok=len(cells), n_cells=len(cells),
              seeds=sorted({r["config"]["seed"] for r, _ in cells}),
              cells=frozenset(experiment_key(r["config"]) for r, _ in cells))
    if not cells:
        failed = [r for r in records if r["status"] != "ok"]
        row.verdict = "not run: no finished cell for this claim" if not failed else failure_text(failed[0])
        return row
    row.verdict = scale_gate(scale, CLAIM_CHECKS[claim.check](claim, cells, q, row, labels))
    return row


def _seeds_text(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def _check_mean(claim, cells, q: Quantity, row: Row, labels) -> str:
    """The claim's ACC, the mean over seeds, equivalent to the published one."""
    q.values = _acc_by_seed([r for r, _ in cells])
    q.verdict = stats.equivalence(q.estimate, q.published, stats.equivalence_margin("acc", q.published_text))
    return combine([("ACC", q.verdict)], q.n)


def _setting_marks(claim, cells, row: Row):
    """Mean ACC per setting of the swept field, and which settings are best or not significantly worse."""
    per_setting = {value: _acc_by_seed(rs) for value, rs in by_setting(cells, claim.over).items()}
    marks = stats.mark_best(per_setting, higher_is_better=True)
    means = {value: float(np.mean(list(v.values()))) for value, v in per_setting.items()}
    row.detail = "mean ACC per setting: " + ", ".join(
        f"{_setting_text(v)} {means[v]:.3f}{'*' if v in marks.marked else ''}" for v in sorted(means, key=_order))
    row.detail += (f" (* best or not significantly worse, paired over {len(row.seeds)} seeds)" if marks.marked
                   else f" ({marks.note})")
    return means, marks


def _check_best_setting(claim, cells, q: Quantity, row: Row, labels) -> str:
    """The published best setting is among ours: best or not significantly worse than the best."""
    means, marks = _setting_marks(claim, cells, row)
    best = max(means, key=means.get)
    q.text = f"{_setting_text(best)} (ACC {means[best]:.3f})"
    published_best = next((v for v in means if _setting_text(v) == q.published_text), None)
    if published_best is None:
        return f"not run: the paper's best setting {q.published_text} is not in this scale's grid"
    if not marks.marked:
        return f"inconclusive ({_seeds_text(len(row.seeds))}: no setting can be told apart)"
    return "reproduced" if published_best in marks.marked else "differs"


def _check_stable_range(claim, cells, q: Quantity, row: Row, labels) -> str:
    """Every setting of the published range ("60-200") is among our best ones."""
    _, marks = _setting_marks(claim, cells, row)
    stable = sorted(float(v) for v in marks.marked)
    low, high = (float(part) for part in q.published_text.split("-"))
    q.text = f"{stable[0]:g}-{stable[-1]:g}" if stable else "—"
    if not marks.marked:
        return f"inconclusive ({_seeds_text(len(row.seeds))}: no setting can be told apart)"
    return "reproduced" if stable[0] <= low and stable[-1] >= high else "differs"


def _gamma_search(claim, cells, row: Row, labels):
    search = _gamma_search_per_seed(cells, claim.over)
    floors = {seed: floor for seed, (floor, _, _) in search.items()}
    chosen = {seed: gamma for seed, (_, gamma, _) in search.items()}
    row.detail = "per seed: " + ", ".join(f"seed {seed}: floor {floors[seed]:.4f} → γ {chosen[seed]:g}"
                                          for seed in sorted(search))
    degenerate = _empty_cluster_floors(search, [r for r, _ in cells], labels)
    if degenerate:
        row.detail += f"; {degenerate}"
    return floors, chosen


def _check_orth_floor(claim, cells, q: Quantity, row: Row, labels) -> str:
    """The L_orth floor of NeuNcut's gamma rule (the lowest L_orth at the largest gamma), per seed."""
    q.values, _ = _gamma_search(claim, cells, row, labels)
    q.verdict = stats.equivalence(q.estimate, q.published, stats.equivalence_margin(q.name, q.published_text))
    return combine([("floor", q.verdict)], q.n)


def _check_gamma_threshold(claim, cells, q: Quantity, row: Row, labels) -> str:
    """The gamma NeuNcut's label-free rule chooses, per seed, against the published one."""
    _, chosen = _gamma_search(claim, cells, row, labels)
    q.values = chosen
    gammas = sorted(chosen.values())
    q.text = f"median {np.median(gammas):g} (range {gammas[0]:g}-{gammas[-1]:g}, {len(gammas)} seeds)"
    if len(gammas) < MIN_CLAIM_SEEDS:
        return f"inconclusive ({_seeds_text(len(gammas))}, fewer than {MIN_CLAIM_SEEDS})"
    if all(math.isclose(g, q.published) for g in gammas):
        return "reproduced"
    if gammas[-1] < q.published:
        return "below"
    if gammas[0] > q.published:
        return "above"
    return f"inconclusive (the seeds choose {gammas[0]:g} to {gammas[-1]:g})"


def _check_iterations_to_floor(claim, cells, q: Quantity, row: Row, labels) -> str:
    """Iterations until L_orth is within the rule's tolerance of its lowest value, at most the published count."""
    q.values = {r["config"]["seed"]: _iterations_to_floor(r) for r, _ in cells}
    horizons = [iterations_per_epoch(r) * len((r.get("history") or {}).get("orth") or []) for r, _ in cells]
    row.detail = ("iterations until L_orth is within 2 % of its lowest value, per seed: "
                  + ", ".join(f"{q.values[s]:.0f}" for s in sorted(q.values)))
    estimate = q.estimate
    if max(horizons) <= q.published:
        return (f"cannot fail at this scale: the run has {max(horizons)} iterations, no more than the "
                f"claim's {q.published:g}")
    if estimate.n < MIN_CLAIM_SEEDS:
        return f"inconclusive ({_seeds_text(estimate.n)}, fewer than {MIN_CLAIM_SEEDS})"
    if estimate.high <= q.published:
        return "reproduced"
    if estimate.low > q.published:
        return "above"
    return "inconclusive (the interval straddles the claim)"


def _gamma_search_per_seed(cells, over: str) -> dict:
    """The §4.6 search on stored training histories, one per seed: ``{seed: (floor, chosen gamma, floor record)}``."""
    by_seed: dict = {}
    for record, f in cells:
        history = record.get("history") or {}
        if history.get("orth"):
            by_seed.setdefault(record["config"]["seed"], []).append((float(f[over]), min(history["orth"]), record))
    out = {}
    for seed in sorted(by_seed):
        gammas, orth, runs = zip(*by_seed[seed], strict=True)
        floor, gamma = choose_gamma(gammas, orth, FLOOR_TOLERANCE)
        out[seed] = (floor, gamma, runs[int(np.argmax(gammas))])
    return out


def _empty_cluster_floors(search: dict, records: list[dict], labels) -> str:
    """Which seeds' floor run (the largest gamma) labels fewer clusters than the claim's runs at their most: an
    empty cluster sets ``‖HᵀDH − I‖`` by itself (1/k per empty cluster), so such a floor is not the
    orthogonality's own."""
    if labels is None:
        return ""

    def used(record):
        try:
            return len(np.unique(labels(record["key"])))
        except (CutbenchError, OSError, KeyError):
            return None

    counts = [n for n in map(used, records) if n is not None]
    if not counts:
        return ""
    most = max(counts)
    floors = {seed: used(record) for seed, (_, _, record) in search.items()}
    short = [f"seed {seed}: {n} of {most}" for seed, n in sorted(floors.items()) if n is not None and n < most]
    return ("the floor run labels fewer clusters than the other runs (" + ", ".join(short)
            + "): an empty cluster makes that floor" if short else "")


def iterations_per_epoch(record: dict) -> int:
    """Mini-batch steps per epoch of a NeuNcut-style trainer: the training points in batches."""
    params = record["config"]["method"]["params"]
    batch = params.get("batch_size") or record.get("n_fit", 1)
    return max(1, math.ceil(record.get("n_fit", batch) / batch))


def _iterations_to_floor(record: dict) -> float:
    orth = (record.get("history") or {}).get("orth") or []
    if not orth:
        return math.nan
    floor = min(orth)
    epoch = next(i for i, value in enumerate(orth) if on_floor(value, floor, FLOOR_TOLERANCE))
    return float((epoch + 1) * iterations_per_epoch(record))


CLAIM_CHECKS = {
    "mean": _check_mean,
    "best_setting": _check_best_setting,
    "stable_range": _check_stable_range,
    "orth_floor": _check_orth_floor,
    "gamma_threshold": _check_gamma_threshold,
    "iterations_to_floor": _check_iterations_to_floor,
}
"""Every claim check by name: ``check(claim, cells, quantity, row, labels) -> verdict``, filling ``quantity``
(our values per seed, or a text) and ``row.detail``. A target's claim names one of these."""


__all__ = ["CLAIM_CHECKS", "by_setting", "claim_cells", "claim_row", "iterations_per_epoch"]
