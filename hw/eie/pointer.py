"""The pointer read unit: even and odd pointer banks, ``p[j]`` and ``p[j+1]`` in one cycle."""

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from sparq.formats.eie import ADDR_BITS

from ..common.memory import COLLISION_UNUSED
from .layouts import broadcast_layout, run_layout

__all__ = ["PointerReadUnit"]


class PointerReadUnit(wiring.Component):
    """Turns a broadcast activation ``(a_j, j)`` into its column's run of entries ``[p[j], p[j+1])``.

    Pointer ``g = ptr_base + j`` lives in the even bank at ``g >> 1`` if ``g`` is even, else in the odd bank at
    ``g >> 1`` (``sparq.formats.eie``); so ``p[g]`` and ``p[g+1]`` always sit in different banks, read in the same cycle
    at even address ``(g + 1) >> 1`` and odd address ``g >> 1``, and are swapped back by ``g``'s parity.

    Ports
    -----
    column : In(stream.Signature(broadcast_layout()))
        Activations from the activation queue. ``column.ready`` depends only on ``run.ready`` and internal state.
    run : Out(stream.Signature(run_layout(ptr_width)))
        ``(value, start, end)``, pointers relative to the layer. ``run.valid`` depends only on internal state.
    ptr_base : In(ADDR_BITS)
        The current layer's first pointer index; held steady during a layer.
    write_addr, write_data, write_en : In
        Host write of pointer ``write_addr`` (= ``g``), one per cycle, while no layer runs.

    Latency: two cycles (the synchronous-read banks, then the run registered); throughput: one column per cycle.
    Two stages, each taking a new item when it is empty or the one ahead moves on (so a held ``run`` does not stop
    the next column's read); a read waiting in stage 1 keeps the banks disabled, so their outputs hold it.
    """

    def __init__(self, ptr_depth: int, ptr_width: int, init_even=(), init_odd=()):
        self.ptr_depth, self.ptr_width = ptr_depth, ptr_width
        self._init = (list(init_even), list(init_odd))
        super().__init__({
            "column": In(stream.Signature(broadcast_layout())),
            "run": Out(stream.Signature(run_layout(ptr_width))),
            "ptr_base": In(ADDR_BITS),
            "write_addr": In(range(ptr_depth)),
            "write_data": In(ptr_width),
            "write_en": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        bank_depth = self.ptr_depth // 2
        banks = []
        for name, init in zip(("even", "odd"), self._init):
            m.submodules[name] = bank = memory.Memory(shape=unsigned(self.ptr_width), depth=bank_depth, init=init,
                                                      attrs=COLLISION_UNUSED)
            banks.append((bank.read_port(), bank.write_port()))
        (even_r, even_w), (odd_r, odd_w) = banks

        # Stage 1: the banks read (their outputs hold while the stage waits); stage 2: the run, registered.
        g = Signal(ADDR_BITS + 1)
        take, read_valid, advance = Signal(), Signal(), Signal()
        odd_first, read_value = Signal(), Signal.like(self.run.payload.value)
        m.d.comb += [
            g.eq(self.ptr_base + self.column.payload.index),
            advance.eq(~self.run.valid | self.run.ready),
            self.column.ready.eq(~read_valid | advance),
            take.eq(self.column.valid & self.column.ready),
            even_r.addr.eq((g + 1) >> 1),
            odd_r.addr.eq(g >> 1),
            even_r.en.eq(take),
            odd_r.en.eq(take),
        ]
        with m.If(take):
            m.d.sync += [read_valid.eq(1), odd_first.eq(g[0]), read_value.eq(self.column.payload.value)]
        with m.Elif(advance):
            m.d.sync += read_valid.eq(0)
        with m.If(advance):
            m.d.sync += [self.run.valid.eq(read_valid), self.run.payload.value.eq(read_value),
                         self.run.payload.start.eq(Mux(odd_first, odd_r.data, even_r.data)),
                         self.run.payload.end.eq(Mux(odd_first, even_r.data, odd_r.data))]

        for port, parity in ((even_w, 0), (odd_w, 1)):
            m.d.comb += [port.addr.eq(self.write_addr >> 1), port.data.eq(self.write_data),
                         port.en.eq(self.write_en & (self.write_addr[0] == parity))]
        return m
