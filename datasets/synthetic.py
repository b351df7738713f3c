"""Synthetic datasets: two moons, double rings, double C, Gaussian blobs.

All generators share one sampling scheme, chosen so that millions of points are cheap and
reproducible:

* Classes are balanced: ``n`` is split as evenly as possible (the first ``n % k`` classes get
  one point more). The label vector is shuffled with a seeded generator, so classes are not
  contiguous.
* Point ``i`` is built from its label and a fixed number of uniform variates taken from a
  counter-based Philox stream at position ``i``; Gaussian noise comes from those uniforms by
  the Box-Muller transform. A point therefore depends only on the seed, its index and its
  label, never on how the work is chunked.
* Points are written chunk by chunk (``CHUNK_SIZE`` variates at a time) into the preallocated
  output, so peak memory stays near the size of ``X`` and ``y`` plus about 100 MB.

Streams: ``np.random.SeedSequence(random_state).spawn(3)`` gives the label shuffle, the point
variates and the layout (the blob centres).
"""

from __future__ import annotations

import math

import numpy as np

from cutbench import CutbenchError
from cutbench.datasets.base import register_dataset

CHUNK_SIZE = 3_000_000
"""Uniform variates drawn per chunk (one million points of a 2-D shape). Output does not depend on it."""

MIN_CENTRE_DISTANCE = 5.0
"""Smallest distance between two blob centres (10 standard deviations at the default cluster_std)."""

_LABEL_STREAM, _POINT_STREAM, _LAYOUT_STREAM = range(3)


def _check_at_least(dataset: str, key: str, value, minimum, hint: str = "") -> None:
    if value < minimum:
        raise CutbenchError(f"dataset {dataset!r}: {key}={value!r} is too small; use {key} >= {minimum}{hint}.")


def _check_common(dataset: str, n: int, n_classes: int, random_state: int) -> None:
    _check_at_least(dataset, "n", n, n_classes, f" (the dataset has {n_classes} classes)")
    _check_at_least(dataset, "random_state", random_state, 0, " (a non-negative integer seed)")


def _balanced_shuffled_labels(n: int, n_classes: int, seed_sequence: np.random.SeedSequence) -> np.ndarray:
    labels = np.arange(n, dtype=np.int64)
    np.remainder(labels, n_classes, out=labels)
    np.random.default_rng(seed_sequence).shuffle(labels)
    return labels


