"""Testbench bodies and stimulus for the mixed-precision arithmetic (``sparq.hw.common.fp``) against ``sparq.sim.golden.fp``.

Stimulus is raw bit patterns chosen to hit the special cases often: signed zeros, subnormals (smallest, largest),
the smallest and largest normals, infinities, NaNs (quiet and signalling), exponents around 1.0, and operand
pairs built to cancel, to tie, or to overflow and underflow. The PE and matrix-unit bodies of
``sparq.sim.tb.systolic`` take the arithmetic from :func:`arithmetic_model`.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..golden.fp import FORMATS, fp32_add, fp_mac, fp_matmul, fp_mul, from_float
from ..golden.mac import fit
from ..scoreboard import assert_words_equal
from ..systolic.stimulus import random_int8, random_int32

__all__ = ["fp_pattern", "directed_mul_cases", "directed_add_cases", "fp_unit_sweep", "ArithmeticModel",
           "arithmetic_model"]


def fp_pattern(rng: random.Random, fmt: str) -> int:
    """A random bit pattern of ``fmt``: a quarter uniformly random bits, the rest with an exponent and a fraction
    drawn from the edge values (zero and all-ones exponents, 1, bias, bias +- a little, the top normal ...)."""
    exp_bits, frac_bits = FORMATS[fmt]
    width = 1 + exp_bits + frac_bits
    if rng.random() < 0.25:
        return rng.getrandbits(width)
    exp_max, bias = (1 << exp_bits) - 1, (1 << (exp_bits - 1)) - 1
    exp = rng.choice((0, 0, 1, 2, exp_max - 1, exp_max, bias, bias + 1, bias - 1,
                      bias + rng.randint(-12, 12), rng.randrange(exp_max + 1), rng.randrange(exp_max + 1)))
    frac = rng.choice((0, 0, 1, (1 << frac_bits) - 1, 1 << (frac_bits - 1), 1 << (frac_bits - 1) | 1,
                       rng.getrandbits(frac_bits), rng.getrandbits(frac_bits), rng.getrandbits(frac_bits)))
    return rng.getrandbits(1) << (width - 1) | exp << frac_bits | frac


def _specials(fmt: str) -> list:
    exp_bits, frac_bits = FORMATS[fmt]
    top, exp_max = 1 << (exp_bits + frac_bits), (1 << exp_bits) - 1
    one = ((1 << (exp_bits - 1)) - 1) << frac_bits
    magnitudes = [0, 1, 2, (1 << frac_bits) - 1, 1 << frac_bits, one, one | 1, one | ((1 << frac_bits) - 1),
                  (exp_max - 1) << frac_bits | ((1 << frac_bits) - 1), exp_max << frac_bits,
                  exp_max << frac_bits | 1 << (frac_bits - 1), exp_max << frac_bits | 1]
    return magnitudes + [top | m for m in magnitudes]


def directed_mul_cases(fmt: str) -> list:
    """Every pair of the format's special values (zeros, subnormals, 1.0, the largest finite, infinities, quiet and
    signalling NaNs, both signs), then bf16 products at fp32's overflow and subnormal edges."""
    specials = _specials(fmt)
    cases = [(a, b) for a in specials for b in specials]
    if fmt == "bf16":
        for a in (1.5, 1.75, 1.9921875, 1.0078125, 3.0):
            for scale in (-76, -75, -74, -73, -64, 63, 64, 65):  # products near 2**-149 .. 2**-126 and 2**128
                b = 2.0 ** (2 * scale) / a if scale < 0 else 2.0 ** (2 * scale) / a * 1.5
                cases.append((int(from_float(a * 2.0 ** scale, fmt)), int(from_float(b / 2.0 ** scale, fmt))))
    return cases


def directed_add_cases() -> list:
    """fp32 specials pairwise; ties to even (``1 + 2**-24``, ``1 + 3 * 2**-24``, ...); cancellation (``x + -x``,
    ``x + -(x +- 1 ulp)``); carries into the exponent and to infinity; subnormal sums crossing into the normal
    range."""
    specials = _specials("fp32")
    cases = [(a, b) for a in specials for b in specials]
    one, sign = 0x3F800000, 1 << 31
    for ulps in (1, 2, 3, 5, 0x7F, 0x80, 0x81):  # 1 + ulps * 2**-25 and similar: halfway cases around 1.0
        bits = int(from_float(ulps * 2.0 ** -25, "fp32"))
        cases += [(one, bits), (one | 1, bits), (one | sign, bits | sign), (0x3FFFFFFF, bits)]
    for x in (one, 0x00800000, 0x00000001, 0x007FFFFF, 0x7F7FFFFF, 0x12345678, 0x3FFFFFFF):
        for delta in (0, 1, -1, 2):
            cases += [(x, (x + delta) | sign), (x | sign, x + delta)]
    cases += [(0x7F7FFFFF, 0x7F7FFFFF), (0x7F7FFFFF, 0x73800000), (0x7F7FFFFF, 0x73000000),
              (0x007FFFFF, 0x00000001), (0x00400000, 0x00400000), (0x80000000, 0x80000000),
              (0x80000000, 0x00000000), (0x00000001, 0x80000001)]
    return cases


