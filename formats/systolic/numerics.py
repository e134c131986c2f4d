"""The systolic accelerator's integer semantics: requantization, parameter records, Winograd transforms.

Integer semantics
-----------------
* Products are int8 x int8, exact. Sums (down the array and into the accumulators) are int32 with two's-complement
  **wrap-around**, so they do not depend on the order of summation or on the tiling.
* ACTIVATE forms ``x = acc + bias`` exactly (33 bits), then :func:`requantize`:
  ``y = (x * multiplier + 2**(shift-1)) >> shift`` (``>>`` is the arithmetic shift, i.e. floor division), which is
  **round to nearest, ties toward +infinity**; with ``shift == 0`` it is ``x * multiplier``. ``multiplier`` is
  unsigned :data:`MULTIPLIER_BITS` bits, ``shift`` is below :data:`MAX_SHIFT`. Then ReLU (if the flag is set) and
  saturation to ``[-128, 127]``.

Winograd F(2x2, 3x3)
--------------------
``Y = A^T [U * V] A`` with ``V = B^T d B`` (:data:`WINOGRAD_BT`, adds only: 4 terms of +-1, so int8 ``d`` gives
``|V| <= 512``, 10 bits) and ``U = G' g G'^T`` with the integer ``G' = 2 G`` (:data:`WINOGRAD_G2`: up to 9 terms of
weight 1, 2 or 4, so int8 ``g`` gives ``|U| <= 1152``, 12 bits). The array multiplies 10-bit by 12-bit operands into
int32 in Winograd builds; ``A^T`` (:data:`WINOGRAD_AT`, adds only) sums 9 of the 16 ``M = sum_c U * V`` per output,
and ``Y = 4 * (g conv d)`` exactly (the scale of ``G'`` is ``2 * 2``). All sums wrap in int32, which is exact
whenever ``4 * (g conv d)`` fits int32 (wrap-around is arithmetic modulo ``2**32`` and every step is linear with
integer coefficients); the compiler checks that bound and removes the factor 4 exactly in requantization.

Parameter record
----------------
:data:`PARAM_WORDS` (7) consecutive WB words; lane ``j`` holds column ``j``'s parameters as little-endian bytes:
words 0-3 the int32 bias, words 4-5 the uint16 multiplier, word 6 the shift (:func:`pack_params`).
"""

import numpy as np

from .isa import FormatError

__all__ = ["MULTIPLIER_BITS", "MAX_SHIFT", "SHIFT_BITS", "PARAM_WORDS", "rescale", "requantize", "pack_params", "unpack_params",
           "WINOGRAD_BT", "WINOGRAD_G2", "WINOGRAD_AT", "WINOGRAD_V_BITS", "WINOGRAD_U_BITS", "winograd_input_transform",
           "winograd_output_transform"]

MULTIPLIER_BITS = 16
"""Width of the unsigned requantization multiplier."""

MAX_SHIFT = 48
"""Shifts are ``0 <= shift < MAX_SHIFT``: past 48 bits ``(acc + bias) * multiplier`` (49 bits) rounds to 0."""

SHIFT_BITS = 6
"""Width of the shift field of a parameter record."""

PARAM_WORDS = 7
"""WB words in one parameter record (4 bias bytes, 2 multiplier bytes, 1 shift byte)."""


def rescale(acc, bias, multiplier, shift, relu):
    """The ACTIVATE arithmetic before the saturation to int8 (int64; :func:`requantize` clips it)."""
    x = np.asarray(acc, dtype=np.int64) + np.asarray(bias, dtype=np.int64)
    product = x * np.asarray(multiplier, dtype=np.int64)  # |x| < 2**32, multiplier < 2**16: exact in int64
    shift = np.asarray(shift, dtype=np.int64)
    rounding = np.where(shift > 0, np.left_shift(1, np.maximum(shift - 1, 0)), 0)
    y = np.right_shift(product + rounding, shift)
    return np.maximum(y, 0) if relu else y


def requantize(acc, bias, multiplier, shift, relu):
    """The ACTIVATE arithmetic on int arrays (broadcast): int32 ``acc``, int32 ``bias``, uint16 ``multiplier``,
    ``shift`` in ``[0, MAX_SHIFT)``; returns int8. See the module docstring."""
    return np.clip(rescale(acc, bias, multiplier, shift, relu), -128, 127).astype(np.int8)


