"""Paper targets: every target a valid study at both scales, the paper presets equal to the published
hyper-parameters, the renderer's verdicts on records whose answer is known, the CLI end to end."""

import csv
import html.parser
import json
import re
from pathlib import Path

import numpy as np
import pytest

from cutbench import CutbenchError
from cutbench.cli import main
from cutbench.identity import cell_config, cell_key
from cutbench.paper import (
    MANIFEST,
    folder_target,
    get_target,
    list_targets,
    load_target,
    read_published,
    write_manifest,
)
from cutbench.paper_rows import check_orderings, compare
from cutbench.reports.paper import (
    check_figure,
    reproduction_report,
    row_class,
    summary_counts,
    to_html,
    to_latex,
    to_markdown,
)
from cutbench.store import ResultStore
from cutbench.verdicts import combine

TARGETS = list(list_targets())
SHARED_PAPERS = Path(__file__).resolve().parents[2] / "shared" / "papers"


def test_every_published_target_of_the_issue_exists():
    assert {"neuncut-table2", "neuncut-table3", "neuncut-table4", "neuncut-table5", "neuncut-table6",
            "neuncut-table7", "neuncut-table8", "neuncut-fig1", "neuncut-fig2", "neuncut-fig3", "neuncut-fig4",
            "neuncut-fig5", "cnc-table3", "cnc-tables12"} <= set(TARGETS)


@pytest.mark.parametrize("name", TARGETS)
def test_every_target_expands_into_a_valid_study_at_both_scales(name):
    target = get_target(name)
    paper, ci = target.study("paper"), target.study("ci")
    assert paper.cells and ci.cells and not paper.refused and not ci.refused
    assert "[ci scale:" in target.heading("ci") and "[paper scale]" in target.heading("paper")
    # every published row (or claim) is either measured by some cell of the paper-scale study, or says why not
    rows = compare(target, "paper", [])
    for row in rows:
        assert row.verdict.startswith(("not run: ", "out of scope: ")), row
        assert "not part of the paper-scale study" not in row.verdict, f"{name}: {row.key} has no cell"
    # the ci scale only reduces: same methods and datasets
    assert {c.method for c in ci.cells} == {c.method for c in paper.cells}
    assert {c.dataset for c in ci.cells} == {c.dataset for c in paper.cells}


@pytest.mark.skipif(not SHARED_PAPERS.is_dir(), reason="needs ../shared/papers beside the checkout")
def test_packaged_published_tables_are_the_papers_copies():
    for name in ("neuncut_table1_hparams.csv", "neuncut_table2.csv", "neuncut_table8.csv", "cnc_tables.csv"):
        packaged = read_published(name)
        with open(SHARED_PAPERS / name, newline="") as fh:
            original = list(csv.DictReader(fh))
        assert packaged.to_dict("records")[:len(original)] == original
        if name != "neuncut_table8.csv":
            assert len(packaged) == len(original)


def test_table8_out_of_scope_rows_are_the_papers_numbers():
    """The baselines cutbench does not implement, added to Table 8's copy: each number as the paper's text has it."""
    text = (SHARED_PAPERS / "neuncut-paper.md").read_text().splitlines()
    with open(SHARED_PAPERS / "neuncut_table8.csv", newline="") as fh:
        extra = read_published("neuncut_table8.csv").iloc[len(list(csv.DictReader(fh))):]
    assert sorted(set(extra.method)) == sorted(["VaDE", "EnSC", "DEPICT", "ESC", "SCAN", "EDESC", "AutoSC"])
    datasets = ["MNIST", "F-MNIST", "E-MNIST", "CIFAR-10"]
    for row in extra.itertuples():
        line = next(line for line in text if line.startswith(f"{row.method} ["))
        printed = [cell.replace("<u>", "").replace("</u>", "") for cell in line.split("\t")[1:]]
        at = 3 * datasets.index(row.dataset)
        for value, cell in zip((row.ACC, row.NMI, row.ARI), printed[at:at + 3], strict=True):
            assert value == (cell if re.fullmatch(r"[0-9.]+", cell) else ""), (row, cell)


