"""The program builder of the systolic back end: :class:`GemmLayer` (one int8 GEMM with its requantization) and
:class:`ProgramBuilder`, which places weight tiles and parameter records in the weight buffer and emits the
instructions of a GEMM; :class:`CapacityError` when a program does not fit the configuration."""

import math
from dataclasses import dataclass, field

import numpy as np

from sparq.formats.systolic import (
    MAX_SHIFT,
    PARAM_WORDS,
    Flag,
    Instruction,
    Opcode,
    SystolicConfig,
    SystolicProgram,
    pack_params,
    pack_weight_tile,
)

from ..errors import CompileError

__all__ = ["CapacityError", "GemmLayer", "need", "ProgramBuilder"]


class CapacityError(CompileError):
    """A program does not fit the hardware configuration; the message names the memory and the parameter to raise."""


@dataclass
class GemmLayer:
    """One int8 GEMM with its requantization: ``Y = requantize(X @ weight + bias, multiplier, shift, relu)``.

    ``weight`` is int8 ``K x N`` (inputs by outputs); ``bias`` int32, ``multiplier`` uint16 and ``shift`` per output
    column (length ``N``).
    """
    name: str
    weight: np.ndarray
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    relu: bool = False

    def __post_init__(self):
        self.weight = np.asarray(self.weight)
        if self.weight.ndim != 2 or self.weight.dtype != np.int8:
            raise CompileError(f"layer {self.name!r}: weight must be a 2-D int8 array (K x N), got "
                               f"{self.weight.dtype} {self.weight.shape}")
        n = self.weight.shape[1]
        for what in ("bias", "multiplier", "shift"):
            value = np.broadcast_to(np.asarray(getattr(self, what), dtype=np.int64), (n,)).copy()
            setattr(self, what, value)
        too_far = (self.shift >= MAX_SHIFT) & (self.multiplier != 0)
        if too_far.any():
            raise CompileError(f"layer {self.name!r}: requantization shift {int(self.shift[too_far].max())} is beyond "
                               f"the hardware's {MAX_SHIFT - 1}; the output scale is far too large for this layer "
                               "(recalibrate)")

    @property
    def k(self):
        return self.weight.shape[0]

    @property
    def n(self):
        return self.weight.shape[1]


def need(config, memory, parameter, needed, detail):
    """Raise :class:`CapacityError` unless ``needed`` words fit the memory that ``config.<parameter>`` sizes."""
    available = getattr(config, parameter)
    if needed > available:
        raise CapacityError(f"the {memory} needs {needed} words ({detail}) but {parameter}={available}: short by "
                            f"{needed - available}; raise {parameter} to at least {needed}")


@dataclass
class ProgramBuilder:
    """Accumulates instructions, listing comments and the weight image of one program."""
    config: SystolicConfig
    instructions: list = field(default_factory=list)
    comments: dict = field(default_factory=dict)
    weight_chunks: list = field(default_factory=list)
    wb_used: int = 0
    next_bank: int = 0
    next_region: int = 0

    def emit(self, opcode, comment=None, **fields):
        if comment:
            self.comments[len(self.instructions)] = comment
        self.instructions.append(Instruction(opcode, **fields))

    def weights(self, words, what):
        """Place ``words`` in the weight buffer (loaded by a READ_WEIGHTS emitted now); return their address."""
        words = np.asarray(words, dtype=np.int8).reshape(-1, self.config.lanes)
        address = self.wb_used
        need(self.config, "weight buffer", "wb_depth", address + len(words), f"{what} and everything before it")
        self.emit(Opcode.READ_WEIGHTS, f"{what}: {len(words)} words", wb=address, count=len(words))
        self.weight_chunks.append(words)
        self.wb_used += len(words)
        return address

    def place_layer(self, layer: GemmLayer):
        """Put ``layer``'s weight tiles and parameter records in the weight buffer; return their addresses."""
        c = self.config
        kt, nt = math.ceil(layer.k / c.rows), math.ceil(layer.n / c.cols)
        tiles = [pack_weight_tile(layer.weight[k * c.rows:(k + 1) * c.rows, n * c.cols:(n + 1) * c.cols],
                                  c.rows, c.cols) for n in range(nt) for k in range(kt)]
        records = [pack_params(layer.bias[n * c.cols:(n + 1) * c.cols], layer.multiplier[n * c.cols:(n + 1) * c.cols],
                               layer.shift[n * c.cols:(n + 1) * c.cols], c.lanes) for n in range(nt)]
        base = self.weights(np.concatenate(tiles + records), f"layer {layer.name}: {nt}x{kt} weight tiles, "
                                                             f"{nt} parameter records")
        tile_address = {(n, k): base + (n * kt + k) * c.rows for n in range(nt) for k in range(kt)}
        param_address = {n: base + nt * kt * c.rows + n * PARAM_WORDS for n in range(nt)}
        return tile_address, param_address

    def gemm(self, layer: GemmLayer, m: int, x_ub: int, y_ub: int, placed):
        """Emit the instructions of ``layer`` on ``m`` rows at UB ``x_ub`` (KT blocks), writing UB ``y_ub``."""
        c = self.config
        tile_address, param_address = placed
        kt, nt = math.ceil(layer.k / c.rows), math.ceil(layer.n / c.cols)
        region = max(1, min(m, c.acc_depth // 2))
        groups = [(n, m0) for n in range(nt) for m0 in range(0, m, region)]
        pending_load = None
        for g, (n, m0) in enumerate(groups):
            rows = min(region, m - m0)
            acc = (self.next_region % 2) * region if c.acc_depth >= 2 * region else 0
            self.next_region += 1
            for k in range(kt):
                bank = pending_load if (k == 0 and pending_load is not None) else self._load(layer, tile_address, n, k)
                pending_load = None
                flags = Flag(bank) | (Flag.ACCUMULATE if k else Flag(0))
                self.emit(Opcode.MATMUL, f"{layer.name}: rows {m0}..{m0 + rows - 1}, K tile {k}, N tile {n}",
                          flags=flags, ub=x_ub + k * m + m0, acc=acc, count=rows)
            if g + 1 < len(groups):
                pending_load = self._load(layer, tile_address, groups[g + 1][0], 0)
            self.emit(Opcode.ACTIVATE, f"{layer.name}: N tile {n}, rows {m0}..{m0 + rows - 1}"
                      + (" + ReLU" if layer.relu else ""), flags=Flag.RELU if layer.relu else Flag(0),
                      acc=acc, ub=y_ub + n * m + m0, wb=param_address[n], count=rows)

    def _load(self, layer, tile_address, n, k):
        bank = self.next_bank
        self.next_bank ^= 1
        self.emit(Opcode.LOAD_WEIGHTS, f"{layer.name}: tile N{n} K{k} -> bank {bank}", flags=Flag(bank),
                  wb=tile_address[(n, k)])
        return bank

    def program(self, input_words: int, output_words: int, meta=None) -> SystolicProgram:
        lanes = self.config.lanes
        weights = np.concatenate(self.weight_chunks) if self.weight_chunks else np.zeros((0, lanes), np.int8)
        return SystolicProgram(self.config, list(self.instructions), weights, input_words, output_words,
                               dict(self.comments), meta or {})
