"""A cell's identity, defined once: its configuration, its key and the coarser keys that group cells.

* :func:`cell_config`: everything that determines a cell's result (the record's ``config``);
* :func:`cell_key`: its content hash, the record's file name (the data's fingerprint excluded, so a
  cell on data that failed to load is found, and replaced, once the data is fixed);
* :func:`configuration_key`: without the seed and the cutbench version (the seeds of one configuration);
* :func:`experiment_key`: without the part's name, the device ``auto`` resolved to and the version (the
  paper job: Table 2's setting IV Ncut and Table 8's Ncut are one experiment).

A plugin enters a configuration by the name it shows and its :attr:`~cutbench.plugins.Plugin.identity`
(target, source SHA-256, package version), so editing a plugin changes the keys of its cells; built-ins
enter by name only, which keeps the keys of studies without plugins as earlier versions stored them.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from cutbench import __version__
from cutbench.canonical import canonical_json
from cutbench.datasets import compact_features, dataset_plugin, features_plugin
from cutbench.methods.registry import method_plugin
from cutbench.metrics import metric_plugin

if TYPE_CHECKING:
    from cutbench.study import Cell


def _named(name: str, plugin) -> dict:
    return {"name": name} if plugin is None else {"name": plugin.name, "plugin": plugin.identity}


def cell_config(cell: Cell, fingerprint: str | None, device: str) -> dict:
    """Everything that determines a cell's result; its hash is the cell's key."""
    features = compact_features(cell.features)
    step = features_plugin(cell.features["name"])
    if step is not None:
        features = {**features, "name": step.name, "plugin": step.identity}
    return {
        "dataset": {**_named(cell.dataset, dataset_plugin(cell.dataset)), "params": cell.dataset_params,
                    "fingerprint": fingerprint},
        "features": features,
        "method": {**_named(cell.method, method_plugin(cell.method)), "params": cell.method_params},
        "protocol": cell.protocol,
        "seed": cell.seed,
        "device": device,
        # the time limit decides whether a result exists, not what it is: raising it must find the same cell
        "timing": {k: v for k, v in cell.timing.items() if k != "time_limit"},
        "cutbench_version": __version__,
        **({"part": cell.part} if cell.part is not None else {}),  # absent without parts: older keys stay
        **({"metrics": [_metric_config(metric) for metric in cell.metrics]} if cell.metrics is not None
           else {}),  # absent: every built-in metric
    }


def _metric_config(spec: dict) -> dict:
    plugin = metric_plugin(spec["name"])
    if plugin is None:
        return spec
    # its declaration travels with the results, so reports order and label its column without importing it
    return {**spec, "name": plugin.obj.name, "plugin": plugin.identity,
            "higher_is_better": plugin.obj.higher_is_better, "label": plugin.obj.label}


def cell_plugins(cell: Cell) -> list[dict]:
    """Where each plugin of a cell came from (its provenance): kind, name, origin and identity."""
    found = [method_plugin(cell.method), dataset_plugin(cell.dataset), features_plugin(cell.features["name"]),
             *(metric_plugin(metric["name"]) for metric in cell.metrics or ())]
    return [{"kind": plugin.kind, "name": plugin.name, "origin": plugin.origin, **plugin.identity}
            for plugin in found if plugin is not None]


def cell_key(config: dict) -> str:
    """Content hash of the configuration and seed of a cell (the data's fingerprint excluded)."""
    dataset = {name: value for name, value in config.get("dataset", {}).items() if name != "fingerprint"}
    return hashlib.sha256(canonical_json({**config, "dataset": dataset}).encode()).hexdigest()[:20]


def fingerprinted_key(config: dict) -> str:
    """The key of versions before 0.1's store rework, which hashed the data's fingerprint too."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:20]


def configuration_key(config: dict) -> str:
    """Content hash of a cell's configuration alone: its key without the seed and the cutbench version,
    so that the seeds of one configuration, and runs of it by two versions, can be grouped and compared."""
    return cell_key({name: value for name, value in config.items() if name not in ("seed", "cutbench_version")})


def experiment_key(config: dict, *, keep_part: bool = False) -> str:
    """What a cell computes apart from where and by which version it ran (the device ``auto`` resolves to on
    the machine, the cutbench version), the data's fingerprint and, unless ``keep_part``, the part's name."""
    dropped = ("device", "cutbench_version", *(() if keep_part else ("part",)))
    return cell_key({k: v for k, v in config.items() if k not in dropped})


__all__ = ["cell_config", "cell_key", "cell_plugins", "configuration_key", "experiment_key", "fingerprinted_key"]
