"""The learned-affinity contract: what a trained affinity (Siamese, SENet, or a new one) must provide.

:mod:`cutbench.affinity` trains, caches and prepares every learned affinity through this interface, and
every method takes any of them through :func:`cutbench.affinity.prepare_affinity`. A new learned affinity
subclasses :class:`LearnedAffinity` (a frozen dataclass of its parameters) and is added to
:data:`cutbench.affinity.LEARNED_AFFINITIES` under its ``kind``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

import torch


class PreparedLearnedAffinity(Protocol):
    """A learned affinity ready on the training points: what the methods read from it."""

    points: torch.Tensor  # the points the graph is built on (an embedding of X, or X itself)
    kernel: Any  # the heat kernel on ``points`` (an Affinity), or None when the affinity is not one

    def batch(self, index) -> torch.Tensor:
        """The dense (b, b) affinity among the points ``index`` (a mini-batch)."""

    def graph(self, *, chunk_size=None, report: dict | None = None):
        """The sparse (n, n) affinity graph of all points."""


class LearnedAffinity(ABC):
    """A learned affinity's specification: its parameters, its training and its preparation on data.

    ``kind`` names it in studies (``affinity: {kind: ...}``); ``random_state`` (None: the cell's seed) seeds
    its training.
    """

    kind: ClassVar[str]
    random_state: int | None

    @abstractmethod
    def to_dict(self) -> dict:
        """A plain dict with its ``kind``, from which :meth:`from_dict` rebuilds an equal specification."""

    @classmethod
    @abstractmethod
    def from_dict(cls, value: Mapping) -> LearnedAffinity:
        """Build from a dict of the fields; unknown keys are an error naming the accepted ones."""

    @abstractmethod
    def training_params(self) -> dict:
        """The parameters that change the trained network (the cache key: the kernel is not among them)."""

    @abstractmethod
    def fit(self, X, *, device="auto", random_state=None):
        """Train on ``X``; returns the trained model that :meth:`prepare` takes."""

    @abstractmethod
    def prepare(self, fitted, points: torch.Tensor) -> PreparedLearnedAffinity:
        """The trained affinity made ready on ``points`` (the training data on its device)."""


__all__ = ["LearnedAffinity", "PreparedLearnedAffinity"]
