"""Studies: a YAML file declaring datasets, methods, parameter grids, protocol and seeds.

A study expands into *cells* (dataset x method x parameter combination x seed); each cell is run
once and stored under a content hash of everything that determines it. Example::

    name: quick
    datasets:
      - name: double_rings
        params: {n: 3000}
    affinity: {sigma: median, n_neighbors: 10}     # shared by every method that takes one
    methods:
      - name: ncut
      - name: neuncut
        params: {epochs: 30}
        grid: {gamma: [50, 100]}                   # one cell per value (cartesian product)
    protocol: {train_size: 1000, nmi_average_method: arithmetic}
    seeds: [0, 1, 2]
    device: auto
    timing: {warmup: 1, repeats: 1}
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cutbench import CutbenchError
from cutbench.graph import Affinity
from cutbench.methods.registry import get_method, make_method

_STUDY_KEYS = {"name", "description", "datasets", "features", "affinity", "methods", "protocol", "seeds",
               "device", "timing"}
_DATASET_KEYS = {"name", "params"}
_METHOD_KEYS = {"name", "params", "grid"}
_PROTOCOL_KEYS = {"train_size", "nmi_average_method"}
_TIMING_KEYS = {"warmup", "repeats"}
_FEATURES = ("raw",)
_NMI_METHODS = ("arithmetic", "geometric", "min", "max")
_DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Cell:
    """One unit of work: a method with fixed parameters on one dataset with one seed."""

    dataset: str
    dataset_params: dict
    features: str
    method: str
    method_params: dict
    protocol: dict
    seed: int
    device: str
    timing: dict = field(default_factory=lambda: {"warmup": 1, "repeats": 1})

    def label(self) -> str:
        grid = ", ".join(f"{k}={v}" for k, v in self.method_params.items() if k != "affinity")
        return f"{self.dataset} · {self.method}{f' ({grid})' if grid else ''} · seed={self.seed}"


@dataclass
class Study:
    name: str
    description: str
    cells: list[Cell]
    source: Path | None = None


class _LineLoader(yaml.SafeLoader):
    """Keeps the line of every mapping key so that errors can point into the file."""


def _construct_mapping(loader, node, deep=False):
    mapping = yaml.SafeLoader.construct_mapping(loader, node, deep=deep)
    mapping["__lines__"] = {loader.construct_object(k): k.start_mark.line + 1 for k, _ in node.value}
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _where(source, mapping, key=None) -> str:
    lines = mapping.get("__lines__", {}) if isinstance(mapping, dict) else {}
    line = lines.get(key) if key is not None else min(lines.values(), default=None)
    return f"{source or '<study>'}" + (f", line {line}" if line else "")


def _strip(obj):
    """Drop the line bookkeeping once a section has been validated."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k != "__lines__"}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _check_keys(mapping, accepted, what, source):
    if not isinstance(mapping, dict):
        raise CutbenchError(f"{source or '<study>'}: {what} must be a mapping; got {type(mapping).__name__}.")
    for key in mapping:
        if key != "__lines__" and key not in accepted:
            raise CutbenchError(f"{_where(source, mapping, key)}: unknown key {key!r} in {what}; "
                                f"accepted: {', '.join(sorted(accepted))}.")


def load_study(path) -> Study:
    """Read and expand a study file."""
    path = Path(path)
    if not path.is_file():
        raise CutbenchError(f"study file {path} does not exist; built-in studies live in benchmarks/studies/.")
    try:
        raw = yaml.load(path.read_text(), Loader=_LineLoader)
    except yaml.YAMLError as exc:
        raise CutbenchError(f"{path} is not valid YAML: {exc}") from exc
    return expand_study(raw, source=path)


