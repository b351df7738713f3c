"""The CI accuracy gate: run a fixed study and fail if a cell's metrics moved beyond what another CPU explains.

The ``ci_gate`` study (every method on digits, double rings and two moons) runs over the seeds and with
the thread count stored in the baseline. Two kinds of cell are judged differently, because they differ
in what is reproducible:

* **exact cells** (k-means and Ncut: float64 arithmetic whose labels, and so whose metrics, are the same on
  every x86-64 CPU: checked for every seed in every kernel variant below, and between an AMD EPYC and an
  Intel Xeon): every seed's metrics must equal the baseline's.
* **network cells** (the float32 networks): a CPU's kernels (AVX-512 or AVX2 matrix products in MKL,
  torch's vectorised kernels) change the last bits of sums, and a training run can then take another
  path, so single seeds can move by 0.1 ACC on another machine with no change of code. Their mean over the
  seeds must stay within a band of the baseline's mean, per metric: :func:`cutbench.stats.cross_machine_band`
  of what ``--update`` measured.

``--update`` measures that variation: it runs the study once per *kernel variant* (:data:`VARIANTS`), each
in a fresh process whose environment makes torch and MKL take the code paths another CPU would, writes
every cell's metrics per seed and variant to ``band_measurements.json`` and the baseline (this machine's
own results, ``native``, with each network cell's band) to ``baseline.json``. A change that is meant comes
with both files in the same commit, whose message says why. Timings are printed, never gated.

    python benchmarks/ci/gate.py              # check; exit 1 on a difference, 2 on a missing baseline
    python benchmarks/ci/gate.py --update     # measure the variants (about 10 min) and rewrite the baseline
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "baseline.json"
MEASUREMENTS = "band_measurements.json"
"""The measurements behind a baseline, written beside it."""
STUDY = "ci_gate"
SEEDS = (0, 1, 2, 3, 4)
METRICS = ("acc", "nmi", "ari", "nca")
EXACT_METHODS = ("kmeans", "ncut")
EXACT_TOLERANCE = 1e-12  # the metrics are ratios of label counts: a real change moves them by about 1/n
VARIANTS = {
    # this CPU's own choice
    "native": {},
    # a CPU with AVX2 and no AVX-512 (e.g. AMD EPYC Zen 2/3, older Intel): torch's AVX2 kernels, MKL's AVX2 paths
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    # MKL's AVX2 paths under torch's AVX-512 kernels (MKL dispatches by vendor as well as by instruction set)
    "mkl-avx2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    # the least vectorised paths: torch's default kernels, MKL's bitwise-compatible mode
    "compatible": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"},
}


def run(study: str, threads: int, out: Path, seeds=None):
    """The study's records, run here with ``threads`` threads per cell (and ``seeds`` instead of the study's)."""
    from cutbench.runner import InlineExecutor, run_study
    from cutbench.store import ResultStore
    from cutbench.study import load_study

    store = ResultStore(out)
    overrides = [] if seeds is None else [f"seeds={list(seeds)}"]
    run_study(load_study(study, overrides), store, executor=InlineExecutor(threads=threads), progress=lambda line: None)
    return store.to_frame()


def cells_of(frame) -> dict:
    """Per configuration: its label, method and each seed's status, metrics and fit time."""
    from cutbench.reports import configuration_labels

    labels = configuration_labels(frame)
    cells: dict = {}
    for index, row in frame.iterrows():
        cell = cells.setdefault(row.group_key, {"label": f"{row.dataset} · {labels[index]}", "method": row.method,
                                                "seeds": {}})
        ok = row.status == "ok"
        cell["seeds"][str(int(row.seed))] = {"status": row.status, "fit_s": float(row.fit_s) if ok else None,
                                             **{m: float(getattr(row, m)) if ok else None for m in METRICS}}
    return cells


# ----------------------------------------------------------------------------------------------- update


def _worker(study: str, seeds: list[int], threads: int, out: Path) -> None:
    """Run the study here (the variant's environment already set) and write its cells."""
    import torch

    frame = run(study, threads, Path(tempfile.mkdtemp()), seeds=seeds)
    out.write_text(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(), "cells": cells_of(frame)}))


