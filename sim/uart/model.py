"""A byte-level reference model of the device side of the sparq host protocol (:mod:`sparq.formats.uart`).

:class:`HostBridgeModel` reads command bytes as :class:`sparq.hw.uart.bridge.HostBridge` does and answers with the reply
bytes the hardware must send, against Python stand-ins for the accelerator: a word memory per space, a START count,
busy/done/error flags and counter values the test sets. It parses the wire format on its own, byte by byte, from the
specification, so checking the shared framing code against it checks two readings of the same table.
"""

import struct

from sparq.formats import uart as protocol
from sparq.formats.uart import Op

__all__ = ["HostBridgeModel"]


class HostBridgeModel:
    """The device side of the protocol over ``memory`` (``{space: {addr: word}}``, unwritten words read as 0)."""

    def __init__(self, *, n_counters: int = 4):
        self.n_counters = n_counters
        self.memory: dict[int, dict[int, int]] = {}
        self.counters = [0] * n_counters
        self.busy = self.done = self.error = False
        self.sticky = {"frame_error": False, "overrun": False, "timeout": False}
        self.starts = 0

    def _command(self, data: bytes) -> tuple[int, bytes]:
        """Execute the command at the start of ``data``; return ``(bytes consumed, reply)`` or ``(0, b"")`` if
        ``data`` holds only part of a command."""
        op = data[0]
        if op == Op.HELLO:
            return 1, bytes([protocol.ACK | op, *protocol.MAGIC, protocol.VERSION, self.n_counters])
        if op == Op.START:
            self.starts += 1
            return 1, bytes([protocol.ACK | op])
        if op == Op.STATUS:
            state = protocol.Status(self.busy, self.done, **self.sticky, error=self.error)
            self.sticky = dict.fromkeys(self.sticky, False)
            return 1, bytes([protocol.ACK | op, state.to_byte()])
        if op == Op.COUNTERS:
            return 1, bytes([protocol.ACK | op]) + struct.pack(f"<{self.n_counters}I", *self.counters)
        if op in (Op.WRITE, Op.READ):
            if len(data) < 1 + protocol.HEADER_BYTES:
                return 0, b""
            space, addr, count = struct.unpack_from("<BHH", data, 1)
            words = self.memory.setdefault(space, {})
            if op == Op.READ:
                values = [words.get((addr + k) & 0xFFFF, 0) for k in range(count)]
                return 6, bytes([protocol.ACK | op]) + struct.pack(f"<{count}I", *values)
            end = 6 + protocol.WORD_BYTES * count
            if len(data) < end:
                return 0, b""
            for k, value in enumerate(struct.unpack_from(f"<{count}I", data, 6)):
                words[(addr + k) & 0xFFFF] = value
            return end, bytes([protocol.ACK | op])
        return 1, bytes([protocol.NAK])

    def feed(self, request: bytes) -> bytes:
        """Execute ``request`` (whole commands) and return the reply bytes.

        Raises :class:`AssertionError` if the request ends inside a command."""
        replies, position = b"", 0
        while position < len(request):
            used, reply = self._command(request[position:])
            assert used, f"request ends inside a command: {request[position:].hex()}"
            replies, position = replies + reply, position + used
        return replies

    def transact(self, request: bytes, reply_length: int) -> bytes:
        """:meth:`feed`, as the blocking ``transact`` of :func:`sparq.formats.uart.drive`; also checks that the reply
        has the length the host expects."""
        replies = self.feed(request)
        assert len(replies) == reply_length, f"model replied {len(replies)} bytes, the host expects {reply_length}"
        return replies