def _uniforms(key: np.ndarray, start: int, stop: int, per_point: int) -> np.ndarray:
    """Uniforms on [0, 1) for points ``start .. stop-1``: row ``i`` holds variates
    ``i * per_point ..`` of the Philox stream with ``key``, whatever ``start`` is."""
    # A Philox counter step yields 4 raw 64-bit words; position the counter on the step that
    # holds the first word we need and discard the words before it.
    first_word = start * per_point
    bit_generator = np.random.Philox(key=key, counter=first_word // 4)
    bit_generator.random_raw(first_word % 4)
    return np.random.Generator(bit_generator).random((stop - start, per_point))


def _standard_normals(uniforms: np.ndarray) -> np.ndarray:
    """Box-Muller: an even number of uniform columns in, as many N(0, 1) columns out."""
    first, second = uniforms[:, 0::2], uniforms[:, 1::2]
    radius = np.sqrt(-2.0 * np.log1p(-first))  # log(1 - u) with 1 - u in (0, 1]
    angle = 2.0 * np.pi * second
    normals = np.empty_like(uniforms)
    normals[:, 0::2] = radius * np.cos(angle)
    normals[:, 1::2] = radius * np.sin(angle)
    return normals


def _sample(n, n_classes, n_features, n_uniform, n_normal, place, streams):
    """Balanced shuffled labels and points ``place(labels, uniforms, normals)``, chunk by chunk.

    ``place`` gets, for one chunk, the labels, an (m, n_uniform) array of U[0, 1) variates and an
    (m, n_normal) array of N(0, 1) variates, and returns the (m, n_features) points.
    """
    y = _balanced_shuffled_labels(n, n_classes, streams[_LABEL_STREAM])
    key = np.random.Philox(streams[_POINT_STREAM]).state["state"]["key"]
    per_point = n_uniform + 2 * math.ceil(n_normal / 2)
    rows_per_chunk = max(1, CHUNK_SIZE // per_point)
    X = np.empty((n, n_features), dtype=np.float32)
    for start in range(0, n, rows_per_chunk):
        stop = min(start + rows_per_chunk, n)
        uniforms = _uniforms(key, start, stop, per_point)
        normals = _standard_normals(uniforms[:, n_uniform:])[:, :n_normal]
        X[start:stop] = place(y[start:stop], uniforms[:, :n_uniform], normals)
    return X, y


def _streams(random_state: int) -> list[np.random.SeedSequence]:
    return np.random.SeedSequence(random_state).spawn(3)


@register_dataset("two_moons")
def two_moons(n=2000, noise=0.05, random_state=0):
    """Two interleaving half circles, as scikit-learn's ``make_moons``.

    Class 0: ``(cos(pi t), sin(pi t))``; class 1: ``(1 - cos(pi t), 0.5 - sin(pi t))``, with
    ``t ~ U[0, 1)`` (``make_moons`` uses an even grid of ``t`` instead), plus isotropic Gaussian
    noise of standard deviation ``noise``.
    """
    _check_common("two_moons", n, 2, random_state)
    _check_at_least("two_moons", "noise", noise, 0.0)

    def place(labels, uniforms, normals):
        t = np.pi * uniforms[:, 0]
        cos_t, sin_t = np.cos(t), np.sin(t)
        upper = labels == 0
        points = np.column_stack([np.where(upper, cos_t, 1.0 - cos_t), np.where(upper, sin_t, 0.5 - sin_t)])
        return points + noise * normals

    return _sample(n, 2, 2, 1, 2, place, _streams(random_state))


@register_dataset("double_rings")
def double_rings(n=2000, noise=0.03, factor=0.5, random_state=0):
    """Two concentric circles centred at the origin: class 0 of radius 1, class 1 of radius ``factor``.

    Angles are uniform on [0, 2 pi); isotropic Gaussian noise of standard deviation ``noise``
    is added. At the defaults the rings are 0.5 apart, over 16 noise standard deviations.
    """
    _check_common("double_rings", n, 2, random_state)
    _check_at_least("double_rings", "noise", noise, 0.0)
    if not 0.0 < factor < 1.0:
        raise CutbenchError(f"dataset 'double_rings': factor={factor!r} must lie strictly between 0 and 1 "
                            "(it is the inner radius; the outer radius is 1).")

    def place(labels, uniforms, normals):
        angle = 2.0 * np.pi * uniforms[:, 0]
        radius = np.where(labels == 0, 1.0, factor)[:, None]
        return radius * np.column_stack([np.cos(angle), np.sin(angle)]) + noise * normals

    return _sample(n, 2, 2, 1, 2, place, _streams(random_state))


@register_dataset("double_c")
def double_c(n=2000, noise=0.05, random_state=0):
    """Two interlocking C shapes: 3/4-circle arcs of radius 1 with openings in opposite directions.

    Class 0 is centred at ``(-0.5, 0)`` with its 90-degree opening centred on the direction of
    60 degrees, i.e. on ``(0, sqrt(3)/2)``, where the two full circles would cross; it covers
    the angles ``[105, 375]`` degrees. Class 1 is class 0 reflected through the origin
    (centre ``(0.5, 0)``, opening towards 240 degrees, on ``(0, -sqrt(3)/2)``). So each arc runs
    through the other's opening and the Cs interlock like two chain links without touching: the
    closest noise-free points of the two classes are about 0.59 apart. Angles along each arc
    are uniform; isotropic Gaussian noise of standard deviation ``noise`` is added.
    """
    _check_common("double_c", n, 2, random_state)
    _check_at_least("double_c", "noise", noise, 0.0)
    arc_start = np.pi / 3 + np.pi / 4

    def place(labels, uniforms, normals):
        angle = arc_start + 1.5 * np.pi * uniforms[:, 0]
        class_zero = np.column_stack([np.cos(angle) - 0.5, np.sin(angle)])
        reflect = np.where(labels == 0, 1.0, -1.0)[:, None]
        return reflect * class_zero + noise * normals

    return _sample(n, 2, 2, 1, 2, place, _streams(random_state))


def _blob_centres(n_clusters: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """Centres uniform in a cube, each redrawn until it is MIN_CENTRE_DISTANCE from the others.

    The cube's side, ``2 * MIN_CENTRE_DISTANCE * n_clusters ** (1 / d)``, leaves room for every
    centre; it grows by a quarter after 100 rejections in a row so that drawing always ends.
    """
    side = 2.0 * MIN_CENTRE_DISTANCE * n_clusters ** (1.0 / d)
    centres = np.empty((0, d))
    rejections = 0
    while len(centres) < n_clusters:
        candidate = rng.uniform(-side / 2, side / 2, size=d)
        if np.all(np.linalg.norm(centres - candidate, axis=1) >= MIN_CENTRE_DISTANCE):
            centres = np.vstack([centres, candidate])
            rejections = 0
        else:
            rejections += 1
            if rejections == 100:
                side *= 1.25
                rejections = 0
    return centres


@register_dataset("blobs")
def blobs(n=2000, n_clusters=3, d=2, cluster_std=0.5, random_state=0):
    """``n_clusters`` isotropic Gaussian blobs in ``d`` dimensions.

    Centres are drawn from the seed (see ``_blob_centres``), at least ``MIN_CENTRE_DISTANCE``
    (5.0) apart; each point is its class centre plus N(0, cluster_std^2 I). ``cluster_std`` plays
    the role the other generators give to ``noise``.
    """
    _check_at_least("blobs", "n_clusters", n_clusters, 2)
    _check_at_least("blobs", "d", d, 1)
    _check_at_least("blobs", "cluster_std", cluster_std, 0.0)
    _check_common("blobs", n, n_clusters, random_state)
    streams = _streams(random_state)
    centres = _blob_centres(n_clusters, d, np.random.default_rng(streams[_LAYOUT_STREAM]))

    def place(labels, uniforms, normals):
        return centres[labels] + cluster_std * normals

    return _sample(n, n_clusters, d, 0, d, place, streams)
