"""Shared stimulus for the systolic tests and benchmarks: the configuration built for each array size, random int8
GEMM chains with their inputs, and single random int8 / int32 values biased towards the edges of their range."""

import math

import numpy as np

from sparq.formats.systolic import SystolicConfig

__all__ = ["CONFIGS", "config_for", "random_int8", "random_int32", "random_layers", "random_gemm"]

CONFIGS = {
    2: SystolicConfig(rows=2, cols=2, ub_depth=1024, wb_depth=1024, acc_depth=64),
    4: SystolicConfig(rows=4, cols=4, ub_depth=1024, wb_depth=1024, acc_depth=64),
    8: SystolicConfig(rows=8, cols=8, ub_depth=4096, wb_depth=8192, acc_depth=512),
    16: SystolicConfig(rows=16, cols=16, ub_depth=4096, wb_depth=8192, acc_depth=512),
}
"""One configuration per array size, shared by every test and benchmark of that size so each is built once. The
8x8 and 16x16 ones hold the digits MLP's weights (about 7,000 words at 8x8) and 20-image batches."""


def config_for(size: int) -> SystolicConfig:
    """The shared configuration of a ``size x size`` array."""
    try:
        return CONFIGS[size]
    except KeyError:
        raise ValueError(f"no shared configuration for a {size}x{size} array; sizes are {sorted(CONFIGS)}") from None


def random_int8(rng) -> int:
    """A random int8 from ``rng`` (a :class:`random.Random`); one draw in five is an edge value (-128, 127, -1, 0, 1)."""
    return rng.choice((-128, 127, -1, 0, 1)) if rng.random() < 0.2 else rng.randint(-128, 127)


def random_int32(rng) -> int:
    """A random int32 from ``rng``; one draw in five is an edge value (the extremes, -1 or 0)."""
    return rng.choice((-(1 << 31), (1 << 31) - 1, -1, 0)) if rng.random() < 0.2 else rng.randint(-(1 << 31),
                                                                                                   (1 << 31) - 1)


def random_layers(rng: np.random.Generator, dims, *, relu_last: bool = False, any_shift: float = 0.0):
    """A chain of random ``sparq.compiler.systolic.GemmLayer`` with widths ``dims`` (``dims[0]`` inputs), ReLU between
    layers, and requantization parameters that keep outputs spread over the int8 range (some saturate).

    ``any_shift``: the share of output columns whose shift is drawn from the whole range ``[0, MAX_SHIFT)`` with any
    multiplier (their outputs mostly saturate or round to 0: they exercise every stage of the requantizer's
    shifter); 0 draws nothing more from ``rng``."""
    from sparq.compiler.systolic import GemmLayer
    from sparq.formats.systolic.numerics import MAX_SHIFT, MULTIPLIER_BITS
    layers = []
    for i, (k, n) in enumerate(zip(dims, dims[1:])):
        weight = rng.integers(-128, 128, (k, n), dtype=np.int64).astype(np.int8)
        bias = rng.integers(-(1 << 14), 1 << 14, n)
        # |acc| is about 128 * 128 * sqrt(k) / 2; aim the result at about +-64.
        spread = 128 * 128 * math.sqrt(k) / 2
        shift = rng.integers(16, 24, n)
        multiplier = np.maximum(1, (64 / spread * 2.0 ** shift * rng.uniform(0.5, 2.0, n))).astype(np.int64)
        multiplier = np.minimum(multiplier, (1 << MULTIPLIER_BITS) - 1)
        if any_shift:
            wild = rng.random(n) < any_shift
            shift = np.where(wild, rng.integers(0, MAX_SHIFT, n), shift)
            multiplier = np.where(wild, rng.integers(0, 1 << MULTIPLIER_BITS, n), multiplier)
        layers.append(GemmLayer(f"gemm{i}", weight, bias, multiplier, shift,
                                relu=(i + 2 < len(dims)) or relu_last))
    return layers


def random_gemm(seed: int, m: int, dims, config: SystolicConfig):
    """``(program, input_words, x)`` of a random chain of GEMMs on a random ``m x dims[0]`` int8 input."""
    from sparq.compiler.systolic import gemm_program
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (m, dims[0]), dtype=np.int64).astype(np.int8)
    program, words = gemm_program(x, random_layers(rng, dims), config)
    return program, words, x
