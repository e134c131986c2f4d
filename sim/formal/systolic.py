"""Properties of the systolic controller (:class:`~sparq.hw.systolic.controller.Controller`): the weight banks and
the accumulators are never used out of program order.

The controller runs behind its :class:`~sparq.hw.systolic.controller.InstructionDecoder` (as in
:class:`~sparq.hw.systolic.accelerator.SystolicAccelerator`, minus the queue between them) against an abstract
accelerator written from the units' documented contracts: :class:`_ControllerPorts` is the one place that reads the
controller's ports. Timing facts of the datapath, taken from the blocks and ``sparq.formats.systolic.timing``:

* a vector on ``issue`` in cycle ``t`` (``issue.valid``) is on PE ``(r, c)``'s input in cycle ``t + r + c``
  (:class:`~sparq.hw.systolic.matrix.MatrixUnit`: row ``r`` skewed by ``r``, one PE per column per cycle), whose
  closing edge samples the weight: the last one at ``t + rows + cols - 2``; a weight shift in cycle ``s`` takes
  effect from ``s + 1``;
* its result is written to the accumulators at ``t + latency`` and seen by an accumulator read presented from
  ``t + latency + ACCUMULATE_LATENCY`` (:class:`~sparq.hw.systolic.accumulators.Accumulators`);
* the activation unit takes an ACTIVATE when ``cmd.ready == ~busy``; taken at ``a`` with ``wait``, it reads the
  accumulator row ``acc + i`` no earlier than ``a + 1 + max(ACTIVATE_PARAM_CYCLES - 1, wait) + i``
  (:class:`~sparq.hw.systolic.activation.ActivationUnit`), and no later than its last UB write (while ``busy``).

An ACTIVATE may dispatch while the MATMULs before it still issue into its rows (it *chases* them, with a ``wait``
that delays its reads): the accumulator property is stated per row, against those reads, not against dispatch.

:class:`UnknownOpcode` states the controller's error contract: an opcode the build does not execute raises the
sticky ``error`` and nothing runs after it.
"""

from amaranth import Cat, Module, Mux, Signal
from amaranth.hdl import Assert, Assume, Cover

from sparq.formats.systolic import ACCUMULATE_LATENCY, ACTIVATE_PARAM_CYCLES, PARAM_WORDS, Opcode, SystolicConfig
from sparq.hw.systolic.controller import Controller, InstructionDecoder
from sparq.hw.systolic.matrix import MatrixUnit

from .prove import Property
from .rules import all_stream_rules, delayed, free_inputs, no_reset, transfer

__all__ = ["controller_config", "WeightBanks", "AccumulatorOrder", "UnknownOpcode"]


def controller_config(size: int = 2, depth: int = 4) -> SystolicConfig:
    """A small configuration: a ``size x size`` array, ``depth``-word UB and accumulators, the smallest WB."""
    return SystolicConfig(rows=size, cols=size, ub_depth=depth, wb_depth=max(size, PARAM_WORDS) + 1,
                          acc_depth=depth, instr_depth=2, out_depth=3)


def matrix_latency(config: SystolicConfig) -> int:
    """:attr:`MatrixUnit.latency` of the configuration's matrix unit, without elaborating it."""
    unit = MatrixUnit(config.rows, config.cols, config.acc_depth)
    unit._MustUse__silence = True  # built only to read its latency
    return unit.latency


