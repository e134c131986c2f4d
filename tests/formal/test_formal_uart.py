"""Formal properties of the UART (sparq.sim.formal.uart) at small divisors; the blocks are parametric in the
divisor, and the simulation tests cover the board divisors. Times in README.md here."""

import pytest

from sparq.hw.uart.serial import UARTReceiver
from sparq.sim.formal import cover, prove
from sparq.sim.formal.rules import StreamRules
from sparq.sim.formal.uart import ReceiverFrames, TransmitterFrames

SLOW = pytest.mark.slow


@pytest.mark.parametrize("divisor", [4, pytest.param(5, marks=SLOW), pytest.param(8, marks=SLOW)])
def test_transmitter_frames(divisor):
    assert prove(TransmitterFrames(divisor)).verdict == "proved"


@pytest.mark.parametrize("divisor", [4, 5])
def test_receiver_stream(divisor):
    """The receiver's o keeps the stream rules whatever the line does (noise, breaks, any baud rate)."""
    assert prove(StreamRules(UARTReceiver(divisor=divisor))).verdict == "proved"


@pytest.mark.parametrize("divisor", [4, pytest.param(5, marks=SLOW), pytest.param(8, marks=SLOW)])
def test_receiver_frames(divisor):
    prove(ReceiverFrames(divisor))


def test_uart_covers():
    """Back-to-back frames and a consumer at its deadline are reachable, so the proofs above are not vacuous."""
    cover(TransmitterFrames(4))
    cover(ReceiverFrames(4))
