"""Analytic cycle model of ``sparq.hw.systolic.SystolicAccelerator``: per-instruction timing equations, no per-cycle loop.

It mirrors the controller's dispatch rules (``sparq.hw.systolic.controller``) with the unit latencies written out below,
for a host that is always ready: ``host_in`` always valid, ``host_out`` always ready, instructions always queued.
Every instruction ``i`` dispatches at ``t_i = max(t_{i-1} + 1, ready_i)``, where ``ready_i`` is the first cycle at
which its interlocks allow it, given the units' state after the instructions before it. With ``t_0 = 0``:

* READ_HOST / READ_WEIGHTS of ``n`` words at ``t``: transfers at ``t+1 .. t+n``; the host unit is free at ``t+n+1``.
* WRITE_HOST of ``n`` words at ``t``: UB reads at ``t+1 .. t+n`` (full rate when ``out_depth >= 5``); free at
  ``t+n+2``; the output queue is empty from ``t+n+4``.
* LOAD_WEIGHTS at ``t``: busy ``t+1 .. t+w+1`` with ``w = rows`` (``2 * rows`` when WIDE); a MATMUL on its bank
  may dispatch from ``t+w+1``.
* MATMUL of ``n`` rows at ``t``: issues at ``t+1 .. t+n``; the next MATMUL may dispatch at ``t+n``; a LOAD_WEIGHTS
  into its bank from ``t+n+1+bank_drain``; the matrix unit is drained from ``t+n+1+matrix_drain`` (the drain
  latencies of :mod:`sparq.formats.systolic.timing`, which the controller waits for too).
* ACTIVATE of ``n`` rows at ``t``: busy ``t+1 .. t+n+11``; a MATMUL whose UB or accumulator range overlaps it
  waits for ``t+n+12``.
* MATMUL FROM_TB: as MATMUL, but an ACTIVATE's UB range does not hold it back.
* TRANSFORM_IN of ``n`` tiles at ``t``: UB reads ``t+1 .. t+16n``, the last transformed word written at
  ``t+16n+18``; nothing dispatches before ``t+16n+19``. TRANSFORM_OUT: accumulator reads ``t+1 .. t+16n``, the
  last output written at ``t+16n+6`` and landed two cycles later; nothing dispatches before ``t+16n+9``.
* SYNC, READ_*, WRITE_HOST and the transforms wait for every unit; HALT also for the output queue to empty.

:func:`predict` returns ``cycles`` (from the first dispatch to HALT, inclusive, which is the RTL's
``cycles - stall_cycles``), ``mac_busy`` and ``active_cycles`` as :mod:`sparq.formats.systolic.timing` defines
them, and the dispatch cycle of every instruction.
"""

from dataclasses import dataclass

from sparq.formats.systolic import Flag, Opcode, SystolicConfig, bank_drain_cycles, matrix_drain_cycles

__all__ = ["ACTIVATE_OVERHEAD", "TRANSFORM_IN_OVERHEAD", "TRANSFORM_OUT_OVERHEAD", "CycleEstimate", "predict"]

ACTIVATE_OVERHEAD = 11
"""Cycles an ACTIVATE is busy beyond its row count: 7 parameter reads, the accumulator read and the 3-stage
requantizer (``sparq.hw.systolic.activation.Requantizer.LATENCY``)."""


TRANSFORM_IN_OVERHEAD = 19
"""TRANSFORM_IN of ``n`` tiles holds dispatch for ``16 n`` + this many cycles (UB read, 16-word fill, bank switch,
16 output words)."""

TRANSFORM_OUT_OVERHEAD = 9
"""TRANSFORM_OUT of ``n`` tiles holds dispatch for ``16 n`` + this many cycles (accumulator read, 16-word fill,
bank switch, 4 output words, accumulator write)."""


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


def _overlap(lo_a, n_a, lo_b, n_b):
    return lo_a < lo_b + n_b and lo_b < lo_a + n_a


