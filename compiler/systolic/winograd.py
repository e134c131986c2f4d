"""Winograd F(2x2, 3x3) lowering of 3x3, stride-1 convolutions for the systolic accelerator (Winograd builds,
``SystolicConfig(winograd=True)``), exact in integers.

Arithmetic (``sparq.formats.systolic``, Winograd): a 2x2 output tile of a 3x3 convolution is
``Y = A^T [U * V] A`` with ``V = B^T d B`` (the 4x4 input tile ``d``) and ``U = G' g G'^T``, ``G' = 2 G``. With the
integer ``G'`` every step is exact and ``Y = 4 * (g conv d)``. The factor 4 is removed exactly in requantization:
the layer's bias is multiplied by 4 and its shift raised by 2: ``(4x * m + 2**(s+1)) >> (s+2)`` equals
``(x * m + 2**(s-1)) >> s`` for every integer ``x`` when ``s >= 1``, and ``(4x * m + 2) >> 2 = x * m`` when
``s == 0``, so a Winograd layer's int8 output is **identical** to the im2col path's, not merely close.

Multiplies: 16 per tile and (input, output) channel pair instead of 36 (4 pixels x 9 taps), 2.25x fewer, when the
channels fill the array (``C`` and ``9 C`` multiples of ``rows``).

Layout and tiling (``T = ceil(OH / 2) * ceil(OW / 2)`` tiles per image, ``P`` tiles per call):

* **Host: tiling.** The NCHW int8 input is zero-padded by the layer's padding plus, when an output size is odd, one
  more row at the bottom / column at the right (the extra outputs are computed and cropped: "padding of odd output
  sizes"). The matrix handed to the accelerator has one row per tile element ``(image, ty, tx, i, j)`` (``i, j <
  4``, tile origin ``(2 ty, 2 tx)``, so neighbouring tiles overlap by two rows / columns) and the channels as
  columns; it is packed by ``sparq.formats.systolic.pack_matrix``, i.e. ``ceil(C / lanes)`` channel blocks of ``16 P``
  words, word ``16 p + 4 i + j`` of block ``kb`` holding channels ``kb * lanes ..`` of element ``(i, j)`` of tile
  ``p``. That is 4x the input (im2col's is 9x).
* **Device**, per chunk of ``Pc`` tiles (the largest that fits: ``20 Pc <= acc_depth`` and ``16 Pc * KT <=
  tb_depth``): one TRANSFORM_IN per channel block (UB -> transform buffer, ``V`` of position ``e = 4 xi + nu`` of
  the chunk's tiles contiguous); then per output-channel tile ``n``: for each of the **16 positions** ``e`` a GEMM
  ``M_e = V_e @ U_e`` with the channels as the reduction (per channel block: a WIDE LOAD_WEIGHTS of the 12-bit
  ``U_e`` tile and a MATMUL from the TB, accumulating over the channel blocks into accumulator region ``e``), one
  TRANSFORM_OUT (``A^T M A`` into the four words per tile after the 16 regions) and one ACTIVATE into the UB.
* **Output**: ``ceil(N / lanes)`` blocks of ``4 P`` words, word ``4 p + 2 a + b`` = output pixel ``(2 ty + a,
  2 tx + b)`` of tile ``p``; the host reorders it to NCHW and crops the odd padding.

Layers the option cannot take -- a stride other than 1, a kernel other than 3x3, or a layer whose ``4 *`` output
bound does not fit int32 or whose raised shift passes ``sparq.formats.systolic.MAX_SHIFT`` -- are lowered by im2col, and
:func:`winograd_refusal` gives the note saying why.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from sparq.formats.systolic import (
    MAX_SHIFT,
    MULTIPLIER_BITS,
    PARAM_WORDS,
    WINOGRAD_G2,
    Flag,
    Opcode,
    SystolicConfig,
    SystolicProgram,
    pack_matrix,
    pack_params,
    pack_wide_weight_tile,
    unpack_matrix,
)

from ..errors import CompileError
from .program import ProgramBuilder, need

__all__ = ["SCALE", "transform_weights", "winograd_refusal", "winograd_requant", "WinogradLayer",
           "winograd_tiles", "tiles_to_nchw", "lower_winograd", "WinogradStep"]

SCALE = 4
"""``Y = SCALE * (g conv d)``: the factor the integer ``G' = 2 G`` puts on the output (2 from each side)."""


