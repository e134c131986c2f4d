"""The sparq host protocol over a UART: framing and command sequences, shared by every party that speaks it.

This module is the one implementation of the protocol's framing. :class:`sparq.hw.uart.bridge.HostBridge` takes its
opcodes from here, the host driver (:mod:`sparq.fpga.driver`, pyserial) and the simulation link
(:mod:`sparq.sim.uart.bfm`, cocotb) run the same transactions and sequences, and :mod:`sparq.sim.uart.model` is the
device-side reference. It imports nothing but the standard library.

Wire format
-----------
The host sends a command; the device answers every command, in order, with a reply that starts with an
acknowledgement byte, ``0x80 | opcode``. All multi-byte fields are little-endian. Words are 32 bits (4 bytes);
addresses are 16-bit word addresses within an 8-bit *space* (which memory or stream); counts are 16-bit word counts.

========  =======================================  =================================================
opcode    request                                  reply
========  =======================================  =================================================
``0x00``  HELLO                                    ``0x80 'S' 'Q' version n_counters``
``0x01``  WRITE space addr count word*count        ``0x81`` once the last word is accepted
``0x02``  READ space addr count                    ``0x82 word*count``
``0x03``  START                                    ``0x83`` (the start strobe has been issued)
``0x04``  STATUS                                   ``0x84 status``
``0x05``  COUNTERS                                 ``0x85 counter*n_counters`` (one coherent snapshot)
other     (one byte)                               ``0xFF``
========  =======================================  =================================================

WRITE and READ move ``count`` words at consecutive addresses from ``addr``; a count of 0 moves none. The status byte
holds, from bit 0: ``busy``, ``done`` (live from the accelerator), then ``frame_error``, ``overrun`` and ``timeout``,
sticky since the previous STATUS (which clears them): a UART frame arrived with a bad stop bit, a byte arrived
before the previous one was taken, a command was abandoned because the host fell silent in the middle of it; then
``error`` (live from the accelerator, which keeps it until its next reset): the accelerator stopped on an error,
such as an instruction it does not execute (the systolic board top; an EIE board never sets it). Bits 6 and 7 are
0. :func:`wait_done` raises :class:`DeviceError` when ``error`` is set.

Spaces are the accelerator's to define; sparq's board tops use :data:`SPACE_INPUT`, :data:`SPACE_OUTPUT` and
:data:`SPACE_IMAGE` (loading a new model image is a WRITE to the image space).

Resynchronisation: when a command stops arriving half-way for ``timeout`` cycles (about a third of a second on a board
top), the device drops it and waits for a new opcode. A host that lost track waits that long, flushes its input and
sends HELLO (:meth:`sparq.fpga.driver.Device.resync` does this).

Sans-I/O design
---------------
Every command is a :class:`Transaction`: the request bytes, the reply length and a ``decode`` that checks the reply
and returns its value. Multi-command operations (:func:`write_words`, :func:`run_job`, ...) are generators that yield
transactions and receive their decoded values; :func:`drive` runs one over a blocking ``transact(request, length)``
function and :func:`drive_async` over an ``async`` one, so the host driver and the cocotb link share every line.
"""

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

__all__ = ["Op", "VERSION", "MAGIC", "ACK", "NAK", "WORD_BYTES", "MAX_COUNT", "HEADER_BYTES", "STATUS_BITS",
           "SPACE_INPUT", "SPACE_OUTPUT", "SPACE_IMAGE", "ProtocolError", "DeviceError", "Info", "Status",
           "Transaction",
           "hello", "write", "read", "start", "status", "counters",
           "write_words", "read_words", "wait_done", "run_job", "drive", "drive_async"]

VERSION = 1
MAGIC = b"SQ"
ACK = 0x80
NAK = 0xFF
WORD_BYTES = 4
MAX_COUNT = 0xFFFF
HEADER_BYTES = 5  # space, addr (2), count (2)
STATUS_BITS = ("busy", "done", "frame_error", "overrun", "timeout", "error")

