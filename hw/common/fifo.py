"""A synchronous ready/valid FIFO between two stream ports: every queue of the designs (EIE's activation queue, the
systolic accelerator's instruction and output queues, the board tops' queues)."""

from amaranth import Module, Shape
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StreamFIFO"]


class StreamFIFO(wiring.Component):
    """First-in first-out queue between two ``amaranth.lib.stream`` ports, built on ``SyncFIFOBuffered``.

    The storage is a block-RAM-friendly ``SyncFIFOBuffered`` (synchronous read port plus an output register); this
    component only adapts its ``w_*``/``r_*`` ports to stream signatures and exposes the fill level.

    Parameters
    ----------
    shape : shape-castable
        Payload shape; an ``amaranth.lib.data`` layout is carried as its raw bits and viewed again on the output.
    depth : int
        Number of entries, at least 1. ``depth=1`` is a single register that accepts every other cycle.

    Ports
    -----
    i : In(stream.Signature(shape))
        Accepts an item whenever ``i.ready``; ``i.ready`` depends only on internal state, never on ``i.valid``.
    o : Out(stream.Signature(shape))
        Presents the oldest item; ``o.valid`` depends only on internal state, never on ``o.ready``.
    level : Out(range(depth + 1))
        Items held, including the one presented on ``o``.

    Latency: an item written into an empty queue appears on ``o`` two cycles later (one for the memory write, one for
    the registered read). Throughput: one item per cycle in and out once the queue is neither empty nor full.
    ``sparq.sim.golden.fifo.FIFOModel`` is the cycle-accurate model.
    """

    def __init__(self, shape, depth: int):
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"StreamFIFO depth must be a positive integer, not {depth!r}")
        self.shape, self.depth = shape, depth
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
            "level": Out(range(depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.storage = storage = fifo.SyncFIFOBuffered(width=Shape.cast(self.shape).width, depth=self.depth)
        m.d.comb += [
            storage.w_data.eq(self.i.payload),
            storage.w_en.eq(self.i.valid),
            self.i.ready.eq(storage.w_rdy),
            self.o.payload.eq(storage.r_data),
            self.o.valid.eq(storage.r_rdy),
            storage.r_en.eq(self.o.ready),
            self.level.eq(storage.level),
        ]
        return m
