"""Climb a budget study's rungs, method by method, until a label-free plateau or the per-cell cap.

A budget study (``benchmarks/studies/budget_scatnet.yaml``) lists its budgets as parts, in increasing
order (``x1/16``, ``x1/4``, ``x1``, ...). For each dataset, the ladder runs the first rung of every method
(all seeds), then the next rung of the methods still climbing, and so on. A method stops climbing when

* **plateau**: from one rung to the next, the seeds' mean Ncut of its labels on the study's scoring graph
  and the seeds' mean final training objective (the first curve of its history) each move by at most
  :data:`PLATEAU` (2 %) of their earlier value (an objective within :data:`OBJECTIVE_FLOOR` of 0 is compared
  absolutely), and at least half of its cells at the new rung end ``converged`` by
  :mod:`cutbench.convergence`'s rule. Both quantities need no label: ACC is drawn, never read here;
* **cap**: the next rung, timed at 4 x this rung's slowest fit, would exceed :data:`CAP_SECONDS` (15 min)
  in one cell;
* **failure**: a cell of the rung did not end ``ok`` (its record keeps the error);
* or the study has no further rung.

Every decision, with its numbers, is written to ``ladder.json`` in the results folder; the cells are
ordinary study records, so an interrupted ladder resumes (stored cells are not run again) and
``cutbench report`` reads the folder.

Usage: CUTBENCH_DATA=DIR python benchmarks/budget/ladder.py STUDY --out DIR2 [--workers 2 --threads 1]
       [--datasets mnist]
Two ladders with different ``--datasets`` may share one results folder (each in its own process): the
store's claims keep them off each other's cells and ``ladder.json`` keeps both runs' decisions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from cutbench.atomic import write_atomically
from cutbench.executors import make_executor
from cutbench.identity import cell_key
from cutbench.runner import DatasetCache, identify_cell, run_study
from cutbench.store import ResultStore
from cutbench.study import load_study

PLATEAU = 0.02
"""The largest relative move of the mean Ncut and the mean final objective between rungs that is a plateau."""
OBJECTIVE_FLOOR = 1e-3
"""An objective this close to 0 is compared absolutely (a relative change of a near-zero loss means nothing)."""
CAP_SECONDS = 900.0
"""No rung is started whose cells are expected (4 x the slowest fit of the rung below) to fit for longer."""
GROWTH = 4.0


def relative_move(before: float, after: float) -> float:
    """``|after - before|`` over ``|before|``, or absolute when ``|before|`` is below :data:`OBJECTIVE_FLOOR`."""
    scale = abs(before)
    return abs(after - before) / scale if scale >= OBJECTIVE_FLOOR else abs(after - before)


def rung_summary(records: list[dict | None]) -> dict:
    """What the ladder reads of one rung's cells (one per seed): label-free numbers and fit times only."""
    ok = [r for r in records if r is not None and r.get("status") == "ok"]
    summary = {"cells": len(records), "ok": len(ok)}
    if len(ok) < len(records):
        failed = [r for r in records if r is None or r.get("status") != "ok"]
        summary["errors"] = [("not run" if r is None else f"{r.get('status')}: {r.get('error')}") for r in failed]
        return summary
    objectives = [float(next(iter(r["history"].values()))[-1]) for r in ok if r.get("history")]
    verdicts = [(r.get("convergence") or {}).get("verdict") for r in ok]
    summary.update(
        ncut=float(np.mean([r["metrics"]["ncut_value"] for r in ok])),
        objective=float(np.mean(objectives)) if len(objectives) == len(ok) else None,
        converged=sum(v == "converged" for v in verdicts),
        fit_seconds=[float(r["timings"]["fit"]["seconds"]) for r in ok],
    )
    return summary


