"""Tests for cutbench.reports: summaries against numpy, failure handling, table formats, figures."""

import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from scipy import stats as scipy_stats

from cutbench import CutbenchError
from cutbench.canonical import canonical_json
from cutbench.reports import (
    configuration_labels,
    format_mean_std,
    plot_metric_bars,
    plot_metric_vs_param,
    summarize,
    to_csv,
    to_html,
    to_latex,
    to_markdown,
)
from cutbench.reports.plots import _log_x_wanted

DATASETS = ("two_moons", "blobs", "double_rings")
METHODS = ("ncut", "neuncut", "spectral_net")
SEEDS = (0, 1, 2)
# Designed so the winners are known: per dataset, the best ACC and the fastest fit are different methods.
CENTRE_ACC = {
    "two_moons": {"ncut": 0.95, "neuncut": 0.99, "spectral_net": 0.90},
    "blobs": {"ncut": 0.97, "neuncut": 0.93, "spectral_net": 0.99},
    "double_rings": {"ncut": 0.80, "neuncut": 0.96, "spectral_net": 0.70},
}
CENTRE_FIT_S = {"ncut": 0.5, "neuncut": 3.0, "spectral_net": 12.0}
NOT_OK = {
    ("blobs", "spectral_net", 1): ("failed", "RuntimeError: CUDA out of memory"),
    ("double_rings", "neuncut", 1): ("failed", "FloatingPointError: loss is NaN"),
    ("double_rings", "neuncut", 2): ("failed", "FloatingPointError: loss is NaN"),
    **{("double_rings", "spectral_net", s): ("timeout", "TimeoutError: exceeded 600 s") for s in SEEDS},
}
QUANTITIES = ("acc", "nmi", "ari", "fit_s")


def _records() -> list[dict]:
    rng = np.random.default_rng(0)
    records = []
    for dataset in DATASETS:
        for method in METHODS:
            for seed in SEEDS:
                status, error = NOT_OK.get((dataset, method, seed), ("ok", None))
                acc = CENTRE_ACC[dataset][method] + 0.01 * (seed - 1) + rng.normal(0, 0.002)
                fit_s = CENTRE_FIT_S[method] * (1 + 0.1 * seed) + rng.uniform(0, 0.01)
                values = {
                    "acc": acc, "nmi": acc - 0.05, "ari": acc - 0.1, "nca": acc - 0.02,
                    "fit_s": fit_s, "predict_s": np.nan, "affinity_s": 0.01, "total_s": fit_s + 0.01,
                    "fit_cold_s": fit_s + 0.5,
                }
                if status != "ok":
                    values = {name: np.nan for name in values}
                records.append({
                    "study": "unit", "key": f"{dataset}-{method}-{seed}", "dataset": dataset, "features": "raw",
                    "method": method, "seed": seed, "status": status, "error": error, **values,
                    "train_size": 200, "device": "cpu", "nmi_average_method": "arithmetic",
                    "param.batch_size": 64,
                })
    return records


@pytest.fixture
def records() -> pd.DataFrame:
    return pd.DataFrame(_records())


def _ok_values(dataset, method, quantity):
    return [
        r[quantity] for r in _records() if (r["dataset"], r["method"], r["status"]) == (dataset, method, "ok")
    ]


def _markdown_cells(markdown: str) -> dict:
    """{(dataset, method): {header: cell}} from a long-layout Markdown table."""
    lines = markdown.strip().split("\n")
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    table = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        table[cells[0], cells[1]] = dict(zip(header, cells))
    return table


# ------------------------------------------------------------------------------------------------ summary


def test_summary_matches_numpy_over_ok_cells(records):
    summary = summarize(records, metrics=("acc", "nmi", "ari"), times=("fit_s",))
    assert len(summary) == len(DATASETS) * len(METHODS)
    for dataset in DATASETS:
        for method in METHODS:
            row = summary.loc[(dataset, method)]
            n_ok = len(_ok_values(dataset, method, "acc"))
            assert (row["n_ok"], row["n_total"]) == (n_ok, len(SEEDS))
            for quantity in QUANTITIES:
                values = np.array(_ok_values(dataset, method, quantity))
                expected_mean = values.mean() if len(values) else np.nan
                expected_std = values.std(ddof=1) if len(values) > 1 else np.nan
                np.testing.assert_allclose(row[f"{quantity}_mean"], expected_mean, rtol=1e-12)
                np.testing.assert_allclose(row[f"{quantity}_std"], expected_std, rtol=1e-12)


