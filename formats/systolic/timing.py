"""The accelerator's timing contract, shared by ``sparq.hw.systolic`` and the cycle model ``sparq.sim.systolic.cycles``:
the drain latencies the interlocks wait for, and the performance counters that measure a run.

Performance counters (:data:`COUNTER_BITS` bits each, counting from reset until HALT completes), in the order
:data:`COUNTERS` (the accelerator's ports and a board's COUNTERS reply):

* ``cycles``: every cycle;
* ``mac_busy``: cycles in which a vector enters the array (each one is ``rows * cols`` MACs);
* ``stall_cycles``: cycles lost to the host -- a READ waiting for ``host_in``, an output word refused by
  ``host_out``, or nothing to do because the instruction queue is empty;
* ``active_cycles``: cycles in which the weight loader, the matrix unit (issuing or draining), the activation unit
  or (Winograd builds) the transform unit is busy -- the compute phase, without host transfers.
"""

from .config import SystolicConfig

__all__ = ["COUNTER_BITS", "COUNTERS", "bank_drain_cycles", "matrix_drain_cycles"]

COUNTER_BITS = 32
"""Width of every performance counter."""

COUNTERS = ("cycles", "mac_busy", "stall_cycles", "active_cycles")
"""The performance counters, in port and report order (see the module docstring)."""


def bank_drain_cycles(config: SystolicConfig) -> int:
    """Cycles after the last issue with a weight bank before a LOAD_WEIGHTS may start overwriting that bank.

    The last activation reaches PE ``(rows-1, cols-1)`` ``rows + cols - 1`` cycles after its issue and a load
    changes the bank from the third cycle after its dispatch; this keeps two cycles of margin.
    """
    return config.rows + config.cols - 2


def matrix_drain_cycles(config: SystolicConfig) -> int:
    """Cycles after the last MATMUL issue until its result is in the accumulators (UB read, ``rows + cols - 1``
    through the matrix unit, an accumulator read and an accumulator write)."""
    return config.rows + config.cols + 1
