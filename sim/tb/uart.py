"""Testbench bodies for the UART host interface: :mod:`sparq.hw.uart.serial` bit-exact against the bus-functional models,
and :class:`sparq.hw.uart.bridge.HostBridge` end to end against :class:`sparq.sim.uart.model.HostBridgeModel`."""

import random

from sparq.formats import uart as protocol
from sparq.formats.uart import Op, Transaction

from ..bench import Agent, StreamSink, StreamSource
from ..scoreboard import Mismatch, assert_words_equal
from ..uart.bfm import UARTLink, UARTMonitor, UARTSender
from ..uart.model import HostBridgeModel


class StrobeWatch(Agent):
    """Records the cycles on which each one-cycle strobe port is high."""

    def __init__(self, *ports):
        self.seen = {port: [] for port in ports}

    def sample(self, bench):
        for port, cycles in self.seen.items():
            if bench.get(port):
                cycles.append(bench.cycle)


async def random_tx(bench, *, seed: int, n: int, divisor: int, gap_probability: float):
    """``n`` random bytes into the transmitter with random valid gaps; the line checked bit-exactly; back-to-back
    frames must follow each other every ``10 * divisor`` cycles."""
    rng = random.Random(seed)
    items = [rng.getrandbits(8) for _ in range(n)]
    source = StreamSource("i", items, rng=rng, gap_probability=gap_probability)
    monitor = UARTMonitor("tx", divisor=divisor)
    await bench.reset()
    if bench.get("tx") != 1:
        raise Mismatch(f"tx is {bench.get('tx')} after reset, expected idle (1)")
    await bench.run([source, monitor], until=lambda: len(monitor.received) == n and monitor.done,
                    max_cycles=(10 * divisor + 50) * n + 100)
    assert_words_equal(items, monitor.received, what="bytes on tx")
    for k, (taken, started) in enumerate(zip(source.transfer_cycles, monitor.start_cycles)):
        if started != taken + 1:
            raise Mismatch(f"byte {k}: taken at cycle {taken}, start bit at cycle {started} (expected {taken + 1})")
    spacing = [b - a for a, b in zip(monitor.start_cycles, monitor.start_cycles[1:])]
    if gap_probability == 0 and set(spacing) != {10 * divisor}:
        raise Mismatch(f"frames offered back to back start {sorted(set(spacing))} cycles apart, "
                       f"expected {10 * divisor} (no idle time between frames)")
    return {"cycles": bench.cycle, "back_to_back": spacing.count(10 * divisor)}


async def random_rx(bench, *, seed: int, n: int, divisor: int, max_gap: int, stall_probability: float,
                    baud_error: float = 0.0):
    """``n`` random bytes onto ``rx`` with random idle gaps (0 to ``max_gap`` cycles, not whole bits) and a host bit
    time off by ``baud_error``; the bytes checked on ``o`` under random back-pressure, with no error strobe."""
    rng = random.Random(seed)
    items = [rng.getrandbits(8) for _ in range(n)]
    sender = UARTSender("rx", bit_cycles=divisor * (1 + baud_error), rng=rng, max_gap=max_gap)
    sender.send(bytes(items))
    sink = StreamSink("o", n, rng=rng, stall_probability=stall_probability)
    errors = StrobeWatch("frame_error", "overrun")
    bench.set("rx", 1)
    await bench.reset()
    cycles = await bench.run([sender, sink, errors], max_cycles=(12 * divisor + max_gap + 50) * n + 100)
    assert_words_equal(items, sink.items, what="bytes on o")
    if any(errors.seen.values()):
        raise Mismatch(f"error strobes during clean traffic: {errors.seen}")
    return {"cycles": cycles}


