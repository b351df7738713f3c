"""Studies: a YAML file declaring datasets, methods, parameter grids, protocol, seeds and devices.

A study expands into *cells* (dataset x features x affinity x method parameters x training size x
seed x device); each cell is run once and stored under a content hash of everything that
determines it. Any value below that is a list is a sweep axis::

    name: sweep
    datasets:
      - name: double_rings
        grid: {n: [10000, 100000]}                 # scaling runs: one cell per n
    features: [raw, {name: scatnet, l2_normalize: true}]   # a preset, or a list of them (an axis)
    affinity: {sigma: median, n_neighbors: [3, 10, 1000]}   # s sweep; given to every method that takes one
    methods:
      - name: ncut
      - name: neuncut
        params: {epochs: 30}
        grid: {gamma: [80, 100], batch_size: [100, 500, 1000]}
    protocol: {train_size: [1000, 2000, 5000], nmi_average_method: arithmetic}
    seeds: [0, 1, 2]
    device: [cpu, cuda]
    timing: {warmup: 1, repeats: 1, time_limit: 600}

A study whose combinations are not one product (a paper table pairs each feature set with its own
affinity) lists ``parts``: each part is named, replaces any of ``datasets``, ``features``,
``affinity``, ``methods``, ``protocol``, ``seeds`` and ``device`` for its cells, and inherits the
rest from the top level; its name is part of its cells' configuration::

    parts:
      - {name: I, features: raw}
      - {name: V, features: scatnet, affinity: {kind: self_expressive, preset: senet}}

Errors name the file, the line and the accepted values.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from cutbench import CutbenchError
from cutbench.affinity import (
    HEAT_KERNEL,
    affinity_kind,
    affinity_label,
    canonical_affinity,
)
from cutbench.datasets import (
    canonical_dataset_name,
    canonical_features,
    check_dataset_params,
    compact_features,
    dataset_plugin,
    features_plugin,
)
from cutbench.graph import Affinity
from cutbench.methods.registry import get_method, method_plugin
from cutbench.metrics import get_metric
from cutbench.metrics import NMI_AVERAGE_METHODS
from cutbench.params import Device, Interval, NoneValue, Options, validate_params
from cutbench.plugins import absolute_spec, is_target

_PART_KEYS = {"name", "datasets", "features", "affinity", "methods", "protocol", "seeds", "device", "metrics"}
_STUDY_KEYS = (_PART_KEYS - {"name"}) | {"name", "description", "timing", "parts"}
_DATASET_KEYS = {"name", "params", "grid"}
_METHOD_KEYS = {"name", "params", "grid"}
_PROTOCOL_KEYS = {"train_size", "nmi_average_method", "evaluate"}
_EVALUATE = ("all", "held_out")
# The study's own values, declared with the constraints the estimators' parameters use (cutbench.params).
_PROTOCOL_CONSTRAINTS = {"train_size": [NoneValue(), Interval(int, 2)],
                         "nmi_average_method": [Options(*NMI_AVERAGE_METHODS)],
                         "evaluate": [Options(*_EVALUATE)]}
_TIMING_CONSTRAINTS = {"warmup": [Interval(int, 0)], "repeats": [Interval(int, 1)],
                       "time_limit": [NoneValue(), Interval(float, 0, closed="neither")]}
_TIMING_KEYS = set(_TIMING_CONSTRAINTS)
_SEED = Interval(int, 0, 2**32, closed="left")  # numpy's seed range
_DEVICE = Device()
_HARNESS_PARAMS = ("n_clusters", "random_state", "device")


@dataclass(frozen=True)
class Cell:
    """One unit of work: a method with fixed parameters on one dataset with one seed on one device."""

    dataset: str
    dataset_params: dict
    features: dict  # canonical preset spec, see cutbench.datasets.features.canonical_features
    method: str
    method_params: dict
    protocol: dict
    seed: int
    device: str
    timing: dict = field(default_factory=lambda: {"warmup": 1, "repeats": 1, "time_limit": None})
    part: str | None = None  # the study part it comes from, if the study has parts
    metrics: list | None = None  # [{"name": ..., **options}]; None: every built-in metric

    def method_name(self) -> str:
        """The method's name as results show it (a plugin's own name, not its path)."""
        plugin = method_plugin(self.method)
        return self.method if plugin is None else plugin.name

    def label(self) -> str:
        parts = [f"{k}={v}" for k, v in self.method_params.items() if k != "affinity"]
        affinity = self.method_params.get("affinity")
        if isinstance(affinity, dict):
            parts.append(affinity_label(affinity))
        params = ", ".join(parts)
        train = self.protocol.get("train_size")
        shown = {**compact_features(self.features), "name": _features_name(self.features["name"])}  # defaults left out
        features = "" if shown == {"name": "raw"} else " · " + ", ".join(
            [shown.pop("name"), *(f"{k}={v}" for k, v in shown.items())])
        part = f"[{self.part}] " if self.part is not None else ""
        dataset = dataset_plugin(self.dataset)
        return (f"{part}{self.dataset if dataset is None else dataset.name}{features} · {self.method_name()}"
                f"{f' ({params})' if params else ''}"
                f"{f' · train={train}' if train else ''} · seed={self.seed} · {self.device}")

    def fields(self) -> dict[str, Any]:
        """Flat ``name -> value`` view used to select cells (``--only``)."""
        features = {**self.features, "name": _features_name(self.features["name"])}
        dataset = dataset_plugin(self.dataset)
        return _fields(self.dataset if dataset is None else dataset.name, self.dataset_params, features,
                       self.method_name(), self.method_params,
                       self.protocol, self.seed, self.device, self.part)


def _features_name(name: str) -> str:
    plugin = features_plugin(name)
    return name if plugin is None else plugin.name


def _plugin_base(source) -> Path | None:
    """The folder a plugin's relative file path is taken from: the study file's."""
    return Path(source).parent if source is not None else None


def _spec(name, source):
    """A name as the cells carry it: a plugin file's path made absolute (so every worker finds it)."""
    return absolute_spec(name, _plugin_base(source)) if is_target(name) else name


