"""The sparse-matrix read unit: 64-bit words of 8 entries in, one entry per cycle out."""

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from formats.eie import ENTRIES_PER_WORD, WORD_BITS
from .layouts import ADDR_BITS, au_entry_layout, run_layout, word_layout

__all__ = ["SparseMatrixReadUnit"]

_SEL_BITS = (ENTRIES_PER_WORD - 1).bit_length()


class SparseMatrixReadUnit(wiring.Component):
    """Walks each column's run of entries and delivers one ``(value, entry, first)`` per cycle.

    Entry address ``e`` (relative to the layer) is entry ``e & 7`` of word ``spmat_base + (e >> 3)``. The memory
    is read at the addressed word in every cycle the output register can take an entry, and holds its output while
    the entry waits. (The paper reads a word once per 8 entries to save SRAM energy; on an FPGA block RAM that
    saving is small, and the word-changed comparison it needs sat on the block RAM's enable, the PE's critical
    path.) The first entry of a run is addressed straight from ``run.payload`` in the cycle the run is accepted, so
    consecutive columns follow each other with no bubble: a run of ``n`` entries occupies the unit for ``max(1, n)``
    cycles (an empty run still takes its one cycle, as in ``sim.eie.cycle``).

    Ports
    -----
    run : In(stream.Signature(run_layout(ptr_width)))
        Accepted in the cycle the previous run issues its last entry (or when idle).
    entry : Out(stream.Signature(au_entry_layout()))
        ``entry.valid`` depends only on internal state. Back-pressure holds the unit.
    spmat_base : In(ADDR_BITS)
        The current layer's first word.
    busy : Out(1)
        This cycle the unit issues an entry or consumes an empty run (``busy`` of the cycle model).
    finished : Out(1)
        This cycle the unit is done with a column (its last entry issues, or it consumes an empty run).
    idle : Out(1)
        No run in progress and no entry waiting on ``entry``.
    write_addr, write_data, write_en : In
        Host write of word ``write_addr``, while no layer runs.

    Latency: an entry issued in cycle ``t`` (addressed from ``run`` or from the run in progress) is on ``entry`` in
    cycle ``t + 1`` (synchronous-read memory).
    """

    def __init__(self, spmat_depth: int, ptr_width: int, init=()):
        self.spmat_depth, self.ptr_width, self._init = spmat_depth, ptr_width, list(init)
        super().__init__({
            "run": In(stream.Signature(run_layout(ptr_width))),
            "entry": Out(stream.Signature(au_entry_layout())),
            "spmat_base": In(ADDR_BITS),
            "busy": Out(1),
            "finished": Out(1),
            "idle": Out(1),
            "write_addr": In(range(self.spmat_depth)),
            "write_data": In(word_layout()),
            "write_en": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.words = words = memory.Memory(shape=unsigned(WORD_BITS), depth=self.spmat_depth,
                                                   init=self._init)
        rd, wr = words.read_port(), words.write_port()
        word = data.View(word_layout(), rd.data)
        m.d.comb += [wr.addr.eq(self.write_addr), wr.data.eq(self.write_data), wr.en.eq(self.write_en)]

        run = self.run.payload
        cur, end = Signal(self.ptr_width), Signal(self.ptr_width)
        value = Signal.like(run.value)
        sel, first = Signal(_SEL_BITS), Signal()               # the entry on self.entry

        remaining = Signal()
        advance = Signal()      # the output register can take an entry this cycle
        accept = Signal()       # a run is accepted this cycle
        run_entries = Signal()  # the accepted run is not empty
        issue = Signal()
        addr = Signal(self.ptr_width)
        word_addr = Signal(ADDR_BITS)
        m.d.comb += [
            remaining.eq(cur < end),
            advance.eq(~self.entry.valid | self.entry.ready),
            self.run.ready.eq(~remaining & advance),
            accept.eq(self.run.valid & self.run.ready),
            run_entries.eq(run.start < run.end),
            issue.eq((remaining & advance) | (accept & run_entries)),
            addr.eq(Mux(remaining, cur, run.start)),
            word_addr.eq(self.spmat_base + (addr >> _SEL_BITS)),
            rd.addr.eq(word_addr),
            rd.en.eq(advance),
            self.busy.eq(issue | (accept & ~run_entries)),
            self.finished.eq((remaining & advance & (cur + 1 == end)) | (accept & (run.end - run.start <= 1))),
            self.idle.eq(~remaining & ~self.entry.valid),
            self.entry.payload.value.eq(value),
            self.entry.payload.entry.eq(word[sel]),
            self.entry.payload.first.eq(first),
        ]
        with m.If(remaining & advance):
            m.d.sync += cur.eq(cur + 1)
        with m.Elif(accept):
            m.d.sync += [cur.eq(run.start + run_entries), end.eq(run.end)]

        with m.If(issue):
            m.d.sync += [self.entry.valid.eq(1), sel.eq(addr[:_SEL_BITS]), first.eq(~remaining),
                         value.eq(Mux(remaining, value, run.value))]
        with m.Elif(advance):
            m.d.sync += self.entry.valid.eq(0)
        return m
