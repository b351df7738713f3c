"""Reference computations the tests compare against, written independently of cutbench.metrics."""

import numpy as np
from scipy.optimize import linear_sum_assignment


def hungarian_accuracy(y_true, y_pred):
    """Best one-to-one match of predicted clusters to classes, as a fraction of points."""
    classes, y_true = np.unique(y_true, return_inverse=True)
    clusters, y_pred = np.unique(y_pred, return_inverse=True)
    counts = np.zeros((len(classes), len(clusters)))
    np.add.at(counts, (y_true, y_pred), 1)
    rows, cols = linear_sum_assignment(-counts)
    return counts[rows, cols].sum() / len(y_true)
