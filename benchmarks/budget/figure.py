"""Draw a budget study and answer, per method, whether its gap to the paper is the budget.

Reads a results folder written by benchmarks/budget/ladder.py (its records and ``ladder.json``) and writes

- ``budget.png`` / ``budget.pdf``: ACC (top row) and the Ncut of the labels on the study's scoring graph (the
  label-free objective every method shares, bottom row) against fit time and against optimiser steps, one
  line per method through its rungs (mean over seeds, bars one standard deviation; log axes), the paper's
  ACC dashed in the method's colour;
- ``budget.md``: one row per dataset, method and rung (ACC, Ncut, fit time, steps, converged cells) and the
  answer per method, by the rule of :func:`answer`, with the ladder's reason for stopping.

Usage: python benchmarks/budget/figure.py RESULTS_FOLDER
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from cutbench.methods.registry import get_method
from cutbench.paper import read_published
from cutbench.store import ResultStore

PAPER_NAMES = {"neuncut": "NeuNcut", "neurcut": "NeuRcut", "spectralnet": "SpectralNet", "specnet2": "SpecNet2",
               "cnc": "CNC"}
DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "F-MNIST"}
CLOSE = 0.02
"""A gap to the paper at most this large (ACC) is no gap."""
PAPER_STEPS = {
    "neuncut": (2_000, "Table 1: 100 epochs of batches of 1,000 on 20,000 points"),
    "neurcut": (2_000, "as NeuNcut (§4.11)"),
    "spectralnet": (40_000, "released TF MNIST: 400 epochs x 100 steps of 1,024"),
    "cnc": (100_000, "released code: at most 1,000 epochs x 100 steps"),
}
"""The paper's (or released code's) training budget in optimiser steps of the network the study trains.
SpecNet2 has none here: its reference MNIST runs take neighbour-variant steps of 2-8 points, another step
than the study's local variant, so its cost is not extrapolated from this study."""


def rung_frame(folder: Path) -> pd.DataFrame:
    """One row per ok cell: dataset, method, rung, seed, ACC, Ncut, fit seconds, steps, converged."""
    rows = []
    for record in ResultStore(folder).records():
        if record.get("status") != "ok":
            continue
        config = record["config"]
        params = {**get_method(config["method"]["name"])().get_params(), **config["method"]["params"]}
        epochs = int(params["epochs"])
        per_epoch = params.get("steps_per_epoch") or record["n_fit"] // int(params["batch_size"])
        rows.append({"dataset": config["dataset"]["name"], "method": config["method"]["name"],
                     "rung": config.get("part"), "seed": config["seed"], "acc": record["metrics"]["acc"],
                     "ncut": record["metrics"]["ncut_value"], "fit_s": record["timings"]["fit"]["seconds"],
                     "steps": epochs * int(per_epoch),
                     "converged": (record.get("convergence") or {}).get("verdict") == "converged"})
    frame = pd.DataFrame(rows)  # the store's order is arbitrary; tables read by dataset, then method
    return frame.sort_values(["dataset", "method", "seed"], kind="stable", ignore_index=True) if rows else frame


def published_acc(method: str, dataset: str) -> tuple[float | None, str]:
    """The paper's ACC for the method on the dataset: setting IV of Table 2 where it has one, else Table 8."""
    name, data = PAPER_NAMES.get(method), DATASET_NAMES.get(dataset)
    if name is None or data is None:
        return None, "no published ACC"
    table2 = read_published("neuncut_table2.csv")
    row = table2[(table2.setting == "IV") & (table2.method == name) & (table2.dataset == data)]
    if len(row) and pd.notna(row.ACC.iloc[0]):
        return float(row.ACC.iloc[0]), "Table 2, setting IV"
    table8 = read_published("neuncut_table8.csv")
    row = table8[(table8.method == name) & (table8.dataset == data)]
    if len(row) and pd.notna(row.ACC.iloc[0]):
        return float(row.ACC.iloc[0]), "Table 8 (the method's own best setting)"
    return None, "no published ACC"