HPARAMS = {"MNIST": "mnist", "F-MNIST": "fashion_mnist", "E-MNIST": "emnist_lowercase", "MNIST8M": "mnist8m_like"}


def test_paper_scale_presets_equal_table_1():
    """Every NeuNcut/NeuRcut cell at paper scale on a Table 1 dataset has Table 1's hyper-parameters, except the
    one its target sweeps (e.g. Table 5's batch size)."""
    table1 = {HPARAMS[row["dataset"]]: row for row in read_published("neuncut_table1_hparams.csv").to_dict("records")
              if row["dataset"] in HPARAMS}
    checked = 0
    for name in TARGETS:
        cells = [c for c in get_target(name).study("paper").cells
                 if c.method in ("neuncut", "neurcut") and c.dataset in table1]
        for dataset in {c.dataset for c in cells}:
            ours = [c for c in cells if c.dataset == dataset]
            values = {key: {repr(_value(c, key)) for c in ours} for key in
                      ("gamma", "lr", "weight_decay", "batch_size", "epochs", "train_size")}
            swept = {key for key, seen in values.items() if len(seen) > 1}
            expected = table1[dataset]
            for key in set(values) - swept:
                (value,) = values[key]
                assert float(eval(value)) == pytest.approx(float(expected[key])), (name, dataset, key)
                checked += 1
    assert checked >= 60


def _value(cell, key):
    return cell.protocol["train_size"] if key == "train_size" else cell.method_params[key]


# ------------------------------------------------------------------------------------ the renderer


def test_a_row_combines_its_quantities_verdicts_and_names_those_that_fail():
    assert combine([("ACC", "reproduced"), ("NMI", "reproduced")], 3) == "reproduced"
    assert combine([("ACC", "reproduced"), ("ARI", "above")], 3) == "above (ARI)"
    assert combine([("ACC", "below"), ("NMI", "below"), ("ARI", "inconclusive")], 3) == \
        "below (ACC, NMI; inconclusive: ARI)"
    assert combine([("ACC", "below"), ("ARI", "above")], 3) == "differs (ACC below; ARI above)"
    assert combine([("ACC", "inconclusive"), ("NMI", "reproduced")], 1) == "inconclusive (1 seed: ACC)"
    assert combine([("ACC", "n/a"), ("NMI", "reproduced")], 3) == "reproduced"  # no published ACC: not judged


def _metrics(value):
    acc, nmi, ari = value if isinstance(value, tuple) else (value, None, None)
    return {name: v for name, v in (("acc", acc), ("nmi", nmi), ("ari", ari)) if v is not None}


def _records(target, scale, outcomes):
    """Synthetic stored records: ``outcomes`` maps (part, method, dataset) to per-seed values: ACC, or (ACC, NMI,
    ARI); None: failed; "missing": data unavailable."""
    records = []
    for cell in target.study(scale).cells:
        values = outcomes.get((cell.part, cell.method, cell.dataset))
        if values is None or cell.seed >= len(values):
            continue
        config = cell_config(cell, "f" * 8, "cpu")
        record = {"study": f"{target.name}-{scale}", "key": cell_key(config), "config": config}
        value = values[cell.seed]
        if value is None:
            record.update(status="failed", error="RuntimeError: boom")
        elif value == "missing":
            record.update(status="failed", error_kind="data_missing",
                          error="DataUnavailableError: no valid copy\nTo get it: download X into Y.")
        else:
            record.update(status="ok", metrics=_metrics(value))
        records.append(record)
    return records


