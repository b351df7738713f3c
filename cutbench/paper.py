"""Paper targets: a published table or figure, the study that regenerates it, and how they line up.

A target is one YAML file under ``benchmarks/paper/targets/`` (shipped as
``cutbench.paper_targets``), with the published numbers it is compared with in
``benchmarks/paper/published/*.csv`` (copies of the papers' tables)::

    name: neuncut-table2
    title: NeuNcut Table 2 - features and affinities (settings I-V)
    source: Neural Normalized Cut (He et al., 2025), Table 2
    published:
      file: neuncut_table2.csv            # the rows to put beside ours (all of them, or those in `where`)
      key: [setting, method, dataset]     # the columns that name a row
      quantities: {ACC: metrics.acc, NMI: metrics.nmi, ARI: metrics.ari}   # published column: record field
    match:                                # how a published row finds its cells
      dataset: {field: dataset, values: {MNIST: mnist, F-MNIST: fashion_mnist}}
      setting: {field: part}
    not_run:                              # rows no study here can run, with the reason
      - when: {dataset: E-MNIST}
        reason: ...
    out_of_scope:                         # rows of methods or data cutbench does not cover, listed as such
      - when: {method: [VaDE, SCAN]}
        reason: ...
    orderings:                            # the paper's claims about which method wins, checked as orderings
      - claim: "NeuNcut outperforms Ncut and SpectralNet in almost all settings"
        better: NeuNcut                   # a value of the published column `by` (default: method)
        than: [Ncut, SpectralNet]
        quantity: ACC
        holds_in: almost all              # all | almost all (all but one) | most (more than half)
    figure: {kind: bars}
    study: {...}                          # the paper's protocol: a study (see cutbench.study)
    ci:                                   # the stated reduction that fits the 2-core CPU in minutes
      why: MNIST subsampled to 3,000 images, 2 seeds, 20 epochs
      set: ["mnist.n=3000", "seeds=[0,1]", "neuncut.epochs=20"]

``--scale paper`` runs ``study`` as written; ``--scale ci`` runs it with the ``ci.set`` overrides (the
syntax of ``cutbench run --set``). A ci-scale run is a smoke test: it is compared with a stored reference of
cutbench's own ci-scale results (:data:`CI_REFERENCE`), not with the paper. Figures whose published values are statements in the text rather
than table cells list ``claims`` instead (rows of ``neuncut_figures.csv`` and how to measure ours).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd

from cutbench import CutbenchError
from cutbench.identity import cell_config, experiment_key
from cutbench.paper_claims import CLAIM_CHECKS
from cutbench.params import Options, validate_params
from cutbench.study import Study, apply_override, config_fields, expand_study, read_yaml, strip_lines

SCALES = ("ci", "paper")
MANIFEST = "paper.json"
"""The file in a paper run's folder naming its target and scale."""
CI_REFERENCE = "ci_reference.json"
"""cutbench's own ci-scale results, per target, row and quantity and seed (packaged beside the targets)."""
HOLDS_IN = ("all", "almost all", "most")

_TARGET_KEYS = {"name", "title", "source", "published", "match", "not_run", "out_of_scope", "orderings", "figure",
                "claims", "study", "ci", "paper_scale", "notes", "__lines__"}
_ORDERING_KEYS = {"claim", "better", "than", "quantity", "by", "holds_in"}
_ORDERING_CONSTRAINTS = {"holds_in": [Options(*HOLDS_IN)]}  # the estimators' constraint language
_PUBLISHED_KEYS = {"file", "where", "key", "quantities", "time"}


@dataclass(frozen=True)
class Match:
    """How the published column ``column`` selects cells: its value, translated by ``values``, must equal the
    cell's ``field`` (a name of :meth:`cutbench.study.Cell.fields`, e.g. ``dataset``, ``part``,
    ``protocol.train_size``, ``affinity.n_neighbors``); a translation to a list accepts any of its values."""

    column: str
    field: str
    values: dict = field(default_factory=dict)

    def wanted(self, published_value: str):
        return self.values.get(published_value, published_value)


