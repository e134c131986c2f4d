"""The stream-rule monitors of sparq.sim.bench: every agent checks ``valid`` held until the transfer and ``payload``
steady meanwhile, names the port, the cycle and the rule when a design breaks one, and counts the pressure it saw."""

import random

import pytest
from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sparq.hw.common.fifo import StreamFIFO
from sparq.sim.bench import StreamMonitor, StreamRules, StreamRuleViolation, StreamSink, StreamSource
from sparq.sim.harness import run_amaranth


class _Broken(wiring.Component):
    """An output stream that breaks a rule on purpose: ``drops`` lowers ``valid`` every other cycle whatever
    ``ready`` says; otherwise ``valid`` stays high and the payload counts cycles, also while not ready."""
    o: Out(stream.Signature(8))

    def __init__(self, drops: bool):
        self.drops = drops
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        count = Signal(8)
        m.d.sync += count.eq(count + 1)
        m.d.comb += [self.o.valid.eq(count[0] if self.drops else 1), self.o.payload.eq(count)]
        return m


async def _collect(bench, *, count, stall):
    sink = StreamSink("o", count, rng=random.Random(1), stall_probability=stall)
    await bench.run([sink], max_cycles=200)
    return sink


@pytest.mark.parametrize("drops, rule", [(True, "valid dropped before its transfer"),
                                         (False, "payload changed from")])
def test_a_design_that_breaks_a_rule_is_named_with_the_cycle(drops, rule):
    with pytest.raises(StreamRuleViolation, match=rf"^o: cycle \d+: {rule}"):
        run_amaranth(_Broken(drops), _collect, count=50, stall=0.5)


def test_without_back_pressure_the_broken_design_passes_unseen():
    """The rules only bind while not ready: with ready always high the same design is legal (the check is not a
    blanket refusal)."""
    assert len(run_amaranth(_Broken(False), _collect, count=20, stall=0.0).items) == 20


class _Passthrough(wiring.Component):
    """A FIFO whose input is also watched by a monitor (the ports the bench drives)."""
    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = fifo = StreamFIFO(8, 2)
        wiring.connect(m, wiring.flipped(self.i), fifo.i)
        wiring.connect(m, fifo.o, wiring.flipped(self.o))
        return m


async def _through(bench, *, n, gap, stall):
    rng = random.Random(3)
    source = StreamSource("i", list(range(n)), rng=rng, gap_probability=gap)
    sink = StreamSink("o", n, rng=rng, stall_probability=stall)
    watch = StreamMonitor("i")
    await bench.run([source, sink, watch], max_cycles=20 * n)
    return source, sink, watch


def test_the_agents_count_the_pressure_they_applied():
    source, sink, watch = run_amaranth(_Passthrough(), _through, n=200, gap=0.3, stall=0.5)
    assert sink.items == list(range(200))
    assert source.gap_cycles > 0 and source.blocked_cycles > 0 and sink.stall_cycles > 0
    assert watch.transfers == 200 and watch.stall_cycles == source.blocked_cycles
    calm = run_amaranth(_Passthrough(), _through, n=50, gap=0.0, stall=0.0)
    assert (calm[0].gap_cycles, calm[1].stall_cycles) == (0, 0)  # (blocked cycles: the FIFO's own pace)
    assert calm[2].stall_cycles == calm[0].blocked_cycles


def test_rules_directly():
    rules = StreamRules("x")
    rules.check(0, 1, 0, 5)
    rules.check(1, 1, 1, 5)   # held, then taken
    rules.check(2, 0, 0, None)
    rules.check(3, 1, 0, 7)
    with pytest.raises(StreamRuleViolation, match="x: cycle 4: payload changed from 0x7 to 0x8"):
        rules.check(4, 1, 0, 8)