TABLE2 = {
    ("IV", "ncut", "mnist"): [(0.854, 0.904, 0.837)] * 3,       # every quantity as published, no spread
    ("IV", "ncut", "fashion_mnist"): [(0.646, 0.729, 0.550)] * 3,  # ACC, NMI within the margin; ARI above
    ("IV", "neuncut", "mnist"): [0.60, 0.62, 0.61],              # published 0.982: below
    ("IV", "spectralnet", "mnist"): [0.70, 0.90, 0.80],          # published 0.816, interval ±0.25: inconclusive
    ("I", "neuncut", "fashion_mnist"): [0.70, 0.70, 0.71],       # published 0.602: above
    ("II", "ncut", "mnist"): [None, None, None],                 # failed
    ("III", "ncut", "mnist"): ["missing"] * 3,
    ("V", "ncut", "mnist"): [0.827, None, None],                 # one seed finished: no interval
}


@pytest.fixture(scope="module")
def table2_rows():
    target = get_target("neuncut-table2")
    return target, compare(target, "paper", _records(target, "paper", TABLE2))


def _row(rows, **key):
    return next(row for row in rows if all(row.key[k] == v for k, v in key.items()))


def test_paper_rows_are_judged_per_quantity_with_intervals_over_seeds(table2_rows):
    _, rows = table2_rows
    assert len(rows) == 30
    reproduced = _row(rows, setting="IV", method="Ncut", dataset="MNIST")
    acc = reproduced.quantities["ACC"]
    assert (acc.published, acc.mean, acc.n, acc.std) == (0.854, pytest.approx(0.854), 3, 0.0)
    assert acc.delta == pytest.approx(0.0, abs=1e-12) and reproduced.verdict == "reproduced"
    assert {q.verdict for q in reproduced.quantities.values()} == {"reproduced"}
    ari = _row(rows, setting="IV", method="Ncut", dataset="F-MNIST")
    assert ari.verdict == "above (ARI)" and ari.quantities["ACC"].verdict == "reproduced"
    below = _row(rows, setting="IV", method="NeuNcut", dataset="MNIST")
    assert below.verdict == "below (ACC)" and below.quantities["ACC"].delta == pytest.approx(0.61 - 0.982)
    assert _row(rows, setting="IV", method="SpectralNet", dataset="MNIST").verdict == "inconclusive (3 seeds: ACC)"
    assert _row(rows, setting="I", method="NeuNcut", dataset="F-MNIST").verdict == "above (ACC)"
    assert _row(rows, setting="II", method="Ncut", dataset="MNIST").verdict == "failed: RuntimeError: boom"
    missing = _row(rows, setting="III", method="Ncut", dataset="MNIST").verdict
    assert missing == "not run: data missing: To get it: download X into Y."
    partial = _row(rows, setting="V", method="Ncut", dataset="MNIST")
    assert partial.verdict == "inconclusive (1 seed: ACC)" and "2 of 3 cells did not finish" in partial.detail
    unread = _row(rows, setting="I", method="SpectralNet", dataset="MNIST")  # no published ACC, and not run here
    assert unread.quantities["ACC"].published is None and unread.verdict.startswith("not run: not run yet")
    assert summary_counts(rows) == {"reproduced": 1, "below": 1, "above": 2, "inconclusive": 2, "not run": 23,
                                    "failed": 1}


def test_colours_follow_each_quantitys_direction():
    target = get_target("cnc-table3")  # the Ncut value: lower is better
    records = []
    for cell in target.study("paper").cells:
        config = cell_config(cell, "f", "cpu")
        cut = {"spectralnet": 1.20, "cnc": 0.60}[cell.method]  # published 0.913 and 0.879
        records.append({"study": "cnc-table3-paper", "key": cell_key(config), "config": config, "status": "ok",
                        "metrics": {"ncut_value": cut + 0.001 * cell.seed}})
    rows = compare(target, "paper", records)
    worse, better = _row(rows, method="SpectralNet", dataset="MNIST"), _row(rows, method="CNC", dataset="MNIST")
    assert worse.verdict == "above (Ncut_value)" and row_class(worse) == "regression"
    assert better.verdict == "below (Ncut_value)" and row_class(better) == "better"
    assert _row(rows, method="CNC", dataset="CIFAR-10").verdict.startswith("not run")


