"""ScatNet + PCA-500 features of MNIST and Fashion-MNIST on this machine's CPU.

Usage: CUTBENCH_DATA=<folder with mnist/ and fashion-mnist/> python benchmarks/measure/scatnet_features.py <cache dir> [threads]
"""
import hashlib
import os
import sys
import time

import numpy as np
import torch

from cutbench.datasets import compute_features, load_dataset, resolve_features

cache = sys.argv[1]
threads = int(sys.argv[2]) if len(sys.argv) > 2 else torch.get_num_threads()
torch.set_num_threads(threads)
print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()}", flush=True)
for name in ("mnist", "fashion_mnist"):
    data = load_dataset(name)
    steps = resolve_features("scatnet", name)
    started = time.perf_counter()
    scat = compute_features(data, steps[:1], device="cpu", cache=cache, progress=True)
    scat_s = time.perf_counter() - started
    started = time.perf_counter()
    feats = compute_features(data, steps, device="cpu", cache=cache)
    pca_s = time.perf_counter() - started
    digest = hashlib.sha256(np.ascontiguousarray(feats.X, dtype="<f4")).hexdigest()
    print(f"{name}: n={feats.X.shape[0]} scatnet d={scat.X.shape[1]} in {scat_s:.1f} s ({scat.meta['features_cache']}); "
          f"+ uncentred PCA-500 in {pca_s:.1f} s ({feats.meta['features_cache']}); total {scat_s + pca_s:.1f} s; "
          f"output {feats.X.shape} float32 sha256 {digest}; load average {os.getloadavg()}", flush=True)
