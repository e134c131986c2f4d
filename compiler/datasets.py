"""The one dataset everybody uses: scikit-learn's bundled digits (1,797 real 8x8 images), no download."""

import numpy as np

__all__ = ["TEST_FRACTION", "SPLIT_SEED", "load_digits_split"]

TEST_FRACTION = 0.3
"""Fraction of the 1,797 images held out for test: 540 test images, 1,257 training images."""

SPLIT_SEED = 0
"""Seed of the stratified split; fixed, so every engineer sees the same test set."""


def load_digits_split():
    """Return ``(X_train, y_train, X_test, y_test)`` of scikit-learn's digits, split once and for all.

    X is float32 of shape (n, 64), the 8x8 pixels in row-major order scaled to [0, 1] (pixel / 16); y is int64 in
    0..9. The split is stratified by class, holds out :data:`TEST_FRACTION` (30 %) for test and uses
    ``random_state=``:data:`SPLIT_SEED`, so it never changes: 1,257 training and 540 test images.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED,
                                                        stratify=y)
    return x_train, y_train, x_test, y_test
