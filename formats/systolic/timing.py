"""The accelerator's timing contract, shared by ``sparq.hw.systolic`` (which implements it), the cycle model
``sparq.sim.systolic.cycles`` and the compiler's scheduler (which both run :class:`Timeline`): the unit latencies,
the interlocks, the unified buffer's bank slots and the performance counters.

Dispatch and interlocks
-----------------------
Instructions dispatch in program order, at most one a cycle, to six units: the host input (READ_HOST,
READ_WEIGHTS), the host output (WRITE_HOST), the weight loader (LOAD_WEIGHTS), the matrix unit (MATMUL), the
activation unit (ACTIVATE) and, in Winograd builds, the transform unit (TRANSFORM_IN, TRANSFORM_OUT). Each unit
works on one instruction at a time (the matrix unit issues one MATMUL while earlier ones drain through the array).
An instruction dispatches when its unit can take it and no earlier instruction still in a unit conflicts with it:

* a write to a unified-buffer (UB), weight-buffer (WB) or accumulator (ACC) range waits while a busy unit still
  reads or writes an overlapping range, and a read waits while a busy unit still writes one (ranges are whole
  instructions: a unit's range is busy from its dispatch until its last access);
* two chases are allowed. An ACTIVATE whose accumulator rows are the first rows of the latest MATMUL *run* (a
  MATMUL, extended by each next one whose accumulator rows continue its rows) follows the run row by row: the
  rows of the latest MATMUL issue one a cycle from its first issue, and the run's earlier rows issued before, in
  order, so reading row ``i`` of the run when row ``i`` of an unbroken run would have landed is safe. It starts
  reading ``offset`` cycles before the latest MATMUL's first row lands, ``offset`` the rows of the run before
  that MATMUL. A WRITE_HOST whose UB words are the first words of the busy ACTIVATE's dispatches once that
  ACTIVATE has written its first word and then follows it;
* LOAD_WEIGHTS into bank ``b`` waits for the last activation tagged ``b`` to pass the array
  (:func:`bank_drain_cycles`), and a MATMUL on bank ``b`` waits for a load into ``b`` to finish;
* an ACTIVATE that does not chase waits for every earlier MATMUL to finish issuing; it then reads each accumulator
  row only once it has landed (:func:`matrix_drain_cycles`);
* SYNC, HALT and the transforms wait for every unit to go idle (HALT also for ``host_out`` to empty), and nothing
  dispatches while a transform runs.

Bank slots
----------
The unified buffer is two banks, the even and the odd addresses, each with one read and one write port. Counting
cycles from the first dispatch (``t = 0``), in cycle ``t`` the matrix unit's reads and READ_HOST's writes use bank
``t % 2`` and WRITE_HOST's reads and the activation unit's writes use the other bank (:func:`slot_a`). So all four
stream at once, each one word a cycle, whatever their addresses; a unit starting on an address of the wrong parity
waits one cycle (READ_WEIGHTS, MATMUL ``FROM_TB`` and the transforms have no slot).

Unit timing, for an instruction dispatched at cycle ``t`` (``n`` its count; ``f`` the first cycle from ``t + 1`` on
in its slot, ``t + 1`` or ``t + 2``):

* READ_HOST / READ_WEIGHTS: one word a cycle at ``f .. f + n - 1`` while ``host_in`` is valid; the next one may
  dispatch in the cycle of the last word.
* WRITE_HOST: UB reads at ``f .. f + n - 1`` while the output queue has room (one a cycle from
  :data:`FULL_RATE_OUT_DEPTH` on), each word pushed :data:`UB_READ_LATENCY` cycles after its read; the next one
  may dispatch in the cycle of the last read; the queue is empty :data:`OUTPUT_DRAIN_CYCLES` after the last read
  when ``host_out`` is always ready.
* LOAD_WEIGHTS of ``w`` words (``rows``, or ``2 * rows`` when WIDE): WB reads at ``t + 1 .. t + w``, each row
  shifted in :data:`WEIGHT_READ_LATENCY` (``L``) cycles after its read, up to ``t + w + L``; a MATMUL on its bank
  may dispatch from ``t + w + L - 2``, the next load from ``t + w + L + 1``.
* MATMUL: issues (UB reads) at ``f .. f + n - 1``; the next MATMUL may dispatch at ``f + n - 1``. A row issued at
  ``e`` is in the accumulators for a read at ``e + matrix_drain_cycles``.
* ACTIVATE: parameter reads at ``t + 1 .. t + PARAM_WORDS``; accumulator reads at ``r .. r + n - 1`` from the first
  ``r >= t +`` :data:`ACTIVATE_PARAM_CYCLES` at which its rows have landed and whose UB write,
  :data:`ACTIVATE_WRITE_LATENCY` later, is in the activation unit's slot; busy until the last UB write.

Performance counters
--------------------
:data:`COUNTER_BITS` bits each, counting from reset until HALT completes, in the order :data:`COUNTERS` (the
accelerator's ports and a board's COUNTERS reply):

* ``cycles``: every cycle;
* ``mac_busy``: cycles in which a vector enters the array (each one is ``rows * cols`` MACs);
* ``stall_cycles``: cycles lost to the host -- a READ waiting for ``host_in`` in its slot, an output word refused by
  ``host_out``, or nothing to do because no instruction has arrived;
* ``active_cycles``: cycles in which the weight loader, the matrix unit (issuing or draining), the activation unit
  or (Winograd builds) the transform unit is busy -- the compute phase, without host transfers.
"""