def test_failed_cells_never_averaged_even_if_they_carry_zeros(records):
    clean = summarize(records)
    polluted = records.copy()
    polluted.loc[polluted["status"] != "ok", ["acc", "nmi", "ari", "fit_s"]] = 0.0  # ClustPy's failure mode
    pd.testing.assert_frame_equal(summarize(polluted), clean)
    assert clean.loc[("blobs", "spectral_net"), ["n_ok", "n_total"]].tolist() == [2, 3]


def test_all_failed_group_shows_status_not_zero(records):
    summary = summarize(records)
    row = summary.loc[("double_rings", "spectral_net")]
    assert row["status"] == "timeout" and row["n_ok"] == 0 and math.isnan(row["acc_mean"])
    cells = _markdown_cells(to_markdown(summary))["double_rings", "spectral_net"]
    assert [cells[h] for h in ("ACC", "NMI", "ARI", "fit [s]", "ok")] == ["timeout"] * 4 + ["0/3"]
    latex_row = next(line for line in to_latex(summary).splitlines() if "spectral" in line and "timeout" in line)
    assert "0.000" not in latex_row and "0/3" in latex_row


def test_dominant_status_and_single_ok_seed(records):
    mixed = records.copy()
    rows = (mixed["dataset"] == "two_moons") & (mixed["method"] == "ncut")
    mixed.loc[rows, "status"] = ["failed", "timeout", "failed"]
    mixed.loc[rows, QUANTITIES] = np.nan
    assert summarize(mixed).loc[("two_moons", "ncut"), "status"] == "failed"

    cells = _markdown_cells(to_markdown(summarize(records)))
    single = cells["double_rings", "neuncut"]
    assert single["ok"] == "1/3" and "±" not in single["ACC"]
    assert single["ACC"].strip("*") == f"{_ok_values('double_rings', 'neuncut', 'acc')[0]:.3f}"
    assert "±" in cells["two_moons", "ncut"]["ACC"]


def test_nan_group_key_is_kept(records):
    records.loc[records["method"] == "ncut", "train_size"] = np.nan
    summary = summarize(records, by=("dataset", "train_size"))
    assert summary["n_total"].sum() == len(records)
    assert "| two_moons | n/a |" in to_markdown(summary)


def test_configurations_of_one_method_are_labelled_apart_and_never_averaged_together():
    knn = canonical_json({"sigma": "median", "n_neighbors": 10})
    siamese = canonical_json({"kind": "siamese", "epochs": 10})
    df = pd.DataFrame({
        "dataset": "mnist", "method": ["neuncut"] * 4 + ["ncut"] * 2 + ["kmeans"] * 2, "seed": [0, 1] * 4,
        "status": "ok", "features": "scatnet", "features.l2_normalize": True, "train_size": 20000,
        "param.affinity": [knn, knn, siamese, siamese, knn, knn, np.nan, np.nan],
        "param.gamma": [100.0] * 4 + [np.nan] * 4,
        "acc": [0.70, 0.72, 0.59, 0.61, 0.85, 0.85, 0.54, 0.55], "fit_s": 1.0,
    })
    labels = configuration_labels(df)
    assert list(labels) == ["neuncut (s=10)"] * 2 + ["neuncut (affinity=siamese)"] * 2 + ["ncut"] * 2 + ["kmeans"] * 2
    summary = summarize(df.assign(method=labels), metrics=("acc",))
    assert summary.loc[("mnist", "neuncut (s=10)"), "acc_mean"] == pytest.approx(0.71)
    assert summary.loc[("mnist", "neuncut (affinity=siamese)"), "acc_mean"] == pytest.approx(0.60)
    # Any varying setting splits a method: here the features and the training size.
    df.loc[6, "features.l2_normalize"] = False
    df.loc[7, "train_size"] = 1000
    assert list(configuration_labels(df)[6:]) == ["kmeans (l2_normalize=False, train_size=20000)",
                                                   "kmeans (l2_normalize=True, train_size=1000)"]


