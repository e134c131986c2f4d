"""The arithmetic unit: codebook, row address, accumulator read-modify-write, with bypass."""

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.hdl import Cover
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from sparq.formats.eie import ACT_BITS, ADDR_BITS, CODEBOOK_SIZE, WEIGHT_BITS

from ..common.memory import COLLISION_UNUSED
from .layouts import acc, act, au_entry_layout

__all__ = ["ArithmeticUnit"]


class ArithmeticUnit(wiring.Component):
    """Adds ``codebook[v] * a`` to the accumulator of local row ``row += z + 1``, one entry per cycle.

    The unit holds the PE's copy of every layer's codebook and the PE's biases, in one memory of 16-bit words
    (codebook entry ``c`` of layer ``l`` at ``16 l + c``, bias ``b`` at ``16 max_layers + b``): codebook words
    are read while a layer runs, biases only while its outputs are written back, so one read port serves both, and
    one block RAM replaces a 16-way multiplexer per PE. The accumulators are a second memory.

    Pipeline (an entry enters in cycle ``t`` on ``entry``), as the paper's stages:

    1. ``t``: codebook read (synchronous) in parallel with the row address accumulation, ``row = z`` on a column's
       first entry (``row_(-1) = -1``), else ``row + z + 1``; registered.
    2. ``t + 1``: accumulator read (synchronous) in parallel with the 16 x 16 multiply; registered.
    3. ``t + 2``: add and write back. Bypass: the entry one ahead wrote its sum at the edge that ended this entry's
       read, which did not see it (block RAM has no defined read-during-write result), so when its row is the same
       its registered sum replaces the read word. Entries further ahead wrote before this entry read.

    Coverage: one ``Cover``, the bypass taken in two cycles running (three entries in a row on one accumulator),
    counted by Verilator's user coverage in a coverage build (:mod:`sparq.sim.coverage`); synthesis drops it.

    Accumulators start at 0: the bias is added in :class:`~.activation.ActivationRegisters` when the layer's outputs
    are written back (exact in integers, so identical to starting at ``bias << w_frac``).

    Ports
    -----
    entry : In(stream.Signature(au_entry_layout(), always_ready=True))
        One entry per cycle at most; never refused.
    layer_index : In(range(max_layers))
        The running layer, whose codebook applies; held steady during a layer.
    bias_base : In(ADDR_BITS)
        The running layer's first bias (``sparq.formats.eie`` layer table).
    flush_addr, flush_en : In
        While the pipeline is idle: read accumulator ``flush_addr`` and bias ``bias_base + flush_addr`` (on
        ``result`` and ``bias`` the next cycle) and clear the accumulator to 0 (written the cycle after that).
    result : Out(acc), bias : Out(act)
        What a flush read, one cycle after ``flush_en``.
    write_addr, write_data, write_codebook, write_bias : In
        Host write of codebook word ``write_addr`` (``16 * layer + code``) or of bias ``write_addr``, while no layer
        runs.
    busy : Out(1)
        An entry is in stages 1 to 3 (not yet written).
    """

    def __init__(self, act_depth: int, bias_depth: int, max_layers: int, *, codebooks=(), biases=()):
        """``codebooks``: the ``16 * max_layers`` codebook words, ``biases``: the bias words, for ``Memory(init=)``
        (both may be empty or short)."""
        self.act_depth, self.bias_depth, self.max_layers = act_depth, bias_depth, max_layers
        self._bias_offset = CODEBOOK_SIZE * max_layers
        codebooks, biases = [int(w) for w in codebooks], [int(b) for b in biases]
        self._init = codebooks + [0] * (self._bias_offset - len(codebooks)) + biases if biases else codebooks
        super().__init__({
            "entry": In(stream.Signature(au_entry_layout(), always_ready=True)),
            "layer_index": In(range(max_layers)),
            "bias_base": In(ADDR_BITS),
            "flush_addr": In(range(act_depth)),
            "flush_en": In(1),
            "result": Out(acc),
            "bias": Out(act),
            "write_addr": In(ADDR_BITS),
            "write_data": In(act),
            "write_codebook": In(1),
            "write_bias": In(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.accumulators = accumulators = memory.Memory(shape=acc, depth=self.act_depth, init=[],
                                                                attrs=COLLISION_UNUSED)
        m.submodules.parameters = parameters = memory.Memory(shape=act, depth=self._bias_offset + self.bias_depth,
                                                             init=self._init, attrs=COLLISION_UNUSED)
        rd, wr = accumulators.read_port(), accumulators.write_port()
        param_rd, param_wr = parameters.read_port(), parameters.write_port()
        row_shape = range(self.act_depth)
        entry = self.entry.payload

        # Parameters: codebook reads for entries, bias reads for flushes, host writes.
        m.d.comb += [
            param_rd.addr.eq(Mux(self.flush_en, self._bias_offset + self.bias_base + self.flush_addr,
                                 Cat(entry.entry.code, self.layer_index))),
            param_rd.en.eq(self.flush_en | self.entry.valid),
            self.bias.eq(param_rd.data),
            param_wr.addr.eq(Mux(self.write_bias, self._bias_offset + self.write_addr, self.write_addr)),
            param_wr.data.eq(self.write_data),
            param_wr.en.eq(self.write_codebook | self.write_bias),
        ]

        # Stage 1: codebook read || row address accumulation.
        valid1, row1, value1 = Signal(), Signal(row_shape), Signal(act)
        with m.If(self.entry.valid):
            m.d.sync += row1.eq(Mux(entry.first, entry.entry.zeros, row1 + entry.entry.zeros + 1))
        m.d.sync += [valid1.eq(self.entry.valid), value1.eq(entry.value)]

        # Stage 2: accumulator read || multiply.
        valid2, row2 = Signal(), Signal(row_shape)
        weight = param_rd.data
        product2 = Signal(signed(WEIGHT_BITS + ACT_BITS))
        m.d.sync += [valid2.eq(valid1), row2.eq(row1), product2.eq(weight * value1)]

        # Stage 3: add, with the bypass from the entry one ahead, and write.
        valid3, row3, sum3 = Signal(), Signal(row_shape), Signal(acc)
        total = Signal(acc)
        bypass = Signal()
        m.d.comb += [bypass.eq(valid3 & (row3 == row2)), total.eq(Mux(bypass, sum3, rd.data) + product2)]
        m.d.sync += [valid3.eq(valid2), row3.eq(row2), sum3.eq(total)]
        bypassed, bypassed_last = valid2 & bypass, Signal()
        m.d.sync += [bypassed_last.eq(bypassed), Cover(bypassed & bypassed_last, "bypass back to back")]

        # Flushes use the accumulator ports while the pipeline is idle.
        flush_d, flush_addr_d = Signal(), Signal(row_shape)
        m.d.sync += [flush_d.eq(self.flush_en), flush_addr_d.eq(self.flush_addr)]
        m.d.comb += [
            rd.addr.eq(Mux(self.flush_en, self.flush_addr, row1)),
            wr.addr.eq(Mux(flush_d, flush_addr_d, row2)),
            wr.data.eq(Mux(flush_d, 0, total)),
            wr.en.eq(flush_d | valid2),
            self.result.eq(rd.data),
            self.busy.eq(valid1 | valid2),
        ]
        return m