from .config import SystolicConfig
from .isa import Flag, Opcode
from .numerics import PARAM_WORDS

__all__ = ["COUNTER_BITS", "COUNTERS", "UB_READ_LATENCY", "WEIGHT_READ_LATENCY", "PARAM_READ_LATENCY",
           "ACC_READ_LATENCY", "PE_LATENCY", "ACCUMULATE_LATENCY", "REQUANTIZE_LATENCY", "ACTIVATE_PARAM_CYCLES",
           "ACTIVATE_WRITE_LATENCY", "FULL_RATE_OUT_DEPTH", "OUTPUT_DRAIN_CYCLES", "TRANSFORM_IN_OVERHEAD",
           "TRANSFORM_OUT_OVERHEAD", "slot_a", "matrix_latency", "matrix_drain_cycles", "bank_drain_cycles", "Timeline"]

COUNTER_BITS = 32
"""Width of every performance counter."""

COUNTERS = ("cycles", "mac_busy", "stall_cycles", "active_cycles")
"""The performance counters, in port and report order (see the module docstring)."""

UB_READ_LATENCY = 2
"""A unified-buffer or transform-buffer read presented in cycle ``t`` gives its word, registered, in ``t + 2``."""

WEIGHT_READ_LATENCY = 2
"""A weight-buffer read by the weight loader in cycle ``t`` gives its row on the array's weight input in ``t + 2``:
the block RAM's output, then a register next to the array (the weight buffer's block RAMs sit far from the PEs)."""

PARAM_READ_LATENCY = 2
"""A weight-buffer read by the activation unit's parameter fetch in cycle ``t`` gives its word, registered, in
``t + 2``: the block RAM's output, then a register (the block RAM's clock-to-out and the route on to every column's
parameter registers do not fit one cycle at 100 MHz on the ECP5)."""

ACC_READ_LATENCY = 2
"""An accumulator read (activation unit, output transform) presented in cycle ``t`` gives its word in ``t + 2``."""

PE_LATENCY = 3
"""Cycles from an activation on a PE's input to its partial sum on the PE's output (operands, product, sum)."""

ACCUMULATE_LATENCY = 1
"""A result written to the accumulators in cycle ``w`` is seen by an accumulator read presented from ``w + 1`` (the
read-modify-write reads ahead, from the result's address known in advance)."""

REQUANTIZE_LATENCY = 7
"""Register stages of the requantizer: sum, partial products (operand and product registers of a DSP block),
product, two shift stages, round and saturate."""

ACTIVATE_PARAM_CYCLES = PARAM_WORDS + PARAM_READ_LATENCY + 1 - ACC_READ_LATENCY
"""An ACTIVATE dispatched at ``t`` reads its first accumulator row at ``t + ACTIVATE_PARAM_CYCLES`` at the earliest:
its parameter reads are at ``t + 1 .. t + PARAM_WORDS``, the last word is in the parameter registers from
``t + PARAM_WORDS + PARAM_READ_LATENCY + 1`` on, when a row read :data:`ACC_READ_LATENCY` cycles earlier reaches the
requantizers."""