def test_ci_rows_are_not_judged_against_the_paper_but_against_our_reference():
    target = get_target("neuncut-table2")
    records = _records(target, "ci", {("IV", "ncut", "mnist"): [(0.70, 0.80, 0.60)],
                                      ("IV", "neuncut", "mnist"): [(0.50, 0.60, 0.40)]})
    reference = {"targets": {"neuncut-table2": {
        "IV · Ncut · MNIST": {"ACC": {"0": 0.70}, "NMI": {"0": 0.80}, "ARI": {"0": 0.60}},
        "IV · NeuNcut · MNIST": {"ACC": {"0": 0.58}, "NMI": {"0": 0.60}, "ARI": {"0": 0.40}}}}}
    rows = compare(target, "ci", records, reference=reference)
    assert _row(rows, setting="IV", method="Ncut", dataset="MNIST").verdict == "ci: as reference"
    changed = _row(rows, setting="IV", method="NeuNcut", dataset="MNIST")
    assert changed.verdict == "ci: changed from reference (ACC 0.580 → 0.500)"
    assert {q.verdict for q in changed.quantities.values()} == {""}  # nothing judged against the paper
    assert summary_counts(rows)["ci: changed"] == 1
    unstored = compare(target, "ci", records, reference={"targets": {}})
    assert _row(unstored, setting="IV", method="Ncut", dataset="MNIST").verdict.startswith("ci: no reference")



def test_a_ci_change_names_both_cpus_when_the_reference_was_made_on_another():
    target = get_target("neuncut-table2")
    records = _records(target, "ci", {("IV", "neuncut", "mnist"): [(0.50, 0.60, 0.40)]})
    for record in records:
        record["provenance"] = {"cpu": "AMD EPYC"}
    row = {"ACC": {"0": 0.58}, "NMI": {"0": 0.60}, "ARI": {"0": 0.40}}
    other_cpu = "ci: changed from reference (ACC 0.580 → 0.500; reference made on Intel Xeon, this run on AMD EPYC)"
    for cpu, expected in (("Intel Xeon", other_cpu), ("AMD EPYC", "ci: changed from reference (ACC 0.580 → 0.500)")):
        reference = {"cpu": cpu, "targets": {"neuncut-table2": {"IV · NeuNcut · MNIST": row}}}
        rows = compare(target, "ci", records, reference=reference)
        assert _row(rows, setting="IV", method="NeuNcut", dataset="MNIST").verdict == expected

def test_orderings_are_checked_with_paired_tests():
    target = get_target("neuncut-table2")
    (ordering,) = target.orderings
    assert (ordering.better, ordering.than, ordering.holds_in) == ("NeuNcut", ("Ncut", "SpectralNet"), "almost all")
    outcomes = {}
    for dataset in ("mnist", "fashion_mnist"):
        outcomes[("IV", "neuncut", dataset)] = [0.90, 0.92, 0.91]
        outcomes[("IV", "ncut", dataset)] = [0.80, 0.81, 0.805]
        outcomes[("IV", "spectralnet", dataset)] = [0.85, 0.87, 0.86]
    (won,) = check_orderings(target, "paper", compare(target, "paper", _records(target, "paper", outcomes)))
    assert won.wins == 4 and won.verdict.startswith("reproduced (NeuNcut significantly better in 4 of 4")
    outcomes[("IV", "neuncut", "fashion_mnist")] = [0.70, 0.71, 0.705]
    (lost,) = check_orderings(target, "paper", compare(target, "paper", _records(target, "paper", outcomes)))
    assert (lost.wins, lost.losses) == (2, 2) and lost.verdict.startswith("differs")
    single = {key: values[:1] for key, values in outcomes.items()}
    (untested,) = check_orderings(target, "paper", compare(target, "paper", _records(target, "paper", single)))
    assert untested.untestable == 4 and untested.verdict.startswith("inconclusive")
    (ci,) = check_orderings(target, "ci", compare(target, "ci", _records(target, "ci", single), reference={}))
    assert ci.verdict.startswith("ci: not comparable")


