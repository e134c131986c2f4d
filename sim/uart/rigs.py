"""Test rigs: :class:`sparq.hw.uart.bridge.HostBridge` with a real block behind it, as one component to simulate."""

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sparq.hw.common.fifo import StreamFIFO
from sparq.hw.uart.bridge import HostBridge
from sparq.hw.uart.serial import UARTReceiver, UARTTransmitter

__all__ = ["SerialPair", "FIFOLoopback"]


class SerialPair(wiring.Component):
    """A :class:`sparq.hw.uart.serial.UARTTransmitter` and a :class:`sparq.hw.uart.serial.UARTReceiver` side by side, not connected
    to each other, with their ports as they are (``i``, ``tx``; ``rx``, ``o``, ``frame_error``, ``overrun``): one
    Verilator build serves the transmitter's and the receiver's testbench bodies."""

    def __init__(self, *, divisor: int):
        self._tx, self._rx = UARTTransmitter(divisor=divisor), UARTReceiver(divisor=divisor)
        super().__init__({**self._tx.signature.members, **self._rx.signature.members})

    def elaborate(self, platform):
        m = Module()
        m.submodules.transmitter, m.submodules.receiver = self._tx, self._rx
        for side in (self._tx, self._rx):
            for name, member in side.signature.members.items():
                outer, inner = getattr(self, name), getattr(side, name)
                if member.is_signature:
                    wiring.connect(m, wiring.flipped(outer), inner)
                elif member.flow == wiring.In:
                    m.d.comb += inner.eq(outer)
                else:
                    m.d.comb += outer.eq(inner)
        return m


class FIFOLoopback(wiring.Component):
    """A :class:`sparq.hw.uart.bridge.HostBridge` whose writes go into a :class:`sparq.hw.common.fifo.StreamFIFO` and whose reads
    pop it: WRITE pushes words (any space, any address), READ returns them in order.

    START raises ``done`` (until reset). Counters: words pushed, words popped, FIFO level, and STARTs seen.
    A READ of more words than the FIFO holds waits forever, as the bridge's ``read_data`` contract allows.

    Ports: ``rx`` In(1) and ``tx`` Out(1), the serial lines.
    """
    rx: In(1, init=1)
    tx: Out(1, init=1)

    def __init__(self, *, divisor: int, depth: int, timeout: int = 1 << 22):
        self.divisor, self.depth, self.timeout = divisor, depth, timeout
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = bridge = HostBridge(divisor=self.divisor, n_counters=4, timeout=self.timeout)
        m.submodules.fifo = fifo = StreamFIFO(32, self.depth)
        pushed, popped, starts = Signal(32), Signal(32), Signal(32)
        m.d.comb += [
            bridge.rx.eq(self.rx),
            self.tx.eq(bridge.tx),
            fifo.i.payload.eq(bridge.write.payload.data),
            fifo.i.valid.eq(bridge.write.valid),
            bridge.write.ready.eq(fifo.i.ready),
            bridge.read.ready.eq(1),
            bridge.read_data.payload.eq(fifo.o.payload),
            bridge.read_data.valid.eq(fifo.o.valid),
            fifo.o.ready.eq(bridge.read_data.ready),
            bridge.counters[0].eq(pushed),
            bridge.counters[1].eq(popped),
            bridge.counters[2].eq(fifo.level),
            bridge.counters[3].eq(starts),
        ]
        with m.If(fifo.i.valid & fifo.i.ready):
            m.d.sync += pushed.eq(pushed + 1)
        with m.If(fifo.o.valid & fifo.o.ready):
            m.d.sync += popped.eq(popped + 1)
        with m.If(bridge.start):
            m.d.sync += [starts.eq(starts + 1), bridge.done.eq(1)]
        return m
