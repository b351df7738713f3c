"""The layering: data flows one way (dataset -> features -> affinity -> method -> metrics -> store -> report).

The core may name the method registry to build a cell's estimator, but the pieces the methods are made of (the
trainer, the learned affinities) live in the core, so nothing in the core depends on a method's module; the
reports only render.
"""

from pathlib import Path

from benchmarks.measure.layering import back_arrows, imports

ROOT = Path(__file__).resolve().parents[1]


def test_no_module_imports_against_the_layering():
    """The rules are benchmarks/measure/layering.py's (its docstring states them); that script also prints
    the back-arrows of any checkout, e.g. an older commit's."""
    assert back_arrows(ROOT) == set()


def test_the_methods_import_the_trainer_from_the_core():
    assert not (ROOT / "methods" / "_training.py").exists()
    users = {path.name for path in (ROOT / "methods").glob("*.py") if "cutbench.training" in imports(path)}
    assert users == {"neuncut.py", "spectralnet.py", "specnet2.py", "cnc.py"}


def test_an_inline_run_loads_each_dataset_once(tmp_path, monkeypatch):
    import cutbench.runner as runner
    from cutbench.store import ResultStore
    from cutbench.study import expand_study

    loads = []
    real = runner.load_dataset
    monkeypatch.setattr(runner, "load_dataset", lambda name, **params: loads.append(name) or real(name, **params))
    monkeypatch.setattr(runner, "_DATASETS", runner.DatasetCache())
    study = expand_study({"name": "once", "datasets": [{"name": "blobs", "params": {"n": 60}}],
                          "methods": ["kmeans", "ncut"], "seeds": [0, 1], "device": "cpu",
                          "timing": {"warmup": 0, "repeats": 1}})
    counts = runner.run_study(study, ResultStore(tmp_path), progress=lambda _: None)
    assert counts["ok"] == 4 and loads == ["blobs"]  # one cache per process: identified and run from one load