def test_configurations_whose_short_labels_coincide_are_spelled_out():
    """Two kernels with s = 10 that differ only in their kNN search, and a training size set beside one left
    unset, must not share a label (a scaling fit over both would mix them)."""
    exact = canonical_json({"sigma": "median", "n_neighbors": 10})
    approximate = canonical_json({"sigma": "median", "n_neighbors": 10, "knn_backend": "pynndescent"})
    df = pd.DataFrame({"dataset": "rings", "method": "neuncut", "seed": 0, "status": "ok",
                       "param.affinity": [exact, approximate, exact], "train_size": [np.nan, np.nan, 1000.0],
                       "acc": 0.5, "fit_s": 1.0})
    labels = list(configuration_labels(df))
    assert len(set(labels)) == 3
    assert labels[0] == "neuncut (s=10) [knn_backend=-]" and labels[1] == "neuncut (s=10) [knn_backend=pynndescent]"
    assert labels[2] == "neuncut (s=10, train_size=1000.0)"


@pytest.mark.parametrize(
    ("mean", "std", "seconds", "expected"),
    [
        (0.98234, 0.00412, False, "0.982 ± 0.004"),
        (0.98234, math.nan, False, "0.982"),
        (-0.00001, 0.0, False, "0.000 ± 0.000"),
        (math.nan, 0.1, False, "n/a"),
        (12.345, 0.43, True, "12.3 ± 0.4"),
        (0.012345, 0.00081, True, "0.0123 ± 0.0008"),
        (1234.4, 56.2, True, "1234 ± 56"),
        (0.5, math.nan, True, "0.500"),
    ],
)
def test_format_mean_std(mean, std, seconds, expected):
    assert format_mean_std(mean, std, seconds=seconds) == expected
    assert format_mean_std(mean, std, seconds=seconds, plus_minus=" $\\pm$ ") == expected.replace(" ± ", " $\\pm$ ")


# ------------------------------------------------------------------------------------------------ formats


def _holm(p_values: dict) -> dict:
    """Holm's step-down adjustment written out: the i-th smallest p times (m - i), made monotone."""
    ordered = sorted(p_values, key=p_values.get)
    adjusted, running = {}, 0.0
    for i, name in enumerate(ordered):
        running = max(running, min(1.0, (len(ordered) - i) * p_values[name]))
        adjusted[name] = running
    return adjusted


def _expected_marks(dataset: str, quantity: str, higher: bool) -> set:
    """Best mean plus every method whose Holm-adjusted paired t test against it is not significant."""
    values = {m: {r["seed"]: r[quantity] for r in _records()
                  if (r["dataset"], r["method"], r["status"]) == (dataset, m, "ok")} for m in METHODS}
    values = {m: v for m, v in values.items() if v}
    if len(values) < 2 or any(len(v) < 2 for v in values.values()):
        return set()
    means = {m: np.mean(list(v.values())) for m, v in values.items()}
    best = (max if higher else min)(means, key=means.get)
    p_values = {}
    for method in set(values) - {best}:
        shared = sorted(set(values[best]) & set(values[method]))
        p_values[method] = scipy_stats.ttest_rel([values[method][s] for s in shared],
                                                 [values[best][s] for s in shared]).pvalue
    return {best} | {m for m, p in _holm(p_values).items() if p >= 0.05}


def test_bold_marks_the_best_and_every_method_not_significantly_worse(records):
    summary = summarize(records, metrics=("acc", "nmi"), times=("fit_s",))
    cells = _markdown_cells(to_markdown(summary))
    marked_somewhere = 0
    for dataset in DATASETS:
        for quantity, header, higher in (("acc", "ACC", True), ("nmi", "NMI", True), ("fit_s", "fit [s]", False)):
            expected = _expected_marks(dataset, quantity, higher)
            marked_somewhere += len(expected)
            shown = {m for m in METHODS if cells[dataset, m][header].startswith("**")}
            assert shown == expected, (dataset, quantity, shown, expected)
        assert not any(cells[dataset, m]["ok"].startswith("**") for m in METHODS)
    assert marked_somewhere >= 6
    # blobs: spectral_net (seed 1 failed) leads on 2 seeds only: with one degree of freedom even a 0.06 lead is
    # not significant after Holm's correction, so all three are bold instead of a bare best mean
    assert {m for m in METHODS if cells["blobs", m]["ACC"].startswith("**")} == set(METHODS)
    # two_moons: 3 seeds each, neuncut's lead is significant
    assert {m for m in METHODS if cells["two_moons", m]["ACC"].startswith("**")} == {"neuncut"}
    # double_rings: neuncut has one ok seed, so nothing is judged there, and the summary says why
    assert not any(cells["double_rings", m]["ACC"].startswith("**") for m in METHODS)
    assert any("double_rings" in note and "one ok seed" in note for note in summary.attrs["notes"])
    latex = to_latex(summary)
    assert latex.count(r"\textbf{") == sum(c[h].startswith("**") for c in cells.values() for h in ("ACC", "NMI", "fit [s]"))
    assert "**" not in to_markdown(summary, bold_best=False)