def measure(study: str, seeds: list[int], threads: int, variants=tuple(VARIANTS)) -> dict:
    """Every cell's metrics per seed, once per kernel variant, each in a fresh process."""
    results = {}
    for name in variants:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "cells.json"
            subprocess.run([sys.executable, __file__, "--worker", str(out), "--study", study,
                            "--seeds", ",".join(map(str, seeds)), "--threads", str(threads)],
                           env={**os.environ, **VARIANTS[name]}, check=True)
            results[name] = {"env": VARIANTS[name], **json.loads(out.read_text())}
        print(f"gate: variant {name}: {time.perf_counter() - started:.0f} s (torch kernels "
              f"{results[name]['capability']})", file=sys.stderr)
    return results


def baseline_from(measured: dict, seeds: list[int]) -> dict:
    """The baseline's cells: the native variant's results, and each network cell's band per metric."""
    from cutbench import stats

    cells = {}
    for key, native in measured["native"]["cells"].items():
        exact = native["method"] in EXACT_METHODS
        cell = {**native, "exact": exact}
        if exact:
            moved = [name for name, variant in measured.items()
                     if any(variant["cells"][key]["seeds"][s].get(m) != native["seeds"][s].get(m)
                            for s in native["seeds"] for m in METRICS)]
            if moved:
                raise SystemExit(f"gate: {native['label']} is declared exact (EXACT_METHODS) but moved in variant(s) "
                                 f"{', '.join(moved)}: fix the cause or judge it with a band.")
        elif all(seed["status"] == "ok" for seed in native["seeds"].values()):
            cell["mean"], cell["band"] = {}, {}
            for metric in METRICS:
                per_variant = [stats.estimate([v["cells"][key]["seeds"][str(s)][metric] for s in seeds]).mean
                               for v in measured.values()]
                here = stats.estimate([native["seeds"][str(s)][metric] for s in seeds])
                cell["mean"][metric] = here.mean
                cell["band"][metric] = stats.cross_machine_band(per_variant, here.std, len(seeds))
        cells[key] = cell
    return cells


def update(args) -> int:
    import torch

    from cutbench import stats
    from cutbench.provenance import cpu_model, git_state

    seeds = [int(s) for s in args.seeds.split(",")]
    made = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS)) or (["native (required)"] if "native" not in variants else [])
    if unknown:
        print(f"gate: unknown or missing variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}.",
              file=sys.stderr)
        return 2
    measured = measure(args.study, seeds, args.threads, variants)
    machine = {"cpu": cpu_model(), "torch": torch.__version__, "threads": args.threads,
               "load_average": [round(x, 2) for x in os.getloadavg()]}
    measurements = args.baseline.with_name(MEASUREMENTS)
    measurements.write_text(json.dumps({"made": made, "study": args.study, "seeds": seeds, **machine,
                                        "variants": measured}, indent=1, sort_keys=True) + "\n")
    cells = baseline_from(measured, seeds)
    rule = (f"exact cells ({', '.join(EXACT_METHODS)}): every seed's metrics equal; network cells: the mean over the "
            f"seeds within stats.cross_machine_band (factor {stats.BAND_FACTOR:g}) of the baseline's")
    args.baseline.write_text(json.dumps({"study": args.study, "seeds": seeds, "commit": git_state()["commit"],
                                         "made": made, "rule": rule, "variants": list(measured), **machine,
                                         "cells": cells}, indent=1, sort_keys=True) + "\n")
    print(f"gate: wrote {args.baseline} and {measurements} ({len(cells)} configurations x {len(seeds)} seeds, "
          f"{len(measured)} kernel variants, {args.threads} thread(s)); commit both with the reason.")
    return 0


# ------------------------------------------------------------------------------------------------ check


