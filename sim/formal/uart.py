"""Properties of the 8N1 UART (:mod:`sparq.hw.uart.serial`): the transmitter's frames, and frames through the
receiver with no byte lost. (The receiver's stream port under any line waveform: ``rules.StreamRules``.)

The reference frame is written here from the format, not taken from the blocks: one start bit (low), eight data
bits LSB first, one stop bit (high), each exactly ``divisor`` cycles. :func:`_tx_ports` and :func:`_rx_ports` are
the one place that reads the blocks' ports.
"""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Assume, Cover

from sparq.hw.uart.serial import FRAME_BITS, UARTReceiver, UARTTransmitter

from .prove import Property
from .rules import all_stream_rules, delayed, free_inputs, no_reset, transfer

__all__ = ["TransmitterFrames", "ReceiverFrames"]


def _tx_ports(tx):
    """``(i, line)`` of a transmitter."""
    return tx.i, tx.tx


def _rx_ports(rx):
    """``(line, o, frame_error, overrun)`` of a receiver."""
    return rx.rx, rx.o, rx.frame_error, rx.overrun


class _Frame:
    """A position counter over one 8N1 frame: ``bit`` (0 start, 1-8 data, 9 stop) and ``tick`` (0 .. divisor-1)
    within the bit; ``active`` while a frame is on the line. ``start`` begins a frame in the next cycle (also in its
    last cycle, back to back). ``level(byte, stop)`` is the line level the format gives for the current position."""

    def __init__(self, m, divisor: int, start, name: str):
        self.divisor = divisor
        self.active = Signal(name=f"{name}_active")
        self.bit = Signal(range(FRAME_BITS), name=f"{name}_bit")
        self.tick = Signal(range(divisor), name=f"{name}_tick")
        self.last = Signal(name=f"{name}_last")  # the last cycle of the frame
        m.d.comb += self.last.eq(self.active & (self.bit == FRAME_BITS - 1) & (self.tick == divisor - 1))
        # The counter's own invariant, for k-induction (which may otherwise start it at an unreachable position).
        m.d.comb += Assert((self.bit < FRAME_BITS) & (self.tick < divisor), f"{name}: position out of range")
        with m.If(start):
            m.d.sync += [self.active.eq(1), self.bit.eq(0), self.tick.eq(0)]
        with m.Elif(self.last):
            m.d.sync += self.active.eq(0)
        with m.Elif(self.active):
            m.d.sync += self.tick.eq(Mux(self.tick == divisor - 1, 0, self.tick + 1))
            with m.If(self.tick == divisor - 1):
                m.d.sync += self.bit.eq(self.bit + 1)

    def level(self, byte, stop=1):
        return Mux(self.active, Cat(Const(0, 1), byte, stop).bit_select(self.bit, 1), 1)


class TransmitterFrames(Property):
    """The transmitter sends every byte it takes as one exact 8N1 frame, proved by k-induction of length
    ``10 * divisor + 2`` (a whole frame, so that the induction sees every bit of the shift register leave).

    Guarantees, for any bytes and gaps on ``i`` (keeping the stream rules), in every reachable state: the line is
    high while no frame is being sent; from the cycle after a byte is taken it carries the start bit, the eight
    data bits LSB first and the stop bit, each for exactly ``divisor`` cycles; ``i.ready`` is high exactly while no
    frame is on the line and in the last cycle of a stop bit (so a waiting byte follows with no idle time, and no
    byte is taken in the middle of a frame: none lost).
    """

    def __init__(self, divisor: int, *, depth: int | None = None):
        self.divisor, self.mode = divisor, "prove"
        self.depth = depth if depth is not None else FRAME_BITS * divisor + 2

    @property
    def name(self):
        return f"TransmitterFrames[divisor {self.divisor}]"

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx = tx = UARTTransmitter(divisor=self.divisor)
        i, line = _tx_ports(tx)
        free_inputs(m, tx)
        all_stream_rules(m, tx)
        frame = _Frame(m, self.divisor, transfer(i), "frame")
        byte = Signal(8)
        with m.If(transfer(i)):
            m.d.sync += byte.eq(i.payload)
        m.d.comb += [
            Assert(line == frame.level(byte), "the line differs from the 8N1 frame of the byte taken"),
            Assert(i.ready == (~frame.active | frame.last), "i.ready outside idle and the stop bit's last cycle"),
            Cover(frame.last & transfer(i), "a second byte taken back to back"),
        ]
        return m