def test_a_lead_within_noise_is_not_bold_alone():
    rows = []
    for seed in range(4):  # a and b differ by noise; c is clearly worse and clearly slower
        noise = [0.01, -0.012, 0.008, -0.004][seed]
        for method, acc, fit in (("a", 0.900 + noise, 1.0 + noise), ("b", 0.899 - noise, 1.02 - noise),
                                 ("c", 0.700 + noise, 5.0)):
            rows.append({"dataset": "d", "method": method, "seed": seed, "status": "ok", "acc": acc, "fit_s": fit})
    summary = summarize(pd.DataFrame(rows), metrics=("acc",), times=("fit_s",))
    assert summary["acc_best"].tolist() == [True, True, False]
    assert summary["fit_s_best"].tolist() == [True, True, False]  # a time within noise is not singled out
    cells = _markdown_cells(to_markdown(summary))
    assert cells["d", "a"]["ACC"].startswith("**") and cells["d", "b"]["ACC"].startswith("**")


def test_ties_all_bold_and_no_bold_when_all_tie(records):
    tied = records[records["dataset"] == "two_moons"].copy()
    tied.loc[tied["method"] == "ncut", "acc"] = tied.loc[tied["method"] == "neuncut", "acc"].to_numpy()
    cells = _markdown_cells(to_markdown(summarize(tied)))
    assert [cells["two_moons", m]["ACC"].startswith("**") for m in METHODS] == [True, True, False]
    tied["acc"] = 0.5
    assert "**" not in "".join(c["ACC"] for c in _markdown_cells(to_markdown(summarize(tied))).values())


def test_markdown_is_well_formed(records):
    for layout in ("long", "wide"):
        lines = to_markdown(summarize(records), layout=layout).strip().split("\n")
        assert len({line.count("|") for line in lines}) == 1, layout
        assert re.fullmatch(r"\| :--- (\| :--- )*(\| ---: )+\|", lines[1])
    long_lines = to_markdown(summarize(records)).strip().split("\n")
    assert len(long_lines) == 2 + len(DATASETS) * len(METHODS)
    assert long_lines[0] == "| dataset | method | ACC | NMI | ARI | fit [s] | ok |"


def test_wide_layout_pivots_methods_to_rows(records):
    partial = records[~((records["dataset"] == "blobs") & (records["method"] == "ncut"))]
    markdown = to_markdown(summarize(partial), layout="wide")
    lines = markdown.strip().split("\n")
    assert len(lines) == 2 + len(METHODS)
    assert lines[0].startswith("| method | two_moons ACC | two_moons NMI |")
    assert lines[0].count(" ok |") + lines[0].count(" ok ") >= len(DATASETS)
    ncut = [c.strip() for c in lines[2].strip("|").split("|")]
    assert ncut[0] == "ncut" and ncut[6:11] == ["–"] * 5  # blobs group: never run
    latex = to_latex(summarize(partial), layout="wide")
    assert r"\multicolumn{5}{c}{two\_moons}" in latex and r"\cmidrule(lr){2-6}" in latex
    assert "–" not in latex and "& -- & -- & -- & -- & -- &" in latex  # never-run cells, ASCII dashes
    with pytest.raises(CutbenchError, match="two-level"):
        to_markdown(summarize(partial, by=("method",)), layout="wide")