class _ControllerPorts:
    """The controller behind its instruction decoder, with a free instruction stream (keeping the stream rules) of
    in-range instructions with ``count <= max_count``, any opcode (unknown ones included); free host input,
    output-queue level and back-pressure; an activation unit that takes a command when idle (``act_cmd.ready ==
    ~act_busy``), is busy from the next cycle for as long as it likes, and never turns busy by itself. No reset
    after the first cycle.

    The controller holds the instruction it took last (its head) until it dispatches it: ``dispatch(op)`` is high
    in the cycle the head, of opcode ``op``, dispatches (the controller then takes the next one, ``instr.ready``).
    """

    def __init__(self, m, config: SystolicConfig, max_count: int):
        self.config = c = config
        m.submodules.decoder = decoder = InstructionDecoder(c)
        m.submodules.controller = self.ctl = ctl = Controller(c)
        m.d.comb += [ctl.instr.valid.eq(decoder.o.valid), ctl.instr.payload.eq(decoder.o.payload),
                     decoder.o.ready.eq(ctl.instr.ready)]
        no_reset(m)
        free_inputs(m, decoder, skip=["o"])
        free_inputs(m, ctl, skip=["instr", "act_cmd.ready"])
        all_stream_rules(m, decoder)
        all_stream_rules(m, ctl, prefix="controller.")
        self.instr, ins = decoder.i, decoder.i.payload
        m.d.comb += ctl.act_cmd.ready.eq(~ctl.act_busy)
        accepted_was = delayed(m, transfer(ctl.act_cmd), "act_cmd_taken_was")
        busy_was = delayed(m, ctl.act_busy, "act_busy_was")
        m.d.comb += [
            Assume(~ctl.act_busy | busy_was | accepted_was, "the activation unit turns busy only for a command"),
            Assume(~accepted_was | ctl.act_busy, "the activation unit is busy after taking a command"),
            Assume(~self.instr.valid | ((ins.count <= max_count) & (ins.acc + ins.count <= c.acc_depth)
                                        & (ins.ub + ins.count <= c.ub_depth)
                                        & (ins.wb + max(c.rows, PARAM_WORDS) <= c.wb_depth)),
                   "instructions in range"),
        ]
        # The head: the instruction taken last, until the controller takes the next one (or none arrives).
        self.head_valid = head_valid = Signal()
        self.head = head = Signal.like(ins, name="head")
        with m.If(transfer(self.instr)):
            m.d.sync += [head_valid.eq(1), head.eq(ins)]
        with m.Elif(self.instr.ready):
            m.d.sync += head_valid.eq(0)
        self.issue = ctl.issue
        # Vectors the dispatched MATMULs have still to issue (issues come in program order).
        self.owed = owed = Signal(range(4 * max_count + 1), name="vectors_owed")
        m.d.sync += owed.eq(owed + Mux(self.dispatch(Opcode.MATMUL), head.count, 0) - self.issue.valid)

    def earlier_vectors(self, m, event, name: str) -> Signal:
        """How many of the vectors still to issue belong to MATMULs dispatched before the last ``event`` (the
        vector issued in the cycle of ``event`` excluded)."""
        earlier = Signal.like(self.owed, name=name)
        with m.If(event):
            m.d.sync += earlier.eq(self.owed - self.issue.valid)
        with m.Elif(self.issue.valid & (earlier != 0)):
            m.d.sync += earlier.eq(earlier - 1)
        return earlier

    @property
    def dispatched(self):
        """High in the cycle the head dispatches."""
        return self.head_valid & self.instr.ready

    def dispatch(self, op: Opcode):
        return self.dispatched & (self.head.opcode == op)

    @property
    def bank(self):
        """The BANK flag of the head instruction."""
        return self.head.flags.bank


def _since(m, event, limit: int, name: str) -> Signal:
    """Cycles since ``event`` was last high: 0 in a cycle where it is high, ``limit`` when it never was or was
    ``limit`` or more cycles ago."""
    since, before = Signal(range(limit + 1), name=name), Signal(range(limit + 1), name=f"{name}_before", init=limit)
    m.d.comb += since.eq(Mux(event, 0, Mux(before == limit, limit, before + 1)))
    m.d.sync += before.eq(since)
    return since


class _ControllerProperty(Property):
    """A BMC property of the controller in :class:`_ControllerPorts`, from reset, to ``depth`` cycles (default 40:
    a LOAD_WEIGHTS, MATMULs on both banks and an ACTIVATE with their drains), instructions of ``count <=
    max_count``; subclasses state it in :meth:`check`."""

    def __init__(self, config: SystolicConfig, *, max_count: int = 3, depth: int = 40):
        self.config, self.max_count, self.mode, self.depth = config, max_count, "bmc", depth

    @property
    def name(self):
        return f"{type(self).__name__}[{self.config.rows}x{self.config.cols}]"

    def elaborate(self, platform):
        m = Module()
        self.check(m, _ControllerPorts(m, self.config, self.max_count))
        return m


