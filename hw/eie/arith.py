"""The arithmetic unit: codebook, row address, accumulator read-modify-write, with bypass."""

from amaranth import Cat, Module, Mux, Signal
from amaranth.hdl import Cover
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from sparq.formats.eie import ADDR_BITS, CODEBOOK_SIZE

from ..common.dsp import RegisteredMultiplier
from ..common.memory import COLLISION_UNUSED
from .layouts import acc, act, au_entry_layout

__all__ = ["ArithmeticUnit"]

_ADD_STAGE = 4  # the stage that adds the product to the accumulator word and writes the sum
_FORWARD = 2    # sums a word read in stage 2 may miss: the two entries ahead write while it is in stages 2 and 3


class ArithmeticUnit(wiring.Component):
    """Adds ``codebook[v] * a`` to the accumulator of local row ``row += z + 1``, one entry per cycle.

    The unit holds the PE's copy of every layer's codebook and the PE's biases, in one memory of 16-bit words
    (codebook entry ``c`` of layer ``l`` at ``16 l + c``, bias ``b`` at ``16 max_layers + b``): codebook words
    are read while a layer runs, biases only while its outputs are written back, so one read port serves both, and
    one block RAM replaces a 16-way multiplexer per PE. The accumulators are a second memory.

    Pipeline (an entry enters in cycle ``t`` on ``entry``, stage 0), every memory output registered before use:

    0. ``t``: codebook read (synchronous) in parallel with the row address accumulation, ``row = z`` on a column's
       first entry (``row_(-1) = -1``), else ``row + z + 1``; registered.
    1. the codebook word arrives; registered.
    2. the 16 x 16 multiply starts (:class:`~sparq.hw.common.dsp.RegisteredMultiplier`, its operand and product
       registers, the DSP block's own on an ECP5); the accumulator read issues.
    3. the accumulator word arrives; registered. Whether an entry ahead holds a newer sum of this row is decided
       and registered.
    4. add: the product plus the newest sum of the row among the two entries ahead (forwarding), else plus the
       word read, and write (the sum goes straight to the memory's write port; registered for forwarding).

    Forwarding: block RAM has no defined read-during-write result, and a word read in stage 2 misses the sums of
    the entries one and two ahead (they write while it is in stages 3 and 2), so the younger of them on the same
    row replaces it; entries further ahead wrote before the read.

    Coverage: one ``Cover``, the sum of the entry one ahead forwarded in two cycles running (three entries in a row on one accumulator),
    counted by Verilator's user coverage in a coverage build (:mod:`sparq.sim.coverage`); synthesis drops it.

    Accumulators start at 0: the bias is added in :class:`~.activation.ActivationRegisters` when the layer's outputs
    are written back (exact in integers, so identical to starting at ``bias << w_frac``).

    Ports
    -----
    entry : In(stream.Signature(au_entry_layout(), always_ready=True))
        One entry per cycle at most; never refused.
    layer_index : In(range(max_layers))
        The running layer, whose codebook applies; held steady during a layer.
    flush_addr, flush_en, bias_addr : In
        While the pipeline is idle: read accumulator ``flush_addr`` and bias ``bias_addr`` (the layer's
        ``bias_base + flush_addr``, ``sparq.formats.eie`` layer table, from a register: no adder before the read; on
        ``result`` and ``bias`` ``FLUSH_LATENCY`` cycles later) and clear the accumulator to 0 (written the next
        cycle).
    result : Out(acc), bias : Out(act)
        What a flush read, ``FLUSH_LATENCY`` (2) cycles after ``flush_en``: the memories' words in stage 3's and
        stage 2's registers.
    write_addr, write_data, write_codebook, write_bias : In
        Host write of codebook word ``write_addr`` (``16 * layer + code``) or of bias ``write_addr``, while no layer
        runs.
    busy : Out(1)
        An entry is in stages 1 to 4 (not yet written).
    """

    FLUSH_LATENCY = 2

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
            "flush_addr": In(range(act_depth)),
            "flush_en": In(1),
            "bias_addr": In(range(bias_depth)),
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
            param_rd.addr.eq(Mux(self.flush_en, self._bias_offset + self.bias_addr,
                                 Cat(entry.entry.code, self.layer_index))),
            param_rd.en.eq(self.flush_en | self.entry.valid),
            param_wr.addr.eq(Mux(self.write_bias, self._bias_offset + self.write_addr, self.write_addr)),
            param_wr.data.eq(self.write_data),
            param_wr.en.eq(self.write_codebook | self.write_bias),
        ]

        # valid[s], row[s]: the entry in stage s (registered, s = 1 .. _ADD_STAGE).
        stages = range(1, _ADD_STAGE + 1)
        valid = {s: Signal(name=f"valid{s}") for s in stages}
        row = {s: Signal(row_shape, name=f"row{s}") for s in stages}
        m.d.sync += valid[1].eq(self.entry.valid)
        with m.If(self.entry.valid):  # stage 0: codebook read || row address accumulation
            m.d.sync += row[1].eq(Mux(entry.first, entry.entry.zeros, row[1] + entry.entry.zeros + 1))
        for s in stages[1:]:
            m.d.sync += [valid[s].eq(valid[s - 1]), row[s].eq(row[s - 1])]
        value1, value2, weight2 = Signal(act), Signal(act), Signal(act)
        m.d.sync += [value1.eq(entry.value), value2.eq(value1), weight2.eq(param_rd.data)]

        # Stage 2: multiply (the product is in stage _ADD_STAGE); the accumulator read issues.
        m.submodules.multiplier = multiplier = RegisteredMultiplier(act, act)
        assert _ADD_STAGE == 2 + RegisteredMultiplier.LATENCY
        m.d.comb += [multiplier.a.eq(weight2), multiplier.b.eq(value2)]

        # Stage 3: the word read is registered; which younger sum replaces it is decided (registered for stage 4).
        read_word = Signal(acc)
        m.d.sync += read_word.eq(rd.data)
        # sums[d]: the sum written d + 1 cycles ago, with its row and valid bit.
        sums = [Signal(acc, name=f"sum{d}") for d in range(_FORWARD)]
        sum_rows = [Signal(row_shape, name=f"sum_row{d}") for d in range(_FORWARD)]
        sum_valid = [Signal(name=f"sum_valid{d}") for d in range(_FORWARD)]
        m.d.sync += [sum_rows[0].eq(row[_ADD_STAGE]), sum_valid[0].eq(valid[_ADD_STAGE])]
        for d in range(1, _FORWARD):
            m.d.sync += [sums[d].eq(sums[d - 1]), sum_rows[d].eq(sum_rows[d - 1]), sum_valid[d].eq(sum_valid[d - 1])]
        # The entry in stage 3 adds in the next cycle, when the entry now adding and the one that wrote last cycle
        # are the sums d = 0, 1 back.
        ahead = [(valid[_ADD_STAGE], row[_ADD_STAGE]), (sum_valid[0], sum_rows[0])][:_FORWARD]
        forward = [Signal(name=f"forward{d}") for d in range(_FORWARD)]
        m.d.sync += [forward[d].eq(v & (r == row[_ADD_STAGE - 1])) for d, (v, r) in enumerate(ahead)]

        # Stage 4: add to the youngest matching sum, else to the word read, and write.
        base = read_word
        for d in reversed(range(_FORWARD)):
            base = Mux(forward[d], sums[d], base)
        total = Signal(acc)
        m.d.comb += total.eq(base + multiplier.p)
        m.d.sync += sums[0].eq(total)
        bypassed, bypassed_last = valid[_ADD_STAGE] & forward[0], Signal()
        m.d.sync += [bypassed_last.eq(bypassed), Cover(bypassed & bypassed_last, "bypass back to back")]

        # Flushes use the accumulator ports while the pipeline is idle: read (the words registered in stage 3's
        # registers) and clear (written a cycle later).
        flush_d, flush_addr_d = Signal(), Signal(row_shape)
        m.d.sync += [flush_d.eq(self.flush_en), flush_addr_d.eq(self.flush_addr)]
        m.d.comb += [
            rd.addr.eq(Mux(self.flush_en, self.flush_addr, row[2])),
            wr.addr.eq(Mux(flush_d, flush_addr_d, row[_ADD_STAGE])),
            wr.data.eq(Mux(flush_d, 0, total)),
            wr.en.eq(flush_d | valid[_ADD_STAGE]),
            self.result.eq(read_word),
            self.bias.eq(weight2),
            self.busy.eq(Cat(*valid.values()).any()),
        ]
        return m
