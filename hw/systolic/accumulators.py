"""The int32 accumulator memory, one lane per output column, with read-modify-write accumulation."""

from amaranth import Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from sparq.formats.systolic import ACC_READ_LATENCY, ACCUMULATE_LATENCY

from ..common.memory import COLLISION_UNUSED
from .layouts import accumulator_tag_layout, accumulator_write_layout

__all__ = ["Accumulators"]


class Accumulators(wiring.Component):
    """``depth`` words of ``cols`` int32 lanes: ``ACC[addr] <- (accumulate ? ACC[addr] : 0) + data``, int32 wrap.

    The read-modify-write reads the old word early: ``upcoming`` gives the address of each accumulating write
    ``PREFETCH`` = 2 cycles before the write itself, so the memory's registered read and a register after it are done
    when the data arrives, and the add and the store take the write's own cycle. The two writes just before it are
    not in that old word; their sums are forwarded from registers (the address matches compared a cycle early, the
    older sum chosen over the memory's word in the register after the memory), so back-to-back writes to the same
    address accumulate correctly.

    Ports
    -----
    upcoming : In(accumulator_tag_layout(depth))
        ``valid``, ``accumulate`` and ``addr`` of the write ``PREFETCH`` cycles later; only what an accumulating
        write's ``upcoming`` says matters.
    write : In(accumulator_write_layout(cols, depth))
        One result vector per cycle when ``valid``; an accumulator read presented from ``w + ACCUMULATE_LATENCY``
        (``sparq.formats.systolic.ACCUMULATE_LATENCY`` = 1) on sees the write of cycle ``w``.
    read_addr : In(range(depth))
    read_data : Out(ArrayLayout(signed(acc_width), cols))
        The word at ``read_addr`` ``ACC_READ_LATENCY`` = 2 cycles earlier (the memory's read, then a register), for
        the activation unit and the output transform.
    """

    PREFETCH = 2

    def __init__(self, cols: int, depth: int, *, acc_width: int = 32):
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"Accumulators depth must be a positive integer, not {depth!r}")
        self.cols, self.depth, self.acc_width = cols, depth, acc_width
        layout = accumulator_write_layout(cols, depth, acc_width)
        super().__init__({
            "upcoming": In(accumulator_tag_layout(depth)),
            "write": In(layout),
            "read_addr": In(range(depth)),
            "read_data": Out(layout["data"].shape),
        })

    def elaborate(self, platform):
        m = Module()
        word = self.read_data.shape()
        # No read uses a word written in the same cycle (COLLISION_UNUSED): the read-modify-write's old word is
        # replaced by the forwarded sum whenever the write one or two cycles before it went to the same address, and
        # the controller's interlocks keep an accumulator read (ACTIVATE, TRANSFORM_OUT) off rows being written.
        m.submodules.storage = storage = memory.Memory(shape=word, depth=self.depth, init=[], attrs=COLLISION_UNUSED)
        write_port = storage.write_port()
        rmw_port = storage.read_port()
        read_port = storage.read_port()
        assert ACCUMULATE_LATENCY == 1 and ACC_READ_LATENCY == 2 and self.PREFETCH == 2  # the stages below

        ahead = [self.upcoming, Signal.like(self.upcoming, name="upcoming1")]  # [k]: the write 2 - k cycles ahead
        m.d.sync += ahead[1].eq(ahead[0])

        # The sum written one cycle ago, and whether the write accumulates onto it or onto the sum two cycles
        # before it (compared one cycle early: then the write one cycle ago is on `write` and the write two cycles
        # ago in `sum1`). `old`: the word under the next cycle's write, registered: the memory's word (read last
        # cycle for that write) or, forward2, the sum written two cycles before that write.
        last = Signal(word, name="sum1")
        last_addr = Signal.like(self.write.addr, name="sum1_addr")
        last_valid = Signal(name="sum1_valid")
        # Forward from the write one cycle before (registered), two cycles before (the next write's, a cycle early).
        forward1, forward2 = Signal(name="forward1"), Signal(name="forward2")
        old, total = Signal(word, name="old"), Signal(word, name="total")
        m.d.comb += forward2.eq(last_valid & (last_addr == ahead[1].addr))
        m.d.sync += [
            last.eq(total), last_addr.eq(self.write.addr), last_valid.eq(self.write.valid),
            forward1.eq(self.write.valid & (self.write.addr == ahead[1].addr)),
            old.eq(Mux(forward2, last, rmw_port.data)),
        ]
        for lane in range(self.cols):
            base = Mux(forward1, last[lane], old[lane])
            m.d.comb += total[lane].eq(self.write.data[lane] + Mux(self.write.accumulate, base, 0))

        read_data = Signal(word)
        m.d.sync += read_data.eq(read_port.data)
        m.d.comb += [
            rmw_port.addr.eq(self.upcoming.addr),
            write_port.addr.eq(self.write.addr),
            write_port.data.eq(total),
            write_port.en.eq(self.write.valid),
            read_port.addr.eq(self.read_addr),
            self.read_data.eq(read_data),
        ]
        return m
