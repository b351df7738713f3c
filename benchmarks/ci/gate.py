"""The CI accuracy gate: run a fixed study and fail if any cell's metrics differ from the checked-in baseline.

Seeded cells repeat exactly for a fixed thread count (on CPU the network methods' results change with
it), so the study runs with the thread count stored beside the baseline, and any change of any metric
of any cell fails the gate: a change that is meant must come with an updated baseline in the same
commit, whose message says why. Timings are printed (tracked), never gated: CI machines are shared.

    python benchmarks/ci/gate.py              # check; exit 1 on any difference, 2 on a missing baseline
    python benchmarks/ci/gate.py --update     # re-run and rewrite benchmarks/ci/baseline.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "baseline.json"
STUDY = "ci_gate"
METRICS = ("acc", "nmi", "ari", "nca")
TOLERANCE = 1e-12  # the metrics are ratios of label counts: a real change moves them by 1/n


def run(study: str, threads: int, out: Path):
    """The study's records, run here with ``threads`` threads per cell."""
    from cutbench.runner import InlineExecutor, run_study
    from cutbench.store import ResultStore
    from cutbench.study import load_study

    store = ResultStore(out)
    run_study(load_study(study), store, executor=InlineExecutor(threads=threads), progress=lambda line: None)
    return store.to_frame()


def cells_of(frame) -> dict:
    from cutbench.reports import configuration_labels

    labels = configuration_labels(frame)
    return {row.config_key: {"label": f"{row.dataset} · {labels[index]} · seed {row.seed}", "status": row.status,
                             **{name: None if row.status != "ok" else float(getattr(row, name)) for name in METRICS},
                             "fit_s": None if row.status != "ok" else float(row.fit_s)}
            for index, row in frame.iterrows()}


def differences(baseline: dict, cells: dict) -> list[str]:
    """One line per cell whose status or metrics differ from the baseline (missing and new cells too)."""
    lines = []
    for key, old in baseline["cells"].items():
        new = cells.get(key)
        if new is None:
            lines.append(f"{old['label']}: in the baseline, not run now")
            continue
        if new["status"] != old["status"]:
            lines.append(f"{old['label']}: status {old['status']} -> {new['status']}")
            continue
        changed = [f"{name} {old[name]:.6f} -> {new[name]:.6f}" for name in METRICS
                   if old[name] is not None and abs(new[name] - old[name]) > TOLERANCE]
        if changed:
            lines.append(f"{old['label']}: {', '.join(changed)}")
    lines += [f"{cell['label']}: new, not in the baseline" for key, cell in cells.items()
              if key not in baseline["cells"]]
    return lines


def commit() -> str | None:
    head = subprocess.run(["git", "-C", str(HERE), "rev-parse", "HEAD"], capture_output=True, text=True)
    return head.stdout.strip() or None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="re-run the study and rewrite the baseline")
    parser.add_argument("--baseline", type=Path, default=BASELINE, help=f"default: {BASELINE}")
    parser.add_argument("--study", default=STUDY, help=f"study file or built-in name (default: {STUDY})")
    parser.add_argument("--threads", type=int, default=1, help="threads per cell when updating (default: 1)")
    args = parser.parse_args(argv)
    import torch

    if not args.update and not args.baseline.is_file():
        print(f"gate: no baseline at {args.baseline}. Create it with `python benchmarks/ci/gate.py --update` "
              "(it runs the gate study and writes the file), check the numbers, and commit it.", file=sys.stderr)
        return 2
    baseline = None if args.update else json.loads(args.baseline.read_text())
    threads = args.threads if args.update else baseline["threads"]
    with tempfile.TemporaryDirectory() as folder:
        cells = cells_of(run(args.study, threads, Path(folder)))
    for cell in sorted(cells.values(), key=lambda cell: cell["label"]):  # times are tracked, not gated
        fit = "" if cell["fit_s"] is None else f"  fit {cell['fit_s']:.3f} s"
        acc = "" if cell["acc"] is None else f"acc {cell['acc']:.4f}"
        print(f"{cell['label']}: {cell['status']} {acc}{fit}")
    if args.update:
        args.baseline.write_text(json.dumps({"study": args.study, "threads": threads, "torch": torch.__version__,
                                             "commit": commit(), "cells": cells}, indent=1, sort_keys=True) + "\n")
        print(f"gate: wrote {args.baseline} ({len(cells)} cells, {threads} thread(s)); commit it with the reason.")
        return 0
    found = differences(baseline, cells)
    if found:
        print(f"gate: {len(found)} cell(s) differ from {args.baseline} (made at commit {baseline.get('commit')}, "
              f"{threads} thread(s), torch {baseline.get('torch')}):", *found, sep="\n  ")
        print("gate: if the change is meant, run `python benchmarks/ci/gate.py --update` and commit the new "
              "baseline in the same commit, saying why in its message.")
        return 1
    print(f"gate: all {len(cells)} cells equal the baseline ({threads} thread(s)).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
