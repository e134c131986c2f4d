"""StreamFIFO against its cycle-accurate golden model, under Verilator and under Amaranth's simulator."""

import pytest

from sparq.hw.common.fifo import StreamFIFO
from sparq.sim.harness import run_amaranth, run_verilator

PARAMS = [dict(width=8, depth=1), dict(width=8, depth=2), dict(width=16, depth=8), dict(width=3, depth=5)]
IDS = [f"w{p['width']}d{p['depth']}" for p in PARAMS]
PRESSURE = [(0.0, 0.0), (0.3, 0.3), (0.1, 0.7), (0.7, 0.1)]


@pytest.mark.parametrize("params", PARAMS, ids=IDS)
@pytest.mark.parametrize("gap,stall", PRESSURE, ids=[f"gap{g}-stall{s}" for g, s in PRESSURE])
def test_random_stream_verilator(params, gap, stall):
    run_verilator(StreamFIFO(params["width"], params["depth"]), "sparq.sim.tb.fifo:random_stream",
                  seed=11, n=1000, gap_probability=gap, stall_probability=stall, **params)


@pytest.mark.parametrize("params", PARAMS, ids=IDS)
def test_fill_drain_verilator(params):
    result = run_verilator(StreamFIFO(params["width"], params["depth"]), "sparq.sim.tb.fifo:fill_drain", **params)
    if params["depth"] > 1:
        assert result["simultaneous"] > 0


@pytest.mark.parametrize("params", PARAMS, ids=IDS)
def test_amaranth(params):
    def fifo():
        return StreamFIFO(params["width"], params["depth"])
    run_amaranth(fifo(), "sparq.sim.tb.fifo:random_stream", seed=12, n=200, gap_probability=0.3,
                 stall_probability=0.3, **params)
    run_amaranth(fifo(), "sparq.sim.tb.fifo:fill_drain", **params)


def test_bad_depth_is_refused():
    with pytest.raises(ValueError, match="depth must be a positive integer"):
        StreamFIFO(8, 0)
