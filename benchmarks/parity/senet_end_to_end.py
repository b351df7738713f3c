"""SENet + spectral clustering beside the released code (zhangsz1998/Self-Expressive-Network), end to end.

The released ``main.py`` trains inside its ``__main__`` block, over a fixed list of sizes up to 20,000 and a
70,000-point evaluation each, so it cannot run unmodified at a parity budget. Its classes and functions are
imported from the checkout you give (``SENet``, ``regularizer``, ``get_sparse_rep``, ``get_knn_Aff``,
``utils.p_normalize``, ``utils.spectral_clustering``: benchmarks/parity/senet.py's ``released_main``) and its
training loop, which is not a function there, is transcribed in :func:`train_released` (Adam, cosine
annealing to ``lr_min`` 0 over ``total_iters // (n // batch)`` epochs, gradient norm clipped to 0.001, the
step of its loop body). The graph and the clustering are the released ``evaluate``'s steps: ``get_sparse_rep``
(1,000 largest |c| per row), row normalisation, the symmetric 3-NN graph ``get_knn_Aff`` and
``utils.spectral_clustering`` (``spectral_dim`` eigenvectors, k-means with 20 starts, seed 1).

cutbench runs the same budget through its own path: a ``SelfExpressiveAffinity`` (signed coefficients, as
released) trained by ``prepare_affinity`` and ``Ncut`` on its graph with the same number of eigenvectors
and k-means starts.

Problems (seeds 0, 1, 2 by default, one thread; networks of 3 hidden layers and an output of ``--width``,
released: 1024; ``--steps`` steps of batches of 100, released: 100,000; gamma 200, lambda 0.9):

- two moons and double rings of ``--n`` points, standardised and lifted to 3-D by a constant 1 (the code
  L2-normalises rows, see benchmarks/parity/neuncut.py); 2 clusters, 2 eigenvectors;
- with ``--mnist N`` (MNIST under ``$CUTBENCH_DATA``): N images, ScatNet + PCA-500 (the features the released
  code reads), 10 clusters, 15 eigenvectors (its MNIST setting).

Usage: python benchmarks/parity/senet_end_to_end.py CHECKOUT [--n 2000] [--mnist 5000] [--steps 1000]
       [--width 128] [--seeds 0 1 2] [--out results.json]    Prints the parity table.
"""

from __future__ import annotations

import sys
from functools import partial

import numpy as np
import torch
from senet import released_main  # beside this script, which runs as a script
from sklearn.preprocessing import StandardScaler, normalize
from table import finish, measure, parity_arguments, shapes

from cutbench.affinity import prepare_affinity
from cutbench.datasets import compute_features, load_dataset, resolve_features
from cutbench.methods.ncut import Ncut
from cutbench.metrics import accuracy
from cutbench.senet import SelfExpressiveAffinity

GAMMA, LMBD, LR, BATCH, CLIP = 200.0, 0.9, 1e-3, 100, 0.001  # main.py's MNIST settings
NON_ZEROS, NEIGHBOURS, KMEANS_STARTS = 1000, 3, 20


def problems(n: int, mnist: int | None):
    """``(name, X, y, k, spectral_dim)`` of each comparison."""
    for name in shapes(n):
        data = load_dataset(name, n=n)
        lifted = np.hstack([StandardScaler().fit_transform(data.X), np.ones((n, 1))]).astype(np.float32)
        yield f"{name} (n={n}, lifted)", lifted, data.y, 2, 2
    if mnist:
        data = load_dataset("mnist", n=mnist)
        X = compute_features(data, resolve_features("scatnet", "mnist"), device="cpu").X
        yield f"mnist (n={mnist}, ScatNet + PCA-500)", np.asarray(X, dtype=np.float32), data.y, 10, 15


def train_released(main, data: torch.Tensor, width: int, steps: int):
    """The released training loop (main.py's ``for epoch in pbar`` block), on all of ``data`` as one block."""
    n = data.shape[0]
    senet = main.SENet(data.shape[1], [width] * 3, width, kaiming_init=True)
    n_iter_per_epoch = n // BATCH
    n_epochs = steps // n_iter_per_epoch
    optimizer = torch.optim.Adam(senet.parameters(), lr=LR)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=n_epochs, eta_min=0.0)
    for _ in range(n_epochs):
        randidx = torch.randperm(n)
        for i in range(n_iter_per_epoch):
            senet.train()
            batch = data[randidx[i * BATCH:(i + 1) * BATCH]]
            q_batch = senet.query_embedding(batch)
            k_batch = senet.key_embedding(batch)
            c = senet.get_coeff(q_batch, senet.key_embedding(data))  # one block: n <= 10,000
            rec_batch = c.mm(data)
            reg = main.regularizer(c, LMBD)
            diag_c = senet.thres((q_batch * k_batch).sum(dim=1, keepdim=True)) * senet.shrink
            rec_batch = rec_batch - diag_c * batch
            reg = reg - main.regularizer(diag_c, LMBD)
            loss = (0.5 * GAMMA * torch.sum(torch.pow(batch - rec_batch, 2)) + reg) / BATCH
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(senet.parameters(), CLIP)
            optimizer.step()
        scheduler.step()
    return senet


def run_reference(main, X: np.ndarray, y: np.ndarray, k: int, spectral_dim: int, width: int, steps: int,
                  seed: int) -> float:
    main.same_seeds(seed)
    data = main.utils.p_normalize(torch.from_numpy(X))
    senet = train_released(main, data, width, steps)
    n = len(X)
    C = main.get_sparse_rep(senet=senet, data=data, batch_size=n, chunk_size=n, non_zeros=NON_ZEROS)
    graph = main.get_knn_Aff(normalize(C).astype(np.float32), k=NEIGHBOURS, mode="symmetric")
    return accuracy(y, main.utils.spectral_clustering(graph, k, spectral_dim, n_init=KMEANS_STARTS))


def run_ours(X: np.ndarray, y: np.ndarray, k: int, spectral_dim: int, width: int, steps: int, seed: int) -> float:
    spec = SelfExpressiveAffinity(hidden_dims=(width,) * 3, embedding_dim=width, gamma=GAMMA, l1_ratio=LMBD, lr=LR,
                                  steps=steps, batch_size=BATCH, key_block=len(X), grad_clip=CLIP, top_k=NON_ZEROS,
                                  n_neighbors=NEIGHBOURS, random_state=seed)
    graph = prepare_affinity(spec, X, device="cpu", random_state=seed).graph()
    model = Ncut(k, n_components=spectral_dim, n_init=KMEANS_STARTS, device="cpu", random_state=seed)
    return accuracy(y, model.fit(X, graph=graph).labels_)


def main(argv=None) -> int:
    parser = parity_arguments(__doc__.splitlines()[0], "zhangsz1998/Self-Expressive-Network")
    parser.add_argument("--steps", type=int, default=1000, help="training steps (released: 100,000)")
    parser.add_argument("--width", type=int, default=128, help="hidden and output width (released: 1024)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    main_module = released_main(args.checkout)
    results = []
    for name, X, y, k, spectral_dim in problems(args.n, args.mnist):
        budget = f"{args.steps} steps of batches of {BATCH}, width {args.width}, {spectral_dim} eigenvectors"
        results.append(measure(
            "SENet + spectral clustering", name, budget, args.seeds,
            partial(run_reference, main_module, X, y, k, spectral_dim, args.width, args.steps),
            partial(run_ours, X, y, k, spectral_dim, args.width, args.steps)))
    return finish(results, args.out)


if __name__ == "__main__":
    sys.exit(main())
