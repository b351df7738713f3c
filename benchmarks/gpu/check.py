"""The one-call GPU check: every GPU figure cutbench promises, from one run on a machine with one CUDA GPU.

    python benchmarks/gpu/prepare.py          # here: put Fashion-MNIST and the wheels it needs in .gpu_data/
    python benchmarks/gpu/check.py            # there (the device tool: carry .gpu_data), under 8 minutes
    python benchmarks/gpu/check.py --dry-run  # anywhere: every section on the CPU at toy sizes (the tests run it)

Sections, each timed with cutbench.timing (CUDA synchronised, warm-up kept apart), with its peak CUDA
memory:

1. parity: every GPU method's ACC on CUDA against the CPU (digits and double rings, 3 seeds, the quick
   study's budgets): equal within max(0.01, 2 std);
2. ScatNet + PCA-500 features of the 70,000 Fashion-MNIST images on the GPU;
3. fit (20,000 training points) and predict (70,000) time of every method on those features;
4. Ncut on CUDA for the 70,000 points (exact kNN graph on the GPU, LOBPCG, k-means);
5. NeuNcut inference on 10^7 points of the double rings.

The last lines are a table; ``--out`` (default $OUT when set) gets the full results as JSON. Nothing is
installed from the network: missing Python packages come as wheels in .gpu_data/wheels.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / ".gpu_data"
PACKAGES = {"cutbench": "cutbench", "cutbench.methods": "methods", "cutbench.datasets": "datasets",
            "cutbench.reports": "reports"}


def use_checkout() -> None:
    """Import cutbench from this checkout without installing it (the device machine installs nothing)."""
    if importlib.util.find_spec("cutbench") is not None and importlib.util.find_spec("cutbench.methods") is not None:
        return
    for name, folder in PACKAGES.items():
        spec = importlib.util.spec_from_file_location(name, ROOT / folder / "__init__.py",
                                                      submodule_search_locations=[str(ROOT / folder)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        if name == "cutbench":
            spec.loader.exec_module(module)
    for name in list(PACKAGES)[1:]:
        sys.modules[name].__spec__.loader.exec_module(sys.modules[name])


SIZES = {"full": {"seeds": 3, "train": 20000, "predict": 70000, "infer": 10_000_000, "ncut": 70000},
         "dry": {"seeds": 1, "train": 600, "predict": 1500, "infer": 20000, "ncut": 1500}}
"""Problem sizes of the real check and of the dry run."""
QUICK = {  # the quick study's budgets
    "ncut": {}, "neuncut": {"batch_size": 500, "epochs": 40}, "neurcut": {"batch_size": 500, "epochs": 40},
    "spectralnet": {"hidden_dims": (128, 128), "batch_size": 256, "epochs": 50, "steps_per_epoch": 10,
                    "optimizer": "adam", "affinity": {"sigma": "median", "n_neighbors": 10, "self_loops": True}},
    "specnet2": {"hidden_dims": (128, 128), "lr": 1e-3, "batch_size": 32, "epochs": 40,
                 "affinity": {"sigma": "median", "n_neighbors": 10, "self_loops": True}},
    "cnc": {"hidden_dims": (256, 256), "epochs": 20, "steps_per_epoch": 50, "balance_weight": 0.01},
}
KNN = {"sigma": "median", "n_neighbors": 10}
TOY = {"epochs": 1, "steps_per_epoch": 2, "hidden_dims": (16,)}  # a dry run only checks that the code runs


def budget(params: dict, dry: bool) -> dict:
    """The quick study's budget, or a toy one in a dry run."""
    return {**params, **{key: value for key, value in TOY.items() if key in params}} if dry else params