def config_fields(config: dict) -> dict[str, Any]:
    """The :meth:`Cell.fields` of the cell a stored record's configuration describes."""
    features = config["features"]
    features = ({k: v for k, v in features.items() if k != "plugin"} if "plugin" in features
                else canonical_features(features))
    return _fields(config["dataset"]["name"], config["dataset"]["params"], features,
                   config["method"]["name"], config["method"]["params"], config["protocol"], config["seed"],
                   config["device"], config.get("part"))


def _fields(dataset, dataset_params, features, method, method_params, protocol, seed, device, part) -> dict:
    out = {"dataset": dataset, "features": features["name"], "method": method, "seed": seed, "device": device,
           **{f"protocol.{k}": v for k, v in protocol.items()}}
    if part is not None:
        out["part"] = part
    out.update({f"features.{k}": v for k, v in features.items() if k != "name"})
    out.update({f"dataset.{k}": v for k, v in dataset_params.items()})
    for k, v in method_params.items():
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    return out


@dataclass
class Study:
    """An expanded study: its cells, and the combinations refused at expansion with the reason."""

    name: str
    description: str
    cells: list[Cell]
    source: Path | None = None
    refused: list[str] = field(default_factory=list)


class _LineLoader(yaml.SafeLoader):
    """Keeps the line of every mapping key so that errors can point into the file."""


class _DuplicateKey(Exception):
    """A mapping of the study file names a key twice (YAML would silently keep the last value)."""


def _construct_mapping(loader, node, deep=False):
    lines = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in lines:
            raise _DuplicateKey(f"line {key_node.start_mark.line + 1}: key {key!r} appears again (first on line "
                                f"{lines[key]}); YAML would keep only the last value: give each key once")
        lines[key] = key_node.start_mark.line + 1
    mapping = yaml.SafeLoader.construct_mapping(loader, node, deep=True)
    mapping["__lines__"] = lines
    return mapping


class _LineList(list):
    """A YAML sequence that remembers the line of each item (for entries written as bare names)."""

    lines: list[int]


def _construct_sequence(loader, node, deep=False):
    items = _LineList(yaml.SafeLoader.construct_sequence(loader, node, deep=True))
    items.lines = [item.start_mark.line + 1 for item in node.value]
    return items


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _as_entry(entries, index: int) -> dict:
    """Entry ``index`` of a datasets or methods list as a mapping; a bare name keeps its line."""
    entry = entries[index]
    if not isinstance(entry, str):
        return entry
    lines = getattr(entries, "lines", None)
    return {"name": entry, **({"__lines__": {"name": lines[index]}} if lines else {})}


def _where(source, mapping, key=None) -> str:
    lines = mapping.get("__lines__", {}) if isinstance(mapping, dict) else {}
    line = lines.get(key) if key is not None else min(lines.values(), default=None)
    return f"{source or '<study>'}" + (f", line {line}" if line else "")


