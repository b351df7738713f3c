"""NeuNcut beside its released code (github.com/hewei98/NeuNcut), end to end, at equal settings and budgets.

The released ``main.py`` is run unmodified from the checkout you give (benchmarks/parity/released.py): this
script writes each problem in the pickle layout ``main.py`` reads (``datasets/<NAME>/<NAME>_scattering_*``;
all points as "train", an empty "test"), runs it with ``--N n --seed s`` and the budget's flags, and labels
the sampled points with the network it trained (argmax, as its own per-epoch evaluation does). Its last
lines evaluate blocks of 10,000 points, so on fewer points they fail after training; that failure, and no
other, is accepted. cutbench runs ``NeuNcut`` with the same network, optimiser, schedule, kernel and budget
on the same L2-normalised rows.

Problems (seeds 0, 1, 2 by default, one thread):

- two moons and double rings of ``--n`` points, standardised and lifted to 3-D by a constant coordinate 1:
  the released code L2-normalises every row, which would put 2-D points on one circle and erase the rings'
  radii; 2 clusters, batch 500, 100 epochs, gamma 100, sigma 0.1 (on rows of norm 1, sigma 3 makes every
  affinity ~1);
- with ``--mnist N`` (MNIST under ``$CUTBENCH_DATA``): N images, ScatNet + PCA-500 features (setting IV,
  what the released code reads), Table 1's gamma 100 and sigma 3 but batches of 500 for 30 epochs: the
  released kernel materialises an m x m x d tensor (2 GB at Table 1's batch of 1,000), about 3 s a step
  with one thread here.

Usage: PYTHONPATH=DIR_WITH_MUNKRES python benchmarks/parity/neuncut.py CHECKOUT [--n 2000] [--mnist 5000]
       [--seeds 0 1 2] [--out results.json]   (the released utils.py imports munkres: pip install munkres)
Prints the parity table (benchmarks/parity/table.py).
"""

from __future__ import annotations

import pickle
import sys
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
import torch
from released import cpu_only, run_script  # beside this script, which runs as a script
from sklearn.preprocessing import StandardScaler
from table import finish, measure, parity_arguments, shapes

from cutbench.datasets import compute_features, load_dataset, resolve_features
from cutbench.graph import Affinity
from cutbench.methods.neuncut import NeuNcut
from cutbench.metrics import accuracy

REFERENCE_NAME = "PARITY"
HIDDEN = (512, 512)  # main.py's --hid_dims default (its type=list flag cannot be set from the command line)
LR, WEIGHT_DECAY = 5e-3, 1e-4  # main.py's defaults


def l2_rows(X: np.ndarray) -> np.ndarray:
    """Rows of unit L2 norm, as the released ``p_normalize`` (with its 1e-6 guard) makes them."""
    X = np.asarray(X, dtype=np.float32)
    return X / (np.linalg.norm(X, axis=1, keepdims=True) + 1e-6)


def problems(n: int, mnist: int | None):
    """``(name, X, y, k, flags)`` of each comparison; flags are main.py's, shared by both codes."""
    for name in shapes(n):
        data = load_dataset(name, n=n)
        lifted = np.hstack([StandardScaler().fit_transform(data.X), np.ones((n, 1))]).astype(np.float32)
        yield (f"{name} (n={n}, lifted)", lifted, data.y, 2,
               {"bs": 500, "epo": 100, "gamma": 100, "sigma": 0.1})
    if mnist:
        data = load_dataset("mnist", n=mnist)
        X = compute_features(data, resolve_features("scatnet", "mnist"), device="cpu").X
        yield (f"mnist (n={mnist}, ScatNet + PCA-500)", np.asarray(X, dtype=np.float32), data.y, 10,
               {"bs": 500, "epo": 30, "gamma": 100, "sigma": 3.0})


def run_reference(checkout: Path, scratch: Path, X: np.ndarray, y: np.ndarray, k: int, flags: dict,
                  seed: int) -> float:
    """ACC of the released ``main.py`` trained on ``X`` (it samples all ``len(X)`` rows in its own order)."""
    folder = scratch / "datasets" / REFERENCE_NAME
    folder.mkdir(parents=True, exist_ok=True)
    parts = {"train_data": X, "test_data": X[:0], "train_label": y, "test_label": y[:0]}
    for part, array in parts.items():
        with open(folder / f"{REFERENCE_NAME}_scattering_{part}.pkl", "wb") as handle:
            pickle.dump(array, handle)
    argv = ["--dataset", REFERENCE_NAME, "--n_classes", str(k), "--N", str(len(X)), "--seed", str(seed),
            *[token for key, value in flags.items() for token in (f"--{key}", str(value))]]
    namespace, error, printed = run_script(checkout / "main.py", argv, scratch)
    trained = namespace.get("epoch") == flags["epo"] - 1 and "cls_head" in namespace
    if not trained or (error is not None and len(X) >= 10000):
        raise RuntimeError(f"the released main.py failed: {error!r}; its last output: {printed[-500:]}")
    network, rows, labels = namespace["cls_head"], namespace["data"], namespace["labels"]
    with torch.no_grad():
        network.eval()
        predicted = network(rows).argmax(dim=1).numpy()
    return accuracy(np.asarray(labels), predicted)


def run_ours(X: np.ndarray, y: np.ndarray, k: int, flags: dict, seed: int) -> float:
    kernel = Affinity(sigma=float(flags["sigma"]), n_neighbors=None, self_loops=True, normalize_rows=True)
    model = NeuNcut(k, affinity=kernel, gamma=float(flags["gamma"]), hidden_dims=HIDDEN, lr=LR,
                    weight_decay=WEIGHT_DECAY, batch_size=flags["bs"], epochs=flags["epo"], device="cpu",
                    random_state=seed)
    return accuracy(y, model.fit(l2_rows(X)).labels_)


def main(argv=None) -> int:
    parser = parity_arguments(__doc__.splitlines()[0], "github.com/hewei98/NeuNcut")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cpu_only()
    results = []
    with tempfile.TemporaryDirectory(prefix="neuncut-parity-") as scratch:
        for name, X, y, k, flags in problems(args.n, args.mnist):
            budget = f"{flags['epo']} epochs of batches of {flags['bs']}, gamma {flags['gamma']}, sigma {flags['sigma']}"
            results.append(measure(
                "NeuNcut", name, budget, args.seeds,
                partial(run_reference, args.checkout, Path(scratch), X, y, k, flags), partial(run_ours, X, y, k, flags)))
    return finish(results, args.out)


if __name__ == "__main__":
    sys.exit(main())
