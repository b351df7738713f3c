"""cutbench compare: regressions beyond the seeds' noise are flagged, noise is not; exit codes; errors;
and the self-contained report.html of studies and comparisons."""

from html.parser import HTMLParser

import numpy as np
import pytest
from scipy import stats as scipy_stats

from cutbench.cli import main
from cutbench.identity import cell_key
from cutbench.reports.compare import compare_frames, flagged
from cutbench.store import ResultStore


def record(seed, acc, fit=1.0, method="neuncut", gamma=80.0, status="ok", study="s", commit="c0ffee", dataset="blobs"):
    config = {"dataset": {"name": dataset, "params": {"n": 10}, "fingerprint": "f"}, "features": {"name": "raw"},
              "method": {"name": method, "params": {"gamma": gamma}},
              "protocol": {"train_size": None, "nmi_average_method": "arithmetic"}, "seed": seed, "device": "cpu",
              "timing": {"warmup": 0, "repeats": 1}, "cutbench_version": "0.1.0"}
    rec = {"study": study, "key": cell_key(config), "config": config, "status": status, "error": None,
           "provenance": {"git": {"commit": commit, "dirty": False}, "timestamp": f"2026-11-27T10:00:0{seed}+00:00",
                          "cpu": "Test CPU 9000"}}
    if status == "ok":
        rec["metrics"] = {"acc": acc, "nmi": acc, "ari": acc, "nca": acc}
        rec["timings"] = {"fit": {"seconds": fit}, "predict": {"seconds": 0.1}}
    else:
        rec["error"] = "RuntimeError: boom"
    return rec


def store_of(folder, records):
    store = ResultStore(folder)
    for rec in records:
        store.write(rec, labels=np.zeros(10) if rec["status"] == "ok" else None)
    return store


def frame_of(tmp_path, name, records):
    return store_of(tmp_path / name, records).to_frame()


def verdicts(table, quantity="acc"):
    return dict(zip(table[table.quantity == quantity].configuration, table[table.quantity == quantity].verdict))


def test_a_seeded_accuracy_drop_is_flagged_and_noise_is_not(tmp_path):
    old = frame_of(tmp_path, "old", [record(s, a) for s, a in enumerate([0.80, 0.90, 0.85])]
                   + [record(s, 0.95, method="kmeans") for s in range(3)])
    # neuncut: +0.02, +0.01, 0.00 on the same seeds: paired t p = 0.18, noise. kmeans: 0.95 -> 0.94 on every
    # seed (a deterministic shift, no spread): a real drop.
    new = frame_of(tmp_path, "new", [record(s, a) for s, a in enumerate([0.82, 0.91, 0.85])]
                   + [record(s, 0.94, method="kmeans") for s in range(3)])
    table = compare_frames(old, new)
    assert verdicts(table) == {"neuncut": "same", "kmeans": "regression"}
    row = table[(table.configuration == "neuncut") & (table.quantity == "acc")].iloc[0]
    expected = scipy_stats.ttest_rel([0.82, 0.91, 0.85], [0.80, 0.90, 0.85])
    assert row.p_value == pytest.approx(expected.pvalue) and row.test.startswith("paired t, n = 3")
    row = table[(table.configuration == "kmeans") & (table.quantity == "acc")].iloc[0]
    assert row.delta == pytest.approx(-0.01) and row.p_value == 0.0
    assert list(flagged(table, ["accuracy"]).configuration.unique()) == ["kmeans"]
    better = frame_of(tmp_path, "better", [record(s, 0.99, method="kmeans") for s in range(3)])
    assert verdicts(compare_frames(old, better)) == {"neuncut": "removed", "kmeans": "improvement"}
    # significant but smaller than the minimum effect: the same
    tiny = frame_of(tmp_path, "tiny", [record(s, 0.948, method="kmeans") for s in range(3)])
    assert verdicts(compare_frames(old, tiny))["kmeans"] == "same"


def test_one_seed_per_side_falls_back_to_the_stated_tolerance(tmp_path):
    old = frame_of(tmp_path, "old", [record(0, 0.90)])
    table = compare_frames(old, frame_of(tmp_path, "a", [record(0, 0.897)]))
    row = table[table.quantity == "acc"].iloc[0]
    assert row.verdict == "same" and "noise cannot be judged: tolerance only" in row.test
    assert verdicts(compare_frames(old, frame_of(tmp_path, "b", [record(0, 0.89)]))) == {"neuncut": "regression"}
    assert verdicts(compare_frames(old, frame_of(tmp_path, "c", [record(0, 0.89)]), min_effect=0.02)) == \
        {"neuncut": "same"}