async def fp_unit_sweep(bench, *, unit: str, fmt: str = "fp32", seed: int, n: int, prefix: str = ""):
    """Drive the combinational unit ``unit`` (``"mul"``: a :class:`~sparq.hw.common.fp.FloatMultiplier` of ``fmt``,
    ``"add"``: the :class:`~sparq.hw.common.fp.FP32Adder`) with the directed cases then ``n`` seeded random pairs, one
    pair per cycle; check every ``y`` against ``sparq.sim.golden.fp``."""
    rng = random.Random(seed)
    if unit == "mul":
        cases = directed_mul_cases(fmt) + [(fp_pattern(rng, fmt), fp_pattern(rng, fmt)) for _ in range(n)]
        expected = fp_mul([a for a, _ in cases], [b for _, b in cases], fmt)
    elif unit == "add":
        cases = directed_add_cases() + [_add_pair(rng) for _ in range(n)]
        expected = fp32_add([a for a, _ in cases], [b for _, b in cases])
    else:
        raise ValueError(f"unit must be 'mul' or 'add', not {unit!r}")
    got = []
    for a, b in cases:
        bench.set(prefix + "a", a)
        bench.set(prefix + "b", b)
        await bench.settle()
        got.append(bench.get(prefix + "y"))
        await bench.tick()
    assert_words_equal(expected, np.array(got, dtype=np.uint32),
                       what=f"{unit} ({fmt}) results, directed cases first (sparq.sim.tb.fp.directed_{unit}_cases)")
    return {"cases": len(cases)}


def _add_pair(rng: random.Random) -> tuple:
    """A random fp32 pair: independent patterns, or a second operand close in exponent (alignment shifts of 0 to
    30, opposite signs half the time: cancellation and sticky-bit rounding)."""
    a = fp_pattern(rng, "fp32")
    if rng.random() < 0.5:
        return a, fp_pattern(rng, "fp32")
    exp = max(0, min(254, ((a >> 23) & 0xFF) - rng.randint(-2, 30)))
    return a, rng.getrandbits(1) << 31 | exp << 23 | rng.getrandbits(23)


@dataclass(frozen=True)
class ArithmeticModel:
    """What a PE arithmetic means to a testbench: operand and partial-sum widths, how to draw stimulus, the
    model of one MAC and of a vector-times-tile, and how to read partial-sum lanes."""
    name: str
    operand_width: int
    acc_width: int
    signed: bool
    operand: Callable  # rng -> int
    accumulator: Callable  # rng -> int
    mac: Callable  # (psum, act, weight) -> int
    matvec: Callable  # (vector list, tile ndarray rows x cols) -> list of ints


def arithmetic_model(name: str) -> ArithmeticModel:
    """The :class:`ArithmeticModel` of ``"int8"`` (wrap-around int32, ``sparq.sim.golden.mac``) or ``"fp16"`` /
    ``"bf16"`` (``sparq.sim.golden.fp``)."""
    if name == "int8":
        return ArithmeticModel(
            name, 8, 32, True, random_int8, random_int32,
            mac=lambda psum, a, w: int(fit(psum + a * w, 32, False)[0]),
            matvec=lambda vector, tile: [int(v) for v in fit(np.array(vector, dtype=np.int64) @ tile, 32, False)[0]])
    if name in ("fp16", "bf16"):
        return ArithmeticModel(
            name, 16, 32, False, lambda rng: fp_pattern(rng, name), lambda rng: fp_pattern(rng, "fp32"),
            mac=lambda psum, a, w: int(fp_mac(psum, a, w, name)),
            matvec=lambda vector, tile: [int(v) for v in fp_matmul(np.array([vector]), tile, name)[0]])
    raise ValueError(f"unknown arithmetic {name!r}; choose 'int8', 'fp16' or 'bf16'")
