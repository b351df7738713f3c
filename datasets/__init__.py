"""Datasets: synthetic generators, real datasets and feature pipelines, behind one registry.

To add a dataset, write a loader in a new module of this package, decorate it with
``@register_dataset("name")`` and import the module below. Feature steps register the same way
with ``@register_step("name")`` (see :mod:`cutbench.datasets.features`).

Real datasets read their files from :func:`data_dir` (``$CUTBENCH_DATA``, else ``~/.cache/cutbench``)
and download missing ones unless :func:`downloads_allowed` says no (``CUTBENCH_DOWNLOAD=0`` or
``allow_downloads(False)``); see :mod:`cutbench.datasets._files`.
"""

from cutbench.datasets._files import allow_downloads, data_dir, downloads_allowed
from cutbench.datasets.base import (Dataset, canonical_dataset_name, check_dataset_params, dataset_plugin, list_datasets,
                                    load_dataset, register_dataset)
from cutbench.datasets.features import (PRESETS, canonical_features, compact_features, compute_features, features_plugin,
                                        list_steps, register_step, resolve_features)

# Importing a loader or step module registers its datasets or steps.
from cutbench.datasets import (autoencoder, cifar, digits, features_file, mnist, mnist8m, scatnet,  # noqa: F401, I001
                               synthetic)

__all__ = ["PRESETS", "Dataset", "allow_downloads", "canonical_dataset_name", "canonical_features", "check_dataset_params",
           "compact_features", "compute_features", "data_dir", "dataset_plugin", "downloads_allowed", "features_plugin",
           "list_datasets", "list_steps", "load_dataset", "register_dataset", "register_step", "resolve_features"]
