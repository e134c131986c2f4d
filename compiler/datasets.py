"""The bundled data sets: scikit-learn's digits (1,797 real 8x8 images), wine (178 wines, 13 chemical features, 3
cultivars) and breast cancer (569 tumours, 30 features, benign or malignant), all shipped with scikit-learn, so
nothing is downloaded. Each is split once and for all by :func:`stratified_split`."""

import numpy as np

__all__ = ["TEST_FRACTION", "SPLIT_SEED", "BUNDLED", "stratified_split", "standardise", "load_digits_split",
           "load_wine_split", "load_breast_cancer_split", "load_split"]

TEST_FRACTION = 0.3
"""Fraction of the samples held out for test (for digits: 540 test images, 1,257 training images)."""

SPLIT_SEED = 0
"""Seed of the stratified split; fixed, so every engineer sees the same test set."""


def stratified_split(x, y, test_fraction=TEST_FRACTION, seed=SPLIT_SEED):
    """``(x_train, y_train, x_test, y_test, stratified)``: a seeded split holding out ``test_fraction``.

    Stratified by class (each class keeps its share in both parts) when every class has at least two samples and
    the held-out part can hold every class; otherwise a plain shuffled split, and ``stratified`` is False.
    """
    from sklearn.model_selection import train_test_split

    _, counts = np.unique(y, return_counts=True)
    n_test = int(np.ceil(test_fraction * len(y)))
    stratified = bool(counts.min() >= 2 and len(counts) <= min(n_test, len(y) - n_test))
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_fraction, random_state=seed,
                                                        stratify=y if stratified else None)
    return x_train, y_train, x_test, y_test, stratified


def standardise(x_train, x_test):
    """Both parts scaled by the training part's per-feature mean and standard deviation (a constant feature is
    only centred), as float32."""
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)


def load_digits_split():
    """Return ``(X_train, y_train, X_test, y_test)`` of scikit-learn's digits, split once and for all.

    X is float32 of shape (n, 64), the 8x8 pixels in row-major order scaled to [0, 1] (pixel / 16); y is int64 in
    0..9. The split is stratified by class, holds out :data:`TEST_FRACTION` (30 %) for test and uses
    ``random_state=``:data:`SPLIT_SEED`, so it never changes: 1,257 training and 540 test images.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    return stratified_split((digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64))[:4]


def _tabular(loader):
    """The standardised stratified split of one of scikit-learn's bundled tables."""
    table = loader()
    x_train, y_train, x_test, y_test, _ = stratified_split(table.data.astype(np.float64),
                                                           table.target.astype(np.int64))
    x_train, x_test = standardise(x_train, x_test)
    return x_train, y_train, x_test, y_test


def load_wine_split():
    """``(X_train, y_train, X_test, y_test)`` of scikit-learn's wine: 13 features standardised by the training
    part's mean and deviation (float32), 3 classes; 124 training and 54 test wines (stratified, seed 0)."""
    from sklearn.datasets import load_wine

    return _tabular(load_wine)


def load_breast_cancer_split():
    """``(X_train, y_train, X_test, y_test)`` of scikit-learn's breast cancer (Wisconsin diagnostic): 30 features
    standardised by the training part's mean and deviation (float32), 2 classes (0 malignant, 1 benign); 398
    training and 171 test tumours (stratified, seed 0)."""
    from sklearn.datasets import load_breast_cancer

    return _tabular(load_breast_cancer)


BUNDLED = {"digits": load_digits_split, "wine": load_wine_split, "breast_cancer": load_breast_cancer_split}
"""The bundled data sets by name."""


def load_split(name):
    """The split of the bundled data set ``name`` (one of :data:`BUNDLED`)."""
    from .errors import DataError

    if name not in BUNDLED:
        raise DataError(f"no bundled data set {name!r}; the bundled ones are {', '.join(BUNDLED)}")
    return BUNDLED[name]()
