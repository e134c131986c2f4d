"""HostBridge end to end over its serial lines: random commands against the protocol model with random back-pressure
from a Python accelerator, the silence timeout, and a real StreamFIFO behind the bridge."""

import pytest

from sparq.hw.uart.bridge import HostBridge
from sparq.sim.harness import run_amaranth, run_verilator
from sparq.sim.uart.rigs import FIFOLoopback

DIVISOR = 5
TIMEOUT = 60 * DIVISOR  # short, so the timeout test is quick; longer than any gap the tests leave mid-command


def _bridge():
    return HostBridge(divisor=DIVISOR, n_counters=3, timeout=TIMEOUT)


@pytest.mark.parametrize("stall", [0.0, 0.5])
def test_random_commands_verilator(stall):
    result = run_verilator(_bridge(), "sparq.sim.tb.uart:bridge_random", seed=int(stall * 10) + 1, n_commands=40,
                           divisor=DIVISOR, n_counters=3, stall_probability=stall, max_gap=2 * DIVISOR)
    assert result["starts"] > 0


@pytest.mark.slow
def test_random_commands_long_verilator():
    run_verilator(_bridge(), "sparq.sim.tb.uart:bridge_random", seed=99, n_commands=400, divisor=DIVISOR, n_counters=3,
                  stall_probability=0.7, max_gap=4 * DIVISOR)


def test_timeout_verilator():
    assert run_verilator(_bridge(), "sparq.sim.tb.uart:bridge_timeout", divisor=DIVISOR, timeout=TIMEOUT) == {
        "n_counters": 3}


def test_fifo_loopback_verilator():
    run_verilator(FIFOLoopback(divisor=DIVISOR, depth=16, timeout=TIMEOUT), "sparq.sim.tb.uart:bridge_fifo_loopback",
                  seed=3, divisor=DIVISOR, depth=16)


def test_amaranth():
    run_amaranth(_bridge(), "sparq.sim.tb.uart:bridge_random", seed=5, n_commands=6, divisor=DIVISOR, n_counters=3,
                 stall_probability=0.3, max_gap=DIVISOR)


@pytest.mark.parametrize("kwargs, message", [
    (dict(divisor=8, n_counters=0), "n_counters must be an integer in 1..255"),
    (dict(divisor=8, timeout=100), "timeout must be an integer of at least two UART frames \\(160 cycles\\)"),
    (dict(divisor=2), "divisor"),
])
def test_bad_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HostBridge(**kwargs)
