"""Run the released NeuNcut code, unmodified, on cutbench's ScatNet + PCA-500 features.

The reference (github.com/hewei98/NeuNcut, ``main.py``) reads pickled ScatNet features from
``./datasets/<NAME>/`` and calls ``.cuda()`` throughout. This script copies the reference's files
from a checkout you give into a scratch folder (nothing is vendored into cutbench), writes cutbench's
features there in the reference's pickle layout (the 60,000 training images, then the 10,000 test
images), and runs ``main.py`` as it is. Without CUDA it maps ``.cuda()`` to a no-op before running
the file; the code itself is not changed.

Usage: CUTBENCH_DATA=DIR python benchmarks/measure/reference_neuncut.py REFERENCE_CHECKOUT SCRATCH \\
       [--dataset mnist|fashion_mnist] [--epochs 100] [--gamma 100] [--seed 0] [--threads N]

Needs the reference's one extra package, munkres (its accuracy uses it): `pip install munkres`. Prints the
reference's own output; its last line is the ACC/NMI/ARI on all 70,000 points.
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

from cutbench.datasets import compute_features, load_dataset, resolve_features

REFERENCE_FILES = ("main.py", "models.py", "utils.py", "loss.py")
NAMES = {"mnist": "MNIST", "fashion_mnist": "FMNIST"}
CPU_SHIM = ("import runpy, sys, torch\n"
            "if not torch.cuda.is_available():\n"
            "    torch.Tensor.cuda = lambda self, *a, **k: self\n"
            "    torch.nn.Module.cuda = lambda self, *a, **k: self\n"
            "sys.argv = ['main.py'] + sys.argv[1:]\n"
            "runpy.run_path('main.py', run_name='__main__')\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", help="a checkout of github.com/hewei98/NeuNcut")
    parser.add_argument("scratch", help="a scratch folder (created) where the reference runs")
    parser.add_argument("--dataset", default="mnist", choices=sorted(NAMES))
    parser.add_argument("--epochs", type=int, default=100, help="Table 1: 100 for MNIST and F-MNIST")
    parser.add_argument("--gamma", type=int, default=100, help="Table 1: 100 for MNIST and F-MNIST")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()

    scratch = Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    for name in REFERENCE_FILES:
        shutil.copy(Path(args.reference) / name, scratch / name)
    data = load_dataset(args.dataset)
    features = compute_features(data, resolve_features("scatnet", args.dataset), device="cpu").X
    name = NAMES[args.dataset]
    folder = scratch / "datasets" / name
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", slice(0, 60000)), ("test", slice(60000, 70000))):
        for kind, array in (("data", features[rows]), ("label", data.y[rows])):
            with open(folder / f"{name}_scattering_{split}_{kind}.pkl", "wb") as fh:
                pickle.dump(array, fh)
    command = [sys.executable, "-c", CPU_SHIM, "--dataset", name, "--N", "20000", "--epo", str(args.epochs),
               "--gamma", str(args.gamma), "--seed", str(args.seed)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    print(f"running the reference in {scratch}: {' '.join(command[3:])}; load average {os.getloadavg()}", flush=True)
    started = time.perf_counter()
    subprocess.run(command, cwd=scratch, env=env, check=True)
    print(f"reference wall time {time.perf_counter() - started:.0f} s; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