def test_different_seed_sets_are_paired_on_shared_seeds_or_compared_as_independent(tmp_path, capsys):
    old = store_of(tmp_path / "old", [record(s, 0.9 + 0.01 * s) for s in range(3)])
    new = store_of(tmp_path / "new", [record(s, 0.8 + 0.01 * s) for s in (1, 2, 5)])
    table = compare_frames(old.to_frame(), new.to_frame())
    row = table[table.quantity == "acc"].iloc[0]
    assert row.test.startswith("paired t, n = 2") and "seed(s) 0, 5 on one side only: left out" in row.test
    assert row.verdict == "regression"
    disjoint = store_of(tmp_path / "disjoint", [record(s, 0.8 + 0.01 * s) for s in (7, 8, 9)])
    row = compare_frames(old.to_frame(), disjoint.to_frame()).query("quantity == 'acc'").iloc[0]
    assert row.test.startswith("Welch t") and "independent samples" in row.test
    expected = scipy_stats.ttest_ind([0.87, 0.88, 0.89], [0.9, 0.91, 0.92], equal_var=False)
    assert row.p_value == pytest.approx(expected.pvalue)
    assert main(["compare", str(tmp_path / "old"), str(tmp_path / "disjoint")]) == 1
    out = capsys.readouterr().out
    assert "seeds 0, 1, 2)" in out and "seeds 7, 8, 9)" in out and "compared as independent samples" in out


def test_time_changes_count_beyond_the_threshold_and_the_noise(tmp_path):
    old = frame_of(tmp_path, "old", [record(s, 0.9, fit=1.0) for s in range(3)])
    slower = frame_of(tmp_path, "slower", [record(s, 0.9, fit=1.4) for s in range(3)])
    bit_slower = frame_of(tmp_path, "bit", [record(s, 0.9, fit=1.2) for s in range(3)])
    noisy = frame_of(tmp_path, "noisy", [record(s, 0.9, fit=f) for s, f in enumerate([0.5, 3.0, 1.0])])
    assert verdicts(compare_frames(old, slower), "fit_s") == {"neuncut": "regression"}
    assert verdicts(compare_frames(old, bit_slower), "fit_s") == {"neuncut": "same"}  # +20% < 25%
    assert verdicts(compare_frames(old, bit_slower, time_threshold=0.1), "fit_s") == {"neuncut": "regression"}
    assert verdicts(compare_frames(old, noisy), "fit_s") == {"neuncut": "same"}  # +50%, paired p = 0.53: noise
    assert flagged(compare_frames(old, slower), ["accuracy"]).empty


def test_millisecond_times_and_quantities_no_side_measures_are_not_regressions(tmp_path):
    old = frame_of(tmp_path, "old", [record(0, 0.9, fit=0.001), record(0, 0.9, fit=1.0, method="ncut")])
    new = frame_of(tmp_path, "new", [record(0, 0.9, fit=0.005), record(0, 0.9, fit=1.0, method="ncut")])
    for frame in (old, new):  # a transductive method has no predict stage
        frame.loc[frame.method == "ncut", "predict_s"] = np.nan
    table = compare_frames(old, new)
    assert verdicts(table, "fit_s") == {"neuncut": "same", "ncut": "same"}  # 5x, but 4 ms: noise
    assert verdicts(compare_frames(old, new, time_floor=0.001), "fit_s")["neuncut"] == "regression"
    assert verdicts(table, "predict_s") == {"neuncut": "same"}  # ncut's row is left out, not flagged
    assert flagged(table, ["accuracy", "time"]).empty
    failed_twice = frame_of(tmp_path, "f1", [record(0, 0.9, status="failed")])
    assert set(compare_frames(failed_twice, frame_of(tmp_path, "f2", [record(0, 0.9, status="failed")])).verdict) \
        == {"same"}


def test_a_configuration_that_now_fails_is_a_regression(tmp_path):
    old = frame_of(tmp_path, "old", [record(s, 0.9) for s in range(2)])
    new = frame_of(tmp_path, "new", [record(s, 0.9, status="failed") for s in range(2)])
    assert set(compare_frames(old, new).verdict) == {"regression"}


def test_compare_exits_non_zero_on_a_regression_and_writes_its_reports(tmp_path, capsys):
    store_of(tmp_path / "old", [record(s, 0.9, commit="1111111aaaa") for s in range(2)])
    store_of(tmp_path / "new", [record(s, 0.8, commit="2222222bbbb") for s in range(2)])
    assert main(["compare", str(tmp_path / "old"), str(tmp_path / "new")]) == 1
    out = capsys.readouterr().out
    assert "(commit 1111111aaa; CPU Test CPU 9000;" in out and "(commit 2222222bbb;" in out and "**regression**" in out
    assert "4 regression(s) of kind accuracy flagged" in out  # acc, nmi, ari, nca
    assert (tmp_path / "new" / "comparison" / "comparison.md").is_file()
    validate_page((tmp_path / "new" / "comparison" / "report.html").read_text())
    assert main(["compare", str(tmp_path / "old"), str(tmp_path / "new"), "--fail-on", "time"]) == 0
    assert main(["compare", str(tmp_path / "old"), str(tmp_path / "old")]) == 0