class ReceiverFrames(Property):
    """Frames through the receiver: every 8N1 frame at the configured ``divisor`` gives its byte exactly once, in
    order, and a frame with a low stop bit gives a framing error and no byte. BMC from reset to ``depth`` cycles
    (default ``24 * divisor + 8``: two back-to-back frames and the second one's delivery, then a third frame).

    Environment: the line comes from an ideal transmitter at exactly ``divisor`` cycles per bit, with any bytes,
    any idle time between frames (none: back to back) and a free choice of a good or a low stop bit per frame (a
    low one is followed by one idle cycle at least: a line held low starts no frame). The consumer takes each byte
    within ``10 * divisor`` cycles of its appearance (the receiver's documented condition for no overrun).

    Guarantees: in the cycle ``9 * divisor + divisor // 2 + 3`` after a good frame's line fell (the middle of its
    stop bit, plus two synchroniser cycles and the output register) ``o`` presents its byte; ``o.valid`` is never
    high otherwise except while a presented byte waits for ``ready`` (so no byte is invented or delivered twice);
    a low stop bit strobes ``frame_error`` in that cycle instead; ``overrun`` never rises.
    """

    def __init__(self, divisor: int, *, depth: int | None = None):
        self.divisor, self.mode = divisor, "bmc"
        self.depth = depth if depth is not None else 24 * divisor + 8

    @property
    def name(self):
        return f"ReceiverFrames[divisor {self.divisor}]"

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        m.submodules.rx = rx = UARTReceiver(divisor=d)
        line, o, frame_error, overrun = _rx_ports(rx)
        no_reset(m)
        free_inputs(m, rx, skip=["rx"])
        all_stream_rules(m, rx)

        # The ideal transmitter: a frame starts when the line is idle (or back to back) and the environment says so.
        start, byte, good = Signal(), Signal(8), Signal()
        frame = _Frame(m, d, start, "frame")
        m.d.comb += start.eq(AnySeq(1) & (~frame.active | frame.last) & ~(frame.last & ~good))
        with m.If(start):
            m.d.sync += [byte.eq(AnySeq(8)), good.eq(AnySeq(1))]
        m.d.comb += line.eq(frame.level(byte, good))

        # When the byte (or the framing error) is due: divisor // 2 + 3 cycles into the stop bit.
        stop_start = frame.active & (frame.bit == FRAME_BITS - 1) & (frame.tick == 0)
        due_in = Signal(range(d // 2 + 4))
        expect, expect_good = Signal(8), Signal()
        with m.If(stop_start):
            m.d.sync += [due_in.eq(d // 2 + 3), expect.eq(byte), expect_good.eq(good)]
        with m.Elif(due_in != 0):
            m.d.sync += due_in.eq(due_in - 1)
        due = due_in == 1
        deliver, fail = due & expect_good, due & ~expect_good

        # The consumer: a byte waits at most 10 * divisor - 1 cycles with ready low.
        waited = Signal(range(FRAME_BITS * d + 1))
        m.d.sync += waited.eq(Mux(o.valid & ~o.ready, waited + 1, 0))
        m.d.comb += Assume(~(o.valid & ~o.ready & (waited == FRAME_BITS * d - 1)))
        m.d.comb += Assert((waited < FRAME_BITS * d) & (due_in <= d // 2 + 3), "monitor counters out of range")

        waiting = delayed(m, o.valid & ~o.ready, "o_was_waiting")
        m.d.comb += [
            Assert(~deliver | (o.valid & (o.payload == expect)), "a good frame's byte is not on o when due"),
            Assert(~(o.valid & ~waiting) | deliver, "o.valid with no frame due (a byte invented or repeated)"),
            Assert(frame_error == fail, "frame_error is not exactly the low stop bits"),
            Assert(~overrun, "overrun with a consumer that keeps up"),
            Cover(deliver & frame.active & (frame.bit == 0) & (byte != expect), "a byte due while the next frame, "
                                                                                 "another byte, is on the line"),
            Cover(transfer(o) & (waited == FRAME_BITS * d - 1), "a byte taken at the last cycle the consumer may"),
        ]
        return m