def strip_lines(obj):
    """A section read by :func:`read_yaml` without its line bookkeeping (once it has been validated)."""
    if isinstance(obj, dict):
        return {k: strip_lines(v) for k, v in obj.items() if k != "__lines__"}
    if isinstance(obj, list):
        return [strip_lines(v) for v in obj]
    return obj


def _check_keys(mapping, accepted, what, source):
    if not isinstance(mapping, dict):
        raise CutbenchError(f"{source or '<study>'}: {what} must be a mapping; got {type(mapping).__name__}.")
    for key in mapping:
        if key != "__lines__" and key not in accepted:
            raise CutbenchError(f"{_where(source, mapping, key)}: unknown key {key!r} in {what}; "
                                f"accepted: {', '.join(sorted(accepted))}.")


def _as_axis(value) -> list:
    """A scalar is a one-point axis; a list is a sweep axis."""
    return value if isinstance(value, list) else [value]


def _product(mapping: dict) -> list[dict]:
    """Cartesian product of a mapping whose list values are axes."""
    keys = list(mapping)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(_as_axis(mapping[k]) for k in keys))]


def builtin_studies() -> dict[str, Path]:
    """Study files shipped with cutbench (benchmarks/studies/*.yaml), by name."""
    folder = resources.files("cutbench.studies")
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml")}


def resolve_study_path(study) -> Path:
    """A path to a study file, or the name of a built-in study (e.g. ``"quick"``)."""
    path = Path(study)
    if path.is_file():
        return path
    builtin = builtin_studies()
    if str(study) in builtin:
        return builtin[str(study)]
    raise CutbenchError(f"no study file {str(study)!r} and no built-in study of that name; built-in: "
                        f"{', '.join(sorted(builtin))}.")


def read_yaml(path: Path) -> dict:
    """A study-like YAML file as a mapping whose entries remember their lines (for error messages); a key
    given twice in one mapping is an error naming both lines."""
    try:
        return yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_LineLoader)
    except UnicodeDecodeError as exc:
        raise CutbenchError(f"{path} is not UTF-8 text (byte {exc.start} is {exc.object[exc.start:exc.start + 1]!r}); "
                            "save it as UTF-8.") from None
    except yaml.YAMLError as exc:
        raise CutbenchError(f"{path} is not valid YAML: {exc}") from exc
    except _DuplicateKey as exc:
        raise CutbenchError(f"{path}, {exc}.") from None


def load_study(study, overrides: list[str] = (), *, report=None) -> Study:
    """Read a study file (or a built-in study by name), apply ``--set`` overrides (see
    :func:`apply_override`) and expand it.

    ``report``, if given, is called with one line per override saying what it changed.
    """
    path = resolve_study_path(study)
    raw = read_yaml(path)
    for override in overrides:
        changed = apply_override(raw, override)
        if report is not None:
            report(f"--set {override}: changed {', '.join(changed)}")
    return expand_study(raw, source=path)


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets, braces and quotes: ``"[1,2],3"`` -> ``["[1,2]", "3"]``."""
    pieces, depth, quote, start = [], 0, None, 0
    for index, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            pieces.append(text[start:index])
            start = index + 1
    pieces.append(text[start:])
    return pieces


def parse_values(text: str, option: str = "--set") -> list:
    """The values of ``KEY=TEXT``: each comma-separated piece read as YAML (commas inside ``[...]``,
    ``{...}`` or quotes do not separate), e.g. ``80,100`` -> ``[80, 100]`` and ``[64,64]`` ->
    ``[[64, 64]]``."""
    values = []
    for piece in _split_top_level(text):
        if not piece.strip():
            raise CutbenchError(f"{option}: empty value in {text!r}; write null for None, and separate values with "
                                "single commas.")
        try:
            values.append(yaml.safe_load(piece))
        except yaml.YAMLError as exc:
            reason = str(exc).splitlines()[0]
            raise CutbenchError(f"{option}: {piece.strip()!r} is not a valid YAML value ({reason}); write lists "
                                "as [a, b], mappings as {key: value}, and quote strings with special characters.") \
                from None
    return values


def _entry_address(key: str) -> tuple[str, int | None]:
    """``"neuncut#2"`` -> ``("neuncut", 2)`` (the second entry of that name); ``"neuncut"`` -> ``("neuncut", None)``."""
    name, _, number = key.partition("#")
    if not number:
        return name, None
    if not number.isdigit() or int(number) < 1:
        raise CutbenchError(f"--set: {key!r} addresses an entry as NAME#N with N = 1, 2, ...; got {number!r}.")
    return name, int(number)


def _object_name(entry_name) -> str | None:
    """A plugin entry's object name (``file.py:Object`` -> ``Object``): how ``--set`` addresses it."""
    return entry_name.rpartition(":")[2] if is_target(entry_name) else None


