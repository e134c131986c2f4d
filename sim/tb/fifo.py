"""Testbench bodies for :class:`sparq.hw.common.fifo.StreamFIFO` against :class:`sparq.sim.golden.fifo.FIFOModel`."""

import random

from ..bench import Agent, StreamSink, StreamSource
from ..golden.fifo import FIFOModel
from ..scoreboard import Mismatch, assert_words_equal


class FIFOChecker(Agent):
    """Runs the cycle-accurate model in lock step and checks ``i.ready``, ``o.valid``, ``o.payload`` and ``level``
    every cycle, before the edge, from the inputs the other agents drove."""

    def __init__(self, depth: int):
        self.model = FIFOModel(depth)

    def sample(self, bench):
        expected = self.model.outputs()
        got = {"i_ready": bench.get("i.ready"), "o_valid": bench.get("o.valid"), "level": bench.get("level")}
        if expected["o_valid"]:
            got["o_payload"] = bench.get("o.payload")
        for name, value in got.items():
            if int(expected[name]) != value:
                raise Mismatch(f"cycle {bench.cycle}: {name} expected {int(expected[name])}, got {value} "
                               f"(model level {self.model.level})")
        self.model.step(bench.get("i.valid"), bench.get("i.payload"), bench.get("o.ready"))


async def random_stream(bench, *, seed: int, n: int, depth: int, width: int,
                        gap_probability: float, stall_probability: float):
    """``n`` random words through the FIFO with random valid gaps and random back-pressure, checked every cycle."""
    rng = random.Random(seed)
    items = [rng.getrandbits(width) for _ in range(n)]
    source = StreamSource("i", items, rng=rng, gap_probability=gap_probability)
    sink = StreamSink("o", n, rng=rng, stall_probability=stall_probability)
    await bench.reset()
    cycles = await bench.run([source, sink, FIFOChecker(depth)], max_cycles=50 * n + 100)
    assert_words_equal(items, sink.items, what="FIFO output")
    return {"cycles": cycles}


async def fill_drain(bench, *, depth: int, width: int):
    """Directed: fill an empty FIFO until it refuses, check full; drain it, check empty; then a phase of
    simultaneous push and pop at every fill level, all against the cycle-accurate model."""
    rng = random.Random(0)
    items = [rng.getrandbits(width) for _ in range(3 * depth + 4)]
    await bench.reset()
    checker = FIFOChecker(depth)
    assert bench.get("o.valid") == 0 and bench.get("level") == 0, "FIFO not empty after reset"

    # Fill with the sink stalled: the FIFO must take exactly `depth` items, then hold i.ready low.
    fill = StreamSource("i", items[:depth + 1], rng=rng)
    stalled = StreamSink("o", 0, rng=rng, stall_probability=1.0)
    await bench.run([fill, stalled, checker], until=lambda: checker.model.level == depth, max_cycles=4 * depth + 10)
    start = bench.cycle
    await bench.run([fill, stalled, checker], until=lambda: bench.cycle == start + 3)  # full, offered more
    if fill.sent != depth or bench.get("level") != depth or bench.get("i.ready"):
        raise Mismatch(f"full FIFO: accepted {fill.sent} words (expected {depth}), level {bench.get('level')}, "
                       f"i.ready {bench.get('i.ready')} (expected 0)")

    # Drain everything, then check empty.
    drain = StreamSink("o", depth + 1, rng=rng)
    await bench.run([fill, drain, checker], max_cycles=8 * depth + 20)
    assert_words_equal(items[:depth + 1], drain.items, what="drained words")
    await bench.run([drain, checker], until=lambda: checker.model.level == 0, max_cycles=4)
    if bench.get("o.valid") or bench.get("level"):
        raise Mismatch(f"drained FIFO: o.valid {bench.get('o.valid')}, level {bench.get('level')} (expected 0, 0)")

    # Simultaneous push and pop, both always willing: the FIFO streams one word per cycle in steady state.
    rest = items[depth + 1:]
    push = StreamSource("i", rest, rng=rng)
    pop = StreamSink("o", len(rest), rng=rng)
    await bench.run([push, pop, checker], max_cycles=4 * len(rest) + 20)
    assert_words_equal(rest, pop.items, what="streamed words")
    both = set(push.transfer_cycles) & set(pop.transfer_cycles)
    if depth > 1 and not both:
        raise Mismatch("no cycle had a push and a pop at once")
    return {"simultaneous": len(both)}
