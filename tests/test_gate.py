"""The CI accuracy gate (benchmarks/ci/gate.py): equal results pass, any change fails, a missing baseline says
how to create one."""

import json
import textwrap

from benchmarks.ci.gate import main

STUDY = textwrap.dedent("""
    name: gate-tiny
    datasets:
      - name: blobs
        params: {n: 120, n_clusters: 3}
    methods: [kmeans, ncut]
    seeds: [0, 1]
    device: cpu
    timing: {warmup: 0, repeats: 1}
""")


def test_the_gate_passes_on_equal_results_and_fails_on_a_modified_baseline(tmp_path, capsys):
    (tmp_path / "study.yaml").write_text(STUDY)
    baseline = tmp_path / "baseline.json"
    options = ["--study", str(tmp_path / "study.yaml"), "--baseline", str(baseline)]
    assert main([*options, "--update"]) == 0
    stored = json.loads(baseline.read_text())
    assert stored["threads"] == 1 and len(stored["cells"]) == 4
    assert main(options) == 0
    assert "all 4 cells equal the baseline" in capsys.readouterr().out
    key = next(iter(stored["cells"]))
    stored["cells"][key]["acc"] -= 0.01
    baseline.write_text(json.dumps(stored))
    assert main(options) == 1
    out = capsys.readouterr().out
    assert "1 cell(s) differ" in out and f"{stored['cells'][key]['label']}: acc" in out
    assert "python benchmarks/ci/gate.py --update" in out


def test_a_missing_baseline_says_how_to_create_it(tmp_path, capsys):
    assert main(["--baseline", str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err
    assert f"no baseline at {tmp_path / 'none.json'}" in err and "python benchmarks/ci/gate.py --update" in err


def test_the_checked_in_baseline_is_for_the_gate_study():
    from benchmarks.ci.gate import BASELINE, STUDY

    stored = json.loads(BASELINE.read_text())
    assert stored["study"] == STUDY and stored["threads"] == 1 and len(stored["cells"]) == 21