def _same_dataset(entry_name, wanted: str) -> bool:
    try:
        return canonical_dataset_name(str(entry_name)) == canonical_dataset_name(wanted)
    except CutbenchError:
        return entry_name == wanted


def apply_override(raw: dict, override: str) -> list[str]:
    """Apply one ``--set KEY=VALUE[,VALUE...]`` to a raw study mapping; return what it changed.

    Each value is YAML (so lists and mappings work: ``neuncut.hidden_dims=[64,64]``); several
    comma-separated values make a sweep axis (``neuncut.gamma=80,100``). KEY is
    ``<method>.<param>`` or ``<dataset>.<param>``, applied to every entry of that name, or to the
    N-th only with ``<name>#N.<param>`` (a plugin entry ``file.py:Object`` by ``Object``); ``affinity.<field>``, ``protocol.<key>``, ``timing.<key>``;
    or ``seeds``, ``device``, ``features``, ``affinity``, ``protocol``, ``name`` whole. In a study with parts, a method or dataset key
    reaches the entries of every part, a section key (``seeds``, ``protocol.*``, ...) the top level
    and every part that sets its own, and ``parts.<name>.<key>`` one part only.

    Returns
    -------
    list of str
        The parts of the study changed, e.g. ``["methods[2] (neuncut)", "methods[3] (neuncut)"]``.

    Raises
    ------
    CutbenchError
        A malformed override or value, or a key that matches nothing in the study (the message lists
        what it could have matched).
    """
    if "=" not in override:
        raise CutbenchError(f"--set needs KEY=VALUE[,VALUE...]; got {override!r}.")
    key, text = override.split("=", 1)
    values = parse_values(text)
    value = values if len(values) > 1 or key == "seeds" else values[0]
    if key == "seeds" and len(values) == 1 and isinstance(values[0], list):
        value = values[0]
    head, _, rest = key.partition(".")
    parts = [part for part in raw.get("parts") or [] if isinstance(part, dict)]
    if key == "name":
        raw[key] = value
        return [key]
    if key in ("seeds", "device", "features", "affinity", "protocol"):
        # the top level, and every part that sets its own
        raw[key] = value
        changed = [key]
        for i, part in enumerate(parts):
            if key in part:
                part[key] = value
                changed.append(f"parts[{i + 1}].{key}")
        return changed
    if head == "parts" and rest:
        part_name, _, inner = rest.partition(".")
        found = [part for part in parts if str(part.get("name")) == part_name]
        if not found or not inner:
            raise CutbenchError(f"--set {override!r}: parts.<name>.<key> addresses one part; the study's parts are "
                                f"{', '.join(str(part.get('name')) for part in parts) or 'none'}.")
        return [f"parts.{part_name}: {what}" for what in apply_override(found[0], f"{inner}={text}")]
    if head in ("affinity", "protocol", "timing") and rest:
        # The top level and every part with its own section; for the affinity, the parts' of the top
        # level's kind, or, when only parts give one, every part's.
        own = [part for part in parts if isinstance(part.get(head), dict)]
        top = raw.get(head)
        kind = affinity_kind(strip_lines(top)) if head == "affinity" and top else None
        changed = []
        for where, owner in [("", raw), *((f"parts[{i + 1}].", part) for i, part in enumerate(parts))]:
            if owner is raw and top is None and own:
                continue
            if owner is not raw and owner not in own:
                continue
            if owner is not raw and kind is not None and affinity_kind(strip_lines(owner[head])) != kind:
                continue
            section = owner.get(head) or {}
            owner[head] = section
            section[rest] = value
            changed.append(f"{where}{head}.{rest}")
        return changed
    name, number = _entry_address(head)
    changed = []
    if rest:
        owners = [("", raw), *((f"parts[{i + 1}].", part) for i, part in enumerate(parts))]
        for section in ("methods", "datasets"):
            matching = [(where, entries, i) for where, owner in owners for entries in [owner.get(section) or []]
                        for i, entry in enumerate(entries)
                        if (entry if isinstance(entry, str) else entry.get("name")) == name
                        or _object_name(entry if isinstance(entry, str) else entry.get("name")) == name
                        or (section == "datasets" and _same_dataset(entry if isinstance(entry, str)
                                                                    else entry.get("name"), name))]
            if number is not None:
                if number > len(matching):
                    raise CutbenchError(f"--set {override!r}: the study has {len(matching)} {section} entr"
                                        f"{'y' if len(matching) == 1 else 'ies'} named {name!r}, not {number}.")
                matching = matching[number - 1:number]
            for where, entries, i in matching:
                entry = entries[i] = {"name": entries[i]} if isinstance(entries[i], str) else entries[i]
                entry.setdefault("grid", {})[rest] = values
                (entry.get("params") or {}).pop(rest, None)
                changed.append(f"{where}{section}[{i + 1}] ({name})")
            if changed:
                return changed
    names = [e if isinstance(e, str) else e.get("name") for owner in (raw, *parts)
             for s in ("methods", "datasets") for e in owner.get(s) or []]
    raise CutbenchError(f"--set {override!r}: {head!r} matches no entry; it must be a method or dataset of the study "
                        f"({', '.join(map(str, names))}) followed by .<param>, or one of affinity.*, "
                        "protocol.*, timing.*, seeds, device, features, name.")


