"""The scaling report: a power law's exponent is recovered from synthetic timings; the table and plot."""

import numpy as np
import pandas as pd
import pytest

from cutbench.reports.scaling import fit_exponent, plot_scaling, scaling_table, to_markdown


def test_fit_recovers_a_known_exponent_through_noise():
    sizes = np.array([1e3, 3e3, 1e4, 3e4, 1e5, 3e5, 1e6])
    noise = np.exp(np.random.default_rng(0).normal(scale=0.05, size=len(sizes)))
    exponent, stderr, prefactor = fit_exponent(sizes, 2e-7 * sizes**1.5 * noise)
    assert exponent == pytest.approx(1.5, abs=0.05) and 0 < stderr < 0.05
    assert prefactor == pytest.approx(2e-7, rel=0.5)
    exact, stderr, _ = fit_exponent(sizes, 3e-9 * sizes**2)
    assert exact == pytest.approx(2.0, abs=1e-9) and stderr == pytest.approx(0.0, abs=1e-9)


def synthetic_records():
    rows = []
    for n in (1e3, 1e4, 1e5, 1e6):
        for seed in (0, 1):
            rows.append({"dataset": "double_rings", "dataset.n": n, "method": "kmeans", "status": "ok",
                         "fit_s": 1e-5 * n, "predict_s": 0.01, "seed": seed})
            slow = n >= 1e6
            rows.append({"dataset": "double_rings", "dataset.n": n, "method": "ncut", "seed": seed,
                         "status": "timeout" if slow else "ok", "fit_s": np.nan if slow else 1e-7 * n**2,
                         "predict_s": np.nan})
    return pd.DataFrame(rows)


def test_the_table_names_exponents_and_where_a_method_stopped(tmp_path):
    table = scaling_table(synthetic_records(), stages=("fit_s", "predict_s"))
    kmeans = table[(table.configuration == "kmeans") & (table.stage == "fit_s")].iloc[0]
    assert kmeans.exponent == pytest.approx(1.0) and kmeans.points == 3  # 1e3 is below the 0.05 s floor
    ncut = table[(table.configuration == "ncut") & (table.stage == "fit_s")].iloc[0]
    assert ncut.exponent == pytest.approx(2.0) and ncut.largest_ok == 1e5 and ncut.first_timeout == 1e6
    assert np.isnan(table[(table.configuration == "kmeans") & (table.stage == "predict_s")].iloc[0].exponent)
    text = to_markdown(table)
    assert "| ncut | fit [s] | 2.00 ± 0.00 | 1,000–100,000 (3) | 100,000 | 1,000,000 |" in text
    written = plot_scaling(synthetic_records(), tmp_path / "scaling", stages=("fit_s",))
    assert all(path.stat().st_size > 0 for path in written)
