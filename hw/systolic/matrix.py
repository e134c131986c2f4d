"""The matrix unit: input skew, systolic array and output de-skew, with the result tags delayed to match."""

from amaranth import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .array import SystolicArray
from .layouts import accumulator_tag_layout, accumulator_write_layout, issue_layout
from .pe import accumulator_shape, activation_lane, check_arithmetic, operand_shape, pe_latency
from .skew import InputSkew, OutputDeskew

__all__ = ["MatrixUnit"]


class MatrixUnit(wiring.Component):
    """Multiplies one activation vector per cycle by the stationary weight tile: ``result.data[c] =
    sum_r vector[r] * W[issue.bank][r, c]``, tagged with ``issue``'s address.

    ``arithmetic="int8"`` (default): int8 x int8, int32 wrap-around. ``"fp16"`` / ``"bf16"``: 16-bit float
    operands (bit patterns), fp32 results accumulated in row order from ``+0`` with IEEE rounding after every
    multiply and add (``sparq.sim.golden.fp.fp_matmul``).

    Ports
    -----
    vector : In(ArrayLayout(operand_shape(arithmetic), rows))
        The activations, valid in the same cycle as ``issue``.
    issue : In(issue_layout(acc_depth))
        ``valid`` (the vector is real), ``bank`` (which weight bank), ``addr`` and ``accumulate`` (passed through).
    w_in, w_shift, w_bank :
        Weight shifting, as :class:`~.array.SystolicArray`.
    result : Out(accumulator_write_layout(cols, acc_depth, accumulator_shape(arithmetic, acc_width)))
        ``valid``, ``addr``, ``accumulate`` and ``data``, all :attr:`latency` cycles after the issue.
    upcoming : Out(accumulator_tag_layout(acc_depth))
        ``valid``, ``addr`` and ``accumulate`` of ``result`` ``lookahead`` cycles ahead (for the accumulators'
        early read, :attr:`~.accumulators.Accumulators.PREFETCH`).

    Latency: ``rows + cols - 2`` plus the PE latency (3 for int8, ``sparq.formats.systolic.matrix_latency``; 1 for
    float). Throughput: one vector per cycle, with any mix of the two banks.
    """

    def __init__(self, rows: int, cols: int, acc_depth: int, *, acc_width: int = 32, arithmetic: str = "int8",
                 act_width: int = 8, weight_width: int = 8, lookahead: int = 2):
        self.rows, self.cols, self.acc_depth, self.acc_width = rows, cols, acc_depth, acc_width
        self.arithmetic = check_arithmetic(arithmetic)
        self.act_width, self.weight_width = act_width, weight_width  # int8 arithmetic: wider integer operands
        self.latency = rows + cols - 2 + pe_latency(arithmetic)
        if not 0 < lookahead <= self.latency:
            raise ValueError(f"MatrixUnit lookahead must be in 1 .. {self.latency} (its latency), not {lookahead!r}")
        self.lookahead = lookahead
        super().__init__({
            "vector": In(data.ArrayLayout(operand_shape(arithmetic, act_width), rows)),
            "issue": In(issue_layout(acc_depth)),
            "w_in": In(data.ArrayLayout(operand_shape(arithmetic, weight_width), cols)),
            "w_shift": In(1),
            "w_bank": In(1),
            "result": Out(accumulator_write_layout(cols, acc_depth, accumulator_shape(arithmetic, acc_width))),
            "upcoming": Out(accumulator_tag_layout(acc_depth)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.skew = skew = InputSkew(self.rows, activation_lane(operand_shape(self.arithmetic,
                                                                                     self.act_width)))
        widths = dict(act_width=self.act_width, weight_width=self.weight_width) if self.arithmetic == "int8" else {}
        m.submodules.array = array = SystolicArray(self.rows, self.cols, arithmetic=self.arithmetic,
                                                   acc_width=self.acc_width, **widths)
        m.submodules.deskew = deskew = OutputDeskew(self.cols, array.psum_out.shape().elem_shape)
        for r in range(self.rows):
            m.d.comb += [
                skew.i[r].value.eq(self.vector[r]),
                skew.i[r].valid.eq(self.issue.valid),
                skew.i[r].bank.eq(self.issue.bank),
            ]
        m.d.comb += [
            array.act_in.eq(skew.o),
            array.w_in.eq(self.w_in),
            array.w_shift.eq(self.w_shift),
            array.w_bank.eq(self.w_bank),
            deskew.i.eq(array.psum_out),
        ]
        tag = self.issue
        for stage in range(self.latency):
            if stage == self.latency - self.lookahead:
                m.d.comb += [self.upcoming.valid.eq(tag.valid), self.upcoming.accumulate.eq(tag.accumulate),
                             self.upcoming.addr.eq(tag.addr)]
            delayed = Signal(issue_layout(self.acc_depth), name=f"tag_stage{stage}")
            m.d.sync += delayed.eq(tag)
            tag = delayed
        m.d.comb += [
            self.result.valid.eq(tag.valid),
            self.result.accumulate.eq(tag.accumulate),
            self.result.addr.eq(tag.addr),
            self.result.data.eq(deskew.o),
        ]
        return m
