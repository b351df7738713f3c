"""The ``cutbench`` command: run studies, render reports, list what is available."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from cutbench import CutbenchError, stats

DEFAULT_STUDY = "quick"


def _at_least_one(text: str) -> int:
    """An argparse type: an integer >= 1 (a count of points, workers, threads or clusters)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1; got {value}")
    return value


def _yaml_option(text: str | None, option: str, example: str):
    """The value of a YAML command-line option (None when not given); invalid YAML is a one-line error."""
    import yaml

    if text is None:
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        reason = str(exc).splitlines()[0]
        raise CutbenchError(f"{option} {text!r} is not valid YAML ({reason}); e.g. {option} '{example}'.") from None


def _writable_folder(folder, option: str) -> Path:
    """``folder``, created if missing; a folder that cannot be created or written is a one-line error."""
    from cutbench.atomic import probe_writable

    out = Path(folder)
    try:
        probe_writable(out)
    except OSError as exc:
        raise CutbenchError(f"cannot write to {out} ({exc.strerror or exc}); give {option} a folder you can write "
                            "to.") from None
    return out


def _downloads(args) -> None:
    if args.no_download:
        from cutbench.datasets import allow_downloads

        allow_downloads(False)
        os.environ["CUTBENCH_DOWNLOAD"] = "0"  # worker processes of the pool and dask executors inherit it


def cmd_run(args) -> int:
    from cutbench.reports.render import render_report
    from cutbench.store import ResultStore
    from cutbench.study import load_study, select_cells

    _downloads(args)
    study = load_study(args.study, overrides=args.set, report=print)
    for refusal in study.refused:
        print(f"refused: {refusal}")
    cells = select_cells(study.cells, args.only) if args.only else study.cells
    if args.dry_run:
        for i, cell in enumerate(cells, 1):
            print(f"[{i}/{len(cells)}] {cell.label()}")
        print(f"{len(cells)} cells")
        return 0
    out = Path(args.out) if args.out else Path("results") / study.name
    args.stored_in = out
    counts = _execute(study, cells, out, args)
    written = render_report(ResultStore(out), out)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0 if counts["failed"] == 0 and counts["timeout"] == 0 else 1


def _execute(study, cells, out: Path, args) -> dict:
    """Run ``cells`` of ``study`` into ``out`` with the executor options of ``args``; print the counts."""
    from cutbench.executors import make_executor
    from cutbench.runner import run_study
    from cutbench.store import ResultStore

    options = {"threads": args.threads}
    if args.workers is not None:
        options["workers"] = args.workers
    if args.scheduler:
        if args.executor != "dask":
            raise CutbenchError("--scheduler is an option of --executor dask.")
        options["address"] = args.scheduler
    executor = make_executor(args.executor, **options)
    store = ResultStore(out)
    print(f"study {study.name!r}: {len(cells)} cells -> {out}")
    started = time.perf_counter()
    counts = run_study(study, store, executor=executor, cells=cells, retry_failed=args.retry_failed)
    wall = time.perf_counter() - started
    busy = f", {counts['busy']} computed by another process" if counts["busy"] else ""
    print(f"done in {wall:.1f} s: {counts['ran']} run ({counts['ok']} ok, {counts['failed']} failed, "
          f"{counts['timeout']} timeout, {counts['skipped']} skipped), {counts['stored']} already stored{busy}")
    counts["wall_seconds"] = wall
    return counts


def _existing_store(folder: str):
    from cutbench.store import ResultStore

    out = Path(folder)
    if not (out / "records").is_dir():
        raise CutbenchError(f"{out} holds no results (no records/ folder); run a study with --out {out} first.")
    return ResultStore(out)


