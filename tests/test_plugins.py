"""Plugins: methods, datasets, metrics and feature steps named by module path, file path or entry point.

Every executor starts its workers fresh, so each test runs the plugin through the executor and reads the
result back from the store; the cut values in results.csv are checked against networkx.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from cutbench import CutbenchError
from cutbench.affinity import prepare_affinity
from cutbench.datasets import load_dataset
from cutbench.executors import make_executor
from cutbench.identity import cell_config, cell_key
from cutbench.runner import DatasetCache, InlineExecutor, run_cell, run_study
from cutbench.store import ResultStore
from cutbench.study import expand_study

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

METHOD = '''
from cutbench.methods.kmeans import KMeans


class TwoStepKMeans(KMeans):
    """k-means with one restart: a plugin method that reuses a built-in's machinery."""

    name = "two_step_kmeans"
    check_params = {"n_init": 1}
'''

DATASET = '''
import numpy as np


def three_lines(n=90, gap=5.0, random_state=0):
    rng = np.random.default_rng(random_state)
    y = np.repeat(np.arange(3), n // 3)
    X = np.c_[rng.normal(size=len(y)), y * gap + 0.1 * rng.normal(size=len(y))]
    return X, y
'''


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    folder = tmp_path / "plugins"
    folder.mkdir()
    _write(folder, "my_methods.py", METHOD)
    _write(folder, "my_data.py", DATASET)
    monkeypatch.syspath_prepend(str(folder))  # for package.module:Object in this process
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]))  # workers
    return folder


def _study(method: str, dataset: str, **extra) -> dict:
    return {"name": "plug", "datasets": [{"name": dataset, "params": {"n": 90}}],
            "methods": [method, "kmeans"], "seeds": [0, 1], "device": "cpu",
            "timing": {"warmup": 0, "repeats": 1, **extra.pop("timing", {})}, **extra}


@pytest.mark.parametrize("executor", ["inline", "pool", "dask", "time_limited_dask"])
@pytest.mark.parametrize("by", ["module", "file"])
def test_a_plugin_method_and_dataset_run_in_every_executor(plugin_dir, tmp_path, executor, by):
    if by == "module":
        method, dataset = "my_methods:TwoStepKMeans", "my_data:three_lines"
    else:
        method, dataset = f"{plugin_dir}/my_methods.py:TwoStepKMeans", f"{plugin_dir}/my_data.py:three_lines"
    timing = {"time_limit": 120} if executor == "time_limited_dask" else {}
    study = expand_study(_study(method, dataset, timing=timing))
    store = ResultStore(tmp_path / "out")
    if executor == "inline":
        runner_executor = InlineExecutor(threads=1)
    else:
        runner_executor = make_executor("pool" if executor == "pool" else "dask", workers=2, threads=1)
    counts = run_study(study, store, executor=runner_executor, progress=lambda _: None)
    assert counts["ok"] == 4, counts
    frame = store.to_frame()
    assert sorted(set(frame["method"])) == ["kmeans", "two_step_kmeans"]
    assert set(frame["dataset"]) == {"three_lines"}
    assert frame["acc"].min() > 0.9  # three well separated lines
    record = next(r for r in store.records() if r["config"]["method"]["name"] == "two_step_kmeans")
    plugin = record["config"]["method"]["plugin"]
    assert plugin["target"] == ("my_methods:TwoStepKMeans" if by == "module" else "my_methods.py:TwoStepKMeans")
    assert plugin["sha256"] == __import__("hashlib").sha256((plugin_dir / "my_methods.py").read_bytes()).hexdigest()
    kinds = {p["kind"]: p for p in record["provenance"]["plugins"]}
    assert set(kinds) == {"method", "dataset"} and str(plugin_dir) in kinds["method"]["origin"]


def test_editing_a_plugin_changes_its_cells_keys(tmp_path):
    path = _write(tmp_path, "edited.py", METHOD)
    study = _study(f"{path}:TwoStepKMeans", "blobs")
    before = [cell_key(cell_config(c, None, "cpu")) for c in expand_study(study).cells]
    path.write_text(path.read_text() + "\n# a comment changes the file's hash\n")
    from cutbench import plugins
    plugins._load_target.cache_clear()  # one process loads a plugin once; a new run is a new process
    for module in [m for m in sys.modules if m.startswith("cutbench_plugin_")]:
        del sys.modules[module]
    after = [cell_key(cell_config(c, None, "cpu")) for c in expand_study(study).cells]
    changed = [b != a for b, a in zip(before, after, strict=True)]
    assert changed == [True, True, False, False]  # the plugin's two seeds re-run; kmeans' cells stay


def test_a_relative_plugin_path_is_taken_from_the_study_files_folder(tmp_path, monkeypatch):
    (tmp_path / "study").mkdir()
    _write(tmp_path / "study", "local.py", METHOD)
    study_file = tmp_path / "study" / "s.yaml"
    study_file.write_text("name: rel\ndatasets: [{name: blobs, params: {n: 60}}]\nmethods: [local.py:TwoStepKMeans]\n"
                          "device: cpu\n")
    monkeypatch.chdir(tmp_path)  # not the study's folder
    from cutbench.study import load_study
    (cell,) = load_study(study_file).cells
    assert cell.method == f"{tmp_path / 'study' / 'local.py'}:TwoStepKMeans" and cell.method_name() == "two_step_kmeans"


@pytest.mark.parametrize("source, spec, message", [
    (None, "nowhere/missing.py:Thing", (r"method plugin '.*nowhere/missing.py:Thing': there is no file .*missing\.py; "
                                        r"give the path of a \.py file")),
    (None, "no_such_package_xyz.mod:Thing", r"no module named 'no_such_package_xyz'; install its package or add"),
    ("class Thing:\n    pass\n", "{path}:Thing", r"Thing has no fit method, so it is not an estimator"),
    ("from sklearn.cluster import KMeans as Thing\n", "{path}:Thing",
     r"KMeans is not a cutbench.methods.base.ClusteringMethod; subclass it"),
    ("raise RuntimeError('boom')\n", "{path}:Thing", r"raised at import: RuntimeError: boom; fix .*bad\.py"),
    ("x = 1\n", "{path}:Thing", r"has no 'Thing'; it defines: x"),
    ("from cutbench.methods.kmeans import KMeans\nclass Thing(KMeans):\n    name = 'ncut'\n", "{path}:Thing",
     r"is named 'ncut', the name of a built-in method; .* give its class another name"),
])
def test_a_bad_method_plugin_is_refused_before_any_cell_runs(tmp_path, source, spec, message):
    path = tmp_path / "bad.py"
    if source is not None:
        path.write_text(source)
    with pytest.raises(CutbenchError, match=message) as error:
        expand_study(_study(spec.format(path=path), "blobs"))
    assert "\n" not in str(error.value)  # one line


def test_a_bad_dataset_or_metric_plugin_is_named(tmp_path):
    path = _write(tmp_path, "bad_data.py", "def blobs(n=10):\n    return None\n\ndef needs_n(n):\n    return None\n")
    with pytest.raises(CutbenchError, match="is named 'blobs', like a built-in dataset"):
        expand_study(_study("kmeans", f"{path}:blobs"))
    with pytest.raises(CutbenchError, match="has no default for parameter 'n'"):
        expand_study(_study("kmeans", f"{path}:needs_n"))
    with pytest.raises(CutbenchError, match="is a function, not a cutbench.metrics.Metric; wrap it"):
        expand_study({**_study("kmeans", "blobs"), "metrics": [f"{path}:needs_n"]})


def test_a_metric_plugin_returning_nan_or_a_string(tmp_path):
    path = _write(tmp_path, "metrics.py", '''
        from cutbench.metrics import Metric
        nan_metric = Metric("always_nan", lambda y_true, y_pred: float("nan"), True)
        text_metric = Metric("wordy", lambda y_true, y_pred: "high", True)
    ''')
    (cell,) = expand_study({**_study("kmeans", "blobs", seeds=[0]), "methods": ["kmeans"],
                            "metrics": ["acc", f"{path}:nan_metric"]}).cells
    record, _ = run_cell(cell, DatasetCache(), "m")
    assert record["status"] == "ok" and record["metrics"]["always_nan"] is None
    assert record["metric_notes"]["always_nan"] == "evaluated to nan, which is not a number a table can use"
    (cell,) = expand_study({**_study("kmeans", "blobs", seeds=[0]), "methods": ["kmeans"],
                            "metrics": ["acc", f"{path}:text_metric"]}).cells
    record, _ = run_cell(cell, DatasetCache(), "m")
    assert record["status"] == "failed"
    assert "metric 'wordy' returned 'high' (str), not a number" in record["error"]


def test_a_feature_step_plugin(tmp_path):
    path = _write(tmp_path, "steps.py", '''
        import numpy as np

        def scale_columns(X, meta, *, device, factor=2.0):
            return np.asarray(X) * factor
    ''')
    study = expand_study({**_study("kmeans", "blobs", seeds=[0]), "methods": ["kmeans"],
                          "features": {"name": f"{path}:scale_columns", "factor": 3.0}})
    (cell,) = study.cells
    config = cell_config(cell, None, "cpu")
    assert config["features"]["name"] == "scale_columns" and config["features"]["factor"] == 3.0
    assert config["features"]["plugin"]["target"] == "steps.py:scale_columns"
    record, _ = run_cell(cell, DatasetCache(), "f")
    assert record["status"] == "ok", record.get("error")
    assert record["features"]["steps"] == [{"name": "scale_columns", "factor": 3.0}]


def test_the_ncut_value_in_results_csv_is_the_cut_of_the_labelling_by_networkx(tmp_path):
    study = expand_study({"name": "cut", "datasets": [{"name": "blobs", "params": {"n": 150}}],
                          "methods": ["ncut", "kmeans"], "seeds": [0], "device": "cpu",
                          "timing": {"warmup": 0, "repeats": 1}})
    store = ResultStore(tmp_path)
    run_study(study, store, progress=lambda _: None)
    store.export(tmp_path / "results")
    frame = pd.read_csv(tmp_path / "results.csv")
    X = load_dataset("blobs", n=150).X
    W = prepare_affinity("knn", X, device="cpu").graph().tocoo()
    graph = nx.Graph()
    graph.add_nodes_from(range(150))
    graph.add_weighted_edges_from((int(i), int(j), float(w)) for i, j, w in zip(W.row, W.col, W.data) if i < j)
    for record in store.records():
        labels = store.labels(record["key"])
        clusters = [set(np.flatnonzero(labels == label).tolist()) for label in np.unique(labels)]
        expected_ncut = sum(nx.cut_size(graph, part, weight="weight") / nx.volume(graph, part, weight="weight")
                            for part in clusters)
        expected_rcut = sum(nx.cut_size(graph, part, weight="weight") / len(part) for part in clusters)
        row = frame[frame["key"] == record["key"]].iloc[0]
        assert row["ncut_value"] == pytest.approx(expected_ncut, rel=1e-9, abs=1e-12)
        assert row["rcut_value"] == pytest.approx(expected_rcut, rel=1e-9, abs=1e-12)


def test_check_passes_a_good_plugin_and_fails_a_broken_one(tmp_path):
    good = subprocess.run([sys.executable, "-m", "cutbench.cli", "check",
                           f"{EXAMPLES / 'spectral_lobpcg.py'}:SpectralLOBPCG"], capture_output=True, text=True,
                          cwd=tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "scikit-learn estimator checks: 41 passed, 4 expected failures, 0 failed" in good.stdout
    assert good.stdout.rstrip().endswith("SpectralLOBPCG passes.")
    broken = _write(tmp_path, "broken.py", '''
        import numpy as np
        from cutbench.methods.base import Capabilities, ClusteringMethod

        class Broken(ClusteringMethod):
            """Labels every point 0, and stores a parameter under another name."""
            name = "broken"
            capabilities = Capabilities(out_of_sample=False)

            def __init__(self, n_clusters=2, *, device="auto", random_state=None):
                self.n_clusters = n_clusters
                self.device = device
                self.random_state = random_state

            def _fit(self, X):
                self.n_clusters = 3  # overwrites a parameter: the checks catch it
                self.labels_ = np.zeros(len(X), dtype=np.int64)
    ''')
    bad = subprocess.run([sys.executable, "-m", "cutbench.cli", "check", f"{broken}:Broken"], capture_output=True,
                         text=True, cwd=tmp_path)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "FAIL scikit-learn estimator checks" in bad.stdout and "check_dont_overwrite_parameters" in bad.stdout
    assert bad.stdout.rstrip().endswith("Broken FAILS 1 check(s).")


def test_an_entry_point_of_an_installed_package(tmp_path):
    pytest.importorskip("setuptools", reason="builds the tiny test package offline with the installed setuptools")
    package = tmp_path / "pkg"
    (package / "tinykm").mkdir(parents=True)
    (package / "tinykm" / "__init__.py").write_text(textwrap.dedent(METHOD).replace("two_step_kmeans", "tinykm"))
    (package / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "tinykm"
        version = "1.2.3"
        [project.entry-points."cutbench.methods"]
        tinykm = "tinykm:TwoStepKMeans"
        ncut = "tinykm:TwoStepKMeans"
    '''))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(package)], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    listed = subprocess.run([sys.executable, "-m", "cutbench.cli", "list"], capture_output=True, text=True, env=env)
    assert "method       tinykm = tinykm:TwoStepKMeans  (package tinykm 1.2.3)" in listed.stdout
    assert "ncut = tinykm:TwoStepKMeans  (package tinykm 1.2.3); SHADOWED by the built-in method 'ncut'" in listed.stdout
    study = tmp_path / "s.yaml"
    study.write_text("name: ep\ndatasets: [{name: blobs, params: {n: 60}}]\nmethods: [tinykm]\ndevice: cpu\n"
                     "timing: {warmup: 0, repeats: 1}\n")
    run = subprocess.run([sys.executable, "-m", "cutbench.cli", "run", str(study), "--out", str(tmp_path / "out"),
                          "--executor", "pool", "--workers", "2"], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "out" / "records").glob("*.json")]
    assert record["status"] == "ok" and record["config"]["method"]["name"] == "tinykm"
    assert record["config"]["method"]["plugin"]["version"] == "1.2.3"
    assert "entry point tinykm" in record["provenance"]["plugins"][0]["origin"]


