"""Numpy golden model of :class:`sparq.hw.common.mac.MACCell`.

Integer semantics: the exact sum ``c + a * b`` is fitted to ``acc_width`` signed bits, by clamping
(``saturate=True``) or by wrapping modulo ``2**acc_width`` (``saturate=False``). Computed in int64, so it is exact
while ``a_width + b_width <= 62`` and ``acc_width <= 62``.
"""

import numpy as np

__all__ = ["fit", "mac", "accumulate"]


def _check(acc_width, *operand_widths):
    if acc_width > 62 or sum(operand_widths) > 62:
        raise ValueError(f"the int64 golden model is exact only up to 62-bit accumulators and products "
                         f"(asked for acc_width={acc_width}, operand widths {operand_widths})")


def fit(x, acc_width: int, saturate: bool):
    """Fit exact integers ``x`` to ``acc_width`` signed bits; return ``(fitted, overflowed)`` as int64 / bool arrays."""
    x = np.asarray(x, dtype=np.int64)
    lo, hi = -(1 << (acc_width - 1)), (1 << (acc_width - 1)) - 1
    overflow = (x < lo) | (x > hi)
    if saturate:
        return np.clip(x, lo, hi), overflow
    wrapped = (x - lo) % (1 << acc_width) + lo
    return wrapped, overflow


def mac(a, b, c, *, a_width: int, b_width: int, acc_width: int, saturate: bool):
    """One MAC update per element: ``fit(c + a * b)``. Returns ``(y, overflow)``."""
    _check(acc_width, a_width, b_width)
    a, b, c = (np.asarray(v, dtype=np.int64) for v in (a, b, c))
    return fit(c + a * b, acc_width, saturate)


def accumulate(a, b, *, a_width: int, b_width: int, acc_width: int, saturate: bool, start: int = 0):
    """The sequence of ``y`` values of a MAC whose output feeds its addend, starting from ``start``.

    Each step fits ``y + a[k] * b[k]``; a saturated or wrapped value is carried into the next step, as in hardware.
    """
    _check(acc_width, a_width, b_width)
    products = np.asarray(a, dtype=np.int64) * np.asarray(b, dtype=np.int64)
    if not saturate:
        return fit(start + np.cumsum(products), acc_width, saturate)[0]
    ys = np.empty(len(products), dtype=np.int64)
    y = start
    lo, hi = -(1 << (acc_width - 1)), (1 << (acc_width - 1)) - 1
    for k, p in enumerate(products.tolist()):  # clamping does not commute with summation: a true recurrence
        y = min(max(y + p, lo), hi)
        ys[k] = y
    return ys