@pytest.mark.parametrize("case, message", [
    ("other study", "holds study s but .* holds t: compare two runs of the same study"),
    ("no records", "holds no usable records: nothing to compare"),
    ("no common cell", "share no configuration"),
    ("not a folder", "holds no results"),
])
def test_bad_comparisons_are_clear_errors(tmp_path, capsys, case, message):
    store_of(tmp_path / "old", [record(0, 0.9)])
    new = {"other study": [record(0, 0.9, study="t")], "no records": [],
           "no common cell": [record(0, 0.9, gamma=99.0)], "not a folder": None}[case]
    if new is not None:
        store_of(tmp_path / "new", new)
    assert main(["compare", str(tmp_path / "old"), str(tmp_path / "new")]) == 2
    assert __import__("re").search(message, capsys.readouterr().err)


class PageStructure(HTMLParser):
    """Collects what a self-contained report page must have."""

    def __init__(self):
        super().__init__()
        self.tags, self.external, self.images, self.charset = [], [], [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "meta" and "charset" in attrs:
            self.charset = attrs["charset"]
        for name in ("src", "href"):
            if name in attrs and not attrs[name].startswith(("data:", "#")):
                self.external.append(attrs[name])
        if tag == "img":
            self.images.append(attrs.get("src", ""))


def validate_page(text):
    parser = PageStructure()
    parser.feed(text)
    assert text.startswith("<!DOCTYPE html>") and parser.charset == "utf-8"
    assert {"html", "head", "style", "body", "h1", "table", "thead", "tbody"} <= set(parser.tags)
    assert parser.external == [], "the page must open offline"
    assert all(src.startswith("data:image/png;base64,") for src in parser.images)
    return parser


def test_a_study_writes_a_self_contained_report_with_failures_and_provenance(tmp_path):
    raw_yaml = ("name: page\ndatasets:\n  - {name: blobs, params: {n: 80}}\nmethods:\n  - kmeans\n  - name: neuncut\n"
                "    params: {batch_size: 40, epochs: 2, lr: 1.0e+30}\nseeds: [0, 1]\ndevice: cpu\n"
                "timing: {warmup: 0, repeats: 1}\n")
    (tmp_path / "s.yaml").write_text(raw_yaml)
    assert main(["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "res")]) == 1  # neuncut diverges
    text = (tmp_path / "res" / "report.html").read_text()
    parser = validate_page(text)
    # the ACC bars and the Ncut bars (every ok cell records its cut value)
    assert len(parser.images) == 2 and "2 of 4 cells did not finish" in text and "training diverged" in text
    assert "threads per cell:" in text and "commits" in text and "kmeans" in text


def test_the_report_marks_significance_and_ranks_across_datasets(tmp_path, capsys):
    """Four methods on three datasets (ranked by hand: a first everywhere, d last on two): the table's bold
    follows the paired tests, the report ranks the methods and draws the critical-difference diagram; with
    one seed nothing is bold and the table says why."""
    means = {"d1": {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6}, "d2": {"a": 0.9, "b": 0.899, "c": 0.5, "d": 0.6},
             "d3": {"a": 0.95, "b": 0.6, "c": 0.7, "d": 0.55}}
    noise = [0.004, -0.003, 0.001]
    for seeds, folder in (((0, 1, 2), "three"), ((0,), "one")):
        store_of(tmp_path / folder, [record(seed, acc + noise[seed] * (1 if m != "b" else -1), method=m, dataset=d)
                                     for d, row in means.items() for m, acc in row.items() for seed in seeds])
        assert main(["report", str(tmp_path / folder)]) == 0
    table = (tmp_path / "three" / "table.md").read_text()
    bold = {tuple(c.strip() for c in line.strip("|").split("|")[:2]) for line in table.splitlines()
            if line.startswith("|") and "**" in line.split("|")[3]}
    assert bold == {("d1", "a"), ("d2", "a"), ("d2", "b"), ("d3", "a")}  # d2: b is 0.001 behind, within noise
    assert "bold: the best mean and every configuration not significantly worse" in table
    assert "CPU: Test CPU 9000" in table
    ranks = (tmp_path / "three" / "ranks.md").read_text()
    assert "| a | 1.00 |" in ranks and "Friedman test over 3 datasets and 4 configurations" in ranks
    page = (tmp_path / "three" / "report.html").read_text()
    validate_page(page)
    assert "Across datasets" in page and "critical-difference diagram" in page and page.count("data:image/png") == 2
    assert (tmp_path / "three" / "critical_difference.png").is_file()
    single = (tmp_path / "one" / "table.md").read_text()
    assert "**" not in single.split("bold:")[0] and "one ok seed, so no difference can be judged" in single
    assert "one ok seed" in (tmp_path / "one" / "report.html").read_text()
