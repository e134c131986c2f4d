"""The golden model of the mixed-precision arithmetic (``sparq.sim.golden.fp``): each rule of its contract on known values."""

import numpy as np
import pytest

from sparq.sim.golden.fp import CANONICAL_NAN, fp32_add, fp32_bits, fp_mac, fp_matmul, fp_mul, from_float, to_fp32

ONE32, NEG = 0x3F800000, 1 << 31


def bits32(x) -> int:
    return int(fp32_bits(np.float32(x)))


def test_widening_is_exact_including_subnormals():
    assert to_fp32(0x0001, "fp16") == np.float32(2.0 ** -24)  # smallest fp16 subnormal
    assert to_fp32(0x03FF, "fp16") == np.float32(1023 * 2.0 ** -24)
    assert to_fp32(0x7BFF, "fp16") == np.float32(65504.0)
    assert to_fp32(0x0001, "bf16") == np.float32(2.0 ** -133)  # bf16 subnormals are fp32 subnormals
    assert to_fp32(0x3F80, "bf16") == np.float32(1.0)
    assert np.isinf(to_fp32(0xFC00, "fp16")) and to_fp32(0xFC00, "fp16") < 0


def test_fp16_products_are_exact_in_fp32():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 1 << 16, 20000), rng.integers(0, 1 << 16, 20000)
    with np.errstate(invalid="ignore"):
        fa, fb = to_fp32(a, "fp16").astype(np.float64), to_fp32(b, "fp16").astype(np.float64)
        exact = fa * fb
    finite = np.isfinite(fa) & np.isfinite(fb)
    assert np.array_equal(fp32_values_of(fp_mul(a, b, "fp16"))[finite], exact[finite])


def fp32_values_of(bits):
    return np.asarray(bits, dtype=np.uint32).view(np.float32).astype(np.float64)


def test_bf16_products_round_once_to_fp32():
    # (1 + 2**-7)**2 = 1 + 2**-6 + 2**-14: exact; at the bottom of the range the product rounds into subnormals.
    assert fp_mul(0x3F81, 0x3F81, "bf16") == bits32(1 + 2.0 ** -6 + 2.0 ** -14)
    tiny = int(from_float(1.5 * 2.0 ** -75, "bf16"))
    assert fp_mul(tiny, tiny, "bf16") == bits32(np.float32(2.25 * 2.0 ** -150))  # 2.25 * 2**-150 -> 2**-149
    assert fp_mul(tiny, tiny, "bf16") == 0x00000001
    big = int(from_float(2.0 ** 100, "bf16"))
    assert fp_mul(big, big, "bf16") == 0x7F800000
    assert fp_mul(big, big | 0x8000, "bf16") == 0xFF800000


def test_round_to_nearest_even_on_ties():
    half_ulp = bits32(2.0 ** -24)  # half an ulp of 1.0
    assert fp32_add(ONE32, half_ulp) == ONE32  # tie, 1.0 is even
    assert fp32_add(ONE32 | 1, half_ulp) == ONE32 + 2  # tie, rounds up to even
    assert fp32_add(ONE32, bits32(3 * 2.0 ** -25)) == ONE32 + 1  # above the tie
    assert fp32_add(0x7F7FFFFF, bits32(2.0 ** 103)) == 0x7F800000  # max + half ulp: tie to even = overflow
    assert fp32_add(0x7F7FFFFF, bits32(2.0 ** 102)) == 0x7F7FFFFF


def test_subnormals_are_kept():
    assert fp32_add(0x00000001, 0x00000001) == 0x00000002
    assert fp32_add(0x007FFFFF, 0x00000001) == 0x00800000  # into the normal range
    assert fp32_add(0x00800000, 0x80000001) == 0x007FFFFF  # out of it
    assert fp_mul(0x0001, 0x3C00, "fp16") == bits32(2.0 ** -24)


def test_signed_zeros():
    assert fp32_add(NEG, NEG) == NEG
    assert fp32_add(NEG, 0) == 0
    assert fp32_add(ONE32, ONE32 | NEG) == 0
    assert fp_mul(0x8000, 0x3C00, "fp16") == NEG
    assert fp_mul(0x8000, 0x8000, "fp16") == 0
    assert fp_mac(0, 0x8000, 0x3C00, "fp16") == 0  # +0 + -0 = +0
    assert fp_mac(NEG, 0x8000, 0x3C00, "fp16") == NEG


def test_infinities_and_canonical_nan():
    inf16, ninf16, nan16, snan16 = 0x7C00, 0xFC00, 0x7E01, 0xFC01
    assert fp_mul(inf16, 0x3C00, "fp16") == 0x7F800000
    assert fp_mul(inf16, 0xBC00, "fp16") == 0xFF800000
    for a, b in ((inf16, 0), (0x8000, ninf16), (nan16, 0x3C00), (snan16, inf16)):
        assert fp_mul(a, b, "fp16") == CANONICAL_NAN
    assert fp32_add(0x7F800000, 0xFF800000) == CANONICAL_NAN
    assert fp32_add(0xFFC12345, ONE32) == CANONICAL_NAN
    assert fp32_add(0x7F800000, 0x7F7FFFFF) == 0x7F800000


def test_matmul_accumulates_in_row_order_from_plus_zero():
    a = from_float([[1.0, 2.0 ** -24, 2.0 ** -24]], "fp16")  # 1 + 2**-24 + 2**-24: each add a tie, kept at 1.0
    w = from_float([[1.0], [1.0], [1.0]], "fp16")
    assert fp_matmul(a, w, "fp16")[0, 0] == ONE32
    reordered = from_float([[2.0 ** -24, 2.0 ** -24, 1.0]], "fp16")  # 2**-23 first: 1 + 2**-23 exactly
    assert fp_matmul(reordered, w, "fp16")[0, 0] == ONE32 + 1
    negative_zeros = from_float([[-0.0, -0.0]], "fp16")
    assert fp_matmul(negative_zeros, from_float([[1.0], [1.0]], "fp16"), "fp16")[0, 0] == 0  # starts from +0


def test_from_float_rounds_to_nearest_even():
    assert from_float(1 + 2.0 ** -8, "bf16") == 0x3F80  # tie, even
    assert from_float(1 + 3 * 2.0 ** -8, "bf16") == 0x3F82  # tie, up to even
    assert from_float(float("nan"), "bf16") == 0x7FC0
    assert from_float(3.4e38, "bf16") == 0x7F80  # rounds past the largest bf16 to infinity
    assert from_float(1 + 2.0 ** -11, "fp16") == 0x3C00


@pytest.mark.parametrize("call, message", [
    (lambda: to_fp32([1.5], "fp16"), "must be integer bit patterns"),
    (lambda: to_fp32([1 << 16], "fp16"), "outside 0..2\\*\\*16-1"),
    (lambda: fp_mul([1], [1], "fp8"), "unknown float format 'fp8'"),
    (lambda: fp_matmul(np.zeros((2, 3), np.uint16), np.zeros((2, 3), np.uint16), "fp16"), "inner sizes must agree"),
])
def test_bad_input_is_refused_clearly(call, message):
    with pytest.raises(ValueError, match=message):
        call()