def differences(baseline: dict, cells: dict) -> tuple[list[str], list[str]]:
    """``(failures, network lines)``: one failure per cell that moved beyond its rule (and per missing or new
    cell); one line per network metric saying where it is in its band."""
    from cutbench import stats

    failures, lines = [], []
    for key, old in baseline["cells"].items():
        new = cells.get(key)
        if new is None:
            failures.append(f"{old['label']}: in the baseline, not run now")
            continue
        statuses = {s: (old["seeds"][s]["status"], new["seeds"].get(s, {}).get("status")) for s in old["seeds"]}
        changed = [f"seed {s} {was} -> {now}" for s, (was, now) in statuses.items() if was != now]
        if changed:
            failures.append(f"{old['label']}: status {', '.join(changed)}")
            continue
        if old["exact"]:
            moved = [f"seed {s} {m} {old['seeds'][s][m]:.6f} -> {new['seeds'][s][m]:.6f}" for s in old["seeds"]
                     for m in METRICS if old["seeds"][s][m] is not None
                     and abs(new["seeds"][s][m] - old["seeds"][s][m]) > EXACT_TOLERANCE]
            if moved:
                failures.append(f"{old['label']} (exact): {'; '.join(moved)}")
            continue
        if "mean" not in old:
            continue  # a network cell that failed in the baseline: its status is what is checked
        outside = []
        for metric in METRICS:
            now = stats.estimate([new["seeds"][s][metric] for s in old["seeds"]]).mean
            delta, band = now - old["mean"][metric], old["band"][metric]
            lines.append(f"{old['label']} {metric}: {old['mean'][metric]:.4f} -> {now:.4f} (Δ {delta:+.4f}, band "
                         f"±{band:.4f})")
            if abs(delta) > band + EXACT_TOLERANCE:
                outside.append(f"{metric} mean {old['mean'][metric]:.4f} -> {now:.4f} (Δ {delta:+.4f}, band ±{band:.4f})")
        if outside:
            failures.append(f"{old['label']}: {'; '.join(outside)}")
    failures += [f"{cell['label']}: new, not in the baseline" for key, cell in cells.items()
                 if key not in baseline["cells"]]
    return failures, lines


def check(args) -> int:
    from cutbench.provenance import cpu_model

    if not args.baseline.is_file():
        print(f"gate: no baseline at {args.baseline}. Create it with `python benchmarks/ci/gate.py --update` "
              "(it measures the study in every kernel variant and writes the file), check the numbers, and commit it.",
              file=sys.stderr)
        return 2
    baseline = json.loads(args.baseline.read_text())
    with tempfile.TemporaryDirectory() as folder:
        cells = cells_of(run(baseline["study"], baseline["threads"], Path(folder), seeds=baseline["seeds"]))
    for cell in sorted(cells.values(), key=lambda cell: cell["label"]):  # times are tracked, not gated
        accs = [s["acc"] for s in cell["seeds"].values() if s["acc"] is not None]
        fits = [s["fit_s"] for s in cell["seeds"].values() if s["fit_s"] is not None]
        print(f"{cell['label']}: {len(accs)}/{len(cell['seeds'])} ok"
              + (f", mean acc {sum(accs) / len(accs):.4f}, mean fit {sum(fits) / len(fits):.3f} s" if accs else ""))
    failures, lines = differences(baseline, cells)
    where = (f"baseline made at commit {str(baseline.get('commit'))[:10]} on {baseline.get('cpu')}; this run on "
             f"{cpu_model()}; {baseline['threads']} thread(s), seeds {', '.join(map(str, baseline['seeds']))}")
    if args.verbose:
        print("network cells, mean over the seeds against the baseline:", *lines, sep="\n  ")
    if failures:
        print(f"gate: {len(failures)} cell(s) moved beyond their rule ({where}):", *failures, sep="\n  ")
        print(f"gate: rule: {baseline['rule']}.\ngate: if the change is meant, run `python benchmarks/ci/gate.py "
              "--update` and commit the new baseline in the same commit, saying why in its message.")
        return 1
    exact = sum(cell["exact"] for cell in baseline["cells"].values())
    print(f"gate: all {len(cells)} configurations pass: {exact} exact ones equal the baseline on every seed, "
          f"{len(cells) - exact} network ones within their bands ({where}).")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="measure the kernel variants and rewrite the baseline")
    parser.add_argument("--baseline", type=Path, default=BASELINE, help=f"default: {BASELINE}")
    parser.add_argument("--study", default=STUDY, help=f"study file or built-in name, with --update (default: {STUDY})")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="seeds, with --update (default: 0-4)")
    parser.add_argument("--threads", type=int, default=1, help="threads per cell, with --update (default: 1)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"kernel variants measured by --update (default: all, {', '.join(VARIANTS)})")
    parser.add_argument("--verbose", action="store_true", help="print every network metric against its band")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.study, [int(s) for s in args.seeds.split(",")], args.threads, args.worker)
        return 0
    return update(args) if args.update else check(args)


if __name__ == "__main__":
    sys.exit(main())
