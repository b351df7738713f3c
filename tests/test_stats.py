"""cutbench.stats against scipy and hand computations on fixed numbers."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from cutbench import CutbenchError, stats

# ----------------------------------------------------------------------------------------------- intervals


def test_t_interval_matches_scipy():
    values = [0.71, 0.74, 0.69, 0.78]
    got = stats.estimate(values)
    low, high = scipy_stats.t.interval(0.95, 3, loc=np.mean(values), scale=scipy_stats.sem(values))
    assert (got.n, got.method) == (4, "t")
    assert got.mean == pytest.approx(np.mean(values))
    assert got.std == pytest.approx(np.std(values, ddof=1))
    assert got.sem == pytest.approx(scipy_stats.sem(values))
    assert (got.low, got.high) == (pytest.approx(low), pytest.approx(high))
    # by hand: t(0.975, 3) = 3.182446
    assert got.half_width == pytest.approx(3.182446 * np.std(values, ddof=1) / 2, rel=1e-6)


def test_intervals_of_one_value_equal_values_and_nan():
    one = stats.estimate([0.8])
    assert (one.n, one.method, one.low, one.high) == (1, "none", -math.inf, math.inf) and math.isnan(one.std)
    same = stats.estimate([0.854, 0.854, 0.854])
    assert (same.low, same.high, same.std) == (0.854, 0.854, 0.0)
    assert stats.estimate([0.5, math.nan, 0.7]).n == 2
    assert stats.estimate([]).n == 0
    with pytest.raises(CutbenchError, match="method must be"):
        stats.estimate([1, 2], method="normal")


def test_bootstrap_interval_is_scipys_bca():
    values = np.random.default_rng(1).normal(0.7, 0.05, size=20)
    got = stats.estimate(values, method="bootstrap")
    direct = scipy_stats.bootstrap((values,), np.mean, confidence_level=0.95, method="BCa", n_resamples=9999,
                                   rng=np.random.default_rng(0)).confidence_interval
    assert got.method == "bootstrap"
    assert (got.low, got.high) == (pytest.approx(direct.low), pytest.approx(direct.high))


# ------------------------------------------------------------------------------------------------- tests


def test_paired_t_on_shared_seeds_matches_scipy_with_d_z():
    a = {0: 0.80, 1: 0.85, 2: 0.83, 3: 0.90}
    b = {0: 0.78, 1: 0.80, 2: 0.82, 3: 0.86, 7: 0.5}
    got = stats.compare_samples(a, b)
    x, y = [a[s] for s in range(4)], [b[s] for s in range(4)]
    expected = scipy_stats.ttest_rel(y, x)
    differences = np.subtract(y, x)
    assert got.test == "paired t" and got.n == 4 and got.seeds == (0, 1, 2, 3)
    assert got.statistic == pytest.approx(expected.statistic) and got.p_value == pytest.approx(expected.pvalue)
    assert got.difference == pytest.approx(differences.mean())
    assert got.effect_size == pytest.approx(differences.mean() / differences.std(ddof=1))
    assert "seed(s) 7 on one side only: left out" in got.note


def test_wilcoxon_from_six_pairs_with_rank_biserial_by_hand():
    a = [0.50, 0.52, 0.55, 0.60, 0.58, 0.61, 0.57]
    b = [0.53, 0.51, 0.60, 0.66, 0.62, 0.68, 0.59]
    got = stats.compare_samples(a, b)
    assert got.test == "Wilcoxon signed-rank" and got.n == 7
    assert got.p_value == pytest.approx(scipy_stats.wilcoxon(b, a).pvalue)
    # by hand: differences +.03 -.01 +.05 +.06 +.04 +.07 +.02; |d| ranks 3 1 5 6 4 7 2; W- = 1, W+ = 27
    assert got.effect_size == pytest.approx((27 - 1) / 28)
    assert stats.compare_samples(a[:5], b[:5]).test == "paired t"  # 5 pairs: Wilcoxon cannot reach p < 0.05
    assert stats.compare_samples(a, b, test="t").test == "paired t"


def test_welch_without_shared_seeds_with_hedges_g():
    a = {0: 0.70, 1: 0.74, 2: 0.72}
    b = {5: 0.64, 6: 0.66, 7: 0.61, 8: 0.65}
    got = stats.compare_samples(a, b)
    expected = scipy_stats.ttest_ind(list(b.values()), list(a.values()), equal_var=False)
    assert got.test == "Welch t" and "independent samples" in got.note
    assert got.p_value == pytest.approx(expected.pvalue)
    x, y = np.array(list(a.values())), np.array(list(b.values()))
    pooled = math.sqrt((2 * x.var(ddof=1) + 3 * y.var(ddof=1)) / 5)
    assert got.effect_size == pytest.approx((y.mean() - x.mean()) / pooled * (1 - 3 / (4 * 7 - 9)))


def test_comparisons_that_cannot_or_need_not_be_tested():
    one = stats.compare_samples({0: 0.9}, {0: 0.8})
    assert not one.judged and not one.significant() and "one seed" in one.note
    same = stats.compare_samples([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert same.p_value == 1.0 and same.effect_size == 0.0
    shifted = stats.compare_samples([0.95, 0.95, 0.95], [0.94, 0.94, 0.94])  # deterministic: every seed -0.01
    assert shifted.p_value == 0.0 and shifted.significant() and shifted.difference == pytest.approx(-0.01)


def test_holm_by_hand():
    # sorted p: .01 (x4 = .04), .02 (x3 = .06), .03 (x2 = .06), .04 (x1, monotone: .06)
    assert stats.holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert math.isnan(stats.holm([math.nan, 0.01])[0])


# -------------------------------------------------------------------------------------------------- marks


def test_best_and_not_significantly_worse_marks():
    noise = [0.01, -0.012, 0.008, -0.004]
    groups = {"a": [0.90 + e for e in noise], "b": [0.899 - e for e in noise], "c": [0.70 + e for e in noise]}
    marks = stats.mark_best(groups, higher_is_better=True)
    assert marks.best == ("a",) and marks.marked == {"a", "b"}
    assert marks.comparisons["c"].p_value < 0.05 < marks.comparisons["b"].p_value
    fast = stats.mark_best({"x": [1.0, 1.1, 0.9], "y": [3.0, 3.1, 2.9]}, higher_is_better=False)
    assert fast.marked == {"x"}
    single = stats.mark_best({"a": [0.9], "b": [0.5, 0.6]}, True)
    assert single.marked == set() and "one seed" in single.note
    assert stats.mark_best({"a": [0.9, 0.9], "b": [0.9, 0.9]}, True).marked == set()


# ------------------------------------------------------------------------------------------------ changes


def test_judge_change_needs_significance_and_size():
    old = {0: 0.80, 1: 0.82, 2: 0.81}
    assert stats.judge_change(old, {s: v - 0.05 for s, v in old.items()}, higher_is_better=True).verdict == "regression"
    assert stats.judge_change(old, {s: v + 0.05 for s, v in old.items()}, higher_is_better=True).verdict == \
        "improvement"
    assert stats.judge_change(old, {s: v - 0.002 for s, v in old.items()}, higher_is_better=True).verdict == "same"
    noisy = stats.judge_change(old, {0: 0.70, 1: 0.86, 2: 0.80}, higher_is_better=True)
    assert noisy.verdict == "same" and noisy.comparison.p_value > 0.05
    slower = stats.judge_change({0: 1.0, 1: 1.1}, {0: 1.5, 1: 1.6}, higher_is_better=False, seconds=True)
    assert slower.verdict == "regression"
    one = stats.judge_change({0: 0.9}, {0: 0.85}, higher_is_better=True)
    assert one.verdict == "regression" and "noise not judged" in one.rule


# -------------------------------------------------------------------------------------------- equivalence


@pytest.mark.parametrize("text, resolution", [("0.854", 0.0005), ("80", 0.5), ("0.5", 0.05), ("1e-3", 0.0005),
                                              ("2.5e2", 5.0)])
def test_printed_resolution(text, resolution):
    assert stats.printed_resolution(text) == pytest.approx(resolution)


def test_equivalence_margin_counts_the_rounding():
    assert stats.equivalence_margin("acc", "0.854") == pytest.approx(0.0105)
    assert stats.equivalence_margin("ncut_value", "2.0") == pytest.approx(0.05 * 2.0 + 0.05)


def test_equivalence_verdicts_on_constructed_cases():
    margin = stats.equivalence_margin("acc", "0.854")
    tight = stats.estimate([0.852, 0.856, 0.854])  # interval ±0.005
    assert stats.equivalence(tight, 0.854, margin) == "reproduced"
    wide = stats.estimate([0.80, 0.90, 0.85])  # interval ±0.124: wider than the margin
    assert stats.equivalence(wide, 0.854, margin) == "inconclusive"
    assert stats.equivalence(stats.estimate([0.70, 0.71, 0.72]), 0.854, margin) == "below"
    assert stats.equivalence(stats.estimate([0.95, 0.96, 0.97]), 0.854, margin) == "above"
    assert stats.equivalence(stats.estimate([0.854]), 0.854, margin) == "inconclusive"  # one seed: no interval
    assert stats.equivalence(stats.estimate([0.646] * 3), 0.645, margin) == "reproduced"
    # the old rule's counterexample: 0.687 ± 0.40 called "reproduced" against 0.18 published
    assert stats.equivalence(stats.estimate([0.287, 0.687, 1.087]), 0.18, margin) == "inconclusive"


# -------------------------------------------------------------------------------------------------- ranks


SCORES = pd.DataFrame({"a": [0.9, 0.8, 0.7, 0.95], "b": [0.85, 0.82, 0.6, 0.90], "c": [0.5, 0.4, 0.65, 0.5],
                       "d": [0.5, 0.6, 0.55, 0.70]}, index=["d1", "d2", "d3", "d4"])
# Ranked by hand (1 = best; ties share the mean rank): d1: a 1, b 2, c 3.5, d 3.5; d2: b 1, a 2, d 3, c 4;
# d3: a 1, c 2, b 3, d 4; d4: a 1, b 2, d 3, c 4.
HAND_RANKS = {"a": (1 + 2 + 1 + 1) / 4, "b": (2 + 1 + 3 + 2) / 4, "c": (3.5 + 4 + 2 + 4) / 4, "d": (3.5 + 3 + 4 + 3) / 4}


def test_average_ranks_friedman_and_nemenyi_by_hand():
    analysis = stats.rank_analysis(SCORES)
    assert analysis.average_ranks.to_dict() == pytest.approx(HAND_RANKS)
    assert list(analysis.average_ranks.index[:2]) == ["a", "b"]  # best first; c and d tie at 3.375
    expected = scipy_stats.friedmanchisquare(*(SCORES[c] for c in SCORES))
    assert analysis.friedman_statistic == pytest.approx(expected.statistic)
    assert analysis.friedman_p == pytest.approx(expected.pvalue)
    n, k = 4, 4
    scale = math.sqrt(k * (k + 1) / (6 * n))
    for x in "abcd":
        for y in "abcd":
            if x != y:  # Nemenyi: the studentised range of the rank difference over its standard error
                q = abs(HAND_RANKS[x] - HAND_RANKS[y]) / scale * math.sqrt(2)
                assert analysis.posthoc.loc[x, y] == pytest.approx(scipy_stats.studentized_range.sf(q, k, np.inf),
                                                                   abs=1e-6)
    lower = stats.rank_analysis(SCORES, higher_is_better=False)
    assert lower.average_ranks["a"] == pytest.approx(k + 1 - HAND_RANKS["a"])


@pytest.mark.parametrize("k, q", [(2, 1.960), (3, 2.343), (4, 2.569), (5, 2.728), (7, 2.949), (10, 3.164)])
def test_critical_difference_uses_demsars_q(k, q):
    n = 14
    assert stats.nemenyi_critical_difference(k, n) == pytest.approx(q * math.sqrt(k * (k + 1) / (6 * n)), abs=2e-3)


def test_rank_analysis_refuses_too_little_and_leaves_out_incomplete_datasets():
    with pytest.raises(CutbenchError, match=">= 2 datasets and >= 3 configurations"):
        stats.rank_analysis(SCORES[["a", "b"]])
    with pytest.raises(CutbenchError, match="1 dataset"):
        stats.rank_analysis(SCORES.iloc[:1])
    holes = SCORES.copy()
    holes.loc["d2", "c"] = np.nan
    analysis = stats.rank_analysis(holes)
    assert analysis.left_out == ("d2",) and analysis.n_datasets == 3