def select_cells(cells: list[Cell], filters: list[str]) -> list[Cell]:
    """Keep the cells matching every ``--only KEY=V1[,V2...]`` filter (e.g. ``method=neuncut``)."""
    for flt in filters:
        if "=" not in flt:
            raise CutbenchError(f"--only needs KEY=VALUE[,VALUE...]; got {flt!r}.")
        key, text = flt.split("=", 1)
        wanted = parse_values(text, "--only")
        known = set().union(*(c.fields() for c in cells)) if cells else set()
        if key not in known:
            raise CutbenchError(f"--only {flt!r}: unknown key {key!r}; accepted: {', '.join(sorted(known))}.")
        cells = [c for c in cells if c.fields().get(key) in wanted or str(c.fields().get(key)) in map(str, wanted)]
    if not cells:
        raise CutbenchError(f"no cell matches --only {' '.join(filters)}; use --dry-run to list the cells.")
    return cells


_STUDY_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def expand_study(raw: dict, source=None) -> Study:
    """Validate a study mapping and expand it into cells (the cells of each part in turn, if it has parts)."""
    _check_keys(raw, _STUDY_KEYS, "the study", source)
    if "name" not in raw:
        raise CutbenchError(f"{source or '<study>'}: the study needs a 'name' key.")
    name = str(raw["name"])
    if not _STUDY_NAME.fullmatch(name):
        raise CutbenchError(f"{_where(source, raw, 'name')}: study name {name!r} must be a plain name (letters, digits, "
                            "'.', '_', '-'; not starting with '.'), as it names the default output folder "
                            "results/<name>; e.g. name: my-study.")
    timing = _expand_timing(raw.get("timing") or {}, source)
    parts = raw.get("parts")
    if parts is None:
        scopes = [(None, raw)]
    else:
        if not isinstance(parts, list) or not parts:
            raise CutbenchError(f"{_where(source, raw, 'parts')}: parts must be a non-empty list of mappings, each "
                                "with a name.")
        scopes, names = [], set()
        for part in parts:
            _check_keys(part, _PART_KEYS, "a part", source)
            name = part.get("name")
            if not isinstance(name, (str, int)) or isinstance(name, bool) or str(name) in names:
                raise CutbenchError(f"{_where(source, part)}: every part needs a name of its own; got {name!r}.")
            names.add(str(name))
            scopes.append((str(name), {**{k: v for k, v in raw.items() if k in _PART_KEYS}, **part}))
    cells, refused = [], []
    for part, scope in scopes:
        for required in ("datasets", "methods"):
            if required not in scope:
                where = f" (part {part!r})" if part is not None else ""
                raise CutbenchError(f"{source or '<study>'}: the study needs a {required!r} key{where}.")
        part_cells, part_refused = _expand_scope(scope, part, timing, source)
        cells.extend(cell for cell in part_cells if cell not in cells)
        refused.extend(part_refused)
    refused = list(dict.fromkeys(refused))  # one line per refused combination, whatever the other axes
    _check_plugin_names(cells, source)
    if not cells:
        why = f" All were refused: {'; '.join(refused)}." if refused else ""
        raise CutbenchError(f"{source or '<study>'}: the study expands to no cells; give at least one dataset, "
                            f"method and seed.{why}")
    return Study(name=str(raw["name"]), description=str(raw.get("description", "")), cells=cells, source=source,
                 refused=refused)


