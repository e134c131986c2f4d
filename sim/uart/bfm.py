"""UART bus-functional models for testbench bodies, and a protocol link over them.

:class:`UARTSender` and :class:`UARTMonitor` are :class:`sparq.sim.bench.Agent` s: they run in lock step with the other
agents of :meth:`sparq.sim.bench.Bench.run` (stream sources and sinks with random back-pressure, say), one clock cycle at a
time, on both simulators. :class:`UARTLink` runs :mod:`sparq.formats.uart` transactions and sequences through them, so
a testbench speaks to a board top with exactly the framing code the pyserial driver uses.
"""

import random

from ..bench import Agent
from ..scoreboard import Mismatch

__all__ = ["frame_bits", "UARTSender", "UARTMonitor", "UARTLink"]


def frame_bits(byte: int) -> list[int]:
    """The ten line levels of an 8N1 frame: start (0), data LSB first, stop (1)."""
    return [0, *((byte >> i) & 1 for i in range(8)), 1]


class UARTSender(Agent):
    """Drives bytes onto the serial input ``port`` (idle high), 8N1.

    ``bit_cycles`` is the bit time in clock cycles; it may be fractional (a host whose baud rate is off by a few
    percent), bit edges then fall on the nearest cycle. Before each frame the line idles for a random number of cycles
    in ``0..max_gap`` (``rng`` seeds it); 0 sends frames back to back. ``corrupt_stop`` is a set of byte indices sent
    with a low stop bit (a framing error).
    """

    def __init__(self, port: str, *, bit_cycles: float, rng: random.Random | None = None, max_gap: int = 0,
                 corrupt_stop=()):
        self.port, self.bit_cycles, self.max_gap = port, bit_cycles, max_gap
        self.rng = rng or random.Random(0)
        self.corrupt_stop = set(corrupt_stop)
        self.queue, self.sent = [], 0
        self._levels, self._cycle = [], 0

    @property
    def done(self):
        return not self.queue and not self._levels

    def send(self, data: bytes) -> None:
        """Queue ``data`` for sending."""
        self.queue.extend(data)

    def _next_frame(self):
        byte = self.queue.pop(0)
        bits = frame_bits(byte)
        if self.sent in self.corrupt_stop:
            bits[-1] = 0
        gap = self.rng.randint(0, self.max_gap) if self.max_gap else 0
        edges = [round(k * self.bit_cycles) for k in range(len(bits) + 1)]
        self._levels = [1] * gap + [bit for k, bit in enumerate(bits) for _ in range(edges[k + 1] - edges[k])]
        if self.sent in self.corrupt_stop:
            self._levels.append(1)  # back to idle after the bad stop bit, so the next start bit is seen
        self.sent += 1

    def drive(self, bench):
        if not self._levels and self.queue:
            self._next_frame()
        bench.set(self.port, self._levels.pop(0) if self._levels else 1)

    def __repr__(self):
        return f"UARTSender({self.port!r}, {len(self.queue)} bytes queued)"


class UARTMonitor(Agent):
    """Receives bytes from the serial output ``port`` and checks each frame bit-exactly.

    A frame starts at the first low cycle after idle. Every bit must hold the same level for exactly ``divisor``
    cycles (the transmitter's contract), and the stop bit must be high; anything else raises
    :class:`sparq.sim.scoreboard.Mismatch` naming the byte, the bit and the cycle. ``received`` collects the bytes and
    ``start_cycles`` the cycle each frame began.
    """

    def __init__(self, port: str, *, divisor: int):
        self.port, self.divisor = port, divisor
        self.received, self.start_cycles = [], []
        self._count = None  # cycles into the current frame, None when idle
        self._bits = []

    @property
    def done(self):
        return self._count is None

    def sample(self, bench):
        level = bench.get(self.port)
        if self._count is None:
            if level == 0:
                self._count, self._bits = 0, []
                self.start_cycles.append(bench.cycle)
            else:
                return
        bit, offset = divmod(self._count, self.divisor)
        if offset == 0:
            self._bits.append(level)
        elif level != self._bits[bit]:
            raise Mismatch(f"{self.port}: byte {len(self.received)}, bit {bit} changed from {self._bits[bit]} to "
                           f"{level} after {offset} of {self.divisor} cycles (cycle {bench.cycle})")
        self._count += 1
        if self._count == 10 * self.divisor:
            if self._bits[0] != 0 or self._bits[9] != 1:
                raise Mismatch(f"{self.port}: byte {len(self.received)} has start bit {self._bits[0]} and stop bit "
                               f"{self._bits[9]} (expected 0 and 1), frame ended at cycle {bench.cycle}")
            self.received.append(sum(b << i for i, b in enumerate(self._bits[1:9])))
            self._count = None

    def __repr__(self):
        return f"UARTMonitor({self.port!r}, {len(self.received)} bytes received)"


class UARTLink:
    """Runs :mod:`sparq.formats.uart` transactions over a sender on ``rx`` and a monitor on ``tx``.

    ``agents`` run alongside (the accelerator side of the test, for instance) in every cycle the link simulates.
    ``max_cycles`` bounds each transaction.
    """

    def __init__(self, bench, *, divisor: int, rx: str = "rx", tx: str = "tx", agents=(), rng=None, max_gap: int = 0,
                 max_cycles: int = 2_000_000):
        self.bench = bench
        self.sender = UARTSender(rx, bit_cycles=divisor, rng=rng, max_gap=max_gap)
        self.monitor = UARTMonitor(tx, divisor=divisor)
        self.agents = [self.sender, self.monitor, *agents]
        self.max_cycles = max_cycles

    async def transact(self, request: bytes, reply_length: int) -> bytes:
        """Send ``request`` and return the next ``reply_length`` bytes the device sends."""
        first = len(self.monitor.received)
        self.sender.send(request)
        await self.bench.run(self.agents, max_cycles=self.max_cycles,
                             until=lambda: len(self.monitor.received) >= first + reply_length)
        return bytes(self.monitor.received[first:first + reply_length])

    async def idle(self, cycles: int) -> None:
        """Let ``cycles`` cycles pass with the line idle (the other agents keep running)."""
        end = self.bench.cycle + cycles
        await self.bench.run(self.agents, until=lambda: self.bench.cycle >= end, max_cycles=cycles + 1)

    async def run(self, operation):
        """Run a transaction or sequence of :mod:`sparq.formats.uart`; return its value."""
        from sparq.formats.uart import drive_async
        return await drive_async(operation, self.transact)