SPACE_INPUT = 0
SPACE_OUTPUT = 1
SPACE_IMAGE = 2


class Op(IntEnum):
    HELLO = 0x00
    WRITE = 0x01
    READ = 0x02
    START = 0x03
    STATUS = 0x04
    COUNTERS = 0x05


class ProtocolError(RuntimeError):
    """The device's reply is not what the protocol allows (wrong acknowledgement, short reply, bad magic)."""


class DeviceError(RuntimeError):
    """The link works but the accelerator reports (status bit ``error``) that it stopped on an error."""


@dataclass(frozen=True)
class Info:
    version: int
    n_counters: int


@dataclass(frozen=True)
class Status:
    busy: bool
    done: bool
    frame_error: bool
    overrun: bool
    timeout: bool
    error: bool = False

    @classmethod
    def from_byte(cls, value: int) -> "Status":
        return cls(*(bool(value >> bit & 1) for bit in range(len(STATUS_BITS))))

    def to_byte(self) -> int:
        return sum(int(getattr(self, name)) << bit for bit, name in enumerate(STATUS_BITS))


@dataclass(frozen=True)
class Transaction:
    """One command: ``request`` bytes out, ``reply_length`` bytes back, ``decode(reply)`` checks them and returns
    the command's value. ``name`` is for error messages."""
    name: str
    request: bytes
    reply_length: int
    decode: Callable[[bytes], Any]


def _ack(op: Op, reply: bytes, length: int) -> bytes:
    if len(reply) != length:
        raise ProtocolError(f"{op.name}: expected a {length}-byte reply, got {len(reply)} byte(s) {reply.hex()!r}; "
                            f"is the board programmed and the baud rate right?")
    if reply[0] != ACK | op:
        what = "NAK (the device did not know the opcode)" if reply[0] == NAK else f"0x{reply[0]:02x}"
        raise ProtocolError(f"{op.name}: expected acknowledgement 0x{ACK | op:02x}, got {what}; "
                            f"the link may be out of step (Device.resync() recovers)")
    return reply[1:]


def _ack_only(op: Op):
    def decode(reply):
        _ack(op, reply, 1)
    return decode