ACTIVATE_WRITE_LATENCY = ACC_READ_LATENCY + REQUANTIZE_LATENCY
"""Cycles from an activation unit's accumulator read to its UB write of that row."""

FULL_RATE_OUT_DEPTH = 7
"""The smallest output queue with which WRITE_HOST reads one word a cycle when ``host_out`` is always ready: in the
steady state two words are in the queue and two reads in flight, and a read needs room for one more word as seen
the cycle before (that cycle's read included)."""

OUTPUT_DRAIN_CYCLES = 5
"""Cycles from a WRITE_HOST's last UB read until the output queue is empty again (``host_out`` always ready): the
read, the push and the queue's two-cycle latency."""

TRANSFORM_IN_OVERHEAD = 20
"""TRANSFORM_IN of ``n`` tiles holds dispatch for ``16 n`` + this many cycles (UB read, 16-word fill, bank switch,
16 output words)."""

TRANSFORM_OUT_OVERHEAD = 11
"""TRANSFORM_OUT of ``n`` tiles holds dispatch for ``16 n`` + this many cycles (accumulator read, 16-word fill,
bank switch, 4 output words, accumulator write)."""


def slot_a(address: int, t: int) -> bool:
    """Whether the matrix unit's reads and READ_HOST's writes may access UB ``address`` in cycle ``t`` (counted from
    the first dispatch); WRITE_HOST's reads and the activation unit's writes may exactly when this is false."""
    return (address ^ t) & 1 == 0


def matrix_latency(config: SystolicConfig) -> int:
    """Cycles from a vector at the matrix unit's input to its result at the output: the skew, ``rows`` PEs down and
    ``cols`` across (:data:`PE_LATENCY` each, one cycle per further PE), the de-skew."""
    return config.rows + config.cols - 2 + PE_LATENCY


def matrix_drain_cycles(config: SystolicConfig) -> int:
    """Cycles from a MATMUL row's issue (its UB read) until an accumulator read sees its result: the UB read, the
    matrix unit and the accumulators' read-modify-write."""
    return UB_READ_LATENCY + matrix_latency(config) + ACCUMULATE_LATENCY


def bank_drain_cycles(config: SystolicConfig) -> int:
    """Cycles after the last issue with a weight bank before a LOAD_WEIGHTS into that bank may dispatch.

    A row issued at ``e`` is on PE ``(r, c)``'s input in cycle ``e + UB_READ_LATENCY + r + c``, whose closing edge
    samples the weight; a load dispatched at ``t`` first shifts the bank at the edge closing ``t + 1 +
    WEIGHT_READ_LATENCY``, which may be that same edge (the sample takes the old value). The controller's bank counter
    is set at the issue and reaches 0 this many cycles later.
    """
    return max(config.rows + config.cols + UB_READ_LATENCY - 4 - WEIGHT_READ_LATENCY, 0)


def _overlap(lo_a, hi_a, lo_b, hi_b) -> bool:
    return lo_a < hi_b and lo_b < hi_a


class _Unit:
    """What the model keeps of a unit's latest instruction: when the unit frees, when its ranges stop being busy,
    and the ranges themselves (``(lo, hi)`` half-open, ``None`` if it has none in that memory)."""
    __slots__ = ("free", "release", "ub", "wb", "acc", "extra")

    def __init__(self):
        self.free = self.release = 0
        self.ub = self.wb = self.acc = None
        self.extra = {}

    def copy(self):
        unit = _Unit()
        unit.free, unit.release, unit.ub, unit.wb, unit.acc = self.free, self.release, self.ub, self.wb, self.acc
        unit.extra = dict(self.extra)
        return unit

    def hazard(self, memory, span) -> int:
        """The cycle from which this unit's range in ``memory`` no longer conflicts with ``span`` (0 if it never
        did)."""
        mine = getattr(self, memory)
        return self.release if mine is not None and span is not None and _overlap(*span, *mine) else 0


