"""The cutbench command end to end: run a tiny study in a subprocess, resume, report, errors."""

import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from cutbench.cli import main
from cutbench.study import builtin_studies

TINY = textwrap.dedent("""
    name: cli-tiny
    datasets:
      - name: double_rings
        params: {n: 300}
    affinity: {sigma: median, n_neighbors: 8}
    methods: [kmeans, ncut]
    protocol: {train_size: 150}
    seeds: [0, 1]
    device: cpu
    timing: {warmup: 0, repeats: 1}
""")


def cutbench(*args, cwd):
    return subprocess.run([sys.executable, "-m", "cutbench.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_run_resume_and_report_end_to_end(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY)
    first = cutbench("run", "tiny.yaml", "--out", "res", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "\n4/4 " in first.stdout and "ETA" in first.stdout
    out = tmp_path / "res"
    for name in ("results.csv", "results.parquet", "table.md", "table.tex", "table.html", "acc.png", "acc.pdf"):
        assert (out / name).stat().st_size > 0, name
    frame = pd.read_csv(out / "results.csv")
    assert len(frame) == 4 and (frame.status == "ok").all()
    assert frame.loc[frame.method == "ncut", "acc"].min() >= 0.99
    table = (out / "table.md").read_text()
    assert "ncut" in table and "kmeans" in table and "±" in table

    second = cutbench("run", "tiny.yaml", "--out", "res", cwd=tmp_path)
    assert second.returncode == 0 and "4 already stored" in second.stdout and "0 run" in second.stdout

    report = cutbench("report", "res", cwd=tmp_path)
    assert report.returncode == 0 and "table.md" in report.stdout


def test_report_keeps_configurations_of_one_method_apart(tmp_path, capsys):
    (tmp_path / "two.yaml").write_text(textwrap.dedent("""
        name: cli-two-configs
        datasets:
          - name: double_rings
            params: {n: 200}
        methods:
          - name: ncut
            params: {affinity: {sigma: median, n_neighbors: 8}}
          - name: ncut
            params: {affinity: {sigma: median, n_neighbors: 4}}
          - name: ncut
            params: {affinity: {sigma: median, n_neighbors: 6}}
        seeds: [0]
        device: cpu
        timing: {warmup: 0, repeats: 1}
    """))
    assert main(["run", str(tmp_path / "two.yaml"), "--out", str(tmp_path / "res")]) == 0
    rows = [line for line in (tmp_path / "res" / "table.md").read_text().splitlines() if "| double_rings |" in line]
    # The study's order, although the three cells finish within one second.
    assert [row.split("|")[2].strip() for row in rows] == ["ncut (s=8)", "ncut (s=4)", "ncut (s=6)"]
    assert all(row.rstrip().endswith("1/1 |") for row in rows)
    # The report can show any timed stages; Ncut builds its graph in the affinity stage and predicts nothing.
    capsys.readouterr()
    assert main(["report", str(tmp_path / "res"), "--times", "affinity,fit,predict"]) == 0
    header = (tmp_path / "res" / "table.md").read_text().splitlines()[0]
    assert "| affinity [s] | fit [s] | predict [s] | ok |" in header
    row = next(line for line in (tmp_path / "res" / "table.md").read_text().splitlines() if "ncut (s=8)" in line)
    cells = dict(zip([c.strip() for c in header.split("|")[1:-1]], [c.strip() for c in row.split("|")[1:-1]],
                     strict=True))
    assert float(cells["affinity [s]"].strip("*").split()[0]) > 0 and cells["predict [s]"] == "n/a"
    assert main(["report", str(tmp_path / "res"), "--times", "fit,warmup"]) == 2
    assert "unknown or empty: ['warmup']. Accepted stages: features, affinity, fit, predict, total" in capsys.readouterr().err


def test_dry_run_lists_cells(tmp_path, capsys):
    (tmp_path / "tiny.yaml").write_text(TINY)
    assert main(["run", str(tmp_path / "tiny.yaml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 cells" in out and "double_rings · ncut (s=8) · train=150 · seed=1" in out
    assert not (tmp_path / "results").exists()


def test_quick_study_is_built_in_and_valid(capsys):
    assert main(["run", "--dry-run"]) == 0
    out = capsys.readouterr().out
    from cutbench.methods import list_methods

    assert f"{3 * len(list_methods()) * 3} cells" in out and "digits" in out  # 3 datasets x every method x 3 seeds
    assert all(f"· {name} " in out for name in list_methods())  # the quick study shows every method


@pytest.mark.parametrize("name", sorted(builtin_studies()))
def test_every_built_in_study_is_valid(name, capsys):
    assert main(["run", name, "--dry-run"]) == 0
    assert " cells" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["run", "no-such-study"], "no study file 'no-such-study'"),
    (["report", "nowhere"], "holds no results"),
])
def test_errors_are_reported_without_traceback(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_list_and_info(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "neuncut" in out and "double_rings" in out and "quick" in out
    assert main(["info"]) == 0
    assert '"torch"' in capsys.readouterr().out


def test_set_overrides_say_what_they_changed_and_bad_ones_are_clear(tmp_path, capsys):
    (tmp_path / "tiny.yaml").write_text(TINY)
    assert main(["run", str(tmp_path / "tiny.yaml"), "--dry-run", "--set", "ncut.affinity={n_neighbors: 5}",
                 "--set", "ncut.n_init=2,3"]) == 0
    out = capsys.readouterr().out
    assert "--set ncut.affinity={n_neighbors: 5}: changed methods[2] (ncut)" in out
    assert "ncut (n_init=2, s=5)" in out and "6 cells" in out
    assert main(["run", str(tmp_path / "tiny.yaml"), "--dry-run", "--set", "ncut.n_init=[2,"]) == 2
    err = capsys.readouterr().err
    assert "'[2,' is not a valid YAML value" in err and "Traceback" not in err


def test_bad_thread_counts_are_refused_before_anything_runs(tmp_path, capsys):
    (tmp_path / "tiny.yaml").write_text(TINY)
    with pytest.raises(SystemExit) as exit_info:  # argparse's own error: a count below 1
        main(["run", str(tmp_path / "tiny.yaml"), "--out", str(tmp_path / "res"), "--threads", "0"])
    assert exit_info.value.code == 2
    assert "argument --threads: must be an integer >= 1; got 0" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "tiny.yaml"), "--out", str(tmp_path / "res"), "--threads", "4096"]) == 2
    assert "--threads 4096 asks for 4096 threads" in capsys.readouterr().err
    assert not (tmp_path / "res").exists()
