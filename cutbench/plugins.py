"""Plugins: methods, datasets, metrics and feature steps from outside cutbench.

A study names a plugin wherever it names a built-in, in one of three forms:

* ``package.module:Object``: an object of an importable module;
* ``path/to/file.py:Object``: an object of a Python file (a relative path is taken from the study
  file's folder, else from the current folder);
* ``name``: a built-in, or a name an installed package registers under the entry-point group of its
  kind (``cutbench.methods``, ``cutbench.datasets``, ``cutbench.metrics``, ``cutbench.features``).

A built-in name wins over an entry point of the same name: a study must not change meaning because a
package was installed. The shadowed entry point is listed as such by ``cutbench list`` and can still be
named by its ``package.module:Object`` target.

Every process resolves a plugin again from its *spec* (the form above, with a file's path made
absolute), so a plugin works in pool and dask workers and in a time-limited cell's child process, which
all start fresh. What a cell records of a plugin (:attr:`Plugin.identity`) is its target and the SHA-256
of the file that defines it (plus its package's version when it comes from an installed distribution),
so editing a plugin re-runs its cells.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cutbench import CutbenchError

KINDS = {"method": "cutbench.methods", "dataset": "cutbench.datasets", "metric": "cutbench.metrics",
         "feature step": "cutbench.features"}
"""Plugin kind -> the entry-point group a package registers it under."""


@dataclass(frozen=True)
class Plugin:
    """A resolved plugin.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    name : str
        The name results, tables and the registry show: the object's own ``name`` attribute when it has
        one (a method's), else its ``__name__``; for an entry point, the entry point's name.
    spec : str
        How any process loads it again: ``package.module:Object``, ``/absolute/path.py:Object`` or an
        entry point's name.
    obj : object
        The class, function or instance itself.
    origin : str
        Where it came from, in words (``cutbench list`` shows it).
    identity : dict
        What a cell's key records of it: ``target`` (as named, a file by its name only), ``sha256`` of
        the defining file, ``version`` of its distribution (None outside one).
    """

    kind: str
    name: str
    spec: str
    obj: Any
    origin: str
    identity: dict


def is_target(name) -> bool:
    """Whether ``name`` names an object by ``module:Object`` or ``file.py:Object`` (not a registered name)."""
    return isinstance(name, str) and ":" in name


def absolute_spec(name: str, base: Path | None = None) -> str:
    """``name`` with a relative ``file.py`` path made absolute: from ``base`` (a study file's folder) when the
    file is there, else from the current folder. Other names are returned unchanged."""
    if not is_target(name):
        return name
    path, _, obj = name.rpartition(":")
    if not path.endswith(".py"):
        return name
    candidates = [Path(base) / path] if base is not None and not Path(path).is_absolute() else []
    candidates.append(Path(path))
    found = next((candidate for candidate in candidates if candidate.is_file()), candidates[-1])
    return f"{found.expanduser().resolve()}:{obj}"


def _file_sha256(path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except (OSError, TypeError):
        return None


def _distribution_of(module_name: str) -> tuple[str | None, str | None]:
    top = module_name.split(".")[0]
    names = importlib.metadata.packages_distributions().get(top) or []
    if not names:
        return None, None
    try:
        return names[0], importlib.metadata.version(names[0])
    except importlib.metadata.PackageNotFoundError:
        return names[0], None


def _load_file(kind: str, spec: str, path: Path):
    if not path.is_file():
        raise CutbenchError(f"{kind} plugin {spec!r}: there is no file {path}; give the path of a .py file, "
                            "relative to the study file's folder or the current folder, or absolute.")
    # One module per file, under a name fixed by its path, so pickling its objects finds them again.
    module_name = "cutbench_plugin_" + hashlib.sha256(str(path).encode()).hexdigest()[:12] + "_" + path.stem
    if module_name in sys.modules:
        return sys.modules[module_name]
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except BaseException as exc:
        del sys.modules[module_name]
        raise CutbenchError(f"{kind} plugin {spec!r} raised at import: {type(exc).__name__}: {exc}; fix {path} "
                            f"(run `python {path}` to see the traceback).") from exc
    return module


def _load_module(kind: str, spec: str, module_name: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise CutbenchError(f"{kind} plugin {spec!r}: no module named {exc.name!r}; install its package or "
                                "add its folder to PYTHONPATH (or name the file: path/to/file.py:Object).") from exc
        raise CutbenchError(f"{kind} plugin {spec!r} raised at import: {type(exc).__name__}: {exc}; install what "
                            "it needs.") from exc
    except Exception as exc:
        raise CutbenchError(f"{kind} plugin {spec!r} raised at import: {type(exc).__name__}: {exc}; fix the "
                            f"module (python -c 'import {module_name}' shows the traceback).") from exc


def _attribute(kind: str, spec: str, module, attribute: str):
    obj = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            defined = sorted(name for name in vars(module) if not name.startswith("_"))
            where = getattr(module, "__file__", None) or module.__name__
            raise CutbenchError(f"{kind} plugin {spec!r}: {where} has no {attribute!r}; it defines: "
                                f"{', '.join(defined) or 'nothing public'}.")
        obj = getattr(obj, part)
    return obj


def _display_name(obj, fallback: str) -> str:
    own = getattr(obj, "name", None)
    if isinstance(own, str) and own:
        return own
    return getattr(obj, "__name__", None) or fallback


def _identity(target: str, obj, module) -> tuple[dict, str | None]:
    source = getattr(module, "__file__", None)
    try:
        source = inspect.getsourcefile(obj if inspect.isclass(obj) or inspect.isfunction(obj) else type(obj)) or source
    except TypeError:
        pass
    distribution, version = _distribution_of(module.__name__) if not module.__name__.startswith(
        "cutbench_plugin_") else (None, None)
    return {"target": target, "sha256": _file_sha256(source), "version": version}, distribution


@functools.cache
def _load_target(kind: str, spec: str) -> Plugin:
    where, _, attribute = spec.rpartition(":")
    if not where or not attribute:
        raise CutbenchError(f"{kind} plugin {spec!r}: write package.module:Object or path/to/file.py:Object.")
    if where.endswith(".py"):
        path = Path(where)
        module = _load_file(kind, spec, path)
        obj = _attribute(kind, spec, module, attribute)
        identity, _ = _identity(f"{path.name}:{attribute}", obj, module)
        return Plugin(kind, _display_name(obj, attribute), spec, obj, f"file {path}", identity)
    module = _load_module(kind, spec, where)
    obj = _attribute(kind, spec, module, attribute)
    identity, distribution = _identity(spec, obj, module)
    origin = f"module {where} ({getattr(module, '__file__', None) or 'no file'}" + (
        f", package {distribution} {identity['version']})" if distribution else ")")
    return Plugin(kind, _display_name(obj, attribute), spec, obj, origin, identity)


@functools.cache
def entry_points(kind: str) -> dict[str, importlib.metadata.EntryPoint]:
    """The entry points installed packages register for ``kind``, by name (read once per process)."""
    return {entry.name: entry for entry in importlib.metadata.entry_points(group=KINDS[kind])}


@functools.cache
def _load_entry_point(kind: str, name: str) -> Plugin:
    entry = entry_points(kind)[name]
    plugin = _load_target(kind, entry.value)
    distribution = entry.dist.name if entry.dist is not None else None
    version = entry.dist.version if entry.dist is not None else None
    return Plugin(kind, name, name, plugin.obj, f"entry point {name} = {entry.value} (package {distribution} {version})",
                  {**plugin.identity, "target": entry.value, "version": version})


def load(kind: str, spec: str) -> Plugin:
    """The plugin ``spec`` names (see the module docstring), imported once per process.

    Raises
    ------
    CutbenchError
        When the file or module does not exist, raises at import, or lacks the object; the message names
        the plugin and the fix. Whether the object satisfies its kind's contract is checked by the
        registry of that kind.
    """
    if kind not in KINDS:
        raise CutbenchError(f"unknown plugin kind {kind!r}; accepted: {', '.join(KINDS)}.")
    if is_target(spec):
        return _load_target(kind, absolute_spec(spec))
    if spec in entry_points(kind):
        return _load_entry_point(kind, spec)
    raise CutbenchError(f"no {kind} named {spec!r} is built in or registered by an installed package (entry-point "
                        f"group {KINDS[kind]}); name a plugin as package.module:Object or path/to/file.py:Object.")


def installed_plugins(builtin: dict[str, set]) -> list[str]:
    """One line per entry point of an installed package: kind, name, target, package, and whether a built-in of
    the same name shadows it or it fails to load (listing never fails on a broken package)."""
    lines = []
    for kind in KINDS:
        for name, entry in sorted(entry_points(kind).items()):
            package = f"{entry.dist.name} {entry.dist.version}" if entry.dist is not None else "unknown package"
            line = f"{kind:<12} {name} = {entry.value}  (package {package})"
            if name in builtin.get(kind, ()):
                line += f"; SHADOWED by the built-in {kind} {name!r} (built-ins win); name it as {entry.value}"
            else:
                try:
                    _load_entry_point(kind, name)
                except CutbenchError as exc:
                    line += f"; BROKEN: {exc}"
            lines.append(line)
    return lines


def is_entry_point(kind: str, name) -> bool:
    return isinstance(name, str) and name in entry_points(kind)


__all__ = ["KINDS", "Plugin", "absolute_spec", "entry_points", "installed_plugins", "is_entry_point", "is_target",
           "load"]
