"""Is SpectralNet's MNIST-5k parity gap the package's small last batch? A paired check on the package alone.

The PyTorch package (``spectralnet`` 1.1.0) holds out 10 % of the points and walks the other 4,500 in batches
of 1,024, so every epoch ends with a batch of 404 points, and ``predict`` embeds with the orthonormalisation of
that last batch. cutbench takes whole batches only. This script trains the package with its defaults on MNIST
(PCA-50, as ``spectralnet_pypi.py --mnist``), predicts as released, then re-orthonormalises the same trained
network on random batches of 1,024 training points and predicts again: the ACC difference is the effect of
the small orthonormalisation batch at prediction, with training held fixed.

Usage: CUTBENCH_DATA=DIR PYTHONPATH=SITE python benchmarks/parity/spectralnet_last_batch.py [--n 5000]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch
from spectralnet_pypi import reference_class  # beside this script (which runs as a script)

from cutbench.datasets import compute_features, load_dataset, resolve_features
from cutbench.metrics import accuracy

DRAWS = 3
"""Random full batches to re-orthonormalise on, per trained network."""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="MNIST images (default 5000)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    Reference = reference_class()
    data = load_dataset("mnist", n=args.n)
    X = torch.from_numpy(compute_features(data, resolve_features({"name": "pca", "n_components": 50}, "mnist"))
                         .X.astype(np.float32))
    results = {}
    for seed in args.seeds:
        torch.manual_seed(seed)
        np.random.seed(seed)
        model = Reference(n_clusters=data.meta["k"], should_use_ae=False, should_use_siamese=False,
                          spectral_hiddens=[1024, 1024, 512, data.meta["k"]])
        model.fit(X)
        released = accuracy(data.y, np.asarray(model.predict(X)))
        full_batch = []
        for draw in range(DRAWS):
            batch = torch.randperm(len(X), generator=torch.Generator().manual_seed(100 + draw))[:1024]
            model.spec_net.eval()
            with torch.no_grad():
                model.spec_net(X[batch], should_update_orth_weights=True)
            full_batch.append(accuracy(data.y, np.asarray(model.predict(X))))
        results[seed] = {"released": released, "full_batch_orthonormalisation": full_batch}
        print(f"seed {seed}: as released {released:.4f}, re-orthonormalised on 1,024 points "
              f"{', '.join(f'{acc:.4f}' for acc in full_batch)}", file=sys.stderr, flush=True)
    released = np.array([r["released"] for r in results.values()])
    full = np.array([np.mean(r["full_batch_orthonormalisation"]) for r in results.values()])
    print(json.dumps(results))
    print(f"mean ACC as released {released.mean():.4f}, re-orthonormalised {full.mean():.4f}, "
          f"paired difference {np.mean(full - released):+.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
