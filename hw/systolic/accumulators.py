"""The int32 accumulator memory, one lane per output column, with read-modify-write accumulation."""

from amaranth import Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .layouts import accumulator_write_layout

__all__ = ["Accumulators"]


class Accumulators(wiring.Component):
    """``depth`` words of ``cols`` int32 lanes: ``ACC[addr] <- (accumulate ? ACC[addr] : 0) + data``, int32 wrap.

    Ports
    -----
    write : In(accumulator_write_layout(cols, depth))
        One result vector per cycle when ``valid``; the memory holds the new value from two cycles later (a read
        cycle and a write cycle). Back-to-back writes to the same address accumulate correctly (the read port is
        transparent to the write port).
    read_addr : In(range(depth))
    read_data : Out(ArrayLayout(signed(acc_width), cols))
        The word at ``read_addr`` one cycle earlier (1-cycle latency), for the activation unit.
    """

    def __init__(self, cols: int, depth: int, *, acc_width: int = 32):
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"Accumulators depth must be a positive integer, not {depth!r}")
        self.cols, self.depth, self.acc_width = cols, depth, acc_width
        layout = accumulator_write_layout(cols, depth, acc_width)
        super().__init__({
            "write": In(layout),
            "read_addr": In(range(depth)),
            "read_data": Out(layout["data"].shape),
        })

    def elaborate(self, platform):
        m = Module()
        word = self.read_data.shape()
        m.submodules.storage = storage = memory.Memory(shape=word, depth=self.depth, init=[])
        write_port = storage.write_port()
        rmw_port = storage.read_port(transparent_for=(write_port,))
        read_port = storage.read_port()
        pending = Signal(self.write.shape())  # the write in its second (add and store) cycle
        m.d.sync += pending.eq(self.write)
        total = Signal(word)
        for lane in range(self.cols):
            m.d.comb += total[lane].eq(pending.data[lane] + Mux(pending.accumulate, rmw_port.data[lane], 0))
        m.d.comb += [
            rmw_port.addr.eq(self.write.addr),
            write_port.addr.eq(pending.addr),
            write_port.data.eq(total),
            write_port.en.eq(pending.valid),
            read_port.addr.eq(self.read_addr),
            self.read_data.eq(read_port.data),
        ]
        return m