def decide(previous: dict | None, current: dict, has_next: bool) -> tuple[bool, str]:
    """``(climb, reason)``: whether the method goes on to the next rung, and why (module docstring's rules)."""
    if current["ok"] < current["cells"]:
        return False, f"stopped: {current['cells'] - current['ok']} cell(s) not ok ({'; '.join(current['errors'])})"
    if not has_next:
        return False, "stopped: the study has no higher rung"
    if previous is not None and previous.get("ok") == previous.get("cells"):
        moves = {"ncut": relative_move(previous["ncut"], current["ncut"])}
        if previous.get("objective") is not None and current.get("objective") is not None:
            moves["objective"] = relative_move(previous["objective"], current["objective"])
        converged = current["converged"] >= current["ok"] / 2
        if converged and all(move <= PLATEAU for move in moves.values()):
            shown = ", ".join(f"{name} moved {move:.1%}" for name, move in moves.items())
            return False, f"stopped: plateau ({shown}; {current['converged']}/{current['ok']} converged)"
    expected = GROWTH * max(current["fit_seconds"])
    if expected > CAP_SECONDS:
        return False, f"stopped: cap (next rung expected {expected:.0f} s a cell > {CAP_SECONDS:.0f} s)"
    return True, "climbs"


def part_order(study) -> list[str]:
    """The study's parts in file order: its rungs, lowest budget first."""
    return list(dict.fromkeys(cell.part for cell in study.cells))


def climb(study, store: ResultStore, executor, datasets: list[str], log) -> list[dict]:
    """Run the ladder; return its decisions (also written to ``ladder.json`` after each rung)."""
    identities = DatasetCache()
    rungs = part_order(study)
    decisions = []
    for dataset in datasets:
        methods = list(dict.fromkeys(c.method_name() for c in study.cells if c.dataset == dataset))
        climbing = {method: None for method in methods}  # method -> the summary of its last rung
        for index, rung in enumerate(rungs):
            if not climbing:
                break
            cells = [c for c in study.cells if c.part == rung and c.dataset == dataset and c.method_name() in climbing]
            started = time.perf_counter()
            run_study(study, store, executor=executor, cells=cells, progress=log)
            wall = time.perf_counter() - started
            latest = store.latest_by_configuration()
            for method, previous in list(climbing.items()):
                own = [c for c in cells if c.method_name() == method]
                records = [latest.get(cell_key(identify_cell(c, identities)[0])) for c in own]
                summary = rung_summary(records)
                goes_on, reason = decide(previous, summary, index + 1 < len(rungs))
                decisions.append({"dataset": dataset, "method": method, "rung": rung, "summary": summary,
                                  "climbs": goes_on, "reason": reason, "rung_wall_seconds": wall})
                log(f"ladder: {dataset} · {method} · {rung}: {reason}")
                if goes_on:
                    climbing[method] = summary
                else:
                    del climbing[method]
            write_ladder(store.root / "ladder.json", decisions, datasets)
    return decisions


def write_ladder(path: Path, decisions: list[dict], datasets: list[str]) -> None:
    """Write this run's decisions, keeping those another run (``--datasets``) stored for other datasets.

    So one ladder per dataset can run in its own process on one results folder.
    """
    others = []
    if path.exists():
        others = [d for d in json.loads(path.read_text())["decisions"] if d["dataset"] not in datasets]
    rules = {"plateau": PLATEAU, "objective_floor": OBJECTIVE_FLOOR, "cap_seconds": CAP_SECONDS, "growth": GROWTH,
             "rule": __doc__.split("\n\n")[1].strip()}
    text = json.dumps({"rules": rules, "decisions": others + decisions}, indent=1) + "\n"
    write_atomically(path, lambda handle: handle.write(text.encode()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", help="a budget study (file or built-in name), its parts the rungs")
    parser.add_argument("--out", type=Path, required=True, help="the results folder")
    parser.add_argument("--datasets", nargs="+", help="only these of the study's datasets, in this order")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="threads per cell (default 1)")
    args = parser.parse_args(argv)
    study = load_study(args.study)
    datasets = args.datasets or list(dict.fromkeys(c.dataset for c in study.cells))
    executor = make_executor("pool", workers=args.workers, threads=args.threads)
    started = time.perf_counter()
    climb(study, ResultStore(args.out), executor, datasets, log=lambda line: print(line, flush=True))
    print(f"ladder done in {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
