"""Where NeuNcut/NeuRcut get stuck on double rings: the relaxed losses minimised over free memberships.

No network: the logits of every point are free parameters (Adam, lr 0.05, full batch, float64) on the
kNN graph (s = 10, median sigma) of ``make_circles(400, noise=0.05, factor=0.5)``, gamma 0.1. Two
starts: ``random`` (i.i.d. logits of scale 0.01) and ``linear`` (logits ±0.01·x, a near-uniform start
leaning along a straight line, as a freshly initialised network on 2-D coordinates is). Prints ACC,
the trace (cut) term and the orthogonality term at the end, per loss, seed and start.

Usage: python benchmarks/measure/free_memberships.py [STEPS]   (default 3000)
"""
import sys

import numpy as np
import torch
from sklearn.datasets import make_circles

from cutbench.graph import Affinity, knn_graph
from cutbench.methods.neuncut import ncut_loss, rcut_loss
from cutbench.metrics import accuracy

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
torch.set_num_threads(1)

for loss_fn in (ncut_loss, rcut_loss):
    for seed in range(3):
        X, y = make_circles(400, noise=0.05, factor=0.5, random_state=seed)
        W = torch.tensor(knn_graph(X, Affinity(sigma="median", n_neighbors=10), device="cpu").toarray())
        starts = {"random": 0.01 * torch.randn(400, 2, dtype=torch.float64,
                                               generator=torch.Generator().manual_seed(seed)),
                  "linear": 0.01 * torch.tensor(np.c_[X[:, 0], -X[:, 0]])}
        for start, initial in starts.items():
            logits = initial.clone().requires_grad_()
            optimizer = torch.optim.Adam([logits], lr=0.05)
            for _ in range(STEPS):
                loss, trace, orth = loss_fn(torch.softmax(logits, dim=1), W, gamma=0.1)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            acc = accuracy(y, logits.argmax(dim=1).numpy())
            print(f"{loss_fn.__name__} seed={seed} start={start:6s} ACC={acc:.3f} "
                  f"trace={trace.item():.5f} orth={orth.item():.4f}", flush=True)
