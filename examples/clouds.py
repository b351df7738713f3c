"""An external dataset for cutbench: anisotropic Gaussian clouds, and a metric that reads the labels.

A dataset loader is a function whose parameters all have defaults (they become the dataset's parameters,
checked and recorded); it returns ``(X, y)`` or ``(X, y, extra_meta)``. Name it in a study as
``examples/clouds.py:anisotropic_clouds``.
"""

import numpy as np
from sklearn.metrics.cluster import contingency_matrix

from cutbench.metrics import Metric


def anisotropic_clouds(n=600, k=3, stretch=4.0, random_state=0):
    """``k`` Gaussian clouds of ``n // k`` points each in 2-D, stretched by ``stretch`` along one random
    direction per cloud: separable, but not by k-means' spherical clusters."""
    if k < 2 or n < k:
        raise ValueError(f"anisotropic_clouds needs k >= 2 and n >= k; got n={n}, k={k}")
    rng = np.random.default_rng(random_state)
    per_cloud = n // k
    points, labels = [], []
    for cloud in range(k):
        angle = rng.uniform(0, np.pi)
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        shape = np.diag([stretch, 0.3]) @ rotation
        centre = 6.0 * np.array([np.cos(2 * np.pi * cloud / k), np.sin(2 * np.pi * cloud / k)])
        points.append(rng.normal(size=(per_cloud, 2)) @ shape + centre)
        labels.append(np.full(per_cloud, cloud))
    X = np.concatenate(points)
    return (X - X.mean(axis=0)) / X.std(axis=0), np.concatenate(labels)


def _purity(y_true, y_pred):
    table = contingency_matrix(y_true, y_pred)
    return float(table.max(axis=0).sum() / table.sum())


purity = Metric("purity", _purity, higher_is_better=True, label="Purity", needs=("labels",))
"""Purity: the share of points in their cluster's majority class (1 is best; many small clusters inflate it)."""
