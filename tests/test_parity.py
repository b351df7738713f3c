"""The parity table builder (benchmarks/parity/table.py) on stored results: SpectralNet against the released
PyTorch package, as benchmarks/parity/spectralnet_pypi.py measured them (tests/data/parity_spectralnet.json)."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from benchmarks.parity.table import parity_rows, to_markdown

STORED = Path(__file__).parent / "data" / "parity_spectralnet.json"


def test_the_rows_are_welch_tests_of_the_stored_seeds():
    results = json.loads(STORED.read_text())
    rows = parity_rows(results)
    assert [row["dataset"] for row in rows] == [result["dataset"] for result in results]
    for row, result in zip(rows, results, strict=True):
        reference, ours = np.array(list(result["reference"].values())), np.array(list(result["ours"].values()))
        assert row["reference"].mean == pytest.approx(reference.mean()) and row["ours"].mean == pytest.approx(ours.mean())
        assert row["delta"] == pytest.approx(ours.mean() - reference.mean())
        if reference.std() == 0 and ours.std() == 0:
            assert row["within_noise"] == "yes"  # equal and without spread
            continue
        p = scipy_stats.ttest_ind(ours, reference, equal_var=False).pvalue
        assert row["test"].p_value == pytest.approx(p)
        assert row["within_noise"] == ("yes" if p >= 0.05 else "no")
    table = to_markdown(rows)
    assert table.splitlines()[0].startswith("| method | dataset | budget | reference ACC | cutbench ACC | Δ |")


def test_one_seed_a_side_cannot_be_judged():
    (row,) = parity_rows([{"method": "m", "dataset": "d", "reference": {"0": 0.5}, "ours": {"0": 0.6}}])
    assert row["within_noise"].startswith("cannot tell") and row["delta"] == pytest.approx(0.1)
