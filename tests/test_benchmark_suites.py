"""The benchmark suites import and every benchmark runs once on a tiny problem, so they cannot rot."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def asv_suite(monkeypatch):
    spec = importlib.util.spec_from_file_location("asv_benchmarks", ROOT / "benchmarks" / "asv" / "benchmarks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    previous = torch.get_num_threads()
    with threadpool_limits():  # the suite pins one thread; give the rest of the tests theirs back
        yield module
    torch.set_num_threads(previous)


@pytest.mark.filterwarnings("ignore::cutbench.CutbenchWarning")  # tiny budgets collapse clusters
def test_every_asv_benchmark_runs_once_on_a_tiny_problem(asv_suite, monkeypatch):
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(size=(60, 3)), rng.normal(size=(60, 3)) + 6].astype(np.float32)
    problems = {"tiny": (X, np.repeat([0, 1], 60))}
    monkeypatch.setattr(asv_suite, "TRAIN_SIZE", 80)
    # every registered method, at the tiny configuration it declares
    tiny = {name: asv_suite.get_method(name).check_params for name in asv_suite.list_methods()}
    assert set(asv_suite.PARAMS) <= set(asv_suite.list_methods())  # budgets only for methods that exist
    monkeypatch.setattr(asv_suite, "PARAMS", tiny)
    for method in asv_suite.list_methods():
        fit = asv_suite.Fit()
        fit.setup(problems, method, "tiny")
        fit.time_fit(problems, method, "tiny")
        fit.peakmem_fit(problems, method, "tiny")
        scored = asv_suite.Accuracy()
        scored.setup(problems, method, "tiny")
        assert 0 <= scored.track_error(problems, method, "tiny") <= 1
        if method in asv_suite.Predict.params[0]:
            predict = asv_suite.Predict()
            predict.setup(problems, method, "tiny")
            predict.time_predict(problems, method, "tiny")
    assert "ncut" not in asv_suite.Predict.params[0]  # transductive: no predict to time
    with pytest.raises(NotImplementedError, match="fashion_mnist is not under"):
        asv_suite.Fit().setup(problems, "kmeans", "fashion_mnist")
    graph = asv_suite.GraphCost()
    graph.setup(300)
    graph.time_knn_graph(300)
    graph.time_eigensolver(300)
    graph.peakmem_knn_graph(300)


def test_the_micro_benchmarks_run_once_without_timing():
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--benchmark-disable",
                          str(ROOT / "benchmarks" / "micro")], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout


def test_the_gpu_check_runs_end_to_end_in_its_cpu_dry_run(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu" / "check.py"), "--dry-run", "--out",
                          str(tmp_path)], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for section in ("parity double_rings        ncut", "features ScatNet+PCA", "fit/predict      kmeans",
                    "ncut n=1500", "neuncut inference n=20,000"):
        assert section in run.stdout
    import json

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["mode"].startswith("dry-run") and len(results["fit_predict"]) == 7
