"""The budget ladder's stopping rules (benchmarks/budget/ladder.py) and the figure's answer rule
(benchmarks/budget/figure.py), on constructed rungs; and the ladder end to end on a tiny budget study."""

import json

import pandas as pd
import pytest

from benchmarks.budget.figure import answer
from benchmarks.budget.figure import main as figure_main
from benchmarks.budget.ladder import (
    CAP_SECONDS,
    PLATEAU,
    climb,
    decide,
    relative_move,
    rung_summary,
    write_ladder,
)
from cutbench.executors import make_executor
from cutbench.store import ResultStore
from cutbench.study import expand_study


def summary(ncut=0.5, objective=1.0, converged=3, fit=10.0, ok=3):
    return {"cells": 3, "ok": ok, "ncut": ncut, "objective": objective, "converged": converged,
            "fit_seconds": [fit] * ok, **({"errors": ["failed: boom"] * (3 - ok)} if ok < 3 else {})}


def test_relative_move_is_relative_above_the_floor_and_absolute_below():
    assert relative_move(2.0, 2.1) == pytest.approx(0.05)
    assert relative_move(-2.0, -2.1) == pytest.approx(0.05)
    assert relative_move(1e-5, 2e-5) == pytest.approx(1e-5)  # a near-zero loss: absolute


def test_a_method_climbs_while_its_objective_moves():
    assert decide(None, summary(), has_next=True) == (True, "climbs")
    assert decide(summary(ncut=0.60), summary(ncut=0.50), has_next=True)[0]  # Ncut fell by 17 %


def test_a_plateau_of_both_label_free_quantities_with_converged_cells_stops_the_climb():
    climbs, reason = decide(summary(ncut=0.500, objective=1.0), summary(ncut=0.505, objective=0.99), has_next=True)
    assert not climbs and reason.startswith("stopped: plateau") and "3/3 converged" in reason
    # the same numbers, but most cells still falling: not a plateau
    assert decide(summary(ncut=0.500), summary(ncut=0.505, converged=1), has_next=True)[0]
    # one quantity still moving by more than the tolerance: not a plateau
    moved = 1.0 * (1 + 2 * PLATEAU)
    assert decide(summary(objective=1.0), summary(objective=moved), has_next=True)[0]


def test_the_cap_failures_and_the_last_rung_stop_the_climb():
    climbs, reason = decide(None, summary(fit=CAP_SECONDS / 4 + 1), has_next=True)
    assert not climbs and reason.startswith("stopped: cap")
    assert decide(None, summary(fit=CAP_SECONDS / 4 - 1), has_next=True)[0]
    climbs, reason = decide(None, summary(ok=2), has_next=True)
    assert not climbs and "1 cell(s) not ok" in reason and "boom" in reason
    assert decide(None, summary(), has_next=False) == (False, "stopped: the study has no higher rung")


def test_rung_summary_reads_only_label_free_numbers_and_times():
    record = {"status": "ok", "metrics": {"acc": 0.9, "ncut_value": 0.4}, "history": {"loss": [3.0, 2.0]},
              "convergence": {"verdict": "converged"}, "timings": {"fit": {"seconds": 5.0}}}
    got = rung_summary([record, {**record, "metrics": {"acc": 0.1, "ncut_value": 0.6}}])
    assert got == {"cells": 2, "ok": 2, "ncut": pytest.approx(0.5), "objective": 2.0, "converged": 2,
                   "fit_seconds": [5.0, 5.0]}
    assert rung_summary([record, None])["errors"] == ["not run"]


def test_the_answer_names_the_budget_only_when_the_ladder_could_not_rule_it_out():
    rungs = pd.DataFrame({"acc": [0.50, 0.60, 0.70]}, index=["x1/4", "x1", "x4"])
    assert answer(rungs, 0.71, "stopped: plateau (...)").startswith("no gap")
    assert answer(rungs, 0.90, "stopped: plateau (ncut moved 1%)").startswith("not the budget")
    text = answer(rungs, 0.90, "stopped: cap (next rung expected 2000 s a cell > 900 s)")
    assert text.startswith("cannot tell: still moving at x4") and "closed 33% of its gap" in text
    assert answer(rungs, None, "x").startswith("no published ACC")
    assert answer(rungs, 0.90, "climbs").startswith("not answered yet: still climbing after x4")
    assert answer(rungs, 0.90, "the ladder has not decided yet").startswith("not answered yet")


