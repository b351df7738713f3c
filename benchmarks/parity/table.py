"""The parity table: each method beside its released code on the same inputs and budget, seed by seed.

Input: a JSON list of results, one per (method, dataset): ``{"method", "dataset", "budget", "reference": {seed:
acc}, "ours": {seed: acc}}``. Output, per row: the reference's mean ± std, ours, Δ = ours − reference, Welch's t
test (the two codes draw different random numbers from the same seed, so seeds are not paired), and whether Δ is
within seed noise (p ≥ 0.05; with one seed a side it cannot be told).

Usage: python benchmarks/parity/table.py RESULTS.json [MORE.json ...]   (one table of all their rows;
benchmarks/parity/results/ holds the measured ones)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cutbench import stats


def parity_rows(results: list[dict]) -> list[dict]:
    """One row per result, in the given order (see the module docstring)."""
    rows = []
    for result in results:
        reference = {("reference", seed): float(v) for seed, v in result["reference"].items()}
        ours = {("ours", seed): float(v) for seed, v in result["ours"].items()}
        comparison = stats.compare_samples(reference, ours)  # distinct keys: independent samples (Welch)
        theirs_estimate, ours_estimate = stats.estimate(reference.values()), stats.estimate(ours.values())
        if not comparison.judged:
            within = f"cannot tell ({comparison.note})"
        else:
            within = "yes" if comparison.p_value >= stats.ALPHA else "no"
        rows.append({"method": result["method"], "dataset": result["dataset"], "budget": result.get("budget", ""),
                     "reference": theirs_estimate, "ours": ours_estimate,
                     "delta": ours_estimate.mean - theirs_estimate.mean, "test": comparison, "within_noise": within})
    return rows


def _mean_std(estimate) -> str:
    return f"{estimate.mean:.3f} ± {estimate.std:.3f} ({estimate.n})" if estimate.n > 1 else f"{estimate.mean:.3f} (1)"


def to_markdown(rows: list[dict]) -> str:
    lines = ["| method | dataset | budget | reference ACC | cutbench ACC | Δ | Welch p | within seed noise |",
             "| :--- | :--- | :--- | ---: | ---: | ---: | ---: | :--- |"]
    for row in rows:
        test = row["test"]
        p = stats.p_text(test.p_value) if test.judged else "—"
        lines.append(f"| {row['method']} | {row['dataset']} | {row['budget']} | {_mean_std(row['reference'])} | "
                     f"{_mean_std(row['ours'])} | {row['delta']:+.3f} | {p} | {row['within_noise']} |")
    return "\n".join(lines) + "\n"


def shapes(n: int) -> tuple[str, ...]:
    """The synthetic problems of a parity run: two moons and double rings, none with ``--n 0``."""
    return ("two_moons", "double_rings") if n > 0 else ()


def parity_arguments(description: str, checkout: str | None = None) -> argparse.ArgumentParser:
    """The options every parity script takes: the checkout (when it runs one), points, seeds, MNIST, output."""
    parser = argparse.ArgumentParser(description=description)
    if checkout:
        parser.add_argument("checkout", type=Path, help=f"a checkout of {checkout}")
    parser.add_argument("--n", type=int, default=2000,
                        help="points of the two-moons and double-rings problems (0: leave them out)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--mnist", type=int, help="also N MNIST images, e.g. 2000 (MNIST under $CUTBENCH_DATA)")
    parser.add_argument("--out", type=Path, help="also write the results (JSON) here")
    return parser


def measure(method: str, dataset: str, budget: str, seeds, reference: Callable[[int], float],
            ours: Callable[[int], float]) -> dict:
    """One result of the table's input: ``reference(seed)`` and ``ours(seed)`` (ACCs) for every seed, each
    timed and printed to stderr as it comes."""
    result = {"method": method, "dataset": dataset, "budget": budget, "reference": {}, "ours": {}}
    for seed in seeds:
        started = time.perf_counter()
        result["reference"][seed] = reference(seed)
        middle = time.perf_counter()
        result["ours"][seed] = ours(seed)
        print(f"{dataset} seed {seed}: reference {result['reference'][seed]:.3f} ({middle - started:.1f} s), "
              f"cutbench {result['ours'][seed]:.3f} ({time.perf_counter() - middle:.1f} s)", file=sys.stderr)
    return result


def finish(results: list[dict], out: Path | None) -> int:
    """Write the results (JSON) to ``out`` if given and print the parity table."""
    if out:
        out.write_text(json.dumps(results, indent=1) + "\n")
    print(to_markdown(parity_rows(results)), end="")
    return 0


def main(argv: list[str]) -> int:
    results = [result for path in argv[1:] for result in json.loads(Path(path).read_text())]
    print(to_markdown(parity_rows(results)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