def test_latex_has_booktabs_and_escaped_names(records):
    latex = to_latex(summarize(records), caption="Clustering on toy data.", label="tab:toy")
    for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}{llrrrrr}", r"\label{tab:toy}"):
        assert rule in latex
    assert r"two\_moons" in latex and r"spectral\_net" in latex and r"double\_rings" in latex
    assert "two_moons" not in latex and "±" not in latex and r"$\pm$" in latex
    body = latex[latex.index(r"\toprule") : latex.index(r"\bottomrule")]
    rows = [line for line in body.splitlines() if line.endswith(r"\\")]
    assert len(rows) == 1 + len(DATASETS) * len(METHODS)
    assert {len(re.findall(r"(?<!\\)&", row)) for row in rows} == {6}
    assert latex.count(r"\midrule") == len(DATASETS)  # under the header, then between dataset blocks


def test_html_parses_and_marks_best(records):
    for layout, n_header_rows in (("long", 1), ("wide", 2)):
        table = ET.fromstring(to_html(summarize(records), layout=layout))
        assert len(table.find("thead").findall("tr")) == n_header_rows
        body = table.find("tbody").findall("tr")
        assert len(body) == (len(DATASETS) * len(METHODS) if layout == "long" else len(METHODS))
        assert table.iter("strong")


def test_csv_roundtrip(records, tmp_path):
    summary = summarize(records)
    path = to_csv(summary, tmp_path / "out" / "summary.csv")
    back = pd.read_csv(path, index_col=["dataset", "method"])
    assert list(back.columns) == list(summary.columns)
    np.testing.assert_allclose(back["acc_mean"].to_numpy(), summary["acc_mean"].to_numpy())
    assert back["status"].tolist() == summary["status"].tolist()


def test_order_is_first_seen_or_explicit_and_output_deterministic(records):
    summary = summarize(records)
    assert list(summary.index) == [(d, m) for d in DATASETS for m in METHODS]
    assert to_markdown(summarize(records)) == to_markdown(summary)
    order = {"dataset": ["blobs", "double_rings", "two_moons"], "method": ["spectral_net", "ncut", "neuncut"]}
    shuffled = records.sample(frac=1.0, random_state=3)
    expected = to_markdown(summarize(records, order=order))
    assert to_markdown(summarize(shuffled, order=order)) == expected
    assert to_latex(summarize(shuffled, order=order)) == to_latex(summarize(records, order=order))
    assert list(summarize(records, order=order).index)[:3] == [
        ("blobs", "spectral_net"), ("blobs", "ncut"), ("blobs", "neuncut"),
    ]


@pytest.mark.parametrize(
    ("change", "kwargs", "match"),
    [
        (lambda df: df.drop(columns="status"), {}, "lack column"),
        (lambda df: df.assign(status="OK"), {}, "unknown status"),
        (lambda df: df.iloc[0:0], {}, "empty"),
        (lambda df: df, {"order": {"method": ["ncut"]}}, "lacks"),
        (lambda df: df, {"order": {"seed": [0]}}, "not in by"),
        (lambda df: df, {"metrics": (), "times": ()}, "at least one"),
    ],
)
def test_bad_input_raises(records, change, kwargs, match):
    with pytest.raises(CutbenchError, match=match):
        summarize(change(records), **kwargs)


def test_bad_layout_raises(records):
    with pytest.raises(CutbenchError, match="accepted"):
        to_markdown(summarize(records), layout="paper")


# ------------------------------------------------------------------------------------------------ figures


def _assert_figure_files(paths, stem, size_px):
    assert [p.name for p in paths] == [stem.name + ".png", stem.name + ".pdf"]
    png, pdf = paths
    assert png.stat().st_size > 1000 and pdf.read_bytes().startswith(b"%PDF")
    image = imread(png)
    assert image.shape[:2] == size_px
    assert image.std() > 0  # something was drawn


def test_plot_metric_bars_writes_png_and_pdf(records, tmp_path):
    stem = tmp_path / "figs" / "acc_bars"
    paths = plot_metric_bars(records, "acc", path_stem=stem, figsize=(6.0, 3.0), dpi=100)
    _assert_figure_files(paths, stem, (300, 600))
    default = plot_metric_bars(records, "fit_s", path_stem=tmp_path / "fit_bars")
    assert all(p.stat().st_size > 0 for p in default)
    with pytest.raises(CutbenchError, match="two columns"):
        plot_metric_bars(records, path_stem=stem, by=("dataset",))


