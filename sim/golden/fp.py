"""Golden model of the mixed-precision systolic arithmetic: fp16 or bf16 multiplies, fp32 accumulation.

Every value is handled as its raw IEEE bit pattern (``uint16`` for fp16 and bf16, ``uint32`` for fp32), so NaN
payloads, signed zeros and subnormals are explicit. The semantics, identical in the RTL (``sparq.hw.common.fp``):

* **Widening.** An fp16 or bf16 operand is converted to fp32 exactly (every fp16 and bf16 value, subnormals
  included, is an fp32 value).
* **Multiply.** ``product = round_fp32(a * b)``: the exact product, rounded once to fp32, round to nearest, ties to
  even. For fp16 the product is always exact in fp32 (11 x 11-bit significands need 22 bits; the exponents stay
  within ``[2**-48, 2**32)``), so the rounding never acts. For bf16 (8 x 8-bit significands) the exponent range is
  fp32's own, so a product may overflow (to infinity) or fall into fp32's subnormal range (rounded there, or to a
  signed zero).
* **Accumulate.** ``psum_out = round_fp32(psum_in + product)``, round to nearest, ties to even, after each add (no
  fused multiply-add: the product is rounded first). A dot product accumulates in row order, starting from
  ``+0.0`` (the top row's ``psum_in``), so ``sum_r a[r] * W[r, c]`` is
  ``(...((+0 + p[0]) + p[1]) + ...) + p[rows - 1]``.
* **Subnormals** are kept everywhere (no flush to zero, no denormals-are-zero), in inputs, products and sums.
* **Signed zeros** follow IEEE 754 under round to nearest: the product's sign is the XOR of the signs; an exact-zero
  sum of operands with opposite signs is ``+0``; ``-0 + -0 = -0``. (So a column whose products are all ``-0``
  gives ``+0``, because it starts from ``+0``.)
* **Infinities:** overflow rounds to a signed infinity; ``inf * finite nonzero`` and ``inf + finite`` are infinite.
* **NaN:** any NaN operand, ``0 * inf``, and ``inf + -inf`` give the canonical quiet NaN ``0x7FC00000`` (sign 0,
  payload dropped; signalling NaNs are not distinguished and raise nothing).

numpy's float32 arithmetic is IEEE 754 binary32 with round to nearest even and gradual underflow, which is exactly
the above once NaNs are made canonical; :func:`fp32_mul` and :func:`fp32_add` are that, on bit patterns.
"""

import numpy as np

__all__ = ["FORMATS", "CANONICAL_NAN", "to_fp32", "from_float", "fp32_bits", "fp32_values",
           "fp_mul", "fp32_add", "fp_mac", "fp_matmul"]

FORMATS = {"fp16": (5, 10), "bf16": (8, 7), "fp32": (8, 23)}
"""Format name -> (exponent bits, fraction bits)."""

CANONICAL_NAN = 0x7FC00000
"""The fp32 NaN every NaN result is replaced with."""

def _bits(values, dtype, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in "ui" and array.size:
        raise ValueError(f"{what} must be integer bit patterns, not {array.dtype} values; convert floats with "
                         "sparq.sim.golden.fp.from_float first")
    width = np.dtype(dtype).itemsize * 8
    if array.size and (array.min() < 0 or int(array.max()) >> width):
        raise ValueError(f"{what} holds values outside 0..2**{width}-1; pass raw {width}-bit patterns")
    return array.astype(dtype)


def to_fp32(bits, fmt: str) -> np.ndarray:
    """Widen fp16 / bf16 / fp32 bit patterns to float32 values, exactly."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown float format {fmt!r}; choose one of {', '.join(map(repr, FORMATS))}")
    if fmt == "fp16":
        with np.errstate(invalid="ignore"):  # a signalling NaN is quieted, silently
            return _bits(bits, np.uint16, "fp16 operands").view(np.float16).astype(np.float32)
    if fmt == "bf16":
        return (_bits(bits, np.uint16, "bf16 operands").astype(np.uint32) << 16).view(np.float32)
    return _bits(bits, np.uint32, "fp32 operands").view(np.float32)


def from_float(values, fmt: str) -> np.ndarray:
    """Round float values to ``fmt`` bit patterns (round to nearest even; NaN -> the format's canonical NaN)."""
    values = np.asarray(values, dtype=np.float64)
    if fmt == "fp16":
        with np.errstate(over="ignore"):
            return values.astype(np.float16).view(np.uint16)
    if fmt == "bf16":
        bits = values.astype(np.float32).view(np.uint32).astype(np.uint64)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16  # ties to even; carries into the exponent (to inf)
        return np.where(np.isnan(values), 0x7FC0, rounded).astype(np.uint16)
    if fmt == "fp32":
        return fp32_bits(values.astype(np.float32))
    raise ValueError(f"unknown float format {fmt!r}; choose one of {', '.join(map(repr, FORMATS))}")


def fp32_bits(values) -> np.ndarray:
    """float32 values -> uint32 bit patterns, every NaN made :data:`CANONICAL_NAN`."""
    values = np.asarray(values, dtype=np.float32)
    return np.where(np.isnan(values), np.uint32(CANONICAL_NAN), values.view(np.uint32)).astype(np.uint32)


def fp32_values(bits) -> np.ndarray:
    """uint32 bit patterns -> float32 values."""
    return to_fp32(bits, "fp32")


def fp_mul(a_bits, b_bits, fmt: str) -> np.ndarray:
    """The PE's multiply: ``fmt`` x ``fmt`` -> fp32 bit patterns, rounded once (see the module docstring)."""
    with np.errstate(all="ignore"):
        return fp32_bits(to_fp32(a_bits, fmt) * to_fp32(b_bits, fmt))


def fp32_add(a_bits, b_bits) -> np.ndarray:
    """The PE's accumulate: fp32 + fp32 -> fp32 bit patterns, round to nearest even."""
    with np.errstate(all="ignore"):
        return fp32_bits(fp32_values(a_bits) + fp32_values(b_bits))


def fp_mac(psum_bits, a_bits, b_bits, fmt: str) -> np.ndarray:
    """One PE update: ``psum + a * b`` with the product rounded to fp32 first, then the sum."""
    return fp32_add(psum_bits, fp_mul(a_bits, b_bits, fmt))


def fp_matmul(a_bits, w_bits, fmt: str) -> np.ndarray:
    """What the systolic array computes: ``(N, K) @ (K, C)`` on ``fmt`` bit patterns -> ``(N, C)`` fp32 bit patterns,
    each column accumulated from ``+0`` in row order ``k = 0, 1, ..., K - 1``."""
    a, w = np.atleast_2d(a_bits), np.atleast_2d(w_bits)
    if a.shape[1] != w.shape[0]:
        raise ValueError(f"fp_matmul: activations are {a.shape[0]}x{a.shape[1]} but weights are "
                         f"{w.shape[0]}x{w.shape[1]}; the inner sizes must agree")
    total = np.zeros((a.shape[0], w.shape[1]), dtype=np.uint32)
    for k in range(a.shape[1]):
        total = fp_mac(total, a[:, k:k + 1], w[k:k + 1, :], fmt)
    return total
