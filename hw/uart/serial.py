"""8N1 UART receiver and transmitter with stream ports: one start bit, eight data bits LSB first, one stop bit.

Both run in the ``sync`` domain with a fixed integer ``divisor``: clock cycles per bit (``clock_hz // baud``, at
least 4; 104 for 115200 baud at 12 MHz, 217 at 25 MHz). The bit timing error of an integer divisor is below 1% for
any divisor over 50, well inside the ~4% an 8N1 receiver tolerates.
"""

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTTransmitter", "UARTReceiver", "check_divisor"]

FRAME_BITS = 10  # start, 8 data, stop


def check_divisor(divisor) -> int:
    """Return ``divisor`` if it is an integer of at least 4, else raise :class:`ValueError` saying so."""
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < 4:
        raise ValueError(f"UART divisor (clock cycles per bit) must be an integer of at least 4, not {divisor!r}; "
                         f"use clock_hz // baud")
    return divisor


class UARTTransmitter(wiring.Component):
    """Serialises bytes from a stream onto ``tx``.

    Ports
    -----
    i : In(stream.Signature(8))
        A byte is taken when ``i.valid`` and ``i.ready``; ``i.ready`` is high while the line is idle and in the last
        cycle of a stop bit, and does not depend on ``i.valid``.
    tx : Out(1)
        The serial line, idle high (reset value 1).

    Timing: ``tx`` falls (start bit) in the cycle after the byte is taken; each bit lasts exactly ``divisor`` cycles;
    a byte offered before the stop bit ends follows it with no idle time, so back-to-back bytes go out every
    ``10 * divisor`` cycles.
    """

    def __init__(self, *, divisor: int):
        self.divisor = check_divisor(divisor)
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        bits_left = Signal(range(FRAME_BITS + 1))
        shift = Signal(9)  # data bits then the stop bit, shifted out LSB first behind the start bit

        idle = bits_left == 0
        last_cycle = (bits_left == 1) & (timer == 0)  # of the stop bit: the next frame may start right after it
        m.d.comb += self.i.ready.eq(idle | last_cycle)
        with m.If(self.i.ready & self.i.valid):
            m.d.sync += [
                self.tx.eq(0),
                shift.eq(Cat(self.i.payload, Const(1, 1))),
                bits_left.eq(FRAME_BITS),
                timer.eq(self.divisor - 1),
            ]
        with m.Elif(idle):
            pass
        with m.Elif(timer == 0):
            m.d.sync += [
                self.tx.eq(shift[0]),
                shift.eq(Cat(shift[1:], Const(1, 1))),
                bits_left.eq(bits_left - 1),
                timer.eq(self.divisor - 1),
            ]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
        return m


class UARTReceiver(wiring.Component):
    """Deserialises ``rx`` into a stream of bytes, sampling each bit in its middle.

    Ports
    -----
    rx : In(1)
        The serial line, idle high; asynchronous to the clock (a two-flip-flop synchroniser comes first).
    o : Out(stream.Signature(8))
        One byte per good frame. ``o.valid`` holds until ``o.ready``; it does not depend on ``o.ready``.
    frame_error : Out(1)
        One-cycle strobe: a frame ended with a low stop bit (noise, wrong baud rate or a break); its byte is dropped.
        Start bits are falling edges, so a line held low (a break) starts no further frame.
    overrun : Out(1)
        One-cycle strobe: a byte arrived while the previous one was still waiting on ``o``; the new byte is dropped.
        A consumer that takes each byte within one frame time (``10 * divisor`` cycles) never sees it.

    Timing: a start bit is confirmed in its middle (a low pulse shorter than half a bit is ignored); the byte appears on
    ``o`` in the middle of its stop bit, ``9.5 * divisor + 3`` cycles after the line fell (two of those cycles are the
    synchroniser's).
    """

    def __init__(self, *, divisor: int):
        self.divisor = check_divisor(divisor)
        super().__init__({
            "rx": In(1, init=1),
            "o": Out(stream.Signature(8)),
            "frame_error": Out(1),
            "overrun": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        line, line_was = Signal(init=1), Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, line, init=1)
        m.d.sync += line_was.eq(line)
        timer = Signal(range(self.divisor))
        bits_left = Signal(range(9))
        shift = Signal(8)

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        m.d.sync += [self.frame_error.eq(0), self.overrun.eq(0)]

        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(line_was & ~line):  # a falling edge: a line held low after an error starts nothing
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    with m.If(line):
                        m.next = "IDLE"  # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [timer.eq(self.divisor - 1), bits_left.eq(8)]
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [
                        shift.eq(Cat(shift[1:], line)),
                        bits_left.eq(bits_left - 1),
                        timer.eq(self.divisor - 1),
                    ]
                    with m.If(bits_left == 1):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(~line):
                        m.d.sync += self.frame_error.eq(1)
                    with m.Elif(self.o.valid & ~self.o.ready):
                        m.d.sync += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                    m.next = "IDLE"
        return m
