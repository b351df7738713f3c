"""The parity table builder (benchmarks/parity/table.py) on the stored results of the parity scripts
(benchmarks/parity/results/*.json, each method beside its released code), and the runner of released scripts."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from benchmarks.parity.table import parity_arguments, parity_rows, shapes, to_markdown

STORED = sorted((Path(__file__).parents[1] / "benchmarks" / "parity" / "results").glob("*.json"))


def test_the_rows_are_welch_tests_of_the_stored_seeds():
    results = [result for path in STORED for result in json.loads(path.read_text())]
    assert {result["method"] for result in results} >= {"NeuNcut", "SpecNet2", "SpectralNet"}
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


def test_n_0_leaves_the_synthetic_problems_out():
    assert shapes(parity_arguments("d").parse_args([]).n) == ("two_moons", "double_rings")
    assert shapes(parity_arguments("d").parse_args(["--n", "0", "--mnist", "4552"]).n) == ()


def test_one_seed_a_side_cannot_be_judged():
    (row,) = parity_rows([{"method": "m", "dataset": "d", "reference": {"0": 0.5}, "ours": {"0": 0.6}}])
    assert row["within_noise"].startswith("cannot tell") and row["delta"] == pytest.approx(0.1)


def test_a_released_script_runs_unmodified_with_fresh_imports_and_its_failure_handed_back(tmp_path):
    from benchmarks.parity.released import run_script

    code = tmp_path / "code"
    code.mkdir()
    # a module that keeps state on itself between calls, as SpecNet2's update_YDY does
    (code / "stateful.py").write_text("def step():\n    step.calls += 1\n    return step.calls\nstep.calls = 0\n")
    (code / "main.py").write_text("import sys\nimport stateful\ncalls = stateful.step()\nargs = sys.argv[1:]\n"
                                  "open('out.txt', 'w').write('written')\nprint('hello')\nif args == ['fail']:\n"
                                  "    raise ValueError('the last lines fail')\n")
    work = tmp_path / "work"
    work.mkdir()
    first, error, printed = run_script(code / "main.py", ["a"], work)
    second, _, _ = run_script(code / "main.py", ["b"], work)
    assert (first["calls"], second["calls"]) == (1, 1)  # a fresh process each time: no state carried over
    assert first["args"] == ["a"] and error is None and printed == "hello\n"
    assert (work / "out.txt").read_text() == "written"  # it ran in the folder it was given
    namespace, error, _ = run_script(code / "main.py", ["fail"], work)
    assert isinstance(error, ValueError) and namespace["calls"] == 1  # variables kept up to the failure
    assert "stateful" not in sys.modules and str(code) not in sys.path
