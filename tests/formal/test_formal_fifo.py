"""Formal properties of StreamFIFO and EIE's ActivationQueue (sparq.sim.formal.fifo); times in README.md here."""

import pytest

from sparq.hw.common.fifo import StreamFIFO
from sparq.hw.eie.queue import ActivationQueue
from sparq.sim.formal import cover, prove
from sparq.sim.formal.fifo import QueueLevel, QueueOrder

SLOW = pytest.mark.slow


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5, 8, 16])
def test_fifo_level(depth):
    assert prove(QueueLevel(StreamFIFO(8, depth))).verdict == "proved"


@pytest.mark.parametrize("depth", [1, 2, 3, 4, pytest.param(5, marks=SLOW)])
def test_fifo_order(depth):
    assert prove(QueueOrder(StreamFIFO(8, depth))).verdict == f"bounded to depth {3 * depth + 6}"


@pytest.mark.parametrize("depth", [1, 2, 4, 8])
def test_activation_queue_level(depth):
    assert prove(QueueLevel(ActivationQueue(depth))).verdict == "proved"


@pytest.mark.parametrize("depth", [2, pytest.param(4, marks=SLOW)])
def test_activation_queue_order(depth):
    prove(QueueOrder(ActivationQueue(depth)))


@pytest.mark.parametrize("depth", [1, 3])
def test_fifo_covers(depth):
    """The environments leave the interesting cases reachable: a full queue, simultaneous transfers, the tracked
    item leaving a full queue."""
    cover(QueueLevel(StreamFIFO(8, depth)), depth=4 * depth + 4)
    cover(QueueOrder(StreamFIFO(8, depth)))
