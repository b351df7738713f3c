"""NeuNcut Figure 1, settled by measurement: why NeuNcut ends in a straight cut of the double rings and
the double C, and what the paper's "nearly 100 %" would need.

Four measurements, each on the generators cutbench's fig1 target uses (raw 2-D coordinates):

1. The discrete Ncut of the true partition against the best straight cut (every direction, every
   threshold between the 5 % and 95 % quantiles), under a dense heat kernel of bandwidth sigma, on
   2,000 points, for sigma from 0.05 to 3: which partition the Ncut objective itself prefers.
2. The same after L2-normalising the rows, as the released NeuNcut ``main.py`` does before its
   kernel (sigma = 3 there): both rings land on the unit circle.
3. NeuNcut's mini-batch loss (cutbench's ``ncut_loss``, gamma 100, batches of 1,000 of 10,000 points)
   of the hard true partition against straight cuts through the centre: which one the loss prefers.
4. NeuNcut's own loss and network (the 512x512 network, Adam, Table 1's gamma 100, lr 5e-3, 100
   epochs of batches of 1,000 on 10,000 points), trained from the standard initialisation and
   warm-started at the true partition (the network first fitted to the true labels with cross-entropy
   until it is below 0.01): whether the truth is a stable point that training from scratch never reaches.

Usage: python benchmarks/measure/fig1_evidence.py [--out results.json] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from cutbench.affinity import prepare_affinity
from cutbench.datasets import load_dataset
from cutbench.methods.neuncut import ncut_loss
from cutbench.metrics import accuracy, ncut_value
from cutbench.training import seeded_mlp

SHAPES = ("double_rings", "double_c")
SIGMAS = (0.05, 0.1, 0.2, 0.5, 1.0, 3.0)
ANGLES = 180


def dense_kernel(X: np.ndarray, sigma: float) -> np.ndarray:
    squared = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    W = np.exp(-squared / (2 * sigma**2))
    np.fill_diagonal(W, 0.0)
    return W


def best_straight_cut(X: np.ndarray, W: np.ndarray) -> tuple[float, np.ndarray]:
    """The lowest discrete Ncut of a half-plane split, over ANGLES directions and every threshold between the
    5 % and 95 % quantiles; ``cut(A + v) = cut(A) + d_v - 2 W(v, A)`` gives all thresholds of a direction at once."""
    n = len(X)
    degrees = W.sum(1)
    total = degrees.sum()
    lo, hi = int(0.05 * n), int(0.95 * n)
    best, best_labels = np.inf, None
    for theta in np.linspace(0, np.pi, ANGLES, endpoint=False):
        order = np.argsort(X @ np.array([np.cos(theta), np.sin(theta)]))
        Ws = W[np.ix_(order, order)]
        to_earlier = np.tril(Ws, -1).sum(1)
        cut = np.cumsum(degrees[order] - 2 * to_earlier)
        vol = np.cumsum(degrees[order])
        with np.errstate(divide="ignore", invalid="ignore"):  # the last prefix is everything: outside [lo, hi)
            ncut = cut / vol + cut / (total - vol)
        t = lo + int(np.argmin(ncut[lo:hi]))
        if ncut[t] < best:
            best = float(ncut[t])
            best_labels = np.zeros(n, dtype=np.int64)
            best_labels[order[t + 1:]] = 1
    return best, best_labels


def objective_table(normalise: bool) -> list[dict]:
    rows = []
    for shape in SHAPES:
        data = load_dataset(shape, n=2000, random_state=0)
        X = data.X.astype(np.float64)
        if normalise:
            X = X / np.linalg.norm(X, axis=1, keepdims=True)
        for sigma in SIGMAS:
            W = dense_kernel(X, sigma)
            truth = ncut_value(W, data.y)
            line, labels = best_straight_cut(X, W)
            rows.append({"shape": shape, "normalised": normalise, "sigma": sigma, "ncut_truth": truth,
                         "ncut_best_straight_cut": line, "straight_cut_acc": accuracy(data.y, labels),
                         "objective_prefers": "truth" if truth < line else "straight cut"})
    return rows


def train(X: torch.Tensor, y: np.ndarray, *, warm: bool, affinity, seed: int) -> dict:
    """NeuNcut's training (its loss, network, optimiser and schedule), optionally from a network first fitted to
    the true labels."""
    generator = torch.Generator().manual_seed(seed)
    model = seeded_mlp([X.shape[1], 512, 512, 2], activation="relu", init="neuncut", generator=generator,
                       dtype=torch.float32)
    prefit_loss = None
    if warm:  # fitted until the memberships are nearly hard (cross-entropy below 0.01), at most 2,000 steps
        target = torch.as_tensor(y)
        fit = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(2000):
            fit.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(X), target)
            loss.backward()
            fit.step()
            if loss.item() < 0.01:
                break
        prefit_loss = loss.item()
    start_acc = accuracy(y, model(X).argmax(1).numpy())
    prepared = prepare_affinity(affinity, X, device="cpu", random_state=seed)
    start_loss = batch_losses(prepared, lambda index: torch.softmax(model(X[index]), dim=1).detach(), len(X), seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.005, weight_decay=1e-4)
    epochs, batch = 100, 1000
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=0)
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=generator)
        epoch = []
        for b in range(len(X) // batch):
            index = order[b * batch:(b + 1) * batch]
            with torch.no_grad():
                W = prepared.batch(index)
            loss, _, _ = ncut_loss(torch.softmax(model(X[index]), dim=1), W, gamma=100.0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            epoch.append(loss.item())
        scheduler.step()
        losses.append(float(np.mean(epoch)))
    with torch.no_grad():
        labels = model(X).argmax(1).numpy()
    return {"start_acc": start_acc, "prefit_cross_entropy": prefit_loss, "start_loss": start_loss,
            "acc": accuracy(y, labels), "final_loss": losses[-1], "lowest_loss": min(losses)}


def batch_losses(prepared, memberships, n: int, seed: int, batches: int = 20, batch: int = 1000) -> float:
    """NeuNcut's loss (gamma 100) of given memberships, averaged over random batches of 1,000 points."""
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(batches):
        index = torch.randperm(n, generator=generator)[:batch]
        with torch.no_grad():
            loss, _, _ = ncut_loss(memberships(index), prepared.batch(index), gamma=100.0)
        values.append(loss.item())
    return float(np.mean(values))