def test_out_of_scope_rows_are_listed_not_dropped():
    target = get_target("neuncut-table8")
    rows = compare(target, "paper", [])
    scope = [row for row in rows if row.verdict_word == "out of scope"]
    assert {row.key["method"] for row in scope} == {"VaDE", "EnSC", "DEPICT", "ESC", "SCAN", "EDESC", "AutoSC"}
    cnc = compare(get_target("cnc-tables12"), "paper", [])
    assert {row.key["dataset"] for row in cnc if row.verdict_word == "out of scope"} == {"Reuters", "CIFAR-100"}


class _Checker(html.parser.HTMLParser):
    VOID = {"meta", "br", "img", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()


def test_markdown_latex_and_html_are_well_formed(table2_rows):
    target, rows = table2_rows
    markdown = to_markdown(target, target.heading("paper"), rows)
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len(lines) == 2 + len(rows) and len({line.count(" | ") for line in lines}) == 1
    assert "[paper scale]" in markdown and "| IV | Ncut | MNIST | 0.854 | 0.854 ± 0.000 | 0.000 = |" in markdown
    latex = to_latex(target, target.heading("paper"), rows)
    assert latex.count("{") == latex.count("}") and latex.count(r"\\") == len(rows) + 1
    assert r"\begin{tabular}" in latex and r"\end{tabular}" in latex and r"$\pm$" in latex and "%" not in \
        latex.replace(r"\%", "")
    columns = len(latex.split(r"\begin{tabular}{")[1].split("}")[0])
    for line in latex.splitlines():
        if line.endswith(r"\\"):
            assert line.count(" & ") == columns - 1, line
    checker = _Checker()
    checker.feed(to_html(target, target.heading("paper"), rows))
    assert checker.stack == []


def _fig4_records(seeds, threshold=80.0):
    target = get_target("neuncut-fig4")
    records = []
    # per seed: L_orth reaches its floor for gamma >= threshold and leaves it below
    for seed in seeds:
        for cell in [c for c in target.study("ci").cells if c.seed == 0]:
            gamma = cell.method_params["gamma"]
            config = cell_config(cell, "f", "cpu")
            config["seed"] = seed
            orth = 0.256 if gamma >= threshold else 0.256 + 0.1 * (threshold - gamma) / threshold
            records.append({"study": "neuncut-fig4-ci", "key": cell_key(config), "config": config, "status": "ok",
                            "metrics": {"acc": 0.9}, "history": {"orth": [1.0, orth], "trace": [0.0, 0.1]}})
    return target, records


def test_figure4_is_judged_over_at_least_three_seeds_and_not_at_ci_scale():
    target, records = _fig4_records((0, 1, 2))
    floor, threshold = compare(target, "paper", records)
    assert floor.verdict == "reproduced" and floor.quantities["value"].mean == pytest.approx(0.256)
    assert threshold.verdict == "reproduced" and threshold.quantities["value"].text == "median 80 (range 80-80, 3 seeds)"
    assert "seed 2: floor 0.2560 → γ 80" in threshold.detail
    _, two = _fig4_records((0, 1))
    assert compare(target, "paper", two)[1].verdict == "inconclusive (2 seeds, fewer than 3)"
    _, higher = _fig4_records((0, 1, 2), threshold=160.0)
    assert compare(target, "paper", higher)[1].verdict == "above"
    ci = compare(target, "ci", records, reference={"targets": {}})
    assert all(row.verdict.startswith("ci: no reference") and "(would read: reproduced)" in row.verdict for row in ci)
    stored = {"targets": {"neuncut-fig4": {"4 · MNIST · gamma threshold": {"value": {"0": 80.0, "1": 80.0, "2": 80.0}},
                                           "4 · MNIST · L_orth floor": {"value": {"0": 0.3, "1": 0.3, "2": 0.3}}}}}
    floor, threshold = compare(target, "ci", records, reference=stored)
    assert threshold.verdict == "ci: as reference (would read: reproduced)"
    assert floor.verdict.startswith("ci: changed from reference (value 0.300 → 0.256)")


def test_a_figure5_run_shorter_than_the_claim_cannot_pass():
    target = get_target("neuncut-fig5")
    records = []
    for cell in target.study("ci").cells:
        config = cell_config(cell, "f", "cpu")
        records.append({"study": "neuncut-fig5-ci", "key": cell_key(config), "config": config, "status": "ok",
                        "n_fit": 2000, "metrics": {"acc": 0.9},
                        "history": {"orth": [0.5, 0.3] + [0.25] * 98, "trace": [0.1] * 100}})
    (row,) = compare(target, "paper", records)
    assert row.verdict.startswith("cannot fail at this scale: the run has 200 iterations")


def test_network_size_claim_and_figure(tmp_path):
    """Fig. 2 on records where 2x512 is best: the claim is reproduced and the figure is drawn; where a
    3-layer network wins, the claim differs and names the winner."""
    from cutbench.reports.paper import plot_network_size

    target = get_target("neuncut-fig2")
    for winner, expected in (((512, 512), "reproduced"), ((128, 128, 128), "differs")):
        records = []
        for cell in target.study("ci").cells:
            config = cell_config(cell, "f", "cpu")
            dims = tuple(cell.method_params["hidden_dims"])
            acc = 0.9 if dims == winner else 0.5 + 0.01 * len(dims)
            records.append({"study": "neuncut-fig2-ci", "key": cell_key(config), "config": config, "status": "ok",
                            "metrics": {"acc": acc}})
        (row,) = compare(target, "paper", [{**r, "config": {**r["config"], "seed": seed}, "key": f"{r['key']}{seed}",
                                             "metrics": {"acc": r["metrics"]["acc"] + 0.001 * seed}}
                                            for r in records for seed in range(3)])
        assert row.verdict_word == expected, row
        assert row.quantities["value"].text.startswith("x".join(map(str, winner)))
    written = plot_network_size(target, "heading", records, [row], tmp_path / "figure")
    assert [path.suffix for path in written] == [".png", ".pdf"] and all(path.stat().st_size > 0 for path in written)


# ------------------------------------------------------------------------------------ bad input, folders


def test_unknown_target_lists_the_known_ones(capsys):
    assert main(["paper", "run", "neuncut-table99"]) == 2
    err = capsys.readouterr().err
    assert "unknown paper target 'neuncut-table99'" in err and "neuncut-table2" in err and "cnc-table3" in err


def test_show_says_when_a_folder_holds_another_target_or_scale(tmp_path, capsys):
    write_manifest(tmp_path, get_target("neuncut-fig5"), "ci")
    (tmp_path / "records").mkdir()
    assert main(["paper", "show", str(tmp_path), "--target", "neuncut-fig4"]) == 2
    assert "holds paper target 'neuncut-fig5', not 'neuncut-fig4'" in capsys.readouterr().err
    assert main(["paper", "show", str(tmp_path), "--scale", "paper"]) == 2
    assert "at scale 'ci', not 'paper'" in capsys.readouterr().err
    with pytest.raises(CutbenchError, match="holds paper target 'neuncut-fig5' at scale 'ci', not 'neuncut-fig4'"):
        write_manifest(tmp_path, get_target("neuncut-fig4"), "ci")
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(CutbenchError, match="is damaged"):
        folder_target(tmp_path)
    other = tmp_path / "plain"
    other.mkdir()
    with pytest.raises(CutbenchError, match="not a paper run's folder"):
        folder_target(other)


def test_bad_target_files_are_clear_errors(tmp_path):
    good = Path(list_targets()["neuncut-fig5"]).read_text()
    cases = {
        "unknown key(s) colour": good + "colour: red\n",
        "must equal the file name": good.replace("name: neuncut-fig5", "name: other"),
        "claim check 'median' is unknown": good.replace("check: iterations_to_floor", "check: median"),
    }
    for message, text in cases.items():
        path = tmp_path / "neuncut-fig5.yaml"
        path.write_text(text)
        with pytest.raises(CutbenchError, match=re.escape(message)):
            load_target(path)
    # the figure kind is the renderer's to check, from its one table, before anything runs
    path.write_text(good.replace("kind: curves", "kind: pie"))
    with pytest.raises(CutbenchError, match=re.escape("figure kind 'pie' is unknown; accepted: bars, sweep")):
        check_figure(load_target(path))
    assert main(["paper", "run", str(path), "--scale", "ci", "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------ end to end


def test_a_ci_target_end_to_end_through_the_cli_and_the_report(tmp_path, capsys):
    """Figure 1 at ci scale (one seed, one shape, fewer epochs to stay well under a minute): run, resume,
    show, report."""
    out = tmp_path / "fig1"
    argv = ["paper", "run", "neuncut-fig1", "--scale", "ci", "--out", str(out), "--only", "seed=0",
            "--only", "dataset=double_rings", "--set", "neuncut.epochs=5", "--threads", "1"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "[ci scale: 100,000 points per shape" in text and "1 ok" in text
    assert json.loads((out / MANIFEST).read_text()) == {"target": "neuncut-fig1", "scale": "ci",
                                                         "overrides": ["neuncut.epochs=5"]}
    for name in ("paper.md", "paper.tex", "paper.html", "paper_figure.png", "paper_figure.pdf"):
        assert (out / name).is_file(), name
    markdown = (out / "paper.md").read_text()
    assert "NeuNcut trained on 10,000 of them as in the paper, 2 seeds; with --set neuncut.epochs=5]" in markdown
    assert "| 1 | double rings | ACC | 1.0 |" in markdown and "| 1 | double C | ACC | 1.0 |" in markdown
    assert "not run: no finished cell" in markdown  # the double C was left out with --only
    assert main(argv) == 0  # an interrupted or finished run resumes: nothing runs twice
    assert "1 already stored" in capsys.readouterr().out
    assert main(["paper", "show", str(out), "--target", "neuncut-fig1", "--scale", "ci"]) == 0
    report = reproduction_report([tmp_path])
    assert "### ci scale (smoke test, not compared with the paper)" in report and "| neuncut-fig1 | 2 |" in report
    # never judged against the paper; not against the ci reference either: --set made it another configuration
    assert "ci: no reference (would read: " in report
    assert "### Paper scale" not in report
    assert main(["paper", "report", str(tmp_path), "--output", str(tmp_path / "report" / "README.md")]) == 0
    checked_in = (tmp_path / "report" / "README.md").read_text()
    assert "![neuncut-fig1, ci scale](figures/fig1.png)" in checked_in
    assert (tmp_path / "report" / "figures" / "fig1.png").read_bytes() == (out / "paper_figure.png").read_bytes()
    store = ResultStore(out)
    (record,) = store.records()
    assert record["config"]["dataset"]["params"]["n"] == 100_000 and record["n_fit"] == 10_000
    assert main(["paper", "reference", str(out), "--output", str(tmp_path / "reference.json")]) == 2
    assert "was run with --set neuncut.epochs=5" in capsys.readouterr().err
    target = get_target("neuncut-table2")  # a ci run as the target defines it: synthetic records
    write_manifest(tmp_path / "table2", target, "ci")
    store = ResultStore(tmp_path / "table2")
    for record in _records(target, "ci", {("IV", "ncut", "mnist"): [(0.7, 0.8, 0.6)]}):
        store.write({**record, "error": None, "timings": {}}, labels=np.zeros(10, dtype=int))
    assert main(["paper", "reference", str(tmp_path / "table2"), "--output", str(tmp_path / "reference.json")]) == 0
    reference = json.loads((tmp_path / "reference.json").read_text())
    assert reference["targets"] == {"neuncut-table2": {"IV · Ncut · MNIST": {"ACC": {"0": 0.7}, "NMI": {"0": 0.8},
                                                                            "ARI": {"0": 0.6}}}}
    write_manifest(tmp_path / "paper-scale", get_target("neuncut-fig1"), "paper")
    (tmp_path / "paper-scale" / "records").mkdir()
    assert main(["paper", "reference", str(tmp_path / "paper-scale"), "--output", str(tmp_path / "r.json")]) == 2
    assert "the reference is made of ci-scale runs only" in capsys.readouterr().err


def test_the_summary_counts_an_experiment_shown_by_two_targets_once(tmp_path):
    """Table 2's setting IV Ncut and Table 8's Ncut are the same cells: the report's total counts them once."""
    row = [(0.854, 0.904, 0.837)] * 3
    for name, part in (("neuncut-table2", "IV"), ("neuncut-table8", "Ncut")):
        target = get_target(name)
        write_manifest(tmp_path / name, target, "paper")
        store = ResultStore(tmp_path / name)
        for record in _records(target, "paper", {(part, "ncut", "mnist"): row}):
            store.write({**record, "error": None, "timings": {}}, labels=np.zeros(10, dtype=int))
    report = reproduction_report([tmp_path])
    paper = report.split("### Paper scale")[1].split("## ")[0]
    assert "| neuncut-table2 | 30 | 1 |" in paper and "| neuncut-table8 | 58 | 1 |" in paper
    distinct = next(line for line in paper.splitlines() if line.startswith("| **distinct experiments**"))
    assert distinct.split(" | ")[2] == "1"  # reproduced once, not twice
    assert "1 row(s) show the same cells as a row of another target" in paper
    assert "### ci scale" not in report


# ------------------------------------------------------------------------------------------ a user's target

USER_TARGET = """\
name: moons-table
title: Two moons - k-means against Ncut
source: a user's table
published:
  file: moons.csv
  key: [method, dataset]
  quantities: {ACC: metrics.acc}
match:
  method: {field: method, values: {k-means: kmeans, Ncut: ncut}}
  dataset: {field: dataset, values: {Moons: two_moons}}
orderings:
  - claim: Ncut separates the moons better than k-means
    better: Ncut
    than: [k-means]
    quantity: ACC
    holds_in: all
figure: {kind: bars}
study:
  name: moons-table
  datasets: [{name: two_moons, params: {n: 200}}]
  methods: [kmeans, ncut]
  seeds: [0, 1]
  device: cpu
  timing: {warmup: 0, repeats: 1}
ci:
  why: one seed
  set: ["seeds=[0]"]
"""


def test_a_paper_target_from_a_folder_runs_with_its_csv_beside_it(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "moons-table.yaml").write_text(USER_TARGET)
    (folder / "moons.csv").write_text("method,dataset,ACC\nk-means,Moons,0.75\nNcut,Moons,1.0\n")
    out = tmp_path / "out"
    assert main(["paper", "run", str(folder / "moons-table.yaml"), "--scale", "paper", "--out", str(out)]) == 0
    text = (out / "paper.md").read_text()
    assert "| Ncut | Moons | 1.0 |" in text and "k-means" in text
    assert json.loads((out / MANIFEST).read_text())["path"] == str((folder / "moons-table.yaml").resolve())
    capsys.readouterr()
    assert main(["paper", "show", str(out)]) == 0  # found again through the manifest's path
    assert "Ncut separates the moons better than k-means" in capsys.readouterr().out
    assert (out / "paper_figure.png").is_file()


@pytest.mark.parametrize("csv, message", [
    (None, "no published table 'moons.csv': no file .*moons.csv, and none packaged of that name"),
    ("method,data,ACC\nNcut,Moons,1.0\n", "column 'dataset' is not in moons.csv; it has method, data, ACC"),
])
def test_a_target_whose_csv_is_missing_or_wrong_is_one_line(tmp_path, capsys, csv, message):
    (tmp_path / "moons-table.yaml").write_text(USER_TARGET)
    if csv is not None:
        (tmp_path / "moons.csv").write_text(csv)
    assert main(["paper", "run", str(tmp_path / "moons-table.yaml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and len(err.strip().splitlines()) == 1
