"""The activation unit: per-column requantization (int32 -> int8), optional ReLU and saturation."""

from amaranth import Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from formats.systolic import MULTIPLIER_BITS, PARAM_WORDS, SHIFT_BITS

from .layouts import activate_command_layout, param_layout, vector_layout

__all__ = ["Requantizer", "ActivationUnit"]


class Requantizer(wiring.Component):
    """One lane of ``formats.systolic.requantize``: ``x = acc + bias`` (exact), ``y = (x * multiplier +
    2**(shift-1)) >> shift`` (round to nearest, ties toward +inf; no rounding term when ``shift == 0``), then ReLU
    when ``relu``, then saturation to int8.

    Ports
    -----
    acc : In(signed(acc_width))
    params : In(param_layout(acc_width))
        ``bias`` (signed), ``multiplier`` (unsigned 16 bits), ``shift`` (unsigned 6 bits, below 48).
    relu : In(1)
    y : Out(signed(8)), registered: 1-cycle latency.
    """

    def __init__(self, *, acc_width: int = 32):
        self.acc_width = acc_width
        super().__init__({
            "acc": In(signed(acc_width)),
            "params": In(param_layout(acc_width)),
            "relu": In(1),
            "y": Out(signed(8)),
        })

    def elaborate(self, platform):
        m = Module()
        width = self.acc_width + 1 + MULTIPLIER_BITS + 1  # |x * multiplier| < 2**(acc_width + MULTIPLIER_BITS)
        x = Signal(signed(self.acc_width + 1))
        product = Signal(signed(width))
        half = Signal(signed(width))
        rounded = Signal(signed(width))
        m.d.comb += [
            x.eq(self.acc + self.params.bias),
            product.eq(x * self.params.multiplier),
            half.eq((Const(1, width) << self.params.shift) >> 1),
            rounded.eq((product + half) >> self.params.shift),
        ]
        clipped = Mux(rounded > 127, 127, Mux(rounded < -128, -128, rounded))
        m.d.sync += self.y.eq(Mux(self.relu & (rounded < 0), 0, clipped))
        return m


class ActivationUnit(wiring.Component):
    """Executes ACTIVATE commands: loads the ``PARAM_WORDS``-word parameter record at ``WB[wb]`` into per-column
    registers, then for ``i < count`` writes ``UB[ub + i] <- requantize(ACC[acc + i])`` with ``cols`` requantizers.

    Ports
    -----
    cmd : In(stream.Signature(activate_command_layout(...)))
        Accepted when the unit is idle (``cmd.ready == ~busy``).
    busy : Out(1)
        High from the cycle after a command is accepted until its last UB write has happened.
    wb_addr : Out, wb_data : In -- a weight-buffer read port (1-cycle latency).
    acc_addr : Out, acc_data : In -- an accumulator read port (1-cycle latency).
    ub_addr, ub_data, ub_en : Out -- a unified-buffer write port.

    Timing: a command accepted at cycle ``t`` reads parameters at ``t+1 .. t+7``, accumulators at ``t+8 ..
    t+7+count``, writes the UB at ``t+10 .. t+9+count``; ``busy`` is high for ``count + 9`` cycles.
    """

    def __init__(self, cols: int, acc_depth: int, ub_depth: int, wb_depth: int, *, acc_width: int = 32):
        self.cols, self.acc_width = cols, acc_width
        self.depths = dict(acc_depth=acc_depth, ub_depth=ub_depth, wb_depth=wb_depth)
        super().__init__({
            "cmd": In(stream.Signature(activate_command_layout(acc_depth, ub_depth, wb_depth))),
            "busy": Out(1),
            "wb_addr": Out(range(wb_depth)),
            "wb_data": In(vector_layout(cols)),
            "acc_addr": Out(range(acc_depth)),
            "acc_data": In(data.ArrayLayout(signed(acc_width), cols)),
            "ub_addr": Out(range(ub_depth)),
            "ub_data": Out(vector_layout(cols)),
            "ub_en": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        command = Signal(self.cmd.payload.shape())
        params = Signal(data.ArrayLayout(param_layout(self.acc_width), self.cols))
        param_raw = Signal(data.ArrayLayout(data.ArrayLayout(8, PARAM_WORDS), self.cols))  # bytes as they arrive
        param_index = Signal(range(PARAM_WORDS + 1))  # next parameter word to read
        param_arriving = Signal(range(PARAM_WORDS + 1))  # 1 + index of the word on wb_data, 0 if none
        streamed = Signal(range(1 << 24))  # accumulator rows read so far
        loading, streaming = Signal(), Signal()
        read_valid, read_ub = Signal(), Signal(range(self.depths["ub_depth"]))  # accumulator data arriving
        out_valid, out_ub = Signal(), Signal(range(self.depths["ub_depth"]))  # requantized data ready

        m.d.comb += [
            self.busy.eq(loading | streaming | read_valid | out_valid | (param_arriving != 0)),
            self.cmd.ready.eq(~self.busy),
        ]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [command.eq(self.cmd.payload), loading.eq(1), param_index.eq(0), streamed.eq(0)]

        # Parameter phase: read PARAM_WORDS words; word k carries byte k of every column's record.
        m.d.comb += self.wb_addr.eq(command.wb + param_index)
        m.d.sync += param_arriving.eq(0)
        with m.If(loading):
            m.d.sync += [param_index.eq(param_index + 1), param_arriving.eq(param_index + 1)]
            with m.If(param_index == PARAM_WORDS - 1):
                m.d.sync += [loading.eq(0), streaming.eq(1)]
        for k in range(PARAM_WORDS):
            with m.If(param_arriving == k + 1):
                for lane in range(self.cols):
                    m.d.sync += param_raw[lane][k].eq(self.wb_data[lane])
        for lane in range(self.cols):
            raw = param_raw[lane]
            m.d.comb += [
                params[lane].bias.eq(raw.as_value()[:32].as_signed()),
                params[lane].multiplier.eq(raw.as_value()[32:32 + MULTIPLIER_BITS]),
                params[lane].shift.eq(raw.as_value()[48:48 + SHIFT_BITS]),
            ]

        # Streaming phase: one accumulator row a cycle, requantized, written back to the UB two cycles later.
        m.d.comb += self.acc_addr.eq(command.acc + streamed)
        m.d.sync += [read_valid.eq(streaming), read_ub.eq(command.ub + streamed),
                     out_valid.eq(read_valid), out_ub.eq(read_ub)]
        with m.If(streaming):
            m.d.sync += streamed.eq(streamed + 1)
            with m.If(streamed == command.count - 1):
                m.d.sync += streaming.eq(0)
        for lane in range(self.cols):
            requantizer = Requantizer(acc_width=self.acc_width)
            m.submodules[f"requantizer{lane}"] = requantizer
            m.d.comb += [
                requantizer.acc.eq(self.acc_data[lane]),
                requantizer.params.eq(params[lane]),
                requantizer.relu.eq(command.relu),
                self.ub_data[lane].eq(requantizer.y),
            ]
        m.d.comb += [self.ub_addr.eq(out_ub), self.ub_en.eq(out_valid)]
        return m
