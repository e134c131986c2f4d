"""Activation read/write: source and destination register files that swap roles between layers."""

from amaranth import Const, Module, Mux, Signal, signed
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from formats.eie import ACC_BITS, ACT_BITS, W_FRAC_MAX
from .layouts import acc, act

__all__ = ["ActivationRegisters"]

_SUM = signed(ACC_BITS + 1)
_HI, _LO = (1 << (ACT_BITS - 1)) - 1, -(1 << (ACT_BITS - 1))


class ActivationRegisters(wiring.Component):
    """A PE's two activation buffers of ``act_depth`` words: bank ``parity`` is the source of the running layer,
    the other its destination; the CCU flips ``parity`` between layers, so one layer's outputs are the next one's
    inputs. Bank 0 is layer 0's source: the host loads the input vector there.

    Outputs enter the destination through :func:`formats.eie.finish` (two registered stages):

    1. ``s = acc + (bias << w_frac) + ((1 << w_frac) >> 1)`` (the bias joins here, see
       :class:`~.arith.ArithmeticUnit`);
    2. ``y = s >> w_frac`` (arithmetic), saturated to 16 bits, then ``max(y, 0)`` if ``relu``; written.

    ReLU is thus applied on the way into the next layer's source registers, before the leading non-zero detector
    sees the value; the stored word equals the golden model's activation.

    Ports
    -----
    parity : In(1)
        Which bank is the source.
    read_addr, read_en : In; read_data : Out(act)
        Synchronous read of the source bank; ``read_data`` holds while ``read_en`` is low.
    result_addr, result_acc, result_bias, result_en : In
        An accumulator and the row's bias to finish into destination address ``result_addr``; written two cycles
        later (visible to a read issued three cycles after ``result_en``).
    w_frac, relu : In
        The running layer's fields.
    load_addr, load_data, load_en : In
        Host write into bank 0; not at the same time as results.
    """

    def __init__(self, act_depth: int):
        self.act_depth = act_depth
        super().__init__({
            "parity": In(1),
            "read_addr": In(range(act_depth)),
            "read_en": In(1),
            "read_data": Out(act),
            "result_addr": In(range(act_depth)),
            "result_acc": In(acc),
            "result_bias": In(act),
            "result_en": In(1),
            "w_frac": In(range(W_FRAC_MAX + 1)),
            "relu": In(1),
            "load_addr": In(range(act_depth)),
            "load_data": In(act),
            "load_en": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        f = self.w_frac

        # Finish, stage 1: bias and rounding constant.
        sum1, addr1, en1 = Signal(_SUM), Signal(range(self.act_depth)), Signal()
        half = (Const(1, W_FRAC_MAX + 1) << f) >> 1
        m.d.sync += [sum1.eq(self.result_acc + (self.result_bias << f) + half), addr1.eq(self.result_addr),
                     en1.eq(self.result_en)]
        # Finish, stage 2: shift, saturate, ReLU.
        shifted = Signal(_SUM)
        y = Signal(act)
        m.d.comb += shifted.eq(sum1 >> f)
        with m.If(shifted > _HI):
            m.d.comb += y.eq(_HI)
        with m.Elif(shifted < _LO):
            m.d.comb += y.eq(_LO)
        with m.Else():
            m.d.comb += y.eq(shifted)
        finished = Mux(self.relu & y[-1], 0, y)

        data = []
        for bank in range(2):
            m.submodules[f"bank{bank}"] = mem = memory.Memory(shape=act, depth=self.act_depth, init=[])
            rd, wr = mem.read_port(), mem.write_port()
            m.d.comb += [rd.addr.eq(self.read_addr), rd.en.eq(self.read_en)]
            data.append(rd.data)
            load = self.load_en if bank == 0 else Const(0)
            m.d.comb += [wr.addr.eq(Mux(load, self.load_addr, addr1)),
                         wr.data.eq(Mux(load, self.load_data, finished)),
                         wr.en.eq(load | (en1 & (self.parity != bank)))]
        read_bank = Signal()
        with m.If(self.read_en):
            m.d.sync += read_bank.eq(self.parity)
        m.d.comb += self.read_data.eq(Mux(read_bank, data[1], data[0]))
        return m
