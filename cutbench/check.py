"""``cutbench check NAME``: the contract a plugin must meet, checked the way the harness will use it.

For a method: its declared capabilities and affinity kinds, scikit-learn's estimator checks on the tiny
configuration the method declares (``check_params``, with ``expected_failed_checks`` for checks it fails
by its nature, each with its reason), and one study cell through the runner. For a dataset: it loads with
its defaults, gives float features and integer classes, and loads again to the same fingerprint. For a
metric: its declaration, and a real number on a small labelling with the inputs it needs.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np

from cutbench import CutbenchError
from cutbench.affinity import AFFINITY_KINDS, HEAT_KERNEL

CHECK_DATASET = {"name": "blobs", "params": {"n": 120, "n_clusters": 3, "random_state": 0}}
"""The study cell a method is checked on: three separable clouds, small enough for any budget."""


@dataclass
class Outcome:
    """One line of the report: what was checked, whether it passed, and the detail."""

    what: str
    passed: bool | None  # None: not applicable / informational
    detail: str = ""

    def line(self) -> str:
        mark = {True: "ok  ", False: "FAIL", None: "    "}[self.passed]
        return f"  {mark} {self.what}" + (f": {self.detail}" if self.detail else "")


def _kind_of(name: str) -> str:
    from cutbench.datasets import dataset_plugin, list_datasets
    from cutbench.methods.registry import METHODS
    from cutbench.metrics import METRICS, Metric
    from cutbench.plugins import entry_points, is_target, load

    if name in METHODS or name in entry_points("method"):
        return "method"
    if name in METRICS or name in entry_points("metric"):
        return "metric"
    if name in list_datasets() or name in entry_points("dataset"):
        return "dataset"
    if is_target(name):
        try:
            obj = load("method", name).obj  # loading does not depend on the kind; only the wording does
        except CutbenchError as exc:
            raise CutbenchError(str(exc).replace("method plugin", "plugin", 1)) from None
        if isinstance(obj, type):
            return "method"
        if isinstance(obj, Metric):
            return "metric"
        if callable(obj):
            dataset_plugin(name)
            return "dataset"
        raise CutbenchError(f"{name!r} is a {type(obj).__name__}: not a method class, a dataset loader function or "
                            "a cutbench.metrics.Metric.")
    raise CutbenchError(f"nothing named {name!r}: give a built-in name (cutbench list), an installed entry point, "
                        "package.module:Object or path/to/file.py:Object.")


def check(name: str, kind: str | None = None) -> tuple[str, list[Outcome]]:
    """Check the plugin (or built-in) ``name``; returns its kind and one outcome per check."""
    kind = kind or _kind_of(name)
    checks = {"method": _check_method, "dataset": _check_dataset, "metric": _check_metric}
    if kind not in checks:
        raise CutbenchError(f"--kind must be one of {', '.join(checks)}; got {kind!r}.")
    try:
        return kind, checks[kind](name)
    except CutbenchError as exc:
        return kind, [Outcome("loads and meets the contract", False, str(exc))]


def _check_method(name: str) -> list[Outcome]:
    from sklearn.utils.estimator_checks import check_estimator

    from cutbench.methods.registry import get_method, method_plugin

    plugin = method_plugin(name)
    cls = get_method(name)
    caps = cls.capabilities
    out = [Outcome("origin", None, "built in" if plugin is None else plugin.origin),
           Outcome("capabilities", None, ", ".join(f"{k}={v}" for k, v in caps.to_dict().items()
                                                     if k != "affinity_kinds")),
           Outcome("parameters", None, ", ".join(sorted(cls().get_params(deep=False))))]
    unknown = sorted(set(caps.affinity_kinds) - set(AFFINITY_KINDS))
    out.append(Outcome("affinity kinds", not unknown,
                       f"{', '.join(caps.affinity_kinds) or 'none (no affinity parameter)'}"
                       + (f"; unknown: {', '.join(unknown)} (known: {', '.join(AFFINITY_KINDS)})" if unknown else "")))
    if caps.affinity_kinds and "affinity" not in cls().get_params(deep=False):
        out.append(Outcome("affinity parameter", False, "affinity_kinds are declared but __init__ takes no affinity"))
    try:
        estimator = cls(**cls.check_params, device="cpu", random_state=0)
    except Exception as exc:  # noqa: BLE001 - reported
        return [*out, Outcome("check_params", False, f"{type(exc).__name__}: {exc}")]
    out.append(Outcome("check_params", None, repr(cls.check_params) if cls.check_params else "{} (the defaults)"))
    results = []
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_estimator(estimator, expected_failed_checks=dict(cls.expected_failed_checks), on_fail=None,
                        on_skip=None, callback=lambda **result: results.append(result))
    failed = [r for r in results if r["status"] == "failed"]
    expected = [r for r in results if r["status"] == "xfail"]
    passed = sum(r["status"] == "passed" for r in results)
    detail = (f"{passed} passed, {len(expected)} expected failures, {len(failed)} failed "
              f"({time.perf_counter() - started:.1f} s)")
    for result in failed[:5]:
        exception = result.get("exception")
        lines = str(exception or "").strip().splitlines()
        detail += (f"\n         {result['check_name']}: {type(exception).__name__}"
                   f"{': ' + lines[0][:160] if lines else ' (no message)'}")
    if failed:
        detail += ("\n         fix them, or declare each one the method fails by its nature in "
                   "expected_failed_checks = {check name: reason}")
    out.append(Outcome("scikit-learn estimator checks", not failed, detail))
    out.append(_one_cell(name, cls))
    return out


def _one_cell(name: str, cls) -> Outcome:
    from cutbench.runner import DatasetCache, run_cell
    from cutbench.study import expand_study

    params = dict(cls.check_params)
    if cls.capabilities.affinity_kinds and HEAT_KERNEL not in cls.capabilities.affinity_kinds:
        return Outcome("one study cell", None, "skipped: the method takes no heat-kernel affinity, and a learned one "
                                               "is too costly for a check")
    try:
        study = expand_study({"name": "check", "datasets": [CHECK_DATASET], "methods": [{"name": name, "params": params}],
                              "protocol": {"train_size": 90}, "seeds": [0], "device": "cpu",
                              "timing": {"warmup": 0, "repeats": 1}})
    except CutbenchError as exc:
        return Outcome("one study cell", False, f"the study refuses it: {exc}")
    record, _ = run_cell(study.cells[0], DatasetCache(), "check")
    if record["status"] != "ok":
        return Outcome("one study cell", False, f"{record['status']}: {record.get('error')}")
    metrics = record["metrics"]
    shown = ", ".join(f"{k}={v:.3f}" for k, v in metrics.items() if v is not None and k in ("acc", "nmi", "ncut_value"))
    return Outcome("one study cell", True, f"blobs n=120, train_size=90: {shown}; fit {record['timings']['fit']['seconds']:.2f} s")


def _check_dataset(name: str) -> list[Outcome]:
    from cutbench.datasets import check_dataset_params, dataset_plugin, load_dataset

    plugin = dataset_plugin(name)
    out = [Outcome("origin", None, "built in" if plugin is None else plugin.origin),
           Outcome("parameters", None, ", ".join(f"{k}={v!r}" for k, v in check_dataset_params(name, {}).items())
                   or "none")]
    try:
        first, second = load_dataset(name), load_dataset(name)
    except Exception as exc:  # noqa: BLE001 - reported
        return [*out, Outcome("loads with its defaults", False, f"{type(exc).__name__}: {exc}")]
    meta = first.meta
    out.append(Outcome("loads with its defaults", True, f"n={meta['n']}, d={meta['d']}, k={meta['k']}, classes "
                                                         f"{meta['class_counts']}"))
    out.append(Outcome("classes 0..k-1, each present", min(meta["class_counts"]) > 0 and meta["k"] >= 2,
                       "" if min(meta["class_counts"]) > 0 else "some class in 0..k-1 has no point: number them densely"))
    out.append(Outcome("finite features", bool(np.isfinite(first.X).all()), ""))
    same = meta["fingerprint"] == second.meta["fingerprint"]
    out.append(Outcome("same data on every load", same, "" if same else "two loads with the same parameters differ: "
                       "seed every random draw from a random_state parameter"))
    return out


def _check_metric(name: str) -> list[Outcome]:
    from cutbench.affinity import prepare_affinity
    from cutbench.metrics import evaluate, get_metric, metric_plugin

    plugin = metric_plugin(name)
    metric = get_metric(name)
    out = [Outcome("origin", None, "built in" if plugin is None else plugin.origin),
           Outcome("declaration", None, f"name={metric.name}, label={metric.label}, higher_is_better="
                                        f"{metric.higher_is_better}, needs={', '.join(metric.needs)}, options="
                                        f"{metric.options or 'none'}")]
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(size=(30, 2)), rng.normal(size=(30, 2)) + 5].astype(np.float32)
    y_true = np.repeat([0, 1], 30)
    y_pred = y_true.copy()
    y_pred[:5] = 1
    graph = prepare_affinity({"n_neighbors": 5}, X, device="cpu").graph()
    try:
        values, _ = evaluate([metric], y_pred, y_true=y_true, graph=graph, embedding=X.astype(np.float64))
    except Exception as exc:  # noqa: BLE001 - reported
        return [*out, Outcome("a real number on 60 points", False, f"{type(exc).__name__}: {exc}")]
    value = values[metric.name]
    finite = value is not None and np.isfinite(value)
    out.append(Outcome("a real number on 60 points", finite, f"{value!r}" if finite else
                       f"{value!r}: a metric must return a finite float on an ordinary labelling"))
    return out


def report(name: str, kind: str, outcomes: list[Outcome]) -> str:
    failed = sum(outcome.passed is False for outcome in outcomes)
    verdict = "passes" if not failed else f"FAILS {failed} check(s)"
    return "\n".join([f"{kind} {name}", *(outcome.line() for outcome in outcomes), f"{name} {verdict}."])


__all__ = ["CHECK_DATASET", "Outcome", "check", "report"]
