"""Properties of the systolic controller (:class:`~sparq.hw.systolic.controller.Controller`): the weight banks and
the accumulators are never used out of program order.

The controller runs against an abstract accelerator written from the units' documented contracts:
:class:`_ControllerPorts` is the one place that reads the controller's ports. Timing facts of the datapath, taken
from the blocks:

* a vector issued in cycle ``t`` (``issue.valid``) uses the weight of PE ``(r, c)`` in cycle ``t + r + c``
  (:class:`~sparq.hw.systolic.matrix.MatrixUnit`: row ``r`` skewed by ``r``, one PE per column per cycle), the last
  one at ``t + latency - 1``; a weight shift in cycle ``s`` takes effect from ``s + 1``;
* its result reaches the accumulators at ``t + latency`` and is in their memory from ``t + latency + 2``
  (:class:`~sparq.hw.systolic.accumulators.Accumulators`: a read cycle, then the write);
* the activation unit takes an ACTIVATE when ``cmd.ready == ~busy`` and reads the accumulators no earlier than the
  cycle after (:class:`~sparq.hw.systolic.activation.ActivationUnit` reads them from ``t + 8``; the property
  asks only for ``t + 1``).

Unknown opcodes: the controller's error status is being added on another branch; the property that an unknown
opcode raises it is to be written against that port.
"""

from amaranth import Module, Mux, Signal
from amaranth.hdl import Assert, Assume, Cover

from sparq.formats.systolic import PARAM_WORDS, Flag, Opcode, SystolicConfig
from sparq.hw.systolic.controller import Controller
from sparq.hw.systolic.matrix import MatrixUnit

from .prove import Property
from .rules import all_stream_rules, delayed, free_inputs, no_reset, transfer

__all__ = ["controller_config", "WeightBanks", "AccumulatorOrder"]

ACC_WRITE_CYCLES = 2
"""Cycles from a result entering :class:`~sparq.hw.systolic.accumulators.Accumulators` until it is in memory."""


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
    """The controller with a free instruction stream (keeping the stream rules) of in-range instructions with
    ``count <= max_count``, any opcode (unknown ones included); free host input, output-queue level and
    back-pressure; an activation unit that takes a command when idle (``act_cmd.ready == ~act_busy``), is busy from
    the next cycle for as long as it likes, and never turns busy by itself. No reset after the first cycle.

    ``dispatch(op)`` is high in the cycle an instruction with opcode ``op`` is taken.
    """

    def __init__(self, m, config: SystolicConfig, max_count: int):
        self.config = c = config
        m.submodules.controller = self.ctl = ctl = Controller(c)
        no_reset(m)
        free_inputs(m, ctl, skip=["act_cmd.ready"])
        all_stream_rules(m, ctl)
        ins = ctl.instr.payload
        m.d.comb += ctl.act_cmd.ready.eq(~ctl.act_busy)
        accepted_was = delayed(m, transfer(ctl.act_cmd), "act_cmd_taken_was")
        busy_was = delayed(m, ctl.act_busy, "act_busy_was")
        m.d.comb += [
            Assume(~ctl.act_busy | busy_was | accepted_was, "the activation unit turns busy only for a command"),
            Assume(~accepted_was | ctl.act_busy, "the activation unit is busy after taking a command"),
            Assume(~ctl.instr.valid | ((ins.count <= max_count) & (ins.acc + ins.count <= c.acc_depth)
                                       & (ins.ub + ins.count <= c.ub_depth)
                                       & (ins.wb + max(c.rows, PARAM_WORDS) <= c.wb_depth)),
                   "instructions in range"),
        ]
        self.instr, self.issue = ctl.instr, ctl.issue

    def dispatch(self, op: Opcode):
        return transfer(self.instr) & (self.instr.payload.opcode == op)

    @property
    def bank(self):
        """The BANK flag of the instruction on ``instr``."""
        return (self.instr.payload.flags & Flag.BANK).any()


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
    has taken effect, no vector tagged ``b`` is issued (so every later MATMUL with ``b`` sees the whole new tile);
    a shift into ``b`` happens only for such a LOAD_WEIGHTS (exactly ``rows`` of them) and at least
    ``latency - 1`` cycles after the last vector tagged ``b`` was issued (its last PE has used the old weight).
    """

    def check(self, m, env):
        ctl, issue, rows = env.ctl, env.issue, self.config.rows
        last_use = matrix_latency(self.config) - 1
        for b in range(2):
            pending = Signal(range(rows + 1), name=f"bank{b}_shifts_pending")
            shift = ctl.w_shift & (ctl.w_bank == b)
            with m.If(env.dispatch(Opcode.LOAD_WEIGHTS) & (env.bank == b)):
                m.d.sync += pending.eq(rows)
            with m.Elif(shift & (pending != 0)):
                m.d.sync += pending.eq(pending - 1)
            since_issue = _since(m, issue.valid & (issue.bank == b), last_use, f"bank{b}_since_issue")
            since_shift = _since(m, shift, 3, f"bank{b}_since_shift")
            m.d.comb += [
                Assert(~(issue.valid & (issue.bank == b)) | (pending == 0),
                       f"bank {b}: a vector issued before its LOAD_WEIGHTS finished"),
                Assert(~shift | (pending != 0), f"bank {b}: a weight shift with no LOAD_WEIGHTS left to do"),
                Assert(~shift | (since_issue >= last_use), f"bank {b}: a shift while a vector in the array uses it"),
                Cover(issue.valid & (issue.bank == b) & (since_shift == 2), f"bank {b}: a vector issued two cycles "
                                                                           "after its load's last shift"),
            ]


class AccumulatorOrder(_ControllerProperty):
    """No accumulator is read (ACTIVATE) before its last write, and none is overwritten while an ACTIVATE still
    reads it: BMC from reset to ``depth`` cycles (default 40).

    Guarantees: an ACTIVATE is dispatched only when every vector issued before it is in the accumulators by the
    next cycle (at least ``latency + 1`` cycles after the last issue: its first read, in the cycle after
    dispatch at the earliest, sees every earlier MATMUL's result); while the activation unit is busy with an
    ACTIVATE, no vector is issued for an accumulator in that ACTIVATE's range.
    """

    def check(self, m, env):
        ctl, issue = env.ctl, env.issue
        in_memory = matrix_latency(self.config) + ACC_WRITE_CYCLES  # after an issue, until the result is stored
        since_issue = _since(m, issue.valid, in_memory + 1, "since_issue")
        # The accumulators of the ACTIVATE in the activation unit.
        first, count = Signal.like(ctl.act_cmd.payload.acc), Signal.like(ctl.act_cmd.payload.count)
        with m.If(transfer(ctl.act_cmd)):
            m.d.sync += [first.eq(ctl.act_cmd.payload.acc), count.eq(ctl.act_cmd.payload.count)]
        m.d.comb += [
            Assert(~env.dispatch(Opcode.ACTIVATE) | (since_issue + 1 >= in_memory),
                   "an ACTIVATE dispatched before an earlier MATMUL's result is in the accumulators"),
            Assert(~(issue.valid & ctl.act_busy & (issue.addr >= first) & (issue.addr < first + count)),
                   "a vector issued into the accumulators an ACTIVATE is reading"),
            Cover(env.dispatch(Opcode.ACTIVATE) & (since_issue == in_memory),
                  "an ACTIVATE dispatched one cycle after the last result is stored (the controller's margin)"),
            Cover(issue.valid & ctl.act_busy, "a vector issued while an ACTIVATE runs"),
        ]
