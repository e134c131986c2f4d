"""Stimulus and references for the Winograd path: the Winograd builds shared by tests and benchmarks, random
3x3 convolutions lowered both ways (Winograd and im2col), and a plain numpy reference of the quantized conv."""

import math
from dataclasses import replace

import numpy as np

from sparq.formats.systolic import requantize

from .stimulus import config_for

__all__ = ["winograd_config", "reference_conv", "random_conv", "conv_programs"]


def winograd_config(size: int):
    """The Winograd build of the shared ``size x size`` configuration (``sparq.sim.systolic.stimulus.config_for``), with a
    transform buffer and accumulators large enough for 64-tile chunks at 8x8 and room for the Winograd weights
    (16 positions of 2-word rows: 32 / 9 = 3.6x the im2col weight image)."""
    base = config_for(size)
    small = size < 8
    return replace(base, winograd=True, ub_depth=max(base.ub_depth, 8192), wb_depth=max(base.wb_depth, 8192),
                   acc_depth=max(base.acc_depth, 64 if small else 1280), tb_depth=256 if small else 8192)


def reference_conv(x, weight, bias, multiplier, shift, relu, padding):
    """The int8 result of the quantized 3x3 convolution, straight from the definition (int64 sums, then
    ``sparq.formats.systolic.requantize`` per output channel); NCHW in and out."""
    top, left, bottom, right = padding
    xp = np.pad(np.asarray(x, dtype=np.int64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))  # n, c, oh, ow, 3, 3
    acc = np.einsum("ncyxij,kcij->nkyx", windows, np.asarray(weight, dtype=np.int64))
    return requantize(acc, np.asarray(bias)[:, None, None], np.asarray(multiplier)[:, None, None],
                      np.asarray(shift)[:, None, None], relu)


def random_conv(seed: int, *, images: int, channels: int, outputs: int, height: int, width: int, padding=(1, 1, 1, 1),
                relu: bool = True):
    """``(x, layer)``: a random NCHW int8 batch and a random ``sparq.compiler.systolic.winograd.WinogradLayer`` whose outputs spread
    over the int8 range (some saturate)."""
    from sparq.compiler.systolic.winograd import WinogradLayer
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (images, channels, height, width)).astype(np.int8)
    weight = rng.integers(-128, 128, (outputs, channels, 3, 3)).astype(np.int8)
    spread = 128 * 128 * math.sqrt(9 * channels) / 2
    shift = rng.integers(14, 22, outputs)
    multiplier = np.clip(64 / spread * 2.0 ** shift * rng.uniform(0.5, 2.0, outputs), 1, (1 << 16) - 1).astype(np.int64)
    bias = rng.integers(-(1 << 14), 1 << 14, outputs)
    return x, WinogradLayer("conv", weight, bias, multiplier, shift, relu=relu, padding=tuple(padding))


def conv_programs(x, layer, config):
    """``{"winograd": (program, input_words), "im2col": (program, input_words)}`` for ``layer`` on the batch ``x``,
    and the function mapping each path's output words back to NCHW."""
    from sparq.compiler.ir import im2col
    from sparq.compiler.systolic import GemmLayer, lower_gemm
    from sparq.compiler.systolic.winograd import lower_winograd, tiles_to_nchw, winograd_tiles
    from sparq.formats.systolic import pack_matrix, unpack_matrix
    images = len(x)
    tiles, size = winograd_tiles(x, layer.padding)
    winograd = lower_winograd(layer, len(tiles) // 16, config)
    cols = im2col(x, (3, 3), (1, 1), layer.padding, fill=0)
    oh, ow = cols.shape[2:4]
    matrix = np.ascontiguousarray(cols.transpose(0, 2, 3, 1, 4, 5).reshape(images * oh * ow, -1))
    gemm = GemmLayer(layer.name, np.ascontiguousarray(layer.weight.reshape(layer.n, -1).T), layer.bias,
                     layer.multiplier, layer.shift, layer.relu)
    plain = lower_gemm([gemm], len(matrix), config)

    def unpack(path, words):
        if path == "winograd":
            return tiles_to_nchw(unpack_matrix(words, len(tiles) // 4, layer.n), images, size)
        y = unpack_matrix(words, len(matrix), layer.n)
        return np.ascontiguousarray(y.reshape(images, oh, ow, -1).transpose(0, 3, 1, 2))

    return {"winograd": (winograd, pack_matrix(tiles, config.lanes)),
            "im2col": (plain, pack_matrix(matrix, config.lanes))}, unpack
