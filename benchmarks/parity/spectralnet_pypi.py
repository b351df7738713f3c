"""SpectralNet beside the released PyTorch code (``spectralnet`` 1.1.0 on PyPI), at equal settings and budgets.

The reference is an optional extra, never vendored: ``pip install --no-deps spectralnet==1.1.0 munkres`` (its
``annoy`` import serves only its Siamese network, which is not used here, and is stubbed when absent). Both
run the settings of the released two-moons example (``spectral_hiddens=[128, 128, 2]``, batch 712, 40 epochs,
Adam at 1e-2, 8 neighbours, the global per-batch scale of the 2nd neighbour, 10 % held out for the learning-rate
schedule): cutbench as ``SPECTRALNET_PRESETS["two_moons"]``. Data: standardised two moons and double rings of
``--n`` points (cutbench's generators), seeds 0, 1, 2, one thread. With ``--mnist N`` (and MNIST under
``$CUTBENCH_DATA``) also N MNIST images, PCA to 50 dimensions, with the package's defaults (local scales of
30 neighbours, [1024, 1024, 512, 10], batch 1024, 30 epochs, Adam 1e-3): cutbench as
``SPECTRALNET_PRESETS["pytorch"]``. ACC is cutbench's (Hungarian).

Usage: PYTHONPATH=SITE python benchmarks/parity/spectralnet_pypi.py [--n 2000] [--seeds 0 1 2] [--out results.json]
(SITE holds the reference package); prints the parity table (benchmarks/parity/table.py).
"""

from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np
import torch
from sklearn.preprocessing import StandardScaler
from table import finish, measure, parity_arguments, shapes  # beside this script (run as a script)

from cutbench.datasets import compute_features, load_dataset, resolve_features
from cutbench.methods.spectralnet import SPECTRALNET_PRESETS, SpectralNet
from cutbench.metrics import accuracy

BUDGET = "two-moons example: 40 epochs of batches of 712, 10 % held out"


def reference_class():
    if importlib.util.find_spec("annoy") is None:
        sys.modules["annoy"] = types.SimpleNamespace(AnnoyIndex=None)
    from spectralnet import SpectralNet as Reference

    return Reference


def run_reference(Reference, X: np.ndarray, k: int, seed: int) -> np.ndarray:
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = Reference(n_clusters=k, should_use_ae=False, should_use_siamese=False, spectral_batch_size=712,
                      spectral_epochs=40, spectral_is_local_scale=False, spectral_n_nbg=8, spectral_scale_k=2,
                      spectral_lr=1e-2, spectral_hiddens=[128, 128, k])
    tensor = torch.from_numpy(X)
    model.fit(tensor)
    return np.asarray(model.predict(tensor))


def run_reference_defaults(Reference, X: np.ndarray, k: int, seed: int) -> np.ndarray:
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = Reference(n_clusters=k, should_use_ae=False, should_use_siamese=False,
                      spectral_hiddens=[1024, 1024, 512, k])
    tensor = torch.from_numpy(X)
    model.fit(tensor)
    return np.asarray(model.predict(tensor))


def run_ours(X: np.ndarray, k: int, seed: int, preset: str = "two_moons") -> np.ndarray:
    return SpectralNet(k, **SPECTRALNET_PRESETS[preset], device="cpu", random_state=seed).fit(X).labels_


def problems(n: int, mnist: int | None):
    """``(name, X, y, k, budget, reference runner, cutbench preset)`` of each comparison."""
    for name in shapes(n):
        data = load_dataset(name, n=n)
        yield (f"{name} (n={n})", StandardScaler().fit_transform(data.X).astype(np.float32), data.y, data.meta["k"],
               BUDGET, run_reference, "two_moons")
    if mnist:
        data = load_dataset("mnist", n=mnist)
        X = compute_features(data, resolve_features({"name": "pca", "n_components": 50}, "mnist")).X
        yield (f"mnist (n={mnist}, PCA-50)", X.astype(np.float32), data.y, data.meta["k"],
               "package defaults: 30 epochs of batches of 1024, 10 % held out", run_reference_defaults, "pytorch")


def main(argv=None) -> int:
    parser = parity_arguments(__doc__.splitlines()[0])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    Reference = reference_class()
    results = []
    for name, X, y, k, budget, reference, preset in problems(args.n, args.mnist):
        results.append(measure("SpectralNet", name, budget, args.seeds,
                               lambda seed: accuracy(y, reference(Reference, X, k, seed)),  # noqa: B023 - run now
                               lambda seed: accuracy(y, run_ours(X, k, seed, preset))))  # noqa: B023 - run now
    return finish(results, args.out)


if __name__ == "__main__":
    sys.exit(main())