def _words(data: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(data) // WORD_BYTES}I", data))


def _check_range(name: str, value: int, bits: int) -> int:
    if not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise ValueError(f"{name} must be an integer in 0..{(1 << bits) - 1}, not {value!r}")
    return value


def hello() -> Transaction:
    def decode(reply):
        body = _ack(Op.HELLO, reply, 5)
        if body[:2] != MAGIC:
            raise ProtocolError(f"HELLO: bad magic {body[:2]!r} (expected {MAGIC!r}); this is not a sparq device")
        if body[2] != VERSION:
            raise ProtocolError(f"HELLO: device speaks protocol version {body[2]}, this host speaks {VERSION}")
        return Info(version=body[2], n_counters=body[3])
    return Transaction("HELLO", bytes([Op.HELLO]), 5, decode)


def write(space: int, addr: int, words) -> Transaction:
    """Write ``words`` (at most :data:`MAX_COUNT`) at ``addr``, ``addr + 1``, ... of ``space``."""
    words = [_check_range("word", w, 32) for w in words]
    _check_range("space", space, 8), _check_range("addr", addr, 16), _check_range("word count", len(words), 16)
    request = struct.pack(f"<BBHH{len(words)}I", Op.WRITE, space, addr, len(words), *words)
    return Transaction("WRITE", request, 1, _ack_only(Op.WRITE))


def read(space: int, addr: int, count: int) -> Transaction:
    """Read ``count`` words (at most :data:`MAX_COUNT`) from ``addr``, ``addr + 1``, ... of ``space``."""
    _check_range("space", space, 8), _check_range("addr", addr, 16), _check_range("count", count, 16)
    length = 1 + WORD_BYTES * count
    return Transaction("READ", struct.pack("<BBHH", Op.READ, space, addr, count), length,
                       lambda reply: _words(_ack(Op.READ, reply, length)))


def start() -> Transaction:
    return Transaction("START", bytes([Op.START]), 1, _ack_only(Op.START))


def status() -> Transaction:
    return Transaction("STATUS", bytes([Op.STATUS]), 2,
                       lambda reply: Status.from_byte(_ack(Op.STATUS, reply, 2)[0]))


def counters(n_counters: int) -> Transaction:
    length = 1 + WORD_BYTES * n_counters
    return Transaction("COUNTERS", bytes([Op.COUNTERS]), length,
                       lambda reply: _words(_ack(Op.COUNTERS, reply, length)))


# ---- sequences: generators that yield transactions and receive their decoded values ---------------------------------

def write_words(space: int, addr: int, words, *, chunk: int = 256):
    """Write any number of words in WRITE commands of at most ``chunk`` words."""
    words = list(words)
    if addr + len(words) > 1 << 16:
        raise ValueError(f"{len(words)} words from address {addr} run past the 16-bit address space")
    for offset in range(0, len(words), chunk):
        yield write(space, addr + offset, words[offset:offset + chunk])


def read_words(space: int, addr: int, count: int, *, chunk: int = 256):
    """Read any number of words in READ commands of at most ``chunk`` words; returns the list."""
    if addr + count > 1 << 16:
        raise ValueError(f"{count} words from address {addr} run past the 16-bit address space")
    out = []
    for offset in range(0, count, chunk):
        out += yield read(space, addr + offset, min(chunk, count - offset))
    return out


def wait_done(*, max_polls: int = 10_000):
    """Poll STATUS until ``done``; returns the final :class:`Status`. Raises :class:`ProtocolError` on a UART error
    flag or after ``max_polls`` polls, and :class:`DeviceError` when the accelerator reports ``error``."""
    for _ in range(max_polls):
        state = yield status()
        if state.frame_error or state.overrun or state.timeout:
            raise ProtocolError(f"the device reports a link error while running: {state}")
        if state.error:
            raise DeviceError("the accelerator stopped on an error (status bit error): on a systolic board, an "
                              "instruction it does not execute; its outputs are not valid. Rebuild the board from "
                              "a program that `sparq lower` accepts")
        if state.done:
            return state
    raise ProtocolError(f"the device did not report done after {max_polls} status polls")


def run_job(inputs, n_outputs: int, *, n_counters: int, input_space: int = SPACE_INPUT,
            output_space: int = SPACE_OUTPUT, max_polls: int = 10_000):
    """Load ``inputs``, START, wait for done, read ``n_outputs`` words and the counters; returns
    ``(outputs, counters)``."""
    yield from write_words(input_space, 0, inputs)
    yield start()
    yield from wait_done(max_polls=max_polls)
    outputs = yield from read_words(output_space, 0, n_outputs)
    values = yield counters(n_counters)
    return outputs, values


def _as_sequence(operation):
    """A single :class:`Transaction` as a one-step sequence; a generator as it is."""
    if isinstance(operation, Transaction):
        def single():
            return (yield operation)
        return single()
    return operation


def drive(operation, transact: Callable[[bytes, int], bytes]):
    """Run a transaction or sequence over ``transact(request, reply_length) -> reply``; return its value."""
    sequence = _as_sequence(operation)
    value = None
    try:
        while True:
            transaction = sequence.send(value)
            value = transaction.decode(transact(transaction.request, transaction.reply_length))
    except StopIteration as stop:
        return stop.value


async def drive_async(operation, transact):
    """:func:`drive` over ``async transact(request, reply_length) -> reply``."""
    sequence = _as_sequence(operation)
    value = None
    try:
        while True:
            transaction = sequence.send(value)
            value = transaction.decode(await transact(transaction.request, transaction.reply_length))
    except StopIteration as stop:
        return stop.value
