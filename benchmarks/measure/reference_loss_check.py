"""Check cutbench's NeuNcut batch affinity and loss against the released code's, imported from a checkout.

The reference (github.com/hewei98/NeuNcut) is not vendored: its ``utils.py`` and ``loss.py`` are imported
from the checkout you give. On batches of 1,000 rows of cutbench's MNIST ScatNet features (and of random
data), with softmax memberships of random logits, it compares

- the batch affinity: the reference's ``full_affinity(p_normalize(X_B), sigma=3)`` against cutbench's
  ``"neuncut"`` preset (dense heat kernel, sigma 3, rows L2-normalised, self-loops);
- the loss ``spectral + gamma / 2 * orth`` (gamma 100) and its gradient with respect to the logits.

Usage: CUTBENCH_DATA=DIR PYTHONPATH=DIR_WITH_MUNKRES python benchmarks/measure/reference_loss_check.py CHECKOUT
(the reference's utils.py imports munkres: ``pip install munkres``). Prints the largest differences.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

from cutbench.affinity import prepare_affinity
from cutbench.datasets import compute_features, load_dataset, resolve_features
from cutbench.methods.neuncut import ncut_loss


def reference_module(checkout: Path, name: str):
    spec = importlib.util.spec_from_file_location(f"reference_{name}", checkout / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compare(X: torch.Tensor, utils, loss, seed: int, gamma: float = 100.0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(X), generator=generator)[:1000]
    logits = torch.randn(len(index), 10, generator=generator, dtype=torch.float64)

    W_reference = utils.full_affinity(utils.p_normalize(X[index]), sigma=3.0)
    W_ours = prepare_affinity("neuncut", X, device="cpu").batch(index)

    def value_and_gradient(W, loss_of):
        free = logits.clone().requires_grad_()
        value = loss_of(torch.softmax(free, dim=1), W)
        value.backward()
        return value.item(), free.grad

    def reference_loss(P, W):
        spectral, orth = loss.ncut_loss(W, P)
        return spectral + 0.5 * gamma * orth

    ref_value, ref_grad = value_and_gradient(W_reference, reference_loss)
    our_value, our_grad = value_and_gradient(W_ours, lambda P, W: ncut_loss(P, W, gamma=gamma)[0])
    return {"affinity_max_abs_diff": float((W_reference - W_ours).abs().max()),
            "loss_reference": ref_value, "loss_cutbench": our_value,
            "loss_rel_diff": abs(ref_value - our_value) / abs(ref_value),
            "grad_rel_diff": float((ref_grad - our_grad).norm() / ref_grad.norm())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="a checkout of github.com/hewei98/NeuNcut")
    args = parser.parse_args()
    torch.Tensor.cuda = lambda self, *a, **k: self  # the reference's loss calls .cuda() on an identity matrix
    utils, loss = reference_module(args.checkout, "utils"), reference_module(args.checkout, "loss")
    data = load_dataset("mnist")
    scatnet = compute_features(data, resolve_features("scatnet", "mnist"), device="cpu").X
    inputs = {"MNIST ScatNet (float64)": torch.from_numpy(np.asarray(scatnet, dtype=np.float64)),
              "random 500-d (float64)": torch.randn(20000, 500, dtype=torch.float64,
                                                    generator=torch.Generator().manual_seed(0))}
    print("| input | seed | affinity max abs diff | loss (reference) | loss (cutbench) | loss rel diff | "
          "gradient rel diff |")
    print("| :--- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, X in inputs.items():
        for seed in range(3):
            r = compare(X, utils, loss, seed)
            print(f"| {name} | {seed} | {r['affinity_max_abs_diff']:.1e} | {r['loss_reference']:.6f} | "
                  f"{r['loss_cutbench']:.6f} | {r['loss_rel_diff']:.1e} | {r['grad_rel_diff']:.1e} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
