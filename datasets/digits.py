"""scikit-learn's bundled handwritten digits (no download)."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from cutbench.datasets.base import register_dataset


@register_dataset("digits")
def digits():
    """The 1,797 8x8 digit images of ``sklearn.datasets.load_digits``, 10 classes.

    X is (1797, 64) with pixel intensities divided by 16, so it lies in [0, 1]; rows keep
    scikit-learn's order, in which the classes are already interleaved.
    """
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y.astype(np.int64)