def transform_weights(weight) -> np.ndarray:
    """``U = G' g G'^T`` of an int8 ``(N, C, 3, 3)`` kernel, as an int64 ``(16, C, N)`` array: position ``e = 4 xi +
    nu`` by input channel by output channel (the K x N weight of GEMM ``e``)."""
    weight = np.asarray(weight)
    if weight.ndim != 4 or weight.shape[2:] != (3, 3):
        raise CompileError(f"Winograd F(2x2, 3x3) takes an (N, C, 3, 3) kernel, got shape {weight.shape}")
    u = np.einsum("ai,ncij,bj->abcn", WINOGRAD_G2, weight.astype(np.int64), WINOGRAD_G2)
    return u.reshape(16, weight.shape[1], weight.shape[0])


def winograd_refusal(kernel, stride, dilation=(1, 1)) -> str:
    """Why a conv layer with ``kernel``, ``stride`` and ``dilation`` cannot be lowered by Winograd F(2x2, 3x3), or
    ``""``."""
    reasons = []
    if tuple(kernel) != (3, 3):
        reasons.append(f"kernel {tuple(kernel)} is not 3x3")
    if tuple(stride) != (1, 1):
        reasons.append(f"stride {tuple(stride)} is not 1")
    if tuple(dilation) != (1, 1):
        reasons.append(f"dilation {tuple(dilation)} is not 1")
    return " and ".join(reasons)


def winograd_requant(bias, multiplier, shift):
    """``(bias, multiplier, shift)`` that requantize ``SCALE * acc`` exactly as the given ones requantize ``acc``;
    raises :class:`CompileError` when they do not fit the parameter record."""
    bias, multiplier, shift = (np.asarray(v, dtype=np.int64).copy() for v in (bias, multiplier, shift))
    scaled_bias = bias * SCALE
    if np.abs(scaled_bias).max(initial=0) >= 1 << 31:
        raise CompileError(f"the bias times {SCALE} does not fit int32")
    # shift >= 1: floor((4xm + 2**(s+1)) / 2**(s+2)) = floor((xm + 2**(s-1)) / 2**s); shift == 0: (4xm + 2) >> 2 = xm.
    new_shift = shift + 2
    if (new_shift[multiplier != 0] >= MAX_SHIFT).any():
        raise CompileError(f"a requantization shift plus 2 passes the hardware's {MAX_SHIFT - 1}")
    if (multiplier >= 1 << MULTIPLIER_BITS).any():
        raise CompileError(f"a requantization multiplier does not fit {MULTIPLIER_BITS} bits")
    return scaled_bias, multiplier, new_shift


@dataclass
class WinogradLayer:
    """One 3x3, stride-1 convolution lowered by Winograd: int8 ``weight`` ``(N, C, 3, 3)``, ``padding`` ``(top,
    left, bottom, right)``, and the requantization of the **im2col** path (int32 ``bias``, ``multiplier``, ``shift``
    per output channel, ``relu``); the Winograd scale is handled inside (:func:`winograd_requant`)."""
    name: str
    weight: np.ndarray
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    relu: bool = False
    padding: tuple = (0, 0, 0, 0)
    u: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        self.weight = np.asarray(self.weight)
        if self.weight.dtype != np.int8:
            raise CompileError(f"layer {self.name!r}: the Winograd kernel must be int8, got {self.weight.dtype}")
        self.u = transform_weights(self.weight)
        n = self.weight.shape[0]
        for what in ("bias", "multiplier", "shift"):
            setattr(self, what, np.broadcast_to(np.asarray(getattr(self, what), dtype=np.int64), (n,)).copy())
        # |Y| = 4 |g conv d| <= 4 * 128 * sum |g| per output channel, and the ACTIVATE adds the bias exactly.
        bound = SCALE * 128 * np.abs(self.weight.astype(np.int64)).reshape(n, -1).sum(axis=1).max(initial=0)
        if bound >= 1 << 31:
            raise CompileError(f"layer {self.name!r}: {SCALE} x the convolution can reach {bound}, beyond int32")
        try:
            self.scaled = winograd_requant(self.bias, self.multiplier, self.shift)
        except CompileError as error:
            raise CompileError(f"layer {self.name!r}: {error}") from None

    @property
    def channels(self):
        return self.weight.shape[1]

    @property
    def n(self):
        return self.weight.shape[0]

    def output_size(self, height, width):
        top, left, bottom, right = self.padding
        return height + top + bottom - 2, width + left + right - 2