def partition_table() -> list[dict]:
    """NeuNcut's loss of hard partitions: the true one, and straight cuts through the centre (the best of 36
    directions), under each kernel, on 10,000 points: which one the mini-batch loss itself prefers."""
    rows = []
    for shape in SHAPES:
        data = load_dataset(shape, n=10_000, random_state=0)
        X = torch.from_numpy(data.X.astype(np.float32))
        centred = data.X - np.median(data.X, axis=0)
        for name, kernel in KERNELS.items():
            prepared = prepare_affinity(kernel, X, device="cpu", random_state=0)

            def hard(labels):
                one_hot = torch.nn.functional.one_hot(torch.as_tensor(labels), 2).float()
                return lambda index: one_hot[index]

            truth = batch_losses(prepared, hard(data.y), len(X), 0)
            cuts = []
            for theta in np.linspace(0, np.pi, 36, endpoint=False):
                labels = (centred @ np.array([np.cos(theta), np.sin(theta)]) > 0).astype(np.int64)
                cuts.append((batch_losses(prepared, hard(labels), len(X), 0), accuracy(data.y, labels)))
            best, acc = min(cuts)
            rows.append({"shape": shape, "kernel": name, "loss_truth": truth, "loss_best_straight_cut": best,
                         "straight_cut_acc": acc, "loss_prefers": "truth" if truth < best else "straight cut"})
            print(json.dumps(rows[-1]), flush=True)
    return rows


KERNELS = {"kNN s=10, median sigma": {"n_neighbors": 10, "sigma": "median"},
           "dense, sigma=0.1": {"n_neighbors": None, "sigma": 0.1}}


def training_table(seeds: tuple[int, ...]) -> list[dict]:
    rows = []
    for shape in SHAPES:
        data = load_dataset(shape, n=10_000, random_state=0)
        X = torch.from_numpy(data.X.astype(np.float32))
        for name, kernel in KERNELS.items():
            for seed in seeds:
                for warm in (False, True):
                    started = time.perf_counter()
                    result = train(X, data.y, warm=warm, affinity=kernel, seed=seed)
                    rows.append({"shape": shape, "kernel": name, "seed": seed,
                                 "start": "true partition" if warm else "standard initialisation", **result,
                                 "seconds": time.perf_counter() - started})
                    print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()}", flush=True)
    results = {"objective": objective_table(False) + objective_table(True), "partitions": partition_table(),
               "training": training_table(tuple(args.seeds))}
    print("\nDiscrete Ncut, dense heat kernel, 2,000 points:")
    print("| shape | rows L2-normalised | sigma | Ncut true partition | Ncut best straight cut | its ACC | "
          "objective prefers |")
    print("| :--- | :--- | ---: | ---: | ---: | ---: | :--- |")
    for r in results["objective"]:
        print(f"| {r['shape']} | {'yes' if r['normalised'] else 'no'} | {r['sigma']:g} | {r['ncut_truth']:.4f} | "
              f"{r['ncut_best_straight_cut']:.4f} | {r['straight_cut_acc']:.3f} | {r['objective_prefers']} |")
    print("\nNeuNcut's mini-batch loss (gamma 100, batches of 1,000 of 10,000 points) of hard partitions:")
    print("| shape | kernel | loss, true partition | loss, best straight cut | its ACC | the loss prefers |")
    print("| :--- | :--- | ---: | ---: | ---: | :--- |")
    for r in results["partitions"]:
        print(f"| {r['shape']} | {r['kernel']} | {r['loss_truth']:.4f} | {r['loss_best_straight_cut']:.4f} | "
              f"{r['straight_cut_acc']:.3f} | {r['loss_prefers']} |")
    print("\nNeuNcut training on 10,000 points (gamma 100, lr 5e-3, 100 epochs of 1,000):")
    print("| shape | kernel | seed | start | ACC at start | loss at start | ACC after training | final loss | "
          "lowest loss |")
    print("| :--- | :--- | ---: | :--- | ---: | ---: | ---: | ---: | ---: |")
    for r in results["training"]:
        print(f"| {r['shape']} | {r['kernel']} | {r['seed']} | {r['start']} | {r['start_acc']:.3f} | "
              f"{r['start_loss']:.4f} | {r['acc']:.3f} | {r['final_loss']:.4f} | {r['lowest_loss']:.4f} |")
    print(f"\nload average at the end {os.getloadavg()}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