@pytest.mark.parametrize("executor", ["pool", "dask"])
def test_the_worked_example_runs_end_to_end_in_a_fresh_process(tmp_path, executor):
    out = tmp_path / "out"
    shrink = ["--set", "seeds=[0]", "--set", "anisotropic_clouds.n=300", "--set", "two_moons.n=300",
              "--set", "protocol.train_size=200"]
    run = subprocess.run([sys.executable, "-m", "cutbench.cli", "run", str(EXAMPLES / "own_method.yaml"), "--out",
                          str(out), "--executor", executor, "--workers", "2", *shrink], capture_output=True, text=True,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    report = subprocess.run([sys.executable, "-m", "cutbench.cli", "report", str(out)], capture_output=True, text=True,
                            cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    header = report.stdout.splitlines()[0]
    assert header.startswith("| dataset | method | ACC | NMI | ARI | Ncut | Purity |")
    frame = pd.read_csv(out / "results.csv")
    assert frame["status"].eq("ok").all() and len(frame) == 6
    assert set(frame["method"]) == {"ncut", "spectral_lobpcg", "neuncut"}
    assert frame["ncut_value"].notna().all() and frame["purity"].notna().all()


def test_the_learned_affinities_implement_the_declared_contract():
    from cutbench.affinity import LEARNED_AFFINITIES, LEARNED_PRESETS
    from cutbench.learned import LearnedAffinity

    assert all(issubclass(cls, LearnedAffinity) for cls in LEARNED_AFFINITIES.values())
    assert all(isinstance(preset, LearnedAffinity) for preset in LEARNED_PRESETS.values())

    class Incomplete(LearnedAffinity):  # no prepare: not a learned affinity
        kind = "incomplete"

        def to_dict(self):
            return {"kind": self.kind}

        @classmethod
        def from_dict(cls, value):
            return cls()

        def training_params(self):
            return {}

        def fit(self, X, *, device="auto", random_state=None):
            return None

    with pytest.raises(TypeError, match="abstract method.*prepare"):
        Incomplete()


def test_compare_judges_the_cut_values_and_a_plugin_metric(tmp_path):
    from cutbench.reports.compare import compare_frames

    path = tmp_path / "same_label.py"
    path.write_text(textwrap.dedent('''
        import numpy as np
        from cutbench.metrics import Metric

        def _share(y_true, y_pred):
            return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))

        same_label = Metric("same_label", _share, higher_is_better=True, label="Same")
    '''))
    raw = {**_study("ncut", "blobs"), "methods": ["ncut"], "metrics": ["acc", "ncut_value", f"{path}:same_label"]}
    frames = []
    for side in ("old", "new"):
        store = ResultStore(tmp_path / side)
        run_study(expand_study(raw), store, progress=lambda _: None)
        frames.append(store.to_frame())
    table = compare_frames(*frames)
    assert {"acc", "ncut_value", "same_label"} <= set(table["quantity"])
    assert set(table.loc[table["quantity"] == "ncut_value", "verdict"]) == {"same"}