class Timeline:
    """The dispatch cycle of every instruction of a program on the accelerator built for ``config``, for a host that
    is always ready (``host_in`` always valid, ``host_out`` always ready, instructions always queued) and an output
    queue of at least :data:`FULL_RATE_OUT_DEPTH` words: the module docstring's rules, one instruction at a time.

    :meth:`step` dispatches the next instruction and returns its cycle; :meth:`fork` copies the state (without the
    history) so that a scheduler can try an instruction and compare. The history: ``dispatch`` (every dispatch
    cycle), ``busy`` (inclusive intervals in which a compute unit is busy), ``mac_busy``; ``end`` is the HALT's
    dispatch cycle once it has been stepped.
    """

    def __init__(self, config: SystolicConfig, *, history: bool = True):
        self.config = config
        self.drain = matrix_drain_cycles(config)
        self.bank_drain = bank_drain_cycles(config)
        self.t = -1
        self.host_in, self.host_out, self.loader, self.matrix, self.activation = (_Unit() for _ in range(5))
        self.matrix.extra.update(first=0, land=0, bank=None, from_tb=False, bank_free=[0, 0], run=None)
        self.loader.extra.update(bank=None, matmul_ok=0)
        self.activation.extra.update(wrote=0)
        self.host_out.extra.update(idle=0, empty=0)
        self.xf_free = 0
        self.mac_busy = 0
        self.end = None
        self.dispatch, self.busy = ([], []) if history else (None, None)

    def fork(self) -> "Timeline":
        other = Timeline.__new__(Timeline)
        other.__dict__.update(self.__dict__)
        for name in ("host_in", "host_out", "loader", "matrix", "activation"):
            setattr(other, name, getattr(self, name).copy())
        other.matrix.extra["bank_free"] = list(self.matrix.extra["bank_free"])
        other.dispatch = other.busy = None
        return other

    def _all_idle(self) -> int:
        m = self.matrix
        return max(self.host_in.release, self.host_out.extra["idle"], self.loader.free, m.release, m.extra["land"],
                   self.activation.free, self.xf_free)

    def ready(self, ins) -> int:
        """The first cycle at which the interlocks let ``ins`` dispatch, given the instructions before it."""
        op, flags = ins.opcode, ins.flags
        hi, ho, ld, mm, act = self.host_in, self.host_out, self.loader, self.matrix, self.activation
        ub = (ins.ub, ins.ub + ins.count)
        acc = (ins.acc, ins.acc + ins.count)
        from_tb = bool(flags & Flag.FROM_TB)
        if op == Opcode.READ_HOST:
            bounds = [hi.free, ho.hazard("ub", ub), act.hazard("ub", ub),
                      0 if mm.extra["from_tb"] else mm.hazard("ub", ub)]
        elif op == Opcode.READ_WEIGHTS:
            wb = (ins.wb, ins.wb + ins.count)
            bounds = [hi.free, ld.hazard("wb", wb), act.hazard("wb", wb)]
        elif op == Opcode.WRITE_HOST:
            chase = act.ub is not None and act.ub[0] == ub[0] and ub[1] <= act.ub[1]
            bounds = [ho.free, hi.hazard("ub", ub),
                      min(act.hazard("ub", ub), act.extra["wrote"]) if chase else act.hazard("ub", ub)]
        elif op == Opcode.LOAD_WEIGHTS:
            bank = int(flags & Flag.BANK)
            words = self._load_words(ins)
            bounds = [ld.free, mm.extra["bank_free"][bank], mm.release if mm.extra["bank"] == bank else 0,
                      hi.hazard("wb", (ins.wb, ins.wb + words))]
        elif op == Opcode.MATMUL:
            bank = int(flags & Flag.BANK)
            bounds = [mm.free, ld.extra["matmul_ok"] if ld.extra["bank"] == bank else 0, act.hazard("acc", acc)]
            if not from_tb:
                bounds += [hi.hazard("ub", ub), act.hazard("ub", ub)]
        elif op == Opcode.ACTIVATE:
            params = (ins.wb, ins.wb + PARAM_WORDS)
            bounds = [act.free, hi.hazard("wb", params), hi.hazard("ub", ub), ho.hazard("ub", ub),
                      0 if mm.extra["from_tb"] else mm.hazard("ub", ub),
                      0 if self._chases(ins) else mm.free]
        elif op == Opcode.HALT:
            bounds = [self._all_idle(), ho.extra["empty"]]
        else:  # SYNC, TRANSFORM_IN, TRANSFORM_OUT
            bounds = [self._all_idle()]
        return max(bounds + [self.xf_free])

    def _load_words(self, ins) -> int:
        return 2 * self.config.rows if ins.flags & Flag.WIDE else self.config.rows

    def _chases(self, ins) -> bool:
        """Whether an ACTIVATE ``ins`` chases the latest MATMUL run (its rows are the run's first rows)."""
        run, span = self.matrix.extra["run"], self.matrix.acc
        return run is not None and run == ins.acc and ins.acc + ins.count <= span[1]

    def _first(self, t, address, slot) -> int:
        """The first cycle from ``t + 1`` on in which a unit of ``slot`` (``"a"``, ``"b"`` or ``None``) may access
        UB ``address``."""
        if slot is None or slot_a(address, t + 1) == (slot == "a"):
            return t + 1
        return t + 2

    def step(self, ins) -> int:
        """Dispatch ``ins`` at the first cycle its interlocks allow after the previous dispatch; return the cycle."""
        t = max(self.t + 1, self.ready(ins))
        self.t = t
        n, op, flags = ins.count, ins.opcode, ins.flags
        if self.dispatch is not None:
            self.dispatch.append(t)
        if op in (Opcode.READ_HOST, Opcode.READ_WEIGHTS):
            unit = self.host_in
            to_ub = op == Opcode.READ_HOST
            last = self._first(t, ins.ub, "a" if to_ub else None) + n - 1
            unit.free, unit.release = last, last + 1
            unit.ub, unit.wb = ((ins.ub, ins.ub + n), None) if to_ub else (None, (ins.wb, ins.wb + n))
        elif op == Opcode.WRITE_HOST:
            unit = self.host_out
            last = self._first(t, ins.ub, "b") + n - 1
            unit.free, unit.release, unit.ub = last, last + 1, (ins.ub, ins.ub + n)
            unit.extra.update(idle=last + 1 + UB_READ_LATENCY, empty=last + OUTPUT_DRAIN_CYCLES)
        elif op == Opcode.LOAD_WEIGHTS:
            unit, words = self.loader, self._load_words(ins)
            last_shift = t + words + WEIGHT_READ_LATENCY
            unit.free, unit.release, unit.wb = last_shift + 1, t + words + 1, (ins.wb, ins.wb + words)
            unit.extra.update(bank=int(flags & Flag.BANK), matmul_ok=last_shift - 2)
            self._busy(t + 1, last_shift)
        elif op == Opcode.MATMUL:
            unit = self.matrix
            from_tb = bool(flags & Flag.FROM_TB)
            first = self._first(t, ins.ub, None if from_tb else "a")
            last = first + n - 1
            bank = int(flags & Flag.BANK)
            if unit.acc is None or ins.acc != unit.acc[1]:  # the first accumulator row of the current run
                unit.extra["run"] = ins.acc
            unit.free, unit.release = last, last + 1
            unit.ub, unit.acc = (None if from_tb else (ins.ub, ins.ub + n)), (ins.acc, ins.acc + n)
            unit.extra.update(first=first, land=last + self.drain, bank=bank, from_tb=from_tb)
            unit.extra["bank_free"][bank] = last + self.bank_drain + 1
            self.mac_busy += n
            self._busy(t + 1, last + self.drain - 1)
        elif op == Opcode.ACTIVATE:
            unit, m = self.activation, self.matrix.extra
            chases = self._chases(ins)
            land = m["first"] + self.drain - (self.matrix.acc[0] - ins.acc) if chases else m["land"]
            read = max(t + ACTIVATE_PARAM_CYCLES, land)
            if slot_a(ins.ub, read + ACTIVATE_WRITE_LATENCY):  # the first UB write must be in the B slot
                read += 1
            write = read + ACTIVATE_WRITE_LATENCY
            unit.free = unit.release = write + n
            unit.ub, unit.acc, unit.wb = (ins.ub, ins.ub + n), (ins.acc, ins.acc + n), (ins.wb, ins.wb + PARAM_WORDS)
            unit.extra["wrote"] = write + 1
            self._busy(t + 1, write + n - 1)
        elif op in (Opcode.TRANSFORM_IN, Opcode.TRANSFORM_OUT):
            overhead = TRANSFORM_IN_OVERHEAD if op == Opcode.TRANSFORM_IN else TRANSFORM_OUT_OVERHEAD
            self.xf_free = t + 16 * n + overhead
            self._busy(t + 1, self.xf_free - 1)
        elif op == Opcode.HALT:
            self.end = t
        return t

    def _busy(self, first, last):
        if self.busy is not None:
            self.busy.append((first, last))
