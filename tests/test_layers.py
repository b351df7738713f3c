"""The layering: the core (cutbench/) never imports the trainer, or anything else, from methods/.

Data flows one way (dataset -> features -> affinity -> method -> metrics -> store -> report); the core
may name the method registry to build a cell's estimator, but the pieces the methods are made of (the
trainer, the learned affinities) live in the core, so nothing in the core depends on a method's module.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The core's only doors into the plug-in layers: the registries and the contract's helpers a cell needs.
ALLOWED = {"cutbench.methods.registry", "cutbench.methods.base", "cutbench.methods"}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_core_imports_no_method_module():
    # cli.py is the command, on top of every layer (gamma-search is NeuNcut's own procedure): not the core.
    back_arrows = {(path.name, module) for path in (ROOT / "cutbench").glob("*.py") if path.name != "cli.py"
                   for module in _imports(path) if module.startswith("cutbench.methods") and module not in ALLOWED}
    assert back_arrows == set()


def test_the_methods_import_the_trainer_from_the_core():
    assert not (ROOT / "methods" / "_training.py").exists()
    users = {path.name for path in (ROOT / "methods").glob("*.py") if "cutbench.training" in _imports(path)}
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