@dataclass(frozen=True)
class Claim:
    """A figure's published statement (a row of ``neuncut_figures.csv``) and how ours is measured.

    ``check`` is one of :data:`CLAIM_CHECKS`; ``over`` names the swept cell field it reads (e.g.
    ``gamma``); ``where`` selects the cells (cell field: value).
    """

    figure: str
    dataset: str
    quantity: str
    check: str
    over: str | None = None
    where: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Ordering:
    """A claim that one method beats others (``better`` over each of ``than``, values of the published column
    ``by``) on ``quantity``, in ``holds_in`` of the settings (the other key columns) where both ran."""

    claim: str
    better: str
    than: tuple
    quantity: str
    by: str = "method"
    holds_in: str = "all"

    def needed(self, n: int) -> int:
        """How many of ``n`` comparisons must be won for the claim to hold."""
        return {"all": n, "almost all": max(n - 1, 1), "most": n // 2 + 1}[self.holds_in] if n else 0


@dataclass(frozen=True)
class Target:
    """One published table or figure and the study that regenerates it (see the module docstring)."""

    name: str
    title: str
    source: str
    path: Path
    published_file: str | None
    where: dict
    key: tuple
    quantities: dict
    time_hardware: str | None
    match: tuple
    not_run: tuple
    out_of_scope: tuple
    orderings: tuple
    figure: dict
    claims: tuple
    raw_study: dict
    ci_why: str
    ci_set: tuple
    paper_scale: str
    notes: tuple

    def published(self) -> pd.DataFrame:
        """The published rows this target compares with (strings as printed, blanks as '')."""
        if self.claims:
            frame = read_published(self.published_file or "neuncut_figures.csv", self.folder)
            wanted = {(c.figure, c.dataset, c.quantity) for c in self.claims}
            keep = [(str(r.figure), r.dataset, r.quantity) in wanted for r in frame.itertuples()]
            return frame[keep].reset_index(drop=True)
        frame = read_published(self.published_file, self.folder)
        for column, values in self.where.items():
            frame = frame[frame[column].isin([str(v) for v in _as_list(values)])]
        return frame.reset_index(drop=True)

    @property
    def folder(self) -> Path | None:
        """The folder of a user's target file (its published CSV may sit beside it); None for a packaged one."""
        packaged = Path(str(_package_files("targets")))
        return None if self.path.parent.resolve() == packaged.resolve() else self.path.parent

    @property
    def packaged(self) -> bool:
        return self.folder is None

    def study_mapping(self, scale: str) -> dict:
        """The study of ``scale`` as a mapping: the paper's protocol, or it reduced by the ci overrides."""
        check_scale(scale)
        raw = copy.deepcopy(self.raw_study)
        raw["name"] = f"{self.name}-{scale}"
        if scale == "ci":
            for override in self.ci_set:
                try:
                    apply_override(raw, override)
                except CutbenchError as exc:
                    raise CutbenchError(f"{self.path}: ci override {override!r}: {exc}") from None
        return raw

    def study(self, scale: str, overrides=()) -> Study:
        """The expanded study of ``scale``, with a run's ``--set`` ``overrides`` applied after the scale's."""
        raw = self.study_mapping(scale)
        for override in overrides:
            apply_override(raw, override)
        return expand_study(raw, source=self.path)

    def heading(self, scale: str, overrides=()) -> str:
        """The title, saying which scale (a ci-scale table must not pass for the paper's protocol) and any
        ``--set`` overrides the run was given."""
        changed = f"; with --set {', '.join(overrides)}" if overrides else ""
        if scale == "ci":
            return f"{self.title} [ci scale: {self.ci_why}{changed}]"
        return f"{self.title} [paper scale{changed}]"

    def matches(self, row, fields: dict) -> bool:
        """Whether a cell with ``fields`` (see :func:`cutbench.study.config_fields`) belongs to published ``row``."""
        return all(_same(fields.get(m.field, _ABSENT), m.wanted(str(row[m.column]))) for m in self.match)

    def not_run_reason(self, row) -> str | None:
        return _first_rule(self.not_run, row)

    def out_of_scope_reason(self, row) -> str | None:
        return _first_rule(self.out_of_scope, row)


def _first_rule(rules, row) -> str | None:
    for when, reason in rules:
        if all(str(row[column]) in [str(v) for v in _as_list(values)] for column, values in when.items()):
            return reason
    return None


_ABSENT = object()


def _same(cell_value, wanted) -> bool:
    if cell_value is _ABSENT:
        return False
    if isinstance(wanted, list):  # any of several cell values (e.g. two parts that make one published row)
        return any(_same(cell_value, one) for one in wanted)
    if wanted in (None, "null", "all"):
        return cell_value is None
    if isinstance(cell_value, (list, tuple)):
        return "x".join(map(str, cell_value)) == str(wanted) or str(list(cell_value)) == str(wanted)
    if isinstance(cell_value, (int, float)) and not isinstance(cell_value, bool):
        try:
            return abs(cell_value - float(wanted)) <= 1e-9 * max(1.0, abs(cell_value))  # 100 matches 100.0
        except (TypeError, ValueError):
            return False
    return str(cell_value) == str(wanted)


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def check_scale(scale: str) -> None:
    if not Options(*SCALES).accepts(scale):
        raise CutbenchError(f"unknown scale {scale!r}; accepted: {', '.join(SCALES)} (ci: minutes on a 2-core CPU; "
                            "paper: the paper's protocol).")


def _package_files(folder: str):
    return resources.files("cutbench.paper_targets").joinpath(folder)


def read_published(file: str, folder: Path | None = None) -> pd.DataFrame:
    """A table of published numbers, every cell a string (blank where the paper has none): the file beside a
    target of ``folder`` (a user's target), else the packaged one."""
    beside = Path(folder) / file if folder is not None else None
    source = beside if beside is not None and beside.is_file() else _package_files("published").joinpath(file)
    if not source.is_file():
        known = sorted(p.name for p in _package_files("published").iterdir() if p.name.endswith(".csv"))
        looked = f"no file {beside}, and " if beside is not None else ""
        raise CutbenchError(f"no published table {file!r}: {looked}none packaged of that name (packaged: "
                            f"{', '.join(known)}); put the CSV beside the target file.")
    with source.open() as fh:
        try:
            return pd.read_csv(fh, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise CutbenchError(f"published table {source} is not a readable CSV ({exc}).") from None


def list_targets() -> dict[str, Path]:
    """The targets shipped with cutbench, by name, in order."""
    folder = _package_files("targets")
    return {Path(p.name).stem: Path(str(p)) for p in sorted(folder.iterdir(), key=lambda p: p.name)
            if p.name.endswith(".yaml")}


def get_target(name: str) -> Target:
    """A packaged target by name, or a target file by its path (``path/to/target.yaml``, its published CSV
    beside it); an unknown name lists the known ones."""
    if str(name).endswith((".yaml", ".yml")) or Path(name).is_file():
        if not Path(name).is_file():
            raise CutbenchError(f"no target file {name}; give the path of a target YAML (its published CSV beside "
                                "it) or a packaged target's name (`cutbench paper list`).")
        return load_target(Path(name).resolve())
    known = list_targets()
    if name not in known:
        raise CutbenchError(f"unknown paper target {name!r}; known targets: {', '.join(known)} "
                            "(`cutbench paper list` describes them).")
    return load_target(known[name])


def load_target(path: Path) -> Target:
    """Read and check one target file (its study is expanded at both scales by the tests, not here)."""
    raw = read_yaml(path)
    where = f"{path}"
    unknown = sorted(set(raw) - _TARGET_KEYS)
    if unknown:
        raise CutbenchError(f"{where}: unknown key(s) {', '.join(unknown)}; accepted: "
                            f"{', '.join(sorted(_TARGET_KEYS - {'__lines__'}))}.")
    for required in ("name", "title", "source", "study", "ci"):
        if required not in raw:
            raise CutbenchError(f"{where}: a target needs {required!r}.")
    raw = strip_lines(raw)
    if raw["name"] != path.stem:
        raise CutbenchError(f"{where}: name {raw['name']!r} must equal the file name {path.stem!r}.")
    published = raw.get("published") or {}
    unknown = sorted(set(published) - _PUBLISHED_KEYS)
    if unknown:
        raise CutbenchError(f"{where}: unknown published key(s) {', '.join(unknown)}; accepted: "
                            f"{', '.join(sorted(_PUBLISHED_KEYS))}.")
    claims = tuple(Claim(**{**claim, "figure": str(claim["figure"])}) for claim in raw.get("claims") or [])
    for claim in claims:
        if claim.check not in CLAIM_CHECKS:
            raise CutbenchError(f"{where}: claim check {claim.check!r} is unknown; accepted: {', '.join(CLAIM_CHECKS)} "
                                "(cutbench.paper_claims.CLAIM_CHECKS).")
    if bool(claims) == bool(published):
        raise CutbenchError(f"{where}: a target compares with either published table rows or claims, not both "
                            "and not neither.")
    figure = raw.get("figure") or {"kind": "none"}  # its kind is the renderer's to check (reports.paper.FIGURES)
    ci = raw["ci"]
    if not isinstance(ci, dict) or not ci.get("why"):
        raise CutbenchError(f"{where}: ci needs 'why' (the reduction in words) and 'set' (the overrides).")
    target = Target(
        name=raw["name"], title=raw["title"], source=raw["source"], path=Path(path),
        published_file=published.get("file"), where=published.get("where") or {},
        key=tuple(published.get("key") or ("figure", "dataset", "quantity")),
        quantities=dict(published.get("quantities") or {}), time_hardware=published.get("time"),
        match=tuple(Match(column, spec["field"], {str(k): v for k, v in (spec.get("values") or {}).items()})
                    for column, spec in (raw.get("match") or {}).items()),
        not_run=tuple((rule["when"], rule["reason"]) for rule in raw.get("not_run") or []),
        out_of_scope=tuple((rule["when"], rule["reason"]) for rule in raw.get("out_of_scope") or []),
        orderings=_orderings(raw.get("orderings") or [], where),
        figure=figure, claims=claims, raw_study=raw["study"], ci_why=str(ci["why"]),
        ci_set=tuple(ci.get("set") or ()), paper_scale=str(raw.get("paper_scale", "")),
        notes=tuple(raw.get("notes") or ()))
    frame = target.published()
    for column in [*target.key, *target.quantities, *(m.column for m in target.match)]:
        if column not in frame.columns:
            raise CutbenchError(f"{where}: column {column!r} is not in {target.published_file}; it has "
                                f"{', '.join(frame.columns)}.")
    if frame.empty:
        raise CutbenchError(f"{where}: no published row is selected; check published.where.")
    for ordering in target.orderings:
        if ordering.by not in target.key or ordering.quantity not in target.quantities:
            raise CutbenchError(f"{where}: ordering {ordering.claim!r} needs `by` among the key columns "
                                f"({', '.join(target.key)}) and `quantity` among {', '.join(target.quantities)}.")
        missing = sorted({ordering.better, *ordering.than} - set(frame[ordering.by]))
        if missing:
            raise CutbenchError(f"{where}: ordering {ordering.claim!r} names {', '.join(missing)}, not in the "
                                f"published column {ordering.by!r}.")
    return target


def _orderings(raw: list, where: str) -> tuple:
    orderings = []
    for entry in raw:
        unknown = sorted(set(entry) - _ORDERING_KEYS)
        missing = sorted({"claim", "better", "than", "quantity"} - set(entry))
        if unknown or missing:
            raise CutbenchError(f"{where}: an ordering takes {', '.join(sorted(_ORDERING_KEYS))}"
                                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                                + (f"; missing: {', '.join(missing)}" if missing else "") + ".")
        try:
            validate_params("an ordering", _ORDERING_CONSTRAINTS, {k: v for k, v in entry.items() if k != "than"})
        except CutbenchError as exc:
            raise CutbenchError(f"{where}: {exc}") from None
        orderings.append(Ordering(str(entry["claim"]), str(entry["better"]), tuple(map(str, _as_list(entry["than"]))),
                                  str(entry["quantity"]), str(entry.get("by", "method")),
                                  str(entry.get("holds_in", "all"))))
    return tuple(orderings)


def read_ci_reference() -> dict:
    """cutbench's stored ci-scale results (see :data:`CI_REFERENCE`): ``{"targets": {name: {row: {quantity:
    {seed: value}}}}, ...}``, or an empty reference when none is packaged."""
    source = resources.files("cutbench.paper_targets").joinpath(CI_REFERENCE)
    if not source.is_file():
        return {"targets": {}}
    try:
        reference = json.loads(source.read_text())
        if not isinstance(reference.get("targets"), dict):
            raise ValueError("no 'targets' mapping")
    except ValueError as exc:
        raise CutbenchError(f"the packaged {CI_REFERENCE} is damaged ({exc}); regenerate it with `cutbench paper "
                            "reference FOLDER --output benchmarks/paper/ci_reference.json`.") from None
    return reference


def record_fields(record: dict) -> dict:
    """The cell fields of a stored record, as targets match them."""
    return config_fields(record["config"])


def folder_records(folder: Path, store) -> tuple[Target, str, Study, list[dict], int]:
    """The target, scale and study (with the run's overrides) of a paper run's folder, the latest stored records
    of its cells, and how many stored records were left out because the target's study, as defined now, has
    no such cell (records of an earlier definition of the target)."""
    target, scale = folder_target(folder)
    study = target.study(scale, read_manifest(folder).get("overrides", ()))
    wanted = {experiment_key(cell_config(cell, None, cell.device), keep_part=True) for cell in study.cells}
    stored = list(store.latest_by_configuration().values())
    current = [r for r in stored if experiment_key(r["config"], keep_part=True) in wanted]
    return target, scale, study, current, len(stored) - len(current)


def write_manifest(folder: Path, target: Target, scale: str, overrides: tuple = ()) -> None:
    """Mark ``folder`` as holding ``target`` at ``scale`` (and every ``--set`` override used on it so far);
    refuse a folder that holds another target or scale."""
    folder = Path(folder)
    existing = read_manifest(folder)
    if existing is not None and (existing["target"], existing["scale"]) != (target.name, scale):
        raise CutbenchError(f"{folder} holds paper target {existing['target']!r} at scale {existing['scale']!r}, not "
                            f"{target.name!r} at {scale!r}; give another --out.")
    folder.mkdir(parents=True, exist_ok=True)
    used = list(dict.fromkeys([*(existing or {}).get("overrides", []), *overrides]))
    manifest = {"target": target.name, "scale": scale, **({"overrides": used} if used else {}),
                **({} if target.packaged else {"path": str(target.path)})}  # a user's target: found again by path
    if manifest != existing:
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")


def read_manifest(folder: Path) -> dict | None:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        check_scale(manifest["scale"])
        overrides = [str(o) for o in manifest.get("overrides", [])]
        return {"target": str(manifest["target"]), "scale": manifest["scale"],
                **({"overrides": overrides} if overrides else {}),
                **({"path": str(manifest["path"])} if manifest.get("path") else {})}
    except (ValueError, KeyError, TypeError, AttributeError, CutbenchError) as exc:
        raise CutbenchError(f"{path} is damaged ({exc}); it should read "
                            '{"target": "<name>", "scale": "ci" or "paper"}.') from None


def folder_target(folder: Path, *, target: str | None = None, scale: str | None = None) -> tuple[Target, str]:
    """The target and scale of a paper run's folder; it must be the ``target``/``scale`` asked for, if any.
    (:func:`read_manifest` also gives the overrides the runs were given.)"""
    manifest = read_manifest(folder)
    if manifest is None:
        raise CutbenchError(f"{folder} is not a paper run's folder (no {MANIFEST}); make one with "
                            "`cutbench paper run TARGET --out FOLDER`.")
    if target is not None and manifest["target"] != target:
        raise CutbenchError(f"{folder} holds paper target {manifest['target']!r}, not {target!r}.")
    if scale is not None and manifest["scale"] != scale:
        raise CutbenchError(f"{folder} holds target {manifest['target']!r} at scale {manifest['scale']!r}, not "
                            f"{scale!r}.")
    return get_target(manifest.get("path") or manifest["target"]), manifest["scale"]


__all__ = ["CI_REFERENCE", "HOLDS_IN", "MANIFEST", "SCALES", "Claim", "Match",
           "Ordering", "Target", "check_scale", "folder_records", "folder_target", "get_target", "list_targets",
           "load_target", "read_ci_reference", "read_manifest", "read_published", "record_fields", "write_manifest"]