def test_a_gap_left_after_the_paper_s_own_step_budget_is_not_the_budget():
    rungs = pd.DataFrame({"acc": [0.50, 0.60, 0.55], "steps": [500, 2000, 8000]}, index=["x1/4", "x1", "x4"])
    cap = "stopped: cap (next rung expected 1900 s a cell > 900 s)"
    text = answer(rungs, 0.98, cap, paper_steps=2000)
    assert text.startswith("not the budget: x1 already trains the paper's 2,000 steps (ACC 0.600)")
    assert "at x4, 4x them, ACC 0.550, 0.430 below" in text
    # below the paper's budget the cap leaves it open; a plateau rules it out whatever the steps
    assert answer(rungs, 0.98, cap, paper_steps=40_000).startswith("cannot tell: still moving at x4")
    assert answer(rungs, 0.98, "stopped: plateau (...)", paper_steps=40_000).startswith("not the budget: the objective")


def test_the_ladder_climbs_a_tiny_study_and_stops_by_its_rules(tmp_path):
    method = {"name": "neuncut", "params": {"batch_size": 50, "hidden_dims": [16], "gamma": 80.0}}
    study = expand_study({
        "name": "tiny_budget", "datasets": [{"name": "blobs", "params": {"n": 200}}], "seeds": [0, 1],
        "device": "cpu", "timing": {"warmup": 0, "repeats": 1},
        "parts": [{"name": f"x{epochs}", "methods": [{**method, "params": {**method["params"], "epochs": epochs}}]}
                  for epochs in (5, 20, 80)]})
    store = ResultStore(tmp_path)
    decisions = climb(study, store, make_executor("inline"), ["blobs"], log=lambda line: None)
    assert [d["rung"] for d in decisions] == ["x5", "x20", "x80"][:len(decisions)]
    assert decisions[0]["climbs"] and not decisions[-1]["climbs"]
    assert all(d["summary"]["ok"] == 2 for d in decisions)
    stored = json.loads((tmp_path / "ladder.json").read_text())
    assert stored["decisions"] == json.loads(json.dumps(decisions)) and stored["rules"]["plateau"] == PLATEAU
    again = climb(study, store, make_executor("inline"), ["blobs"], log=lambda line: None)  # resumes: nothing re-run
    assert [d["summary"] for d in again] == [d["summary"] for d in decisions]
    assert figure_main(["figure.py", str(tmp_path)]) == 0
    assert (tmp_path / "budget.png").stat().st_size > 0
    table = (tmp_path / "budget.md").read_text()
    assert "| blobs | neuncut | x5 | 20 |" in table  # 5 epochs of 200 // 50 steps
    assert f"| blobs | neuncut | no published ACC | {decisions[-1]['rung']} | {decisions[-1]['reason']} |" in table


def test_a_ladder_keeps_the_decisions_another_dataset_s_ladder_stored(tmp_path):
    path = tmp_path / "ladder.json"
    fashion = {"dataset": "fashion_mnist", "method": "cnc", "rung": "x1", "climbs": True, "reason": "climbs"}
    write_ladder(path, [fashion], ["fashion_mnist"])
    mnist = [{"dataset": "mnist", "method": "cnc", "rung": rung, "climbs": True, "reason": "climbs"}
             for rung in ("x1/16", "x1/4")]
    write_ladder(path, mnist[:1], ["mnist"])
    write_ladder(path, mnist, ["mnist"])  # a later rung replaces this run's own earlier decisions
    assert json.loads(path.read_text())["decisions"] == [fashion, *mnist]
    write_ladder(path, [], ["fashion_mnist", "mnist"])
    assert json.loads(path.read_text())["decisions"] == []
