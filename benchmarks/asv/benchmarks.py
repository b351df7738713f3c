"""asv benchmarks: every registered method's accuracy, fit and predict time and peak memory on small fixed
CPU problems, and the kNN-graph and eigensolver costs as n grows.

asv counts a smaller number as better for every benchmark, so accuracy is tracked as ``track_error`` =
1 - ACC (lower is better). Threads are pinned to one (torch, BLAS, OpenMP) so that results are
comparable from run to run and commit to commit. Datasets are made once per run (``setup_cache``);
Fashion-MNIST (3,000 images, PCA-50) joins when ``$CUTBENCH_DATA`` holds it.
"""

import warnings

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from cutbench import CutbenchWarning
from cutbench.datasets import allow_downloads, compute_features, load_dataset, resolve_features
from cutbench.graph import Affinity, knn_graph
from cutbench.methods import get_method, list_methods
from cutbench.metrics import accuracy

warnings.filterwarnings("ignore", category=CutbenchWarning)  # e.g. the two rings' two components: expected
allow_downloads(False)  # a benchmark never downloads: Fashion-MNIST is used only when it is already present


def pin_threads():
    """One thread for torch, BLAS and OpenMP: asv calls it before every benchmark (in ``setup``)."""
    torch.set_num_threads(1)
    threadpool_limits(1)

KNN = {"sigma": "median", "n_neighbors": 10}
# The quick study's CPU budgets, smaller: every method fits in seconds. A method not listed runs at its defaults.
PARAMS = {
    "kmeans": {},
    "ncut": {"affinity": KNN},
    "neuncut": {"affinity": KNN, "batch_size": 500, "epochs": 20},
    "neurcut": {"affinity": KNN, "batch_size": 500, "epochs": 20},
    "spectralnet": {"affinity": {**KNN, "self_loops": True}, "hidden_dims": (128, 128), "batch_size": 256,
                    "epochs": 20, "steps_per_epoch": 10, "optimizer": "adam"},
    "specnet2": {"affinity": {**KNN, "self_loops": True}, "hidden_dims": (128, 128), "lr": 1e-3, "batch_size": 32,
                 "epochs": 10},
    "cnc": {"affinity": KNN, "hidden_dims": (256, 256), "epochs": 10, "steps_per_epoch": 50, "balance_weight": 0.01},
}
DATASETS = ["digits", "double_rings", "two_moons", "fashion_mnist"]
TRAIN_SIZE = 1000


def _problems():
    problems = {"digits": load_dataset("digits"), "double_rings": load_dataset("double_rings", n=3000),
                "two_moons": load_dataset("two_moons", n=3000)}
    try:
        fashion = load_dataset("fashion_mnist", n=3000)
    except Exception:  # noqa: BLE001 - no local copy: its benchmarks are skipped
        return {name: (data.X, data.y) for name, data in problems.items()}
    features = compute_features(fashion, resolve_features({"name": "pca", "n_components": 50}, "fashion_mnist"),
                                cache=False)
    return {**{name: (data.X, data.y) for name, data in problems.items()}, "fashion_mnist": (features.X, fashion.y)}


class _Problem:
    """A registered method on a small problem: train on 1,000 points (transductive methods: on all)."""

    params = [list_methods(), DATASETS]
    param_names = ["method", "dataset"]
    timeout = 300

    def setup_cache(self):
        return _problems()

    def setup(self, problems, method, dataset):
        pin_threads()
        if dataset not in problems:
            raise NotImplementedError(f"{dataset} is not under $CUTBENCH_DATA")
        self.X, self.y = problems[dataset]
        cls = get_method(method)
        self.train = np.sort(np.random.default_rng(0).choice(len(self.X), TRAIN_SIZE, replace=False))
        if not cls.capabilities.out_of_sample:
            self.train = np.arange(len(self.X))  # a transductive method labels what it is fitted on
        self.make = lambda: cls(int(self.y.max()) + 1, **PARAMS.get(method, {}), device="cpu", random_state=0)


class Fit(_Problem):
    """Training cost: time and peak memory of ``fit``."""

    def time_fit(self, problems, method, dataset):
        self.make().fit(self.X[self.train])

    def peakmem_fit(self, problems, method, dataset):
        self.make().fit(self.X[self.train])


class Accuracy(_Problem):
    """Clustering error of the fitted method on every point of the problem."""

    def setup(self, problems, method, dataset):
        super().setup(problems, method, dataset)
        self.fitted = self.make().fit(self.X[self.train])

    def track_error(self, problems, method, dataset):
        labels = self.fitted.predict(self.X) if hasattr(self.fitted, "predict") else self.fitted.labels_
        return 1.0 - accuracy(self.y, labels)

    track_error.unit = "1 - ACC (lower is better)"


class Predict(_Problem):
    """Labelling every point of the problem with a fitted out-of-sample method."""

    params = [[name for name in list_methods() if get_method(name).capabilities.out_of_sample], DATASETS]

    def setup(self, problems, method, dataset):
        super().setup(problems, method, dataset)
        self.fitted = self.make().fit(self.X[self.train])

    def time_predict(self, problems, method, dataset):
        self.fitted.predict(self.X)


class GraphCost:
    """The kNN graph and the spectral embedding of the double rings, as n grows (asv draws cost vs n)."""

    params = [[1000, 4000, 16000]]
    param_names = ["n"]
    timeout = 300

    def setup(self, n):
        from cutbench.affinity import check_affinity_graph

        pin_threads()
        self.X = load_dataset("double_rings", n=n).X
        self.W = check_affinity_graph(knn_graph(self.X, Affinity(**KNN), device="cpu"), n)

    def time_knn_graph(self, n):
        knn_graph(self.X, Affinity(**KNN), device="cpu")

    def time_eigensolver(self, n):
        from cutbench.methods.ncut import spectral_embedding

        spectral_embedding(self.W, 2, eigen_solver="arpack")

    def peakmem_knn_graph(self, n):
        knn_graph(self.X, Affinity(**KNN), device="cpu")
