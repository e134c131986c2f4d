"""Analytic cycle model of ``sparq.hw.systolic.SystolicAccelerator``: per-instruction timing equations, no per-cycle loop.

The equations are the accelerator's timing contract, :class:`sparq.formats.systolic.timing.Timeline` (written once
there, since the compiler's scheduler runs them too): every instruction ``i`` dispatches at
``t_i = max(t_{i-1} + 1, ready_i)``, where ``ready_i`` is the first cycle at which its interlocks allow it given the
units' state after the instructions before it, for a host that is always ready (``host_in`` always valid,
``host_out`` always ready, instructions always queued). With ``t_0 = 0``.

:func:`predict` returns ``cycles`` (from the first dispatch to HALT, inclusive, which is the RTL's
``cycles - stall_cycles``), ``mac_busy`` and ``active_cycles`` as :mod:`sparq.formats.systolic.timing` defines
them, and the dispatch cycle of every instruction.
"""

from dataclasses import dataclass

from sparq.formats.systolic import SystolicConfig
from sparq.formats.systolic.timing import TRANSFORM_IN_OVERHEAD, TRANSFORM_OUT_OVERHEAD, Timeline

__all__ = ["TRANSFORM_IN_OVERHEAD", "TRANSFORM_OUT_OVERHEAD", "CycleEstimate", "predict"]


@dataclass
class CycleEstimate:
    cycles: int
    mac_busy: int
    active_cycles: int
    dispatch: list
    busy: list  # inclusive (first, last) cycle intervals in which a compute unit is busy

    def active_between(self, first: int, last: int) -> int:
        """Active cycles within ``first .. last`` (inclusive)."""
        return _union_length([(max(lo, first), min(hi, last)) for lo, hi in self.busy if lo <= last and hi >= first])

    @property
    def utilization(self) -> float:
        """MAC-busy cycles over all cycles."""
        return self.mac_busy / self.cycles if self.cycles else 0.0


def _union_length(intervals):
    total, end = 0, -1
    for lo, hi in sorted(intervals):  # inclusive intervals
        if hi > end:
            total += hi - max(lo, end + 1) + 1
            end = hi
    return total


def predict(config: SystolicConfig, instructions) -> CycleEstimate:
    """Dispatch cycles and counter values of ``instructions`` on the accelerator built for ``config``."""
    timeline = Timeline(config)
    for ins in instructions:
        timeline.step(ins)
        if timeline.end is not None:
            break
    end = timeline.t
    busy = [(lo, min(hi, end)) for lo, hi in timeline.busy if lo <= end]
    return CycleEstimate(cycles=end + 1, mac_busy=timeline.mac_busy, active_cycles=_union_length(busy),
                         dispatch=timeline.dispatch, busy=busy)