def _check_params(bias, multiplier, shift):
    bias, multiplier, shift = (np.asarray(v, dtype=np.int64) for v in (bias, multiplier, shift))
    if bias.min(initial=0) < -(1 << 31) or bias.max(initial=0) >= 1 << 31:
        raise FormatError("an ACTIVATE bias does not fit int32")
    if multiplier.min(initial=0) < 0 or multiplier.max(initial=0) >= 1 << MULTIPLIER_BITS:
        raise FormatError(f"an ACTIVATE multiplier is outside [0, 2**{MULTIPLIER_BITS})")
    if shift.min(initial=0) < 0 or shift.max(initial=0) >= MAX_SHIFT:
        raise FormatError(f"an ACTIVATE shift is outside [0, {MAX_SHIFT})")
    return bias, multiplier, shift


def pack_params(bias, multiplier, shift, lanes: int) -> np.ndarray:
    """The :data:`PARAM_WORDS` x ``lanes`` int8 words of one parameter record (missing columns are zero)."""
    bias, multiplier, shift = _check_params(bias, multiplier, shift)
    if not len(bias) == len(multiplier) == len(shift) <= lanes:
        raise FormatError(f"parameter record: bias, multiplier and shift must have the same length <= {lanes}")
    raw = np.zeros((PARAM_WORDS, lanes), dtype=np.uint8)
    n = len(bias)
    raw[0:4, :n] = (bias.astype(np.int32).view(np.uint32)[None, :] >> (8 * np.arange(4))[:, None]) & 0xFF
    raw[4:6, :n] = (multiplier[None, :] >> (8 * np.arange(2))[:, None]) & 0xFF
    raw[6, :n] = shift
    return raw.view(np.int8)


def unpack_params(words) -> tuple:
    """``(bias, multiplier, shift)`` int64 arrays from the :data:`PARAM_WORDS` words of a parameter record."""
    raw = np.asarray(words, dtype=np.int8).view(np.uint8).astype(np.int64)
    if raw.shape[0] != PARAM_WORDS:
        raise FormatError(f"a parameter record has {PARAM_WORDS} words, got {raw.shape[0]}")
    bias = (raw[0:4] << (8 * np.arange(4))[:, None]).sum(axis=0)
    bias = np.where(bias >= 1 << 31, bias - (1 << 32), bias)
    multiplier = (raw[4:6] << (8 * np.arange(2))[:, None]).sum(axis=0)
    return bias, multiplier, raw[6] & ((1 << SHIFT_BITS) - 1)


WINOGRAD_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.int64)
"""Winograd F(2x2, 3x3) input transform ``B^T`` (4 x 4): ``V = B^T d B``."""

WINOGRAD_G2 = np.array([[2, 0, 0], [1, 1, 1], [1, -1, 1], [0, 0, 2]], dtype=np.int64)
"""The weight transform ``G' = 2 G`` (4 x 3), integer: ``U = G' g G'^T = 4 G g G^T``."""

WINOGRAD_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.int64)
"""The output transform ``A^T`` (2 x 4): ``Y = A^T M A``."""

WINOGRAD_V_BITS = 10
"""Width of a transformed input ``V = B^T d B`` of int8 ``d``: 4 terms of +-1, ``-512 <= V <= 510``."""

WINOGRAD_U_BITS = 12
"""Width of a transformed weight ``U = G' g G'^T`` of int8 ``g``: ``|U| <= 9 * 128 = 1152``; the PE weight width
of Winograd builds."""


def winograd_input_transform(d):
    """``B^T d B`` over the last two axes (each 4) of an integer array; exact in int64."""
    d = np.asarray(d, dtype=np.int64)
    return np.einsum("ai,...ij,bj->...ab", WINOGRAD_BT, d, WINOGRAD_BT)


def winograd_output_transform(m):
    """``A^T m A`` over the last two axes (4 x 4 -> 2 x 2) of an integer array, in int64 (not wrapped)."""
    m = np.asarray(m, dtype=np.int64)
    return np.einsum("ai,...ij,bj->...ab", WINOGRAD_AT, m, WINOGRAD_AT)