class WeightBanks(_ControllerProperty):
    """No MATMUL reads a weight bank before its LOAD_WEIGHTS has finished, and no LOAD_WEIGHTS overwrites a bank
    that vectors in the array still use: BMC from reset to ``depth`` cycles (default 40).

    Guarantees, for each bank ``b``: from the dispatch of a LOAD_WEIGHTS into ``b`` until its ``rows``-th shift
    has taken effect, no vector tagged ``b`` of a MATMUL after it (in program order) is issued (so every later
    MATMUL with ``b`` sees the whole new tile; earlier ones may still issue, on the old tile, guarded below);
    a shift into ``b`` happens only for such a LOAD_WEIGHTS (exactly ``rows`` of them) and no earlier than the
    cycle in which the last PE samples its weight for the last vector tagged ``b`` (``rows + cols - 2`` cycles
    after its issue: the sample still takes the old weight).
    """

    def check(self, m, env):
        ctl, issue, rows = env.ctl, env.issue, self.config.rows
        last_use = self.config.rows + self.config.cols - 2
        for b in range(2):
            pending = Signal(range(rows + 1), name=f"bank{b}_shifts_pending")
            shift = ctl.w_shift & (ctl.w_bank == b)
            with m.If(env.dispatch(Opcode.LOAD_WEIGHTS) & (env.bank == b)):
                m.d.sync += pending.eq(rows)
            with m.Elif(shift & (pending != 0)):
                m.d.sync += pending.eq(pending - 1)
            loads = env.dispatch(Opcode.LOAD_WEIGHTS) & (env.bank == b)
            earlier = env.earlier_vectors(m, loads, f"bank{b}_vectors_before_load")  # may still use the old tile
            since_issue = _since(m, issue.valid & (issue.bank == b), last_use + 1, f"bank{b}_since_issue")
            since_shift = _since(m, shift, 3, f"bank{b}_since_shift")
            m.d.comb += [
                Assert(~(issue.valid & (issue.bank == b)) | (pending == 0) | (earlier != 0),
                       f"bank {b}: a vector of a later MATMUL issued before its LOAD_WEIGHTS finished"),
                Assert(~shift | (pending != 0), f"bank {b}: a weight shift with no LOAD_WEIGHTS left to do"),
                Assert(~shift | (since_issue >= last_use), f"bank {b}: a shift while a vector in the array uses it"),
                Cover(issue.valid & (issue.bank == b) & (since_shift == 1), f"bank {b}: a vector issued in the "
                                                                           "cycle after its load's last shift"),
                Cover(shift & (since_issue == last_use), f"bank {b}: a shift in the cycle the last PE samples the "
                                                         "old weight"),
            ]


