"""The convergence rule on constructed curves, and where its verdict is shown: records, tables, compare, paper rows."""

import numpy as np
import pandas as pd
import pytest

from cutbench.convergence import RULE, judge, record_convergence
from cutbench.paper_rows import _mark_unconverged
from cutbench.reports.compare import _unconverged
from cutbench.reports.tables import summarize, to_markdown
from cutbench.runner import DatasetCache, run_cell
from cutbench.study import expand_study
from cutbench.verdicts import Row

EPOCHS = np.arange(100)


@pytest.mark.parametrize("curve, verdict", [
    (np.full(100, 3.0), "converged"),                                   # flat from the start
    (2.0 * np.exp(-EPOCHS / 8) + 1.0, "converged"),                    # decayed to its floor early
    (2.0 - 0.01 * EPOCHS, "still falling"),                             # a straight fall: 20 % of it in the last fifth
    (2.0 * np.exp(-EPOCHS / 60) + 1.0, "still falling"),               # slow decay, still moving at the end
    (np.r_[2.0 * np.exp(-EPOCHS[:80] / 8) + 1.0, 1.0 + 0.02 * np.arange(20)], "rising"),  # diverging at the end
    (np.r_[2.0 * np.exp(-EPOCHS[:80] / 8) + 1.0, 1.0 + 0.3 * np.sin(np.arange(20) * 2.5)], "oscillating"),
    ([1.0, 0.5, 0.4, 0.39], "too short to judge"),
])
def test_the_rule_on_constructed_curves(curve, verdict):
    assert judge(curve).verdict == verdict


def test_the_numbers_behind_a_verdict():
    result = judge(2.0 - 0.01 * EPOCHS)
    # the last fifth is 20 epochs: the curve moves 19 of its 99 steps there, net down
    assert result.window == 20 and result.movement == pytest.approx(19 / 99) and result.net == pytest.approx(-19 / 99)
    assert result.converged is False and judge([1, 2]).converged is None
    assert "5%" in RULE and "last 20%" in RULE


def test_a_network_cell_records_its_verdict_and_a_baseline_none():
    study = expand_study({"name": "c", "datasets": [{"name": "blobs", "params": {"n": 120}}], "device": "cpu",
                          "methods": ["kmeans", {"name": "neuncut", "params": {"epochs": 6, "batch_size": 60,
                                                                               "hidden_dims": [16]}}],
                          "timing": {"warmup": 0, "repeats": 1}})
    records = {cell.method: run_cell(cell, DatasetCache(), "c")[0] for cell in study.cells}
    assert "convergence" not in records["kmeans"]
    convergence = records["neuncut"]["convergence"]
    assert convergence == record_convergence(records["neuncut"]["history"])
    assert convergence["curve"] == "loss" and convergence["epochs"] == 6 and convergence["rule"] == RULE


def test_tables_compare_and_paper_rows_mark_unconverged_cells():
    frame = pd.DataFrame({"dataset": ["d"] * 3, "method": ["m"] * 3, "status": ["ok"] * 3, "acc": [0.5, 0.6, 0.7],
                          "fit_s": [1.0, 1.0, 1.0], "seed": [0, 1, 2], "converged": [True, False, None]})
    assert "| 3/3 (1 unconverged) |" in to_markdown(summarize(frame, metrics=["acc"]))
    sides = pd.concat([frame.assign(_side="old"), frame.assign(_side="new", converged=True)])
    assert _unconverged(sides) == "not converged: old 1/3, new 0/3"
    row = Row({"method": "m"}, {}, "below (ACC)")
    _mark_unconverged(row, [{"convergence": {"converged": False}}, {"convergence": {"converged": True}}])
    assert row.verdict == "below (ACC) (not converged in 1 of 2 cells)" and row.verdict_word == "below"
    reproduced = Row({"method": "m"}, {}, "reproduced")
    _mark_unconverged(reproduced, [{"convergence": {"converged": False}}])
    assert reproduced.verdict == "reproduced" and reproduced.detail == "not converged in 1 of 1 cells"
