"""The activation unit: per-column requantization (int32 -> int8), optional ReLU and saturation."""

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sparq.formats.systolic import MULTIPLIER_BITS, PARAM_WORDS, SHIFT_BITS

from .layouts import COUNT_BITS, activate_command_layout, param_layout, vector_layout

__all__ = ["Requantizer", "ActivationUnit"]


class Requantizer(wiring.Component):
    """One lane of ``sparq.formats.systolic.requantize``: ``x = acc + bias`` (exact), ``y = (x * multiplier +
    2**(shift-1)) >> shift`` (round to nearest, ties toward +inf; no rounding term when ``shift == 0``), then ReLU
    when ``relu``, then saturation to int8.

    Pipelined in :attr:`LATENCY` = 3 register stages, one result a cycle: (1) ``x = acc + bias``; (2) the product
    ``x * multiplier`` (registered so that the DSP blocks can absorb the register); (3) round, shift, ReLU, saturation.
    ``multiplier``, ``shift`` and ``relu`` travel along with their operand, so every input may change every cycle.

    Ports
    -----
    acc : In(signed(acc_width))
    params : In(param_layout(acc_width))
        ``bias`` (signed), ``multiplier`` (unsigned 16 bits), ``shift`` (unsigned 6 bits, below 48).
    relu : In(1)
    y : Out(signed(8)), registered: the result for the inputs of cycle ``t`` is on ``y`` at ``t + LATENCY``.
    """

    LATENCY = 3

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
        shift = _delayed(m, self.params.shift, 2, "shift")  # [k]: the shift of the operand in stage k
        relu = _delayed(m, self.relu, 2, "relu")

        # Stage 1: the exact sum.
        x = Signal(signed(self.acc_width + 1))
        multiplier = Signal.like(self.params.multiplier)
        m.d.sync += [x.eq(self.acc + self.params.bias), multiplier.eq(self.params.multiplier)]

        # Stage 2: the product.
        product = Signal(signed(width))
        m.d.sync += product.eq(x * multiplier)

        # Stage 3: round, shift, ReLU, saturate. With ``u = floor(product / 2**(shift-1))`` (``2 * product`` when
        # ``shift == 0``) the rounded quotient is ``(u + 1) >> 1``; saturating ``u`` to 10 bits first leaves the int8
        # result unchanged and keeps the rounding adder and the clamp narrow.
        u = Signal(signed(width + 1))
        m.d.comb += u.eq((product << 1) >> shift[2])
        fits = Mux(u[-1], u[9:].all(), ~u[9:].any())  # -512 <= u < 512
        u10, rounded = Signal(signed(10)), Signal(signed(10))
        m.d.comb += [u10.eq(Mux(fits, u, Mux(u[-1], -512, 511))), rounded.eq((u10 + 1) >> 1)]
        clipped = Mux(rounded > 127, 127, Mux(rounded < -128, -128, rounded))
        m.d.sync += self.y.eq(Mux(relu[2] & rounded[-1], 0, clipped))
        return m


def _delayed(m: Module, value, cycles: int, name: str) -> list:
    """``[value, value one cycle ago, ..., value cycles ago]``: a chain of ``cycles`` registers."""
    chain = [value]
    for k in range(1, cycles + 1):
        chain.append(Signal.like(value, name=f"{name}{k}"))
        m.d.sync += chain[k].eq(chain[k - 1])
    return chain


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
    t+7+count``, and, through the :attr:`Requantizer.LATENCY` = 3 stage requantizers, writes the UB at ``t+12 ..
    t+11+count``; ``busy`` is high for ``count + 11`` cycles.
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
        left = Signal(COUNT_BITS)  # accumulator rows still to read
        acc_next = Signal(range(self.depths["acc_depth"]))  # the next accumulator row to read
        ub_next = Signal(range(self.depths["ub_depth"]))  # its UB destination
        loading, streaming = Signal(), Signal()
        # A streamed row's valid bit and UB address along the requantizers: [0] in the cycle its accumulator word
        # arrives, [Requantizer.LATENCY] in the cycle its result is ready.
        valid = _delayed(m, streaming, Requantizer.LATENCY + 1, "valid")[1:]
        ub = _delayed(m, ub_next, Requantizer.LATENCY + 1, "ub")[1:]

        m.d.comb += [
            self.busy.eq(loading | streaming | Cat(*valid).any() | (param_arriving != 0)),
            self.cmd.ready.eq(~self.busy),
        ]
        with m.If(self.cmd.valid & self.cmd.ready):
            payload = self.cmd.payload
            m.d.sync += [command.eq(payload), loading.eq(1), param_index.eq(0), left.eq(payload.count),
                         acc_next.eq(payload.acc), ub_next.eq(payload.ub)]

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

        # Streaming phase: one accumulator row a cycle, requantized, written back to the UB 1 + LATENCY cycles later.
        m.d.comb += self.acc_addr.eq(acc_next)
        with m.If(streaming):
            m.d.sync += [left.eq(left - 1), acc_next.eq(acc_next + 1), ub_next.eq(ub_next + 1)]
            with m.If(left == 1):
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
        m.d.comb += [self.ub_addr.eq(ub[-1]), self.ub_en.eq(valid[-1])]
        return m