class AccumulatorOrder(_ControllerProperty):
    """No accumulator row is read (ACTIVATE) before the last write of an earlier MATMUL to it, and none is
    overwritten by a later MATMUL while the ACTIVATE may still read it: BMC from reset to ``depth`` cycles (default
    40).

    Guarantees, for the ACTIVATE in the activation unit (taken at ``a`` with rows ``acc .. acc + count - 1`` and
    ``wait``): every vector of an earlier MATMUL into row ``acc + i``, issued at ``t`` before or after ``a``, is
    seen by the row's earliest read, ``t + latency + ACCUMULATE_LATENCY <= a + 1 + max(ACTIVATE_PARAM_CYCLES - 1,
    wait) + i``; and while the unit is busy, no vector of a later MATMUL is issued into its rows. A vector's MATMUL
    is told by program order: the wrapper counts the vectors the dispatched MATMULs still have to issue.
    """

    def check(self, m, env):
        ctl, issue, c = env.ctl, env.issue, self.config
        visible = matrix_latency(c) + ACCUMULATE_LATENCY  # after an issue, until a read sees the result
        cmd, taken = ctl.act_cmd.payload, transfer(ctl.act_cmd)
        earliest = ACTIVATE_PARAM_CYCLES - 1
        first_read = 1 + Mux(cmd.wait > earliest, cmd.wait, earliest)  # cycles from the take
        earlier = env.earlier_vectors(m, taken, "act_earlier_vectors")  # of MATMULs before the ACTIVATE
        horizon = 2 ** len(cmd.wait) + ACTIVATE_PARAM_CYCLES + c.acc_depth
        chased, later = [], []
        for x in range(c.acc_depth):
            into = issue.valid & (issue.addr == x)
            # Cycles since the last vector into row x (0 in its cycle, `visible` for long ago or never), and until the
            # ACTIVATE's earliest read of it (0 once passed or when the ACTIVATE does not read it).
            since = _since(m, into, visible, f"row{x}_since_issue")
            read_in = Signal(range(horizon + 1), name=f"row{x}_read_in")
            mine = (x >= cmd.acc) & (x < cmd.acc + cmd.count)
            with m.If(taken):
                m.d.sync += read_in.eq(Mux(mine, first_read + (x - cmd.acc) - 1, 0))
            with m.Elif(read_in != 0):
                m.d.sync += read_in.eq(read_in - 1)
            reading = Signal(name=f"row{x}_read")  # the ACTIVATE in the unit reads row x
            with m.If(taken):
                m.d.sync += reading.eq(mine)
            m.d.comb += [
                Assert(~(taken & mine) | (visible - since <= first_read + (x - cmd.acc)),
                       f"row {x}: an ACTIVATE taken before an earlier vector into it is seen by its first read"),
                Assert(~(into & reading & (earlier != 0)) | (visible <= read_in),
                       f"row {x}: a chased MATMUL's vector lands after the ACTIVATE's earliest read of it"),
                Assert(~(into & reading & (earlier == 0) & ctl.act_busy),
                       f"row {x}: a later MATMUL's vector issued into it while an ACTIVATE reads it"),
            ]
            chased.append(into & reading & (earlier != 0) & (visible == read_in))
            later.append(into & ~reading & ctl.act_busy)
        m.d.comb += [
            Cover(Cat(*chased).any(), "an ACTIVATE chasing a MATMUL: a row's result lands just for its earliest read"),
            Cover(Cat(*later).any(), "a vector issued while an ACTIVATE runs"),
        ]


class UnknownOpcode(_ControllerProperty):
    """An opcode the build does not execute (outside ``Opcode``, or TRANSFORM_IN / TRANSFORM_OUT without
    ``config.winograd``) stops the controller with its sticky ``error``: BMC from reset to ``depth`` cycles.

    Guarantees: ``error`` is high exactly from the cycle after such an instruction dispatches (as a HALT would:
    once every unit is idle), and stays high; no instruction dispatches after it (the one behind it may be taken
    into the head, never run); ``error`` never rises otherwise (every executed opcode leaves it low).
    """

    def check(self, m, env):
        ctl, head = env.ctl, env.head
        executed = [op for op in Opcode if self.config.winograd
                    or op not in (Opcode.TRANSFORM_IN, Opcode.TRANSFORM_OUT)]
        known = Signal()
        m.d.comb += known.eq(Cat(head.opcode == op for op in executed).any())
        seen = Signal()  # an unknown opcode dispatched in an earlier cycle
        with m.If(env.dispatched & ~known):
            m.d.sync += seen.eq(1)
        since_known = _since(m, env.dispatched & known, 8, "since_known")
        m.d.comb += [
            Assert(ctl.error == seen, "error is not 'an unknown opcode was dispatched'"),
            Assert(~seen | ~env.dispatched, "an instruction dispatched after an unknown opcode"),
            Cover(ctl.error & (since_known < 8), "error soon after a known instruction ran"),
        ]