def parity(device, sizes, dry):
    """ACC of every GPU method on the CPU and on ``device``; equal within max(0.01, 2 std)."""
    import numpy as np

    from cutbench.datasets import load_dataset
    from cutbench.methods import get_method
    from cutbench.metrics import accuracy

    rows = []
    problems = {"double_rings": load_dataset("double_rings", n=600 if dry else 3000)}
    if not dry:
        problems["digits"] = load_dataset("digits")
    for dataset, data in problems.items():
        train = np.sort(np.random.default_rng(0).choice(len(data.X), min(1000, len(data.X) - 1), replace=False))
        for method, params in QUICK.items():
            params = budget({"affinity": KNN, **params}, dry)
            accs = {}
            for where in ("cpu", device):
                accs[where] = []
                for seed in range(sizes["seeds"]):
                    cls = get_method(method)
                    fitted = cls(data.meta["k"], **params, device=where, random_state=seed)
                    if cls.capabilities.out_of_sample:
                        labels = fitted.fit(data.X[train]).predict(data.X)
                    else:
                        labels = fitted.fit(data.X).labels_
                    accs[where].append(accuracy(data.y, labels))
            cpu, gpu = np.array(accs["cpu"]), np.array(accs[device])
            spread = max(cpu.std(ddof=1) if len(cpu) > 1 else 0, gpu.std(ddof=1) if len(gpu) > 1 else 0)
            rows.append({"dataset": dataset, "method": method, "acc_cpu": cpu.mean(), f"acc_{device}": gpu.mean(),
                         "equal": bool(abs(cpu.mean() - gpu.mean()) <= max(0.01, 2 * spread))})
    return rows


def features(device, sizes, dry):
    """ScatNet + PCA-500 of Fashion-MNIST (a toy image set in a dry run), timed on ``device``."""
    import numpy as np

    from cutbench.datasets import Dataset, compute_features, load_dataset, resolve_features
    from cutbench.timing import StageTimer

    if dry:
        rng = np.random.default_rng(0)
        X = rng.random((256, 784)).astype(np.float32)
        y = rng.integers(0, 10, 256)
        data = Dataset(X, y, {"name": "toy_images", "params": {}, "n": 256, "d": 784, "k": 10, "image_shape": (28, 28),
                              "fingerprint": "toy", "class_counts": np.bincount(y, minlength=10).tolist()})
        steps = resolve_features({"name": "scatnet", "n_components": 50}, "fashion_mnist")
    else:
        os.environ.setdefault("CUTBENCH_DATA", str(DATA))
        data = load_dataset("fashion_mnist")
        steps = resolve_features("scatnet", "fashion_mnist")
    timer = StageTimer(device)
    featured = timer.run("features", lambda: compute_features(data, steps, device=device, cache=False), warmup=0)
    return featured, data.y, timer.to_dict()["features"]


def fit_predict(device, X, y, sizes, dry):
    """Synchronised fit and predict times of every method: train on sizes['train'], label all points."""
    import numpy as np

    from cutbench.methods import get_method
    from cutbench.metrics import accuracy
    from cutbench.timing import StageTimer

    rows = []
    train = np.sort(np.random.default_rng(0).choice(len(X), min(sizes["train"], len(X) - 1), replace=False))
    for method, params in {"kmeans": {}, **QUICK}.items():
        cls = get_method(method)
        params = budget({"affinity": KNN, **params} if "affinity" in cls().get_params() else params, dry)
        where = device if cls.capabilities.gpu else "cpu"
        timer = StageTimer(where)
        fit_on = X[train] if cls.capabilities.out_of_sample else X
        fitted = timer.run("fit", lambda: cls(int(y.max()) + 1, **params, device=where, random_state=0).fit(fit_on),
                           warmup=1)
        if cls.capabilities.out_of_sample:
            labels = timer.run("predict", lambda: fitted.predict(X), warmup=1)
        else:
            labels = fitted.labels_
        stages = timer.to_dict()
        rows.append({"method": method, "device": where, "acc": accuracy(y, labels),
                     "fit_s": stages["fit"]["seconds"], "fit_cold_s": stages["fit"]["cold_seconds"],
                     "predict_s": stages.get("predict", {}).get("seconds"),
                     "peak_device_bytes": max((s["peak_device_bytes"] or 0) for s in stages.values())})
    return rows


def ncut_full(device, X, y):
    """Ncut on all points on ``device``: exact kNN graph, eigensolver (LOBPCG on CUDA), k-means."""
    from cutbench.affinity import check_affinity_graph
    from cutbench.graph import Affinity, knn_graph
    from cutbench.methods import Ncut
    from cutbench.metrics import accuracy
    from cutbench.timing import StageTimer

    timer = StageTimer(device)
    W = timer.run("graph", lambda: check_affinity_graph(knn_graph(X, Affinity(**KNN), device=device), len(X)),
                  warmup=1)
    model = timer.run("eigensolver_and_kmeans", lambda: Ncut(int(y.max()) + 1, device=device, random_state=0)
                      .fit(X, graph=W), warmup=1)
    stages = timer.to_dict()
    return {"n": len(X), "acc": accuracy(y, model.labels_), "solver": model.eigen_solver_,
            **{f"{name}_s": stage["seconds"] for name, stage in stages.items()},
            "peak_device_bytes": max((s["peak_device_bytes"] or 0) for s in stages.values())}


