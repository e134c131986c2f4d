"""The unified buffer: two banks (even and odd addresses) of one read and one write port each, shared by two slot
classes that alternate between the banks every cycle."""

from amaranth import Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from sparq.formats.systolic import UB_READ_LATENCY

from ..common.memory import COLLISION_UNUSED
from .layouts import vector_layout

__all__ = ["UnifiedBuffer"]


class UnifiedBuffer(wiring.Component):
    """``depth`` words of ``lanes`` int8 lanes as two ``lib.memory`` banks, the even and the odd addresses, each with
    one read and one write port: four accesses a cycle, two reads and two writes, as two **slots**
    (``sparq.formats.systolic.timing``, bank slots). In a cycle where ``phase`` is ``p``, the A slot (``a_read``,
    ``a_write``) has bank ``p`` and the B slot (``b_read``, ``b_write``) bank ``1 - p``; a user of a slot must only
    present addresses of its bank (an A address ``x`` has ``x % 2 == phase``). So sequential streams on both slots,
    one word a cycle each, never collide: the phase alternates every cycle, and so does a stream's bank.

    With ``any_bank`` high the A read may present any address (both banks' read ports take it; the B read is off):
    for a unit that runs alone (the Winograd input transform).

    Ports
    -----
    phase, any_bank : In(1)
    a_read_addr, b_read_addr : In(range(depth))
    a_read_data, b_read_data : Out(vector_layout(lanes))
        The word at the address presented ``UB_READ_LATENCY`` = 2 cycles earlier: the bank's registered read, a
        register per bank, then the bank multiplexer (one LUT level after registers; the block RAM's clock-to-out
        leaves no time for a multiplexer level more before a register).
    a_write_addr, a_write_data, a_write_en, b_write_addr, b_write_data, b_write_en : In
        Writes; the word is in the bank for reads presented from the next cycle on.
    """

    def __init__(self, lanes: int, depth: int):
        if not isinstance(depth, int) or depth < 2:
            raise ValueError(f"UnifiedBuffer depth must be an integer of at least 2 (two banks), not {depth!r}")
        self.lanes, self.depth = lanes, depth
        word = vector_layout(lanes)
        super().__init__({
            "phase": In(1),
            "any_bank": In(1),
            "a_read_addr": In(range(depth)),
            "b_read_addr": In(range(depth)),
            "a_read_data": Out(word),
            "b_read_data": Out(word),
            "a_write_addr": In(range(depth)),
            "a_write_data": In(word),
            "a_write_en": In(1),
            "b_write_addr": In(range(depth)),
            "b_write_data": In(word),
            "b_write_en": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        assert UB_READ_LATENCY == 2  # the bank's read and the register after it
        word = vector_layout(self.lanes)
        bank_data = []
        for bank in range(2):
            # A bank's read and write ports serve the same slot in each cycle, and the controller's interlocks never
            # let a slot read a word in the cycle it writes it (COLLISION_UNUSED).
            storage = memory.Memory(shape=word, depth=(self.depth - bank + 1) // 2, init=[], attrs=COLLISION_UNUSED)
            m.submodules[f"bank{bank}"] = storage
            read, write = storage.read_port(), storage.write_port()
            a_owns = self.phase == bank
            m.d.comb += [
                read.addr.eq(Mux(a_owns | self.any_bank, self.a_read_addr >> 1, self.b_read_addr >> 1)),
                write.addr.eq(Mux(a_owns, self.a_write_addr >> 1, self.b_write_addr >> 1)),
                write.data.eq(Mux(a_owns, self.a_write_data, self.b_write_data)),
                write.en.eq(Mux(a_owns, self.a_write_en, self.b_write_en)),
            ]
            registered = Signal(word, name=f"bank{bank}_word")
            m.d.sync += registered.eq(read.data)
            bank_data.append(registered)
        # The bank each slot read two cycles ago, whose word is in that bank's register now.
        a_bank, b_bank = Signal(), Signal()
        a_bank_read, b_bank_read = Signal(), Signal()  # the bank read in the previous cycle
        m.d.sync += [a_bank_read.eq(Mux(self.any_bank, self.a_read_addr[0], self.phase)), b_bank_read.eq(~self.phase),
                     a_bank.eq(a_bank_read), b_bank.eq(b_bank_read)]
        m.d.comb += [self.a_read_data.eq(Mux(a_bank, bank_data[1], bank_data[0])),
                     self.b_read_data.eq(Mux(b_bank, bank_data[1], bank_data[0]))]
        return m
