"""Properties of the queues: :class:`~sparq.hw.common.fifo.StreamFIFO` and EIE's
:class:`~sparq.hw.eie.queue.ActivationQueue` (a ``StreamFIFO`` of broadcast items).

Each wrapper takes the queue itself (``QueueLevel(StreamFIFO(8, 3))``), drives every input freely, assumes the
stream rules on ``i`` and asserts them on ``o``. :func:`_ports` is the one place that reads a queue's ports.
"""

from amaranth import Signal, Value
from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Cover

from .rules import StreamRules, no_reset, transfer

__all__ = ["QueueLevel", "QueueOrder"]


def _ports(queue):
    """``(i, o, level, depth)`` of a queue."""
    return queue.i, queue.o, queue.level, queue.depth


class _QueueProperty(StreamRules):
    """A property of a queue with every input free and the stream rules kept (assumed on ``i``, asserted on
    ``o``); subclasses state the rest in :meth:`check_queue`."""

    def __init__(self, queue, mode: str, depth: int):
        super().__init__(queue, mode=mode, depth=depth)

    @property
    def name(self):
        return f"{type(self).__name__}[{type(self.block).__name__} depth {self.block.depth}]"

    def check(self, m, queue):
        self.check_queue(m, *_ports(queue))


class QueueLevel(_QueueProperty):
    """Fill level and flow control of a queue of any ``depth``, proved by k-induction (length 4 by default).

    Guarantees, in every reachable state, with any input and any back-pressure that keeps the stream rules:
    ``level`` equals the number of items accepted on ``i`` minus those delivered on ``o`` and never exceeds
    ``depth``; ``i.ready`` is low while the queue is full; ``o.valid`` is low while it is empty; ``o`` keeps the
    stream rules (``valid`` and ``payload`` held until ``ready``).
    """

    def __init__(self, queue, *, depth: int = 4):
        super().__init__(queue, "prove", depth)

    def check_queue(self, m, i, o, level, depth):
        held = Signal(range(depth + 2))  # one more than depth, so that an overflow is visible rather than wrapping
        m.d.sync += held.eq(held + transfer(i) - transfer(o))
        m.d.comb += [
            Assert(level == held, "level is not the number of items accepted minus delivered"),
            Assert(held <= depth, "more items held than depth"),
            Assert(~(i.ready & (held == depth)), "i.ready while full"),
            Assert(~(o.valid & (held == 0)), "o.valid while empty"),
            Cover((held == depth) & transfer(o), "full, then delivering"),
        ]
        if depth > 1:  # a one-entry queue accepts every other cycle
            m.d.comb += Cover(transfer(i) & transfer(o) & (held == 1), "accepting and delivering in one cycle")


class QueueOrder(_QueueProperty):
    """No item lost, duplicated, altered or reordered: bounded model checking to ``depth`` cycles from reset
    (default ``3 * queue.depth + 6``: enough to reach every fill level and pointer position and then see the
    tracked item through a full queue). k-induction does not converge here: it cannot see an item parked in the
    queue's memory.

    Tracked item: the environment may mark any one transfer into ``i`` (a free choice, so every transfer is covered
    at once); the monitor counts the items ahead of it and, at the first transfer out of ``o`` with none ahead,
    asserts that the payload is the marked one. Any lost, duplicated or reordered item shifts some marked item's
    turn onto another payload. With any input values, gaps and back-pressure keeping the stream rules; no reset
    after the first cycle. ``level`` equal to the items held is asserted too (a lemma, see :class:`QueueLevel`).
    """

    def __init__(self, queue, *, depth: int | None = None):
        super().__init__(queue, "bmc", depth if depth is not None else 3 * queue.depth + 6)

    def check_queue(self, m, i, o, level, depth):
        no_reset(m)
        # The tracked item: the environment marks one transfer into i (any one, at most one), and the monitor
        # counts the items ahead of it; the marked item is the next one out once none is ahead.
        mark, marked, out = Signal(), Signal(), Signal()
        held, ahead = Signal(range(depth + 2)), Signal(range(depth + 2))
        payload = Value.cast(i.payload)
        tracked = Signal(len(payload))
        m.d.comb += mark.eq(AnySeq(1) & transfer(i) & ~marked)
        m.d.sync += held.eq(held + transfer(i) - transfer(o))
        # Lemmas (QueueLevel proves the first; the second follows): BMC assumes each assertion in the later
        # steps once it has checked it, which keeps the solver from rediscovering them at every step.
        m.d.comb += Assert(level == held, "level is not the number of items accepted minus delivered")
        with m.If(marked & ~out):
            m.d.comb += Assert(ahead < held, "the marked item left the queue unseen")
        with m.If(mark):
            m.d.sync += [marked.eq(1), tracked.eq(payload), ahead.eq(held - transfer(o))]
        with m.Elif(marked & ~out & transfer(o)):
            with m.If(ahead == 0):
                m.d.sync += out.eq(1)
                m.d.comb += [
                    Assert(Value.cast(o.payload) == tracked, "the marked item delivered with another item's "
                                                             "payload (an item lost, duplicated or reordered)"),
                    Cover(held == depth, "the marked item delivered from a full queue"),
                ]
            with m.Else():
                m.d.sync += ahead.eq(ahead - 1)
