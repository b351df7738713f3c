"""Micro benchmarks (pytest-benchmark): the kNN graph, the eigensolver, one optimisation step of every
network method's loss (forward and backward), and prediction throughput.

Run ``python -m pytest benchmarks/micro --benchmark-only`` (add ``--benchmark-autosave`` to keep a
baseline, ``--benchmark-compare --benchmark-compare-fail=median:15%`` to check against it). CUDA work
is synchronised inside the timed function through cutbench's timing module, so a GPU figure counts
the kernels it queued.
"""

import numpy as np
import pytest
import torch

from cutbench.affinity import check_affinity_graph, prepare_affinity
from cutbench.datasets import load_dataset
from cutbench.graph import Affinity, knn_graph
from cutbench.methods import get_method
from cutbench.methods.cnc import expected_ncut_loss, gumbel_softmax
from cutbench.methods.ncut import spectral_embedding
from cutbench.methods.neuncut import ncut_loss, rcut_loss
from cutbench.methods.specnet2 import specnet2_row_gradient
from cutbench.methods.spectralnet import orthonorm_weights, spectral_loss
from cutbench.timing import clock_for
from cutbench.training import seeded_mlp

N_GRAPH = 5000
BATCH = 1000
N_PREDICT = 100_000
KNN = Affinity(n_neighbors=10)


@pytest.fixture(scope="module")
def rings():
    return load_dataset("double_rings", n=N_GRAPH).X


def synchronised(function, device):
    sync = clock_for(device).synchronize

    def run():
        result = function()
        sync()
        return result

    return run


def test_knn_graph(benchmark, rings, device):
    benchmark.extra_info["n"] = N_GRAPH
    benchmark.pedantic(synchronised(lambda: knn_graph(rings, KNN, device=device), device), rounds=5, warmup_rounds=1)


@pytest.mark.filterwarnings("ignore:the graph has 2 connected components")  # the two rings: as it should be
def test_eigensolver(benchmark, rings):
    W = check_affinity_graph(knn_graph(rings, KNN, device="cpu"), N_GRAPH)
    benchmark.extra_info["n"] = N_GRAPH
    embedding = benchmark.pedantic(lambda: spectral_embedding(W, 2, eigen_solver="arpack"), rounds=5, warmup_rounds=1)
    assert embedding.residual < 1e-5


def _loss_steps(X, W, generator):
    """One loss per network method: ``(model, step)`` with ``step()`` doing forward, loss and backward."""
    d, k = X.shape[1], 2
    out = {}
    for name, loss in (("neuncut", ncut_loss), ("neurcut", rcut_loss)):
        model = seeded_mlp([d, 512, 512, k], init="neuncut", generator=generator).to(X.device)
        out[name] = (model, lambda model=model, loss=loss: loss(torch.softmax(model(X), 1), W, gamma=80.0)[0])
    spectral = seeded_mlp([d, 1024, 1024, 512, k], output_activation="tanh", generator=generator).to(X.device)

    def spectralnet():
        weights, _ = orthonorm_weights(spectral(X), "qr")
        return spectral_loss(spectral(X).to(torch.float64) @ weights, W.to(torch.float64))

    out["spectralnet"] = (spectral, spectralnet)
    specnet = seeded_mlp([d, 256, 256, 1], generator=generator).to(X.device)

    def specnet2():
        Y = specnet(X)
        new = Y.detach()
        degrees = W.sum(1)
        gradient = specnet2_row_gradient(W @ new, new, degrees, degrees @ new / degrees.sum(), new.T @ (degrees[:, None]
                                                                                                     * new), len(X))
        return (Y * gradient).sum()

    out["specnet2"] = (specnet, specnet2)
    cnc = seeded_mlp([d, 512, 512, k], activation="tanh", init="glorot", generator=generator).to(X.device)
    noise = torch.Generator(device=X.device).manual_seed(0)
    out["cnc"] = (cnc, lambda: expected_ncut_loss(gumbel_softmax(cnc(X), 1.0, noise), W))
    return out


@pytest.mark.parametrize("method", ["neuncut", "neurcut", "spectralnet", "specnet2", "cnc"])
def test_loss_step(benchmark, method, device):
    X = torch.from_numpy(load_dataset("double_rings", n=BATCH).X).to(device)
    W = prepare_affinity(KNN, X, device=device).batch(torch.arange(BATCH, device=device))
    model, loss = _loss_steps(X, W, torch.Generator().manual_seed(0))[method]

    def step():
        model.zero_grad(set_to_none=True)
        loss().backward()

    benchmark.extra_info["batch"] = BATCH
    benchmark.pedantic(synchronised(step, device), rounds=10, warmup_rounds=2)


@pytest.mark.parametrize("method", ["neuncut", "neurcut", "spectralnet", "specnet2", "cnc", "kmeans"])
def test_predict_throughput(benchmark, method, device):
    data = load_dataset("double_rings", n=N_PREDICT)
    tiny = {"kmeans": {}, "spectralnet": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 256},
            "specnet2": {"epochs": 1, "batch_size": 256}}.get(method, {"epochs": 1, "batch_size": 256})
    cls = get_method(method)
    params = {**tiny, "device": str(device)} if cls.capabilities.gpu else tiny
    affinity = {"affinity": {"n_neighbors": 10, "self_loops": True}} if method != "kmeans" else {}
    fitted = cls(2, **params, **affinity, random_state=0).fit(data.X[:2000])
    labels = benchmark.pedantic(synchronised(lambda: fitted.predict(data.X), device), rounds=3, warmup_rounds=1)
    assert labels.shape == (N_PREDICT,) and np.isin(labels, [0, 1]).all()
    benchmark.extra_info["points"] = N_PREDICT