def expand_study(raw: dict, source=None) -> Study:
    """Validate a study mapping and expand it into cells."""
    _check_keys(raw, _STUDY_KEYS, "the study", source)
    for required in ("name", "datasets", "methods"):
        if required not in raw:
            raise CutbenchError(f"{source or '<study>'}: the study needs a {required!r} key.")

    features = raw.get("features", "raw")
    if features not in _FEATURES:
        raise CutbenchError(f"{_where(source, raw, 'features')}: unknown features {features!r}; "
                            f"accepted: {', '.join(_FEATURES)}.")
    device = raw.get("device", "auto")
    if device not in _DEVICES:
        raise CutbenchError(f"{_where(source, raw, 'device')}: unknown device {device!r}; "
                            f"accepted: {', '.join(_DEVICES)}.")

    protocol = raw.get("protocol", {}) or {}
    _check_keys(protocol, _PROTOCOL_KEYS, "protocol", source)
    protocol = {"train_size": None, "nmi_average_method": "arithmetic", **_strip(protocol)}
    train_size = protocol["train_size"]
    if train_size is not None and (isinstance(train_size, bool) or not isinstance(train_size, int) or train_size < 2):
        raise CutbenchError(f"{source or '<study>'}: protocol.train_size must be an integer >= 2 or null (all "
                            f"points); got {train_size!r}.")
    if protocol["nmi_average_method"] not in _NMI_METHODS:
        raise CutbenchError(f"{source or '<study>'}: protocol.nmi_average_method must be one of "
                            f"{', '.join(_NMI_METHODS)}; got {protocol['nmi_average_method']!r}.")

    timing = raw.get("timing", {}) or {}
    _check_keys(timing, _TIMING_KEYS, "timing", source)
    timing = {"warmup": 1, "repeats": 1, **_strip(timing)}
    if not (isinstance(timing["warmup"], int) and timing["warmup"] >= 0
            and isinstance(timing["repeats"], int) and timing["repeats"] >= 1):
        raise CutbenchError(f"{source or '<study>'}: timing needs warmup >= 0 and repeats >= 1 (integers); "
                            f"got {_strip(timing)}.")

    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise CutbenchError(f"{_where(source, raw, 'seeds')}: seeds must be a non-empty list of integers; got {_strip(seeds)!r}.")

    affinity = raw.get("affinity")
    if affinity is not None:
        affinity = Affinity.from_any(_strip(affinity)).to_dict()

    datasets = _expand_datasets(raw["datasets"], source)
    methods = _expand_methods(raw["methods"], affinity, source)
    cells = [Cell(dataset=d_name, dataset_params=d_params, features=features, method=m_name,
                  method_params=m_params, protocol=protocol, seed=seed, device=device, timing=timing)
             for (d_name, d_params), (m_name, m_params), seed in itertools.product(datasets, methods, seeds)]
    if not cells:
        raise CutbenchError(f"{source or '<study>'}: the study expands to no cells; give at least one dataset, "
                            "method and seed.")
    return Study(name=str(raw["name"]), description=str(raw.get("description", "")), cells=cells, source=source)


def _expand_datasets(entries, source) -> list[tuple[str, dict]]:
    from cutbench.datasets import check_dataset_params

    if not isinstance(entries, list) or not entries:
        raise CutbenchError(f"{source or '<study>'}: datasets must be a non-empty list.")
    out = []
    for entry in entries:
        entry = {"name": entry} if isinstance(entry, str) else entry
        _check_keys(entry, _DATASET_KEYS, "a dataset entry", source)
        params = _strip(entry.get("params", {}) or {})
        try:
            params = check_dataset_params(entry["name"], params)  # defaults resolved: equal data, equal key
        except CutbenchError as exc:
            raise CutbenchError(f"{_where(source, entry, 'name')}: {exc}") from None
        out.append((entry["name"], params))
    return out


def _expand_methods(entries, affinity, source) -> list[tuple[str, dict]]:
    if not isinstance(entries, list) or not entries:
        raise CutbenchError(f"{source or '<study>'}: methods must be a non-empty list.")
    out = []
    for entry in entries:
        entry = {"name": entry} if isinstance(entry, str) else entry
        _check_keys(entry, _METHOD_KEYS, "a method entry", source)
        name = entry.get("name")
        try:
            accepted = get_method(name)().get_params(deep=False)
        except CutbenchError as exc:
            raise CutbenchError(f"{_where(source, entry, 'name')}: {exc}") from None
        params = _strip(entry.get("params", {}) or {})
        if affinity is not None and "affinity" in accepted and "affinity" not in params:
            params["affinity"] = affinity
        grid = _strip(entry.get("grid", {}) or {})
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise CutbenchError(f"{_where(source, entry, 'grid')}: grid values for {key!r} must be a "
                                    f"non-empty list; got {values!r}.")
        for combo in itertools.product(*grid.values()):
            cell_params = {**params, **dict(zip(grid, combo))}
            for reserved in ("n_clusters", "random_state", "device"):
                if reserved in cell_params:
                    raise CutbenchError(f"{_where(source, entry)}: {reserved!r} is set by the harness "
                                        "(from the dataset, the seed and the study's device); remove it.")
            try:
                make_method(name, **cell_params)
            except CutbenchError as exc:
                raise CutbenchError(f"{_where(source, entry, 'name')}: {exc}") from None
            out.append((name, cell_params))
    return out
