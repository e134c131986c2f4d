"""The arithmetic unit: codebook, row address, accumulator read-modify-write, with bypass."""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from formats.eie import ACT_BITS, WEIGHT_BITS
from ..common.memory import COLLISION_UNUSED
from .layouts import acc, act, au_entry_layout, codebook_layout

__all__ = ["ArithmeticUnit"]


class ArithmeticUnit(wiring.Component):
    """Adds ``codebook[v] * a`` to the accumulator of local row ``row += z + 1``, one entry per cycle.

    Pipeline (an entry enters in cycle ``t`` on ``entry``), as the paper's four stages:

    1. ``t``: codebook lookup (a 16-way multiplexer on the layer's codebook) in parallel with the row address
       accumulation, ``row = z`` on a column's first entry (``row_(-1) = -1``), else ``row + z + 1``; registered.
    2. ``t + 1``: accumulator read (synchronous, non-transparent) in parallel with the 16 x 16 multiply; registered.
    3. ``t + 2``: add. Bypass: if the entry one ahead (now in stage 4, not yet written) or two ahead (written at the
       edge that ended stage 2's read, which did not see it) has the same row, its sum replaces the read value; the
       nearer one wins. Registered.
    4. ``t + 3``: write-back of the 40-bit sum.

    Accumulators start at 0: the bias is added in :class:`~.activation.ActivationRegisters` when the layer's outputs
    are written back (exact in integers, so identical to starting at ``bias << w_frac``).

    Ports
    -----
    entry : In(stream.Signature(au_entry_layout(), always_ready=True))
        One entry per cycle at most; never refused.
    codebook : In(codebook_layout())
        The current layer's codebook, held steady during a layer.
    flush_addr, flush_en : In
        While the pipeline is idle: read accumulator ``flush_addr`` (on ``result`` the next cycle) and clear it to 0
        (written the cycle after that).
    result : Out(acc)
        The accumulator a flush read, one cycle after ``flush_en``.
    busy : Out(1)
        An entry is in stages 1 to 4.
    """

    def __init__(self, act_depth: int):
        self.act_depth = act_depth
        super().__init__({
            "entry": In(stream.Signature(au_entry_layout(), always_ready=True)),
            "codebook": In(codebook_layout()),
            "flush_addr": In(range(act_depth)),
            "flush_en": In(1),
            "result": Out(acc),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.accumulators = accumulators = memory.Memory(shape=acc, depth=self.act_depth, init=[],
                                                                attrs=COLLISION_UNUSED)
        rd, wr = accumulators.read_port(), accumulators.write_port()
        row_shape = range(self.act_depth)
        entry = self.entry.payload

        # Stage 1: codebook lookup || row address accumulation.
        valid1, row1 = Signal(), Signal(row_shape)
        weight1, value1 = Signal(signed(WEIGHT_BITS)), Signal(act)
        with m.If(self.entry.valid):
            m.d.sync += [weight1.eq(self.codebook[entry.entry.code]), value1.eq(entry.value),
                         row1.eq(Mux(entry.first, entry.entry.zeros, row1 + entry.entry.zeros + 1))]
        m.d.sync += valid1.eq(self.entry.valid)

        # Stage 2: accumulator read || multiply.
        valid2, row2 = Signal(), Signal(row_shape)
        product2 = Signal(signed(WEIGHT_BITS + ACT_BITS))
        m.d.sync += [valid2.eq(valid1), row2.eq(row1), product2.eq(weight1 * value1)]

        # Stage 3: add, with the bypass from the two entries ahead.
        valid4, row4, sum4 = Signal(), Signal(row_shape), Signal(acc)
        valid5, row5, sum5 = Signal(), Signal(row_shape), Signal(acc)
        base3 = Signal(acc)
        with m.If(valid4 & (row4 == row2)):
            m.d.comb += base3.eq(sum4)
        with m.Elif(valid5 & (row5 == row2)):
            m.d.comb += base3.eq(sum5)
        with m.Else():
            m.d.comb += base3.eq(rd.data)
        m.d.sync += [valid4.eq(valid2), row4.eq(row2), sum4.eq(base3 + product2),
                     valid5.eq(valid4), row5.eq(row4), sum5.eq(sum4)]

        # Stage 4: write-back; flushes use the same ports while the pipeline is idle.
        flush_d, flush_addr_d = Signal(), Signal(row_shape)
        m.d.sync += [flush_d.eq(self.flush_en), flush_addr_d.eq(self.flush_addr)]
        m.d.comb += [
            rd.addr.eq(Mux(self.flush_en, self.flush_addr, row1)),
            wr.addr.eq(Mux(flush_d, flush_addr_d, row4)),
            wr.data.eq(Mux(flush_d, 0, sum4)),
            wr.en.eq(flush_d | valid4),
            self.result.eq(rd.data),
            self.busy.eq(valid1 | valid2 | valid4),
        ]
        return m