def _check_plugin_names(cells: list[Cell], source) -> None:
    """Refuse two plugins of one kind that show the same name: their results could not be told apart."""
    named: dict[tuple[str, str], str] = {}
    for cell in cells:
        for kind, spec, plugin in (("method", cell.method, method_plugin(cell.method)),
                                   ("dataset", cell.dataset, dataset_plugin(cell.dataset))):
            if plugin is not None and named.setdefault((kind, plugin.name), spec) != spec:
                raise CutbenchError(f"{source or '<study>'}: {kind} plugins {named[(kind, plugin.name)]!r} and "
                                    f"{spec!r} are both named {plugin.name!r}; their results could not be told apart: "
                                    "rename one.")


def _expand_scope(raw: dict, part: str | None, timing: dict, source) -> tuple[list[Cell], list[str]]:
    """The cells of the whole study, or of one part (its keys merged over the study's), and the refusals."""
    features_axis = _expand_features(raw.get("features", "raw"), raw, source)
    devices = _as_axis(raw.get("device", "auto"))
    for device in devices:
        if not _DEVICE.accepts(device):  # the estimators' own constraint: the study accepts what they accept
            raise CutbenchError(f"{_where(source, raw, 'device')}: unknown device {device!r}; "
                                f"accepted: {_DEVICE.describe()}.")

    protocols = _expand_protocol(raw.get("protocol") or {}, source)
    protocol_line = _where(source, raw.get("protocol") or {}, "train_size")

    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(_SEED.accepts(s) for s in seeds):
        raise CutbenchError(f"{_where(source, raw, 'seeds')}: seeds must be a non-empty list of integers in "
                            f"[0, 2**32) (numpy's seed range); got {strip_lines(seeds)!r}.")

    metrics = _expand_metrics(raw.get("metrics"), raw, source)
    affinities = _expand_study_affinity(raw, source)
    datasets = _expand_datasets(raw["datasets"], source)
    datasets_line = _where(source, raw, "datasets")
    methods = _expand_methods(raw["methods"], source)
    cells, refused = [], []
    for (d_name, d_params), features, affinity, (m_name, m_params, kinds, m_where), protocol, seed, device in \
            itertools.product(datasets, features_axis, affinities, methods, protocols, seeds, devices):
        if not kinds and affinity is not affinities[0]:
            continue  # a method without an affinity is not repeated along the affinity axis
        _check_budget(d_name, d_params, protocol, datasets_line, protocol_line)
        params = dict(m_params)
        if kinds:
            params.update(_cell_affinity(params.get("affinity"), affinity, m_name, source))
            kind = affinity_kind(params.get("affinity", get_method(m_name)().affinity))
            if kind not in kinds:
                refused.append(f"{d_name} · {m_name}: {m_name} takes the affinity kinds {', '.join(kinds)}, not "
                               f"{kind!r}")
                continue
            try:  # rules between a parameter and the affinity it now has (e.g. a bandwidth rule)
                get_method(m_name)(**params)._check_param_relations()
            except CutbenchError as exc:
                raise CutbenchError(f"{m_where}: {exc}") from None
        cells.append(Cell(dataset=d_name, dataset_params=d_params, features=features, method=m_name,
                          method_params=params, protocol=protocol, seed=seed, device=device, timing=timing,
                          part=part, metrics=metrics))
    return cells, refused


def _check_budget(dataset: str, dataset_params: dict, protocol: dict, dataset_where: str,
                  protocol_where: str) -> None:
    """Refuse an empty dataset, or a training size above the dataset's size, where the size is known before
    loading (a dataset's ``n``; a real dataset's size is checked when it runs). A batch larger than the
    training set is not refused here: the method clips it to the training set with a warning that the
    cell's record keeps, as scikit-learn's mini-batch estimators do."""
    n = dataset_params.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n < 1:
        raise CutbenchError(f"{dataset_where}: dataset {dataset!r} has n={n} points; give it n >= 1 (at least as "
                            "many points as it has classes).")
    train_size = protocol["train_size"]
    if isinstance(n, int) and train_size is not None and train_size > n:
        raise CutbenchError(f"{protocol_where}: protocol.train_size={train_size} is more than the n={n} points of "
                            f"dataset {dataset!r}; use train_size <= {n}, or null to train on all points.")


