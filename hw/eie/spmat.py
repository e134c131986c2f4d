"""The sparse-matrix read unit: 64-bit words of 8 entries in, one entry per cycle out."""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from sparq.formats.eie import ADDR_BITS, ENTRY_BITS, WORD_BITS

from ..common.memory import COLLISION_UNUSED
from .layouts import au_entry_layout, entry_layout, run_layout

__all__ = ["SparseMatrixReadUnit"]

#: Bits of an SPRAM-organisation memory word (``SparseMatrixReadUnit(spram=True)``): the iCE40 SB_SPRAM256KA's width.
HALFWORD_BITS = 16


class SparseMatrixReadUnit(wiring.Component):
    """Walks each column's run of entries and delivers one ``(value, entry, first)`` per cycle.

    Entry address ``e`` (relative to the layer) is entry ``e & 7`` of word ``spmat_base + (e >> 3)``. The memory
    is read at the addressed word in every cycle. (The paper reads a word once per 8 entries to save SRAM energy; on
    an FPGA block RAM that saving is small, and the word-changed comparison it needs sat on the block RAM's enable,
    the PE's critical path.) The first entry of a run is addressed straight from ``run.payload`` in the cycle the run is accepted, so
    consecutive columns follow each other with no bubble: a run of ``n`` entries occupies the unit for ``max(1, n)``
    cycles (an empty run still takes its one cycle, as in ``sparq.sim.eie.cycle``).

    Memory organisation (``spram``): by default the memory holds the 64-bit words of the image (``spmat_depth`` of
    them) with a read port and a separate write port, for block RAM. With ``spram=True`` it holds 16-bit halfwords
    of two entries, ``4 * spmat_depth`` of them: halfword ``h`` of word ``w`` (bits ``[16h+15 : 16h]``) at address
    ``4w + h``, so entry ``e`` is byte ``e & 1`` of halfword ``4 * spmat_base + (e >> 1)``. The read and the write
    then share one address (the write's while ``write_en``), so synthesis can map the memory to a single-port RAM,
    an iCE40 UltraPlus SB_SPRAM256KA (16K x 16 bit) per unit instead of its share of the scarce EBR. As the unit
    reads every cycle anyway, the two organisations behave identically cycle by cycle; only the write port's
    unit differs. SPRAM has no initial contents, so this organisation takes no ``init``: the host writes the
    matrix before the first layer. (Amaranth gives every memory an initial value, zeros at least, and Yosys maps no
    initialised memory to SPRAM: :mod:`sparq.fpga.build` drops it for memories marked ``ram_style = "huge"``.)

    Ports
    -----
    run : In(stream.Signature(run_layout(ptr_width)))
        Accepted in the cycle the previous run issues its last entry (or when idle).
    entry : Out(stream.Signature(au_entry_layout(), always_ready=True))
        ``entry.valid`` depends only on internal state. There is no back-pressure: the arithmetic unit takes an entry
        every cycle.
    spmat_base : In(ADDR_BITS)
        The current layer's first (64-bit) word.
    busy : Out(1)
        This cycle the unit issues an entry or consumes an empty run (``busy`` of the cycle model).
    finished : Out(1)
        This cycle the unit is done with a column (its last entry issues, or it consumes an empty run).
    idle : Out(1)
        No run in progress and no entry on ``entry``.
    write_addr, write_data, write_en : In
        Host write of memory word ``write_addr`` (a 64-bit word; with ``spram``, a halfword: ``write_data`` is
        16 bits wide), while no layer runs. One word per cycle.

    Latency: an entry issued in cycle ``t`` (addressed from ``run`` or from the run in progress) is on ``entry`` in
    cycle ``t + 3`` (synchronous-read memory, its word registered, then the entry picked from the word and
    registered).
    """

    def __init__(self, spmat_depth: int, ptr_width: int, init=(), *, spram: bool = False):
        """``init``: the memory's 64-bit words; none with ``spram``."""
        self._init = list(init)
        if spram and self._init:
            raise ValueError("an SPRAM has no initial contents: load the sparse matrix through write_*")
        self.spmat_depth, self.ptr_width, self.spram = spmat_depth, ptr_width, spram
        self._mem_bits = HALFWORD_BITS if spram else WORD_BITS
        self._split = WORD_BITS // self._mem_bits                  # memory words per 64-bit word
        super().__init__({
            "run": In(stream.Signature(run_layout(ptr_width))),
            "entry": Out(stream.Signature(au_entry_layout(), always_ready=True)),
            "spmat_base": In(ADDR_BITS),
            "busy": Out(1),
            "finished": Out(1),
            "idle": Out(1),
            "write_addr": In(range(self._split * spmat_depth)),
            "write_data": In(self._mem_bits),
            "write_en": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        per_word = self._mem_bits // ENTRY_BITS                     # entries per memory word
        sel_bits = (per_word - 1).bit_length()
        attrs = {"ram_style": "huge", **COLLISION_UNUSED} if self.spram else COLLISION_UNUSED
        m.submodules.words = words = memory.Memory(shape=self._mem_bits, depth=self._split * self.spmat_depth,
                                                   init=self._init, attrs=attrs)
        rd, wr = words.read_port(), words.write_port()
        word = data.View(data.ArrayLayout(entry_layout(), per_word), rd.data)
        m.d.comb += [wr.data.eq(self.write_data), wr.en.eq(self.write_en)]

        run = self.run.payload
        cur = Signal(self.ptr_width)    # the next entry's address
        left = Signal(self.ptr_width)   # entries of the run still to issue (a down-counter: no comparator on `cur`)
        length = Signal(signed(self.ptr_width + 1))
        short = Signal()                # the accepted run has at most one entry

        remaining = Signal()
        accept = Signal()       # a run is accepted this cycle
        run_entries = Signal()  # the accepted run is not empty
        issue = Signal()
        addr = Signal(self.ptr_width)
        word_addr = Signal.like(rd.addr)
        read_valid, read_sel, read_first, read_value = Signal(), Signal(sel_bits), Signal(), Signal.like(run.value)
        word_valid, word_sel, word_first, word_value = Signal(), Signal(sel_bits), Signal(), Signal.like(run.value)
        word_q = Signal.like(word)
        m.d.comb += [
            remaining.eq(left != 0),
            self.run.ready.eq(~remaining),
            accept.eq(self.run.valid & self.run.ready),
            run_entries.eq(run.start < run.end),
            length.eq(run.end - run.start),
            short.eq(length[-1] | (length[1:-1] == 0)),  # length <= 1 from its bits, no second comparator
            issue.eq(remaining | (accept & run_entries)),
            addr.eq(Mux(remaining, cur, run.start)),
            word_addr.eq(self.spmat_base * self._split + (addr >> sel_bits)),
            self.busy.eq(issue | (accept & ~run_entries)),
            self.finished.eq((remaining & (left == 1)) | (accept & short)),
            self.idle.eq(~remaining & ~read_valid & ~word_valid & ~self.entry.valid),
        ]
        if self.spram:  # one address for both: a single-port RAM
            m.d.comb += [rd.addr.eq(Mux(self.write_en, self.write_addr, word_addr)), wr.addr.eq(rd.addr)]
        else:
            m.d.comb += [rd.addr.eq(word_addr), wr.addr.eq(self.write_addr)]
        with m.If(remaining):
            m.d.sync += [cur.eq(cur + 1), left.eq(left - 1)]
        with m.Elif(accept):
            # Neither depends on the run_entries compare: cur is not used after an empty run (left is 0), and
            # end + ~start is end - start - 1 in one adder.
            m.d.sync += [cur.eq(run.start + 1), left.eq(Mux(run_entries, run.end + ~run.start, 0))]

        # The entry issued in cycle t: its word is read in t and registered in t + 1 (no logic after the block RAM's
        # slow output), the entry picked from it and registered in t + 2.
        m.d.sync += [read_valid.eq(issue), word_valid.eq(read_valid), self.entry.valid.eq(word_valid),
                     word_q.eq(word)]
        with m.If(issue):
            m.d.sync += [read_sel.eq(addr[:sel_bits]), read_first.eq(~remaining),
                         read_value.eq(Mux(remaining, read_value, run.value))]
        with m.If(read_valid):
            m.d.sync += [word_sel.eq(read_sel), word_first.eq(read_first), word_value.eq(read_value)]
        with m.If(word_valid):
            m.d.sync += [self.entry.payload.value.eq(word_value), self.entry.payload.entry.eq(word_q[word_sel]),
                         self.entry.payload.first.eq(word_first)]
        return m
