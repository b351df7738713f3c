"""The one place for judgments: intervals over seeds, paired tests, equivalence verdicts, ranks.

Every "reproduced", "best", "changed" and "regression" cutbench prints is one of the functions here,
so a rule is written once and stated once (the README's "How cutbench judges" quotes the constants below).

* :func:`estimate`: mean, standard deviation, standard error and a two-sided confidence interval of the
  mean over seeds. The default is the Student-t interval: with the 2-5 seeds of a study, a bootstrap
  interval under-covers badly (three values have ten distinct resamples), while the t interval is exact
  for normal scatter and honestly wide. ``method="bootstrap"`` (scipy's BCa) is there for studies with
  many seeds. One value has no interval (``-inf, inf``): nothing can be said about its noise.
* :func:`compare_samples`: two sets of per-seed values. Seeds both sides share are *paired* (the same
  seed gives both methods the same training subset and initial draws): a paired t test, or the Wilcoxon
  signed-rank test from :data:`WILCOXON_MIN_PAIRS` pairs on (below that its exact p-value cannot reach
  :data:`ALPHA`), with an effect size (d_z, or the matched-pairs rank-biserial correlation). Without two
  shared seeds, Welch's t test on independent samples (effect: Hedges' g). One value on a side: no test.
* :func:`mark_best`: per dataset, the best configuration and every one not significantly worse than it
  (paired tests against the best, Holm-corrected over the configurations), instead of a bold best mean.
* :func:`judge_change`: whether a quantity changed between two runs (``cutbench compare``, the paper's
  ci-scale reference): significant *and* larger than a stated minimum effect; with one seed per side the
  noise cannot be judged, so an explicit tolerance decides, and the result says so.
* :func:`equivalence`: a published number against ours. ``reproduced`` when our confidence interval lies
  within the margin (:func:`equivalence_margin`: :data:`SCORE_MARGIN` for scores, :data:`RELATIVE_MARGIN`
  of the value for other quantities, plus half a unit of the published value's last printed digit);
  ``below`` / ``above`` when the whole interval lies beyond it; ``inconclusive`` otherwise (too few
  seeds, or too much scatter, to say).
* :func:`cross_machine_band`: how far a seed-averaged network result may move on another CPU (the CI
  gate's band), from measured kernel variants and the seeds' spread.
* :func:`rank_analysis`: across datasets, average ranks, the Friedman test and the Nemenyi post-hoc test
  with its critical difference (Demšar, JMLR 2006). scipy gives the Friedman test and the studentised
  range; scikit-posthocs gives the Nemenyi p-values (and draws the critical-difference diagram, in
  :mod:`cutbench.reports.plots`); statsmodels gives Holm's correction. They are the maintained
  implementations of these tests, tested by their authors; cutbench tests its use of them against
  hand computations and scipy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from cutbench import CutbenchError

CONFIDENCE = 0.95
"""Two-sided confidence of every interval cutbench shows."""
ALPHA = 0.05
"""Significance level of every test (best marks, changes, orderings, the Friedman test)."""
WILCOXON_MIN_PAIRS = 6
"""From this many pairs on, paired comparisons use the Wilcoxon signed-rank test (its smallest exact
two-sided p-value, 2 / 2**n, is below :data:`ALPHA` only from n = 6); below it, the paired t test."""
SCORE_MARGIN = 0.01
"""Equivalence margin of a score in [0, 1] (ACC, NMI, ARI, NCA) against a published value: one point."""
RELATIVE_MARGIN = 0.05
"""Equivalence margin of any other published quantity (a cut value), as a fraction of the published value."""
SCORE_MIN_EFFECT = 0.005
"""The smallest change of a score that ``compare`` reports (also the tolerance when it cannot judge noise)."""
TIME_MIN_RATIO = 0.25
"""The smallest relative change of a time that ``compare`` reports ..."""
TIME_MIN_SECONDS = 0.01
"""... which must also exceed this many seconds (milliseconds are noise whatever their ratio)."""
SCORES = ("acc", "nmi", "ari", "nca")
"""Quantities that are scores in [0, 1] (margins and effects in absolute points)."""

BOOTSTRAP_RESAMPLES = 9999


# ------------------------------------------------------------------------------------------- intervals


@dataclass(frozen=True)
class Estimate:
    """The mean of ``n`` values with its spread and confidence interval.

    ``method`` is ``"t"`` (Student-t interval), ``"bootstrap"`` (BCa) or ``"none"`` (fewer than two values:
    ``low``/``high`` are infinite and ``std``/``sem`` NaN).
    """

    n: int
    mean: float
    std: float
    sem: float
    low: float
    high: float
    confidence: float = CONFIDENCE
    method: str = "t"

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def interval_text(self, decimals: int = 3) -> str:
        if self.n < 2:
            return "no interval (1 seed)" if self.n == 1 else "no value"
        return f"[{self.low:.{decimals}f}, {self.high:.{decimals}f}]"


def _finite(values) -> np.ndarray:
    array = np.asarray(list(values), dtype=float)
    return array[np.isfinite(array)]


def estimate(values, *, confidence: float = CONFIDENCE, method: str = "t") -> Estimate:
    """Mean, std (ddof 1), standard error and a two-sided ``confidence`` interval of the finite ``values``.

    Parameters
    ----------
    values : iterable of float
        One value per seed; NaN and infinite values are left out.
    confidence : float, default :data:`CONFIDENCE`
    method : {"t", "bootstrap"}, default "t"
        The Student-t interval ``mean ± t(n-1) · sem``, or scipy's bias-corrected and accelerated bootstrap
        (9,999 resamples, seeded) for many seeds. Values that are all equal give a zero-width interval.

    Returns
    -------
    Estimate
    """
    if method not in ("t", "bootstrap"):
        raise CutbenchError(f"method must be 't' or 'bootstrap'; got {method!r}.")
    if not 0 < confidence < 1:
        raise CutbenchError(f"confidence must be in (0, 1), e.g. 0.95; got {confidence!r}.")
    array = _finite(values)
    n = len(array)
    if n == 0:
        return Estimate(0, math.nan, math.nan, math.nan, -math.inf, math.inf, confidence, "none")
    mean = float(array.mean())
    if n == 1:
        return Estimate(1, mean, math.nan, math.nan, -math.inf, math.inf, confidence, "none")
    std = float(array.std(ddof=1))
    sem = std / math.sqrt(n)
    if std <= 1e-12 * max(1.0, abs(mean)):  # equal values up to rounding
        return Estimate(n, mean, 0.0, 0.0, mean, mean, confidence, method)
    if method == "t":
        half = float(scipy_stats.t.ppf((1 + confidence) / 2, n - 1)) * sem
        return Estimate(n, mean, std, sem, mean - half, mean + half, confidence, "t")
    result = scipy_stats.bootstrap((array,), np.mean, confidence_level=confidence, method="BCa",
                                   n_resamples=BOOTSTRAP_RESAMPLES, rng=np.random.default_rng(0))
    interval = result.confidence_interval
    return Estimate(n, mean, std, sem, float(interval.low), float(interval.high), confidence, "bootstrap")


# ------------------------------------------------------------------------------------------ comparisons


@dataclass(frozen=True)
class Comparison:
    """Two sets of per-seed values compared: ``difference`` is b − a (mean of the paired differences, or the
    difference of the means), ``test`` names the test (``"none"`` when none could be run, with ``note``
    saying why), ``effect_size`` is measured as ``effect`` says."""

    test: str
    n: int
    difference: float
    statistic: float = math.nan
    p_value: float = math.nan
    effect_size: float = math.nan
    effect: str = ""
    note: str = ""
    seeds: tuple = ()

    @property
    def judged(self) -> bool:
        return self.test != "none"

    def significant(self, alpha: float = ALPHA) -> bool:
        return self.judged and self.p_value < alpha

    def text(self) -> str:
        if not self.judged:
            return f"not tested ({self.note})"
        effect = f", {self.effect} {self.effect_size:+.2f}" if math.isfinite(self.effect_size) else (
            f", {self.effect} {'+' if self.effect_size > 0 else '−'}∞" if self.effect else "")
        return f"{self.test}, n = {self.n}, p = {p_text(self.p_value)}{effect}" + (f"; {self.note}" if self.note
                                                                                     else "")


def p_text(p: float) -> str:
    """A p-value as printed: 3 significant digits, ``< 0.001`` below that, ``n/a`` when none."""
    return "n/a" if not math.isfinite(p) else f"{p:.3g}" if p >= 0.001 else "< 0.001"


def _as_seed_map(values) -> dict:
    if isinstance(values, Mapping):
        return {seed: float(v) for seed, v in values.items() if v is not None and math.isfinite(float(v))}
    return {index: float(v) for index, v in enumerate(values) if v is not None and math.isfinite(float(v))}


def _paired(a: np.ndarray, b: np.ndarray, test: str, seeds: tuple, note: str) -> Comparison:
    differences = b - a
    n = len(differences)
    mean = float(differences.mean())
    if test == "auto":
        test = "wilcoxon" if n >= WILCOXON_MIN_PAIRS else "t"
    name = "Wilcoxon signed-rank" if test == "wilcoxon" else "paired t"
    effect = "rank-biserial r" if test == "wilcoxon" else "d_z"
    if np.all(differences == 0):
        return Comparison(name, n, 0.0, 0.0, 1.0, 0.0, effect, _join(note, "every seed gave the same value"),
                          seeds)
    spread = float(differences.std(ddof=1))
    if spread <= 1e-12 * max(1.0, abs(mean)):  # every seed moved by the same amount (up to rounding): no noise
        return Comparison(name, n, mean, math.copysign(math.inf, mean), 0.0, math.copysign(math.inf, mean)
                          if test == "t" else math.copysign(1.0, mean), effect,
                          _join(note, "every seed differs by the same amount"), seeds)
    if test == "wilcoxon":
        result = scipy_stats.wilcoxon(b, a, zero_method="wilcox")
        nonzero = differences[differences != 0]
        ranks = scipy_stats.rankdata(np.abs(nonzero))
        r = float((ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum())
        return Comparison(name, n, mean, float(result.statistic), float(result.pvalue), r, effect, note, seeds)
    result = scipy_stats.ttest_rel(b, a)
    return Comparison(name, n, mean, float(result.statistic), float(result.pvalue), mean / spread, effect, note,
                      seeds)


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def compare_samples(a, b, *, test: str = "auto") -> Comparison:
    """Compare per-seed values ``a`` and ``b`` (mappings seed -> value, or sequences indexed by seed).

    Parameters
    ----------
    a, b : mapping of seed to float, or sequence of float
        NaN or missing values are left out.
    test : {"auto", "t", "wilcoxon"}, default "auto"
        The paired test on shared seeds: "auto" takes Wilcoxon from :data:`WILCOXON_MIN_PAIRS` pairs on, the
        paired t test below. Without two shared seeds the samples are compared as independent (Welch).

    Returns
    -------
    Comparison
        ``test`` is "paired t", "Wilcoxon signed-rank", "Welch t" or "none" (one value on a side); ``note``
        names the seeds left out of a paired comparison.
    """
    if test not in ("auto", "t", "wilcoxon"):
        raise CutbenchError(f"test must be 'auto', 't' or 'wilcoxon'; got {test!r}.")
    a, b = _as_seed_map(a), _as_seed_map(b)
    shared = tuple(sorted(set(a) & set(b), key=str))
    if len(shared) >= 2:
        left_out = sorted(set(a) ^ set(b), key=str)
        note = f"seed(s) {', '.join(map(str, left_out))} on one side only: left out" if left_out else ""
        return _paired(np.array([a[s] for s in shared]), np.array([b[s] for s in shared]), test, shared, note)
    x, y = np.array(list(a.values())), np.array(list(b.values()))
    difference = float(y.mean() - x.mean()) if len(x) and len(y) else math.nan
    if len(x) < 2 or len(y) < 2:
        return Comparison("none", min(len(x), len(y)), difference,
                          note="one seed on a side: its noise cannot be judged")
    note = ("fewer than 2 seeds in common: compared as independent samples"
            if set(a) != set(b) else "")
    sx, sy = x.std(ddof=1), y.std(ddof=1)
    pooled = math.sqrt(((len(x) - 1) * sx ** 2 + (len(y) - 1) * sy ** 2) / (len(x) + len(y) - 2))
    if pooled <= 1e-12 * max(1.0, abs(float(x.mean())), abs(float(y.mean()))):
        same = difference == 0
        return Comparison("Welch t", min(len(x), len(y)), difference, 0.0 if same else math.copysign(math.inf, difference),
                          1.0 if same else 0.0, 0.0 if same else math.copysign(math.inf, difference), "Hedges' g",
                          _join(note, "no spread on either side"))
    result = scipy_stats.ttest_ind(y, x, equal_var=False)
    correction = 1 - 3 / (4 * (len(x) + len(y)) - 9)  # Hedges' small-sample correction of Cohen's d
    return Comparison("Welch t", min(len(x), len(y)), difference, float(result.statistic), float(result.pvalue),
                      difference / pooled * correction, "Hedges' g", note)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of ``p_values`` (statsmodels' ``multipletests``); NaN stays NaN."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float)
    out = np.full(len(p), math.nan)
    finite = np.isfinite(p)
    if finite.any():
        out[finite] = multipletests(p[finite], method="holm")[1]
    return out.tolist()


# ---------------------------------------------------------------------------------------- best marks


@dataclass(frozen=True)
class Marks:
    """Which configurations are best or not significantly worse than the best, and why.

    ``marked`` holds the best and every configuration not significantly worse (Holm-corrected paired tests
    against the best); it is empty when no judgment was possible, and ``note`` says why.
    """

    marked: frozenset
    best: tuple = ()
    comparisons: dict = field(default_factory=dict)
    note: str = ""


def mark_best(groups: Mapping, higher_is_better: bool, *, alpha: float = ALPHA, test: str = "auto") -> Marks:
    """The best configuration (by mean) and every one not significantly worse than it.

    Parameters
    ----------
    groups : mapping of label to (mapping of seed to float)
        The competing configurations' per-seed values (e.g. the methods on one dataset).
    higher_is_better : bool
    alpha : float, default :data:`ALPHA`
        Level of the Holm-corrected paired tests of each configuration against the best.

    Returns
    -------
    Marks
        Nothing is marked with fewer than two competitors, when every mean is equal, or when a competitor
        has fewer than two seeds (its noise cannot be judged; ``note`` says which).
    """
    values = {label: _as_seed_map(v) for label, v in groups.items()}
    values = {label: v for label, v in values.items() if v}
    if len(values) < 2:
        return Marks(frozenset(), note="fewer than two configurations to compare")
    means = {label: float(np.mean(list(v.values()))) for label, v in values.items()}
    if len(set(means.values())) == 1:
        return Marks(frozenset(), note="every configuration has the same mean")
    single = [label for label, v in values.items() if len(v) < 2]
    if single:
        return Marks(frozenset(), note=f"{len(single)} of {len(values)} configurations have one seed, so no "
                                       "significance can be judged")
    sign = 1 if higher_is_better else -1
    top = max(sign * m for m in means.values())
    best = tuple(label for label, m in means.items() if sign * m == top)
    others = [label for label in values if label not in best]
    comparisons = {label: compare_samples(values[best[0]], values[label], test=test) for label in others}
    adjusted = holm([c.p_value for c in comparisons.values()])
    worse = {label for label, p in zip(others, adjusted, strict=True)
             if math.isfinite(p) and p < alpha and sign * comparisons[label].difference < 0}
    return Marks(frozenset(values) - worse, best, comparisons)


# ----------------------------------------------------------------------------------------- changes


@dataclass(frozen=True)
class Change:
    """Whether a quantity changed between two runs: ``verdict`` is "regression", "improvement" or "same";
    ``rule`` says how it was decided (the test, or the tolerance when one seed per side left no test)."""

    verdict: str
    comparison: Comparison
    rule: str


def judge_change(old, new, *, higher_is_better: bool, seconds: bool = False, alpha: float = ALPHA,
                 min_effect: float = SCORE_MIN_EFFECT, min_ratio: float = TIME_MIN_RATIO,
                 min_seconds: float = TIME_MIN_SECONDS) -> Change:
    """Whether the per-seed values ``new`` differ from ``old`` beyond noise and beyond a minimum effect.

    A score changed when the test of :func:`compare_samples` is significant at ``alpha`` *and* the change
    exceeds ``min_effect``; a time (``seconds``) when the test is significant and it changes by more than
    ``min_ratio`` relative and ``min_seconds``. With one seed per side no test can be run: the change is then
    judged by the minimum effect alone (the explicit tolerance), and ``rule`` says so.
    """
    comparison = compare_samples(old, new)
    old_mean = estimate(_as_seed_map(old).values()).mean
    delta = comparison.difference
    if seconds:
        ratio = (old_mean + delta) / old_mean if old_mean > 0 else math.inf
        large = abs(delta) > min_seconds and (ratio > 1 + min_ratio or ratio < 1 / (1 + min_ratio))
        size = f"more than {min_ratio:.0%} and {min_seconds:g} s"
    else:
        large = abs(delta) > min_effect
        size = f"more than {min_effect:g}"
    if comparison.judged:
        changed = large and comparison.significant(alpha)
        rule = f"{comparison.test} at α = {alpha:g} and a change of {size}"
    else:
        changed = large
        rule = f"one seed per side, noise not judged: tolerance, a change of {size}"
    if not changed or not math.isfinite(delta):
        return Change("same", comparison, rule)
    better = delta > 0 if higher_is_better else delta < 0
    return Change("improvement" if better else "regression", comparison, rule)


# ------------------------------------------------------------------------------------------ equivalence


def printed_resolution(text: str) -> float:
    """Half a unit of the last printed digit of a published number (``"0.854"`` -> 0.0005, ``"80"`` -> 0.5):
    the published value is only known to that precision."""
    text = str(text).strip().lower()
    mantissa = text.split("e")[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    exponent = int(text.split("e")[1]) if "e" in text else 0
    return 0.5 * 10.0 ** (exponent - decimals)


def equivalence_margin(quantity: str, published_text: str) -> float:
    """The margin within which our interval must lie around a published value for ``reproduced``.

    :data:`SCORE_MARGIN` for a score (``quantity`` in :data:`SCORES`), :data:`RELATIVE_MARGIN` of the value
    otherwise, plus :func:`printed_resolution` of the published text.
    """
    published = float(published_text)
    base = SCORE_MARGIN if quantity in SCORES else RELATIVE_MARGIN * abs(published)
    return base + printed_resolution(published_text)


EQUIVALENCE_VERDICTS = ("reproduced", "below", "above", "inconclusive")


def equivalence(ours: Estimate, published: float, margin: float) -> str:
    """``reproduced`` when ``ours``'s interval lies within ``published ± margin``; ``below`` / ``above`` when it
    lies wholly below / above that band; ``inconclusive`` otherwise (and with fewer than two values)."""
    if ours.n == 0 or not math.isfinite(published):
        return "n/a"
    low, high = published - margin, published + margin
    if ours.low >= low and ours.high <= high:
        return "reproduced"
    if ours.high < low:
        return "below"
    if ours.low > high:
        return "above"
    return "inconclusive"


# --------------------------------------------------------------------------------------- machine band

BAND_FACTOR = 2.0
"""Safety factor of :func:`cross_machine_band` (the kernel variants measured are a sample of the CPUs there are)."""


def cross_machine_band(variant_means: Sequence[float], seed_std: float, n_seeds: int) -> float:
    """How far a seed-averaged network result may move on another CPU with no change of code.

    ``variant_means`` are the means over ``n_seeds`` seeds of one cell's metric, measured once per kernel
    variant (the code paths other x86-64 CPUs take, see ``benchmarks/ci/gate.py``); ``seed_std`` is the
    metric's standard deviation over the seeds. The band is :data:`BAND_FACTOR` times the larger of

    * the largest difference between two variants' means (what was seen to move), and
    * ``seed_std / n_seeds``: one of the ``n_seeds`` seeds taking another path (a float's last bit can send a
      training run elsewhere, as a new seed would) by one standard deviation, for cells that happened not to
      move in the variants measured.
    """
    means = [m for m in variant_means if math.isfinite(m)]
    spread = max(means) - min(means) if means else 0.0
    redraw = seed_std / n_seeds if math.isfinite(seed_std) and n_seeds else 0.0
    return BAND_FACTOR * max(spread, redraw)


# --------------------------------------------------------------------------------------------- ranks


@dataclass(frozen=True)
class RankAnalysis:
    """Average ranks over datasets (1 = best), the Friedman test and the Nemenyi post-hoc test.

    ``ranks`` has one row per dataset and one column per configuration; ``posthoc`` holds the Nemenyi
    p-values between configurations; ``critical_difference`` is the Nemenyi CD: two configurations whose
    average ranks differ by more are significantly different at ``alpha``.
    """

    ranks: pd.DataFrame
    average_ranks: pd.Series
    friedman_statistic: float
    friedman_p: float
    posthoc: pd.DataFrame
    critical_difference: float
    alpha: float
    left_out: tuple = ()

    @property
    def n_datasets(self) -> int:
        return len(self.ranks)

    @property
    def n_methods(self) -> int:
        return len(self.average_ranks)

    def summary(self) -> str:
        verdict = ("the configurations differ" if self.friedman_p < self.alpha else
                   "no significant difference between the configurations")
        return (f"Friedman test over {self.n_datasets} datasets and {self.n_methods} configurations: "
                f"χ² = {self.friedman_statistic:.2f}, p = {p_text(self.friedman_p)} ({verdict} at α = "
                f"{self.alpha:g}); Nemenyi critical difference {self.critical_difference:.2f} ranks.")


def nemenyi_critical_difference(n_methods: int, n_datasets: int, alpha: float = ALPHA) -> float:
    """Demšar's CD = q_α · sqrt(k (k + 1) / (6 N)), q_α the studentised range quantile over √2."""
    q = scipy_stats.studentized_range.ppf(1 - alpha, n_methods, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(n_methods * (n_methods + 1) / (6 * n_datasets)))


