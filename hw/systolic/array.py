"""The rows x cols grid of weight-stationary PEs."""

from amaranth import Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .pe import (
    WeightStationaryPE,
    accumulator_shape,
    activation_lane,
    check_arithmetic,
    check_pe_parameters,
    operand_shape,
)

__all__ = ["SystolicArray"]


class SystolicArray(wiring.Component):
    """A ``rows x cols`` weight-stationary systolic array: PE ``(r, c)`` holds weight ``W[r, c]`` (r is the K index,
    c the output column). Activations enter on the left, one lane per row, and move one PE right per cycle; partial
    sums start at 0 (``+0.0`` for float arithmetic) on the top row and move one PE down per cycle; column ``c``'s
    dot product leaves at the bottom.

    Timing: an activation presented on ``act_in[r]`` at cycle ``t`` is on PE ``(r, c)``'s input at cycle ``t + c``
    (whose closing edge samples its weight); so a vector whose lane ``r`` arrives at ``t + r`` (see
    :class:`~.skew.InputSkew`) gives ``sum_r a[r] * W[r, c]`` on ``psum_out[c]`` from cycle
    ``t + rows + c + pe_latency(arithmetic) - 1`` on (:func:`.pe.pe_latency`).

    Weight loading: while ``w_shift`` is high, every column shifts down by one in bank ``w_bank``: row 0 takes
    ``w_in[c]``, row ``r`` takes row ``r - 1``'s value. After ``rows`` shifts the word shifted in first sits in the
    bottom row. Bank ``w_bank`` must not be in use by activations in flight meanwhile; the other bank may be.

    Arithmetic: every PE is a :class:`~.pe.WeightStationaryPE` of ``arithmetic`` (``"int8"``, ``"fp16"`` or
    ``"bf16"``). With a float arithmetic, column ``c`` gives ``(...((+0 + p[0]) + p[1]) + ...) + p[rows - 1]`` with
    ``p[r] = round_fp32(a[r] * W[r, c])`` and each add rounded to fp32 (``sparq.sim.golden.fp.fp_matmul``).

    Ports
    -----
    act_in : In(ArrayLayout(activation_lane(operand_shape(arithmetic, act_width)), rows))
    w_in : In(ArrayLayout(operand_shape(arithmetic, weight_width), cols))
    w_shift, w_bank : In(1)
    psum_out : Out(ArrayLayout(accumulator_shape(arithmetic, acc_width), cols))
    """

    def __init__(self, rows: int, cols: int, *, arithmetic: str = "int8", act_width: int = 8, weight_width: int = 8,
                 acc_width: int = 32):
        for label, value in (("rows", rows), ("cols", cols)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SystolicArray {label} must be a positive integer, not {value!r}")
        self.rows, self.cols, self.arithmetic = rows, cols, check_arithmetic(arithmetic)
        self.widths = dict(act_width=act_width, weight_width=weight_width, acc_width=acc_width)
        check_pe_parameters(arithmetic, **self.widths)
        super().__init__({
            "act_in": In(data.ArrayLayout(activation_lane(operand_shape(arithmetic, act_width)), rows)),
            "w_in": In(data.ArrayLayout(operand_shape(arithmetic, weight_width), cols)),
            "w_shift": In(1),
            "w_bank": In(1),
            "psum_out": Out(data.ArrayLayout(accumulator_shape(arithmetic, acc_width), cols)),
        })

    def elaborate(self, platform):
        m = Module()
        grid = [[WeightStationaryPE(arithmetic=self.arithmetic, **self.widths) for _ in range(self.cols)]
                for _ in range(self.rows)]
        for r, row in enumerate(grid):
            for c, pe in enumerate(row):
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += [
                    pe.act_in.eq(self.act_in[r] if c == 0 else grid[r][c - 1].act_out),
                    pe.psum_in.eq(0 if r == 0 else grid[r - 1][c].psum_out),
                    pe.w_in.eq(self.w_in[c] if r == 0 else grid[r - 1][c].w_out),
                    pe.w_shift.eq(self.w_shift),
                    pe.w_bank.eq(self.w_bank),
                ]
        for c in range(self.cols):
            m.d.comb += self.psum_out[c].eq(grid[-1][c].psum_out)
        return m