async def rx_errors(bench, *, divisor: int):
    """Directed: a frame with a low stop bit gives one ``frame_error`` strobe and no byte; the next byte is received.
    A byte arriving while the previous waits unread gives one ``overrun`` strobe and is dropped."""
    rng = random.Random(0)
    bench.set("rx", 1)
    await bench.reset()
    errors = StrobeWatch("frame_error", "overrun")

    sender = UARTSender("rx", bit_cycles=divisor, corrupt_stop={0})
    sender.send(bytes([0x55, 0xA7]))
    sink = StreamSink("o", 1, rng=rng)
    await bench.run([sender, sink, errors], max_cycles=30 * divisor)
    if sink.items != [0xA7] or len(errors.seen["frame_error"]) != 1 or errors.seen["overrun"]:
        raise Mismatch(f"after a bad stop bit: received {sink.items} (expected [0xa7]), strobes {errors.seen}")

    stalled = StreamSink("o", 0, rng=rng, stall_probability=1.0)
    sender.send(bytes([0x12, 0x34]))
    await bench.run([sender, stalled, errors], max_cycles=30 * divisor)
    end = bench.cycle + divisor  # the strobe comes in the middle of the stop bit, plus the synchroniser's delay
    await bench.run([stalled, errors], until=lambda: bench.cycle >= end)
    if len(errors.seen["overrun"]) != 1 or bench.get("o.valid") != 1 or bench.get("o.payload") != 0x12:
        raise Mismatch(f"overrun: strobes {errors.seen}, o.valid {bench.get('o.valid')}, "
                       f"o.payload 0x{bench.get('o.payload'):02x} (expected one overrun, 0x12 held)")
    return {"cycles": bench.cycle}


class AcceleratorStandIn(Agent):
    """The accelerator side of a :class:`sparq.hw.uart.bridge.HostBridge`, in Python, with random back-pressure.

    Takes ``write`` words into ``memory`` (``{space: {addr: word}}``), answers ``read`` requests from it after a
    random latency, runs a ``job_cycles`` long job on each ``start`` strobe (``busy`` during it, ``done`` after), and
    drives ``counters`` and ``error``.
    """

    def __init__(self, *, rng: random.Random, stall_probability: float, n_counters: int, job_cycles: int):
        self.rng, self.stall, self.job_cycles = rng, stall_probability, job_cycles
        self.memory: dict[int, dict[int, int]] = {}
        self.counters = [0] * n_counters
        self.pending = []  # [cycles to wait, word] for accepted read requests
        self.job_left, self.done_flag, self.starts = 0, False, 0
        self.error = False
        self._write_ready = self._read_ready = False

    def drive(self, bench):
        self._write_ready = self.rng.random() >= self.stall
        self._read_ready = self.rng.random() >= self.stall
        bench.set("write.ready", int(self._write_ready))
        bench.set("read.ready", int(self._read_ready))
        bench.set("read_data.valid", int(bool(self.pending) and self.pending[0][0] == 0))
        if self.pending:
            bench.set("read_data.payload", self.pending[0][1])
        bench.set("busy", int(self.job_left > 0))
        bench.set("done", int(self.done_flag))
        bench.set("error", int(self.error))
        bench.set("counters", sum(value << (32 * k) for k, value in enumerate(self.counters)))

    def sample(self, bench):
        if self.pending and self.pending[0][0] == 0 and bench.get("read_data.ready"):
            self.pending.pop(0)
        elif self.pending and self.pending[0][0] > 0:
            self.pending[0][0] -= 1
        if self._write_ready and bench.get("write.valid"):
            raw = bench.get("write.payload")
            self.memory.setdefault(raw >> 48, {})[(raw >> 32) & 0xFFFF] = raw & 0xFFFFFFFF
        if self._read_ready and bench.get("read.valid"):
            raw = bench.get("read.payload")
            word = self.memory.get(raw >> 16, {}).get(raw & 0xFFFF, 0)
            self.pending.append([self.rng.randint(0, 3), word])
        if self.job_left:
            self.job_left -= 1
            self.done_flag = self.job_left == 0
        if bench.get("start"):
            self.starts += 1
            self.job_left, self.done_flag = self.job_cycles, False


def _random_operation(rng: random.Random, n_counters: int):
    kind = rng.choice(["hello", "write", "write", "read", "read", "start", "status", "counters", "unknown"])
    space, addr, count = rng.randrange(4), rng.randrange(48), rng.randint(0, 6)
    return {
        "hello": protocol.hello,
        "write": lambda: protocol.write(space, addr, [rng.getrandbits(32) for _ in range(count)]),
        "read": lambda: protocol.read(space, addr, count),
        "start": protocol.start,
        "status": protocol.status,
        "counters": lambda: protocol.counters(n_counters),
        "unknown": lambda: Transaction("unknown", bytes([rng.choice([0x06, 0x42, 0x7F, 0xFF])]), 1, bytes),
    }[kind]()


