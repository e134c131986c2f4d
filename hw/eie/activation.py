"""Activation read/write: source and destination register files that swap roles between layers."""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from sparq.formats.eie import ACC_BITS, ACT_BITS, W_FRAC_MAX

from ..common.memory import COLLISION_UNUSED
from .layouts import acc, act

__all__ = ["ActivationRegisters"]

_HI, _LO = (1 << (ACT_BITS - 1)) - 1, -(1 << (ACT_BITS - 1))
_CLAMP_BITS = ACT_BITS + 2
"""Bits of the rounded accumulator ``t`` as the finish stage keeps it: any ``|t| >= 2**(_CLAMP_BITS - 1)``
saturates whatever the 16-bit bias, so larger values are clamped to that bound before the bias is added."""
_HALVES = signed(_CLAMP_BITS + 1)   # u = (2 acc) >> w_frac, t = (u + 1) >> 1
_SUM = signed(_CLAMP_BITS + 2)      # u + 2 bias + 1


class ActivationRegisters(wiring.Component):
    """A PE's two activation buffers of ``act_depth`` words: bank ``parity`` is the source of the running layer,
    the other its destination; the CCU flips ``parity`` between layers, so one layer's outputs are the next one's
    inputs. Bank 0 is layer 0's source: the host loads the input vector there. Both banks live in one memory of
    ``2 act_depth`` words (word ``2 addr + bank``, one read and one write port), since a layer reads only the source
    and writes only the destination.

    Outputs enter the destination through :func:`sparq.formats.eie.finish`, computed as (two registered stages)

    1. ``u = (2 acc) >> w_frac`` (arithmetic; the rounded value is ``t = (u + 1) >> 1``), clamped to
       ``+-2**(_CLAMP_BITS)`` when ``acc`` lies outside ``+-2**(_CLAMP_BITS - 1 + w_frac)``;
    2. ``y = (u + 2 bias + 1) >> 1``, saturated to 16 bits, then ``max(y, 0)`` if ``relu``; written.

    This equals ``(acc + (bias << w_frac) + half) >> w_frac`` saturated, bit for bit: ``bias << w_frac`` has no
    fraction bits, so it can join after the shift, and rounding half up is ``((acc >> (w_frac - 1)) + 1) >> 1``
    (which ``(2 acc) >> w_frac`` also gives for ``w_frac = 0``); a clamped value saturates with or without the bias.
    The bias thus joins here, not in the accumulator (see :class:`~.arith.ArithmeticUnit`), and needs neither a
    40-bit adder nor a shifter of its own.

    ReLU is applied on the way into the next layer's source registers, before the leading non-zero detector
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
        f, x = self.w_frac, self.result_acc

        # Finish, stage 1: shift (keeping the bits a result that does not saturate can have), clamp.
        sign = x[-1]
        # Bit k of acc must equal the sign for every k >= _CLAMP_BITS - 1 + f (always, once that exceeds W_FRAC_MAX).
        outside = Cat(*[(x[k] ^ sign) & (f <= k - (_CLAMP_BITS - 1)) if k - (_CLAMP_BITS - 1) < W_FRAC_MAX
                        else x[k] ^ sign for k in range(_CLAMP_BITS - 1, ACC_BITS - 1)])
        halves = Signal(_HALVES)
        m.d.comb += halves.eq(((x << 1) >> f)[:_HALVES.width])
        u1, bias1, addr1, en1 = Signal(_HALVES), Signal(act), Signal(range(self.act_depth)), Signal()
        bound = Const((1 << _CLAMP_BITS) - 1, _HALVES)
        m.d.sync += [u1.eq(Mux(outside.any(), Mux(sign, -bound - 1, bound), halves)), bias1.eq(self.result_bias),
                     addr1.eq(self.result_addr), en1.eq(self.result_en)]
        # Finish, stage 2: bias and rounding, saturate, ReLU.
        total, y = Signal(_SUM), Signal(act)
        m.d.comb += total.eq(u1 + Cat(Const(1, 1), bias1).as_signed())
        rounded = total >> 1
        with m.If(rounded > _HI):
            m.d.comb += y.eq(_HI)
        with m.Elif(rounded < _LO):
            m.d.comb += y.eq(_LO)
        with m.Else():
            m.d.comb += y.eq(rounded)
        finished = Mux(self.relu & y[-1], 0, y)

        m.submodules.banks = banks = memory.Memory(shape=act, depth=2 * self.act_depth, init=[],
                                                   attrs=COLLISION_UNUSED)
        rd, wr = banks.read_port(), banks.write_port()
        m.d.comb += [rd.addr.eq(Cat(self.parity, self.read_addr)), rd.en.eq(self.read_en),
                     self.read_data.eq(rd.data),
                     wr.addr.eq(Mux(self.load_en, Cat(Const(0, 1), self.load_addr), Cat(~self.parity, addr1))),
                     wr.data.eq(Mux(self.load_en, self.load_data, finished)),
                     wr.en.eq(self.load_en | en1)]
        return m