def _expand_study_affinity(raw, source) -> list[dict | None]:
    """The study's ``affinity`` axis: heat-kernel fields (a list value is an axis), or one learned
    specification (``kind: siamese``) taken whole."""
    value = raw.get("affinity")
    if value is None:
        return [None]
    if isinstance(value, dict) and "kind" in value and value["kind"] != HEAT_KERNEL:
        try:
            return [canonical_affinity(strip_lines(value))]
        except CutbenchError as exc:
            raise CutbenchError(f"{_where(source, raw, 'affinity')}: {exc}") from None
    _check_keys(value, {*Affinity.__dataclass_fields__, "kind"}, "affinity", source)
    fields = {key: item for key, item in strip_lines(value).items() if key != "kind"}
    try:
        return [Affinity.from_any(point).to_dict() for point in _product(fields)]
    except CutbenchError as exc:
        raise CutbenchError(f"{_where(source, raw, 'affinity')}: {exc}") from None


def _cell_affinity(given, study_affinity, method: str, source) -> dict:
    """The ``affinity`` parameter of one cell, as the dict of its specification (empty: the method's default).

    A method's own preset name or learned specification is taken whole; its heat-kernel fields
    override the study's, field by field.
    """
    try:
        if isinstance(given, str) or _is_learned(given):
            return {"affinity": canonical_affinity(given)}
        if given is not None and study_affinity is not None and _is_learned(study_affinity):
            return {"affinity": canonical_affinity(given)}
        if study_affinity is not None and _is_learned(study_affinity):
            return {"affinity": study_affinity}
        if study_affinity is not None or given is not None:  # method fields override the study's
            return {"affinity": canonical_affinity({**(study_affinity or {}), **(given or {})})}
    except CutbenchError as exc:
        raise CutbenchError(f"{source or '<study>'}: method {method!r}: {exc}") from None
    return {}


