"""Input checks shared by the IR and the compression methods, each failing with a clear :mod:`sparq.compiler.errors`."""

import numpy as np

from .errors import ConfigError, ShapeError, WeightError

__all__ = ["weight_array", "finite_float32", "fraction"]


def weight_array(array, what, ndim=None):
    """``array`` as a C-contiguous float32 array, finite and non-empty (and of ``ndim`` dimensions if given).

    ``what`` names the array in the error message, e.g. ``"layer 'fc1': weight"``.
    """
    array = np.asarray(array)
    if ndim is not None and array.ndim != ndim:
        raise ShapeError(f"{what} must have {ndim} dimensions, got shape {array.shape}")
    if array.size == 0:
        raise WeightError(f"{what} is empty (shape {array.shape}); a layer needs at least one weight -- remove the "
                          f"layer or fix the model")
    return finite_float32(array, what, WeightError, "retrain or fix the model (a diverged training run is the usual "
                                                    "cause)")


def finite_float32(array, what, error, remedy):
    """``array`` as C-contiguous float32, or ``error`` naming ``what``, the count and the first index of its NaN,
    infinite or beyond-float32 values, and ``remedy``; no numpy warning escapes the cast."""
    with np.errstate(over="ignore", invalid="ignore"):  # a value beyond float32 becomes inf, reported below
        array = np.ascontiguousarray(array, dtype=np.float32)
    bad = ~np.isfinite(array)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise error(f"{what} has {int(bad.sum())} NaN, infinite or beyond-float32 value(s), the first at index "
                    f"{where}; {remedy}")
    return array


def fraction(value, what):
    """``value`` as a float in [0, 1), or a :class:`ConfigError` naming ``what``."""
    if not (isinstance(value, (int, float, np.integer, np.floating)) and 0.0 <= value < 1.0):
        raise ConfigError(f"{what} must be a fraction in [0, 1), got {value!r}; a sparsity of 0.9 keeps 10 % of "
                          f"the weights, and 1.0 would remove the layer")
    return float(value)