def inference(device, sizes, dry):
    """NeuNcut trained on 10,000 double-ring points labels sizes['infer'] points."""
    from cutbench.datasets import load_dataset
    from cutbench.methods import NeuNcut
    from cutbench.metrics import accuracy
    from cutbench.timing import StageTimer

    data = load_dataset("double_rings", n=sizes["infer"])
    fitted = NeuNcut(2, affinity=KNN, **budget({"batch_size": 1000, "epochs": 5, "hidden_dims": (512, 512)}, dry),
                     device=device, random_state=0).fit(data.X[:10000])
    timer = StageTimer(device)
    labels = timer.run("predict", lambda: fitted.predict(data.X), warmup=1)
    stage = timer.to_dict()["predict"]
    return {"n": sizes["infer"], "predict_s": stage["seconds"], "points_per_s": sizes["infer"] / stage["seconds"],
            "acc": accuracy(data.y, labels), "peak_device_bytes": stage["peak_device_bytes"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="every section on the CPU at toy sizes")
    parser.add_argument("--out", default=os.environ.get("OUT"), help="folder for results.json (default: $OUT)")
    args = parser.parse_args(argv)
    use_checkout()
    import torch

    from cutbench.provenance import provenance

    dry = args.dry_run
    if not dry and not torch.cuda.is_available():
        print("check: no CUDA device here; run on a GPU machine, or use --dry-run.", file=sys.stderr)
        return 2
    device = "cpu" if dry else "cuda"
    sizes = SIZES["dry" if dry else "full"]
    started = time.perf_counter()
    results = {"mode": "dry-run (CPU, toy sizes)" if dry else "full", "provenance": provenance()}
    results["parity"] = parity(device, sizes, dry)
    print(f"[{time.perf_counter() - started:.0f} s] parity done", flush=True)
    featured, y, results["features"] = features(device, sizes, dry)
    print(f"[{time.perf_counter() - started:.0f} s] features done", flush=True)
    X = featured.X if not dry else __import__("numpy").random.default_rng(0).normal(
        size=(sizes["predict"], 20)).astype("float32")
    if dry:
        y = (X[:, 0] > 0).astype(int)
    results["fit_predict"] = fit_predict(device, X[:sizes["predict"]], y[:sizes["predict"]], sizes, dry)
    print(f"[{time.perf_counter() - started:.0f} s] fit/predict done", flush=True)
    results["ncut"] = ncut_full(device, X[:sizes["ncut"]], y[:sizes["ncut"]])
    results["inference"] = inference(device, sizes, dry)
    results["wall_s"] = time.perf_counter() - started
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"\nGPU check ({results['mode']}) on {results['provenance'].get('gpu_name', 'cpu')}, "
          f"{results['wall_s']:.0f} s")
    for row in results["parity"]:
        print(f"parity {row['dataset']:>12} {row['method']:>11}: cpu {row['acc_cpu']:.3f}  {device} "
              f"{row[f'acc_{device}']:.3f}  {'equal' if row['equal'] else 'DIFFERENT'}")
    stage = results["features"]
    print(f"features ScatNet+PCA: {stage['seconds']:.1f} s, peak {(stage['peak_device_bytes'] or 0) / 2**30:.2f} GiB")
    for row in results["fit_predict"]:
        predict = "" if row["predict_s"] is None else f", predict {row['predict_s']:.3f} s"
        print(f"fit/predict {row['method']:>11} ({row['device']}): ACC {row['acc']:.3f}, fit {row['fit_s']:.2f} s "
              f"(cold {row['fit_cold_s']:.2f} s){predict}, peak {row['peak_device_bytes'] / 2**30:.2f} GiB")
    ncut = results["ncut"]
    print(f"ncut n={ncut['n']} ({ncut['solver']}): graph {ncut['graph_s']:.2f} s, eigensolver+k-means "
          f"{ncut['eigensolver_and_kmeans_s']:.2f} s, ACC {ncut['acc']:.3f}")
    infer = results["inference"]
    print(f"neuncut inference n={infer['n']:,}: {infer['predict_s']:.2f} s ({infer['points_per_s']:.3g} points/s)")
    return 0 if all(row["equal"] for row in results["parity"]) else 1


if __name__ == "__main__":
    sys.exit(main())
