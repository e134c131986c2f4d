"""The matrix unit: input skew, systolic array and output de-skew, with the result tags delayed to match."""

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .array import SystolicArray
from .layouts import accumulator_write_layout, issue_layout, vector_layout
from .pe import activation_lane
from .skew import InputSkew, OutputDeskew

__all__ = ["MatrixUnit"]


class MatrixUnit(wiring.Component):
    """Multiplies one activation vector per cycle by the stationary weight tile: ``result.data[c] =
    sum_r vector[r] * W[issue.bank][r, c]`` (int8 x int8, int32 wrap-around), tagged with ``issue``'s address.

    Ports
    -----
    vector : In(ArrayLayout(signed(8), rows))
        The activations, valid in the same cycle as ``issue``.
    issue : In(issue_layout(acc_depth))
        ``valid`` (the vector is real), ``bank`` (which weight bank), ``addr`` and ``accumulate`` (passed through).
    w_in, w_shift, w_bank :
        Weight shifting, as :class:`~.array.SystolicArray`.
    result : Out(accumulator_write_layout(cols, acc_depth))
        ``valid``, ``addr``, ``accumulate`` and ``data``, all :attr:`latency` cycles after the issue.

    Latency: ``rows + cols - 1`` cycles. Throughput: one vector per cycle, with any mix of the two banks.
    """

    def __init__(self, rows: int, cols: int, acc_depth: int, *, acc_width: int = 32):
        self.rows, self.cols, self.acc_depth, self.acc_width = rows, cols, acc_depth, acc_width
        self.latency = rows + cols - 1
        super().__init__({
            "vector": In(vector_layout(rows)),
            "issue": In(issue_layout(acc_depth)),
            "w_in": In(vector_layout(cols)),
            "w_shift": In(1),
            "w_bank": In(1),
            "result": Out(accumulator_write_layout(cols, acc_depth, acc_width)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.skew = skew = InputSkew(self.rows, activation_lane())
        m.submodules.array = array = SystolicArray(self.rows, self.cols, acc_width=self.acc_width)
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