def _union_length(intervals):
    total, end = 0, -1
    for lo, hi in sorted(intervals):  # inclusive intervals
        if hi > end:
            total += hi - max(lo, end + 1) + 1
            end = hi
    return total


def predict(config: SystolicConfig, instructions) -> CycleEstimate:
    """Dispatch cycles and counter values of ``instructions`` on the accelerator built for ``config``."""
    rows = config.rows
    host_free = w_free = a_free = m_next = drained_at = out_empty = xf_free = 0
    load_done, bank_free = {}, [0, 0]  # load_done: (bank, cycle) of the last LOAD_WEIGHTS
    last_activate = None  # (acc, ub, count, free)
    busy = []  # inclusive intervals in which a compute unit is busy
    dispatch, mac_busy, t = [], 0, -1
    for ins in instructions:
        op, n = ins.opcode, ins.count
        bank = int(ins.flags & Flag.BANK)
        all_idle = max(host_free, w_free, drained_at, a_free, xf_free)
        if op in (Opcode.READ_HOST, Opcode.READ_WEIGHTS, Opcode.WRITE_HOST, Opcode.SYNC, Opcode.TRANSFORM_IN,
                  Opcode.TRANSFORM_OUT):
            ready = all_idle
        elif op == Opcode.HALT:
            ready = max(all_idle, out_empty)
        elif op == Opcode.LOAD_WEIGHTS:
            ready = max(host_free, w_free, bank_free[bank])
        elif op == Opcode.MATMUL:
            ready = max(host_free, m_next)
            if load_done and load_done[0] == bank:
                ready = max(ready, load_done[1])
            from_tb = bool(ins.flags & Flag.FROM_TB)
            if last_activate and ((not from_tb and _overlap(ins.ub, n, last_activate[1], last_activate[2]))
                                  or _overlap(ins.acc, n, last_activate[0], last_activate[2])):
                ready = max(ready, last_activate[3])
        elif op == Opcode.ACTIVATE:
            ready = max(host_free, drained_at, a_free)
        else:
            ready = 0
        t = max(t + 1, ready, xf_free)
        dispatch.append(t)
        if op in (Opcode.READ_HOST, Opcode.READ_WEIGHTS):
            host_free = t + n + 1
        elif op == Opcode.WRITE_HOST:
            host_free, out_empty = t + n + 2, t + n + 4
        elif op == Opcode.LOAD_WEIGHTS:
            words = 2 * rows if ins.flags & Flag.WIDE else rows
            w_free = t + words + 2
            load_done = (bank, t + words + 1)
            busy.append((t + 1, t + words + 1))
        elif op in (Opcode.TRANSFORM_IN, Opcode.TRANSFORM_OUT):
            overhead = TRANSFORM_IN_OVERHEAD if op == Opcode.TRANSFORM_IN else TRANSFORM_OUT_OVERHEAD
            xf_free = t + 16 * n + overhead
            busy.append((t + 1, xf_free - 1))
        elif op == Opcode.MATMUL:
            mac_busy += n
            m_next = t + n
            bank_free[bank] = t + n + 1 + bank_drain_cycles(config)
            drained_at = t + n + 1 + matrix_drain_cycles(config)
            busy.append((t + 1, t + n + matrix_drain_cycles(config)))
        elif op == Opcode.ACTIVATE:
            a_free = t + n + ACTIVATE_OVERHEAD + 1
            last_activate = (ins.acc, ins.ub, n, a_free)
            busy.append((t + 1, t + n + ACTIVATE_OVERHEAD))
        elif op == Opcode.HALT:
            break
    end = t
    busy = [(lo, min(hi, end)) for lo, hi in busy if lo <= end]
    return CycleEstimate(cycles=end + 1, mac_busy=mac_busy, active_cycles=_union_length(busy), dispatch=dispatch,
                         busy=busy)
