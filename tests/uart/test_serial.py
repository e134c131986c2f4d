"""UART receiver and transmitter, bit-exact against the bus-functional models, under Verilator (and one quick run
each under Amaranth's simulator). Under Verilator both run in one build, sparq.sim.uart.rigs.SerialPair. The default runs use one odd divisor, 13, large enough for a 3% baud-rate error;
the slow sweep adds divisors 4 and 16 with longer streams."""

import pytest

from sparq.hw.uart.serial import UARTReceiver, UARTTransmitter
from sparq.sim.harness import run_amaranth, run_verilator
from sparq.sim.uart.rigs import SerialPair

SWEEP = [pytest.param(13, 80, id="div13"),
         pytest.param(4, 400, id="div4", marks=pytest.mark.slow),
         pytest.param(16, 400, id="div16", marks=pytest.mark.slow)]


@pytest.mark.parametrize("divisor, n", SWEEP)
@pytest.mark.parametrize("gap", [0.0, 0.5])
def test_tx_random_verilator(divisor, n, gap):
    result = run_verilator(SerialPair(divisor=divisor), "sparq.sim.tb.uart:random_tx", seed=divisor, n=n,
                           divisor=divisor, gap_probability=gap)
    if gap == 0:
        assert result["back_to_back"] == n - 1


@pytest.mark.parametrize("divisor, n", SWEEP)
@pytest.mark.parametrize("max_gap, stall", [(0, 0.0), (40, 0.5)])
def test_rx_random_verilator(divisor, n, max_gap, stall):
    run_verilator(SerialPair(divisor=divisor), "sparq.sim.tb.uart:random_rx", seed=divisor, n=n, divisor=divisor,
                  max_gap=max_gap, stall_probability=stall)


@pytest.mark.parametrize("baud_error", [-0.03, 0.03])
def test_rx_tolerates_baud_error_verilator(baud_error):
    run_verilator(SerialPair(divisor=13), "sparq.sim.tb.uart:random_rx", seed=5, n=60, divisor=13, max_gap=20,
                  stall_probability=0.3, baud_error=baud_error)


@pytest.mark.parametrize("divisor", [13, pytest.param(4, marks=pytest.mark.slow)])
def test_rx_errors_verilator(divisor):
    run_verilator(SerialPair(divisor=divisor), "sparq.sim.tb.uart:rx_errors", divisor=divisor)


def test_amaranth():
    run_amaranth(UARTTransmitter(divisor=5), "sparq.sim.tb.uart:random_tx", seed=1, n=20, divisor=5, gap_probability=0.3)
    run_amaranth(UARTReceiver(divisor=5), "sparq.sim.tb.uart:random_rx", seed=1, n=20, divisor=5, max_gap=9,
                 stall_probability=0.3)
    run_amaranth(UARTReceiver(divisor=6), "sparq.sim.tb.uart:rx_errors", divisor=6)


@pytest.mark.parametrize("divisor", [3, 0, 8.0, True])
def test_bad_divisor_is_refused(divisor):
    with pytest.raises(ValueError, match="divisor .* must be an integer of at least 4"):
        UARTReceiver(divisor=divisor)