def answer(by_rung: pd.DataFrame, paper: float | None, stop_reason: str, paper_steps: int | None = None) -> str:
    """Is the gap to the paper the budget? Read from the rungs run (ACC is read here only to answer).

    ``by_rung``: mean ``acc`` and ``steps`` per rung, lowest first; ``paper_steps``: the paper's training
    budget in the same optimiser steps (:data:`PAPER_STEPS`), if known.

    * not answered yet: the ladder has not stopped the method;
    * no gap: the highest rung's mean ACC is within :data:`CLOSE` of the paper;
    * not the budget: the ladder stopped on a plateau of the label-free objective and a gap remains; or a rung
      already trained for at least the paper's own number of steps and a gap remains at the highest rung
      (more steps than the paper took cannot be what it needed);
    * cannot tell: the ladder stopped at its cap or its last rung below the paper's budget; the share of the
      gap at the ``x1`` rung that the higher rungs closed is given.
    """
    if paper is None:
        return "no published ACC to compare"
    if not stop_reason.startswith("stopped"):
        return f"not answered yet: still climbing after {by_rung.index[-1]} (run the ladder again to go on)"
    means = by_rung["acc"]
    top = float(means.iloc[-1])
    gap = paper - top
    if gap <= CLOSE:
        return f"no gap: {top:.3f} at {by_rung.index[-1]} against {paper:.3f}"
    if "plateau" in stop_reason:
        return f"not the budget: the objective plateaued by {by_rung.index[-1]} with ACC {top:.3f}, {gap:.3f} below"
    if paper_steps is not None and "steps" in by_rung and by_rung["steps"].max() >= paper_steps:
        reached = by_rung.index[by_rung["steps"] >= paper_steps][0]
        return (f"not the budget: {reached} already trains the paper's {paper_steps:,} steps (ACC "
                f"{means[reached]:.3f}); at {by_rung.index[-1]}, {by_rung['steps'].iloc[-1] / paper_steps:.0f}x "
                f"them, ACC {top:.3f}, {gap:.3f} below")
    if "x1" in by_rung.index and by_rung.index[-1] != "x1":
        start = float(means.loc["x1"])
        closed = (top - start) / (paper - start) if paper > start else float("nan")
        return (f"cannot tell: still moving at {by_rung.index[-1]} ({stop_reason.removeprefix('stopped: ')}); "
                f"the rungs above x1 closed {closed:.0%} of its gap ({start:.3f} -> {top:.3f}, paper {paper:.3f})")
    return f"cannot tell: stopped at {by_rung.index[-1]} ({stop_reason.removeprefix('stopped: ')}), {gap:.3f} below"