def _sweep_records() -> pd.DataFrame:
    rows = []
    for record in _records():
        if record["dataset"] != "two_moons" or record["method"] == "spectral_net":
            continue
        for batch_size in (64, 128, 256, 1024):
            status = "failed" if (record["method"], batch_size) == ("neuncut", 1024) else record["status"]
            acc = record["acc"] - 0.02 * np.log2(1024 / batch_size) if status == "ok" else np.nan
            rows.append({**record, "param.batch_size": batch_size, "status": status, "acc": acc})
    return pd.DataFrame(rows)


def test_plot_metric_vs_param_writes_png_and_pdf(tmp_path):
    sweep = _sweep_records()
    stem = tmp_path / "sweep_param.batch_size"
    paths = plot_metric_vs_param(sweep, "param.batch_size", "acc", path_stem=stem, figsize=(5.0, 3.0), dpi=80)
    _assert_figure_files(paths, stem, (240, 400))
    with pytest.raises(CutbenchError, match="mix dataset"):
        plot_metric_vs_param(pd.DataFrame(_records()), "train_size", "acc", path_stem=stem)
    with pytest.raises(CutbenchError, match="numeric"):
        plot_metric_vs_param(sweep.assign(device="cpu"), "device", "acc", path_stem=stem)


@pytest.mark.parametrize(
    ("values", "expected"),
    [([64, 128, 256, 1024], True), ([100, 1000], False), ([1, 5, 10], False), ([0, 10, 1000], False)],
)
def test_log_x_only_beyond_one_decade(values, expected):
    assert _log_x_wanted(np.array(values, dtype=float)) is expected


# ------------------------------------------------------------------------------------------ across datasets


def _study_records(seeds=(0, 1, 2)):
    """Four methods on three datasets, ranked by hand: a 1st everywhere; b 2nd, 2nd, 3rd; c 3rd, 4th, 2nd;
    d 4th, 3rd, 4th."""
    means = {"d1": {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6}, "d2": {"a": 0.9, "b": 0.85, "c": 0.5, "d": 0.6},
             "d3": {"a": 0.95, "b": 0.6, "c": 0.7, "d": 0.55}}
    return pd.DataFrame([{"study": "s", "dataset": d, "method": m, "seed": seed, "status": "ok",
                          "acc": acc + 0.002 * seed, "fit_s": 1.0}
                         for d, row in means.items() for m, acc in row.items() for seed in seeds])


HAND_RANKS = {"a": 1.0, "b": (2 + 2 + 3) / 3, "c": (3 + 4 + 2) / 3, "d": (4 + 3 + 4) / 3}


def test_rank_scores_and_the_critical_difference_diagram_follow_hand_ranks(tmp_path):
    from matplotlib.figure import Figure

    from cutbench import stats
    from cutbench.reports import ranks
    from cutbench.reports.plots import draw_critical_difference, plot_critical_difference

    analysis = ranks.analyse(_study_records())
    assert analysis.average_ranks.to_dict() == pytest.approx(HAND_RANKS)
    assert analysis.critical_difference == pytest.approx(stats.nemenyi_critical_difference(4, 3))
    artists = draw_critical_difference(Figure().add_subplot(), analysis)
    drawn = {text.get_text() for text in artists["labels"]}
    assert drawn == {"a (1.00)", "(2.33) b", "c (3.00)", "(3.67) d"} or \
        drawn == {f"{name} ({rank:.2f})" if i < 2 else f"({rank:.2f}) {name}"
                  for i, (name, rank) in enumerate(sorted(HAND_RANKS.items(), key=lambda item: item[1]))}
    markdown = ranks.to_markdown(analysis)
    assert "| a | 1.00 | 1 | 1 | 1 |" in markdown and "Friedman test over 3 datasets and 4 configurations" in markdown
    written = plot_critical_difference(analysis, path_stem=tmp_path / "cd")
    assert imread(written[0]).shape[0] > 100
    assert "needs >= 2 datasets" in ranks.analyse(_study_records()[lambda f: f.dataset == "d1"])
