"""The systolic blocks, each against its model, under Verilator and under Amaranth's simulator."""

import numpy as np
import pytest
from amaranth import signed
from amaranth.sim import Simulator

from sparq.hw.systolic.accumulators import Accumulators
from sparq.hw.systolic.activation import ActivationUnit, Requantizer
from sparq.hw.systolic.array import SystolicArray
from sparq.hw.systolic.buffer import UnifiedBuffer
from sparq.hw.systolic.controller import SkidBuffer
from sparq.hw.systolic.matrix import MatrixUnit
from sparq.hw.systolic.pe import WeightStationaryPE
from sparq.hw.systolic.skew import InputSkew, OutputDeskew
from sparq.sim.harness import run_amaranth
from sparq.sim.harness import run_verilator as run
from sparq.sim.rig import BlockRig
from sparq.sim.systolic.blocks import BLOCKS


def run_verilator(prefix, body, **params):
    """Run ``body`` on the block ``prefix`` of the shared ``BlockRig.of(BLOCKS)`` build."""
    return run(BlockRig.of(BLOCKS), body, prefix=f"{prefix}.", optimize=False, **params)


def test_pe_verilator():
    run_verilator("pe", "sparq.sim.tb.systolic:random_pe", seed=1, n=3000)


def test_pe_amaranth():
    run_amaranth(WeightStationaryPE(), "sparq.sim.tb.systolic:random_pe", seed=2, n=400)


@pytest.mark.parametrize("reverse", [False, True], ids=["skew", "deskew"])
def test_skew_verilator(reverse):
    name = "deskew" if reverse else "skew"
    params = BLOCKS[name][1]
    run_verilator(name, "sparq.sim.tb.systolic:random_delays", seed=3, n=400, lanes=params["lanes"],
                  width=params["shape"].width, reverse=reverse)


@pytest.mark.parametrize("reverse", [False, True], ids=["skew", "deskew"])
def test_skew_amaranth(reverse):
    block = OutputDeskew(3, signed(8)) if reverse else InputSkew(4, signed(8))
    run_amaranth(block, "sparq.sim.tb.systolic:random_delays", seed=4, n=60, lanes=3 if reverse else 4, width=8,
                 reverse=reverse)


def test_accumulators_verilator():
    run_verilator("accumulators", "sparq.sim.tb.systolic:random_accumulators", seed=5, n=3000, **BLOCKS["accumulators"][1])


def test_accumulators_amaranth():
    run_amaranth(Accumulators(2, 8), "sparq.sim.tb.systolic:random_accumulators", seed=6, n=300, cols=2, depth=8)


def test_requantizer_verilator():
    result = run_verilator("requantizer", "sparq.sim.tb.systolic:requantizer_sweep", seed=7, n=5000)
    assert result["cases"] > 5000


def test_requantizer_amaranth():
    run_amaranth(Requantizer(), "sparq.sim.tb.systolic:requantizer_sweep", seed=8, n=200)


def test_matrix_unit_verilator():
    """A non-square 4x3 array: skew, array and de-skew together, with double-buffered weights."""
    result = run_verilator("matrix", "sparq.sim.tb.systolic:random_matrix_unit", seed=9, rounds=6, vectors=60,
                           **BLOCKS["matrix"][1])
    assert result["vectors"] > 300


def test_matrix_unit_amaranth():
    run_amaranth(MatrixUnit(2, 3, 16), "sparq.sim.tb.systolic:random_matrix_unit", seed=10, rows=2, cols=3, acc_depth=16,
                 rounds=3, vectors=15)


def test_unified_buffer_verilator():
    run_verilator("buffer", "sparq.sim.tb.systolic:random_unified_buffer", seed=11, n=4000, **BLOCKS["buffer"][1])


def test_unified_buffer_amaranth():
    run_amaranth(UnifiedBuffer(2, 6), "sparq.sim.tb.systolic:random_unified_buffer", seed=12, n=300, lanes=2, depth=6)


def test_activation_unit_verilator():
    result = run_verilator("activation", "sparq.sim.tb.systolic:random_activation_unit", seed=13, commands=300,
                           **BLOCKS["activation"][1])
    assert result["commands"] == 300


def test_activation_unit_amaranth():
    params = dict(cols=2, acc_depth=8, ub_depth=8, wb_depth=14, max_wait=9)
    run_amaranth(ActivationUnit(**params), "sparq.sim.tb.systolic:random_activation_unit", seed=14, commands=25,
                 **params)


@pytest.mark.parametrize("bad", [dict(rows=0, cols=2), dict(rows=2, cols=1.5)])
def test_bad_array_shape_is_refused(bad):
    with pytest.raises(ValueError, match="must be a positive integer"):
        SystolicArray(**bad)


def test_bad_skew_lanes_are_refused():
    with pytest.raises(ValueError, match="lanes must be a positive integer"):
        InputSkew(0, signed(8))


def test_skid_buffer_order_and_stream_rules():
    """The instruction queue's SkidBuffer against a list model under random valid and ready (the input keeping
    the stream rules): every item out once and in order, ``o`` valid exactly when an item is buffered or offered
    and keeping the stream rules (valid and payload held until ready), ``i.ready`` high exactly when nothing is
    buffered."""
    dut = SkidBuffer(8)
    rng = np.random.default_rng(21)
    items = [int(x) for x in rng.integers(0, 256, 500)]
    got = []

    async def bench(ctx):
        sent, buffered, offer, waiting = 0, [], False, None  # waiting: o's payload offered, not taken last cycle
        for cycle in range(4 * len(items)):
            offer = sent < len(items) and (offer or rng.random() < 0.7)  # once offered, until taken
            ctx.set(dut.i.valid, offer)
            ctx.set(dut.i.payload, items[sent] if offer else 0)
            ctx.set(dut.o.ready, rng.random() < 0.6)
            taken, valid, payload, ready = (ctx.get(dut.i.ready), ctx.get(dut.o.valid), ctx.get(dut.o.payload),
                                            ctx.get(dut.o.ready))
            assert taken == (not buffered), f"cycle {cycle}: i.ready {taken} with {len(buffered)} buffered"
            assert valid == (bool(buffered) or offer), f"cycle {cycle}: o.valid {valid}"
            if waiting is not None:
                assert valid and payload == waiting, f"cycle {cycle}: o dropped {waiting} before its transfer"
            if offer and taken:
                buffered.append(items[sent])
                sent, offer = sent + 1, False
            if valid and ready:
                assert payload == buffered.pop(0), f"cycle {cycle}: item {len(got)}: expected the oldest item"
                got.append(payload)
            waiting = payload if valid and not ready else None
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == items[:len(got)] and len(got) > len(items) // 2, "items lost, duplicated or reordered"