def draw(frame: pd.DataFrame, out: Path, rung_order: list[str]) -> list[Path]:
    datasets = list(dict.fromkeys(frame.dataset))
    methods = list(dict.fromkeys(frame.method))
    colours = dict(zip(methods, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    figure, axes = plt.subplots(2, 2 * len(datasets), figsize=(4.2 * 2 * len(datasets), 7), squeeze=False)
    for column, (dataset, x) in enumerate((d, x) for d in datasets for x in ("fit_s", "steps")):
        for method in methods:
            cells = frame[(frame.dataset == dataset) & (frame.method == method)]
            if cells.empty:
                continue
            numbers = cells[["rung", "acc", "ncut", "fit_s", "steps"]]
            grouped = numbers.groupby("rung").agg(["mean", "std"]).reindex([r for r in rung_order if r in set(cells.rung)])
            for row, quantity in enumerate(("acc", "ncut")):
                axis = axes[row, column]
                axis.errorbar(grouped[x]["mean"], grouped[quantity]["mean"], yerr=grouped[quantity]["std"],
                              marker="o", capsize=2, color=colours[method], label=method)
            paper, _ = published_acc(method, dataset)
            if paper is not None:
                axes[0, column].axhline(paper, color=colours[method], linestyle="--", linewidth=0.8)
        for row, quantity in enumerate(("ACC (dashed: paper)", "Ncut on the scoring graph (label-free)")):
            axis = axes[row, column]
            axis.set_xscale("log")
            axis.set_xlabel("fit time [s], 1 thread" if x == "fit_s" else "optimiser steps")
            axis.set_ylabel(quantity)
            axis.set_title(DATASET_NAMES.get(dataset, dataset))
            axis.grid(alpha=0.3)
    axes[1, 0].set_yscale("log")
    for axis in axes[1, 1:]:
        axis.set_yscale("log")
    axes[0, 0].legend(fontsize=8)
    figure.tight_layout()
    written = []
    for suffix in ("png", "pdf"):
        path = out / f"budget.{suffix}"
        figure.savefig(path, dpi=130)
        written.append(path)
    plt.close(figure)
    return written


def report(frame: pd.DataFrame, ladder: dict, rung_order: list[str]) -> str:
    lines = ["| dataset | method | rung | steps | fit [s] | ACC | Ncut | converged |",
             "| :--- | :--- | :--- | ---: | ---: | ---: | ---: | ---: |"]
    answers = ["", "| dataset | method | paper ACC (source) | highest rung | why the ladder stopped | answer |",
               "| :--- | :--- | ---: | :--- | :--- | :--- |"]
    reasons = {(d["dataset"], d["method"]): d["reason"] for d in ladder.get("decisions", [])}
    for (dataset, method), cells in frame.groupby(["dataset", "method"], sort=False):
        rungs = [r for r in rung_order if r in set(cells.rung)]
        by_rung = cells.groupby("rung").mean(numeric_only=True).reindex(rungs)
        spread = cells.groupby("rung").std(numeric_only=True).reindex(rungs)
        for rung in rungs:
            own = cells[cells.rung == rung]
            lines.append(f"| {dataset} | {method} | {rung} | {by_rung.steps[rung]:.0f} | {by_rung.fit_s[rung]:.1f} | "
                         f"{by_rung.acc[rung]:.3f} ± {spread.acc[rung]:.3f} | {by_rung.ncut[rung]:.4f} | "
                         f"{int(own.converged.sum())}/{len(own)} |")
        paper, source = published_acc(method, dataset)
        reason = reasons.get((dataset, method), "the ladder has not decided yet (run it again to go on)")
        shown = f"{paper:.3f} ({source})" if paper is not None else source
        paper_steps = PAPER_STEPS.get(method, (None, ""))[0]
        answers.append(f"| {dataset} | {method} | {shown} | {rungs[-1]} | {reason} | "
                       f"{answer(by_rung, paper, reason, paper_steps)} |")
    costs = ["", ("| dataset | method | s per step (highest rung, median of seeds) | paper budget | "
                  "extrapolated fit per cell | 3 seeds |"), "| :--- | :--- | ---: | :--- | ---: | ---: |"]
    for (dataset, method), cells in frame.groupby(["dataset", "method"], sort=False):
        if method not in PAPER_STEPS:
            continue
        top = [r for r in rung_order if r in set(cells.rung)][-1]
        own = cells[cells.rung == top]
        per_step = float((own.fit_s / own.steps).median())
        steps, source = PAPER_STEPS[method]
        costs.append(f"| {dataset} | {method} | {per_step:.4f} ({top}) | {steps:,} steps ({source}) | "
                     f"{_duration(per_step * steps)} | {_duration(3 * per_step * steps)} |")
    return "\n".join(lines + answers + costs) + "\n"


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def main(argv: list[str]) -> int:
    folder = Path(argv[1])
    ladder_path = folder / "ladder.json"
    ladder = json.loads(ladder_path.read_text()) if ladder_path.exists() else {}
    frame = rung_frame(folder)
    if frame.empty:
        print(f"{folder}: no ok cell yet", file=sys.stderr)
        return 1
    rung_order = list(dict.fromkeys(d["rung"] for d in ladder.get("decisions", []))) or sorted(set(frame.rung))
    rung_order += [r for r in sorted(set(frame.rung)) if r not in rung_order]
    written = draw(frame, folder, rung_order)
    (folder / "budget.md").write_text(report(frame, ladder, rung_order))
    print("wrote " + ", ".join(str(p) for p in [*written, folder / "budget.md"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