def winograd_tiles(x, padding) -> tuple:
    """``(tile matrix, (OH, OW))``: the ``(images * T * 16, C)`` int8 matrix of the 4x4 input tiles of the NCHW int8
    batch ``x`` (rows ``(image, ty, tx, i, j)``; see the module docstring) and the convolution's output size."""
    x = np.asarray(x)
    n, c, h, w = x.shape
    top, left, bottom, right = padding
    oh, ow = h + top + bottom - 2, w + left + right - 2
    if oh < 1 or ow < 1:
        raise CompileError(f"a 3x3 convolution of a {h}x{w} input with padding {padding} has no output")
    th, tw = math.ceil(oh / 2), math.ceil(ow / 2)
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom + 2 * th - oh), (left, right + 2 * tw - ow)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (4, 4), axis=(2, 3))[:, :, ::2, ::2]
    tiles = windows.transpose(0, 2, 3, 4, 5, 1).reshape(n * th * tw * 16, c)  # (image, ty, tx, i, j) x C
    return np.ascontiguousarray(tiles), (oh, ow)


def tiles_to_nchw(y, images: int, output_size) -> np.ndarray:
    """The NCHW batch of the ``(images * T * 4, N)`` output rows ``(image, ty, tx, a, b)``, odd padding cropped."""
    oh, ow = output_size
    th, tw = math.ceil(oh / 2), math.ceil(ow / 2)
    y = np.asarray(y).reshape(images, th, tw, 2, 2, -1).transpose(0, 5, 1, 3, 2, 4)
    return np.ascontiguousarray(y.reshape(images, -1, 2 * th, 2 * tw)[:, :, :oh, :ow])