async def bridge_random(bench, *, seed: int, n_commands: int, divisor: int, n_counters: int,
                        stall_probability: float, max_gap: int):
    """Random commands through the bridge, every reply checked byte for byte against :class:`HostBridgeModel`;
    the accelerator stand-in applies random back-pressure on ``write``, ``read`` and ``read_data``. Ends by checking
    that the hardware's memory equals the model's and that every START reached ``start`` exactly once. The
    accelerator's ``error`` flag changes at random between commands (from its own seeded generator)."""
    rng, flags = random.Random(seed), random.Random(seed + 1)
    accelerator = AcceleratorStandIn(rng=rng, stall_probability=stall_probability, n_counters=n_counters,
                                     job_cycles=5 * divisor)
    model = HostBridgeModel(n_counters=n_counters)
    link = UARTLink(bench, divisor=divisor, agents=[accelerator], rng=rng, max_gap=max_gap)
    bench.set("rx", 1)
    await bench.reset()

    async def checked(request, reply_length):
        accelerator.counters = model.counters = [rng.getrandbits(32) for _ in range(n_counters)]
        accelerator.error = model.error = flags.random() < 0.3
        got = await link.transact(request, reply_length)
        expected = model.transact(request, reply_length)
        if got != expected:
            raise Mismatch(f"reply to {request[:8].hex()}...: expected {expected.hex()}, got {got.hex()}")
        if request[0] == Op.START:
            model.done = True  # the job (5 bit times) ends before the next command can arrive
        return got

    for _ in range(n_commands):
        await protocol.drive_async(_random_operation(rng, n_counters), checked)
    if accelerator.memory != {s: w for s, w in model.memory.items() if w}:
        raise Mismatch("memory written through the bridge differs from the model's")
    if accelerator.starts != model.starts:
        raise Mismatch(f"{model.starts} STARTs sent, {accelerator.starts} start strobes seen")
    return {"cycles": bench.cycle, "starts": model.starts}


async def bridge_timeout(bench, *, divisor: int, timeout: int):
    """Directed: a WRITE abandoned after three bytes is dropped after ``timeout`` silent cycles; HELLO then works,
    and STATUS reports the timeout once."""
    link = UARTLink(bench, divisor=divisor)
    bench.set("rx", 1)
    await bench.reset()
    link.sender.send(bytes([Op.WRITE, 0, 5]))
    await link.idle(30 * divisor + timeout)
    info = await link.run(protocol.hello())
    first, second = await link.run(protocol.status()), await link.run(protocol.status())
    if not first.timeout or second.timeout or first.frame_error or first.overrun:
        raise Mismatch(f"status after an abandoned command: {first}, then {second} (expected timeout once)")
    return {"n_counters": info.n_counters}


async def bridge_fifo_loopback(bench, *, seed: int, divisor: int, depth: int):
    """:class:`sparq.sim.uart.rigs.FIFOLoopback`: words written through the bridge come back in order through READ, with the
    counters and the done flag telling the same story; all through the shared sequences of
    :mod:`sparq.formats.uart`."""
    rng = random.Random(seed)
    link = UARTLink(bench, divisor=divisor, rng=rng, max_gap=3 * divisor)
    bench.set("rx", 1)
    await bench.reset()
    info = await link.run(protocol.hello())
    words = [rng.getrandbits(32) for _ in range(depth)]
    await link.run(protocol.write_words(protocol.SPACE_INPUT, 0, words[:depth // 2], chunk=5))
    level = (await link.run(protocol.counters(info.n_counters)))[2]
    back = await link.run(protocol.read_words(protocol.SPACE_OUTPUT, 0, depth // 4, chunk=3))
    await link.run(protocol.write_words(protocol.SPACE_INPUT, 0, words[depth // 2:]))
    outputs, counters = await link.run(protocol.run_job([], depth - depth // 4, n_counters=info.n_counters))
    assert_words_equal(words, back + outputs, what="words through the FIFO")
    if level != depth // 2 or counters != [depth, depth, 0, 1]:
        raise Mismatch(f"level {level} after {depth // 2} writes; final counters {counters} "
                       f"(expected pushed {depth}, popped {depth}, level 0, 1 start)")
    return {"cycles": bench.cycle}
