"""Ncut end to end on 70,000 Fashion-MNIST images (PCA-500 features, kNN s = 10): cutbench with exact and
with approximate kNN search against scikit-learn's SpectralClustering pipeline, side by side in one run.

Each pipeline's stages are timed with cutbench.timing: the kNN graph, the spectral embedding (the
eigensolver) and k-means (n_init = 10). scikit-learn's pipeline is SpectralClustering(affinity=
"nearest_neighbors", n_neighbors=10, eigen_solver="arpack") run stage by stage exactly as its ``fit``
does (kneighbors_graph, 0.5 (A + Aᵀ), spectral_embedding without dropping the first vector, k_means),
so its stage times add up to its fit. pynndescent compiles its numba code once per process: that is
warmed up on 2,000 points first and reported apart. Run:

    CUTBENCH_DATA=../shared/data python benchmarks/measure/ncut_70k.py [--skip-sklearn] [--n 70000]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from sklearn.cluster import k_means
from sklearn.decomposition import PCA
from sklearn.manifold import spectral_embedding as sklearn_spectral_embedding
from sklearn.neighbors import kneighbors_graph
from sklearn.utils import check_random_state

from cutbench.affinity import check_affinity_graph
from cutbench.datasets import load_dataset
from cutbench.graph import Affinity, knn_graph, knn_recall
from cutbench.methods.ncut import spectral_embedding
from cutbench.metrics import accuracy
from cutbench.threads import load_average, thread_settings
from cutbench.timing import StageTimer

K, S = 10, 10


def cutbench_pipeline(X, y, backend: str, eigen_solver: str = "arpack") -> dict:
    timer = StageTimer("cpu")
    report = {}
    W = timer.run("graph", lambda: check_affinity_graph(
        knn_graph(X, Affinity(n_neighbors=S, knn_backend=backend), device="cpu", report=report), len(X)))
    embedding = timer.run("eigensolver", lambda: spectral_embedding(W, K, eigen_solver=eigen_solver,
                                                                     rng=np.random.default_rng(0)))
    rows = embedding.vectors / np.maximum(np.linalg.norm(embedding.vectors, axis=1, keepdims=True), 1e-300)
    _, labels, _ = timer.run("kmeans", lambda: k_means(rows, K, n_init=10, random_state=0))
    out = {name: stage["seconds"] for name, stage in timer.to_dict().items()}
    out.update(total=sum(out.values()), acc=accuracy(y, labels), eigen_residual=embedding.residual)
    if backend != "exact":
        out["recall"] = knn_recall(X, Affinity(n_neighbors=S), report["neighbors"], sample=2000, seed=0, device="cpu")
    return out


def sklearn_pipeline(X, y) -> dict:
    timer = StageTimer("cpu")
    random_state = check_random_state(0)
    connectivity = timer.run("graph", lambda: kneighbors_graph(X, n_neighbors=S, include_self=True))
    affinity = 0.5 * (connectivity + connectivity.T)
    maps = timer.run("eigensolver", lambda: sklearn_spectral_embedding(
        affinity, n_components=K, eigen_solver="arpack", random_state=random_state, eigen_tol="auto",
        drop_first=False))
    _, labels, _ = timer.run("kmeans", lambda: k_means(maps, K, random_state=random_state, n_init=10))
    out = {name: stage["seconds"] for name, stage in timer.to_dict().items()}
    out.update(total=sum(out.values()), acc=accuracy(y, labels))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=70000)
    parser.add_argument("--skip-sklearn", action="store_true")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    data = load_dataset("fashion_mnist", n=None if args.n == 70000 else args.n)
    started = time.perf_counter()
    X = PCA(500, random_state=0).fit_transform(data.X).astype(np.float32)
    print(f"{len(X)} x {X.shape[1]} PCA features in {time.perf_counter() - started:.1f} s; threads "
          f"{thread_settings()['torch_threads']}; load {load_average()} on {os.cpu_count()} cores", flush=True)
    started = time.perf_counter()
    knn_graph(X[:2000], Affinity(n_neighbors=S, knn_backend="pynndescent"), device="cpu")
    results = {"pynndescent_compile_s": time.perf_counter() - started, "load_start": load_average()}
    for name, backend in (("cutbench exact", "exact"), ("cutbench pynndescent", "pynndescent"),
                          ("cutbench faiss_hnsw", "faiss_hnsw")):
        results[name] = cutbench_pipeline(X, data.y, backend)
        print(name, json.dumps(results[name]), flush=True)
    if not args.skip_sklearn:
        results["scikit-learn"] = sklearn_pipeline(X, data.y)
        print("scikit-learn", json.dumps(results["scikit-learn"]), flush=True)
    results["load_end"] = load_average()
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=1)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
