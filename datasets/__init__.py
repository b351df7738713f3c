"""Datasets for cutbench: ``load_dataset(name, **params)`` returns a :class:`Dataset`.

To add a dataset, write a loader in a new module of this package, decorate it with
``@register_dataset("name")`` and import the module below.
"""

from cutbench.datasets.base import Dataset, check_dataset_params, list_datasets, load_dataset, register_dataset

# Importing a loader module registers its datasets.
from cutbench.datasets import digits, synthetic  # noqa: F401

__all__ = ["Dataset", "check_dataset_params", "list_datasets", "load_dataset", "register_dataset"]
