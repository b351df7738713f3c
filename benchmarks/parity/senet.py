"""SENet beside its released code (github.com/zhangsz1998/Self-Expressive-Network), on fixed inputs.

The released code is not vendored: ``main.py`` is imported from the checkout you give. On the CPU its
``.cuda()`` calls are made no-ops, and the two imports that no longer load (``munkres`` in ``utils.py``,
``sklearn.metrics.cluster.supervised`` in ``metrics/cluster/accuracy.py``; neither is used by what is
compared) are stubbed. The script builds the released ``SENet`` (seeded), copies its weights into cutbench's
``SelfExpressiveModel``, and compares, on points of a union of subspaces (row-normalised with the released
``utils.p_normalize``):

- the coefficients ``senet(queries, keys)``;
- the kNN graph: the released ``get_sparse_rep`` + ``normalize`` + ``get_knn_Aff`` against cutbench's graph
  with ``coefficients="signed"`` (as released) and ``"absolute"`` (the variant);
- the loss of one batch: the released training step (``main.py``'s loop body, transcribed below: it is not a
  function there) against ``cutbench.senet.self_expression_loss``;
- the step rule: epochs and steps for the budget.

Usage: python benchmarks/parity/senet.py CHECKOUT [--hidden 128 --out 128 --n 400]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from released import cpu_only, load_module, stub_module  # beside this script, which runs as a script

from cutbench.senet import SelfExpressiveAffinity, SelfExpressiveModel, SelfExpressivePrepared, self_expression_loss
from cutbench.training import seeded_mlp


def released_main(checkout: Path):
    """``main.py`` of the checkout as a module, loadable on a CPU-only machine."""
    stub_module("munkres", Munkres=None)
    import sklearn.metrics.cluster as cluster_metrics

    sys.modules.setdefault("sklearn.metrics.cluster.supervised", cluster_metrics)
    cpu_only()
    return load_module(checkout / "main.py", "released_senet_main")


def union_of_subspaces(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    per = n // 4
    X = [rng.normal(size=(per, 3)) @ np.linalg.qr(rng.normal(size=(30, 3)))[0].T for _ in range(4)]
    return np.vstack(X).astype(np.float32), np.repeat(np.arange(4), per)


def ours_from(released, spec: SelfExpressiveAffinity, d: int) -> SelfExpressiveModel:
    """cutbench's model with the released network's weights, layer by layer."""
    widths = [d, *spec.hidden_dims, spec.embedding_dim]
    generator = torch.Generator().manual_seed(0)
    query = seeded_mlp(widths, activation="relu", output_activation="tanh", init="neuncut", generator=generator)
    key = seeded_mlp(widths, activation="relu", output_activation="tanh", init="neuncut", generator=generator)
    for ours, theirs in ((query, released.net_q), (key, released.net_k)):
        source = [layer for layer in theirs.layers if isinstance(layer, torch.nn.Linear)] + [theirs.out_layer]
        target = [layer for layer in ours if isinstance(layer, torch.nn.Linear)]
        assert len(source) == len(target), "the architectures differ"
        with torch.no_grad():
            for a, b in zip(target, source, strict=True):
                a.weight.copy_(b.weight)
                a.bias.copy_(b.bias)
    model = SelfExpressiveModel(query, key, spec.embedding_dim)
    with torch.no_grad():
        model.threshold.copy_(released.thres.bias[0])
    return model


def released_step_loss(main, senet, data: torch.Tensor, batch_idx: torch.Tensor, gamma: float, lmbd: float,
                       block_size: int) -> float:
    """main.py's training step, lines 315-336 of the released code (its loop body), as written there."""
    batch = data[batch_idx]
    q_batch = senet.query_embedding(batch)
    k_batch = senet.key_embedding(batch)
    rec_batch = torch.zeros_like(batch)
    reg = torch.zeros([1])
    for j in range(round(data.shape[0] // block_size)):
        block = data[j * block_size: (j + 1) * block_size]
        k_block = senet.key_embedding(block)
        c = senet.get_coeff(q_batch, k_block)
        rec_batch = rec_batch + c.mm(block)
        reg = reg + main.regularizer(c, lmbd)
    diag_c = senet.thres((q_batch * k_batch).sum(dim=1, keepdim=True)) * senet.shrink
    rec_batch = rec_batch - diag_c * batch
    reg = reg - main.regularizer(diag_c, lmbd)
    rec_loss = torch.sum(torch.pow(batch - rec_batch, 2))
    return float((0.5 * gamma * rec_loss + reg) / len(batch_idx))


def compare(checkout: Path, hidden: int, out: int, n: int, seed: int = 0) -> list[tuple[str, str, str, str]]:
    main = released_main(checkout)
    X, _ = union_of_subspaces(n, seed)
    torch.manual_seed(seed)
    released = main.SENet(X.shape[1], [hidden] * 3, out, kaiming_init=True)
    released.eval()
    # a threshold away from 0, so the soft-thresholding is exercised
    with torch.no_grad():
        released.thres.bias.fill_(0.05)
    data = main.utils.p_normalize(torch.from_numpy(X))
    spec = SelfExpressiveAffinity(hidden_dims=(hidden,) * 3, embedding_dim=out, key_block=n)
    model = ours_from(released, spec, X.shape[1])
    rows = []
    with torch.no_grad():
        theirs = released(data, data)
        ours = model.coefficients(data, data)
        rows.append(("coefficients: largest difference", f"largest c: {theirs.abs().max():.3g}",
                     f"largest c: {ours.abs().max():.3g}",
                     f"{(theirs - ours).abs().max():.2e}"))
        C_sparse = main.get_sparse_rep(senet=released, data=data, batch_size=n, chunk_size=n, non_zeros=1000)
        from sklearn.preprocessing import normalize

        released_graph = main.get_knn_Aff(normalize(C_sparse).astype(np.float32), k=3, mode="symmetric")
        for variant in ("signed", "absolute"):
            prepared = SelfExpressivePrepared(SelfExpressiveAffinity(**{**spec.__dict__, "coefficients": variant}),
                                              model, torch.from_numpy(X))
            graph = prepared.graph()
            differing = int((graph != released_graph).nnz)
            rows.append((f"kNN graph, coefficients={variant}: entries differing", f"{released_graph.nnz} entries",
                         f"{graph.nnz} entries", str(differing)))
        batch = torch.arange(0, min(100, n))
        theirs_loss = released_step_loss(main, released, data, batch, gamma=200.0, lmbd=0.9, block_size=n)
        ours_loss = float(self_expression_loss(model, data, batch, gamma=200.0, l1_ratio=0.9, key_block=n)[0])
        rows.append(("loss of one batch of 100", f"{theirs_loss:.6g}", f"{ours_loss:.6g}",
                     f"{abs(theirs_loss - ours_loss) / abs(theirs_loss):.2e} relative"))
    per_epoch = n // 100
    rows.append((f"steps for a 100,000-step budget, n={n}, batch 100",
                 f"{(100_000 // per_epoch) * per_epoch} ({100_000 // per_epoch} epochs)",
                 f"{max(100_000 // per_epoch, 1) * per_epoch} ({max(100_000 // per_epoch, 1)} epochs)", ""))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="a checkout of zhangsz1998/Self-Expressive-Network")
    parser.add_argument("--hidden", type=int, default=128, help="width of the 3 hidden layers (released: 1024)")
    parser.add_argument("--out", type=int, default=128, help="output width (released: 1024)")
    parser.add_argument("--n", type=int, default=400, help="points (4 subspaces)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print("| quantity | released code | cutbench | difference |\n| :--- | :--- | :--- | :--- |")
    for row in compare(args.checkout, args.hidden, args.out, args.n):
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