def _chunk(config: SystolicConfig, tiles: int, blocks: int) -> int:
    return min(tiles, config.acc_depth // 20, config.tb_depth // (16 * blocks))


def lower_winograd(layer: WinogradLayer, tiles: int, config: SystolicConfig, *, halt: bool = True) -> SystolicProgram:
    """The program of ``layer`` on ``tiles`` input tiles: reads the weights (wide ``U`` tiles and parameter records)
    and the ``ceil(C / lanes) * 16 * tiles`` tile words, runs the chunks (see the module docstring), writes the
    ``ceil(N / lanes) * 4 * tiles`` output words and, if ``halt``, halts."""
    if not config.winograd:
        raise CompileError("Winograd lowering needs a Winograd build: SystolicConfig(winograd=True)")
    if not isinstance(tiles, int) or tiles < 1:
        raise CompileError(f"the number of tiles must be a positive integer, got {tiles!r}")
    c = config
    kt, nt = math.ceil(layer.channels / c.rows), math.ceil(layer.n / c.cols)
    chunk = _chunk(c, tiles, kt)
    if chunk < 1:
        need(c, "accumulators", "acc_depth", 20, "16 Winograd positions and 4 outputs for one tile")
        need(c, "transform buffer", "tb_depth", 16 * kt, f"16 transformed words per tile for {kt} channel blocks")
    in_words, out_words = kt * 16 * tiles, nt * 4 * tiles
    need(c, "unified buffer", "ub_depth", in_words + out_words,
          f"{in_words} input tile words and {out_words} output words for {tiles} tiles")
    builder = ProgramBuilder(c)
    bias, multiplier, shift = layer.scaled
    wide = [pack_wide_weight_tile(layer.u[e, k * c.rows:(k + 1) * c.rows, n * c.cols:(n + 1) * c.cols], c.rows,
                                  c.cols) for n in range(nt) for e in range(16) for k in range(kt)]
    records = [pack_params(bias[n * c.cols:(n + 1) * c.cols], multiplier[n * c.cols:(n + 1) * c.cols],
                           shift[n * c.cols:(n + 1) * c.cols], c.lanes) for n in range(nt)]
    base, weights = builder.weights(np.concatenate(wide + records), f"layer {layer.name}: {nt}x16x{kt} Winograd "
                                    f"weight tiles (12-bit, 2 words a row), {nt} parameter records")
    tile_address = {(n, e, k): base + ((n * 16 + e) * kt + k) * 2 * c.rows
                    for n in range(nt) for e in range(16) for k in range(kt)}
    param_address = base + nt * 16 * kt * 2 * c.rows
    y_ub = in_words
    inputs = builder.read_input(f"input: {tiles} tiles x 16 elements x {layer.channels} channels", ub=0,
                                count=in_words, src=0)
    for p0 in range(0, tiles, chunk):
        count = min(chunk, tiles - p0)
        for k in range(kt):
            builder.emit(Opcode.TRANSFORM_IN, f"{layer.name}: V = B^T d B, tiles {p0}..{p0 + count - 1}, channel "
                         f"block {k}", needs=(inputs,), ub=k * 16 * tiles + 16 * p0, tb=k * 16 * count, count=count)
        for n in range(nt):
            for e in range(16):
                for k in range(kt):
                    bank = builder.next_bank
                    builder.next_bank ^= 1
                    load = builder.load(f"{layer.name}: U tile N{n} position {e} K{k} -> bank {bank}",
                                        needs=(weights,), flags=Flag(bank) | Flag.WIDE, wb=tile_address[(n, e, k)])
                    builder.emit(Opcode.MATMUL, f"{layer.name}: M_{e} += V_{e} @ U_{e}, K tile {k}, N tile {n}",
                                 needs=(load,), flags=Flag(bank) | Flag.FROM_TB | (Flag.ACCUMULATE if k else Flag(0)),
                                 tb=k * 16 * count + e * count, acc=e * count, count=count)
            builder.emit(Opcode.TRANSFORM_OUT, f"{layer.name}: Y = A^T M A, N tile {n}", acc=0, count=count)
            builder.emit(Opcode.ACTIVATE, f"{layer.name}: N tile {n}, tiles {p0}..{p0 + count - 1}"
                         + (" + ReLU" if layer.relu else ""), flags=Flag.RELU if layer.relu else Flag(0),
                         acc=16 * count, ub=y_ub + n * 4 * tiles + 4 * p0, wb=param_address + n * PARAM_WORDS,
                         count=4 * count)
    builder.write(f"output: {tiles} tiles x 4 pixels x {layer.n} channels", ub=y_ub, count=out_words)
    if halt:
        builder.emit(Opcode.HALT)
    return builder.program(in_words, out_words, meta=dict(
        tiles=tiles, chunk=chunk, layers=[dict(name=layer.name, k=layer.channels, n=layer.n, relu=layer.relu,
                                               winograd=True)]))


@dataclass
class WinogradStep:
    """A convolution on the accelerator by Winograd, with its host-side tiling and reordering: ``run`` takes the
    NCHW int8 batch and returns the NCHW int8 output. ``rows_per_image`` is the tiles per image and
    ``program(tiles)`` the program for that many tiles, as for ``sparq.compiler.systolic.DeviceStep``."""
    name: str
    layer: WinogradLayer
    input_shape: tuple
    config: SystolicConfig
    batch: int = 1
    _programs: dict = field(default_factory=dict, repr=False)

    @property
    def output_size(self):
        return self.layer.output_size(*self.input_shape[1:])

    @property
    def rows_per_image(self):
        oh, ow = self.output_size
        return math.ceil(oh / 2) * math.ceil(ow / 2)

    @property
    def describe(self):
        oh, ow = self.output_size
        return (f"{self.layer.name} by Winograd F(2x2,3x3): {self.input_shape} -> ({self.layer.n}, {oh}, {ow}), "
                f"{self.rows_per_image} tiles per image, 16 GEMMs {self.layer.channels}x{self.layer.n}"
                + (", ReLU" if self.layer.relu else ""))

    def program(self, tiles: int) -> SystolicProgram:
        if tiles not in self._programs:
            self._programs[tiles] = lower_winograd(self.layer, tiles, self.config)
        return self._programs[tiles]

    def check(self, images: int):
        """Raise ``sparq.compiler.systolic.CapacityError`` if ``images`` images per call do not fit."""
        lower_winograd(self.layer, images * self.rows_per_image, self.config)

    def run(self, x):
        """A generator with ``sparq.compiler.systolic.DeviceStep.run``'s protocol on the NCHW int8 batch ``x``."""
        x = np.asarray(x).reshape(-1, *self.input_shape)
        outputs = []
        for lo in range(0, len(x), self.batch):
            chunk = x[lo:lo + self.batch]
            tiles, size = winograd_tiles(chunk, self.layer.padding)
            program = self.program(len(chunk) * self.rows_per_image)
            words = yield program, pack_matrix(tiles, self.config.lanes)
            y = unpack_matrix(words, len(tiles) // 4, self.layer.n)
            outputs.append(tiles_to_nchw(y, len(chunk), size))
        return np.concatenate(outputs)