def cmd_report(args) -> int:
    from cutbench.store import STAGES

    stages = [stage.strip() for stage in args.times.split(",") if stage.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown or not stages:
        raise CutbenchError(f"--times takes a comma-separated list of stages; unknown or empty: {unknown or stages}. "
                            f"Accepted stages: {', '.join(STAGES)}.")
    from cutbench.reports.render import coverage_line, render_report

    store = _existing_store(args.out)
    if store.to_frame().empty:
        found = [coverage_line(store.coverage()), store.problems_summary()]
        raise CutbenchError(f"{store.root} holds no usable records: nothing to report"
                            + "".join(f"; {line.rstrip('.')}" for line in found if line)
                            + f". Run the study with --out {store.root} first.")
    written = render_report(store, store.root, stages)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def cmd_compare(args) -> int:
    """Compare two results folders; exit 1 when a regression of a ``--fail-on`` kind is flagged."""
    from cutbench.reports.compare import flagged
    from cutbench.reports.render import render_comparison

    kinds = [kind.strip() for kind in args.fail_on.split(",") if kind.strip()]
    unknown = sorted(set(kinds) - {"accuracy", "time", "none"})
    if unknown:
        raise CutbenchError(f"--fail-on takes accuracy, time (comma-separated) or none; got {', '.join(unknown)}.")
    old, new = _existing_store(args.old), _existing_store(args.new)
    studies = [sorted({str(s) for s in store.to_frame().get("study", [])}) for store in (old, new)]
    if not all(studies):
        empty = args.old if not studies[0] else args.new
        raise CutbenchError(f"{empty} holds no usable records: nothing to compare; run the study there first.")
    if studies[0] != studies[1]:
        raise CutbenchError(f"{args.old} holds study {', '.join(studies[0])} but {args.new} holds "
                            f"{', '.join(studies[1])}: compare two runs of the same study.")
    out = _writable_folder(args.out if args.out else new.root / "comparison", "--out")
    table, markdown, written = render_comparison(old, new, out, alpha=args.alpha, min_effect=args.min_effect,
                                                 time_threshold=args.time_threshold, time_floor=args.time_floor)
    print(markdown)
    print("wrote " + ", ".join(str(p) for p in written))
    regressions = flagged(table, [kind for kind in kinds if kind != "none"])
    if len(regressions):
        print(f"{len(regressions)} regression(s) of kind {', '.join(sorted(set(regressions.kind)))} flagged.")
        return 1
    return 0


def cmd_scaling(args) -> int:
    """Fit how each method's stage times grow with a swept parameter, over one or more results folders."""
    import pandas as pd

    from cutbench.reports.scaling import plot_scaling, scaling_table, to_markdown

    frame = pd.concat([_existing_store(folder).to_frame() for folder in args.folders], ignore_index=True)
    if frame.empty:
        raise CutbenchError(f"{', '.join(args.folders)} hold no records; run a scaling study first.")
    out = _writable_folder(args.out if args.out else args.folders[0], "--out")
    table = scaling_table(frame, x=args.x, min_seconds=args.min_seconds)
    markdown = to_markdown(table)
    (out / "scaling.md").write_text(markdown)
    written = [out / "scaling.md", *plot_scaling(frame, out / "scaling", x=args.x, min_seconds=args.min_seconds)]
    print(markdown)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def cmd_gamma_search(args) -> int:
    """NeuNcut's label-free choice of gamma (paper §4.6) on one dataset: table, JSON and the Fig. 4-style plot."""
    from cutbench.datasets import compute_features, load_dataset, resolve_features
    from cutbench.methods.neuncut import DEFAULT_GAMMAS, NeuNcut, NeuRcut, search_gamma
    from cutbench.reports.plots import plot_gamma_search

    params = _yaml_option(args.params, "--params", "{epochs: 50, batch_size: 500}")
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise CutbenchError(f"--params must be a YAML mapping such as '{{epochs: 50, batch_size: 500}}'; "
                            f"got {args.params!r}.")
    features = _yaml_option(args.features, "--features", "{name: scatnet, l2_normalize: true}") or "raw"
    out = _writable_folder(args.out, "--out")
    dataset_params = {"n": args.n} if args.n is not None else {}
    data = load_dataset(args.dataset, **dataset_params)
    name = data.meta["name"]
    X = compute_features(data, resolve_features(features, name)).X
    n_clusters = args.clusters or int(data.meta["k"])
    gammas = tuple(args.gammas) if args.gammas else DEFAULT_GAMMAS
    method = NeuRcut if args.method == "neurcut" else NeuNcut
    print(f"{method.__name__} on {name} ({X.shape[0]:,} x {X.shape[1]}), {n_clusters} clusters, "
          f"{len(gammas)} values of gamma from {max(gammas):g} down to {min(gammas):g}; no label is used")
    search = search_gamma(X, n_clusters, gammas=gammas, tolerance=args.tolerance, method=method,
                          random_state=args.seed, **params)
    lines = ["| gamma | lowest L_Lap | lowest L_orth | keeps the floor |", "| ---: | ---: | ---: | :--- |"]
    for gamma, laplacian, orth, keeps in zip(search.gammas, search.laplacian, search.orthogonality,
                                             search.keeps_floor(), strict=True):
        lines.append(f"| {gamma:g} | {laplacian:.4f} | {orth:.4f} | {'yes' if keeps else 'no'} |")
    markdown = (f"Label-free gamma search, {method.__name__} on {name}: floor of L_orth {search.floor:.4f}, "
                f"chosen gamma {search.chosen:g}\n\n" + "\n".join(lines) + "\n")
    (out / "gamma_search.md").write_text(markdown)
    (out / "gamma_search.json").write_text(json.dumps({**search.to_dict(), "dataset": name,
                                                        "method": method.__name__, "params": params}, indent=1))
    written = [out / "gamma_search.md", out / "gamma_search.json",
               *plot_gamma_search(search, f"{method.__name__} on {name}: label-free gamma search",
                                  out / "gamma_search")]
    print(markdown)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def cmd_collect(args) -> int:
    """Export whatever is stored now (also while a study is still running) and count it by status."""
    store = _existing_store(args.out)
    written = store.export(Path(args.to) if args.to else None)
    frame = store.to_frame()
    counts = frame["status"].value_counts().to_dict() if not frame.empty else {}
    print(f"{len(frame)} records in {store.root}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    unusable = store.problems_summary()
    if unusable:
        print(unusable)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def cmd_paper_list(args) -> int:
    from cutbench.paper import get_target, list_targets

    print(f"{'target':<22} {'rows':>4} {'ci cells':>8} {'paper cells':>11}  title")
    for name in list_targets():
        target = get_target(name)
        print(f"{name:<22} {len(target.published()):>4} {len(target.study('ci').cells):>8} "
              f"{len(target.study('paper').cells):>11}  {target.title}")
    print("run one: cutbench paper run TARGET --scale ci|paper --out DIR; several: cutbench paper run all --out ROOT")
    return 0


def cmd_paper_run(args) -> int:
    from cutbench.paper import check_scale, get_target, list_targets, write_manifest
    from cutbench.reports.paper import check_figure, render_paper_target
    from cutbench.store import ResultStore
    from cutbench.study import apply_override, expand_study, select_cells

    check_scale(args.scale)
    names = list(list_targets()) if args.targets == ["all"] else args.targets
    targets = [get_target(name) for name in names]  # every name (or target file) checked before anything runs
    for target in targets:
        check_figure(target)
    _downloads(args)
    several = len(targets) > 1
    root = Path(args.out) if args.out else Path("results") / "paper"
    status = 0
    for target in targets:
        raw = target.study_mapping(args.scale)
        for override in args.set:
            print(f"--set {override}: changed {', '.join(apply_override(raw, override))}")
        study = expand_study(raw, source=target.path)
        cells = select_cells(study.cells, args.only) if args.only else study.cells
        out = root / f"{target.name}-{args.scale}" if several or not args.out else root
        print(target.heading(args.scale, tuple(args.set)))
        if args.dry_run:
            for i, cell in enumerate(cells, 1):
                print(f"[{i}/{len(cells)}] {cell.label()}")
            print(f"{len(cells)} cells -> {out}")
            continue
        write_manifest(out, target, args.scale, tuple(args.set))
        args.stored_in = out
        counts = _execute(study, cells, out, args)
        rows, written = render_paper_target(ResultStore(out), out)
        print("wrote " + ", ".join(str(p) for p in written))
        status = max(status, 0 if counts["failed"] == 0 and counts["timeout"] == 0 else 1)
    return status


def cmd_paper_show(args) -> int:
    from cutbench.reports.paper import render_paper_target

    store = _existing_store(args.folder)
    _, written = render_paper_target(store, Path(args.folder), target=args.target, scale=args.scale)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def cmd_paper_report(args) -> int:
    from cutbench.reports.paper import reproduction_report

    evidence = Path(args.evidence).read_text() if args.evidence else None
    figures = Path(args.output).parent / "figures" if args.output else None
    text = reproduction_report([Path(folder) for folder in args.folders], evidence, figures)
    if args.output:
        _writable_folder(Path(args.output).parent, "--output")
        Path(args.output).write_text(text)
        print(f"wrote {args.output}")
    else:
        print(text)
    return 0


def cmd_paper_reference(args) -> int:
    from cutbench.atomic import write_atomically
    from cutbench.reports.paper import ci_reference

    reference = ci_reference([Path(folder) for folder in args.folders])
    rows = sum(len(rows) for rows in reference["targets"].values())
    text = json.dumps(reference, indent=1, sort_keys=True) + "\n"
    write_atomically(Path(args.output), lambda stream: stream.write(text.encode()))
    print(f"wrote {args.output}: {rows} rows of {len(reference['targets'])} targets, made on {reference['cpu']}. "
          "Commit it with the reason: later ci-scale runs are checked against it.")
    return 0


def cmd_list(args) -> int:
    from cutbench.datasets import PRESETS, list_datasets
    from cutbench.methods.registry import list_methods
    from cutbench.metrics import METRICS
    from cutbench.plugins import installed_plugins
    from cutbench.study import builtin_studies

    print("methods:  " + ", ".join(list_methods()) + "  (built in)")
    print("datasets: " + ", ".join(list_datasets()) + "  (built in)")
    print("metrics:  " + ", ".join(METRICS) + "  (built in)")
    print("features: " + ", ".join(PRESETS) + "  (built-in presets)")
    print("studies:  " + ", ".join(sorted(builtin_studies())))
    builtin = {"method": set(list_methods()), "dataset": set(list_datasets()), "metric": set(METRICS),
               "feature step": set(PRESETS)}
    found = installed_plugins(builtin)
    print("plugins of installed packages (entry points): " + ("none" if not found else ""))
    for line in found:
        print("  " + line)
    print("any other: name it in a study as package.module:Object or path/to/file.py:Object "
          "(`cutbench check NAME` checks it)")
    return 0


def cmd_check(args) -> int:
    from cutbench.check import check, report

    kind, outcomes = check(args.name, args.kind)
    print(report(args.name, kind, outcomes))
    return 1 if any(outcome.passed is False for outcome in outcomes) else 0


def cmd_info(args) -> int:
    from cutbench.provenance import provenance

    print(json.dumps(provenance(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cutbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a study (default: the quick study)")
    run.add_argument("study", nargs="?", default=DEFAULT_STUDY, help="study file or built-in study name")
    run.add_argument("--out", help="output folder (default: results/<study name>)")
    run.add_argument("--dry-run", action="store_true", help="list the cells and exit")
    run.add_argument("--retry-failed", action="store_true", help="re-run cells stored as failed, timeout or skipped")
    run.add_argument("--only", action="append", default=[], metavar="KEY=V1[,V2]",
                     help="run only matching cells, e.g. method=neuncut or seed=0,1 (repeatable)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=V1[,V2]",
                     help="override the study; values are YAML and several make a grid, e.g. neuncut.gamma=80,100, "
                          "'neuncut.hidden_dims=[64,64]', neuncut#2.lr=0.01 (the second neuncut entry) or "
                          "protocol.train_size=1000 (repeatable)")
    run.add_argument("--no-download", action="store_true",
                     help="never download a missing dataset file: a cell needing one fails at once with how to get it")
    run.add_argument("--executor", default="inline", choices=["inline", "pool", "dask"],
                     help="inline (default; for published timings), pool (one process per GPU) or dask")
    run.add_argument("--workers", type=_at_least_one, help="pool/dask workers (default: one per GPU, else 2)")
    run.add_argument("--threads", type=_at_least_one,
                     help="threads per cell for torch, BLAS and OpenMP (default: every core for the inline executor, "
                          "the cores shared out among the workers of pool and dask); recorded with every result")
    run.add_argument("--scheduler", help="dask scheduler address (default: a LocalCluster on loopback)")
    run.set_defaults(func=cmd_run)

    report = sub.add_parser("report", help="render tables and plots from a results folder")
    report.add_argument("out", help="results folder written by `cutbench run`")
    report.add_argument("--times", default="fit", metavar="STAGE[,STAGE]",
                        help="timed stages shown in the tables, comma-separated (default: fit; "
                             "e.g. affinity,fit,predict,total)")
    report.set_defaults(func=cmd_report)

    compare = sub.add_parser("compare", help="compare two results folders, e.g. one study run at two commits")
    compare.add_argument("old", help="the reference results folder")
    compare.add_argument("new", help="the results folder to check")
    compare.add_argument("--out", help="where to write comparison.md and report.html (default: NEW/comparison)")
    compare.add_argument("--fail-on", default="accuracy", metavar="KIND[,KIND]",
                         help="exit 1 when a regression of these kinds is flagged: accuracy, time, or none "
                              "(default: accuracy)")
    compare.add_argument("--alpha", type=float, default=stats.ALPHA,
                         help=f"level of the test over seeds (default {stats.ALPHA:g})")
    compare.add_argument("--min-effect", type=float, default=stats.SCORE_MIN_EFFECT,
                         help="a metric must also move by more than this; with one seed per side this tolerance "
                              f"alone decides (default {stats.SCORE_MIN_EFFECT:g})")
    compare.add_argument("--time-threshold", type=float, default=stats.TIME_MIN_RATIO,
                         help="a time must also change by more than this fraction to count "
                              f"(default {stats.TIME_MIN_RATIO:g})")
    compare.add_argument("--time-floor", type=float, default=stats.TIME_MIN_SECONDS, metavar="SECONDS",
                         help=f"... and by more than this many seconds (default {stats.TIME_MIN_SECONDS:g}: "
                              "milliseconds are noise)")
    compare.set_defaults(func=cmd_compare)

    scaling = sub.add_parser("scaling", help="fit how each method's stage times grow with n (log-log plot)")
    scaling.add_argument("folders", nargs="+", help="results folders of scaling studies")
    scaling.add_argument("--x", default="dataset.n", help="the swept record column (default: dataset.n)")
    scaling.add_argument("--min-seconds", type=float, default=0.05,
                         help="times below this are left out of the fits (fixed overheads; default 0.05)")
    scaling.add_argument("--out", help="where to write scaling.md and scaling.png/.pdf (default: the first folder)")
    scaling.set_defaults(func=cmd_scaling)

    search = sub.add_parser("gamma-search", help="NeuNcut's label-free choice of gamma (paper §4.6) on a dataset")
    search.add_argument("dataset", help="a dataset name (cutbench list), e.g. mnist or two_moons")
    search.add_argument("--n", type=_at_least_one, help="points to load, for generated datasets or a subsample")
    search.add_argument("--features", help="features as in a study, YAML, e.g. '{name: scatnet, l2_normalize: true}'")
    search.add_argument("--clusters", type=_at_least_one, help="number of clusters (default: the dataset's classes)")
    search.add_argument("--gammas", type=float, nargs="+", help="values to try (default: 1e6 down to 1)")
    search.add_argument("--tolerance", type=float, default=0.02, help="relative tolerance on the floor (0.02)")
    search.add_argument("--method", choices=["neuncut", "neurcut"], default="neuncut")
    search.add_argument("--params", help="other method parameters, YAML, e.g. '{epochs: 50, batch_size: 500}'")
    search.add_argument("--seed", type=int, default=0)
    search.add_argument("--out", default="gamma_search", help="folder for gamma_search.md/.json/.png (default: "
                                                                 "./gamma_search)")
    search.set_defaults(func=cmd_gamma_search)

    collect = sub.add_parser("collect", help="export the records stored so far to CSV and parquet")
    collect.add_argument("out", help="results folder (may belong to a study that is still running)")
    collect.add_argument("--to", help="output path stem (default: <out>/results)")
    collect.set_defaults(func=cmd_collect)

    paper = sub.add_parser("paper", help="regenerate the published tables and figures beside ours")
    paper_sub = paper.add_subparsers(dest="paper_command", required=True)
    paper_sub.add_parser("list", help="the paper targets").set_defaults(func=cmd_paper_list)
    paper_run = paper_sub.add_parser("run", help="run paper targets (a study each) and render them")
    paper_run.add_argument("targets", nargs="+", metavar="TARGET",
                           help="target names (see `cutbench paper list`), all, or a target file path/to/target.yaml "
                                "(its published CSV beside it)")
    paper_run.add_argument("--scale", default="ci", help="ci (default: a stated reduction, minutes on a 2-core CPU) "
                                                         "or paper (the paper's protocol)")
    paper_run.add_argument("--out", help="the folder of one target (default: results/paper/<target>-<scale>); for "
                                         "several, the folder holding one <target>-<scale> folder each")
    paper_run.add_argument("--dry-run", action="store_true", help="list the cells and exit")
    paper_run.add_argument("--retry-failed", action="store_true", help="re-run cells stored as failed or timeout")
    paper_run.add_argument("--only", action="append", default=[], metavar="KEY=V1[,V2]",
                           help="run only matching cells, e.g. method=ncut,neuncut or part=I,IV (repeatable)")
    paper_run.add_argument("--set", action="append", default=[], metavar="KEY=V1[,V2]",
                           help="override the target's study, e.g. device=cuda (repeatable)")
    paper_run.add_argument("--no-download", action="store_true", help="never download a missing dataset file")
    paper_run.add_argument("--executor", default="inline", choices=["inline", "pool", "dask"])
    paper_run.add_argument("--workers", type=_at_least_one)
    paper_run.add_argument("--threads", type=_at_least_one, help="threads per cell (default: every core)")
    paper_run.add_argument("--scheduler", help="dask scheduler address")
    paper_run.set_defaults(func=cmd_paper_run)
    paper_show = paper_sub.add_parser("show", help="render a paper run's folder again (paper.md/.tex/.html, figure)")
    paper_show.add_argument("folder")
    paper_show.add_argument("--target", help="fail unless the folder holds this target")
    paper_show.add_argument("--scale", help="fail unless the folder holds this scale")
    paper_show.set_defaults(func=cmd_paper_show)
    paper_report = paper_sub.add_parser("report", help="the reproduction report of several paper runs' folders")
    paper_report.add_argument("folders", nargs="+", help="paper runs' folders (or folders holding them)")
    paper_report.add_argument("--output", help="write the Markdown report here, its figures in figures/ beside it "
                                               "(default: print it)")
    paper_report.add_argument("--evidence", help="a Markdown file of evidence for the gaps, placed after the summary")
    paper_report.set_defaults(func=cmd_paper_report)
    paper_reference = paper_sub.add_parser("reference", help="store ci-scale runs as the reference later ci runs "
                                                             "are checked against")
    paper_reference.add_argument("folders", nargs="+", help="ci-scale paper runs' folders (or folders holding them)")
    paper_reference.add_argument("--output", required=True,
                                 help="the reference file (the packaged one: benchmarks/paper/ci_reference.json)")
    paper_reference.set_defaults(func=cmd_paper_reference)

    sub.add_parser("list", help="list methods, datasets, metrics, studies and installed plugins, with their origin"
                   ).set_defaults(func=cmd_list)
    check = sub.add_parser("check", help="check a method, dataset or metric (a plugin's contract), e.g. "
                                         "cutbench check examples/spectral_lobpcg.py:SpectralLOBPCG")
    check.add_argument("name", help="a built-in name, an entry point, package.module:Object or path/to/file.py:Object")
    check.add_argument("--kind", choices=("method", "dataset", "metric"), help="what NAME is (default: guessed)")
    check.set_defaults(func=cmd_check)
    sub.add_parser("info", help="print this machine's provenance record").set_defaults(func=cmd_info)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "executor", None) is not None and "torch" not in sys.modules:  # a run, before OpenMP starts
        from cutbench.threads import quiet_idle_threads

        changed = quiet_idle_threads()
        if changed:
            print(changed)
    try:
        status = args.func(args)
        sys.stdout.flush()  # a reader that went away shows here, inside this handler, not at exit
        return status
    except CutbenchError as exc:
        print(f"cutbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ncutbench: interrupted. {_what_is_stored(args)}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `cutbench info | head -1`): end quietly, as shell tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _what_is_stored(args) -> str:
    """For an interrupted command: what its results folder holds, and how to go on."""
    out = getattr(args, "stored_in", None)
    if out is None:
        return "Nothing was being stored."
    stored = len(list((Path(out) / "records").glob("*.json")))
    return (f"{stored} cell record(s) are stored in {out}, every cell that finished (the one running was not "
            "stored); run the same command again to go on where it stopped.")


if __name__ == "__main__":
    sys.exit(main())