def rank_analysis(scores: pd.DataFrame, *, higher_is_better: bool = True, alpha: float = ALPHA) -> RankAnalysis:
    """Average ranks, Friedman and Nemenyi over ``scores`` (one row per dataset, one column per configuration,
    each cell the configuration's mean score on that dataset).

    Datasets where a configuration has no score are left out (named in ``left_out``). Needs at least two
    datasets and three configurations (the Friedman test compares three or more).

    Raises
    ------
    CutbenchError
        Too few datasets or configurations left to rank.
    """
    import scikit_posthocs

    complete = scores.dropna(axis=0, how="any")
    left_out = tuple(str(d) for d in scores.index if d not in complete.index)
    n_datasets, n_methods = complete.shape
    if n_methods < 3 or n_datasets < 2:
        raise CutbenchError(f"ranking needs >= 2 datasets and >= 3 configurations with a score on each; have "
                            f"{n_datasets} dataset(s) and {n_methods} configuration(s)"
                            + (f" ({', '.join(left_out)} left out: a configuration has no score there)"
                               if left_out else "") + ".")
    ranks = complete.rank(axis=1, ascending=not higher_is_better, method="average")
    columns = [complete[c].to_numpy(dtype=float) for c in complete.columns]
    if (ranks.nunique(axis=1) == 1).all():  # every dataset a complete tie: nothing to test
        statistic, p = 0.0, 1.0
    else:
        statistic, p = (float(x) for x in scipy_stats.friedmanchisquare(*columns))
    posthoc = scikit_posthocs.posthoc_nemenyi_friedman(complete.to_numpy(dtype=float))
    posthoc.index = posthoc.columns = list(complete.columns)
    return RankAnalysis(ranks, ranks.mean(axis=0).sort_values(), statistic, p, posthoc,
                        nemenyi_critical_difference(n_methods, n_datasets, alpha), alpha, left_out)


__all__ = ["ALPHA", "BAND_FACTOR", "CONFIDENCE", "EQUIVALENCE_VERDICTS", "RELATIVE_MARGIN", "SCORES", "SCORE_MARGIN",
           "SCORE_MIN_EFFECT", "TIME_MIN_RATIO", "TIME_MIN_SECONDS", "WILCOXON_MIN_PAIRS", "Change", "Comparison",
           "Estimate", "Marks", "RankAnalysis", "compare_samples", "cross_machine_band", "equivalence",
           "equivalence_margin", "estimate",
           "holm", "judge_change", "mark_best", "nemenyi_critical_difference", "p_text", "printed_resolution",
           "rank_analysis"]
