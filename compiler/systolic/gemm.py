"""Lowering of a chain of int8 GEMMs to one systolic program (see the package docstring for the schedule)."""

import math

import numpy as np

from sparq.formats.systolic import (
    Opcode,
    SystolicConfig,
    SystolicProgram,
    pack_matrix,
)

from ..errors import CompileError
from .program import ProgramBuilder, need

__all__ = ["lower_gemm", "gemm_program"]


def lower_gemm(layers, m: int, config: SystolicConfig, *, halt: bool = True) -> SystolicProgram:
    """A program running the chain of :class:`GemmLayer` ``layers`` on ``m`` input rows.

    The program reads the weights and the ``ceil(K0 / lanes) * m`` input words (``sparq.formats.systolic.pack_matrix``
    of the ``m x K0`` int8 input), runs the layers with their activations kept in the unified buffer (two regions,
    alternated), writes the ``ceil(N_last / lanes) * m`` output words (in the same layout) and, if ``halt``, halts.
    The host transfers overlap the computation (:class:`~.program.ProgramBuilder`): each weight tile, parameter
    record and input piece is read as the computation comes to need it, each output tile written as soon as it is
    computed.
    """
    layers = list(layers)
    if not layers:
        raise CompileError("lower_gemm needs at least one layer")
    if not isinstance(m, int) or m < 1:
        raise CompileError(f"the number of input rows must be a positive integer, got {m!r}")
    for before, after in zip(layers, layers[1:]):
        if before.n != after.k:
            raise CompileError(f"layer {after.name!r} takes {after.k} inputs but {before.name!r} gives {before.n}")
    lanes = config.lanes
    blocks = [math.ceil(layers[0].k / lanes)] + [math.ceil(layer.n / lanes) for layer in layers]
    # Two UB regions, alternated: region 0 holds the input and the even layers' outputs.
    region = [max(blocks[0::2]) * m, max(blocks[1::2]) * m]
    need(config, "unified buffer", "ub_depth", sum(region),
          f"two activation regions of {region[0]} and {region[1]} words for {m} rows")
    builder = ProgramBuilder(config)
    placed = [builder.place_layer(layer) for layer in layers]
    for i, layer in enumerate(layers):
        x_ub, y_ub = (0, region[0]) if i % 2 == 0 else (region[0], 0)
        builder.gemm(layer, m, x_ub, y_ub, placed[i], from_host=i == 0, to_host=i == len(layers) - 1)
    if halt:
        builder.emit(Opcode.HALT)
    return builder.program(blocks[0] * m, blocks[-1] * m,
                           meta=dict(m=m, layers=[dict(name=l.name, k=l.k, n=l.n, relu=l.relu) for l in layers]))


def gemm_program(x, layers, config: SystolicConfig, *, halt: bool = True):
    """``(program, input_words)`` for running ``layers`` on the int8 matrix ``x`` (``m x K``)."""
    x = np.asarray(x)
    if x.ndim != 2 or x.dtype != np.int8:
        raise CompileError(f"the GEMM input must be a 2-D int8 matrix, got {x.dtype} {x.shape}")
    program = lower_gemm(layers, x.shape[0], config, halt=halt)
    return program, pack_matrix(x, config.lanes)
