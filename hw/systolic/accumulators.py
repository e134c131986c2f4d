"""The int32 accumulator memory, one lane per output column, with read-modify-write accumulation."""

from amaranth import Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from sparq.formats.systolic import ACC_READ_LATENCY, ACCUMULATE_LATENCY

from .layouts import accumulator_write_layout

__all__ = ["Accumulators"]


class Accumulators(wiring.Component):
    """``depth`` words of ``cols`` int32 lanes: ``ACC[addr] <- (accumulate ? ACC[addr] : 0) + data``, int32 wrap.

    The read-modify-write is pipelined so that the memory's read data and the adder each have a cycle of their own:
    a write taken in cycle ``w`` reads its old word at ``w`` (the memory's registered read), registers it at ``w + 1``,
    adds and writes at ``w + 2``. The two writes before it are not in that old word yet; their sums are forwarded
    from registers (address matches compared a cycle early), so back-to-back writes to the same address accumulate
    correctly.

    Ports
    -----
    write : In(accumulator_write_layout(cols, depth))
        One result vector per cycle when ``valid``; an accumulator read presented from ``w + ACCUMULATE_LATENCY``
        (``sparq.formats.systolic.ACCUMULATE_LATENCY`` = 3) on sees it.
    read_addr : In(range(depth))
    read_data : Out(ArrayLayout(signed(acc_width), cols))
        The word at ``read_addr`` ``ACC_READ_LATENCY`` = 2 cycles earlier (the memory's read, then a register), for
        the activation unit and the output transform.
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
        rmw_port = storage.read_port()
        read_port = storage.read_port()
        assert ACCUMULATE_LATENCY == 3 and ACC_READ_LATENCY == 2  # the stages below

        request = self.write.shape()
        taken = Signal(request)  # the write taken a cycle ago, its old word now on rmw_port.data
        adding = Signal(request)  # the write being added and stored now
        old = Signal(word)  # its old word, registered
        m.d.sync += [taken.eq(self.write), adding.eq(taken), old.eq(rmw_port.data)]

        # The sums written one and two cycles ago, and whether `adding` accumulates onto one of them.
        last = [Signal(word, name=f"sum{k}") for k in (1, 2)]
        last_addr = [Signal.like(self.write.addr, name=f"sum{k}_addr") for k in (1, 2)]
        last_valid = [Signal(name=f"sum{k}_valid") for k in (1, 2)]
        forward = [Signal(name=f"forward{k}") for k in (1, 2)]
        total = Signal(word)
        m.d.sync += [
            last[0].eq(total), last_addr[0].eq(adding.addr), last_valid[0].eq(adding.valid),
            last[1].eq(last[0]), last_addr[1].eq(last_addr[0]), last_valid[1].eq(last_valid[0]),
            # Compared while `taken` is one stage short of `adding`: then `adding` and last[0] hold what are now
            # `adding`'s and last[0]'s predecessors in the pipeline.
            forward[0].eq(adding.valid & (adding.addr == taken.addr)),
            forward[1].eq(last_valid[0] & (last_addr[0] == taken.addr)),
        ]
        for lane in range(self.cols):
            base = Mux(forward[0], last[0][lane], Mux(forward[1], last[1][lane], old[lane]))
            m.d.comb += total[lane].eq(adding.data[lane] + Mux(adding.accumulate, base, 0))

        read_data = Signal(word)
        m.d.sync += read_data.eq(read_port.data)
        m.d.comb += [
            rmw_port.addr.eq(self.write.addr),
            write_port.addr.eq(adding.addr),
            write_port.data.eq(total),
            write_port.en.eq(adding.valid),
            read_port.addr.eq(self.read_addr),
            self.read_data.eq(read_data),
        ]
        return m
