"""SpecNet2 beside its released code (github.com/ziyuchen7/SpecNet2), end to end, on the same graph and budget.

The released ``python/main.py`` is run unmodified from the checkout you give (benchmarks/parity/released.py):
this script writes each problem as the ``.mat`` files it reads (``x``, the sparse affinity ``spW``, ``label``
and the top eigenvalues ``evals`` of the graph, which it would otherwise find by a dense n x n solve; a test
file of the first 10 points, which only its per-epoch report uses) and the JSON of its settings, seeds torch
and numpy (the script seeds nothing), runs it, and clusters its final embedding ``U`` with k-means
(``n_init=10``), as the repository's MATLAB evaluation does after it. cutbench runs ``SpecNet2`` on the same
points and the same graph (``fit(X, graph=W)``) with the same network, optimiser, variant, batch and epochs,
in float64 as the reference (which sets float64 as torch's default type).

Problems (seeds 0, 1, 2 by default, one thread), on the kNN heat kernel with self-loops that the neighbour
variant needs (s = 10, median sigma; cutbench's ``knn_self_loops``):

- two moons and double rings of ``--n`` points, standardised; 2 clusters, so a 1-D embedding; 2 hidden ReLU
  layers of 128, Adam 1e-3, batches of 32, 30 epochs, the ``neighbor`` gradient (released one-moon setting
  but for a larger batch and fewer epochs, to fit minutes);
- with ``--mnist N`` (MNIST under ``$CUTBENCH_DATA``): N images, ScatNet + PCA-500 features, a 9-D embedding,
  2 hidden layers of 256, Adam 1e-4 (released MNIST setting), batches of 32, 10 epochs.

Usage: python benchmarks/parity/specnet2.py CHECKOUT [--n 2000] [--mnist 5000] [--seeds 0 1 2] [--out results.json]
Prints the parity table (benchmarks/parity/table.py).
"""

from __future__ import annotations

import json
import sys
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
import scipy.io
import scipy.sparse as sp
import torch
from released import run_script  # beside this script, which runs as a script
from scipy.sparse.linalg import eigsh
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler
from table import finish, measure, parity_arguments, shapes

from cutbench.affinity import prepare_affinity
from cutbench.datasets import compute_features, load_dataset, resolve_features
from cutbench.methods.specnet2 import SpecNet2
from cutbench.metrics import accuracy

N_INIT = 10


def problems(n: int, mnist: int | None):
    """``(name, X, y, k, settings)`` of each comparison; the settings are shared by both codes."""
    for name in shapes(n):
        data = load_dataset(name, n=n)
        yield (f"{name} (n={n})", StandardScaler().fit_transform(data.X), data.y, 2,
               {"hidden": [128, 128], "lr": 1e-3, "batch": 32, "epochs": 30})
    if mnist:
        data = load_dataset("mnist", n=mnist)
        X = compute_features(data, resolve_features("scatnet", "mnist"), device="cpu").X
        yield (f"mnist (n={mnist}, ScatNet + PCA-500)", np.asarray(X, dtype=np.float64), data.y, 10,
               {"hidden": [256, 256], "lr": 1e-4, "batch": 32, "epochs": 10})


def shared_graph(X: np.ndarray, seed: int) -> sp.csr_matrix:
    """The graph both codes train on: cutbench's ``knn_self_loops`` heat kernel of ``X``."""
    return sp.csr_matrix(prepare_affinity("knn_self_loops", X, device="cpu", random_state=seed).graph())


def top_eigenvalues(W: sp.csr_matrix, count: int) -> np.ndarray:
    """The ``count`` largest eigenvalues of ``W v = lambda D v``, ascending (what the released code computes)."""
    inverse_root = sp.diags(1.0 / np.sqrt(np.asarray(W.sum(axis=1)).ravel()))
    values = eigsh(inverse_root @ W @ inverse_root, k=count, which="LA", tol=1e-12)[0]
    return np.sort(values)


def run_reference(checkout: Path, scratch: Path, X, y, W, k: int, settings: dict, seed: int) -> float:
    """ACC of k-means on the released code's final embedding."""
    out_dim = k - 1
    scipy.io.savemat(scratch / "disc.mat", {"x": X, "spW": W, "label": y.reshape(-1, 1).astype(np.float64),
                                            "evals": top_eigenvalues(W, out_dim + 1)})
    scipy.io.savemat(scratch / "test.mat", {"x": X[:10], "label": y[:10].reshape(-1, 1).astype(np.float64)})
    para = {"neural network": {"units": settings["hidden"], "depth": len(settings["hidden"]) + 1,
                               "output dimension": out_dim, "activation": "relu"},
            "data set": {"path": str(scratch / "disc.mat"), "tpath": str(scratch / "test.mat")},
            "classify_flag": 2,  # the multi-class flag: no per-epoch k-means (its branch is commented out)
            "net function": {"net type": "specnet2", "gradient type": "neighbor"},
            "train and test": {"learning rate": settings["lr"], "batch size": settings["batch"],
                               "max num of epochs": settings["epochs"], "data order": 1, "tolerance": 2e-8,
                               "log frequency": 10},
            "log path": str(scratch)}
    (scratch / "para.json").write_text(json.dumps(para))
    torch.manual_seed(seed)
    np.random.seed(seed)
    try:
        namespace, error, printed = run_script(checkout / "python" / "main.py", [str(scratch / "para.json")],
                                               checkout / "python")
    finally:
        torch.set_default_dtype(torch.float32)  # the script sets float64 process-wide
    if error is not None:
        raise RuntimeError(f"the released main.py failed: {error!r}; its last output: {printed[-500:]}")
    return accuracy(y, KMeans(k, n_init=N_INIT, random_state=seed).fit_predict(namespace["U"]))


def run_ours(X, y, W, k: int, settings: dict, seed: int) -> float:
    model = SpecNet2(k, variant="neighbor", hidden_dims=tuple(settings["hidden"]), lr=settings["lr"],
                     batch_size=settings["batch"], epochs=settings["epochs"], n_init=N_INIT, device="cpu",
                     random_state=seed, dtype="float64")
    return accuracy(y, model.fit(X, graph=W).labels_)


def main(argv=None) -> int:
    parser = parity_arguments(__doc__.splitlines()[0], "github.com/ziyuchen7/SpecNet2")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = []
    with tempfile.TemporaryDirectory(prefix="specnet2-parity-") as scratch:
        for name, X, y, k, settings in problems(args.n, args.mnist):
            X = np.asarray(X, dtype=np.float64)
            W = shared_graph(X, seed=0)
            budget = f"{settings['epochs']} epochs of batches of {settings['batch']}, neighbour gradient, float64"
            results.append(measure(
                "SpecNet2", name, budget, args.seeds,
                partial(run_reference, args.checkout, Path(scratch), X, y, W, k, settings),
                partial(run_ours, X, y, W, k, settings)))
    return finish(results, args.out)


if __name__ == "__main__":
    sys.exit(main())
