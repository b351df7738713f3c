"""The affinity layer: resolution of every kind, and the same matrices as the per-method code it replaced.

``data/affinity_before_the_affinity_layer.npz`` holds the affinities that commit 010a858 computed in
each method's own code (CNC's batch kernel, SpecNet2's ``_DeviceGraph``, SpectralNet's three scale
rules, Ncut's graph, a seeded Siamese network's batch affinity and graph) on fixed inputs, with one
torch thread. The layer must reproduce them: a method moving onto it must not change its numbers.

They are compared with tolerances that fit float32, never bit for bit: the kernels another CPU picks (MKL's
AVX-512 or AVX2 paths, torch's vectorised kernels) change the last bits. Measured across four kernel
variants (``benchmarks/ci/gate.py``'s: native AVX-512, AVX2, MKL AVX2 only, MKL_CBWR=COMPATIBLE with torch's
default kernels) on an Intel Xeon against the file made on an AMD EPYC: the kernels differ by at most
2.1e-7 of their largest value, the Siamese network trained for 3 epochs by 1.1e-5, and the kept neighbours'
indices not at all. The tolerances are 5-10 times those.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from cutbench import CutbenchError
from cutbench.affinity import (
    DeviceGraph,
    affinity_kind,
    affinity_label,
    canonical_affinity,
    check_affinity_graph,
    prepare_affinity,
)
from cutbench.graph import Affinity
from cutbench.methods import SpectralNet
from cutbench.siamese import SiameseAffinity

pytestmark = pytest.mark.usefixtures("one_thread")

BEFORE = np.load(Path(__file__).parent / "data" / "affinity_before_the_affinity_layer.npz")
X = BEFORE["X"]
BATCH = torch.from_numpy(BEFORE["batch"])


KERNEL_TOLERANCE = 1e-6
"""A few float32 operations (distances, an exponential): a few units in the last place of the largest value."""
TRAINED_TOLERANCE = 1e-4
"""A network trained for a few epochs: rounding differences compound over the steps."""


def assert_golden(got, name: str, tolerance: float = KERNEL_TOLERANCE):
    """``got`` equals the stored array ``name`` to ``tolerance`` times its largest magnitude."""
    expected = BEFORE[name]
    np.testing.assert_allclose(got, expected, rtol=0, atol=tolerance * max(1.0, float(np.abs(expected).max())),
                               err_msg=name)


def test_cnc_and_ncut_kernels_are_unchanged():
    assert_golden(prepare_affinity("cnc", X, device="cpu").batch(BATCH).numpy(), "cnc_batch")
    assert_golden(prepare_affinity("knn", X, device="cpu").graph().toarray(), "ncut_graph")


def test_specnet2_device_graph_is_unchanged():
    W = check_affinity_graph(prepare_affinity("knn_self_loops", X, device="cpu").graph(), len(X))
    assert_golden(W.toarray(), "specnet2_graph")
    graph = DeviceGraph(W, torch.device("cpu"), torch.float32)
    neighbours, block = graph.rows(BATCH[:4])
    np.testing.assert_array_equal(neighbours.numpy(), BEFORE["specnet2_neighbours"])  # indices: exact
    assert_golden(block.numpy(), "specnet2_block")
    assert_golden(graph.subgraph(BATCH).numpy(), "specnet2_subgraph")
    assert_golden(graph.matmul(torch.from_numpy(X)).numpy(), "specnet2_matmul")


@pytest.mark.parametrize("scale", ["global_median", "local_median", "affinity"])
def test_spectralnet_scale_rules_are_unchanged(scale):
    method = SpectralNet(3, scale=scale, affinity=Affinity(n_neighbors=5, self_loops=True))
    prepared = prepare_affinity(method.affinity, torch.from_numpy(X), device="cpu")
    batch_affinity_of, _ = method._batch_affinity_fn(prepared, 12, torch.Generator().manual_seed(0))
    assert_golden(batch_affinity_of(BATCH).numpy(), f"spectralnet_{scale}")


def test_a_seeded_siamese_affinity_is_unchanged():
    spec = SiameseAffinity(hidden_dims=(8,), embedding_dim=3, epochs=3, kernel=dict(n_neighbors=4))
    prepared = prepare_affinity(spec, X, device="cpu", random_state=0)
    assert_golden(prepared.batch(BATCH).numpy(), "siamese_batch", TRAINED_TOLERANCE)
    assert_golden(prepared.graph().toarray(), "siamese_graph", TRAINED_TOLERANCE)


def test_every_kind_resolves_and_serialises_canonically():
    assert affinity_kind("knn") == affinity_kind({"n_neighbors": 3}) == "heat_kernel"
    assert affinity_kind("siamese") == affinity_kind({"kind": "siamese"}) == "siamese"
    assert canonical_affinity({"sigma": 2, "n_neighbors": 5.0}) == canonical_affinity(Affinity(sigma=2.0, n_neighbors=5))
    assert canonical_affinity("knn_self_loops")["self_loops"] is True
    assert affinity_label(canonical_affinity("siamese")) == "affinity=siamese"
    assert affinity_label(canonical_affinity({"n_neighbors": None, "sigma": 1.0})) == "s=dense"
    with pytest.raises(CutbenchError, match=r"unknown affinity 'gauss'; accepted names: 'knn', 'neuncut', 'cnc', "
                                            r"'knn_self_loops', 'siamese'"):
        canonical_affinity("gauss")
    with pytest.raises(CutbenchError, match="unknown affinity key"):
        canonical_affinity({"n_neighbours": 3})
