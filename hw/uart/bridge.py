"""The host bridge: the protocol of :mod:`sparq.formats.uart`, spoken over a UART, driving an accelerator's ports."""

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sparq.formats import uart as protocol
from sparq.formats.uart import Op

from .serial import UARTReceiver, UARTTransmitter, check_divisor

__all__ = ["HostBridge", "WriteRequest", "ReadRequest"]

WORD_BITS = 8 * protocol.WORD_BYTES

#: One word to write: ``data`` in bits 0..31, ``addr`` in 32..47, ``space`` in 48..55.
WriteRequest = data.StructLayout({"data": WORD_BITS, "addr": 16, "space": 8})
#: One word to read: ``addr`` in bits 0..15, ``space`` in 16..23.
ReadRequest = data.StructLayout({"addr": 16, "space": 8})


class HostBridge(wiring.Component):
    """Speaks the sparq host protocol over ``rx``/``tx`` and turns commands into accelerator port activity.

    It holds a :class:`sparq.hw.uart.serial.UARTReceiver` and :class:`sparq.hw.uart.serial.UARTTransmitter` and one
    command at a time: it reads a command's bytes, performs it on the ports below, sends the reply, and only then
    reads the next opcode. :mod:`sparq.formats.uart` specifies the bytes; :class:`sparq.sim.uart.model.HostBridgeModel`
    is the reference.

    Parameters
    ----------
    divisor : int
        Clock cycles per UART bit (``clock_hz // baud``, at least 4).
    n_counters : int
        Number of 32-bit performance counters COUNTERS returns (1 to 255).
    timeout : int
        Cycles of silence in the middle of a command after which the command is dropped (status bit ``timeout``).

    Ports
    -----
    rx : In(1), tx : Out(1)
        The serial lines (idle high).
    write : Out(stream.Signature(WriteRequest))
        One transfer per word of a WRITE, in address order. The bridge reads the next word from the UART only after
        this one is taken, so the accelerator must take each word within one UART frame (``10 * divisor`` cycles)
        or the host's next byte is lost (status bit ``overrun``).
    read : Out(stream.Signature(ReadRequest))
        One request per word of a READ, in address order; the next is issued only after ``read_data`` delivered.
    read_data : In(stream.Signature(32))
        The word for each request, in order, with any latency.
    start : Out(1)
        One-cycle strobe when START is executed, before its acknowledgement is sent.
    busy, done, error : In(1)
        Read live into each STATUS reply (``error``: the accelerator stopped on an error; 0 where it has none).
    counters : In(data.ArrayLayout(32, n_counters))
        Sampled together, in one cycle, when COUNTERS is received.

    Latency: a command is acted on within a few cycles of its last byte's stop bit; replies go out back to back at the
    UART's full rate. A WRITE takes about ``4 * 10 * divisor`` cycles per word (the UART), a READ the same plus the
    ``read_data`` latency.
    """

    def __init__(self, *, divisor: int, n_counters: int = 4, timeout: int = 1 << 22):
        self.divisor = check_divisor(divisor)
        if not isinstance(n_counters, int) or not 1 <= n_counters <= 255:
            raise ValueError(f"HostBridge n_counters must be an integer in 1..255, not {n_counters!r}")
        if not isinstance(timeout, int) or timeout < 20 * divisor:
            raise ValueError(f"HostBridge timeout must be an integer of at least two UART frames "
                             f"({20 * divisor} cycles), not {timeout!r}")
        self.n_counters, self.timeout = n_counters, timeout
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "write": Out(stream.Signature(WriteRequest)),
            "read": Out(stream.Signature(ReadRequest)),
            "read_data": In(stream.Signature(WORD_BITS)),
            "start": Out(1),
            "busy": In(1),
            "done": In(1),
            "error": In(1),
            "counters": In(data.ArrayLayout(WORD_BITS, n_counters)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = receiver = UARTReceiver(divisor=self.divisor)
        m.submodules.transmitter = transmitter = UARTTransmitter(divisor=self.divisor)
        m.d.comb += [receiver.rx.eq(self.rx), self.tx.eq(transmitter.tx)]
        byte_in, byte_out = receiver.o, transmitter.i

        opcode = Signal(8)
        header = Signal(8 * protocol.HEADER_BYTES)  # space, addr, count as received, shifted in from the top
        space, addr, count = Signal(8), Signal(16), Signal(16)
        word = Signal(WORD_BITS)
        bytes_left = Signal(range(max(protocol.HEADER_BYTES, protocol.WORD_BYTES) + 1))

        reply_bytes = max(5, 1 + protocol.WORD_BYTES * self.n_counters)
        reply = Signal(8 * reply_bytes)  # bytes still to send, first in the low byte
        reply_left = Signal(range(reply_bytes + 1))

        sticky = Signal(3)  # frame_error, overrun, timeout
        silence = Signal(range(self.timeout + 1))

        m.d.sync += sticky.eq(sticky | Cat(receiver.frame_error, receiver.overrun, 0))
        m.d.comb += [
            byte_out.payload.eq(reply[:8]),
            self.write.payload.space.eq(space),
            self.write.payload.addr.eq(addr),
            self.write.payload.data.eq(word),
            self.read.payload.space.eq(space),
            self.read.payload.addr.eq(addr),
        ]

        def send(*parts, length):
            """Load the reply register with ``parts`` (low byte first) and send ``length`` bytes of it."""
            m.d.sync += [reply.eq(Cat(*parts)), reply_left.eq(length)]
            m.next = "SEND"

        def shift_in(target):
            """Take a byte into the top of ``target`` (little-endian fields come out in place)."""
            m.d.sync += [target.eq(Cat(target[8:], byte_in.payload)), bytes_left.eq(bytes_left - 1)]

        def await_host_byte():
            """In the middle of a command: take bytes, and drop the command after ``timeout`` silent cycles."""
            m.d.comb += byte_in.ready.eq(1)
            with m.If(byte_in.valid):
                m.d.sync += silence.eq(0)
            with m.Elif(silence == self.timeout):
                m.d.sync += [silence.eq(0), sticky[2].eq(1)]
                m.next = "IDLE"
            with m.Else():
                m.d.sync += silence.eq(silence + 1)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += byte_in.ready.eq(1)
                with m.If(byte_in.valid):
                    m.d.sync += [opcode.eq(byte_in.payload), silence.eq(0)]
                    with m.Switch(byte_in.payload):
                        with m.Case(Op.HELLO):
                            send(Const(protocol.ACK | Op.HELLO, 8), Const(protocol.MAGIC[0], 8),
                                 Const(protocol.MAGIC[1], 8), Const(protocol.VERSION, 8),
                                 Const(self.n_counters, 8), length=5)
                        with m.Case(Op.WRITE, Op.READ):
                            m.d.sync += bytes_left.eq(protocol.HEADER_BYTES)
                            m.next = "HEADER"
                        with m.Case(Op.START):
                            m.d.comb += self.start.eq(1)
                            send(Const(protocol.ACK | Op.START, 8), length=1)
                        with m.Case(Op.STATUS):
                            send(Const(protocol.ACK | Op.STATUS, 8), self.busy, self.done, sticky, self.error,
                                 length=2)
                            m.d.sync += sticky.eq(Cat(receiver.frame_error, receiver.overrun, 0))
                        with m.Case(Op.COUNTERS):
                            send(Const(protocol.ACK | Op.COUNTERS, 8), self.counters,
                                 length=1 + protocol.WORD_BYTES * self.n_counters)
                        with m.Default():
                            send(Const(protocol.NAK, 8), length=1)

            with m.State("HEADER"):
                await_host_byte()
                with m.If(byte_in.valid):
                    shift_in(header)
                    with m.If(bytes_left == 1):
                        m.next = "COMMAND"

            with m.State("COMMAND"):
                m.d.sync += [space.eq(header[0:8]), addr.eq(header[8:24]), count.eq(header[24:40])]
                with m.If(opcode == Op.READ):
                    send(Const(protocol.ACK | Op.READ, 8), length=1)
                with m.Elif(header[24:40] == 0):
                    send(Const(protocol.ACK | Op.WRITE, 8), length=1)
                with m.Else():
                    m.d.sync += bytes_left.eq(protocol.WORD_BYTES)
                    m.next = "WRITE_DATA"

            with m.State("WRITE_DATA"):
                await_host_byte()
                with m.If(byte_in.valid):
                    shift_in(word)
                    with m.If(bytes_left == 1):
                        m.next = "WRITE_PUSH"

            with m.State("WRITE_PUSH"):
                m.d.comb += self.write.valid.eq(1)
                with m.If(self.write.ready):
                    m.d.sync += [addr.eq(addr + 1), count.eq(count - 1), silence.eq(0)]
                    with m.If(count == 1):
                        send(Const(protocol.ACK | Op.WRITE, 8), length=1)
                    with m.Else():
                        m.d.sync += bytes_left.eq(protocol.WORD_BYTES)
                        m.next = "WRITE_DATA"

            with m.State("READ_REQUEST"):
                m.d.comb += self.read.valid.eq(1)
                with m.If(self.read.ready):
                    m.next = "READ_WAIT"

            with m.State("READ_WAIT"):
                m.d.comb += self.read_data.ready.eq(1)
                with m.If(self.read_data.valid):
                    m.d.sync += [addr.eq(addr + 1), count.eq(count - 1)]
                    send(self.read_data.payload, length=protocol.WORD_BYTES)

            with m.State("SEND"):
                m.d.comb += byte_out.valid.eq(1)
                with m.If(byte_out.ready):
                    m.d.sync += [reply.eq(reply >> 8), reply_left.eq(reply_left - 1)]
                    with m.If(reply_left == 1):
                        with m.If((opcode == Op.READ) & (count != 0)):
                            m.next = "READ_REQUEST"
                        with m.Else():
                            m.next = "IDLE"
        return m