def _expand_metrics(value, raw, source) -> list[dict] | None:
    """The metrics a cell records: None (every built-in one) when the study names none, else a list of
    ``{"name": ..., **options}`` (a built-in's name or a plugin's spec), each checked now."""
    if value is None:
        return None
    entries = strip_lines(value)
    if not isinstance(entries, list) or not entries:
        raise CutbenchError(f"{_where(source, raw, 'metrics')}: metrics must be a non-empty list of names or "
                            "mappings {name: ..., option: value}; e.g. [acc, {name: nmi, average_method: geometric}, "
                            "ncut_value].")
    out = []
    for entry in entries:
        entry = {"name": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise CutbenchError(f"{_where(source, raw, 'metrics')}: a metric is a name or a mapping {{name: ..., "
                                f"option: value}}; got {entry!r}.")
        entry = {**entry, "name": _spec(entry["name"], source)}
        try:
            get_metric(entry["name"]).with_options(**{k: v for k, v in entry.items() if k != "name"})
        except CutbenchError as exc:
            raise CutbenchError(f"{_where(source, raw, 'metrics')}: {exc}") from None
        if entry not in out:
            out.append(entry)
    return out


def _expand_features(value, raw, source) -> list[dict]:
    """The canonical feature presets of the study: a preset name or mapping, or a list of them (an axis).

    Within a mapping, a list value is an axis too (``{name: pca, n_components: [50, 100]}``).
    """
    out = []
    for entry in _as_axis(strip_lines(value)):
        entry = {"name": entry} if isinstance(entry, str) else entry
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            entry = {**entry, "name": _spec(entry["name"], source)}
        points = _product(entry) if isinstance(entry, dict) else [entry]
        for point in points:
            try:
                out.append(canonical_features(point))
            except CutbenchError as exc:
                raise CutbenchError(f"{_where(source, raw, 'features')}: {exc}") from None
    return out


def _expand_protocol(raw_protocol, source) -> list[dict]:
    """The protocol axis. ``evaluate`` (``all`` points, or only the ``held_out`` ones not trained on) appears in
    a cell's configuration only when it differs from its default, so the keys of studies that do not use it
    stay."""
    _check_keys(raw_protocol, _PROTOCOL_KEYS, "protocol", source)
    protocol = {"train_size": None, "nmi_average_method": "arithmetic", **strip_lines(raw_protocol)}
    for point in _product(protocol):
        for key in point:
            try:
                validate_params("protocol", _PROTOCOL_CONSTRAINTS, {key: point[key]})
            except CutbenchError as exc:
                raise CutbenchError(f"{_where(source, raw_protocol, key)}: {exc}") from None
    if protocol.get("evaluate") == "all":
        del protocol["evaluate"]
    if protocol.get("evaluate") == "held_out" and None in _as_axis(protocol["train_size"]):
        raise CutbenchError(f"{_where(source, raw_protocol, 'evaluate')}: protocol.evaluate: held_out needs a "
                            "train_size (points held out of training); null trains on all points.")
    return _product(protocol)


def _expand_timing(timing, source) -> dict:
    _check_keys(timing, _TIMING_KEYS, "timing", source)
    timing = {"warmup": 1, "repeats": 1, "time_limit": None, **strip_lines(timing)}
    try:
        validate_params("timing", _TIMING_CONSTRAINTS, timing)
    except CutbenchError as exc:
        raise CutbenchError(f"{source or '<study>'}: {exc}") from None
    return timing


def _expand_datasets(entries, source) -> list[tuple[str, dict]]:
    if not isinstance(entries, list) or not entries:
        raise CutbenchError(f"{source or '<study>'}: datasets must be a non-empty list.")
    out = []
    for index in range(len(entries)):
        entry = _as_entry(entries, index)
        _check_keys(entry, _DATASET_KEYS, "a dataset entry", source)
        for combo in _grid(entry, source):
            try:
                spec = _spec(entry["name"], source)
                # "fashion-mnist" and "FashionMNIST" are one dataset; a plugin is carried by its spec
                name = spec if dataset_plugin(spec) is not None else canonical_dataset_name(spec)
                params = check_dataset_params(name, combo)  # defaults resolved: equal data, equal key
            except CutbenchError as exc:
                raise CutbenchError(f"{_where(source, entry, 'name')}: {exc}") from None
            out.append((name, params))
    return out


def _grid(entry, source) -> list[dict]:
    """``params`` combined with every point of the entry's ``grid``."""
    params = strip_lines(entry.get("params", {}) or {})
    grid = strip_lines(entry.get("grid", {}) or {})
    if not isinstance(grid, dict):
        raise CutbenchError(f"{_where(source, entry, 'grid')}: grid must be a mapping of parameter -> list.")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise CutbenchError(f"{_where(source, entry, 'grid')}: grid values for {key!r} must be a "
                                f"non-empty list; got {values!r}.")
    combos = []
    for point in _product(grid):
        combo = dict(params)
        for key, value in point.items():
            head, _, rest = key.partition(".")
            if rest:  # e.g. affinity.n_neighbors: one field of a nested parameter
                combo[head] = {**(combo.get(head) or {}), rest: value}
            else:
                combo[key] = value
        combos.append(combo)
    return combos


def _is_learned(affinity) -> bool:
    """A learned affinity (e.g. ``{kind: siamese, ...}``) is whole in itself: study heat-kernel fields do not apply."""
    return isinstance(affinity, dict) and affinity.get("kind", HEAT_KERNEL) != HEAT_KERNEL


def _expand_methods(entries, source) -> list[tuple[str, dict, tuple[str, ...], str]]:
    """``(name, canonical parameters, affinity kinds it takes, where it is written)`` for every grid point of
    every method entry.

    Parameters are validated here, before anything runs, against the method's declared constraints
    and the rules between them; the affinity is validated once merged with the study's.
    """
    if not isinstance(entries, list) or not entries:
        raise CutbenchError(f"{source or '<study>'}: methods must be a non-empty list.")
    out = []
    for index in range(len(entries)):
        entry = _as_entry(entries, index)
        _check_keys(entry, _METHOD_KEYS, "a method entry", source)
        name = _spec(entry.get("name"), source)
        try:
            cls = get_method(name)
        except CutbenchError as exc:
            raise CutbenchError(f"{_where(source, entry, 'name')}: {exc}") from None
        accepted = sorted(cls().get_params(deep=False))
        for params in _grid(entry, source):
            for reserved in _HARNESS_PARAMS:
                if reserved in params:
                    raise CutbenchError(f"{_where(source, entry)}: {reserved!r} is set by the harness "
                                        "(from the dataset, the seed and the study's device); remove it.")
            unknown = sorted(set(params) - set(accepted))
            if unknown:
                raise CutbenchError(f"{_where(source, entry, 'name')}: unknown parameter(s) {', '.join(unknown)} "
                                    f"for method {name!r}; accepted: {', '.join(accepted)}.")
            affinity = params.pop("affinity", None)
            try:
                params = cls.canonical_params(params)
                cls(**params)._check_param_relations()
            except CutbenchError as exc:
                raise CutbenchError(f"{_where(source, entry, 'name')}: {exc}") from None
            if affinity is not None:
                params["affinity"] = affinity
            out.append((name, params, cls.capabilities.affinity_kinds, _where(source, entry, "name")))
    return out
