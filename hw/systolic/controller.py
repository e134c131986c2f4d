"""The controller: decodes the instruction stream, dispatches to the units in order with interlocks, sequences the
host transfers, weight loads and matrix issues, and keeps the performance counters."""

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sparq.formats.systolic import (
    COUNTER_BITS,
    COUNTERS,
    Opcode,
    SystolicConfig,
    bank_drain_cycles,
    matrix_drain_cycles,
)

from .layouts import COUNT_BITS, activate_command_layout, instruction_layout, issue_layout, vector_layout
from .winograd import transform_command_layout

__all__ = ["Controller"]


def _overlap(lo_a, count_a, lo_b, count_b):
    return (lo_a < lo_b + count_b) & (lo_b < lo_a + count_a)


class Controller(wiring.Component):
    """Executes ``sparq.formats.systolic`` instructions.

    Dispatch is in program order, at most one instruction a cycle. LOAD_WEIGHTS, MATMUL and ACTIVATE go to three
    units that then run concurrently; every other instruction waits until all units are idle and the array has
    drained (READ_HOST, WRITE_HOST and READ_WEIGHTS are then sequenced here). Interlocks, which make the result that
    of sequential execution:

    * LOAD_WEIGHTS into bank ``b`` waits for the weight loader, for MATMUL to stop issuing with ``b`` and for the
      last activation tagged ``b`` to leave the array (``sparq.formats.systolic.bank_drain_cycles``);
    * MATMUL waits for the previous MATMUL's last issue cycle, for a load into its bank to finish, and for a busy
      ACTIVATE whose UB destination or accumulator source overlaps its UB source or accumulator destination;
    * ACTIVATE waits for the activation unit and for every MATMUL to reach the accumulators
      (``sparq.formats.systolic.matrix_drain_cycles``).
    * Winograd builds: TRANSFORM_IN and TRANSFORM_OUT wait for every unit to go idle and go to the transform unit
      (``xf_cmd``); nothing dispatches while it is busy (``xf_busy``). A MATMUL ``FROM_TB`` reads the transform
      buffer (``tb_read_addr``; ``vector_from_tb`` is high with its issues) and is not checked against the UB
      range of an ACTIVATE. A WIDE LOAD_WEIGHTS reads ``2 * rows`` words, last first: each high word is captured
      (``w_capture``, in the cycle its data arrives) and the low word after it shifts the pair in (``w_wide``
      tells the top level to join them).

    Unit timing, for an instruction dispatched at cycle ``t``: LOAD_WEIGHTS reads ``WB`` at ``t+1 .. t+rows``
    (last row first) and shifts at ``t+2 .. t+rows+1`` (WIDE: reads at ``t+1 .. t+2*rows``, shifts every other
    cycle up to ``t+2*rows+1``); MATMUL reads the UB at ``t+1 .. t+count`` and presents
    ``issue`` one cycle after each read; READ_HOST / READ_WEIGHTS take a ``host_in`` word on each cycle from
    ``t+1`` on where one is valid; WRITE_HOST reads the UB on each cycle from ``t+1`` on where the output queue has
    room and pushes the word one cycle later (``out_push``).

    An opcode this build does not execute (not in ``sparq.formats.systolic.Opcode``, or a Winograd one without
    ``config.winograd``) stops the controller as HALT does (it waits for every unit and the output queue, then
    ``halted`` rises) and raises ``error``, which stays high until reset: nothing after it runs.

    Performance counters: ``sparq.formats.systolic.COUNTERS`` (``cycles``, ``mac_busy``, ``stall_cycles``,
    ``active_cycles``), defined in :mod:`sparq.formats.systolic.timing`.

    Ports: see the signature; memory-side ports are addresses and enables, the top level wires the data.
    ``host_in`` is the accelerator's data stream: the controller takes a word (``ready``) when a READ_HOST or
    READ_WEIGHTS needs one and writes it through ``ub_write_*`` / ``wb_write_*``; the top level wires its
    payload to the memories.
    """

    def __init__(self, config: SystolicConfig):
        self.config = c = config
        winograd = {
            "xf_cmd": Out(stream.Signature(transform_command_layout(c))),
            "xf_busy": In(1),
            "tb_read_addr": Out(range(c.tb_depth)),
            "vector_from_tb": Out(1),
            "w_wide": Out(1),
            "w_capture": Out(1),
        } if c.winograd else {}
        super().__init__({**winograd,
            "instr": In(stream.Signature(instruction_layout())),
            "host_in": In(stream.Signature(vector_layout(c.lanes))),
            "out_level": In(range(c.out_depth + 1)),
            "out_blocked": In(1),
            "out_push": Out(1),
            "ub_read_addr": Out(range(c.ub_depth)),
            "ub_write_addr": Out(range(c.ub_depth)),
            "ub_write_en": Out(1),
            "wb_write_addr": Out(range(c.wb_depth)),
            "wb_write_en": Out(1),
            "wb_read_addr": Out(range(c.wb_depth)),
            "w_shift": Out(1),
            "w_bank": Out(1),
            "issue": Out(issue_layout(c.acc_depth)),
            "act_cmd": Out(stream.Signature(activate_command_layout(c.acc_depth, c.ub_depth, c.wb_depth))),
            "act_busy": In(1),
            "halted": Out(1),
            "error": Out(1),
            **{name: Out(COUNTER_BITS) for name in COUNTERS},
        })

    def elaborate(self, platform):
        m = Module()
        c = self.config
        ins = self.instr.payload
        bank = ins.flags.bank
        host_valid = self.host_in.valid

        # Host-transfer unit.
        host_op = Signal(4)
        host_left = Signal(COUNT_BITS)
        host_ub = Signal(range(c.ub_depth))
        host_wb = Signal(range(c.wb_depth))
        out_reading = Signal()  # a WRITE_HOST word is on the UB read port
        reading = (host_left != 0) & ((host_op == Opcode.READ_HOST) | (host_op == Opcode.READ_WEIGHTS))
        writing = (host_left != 0) & (host_op == Opcode.WRITE_HOST)
        host_idle = (host_left == 0) & ~out_reading

        # Weight loader.
        w_left = Signal(range(2 * c.rows + 1))
        w_wide = Signal()
        w_base = Signal(range(c.wb_depth))
        w_bank = Signal()
        w_shift = Signal()
        w_idle = (w_left == 0) & ~w_shift

        # Matrix issue.
        m_left = Signal(COUNT_BITS)
        m_ub = Signal(range(max(c.ub_depth, c.tb_depth) if c.winograd else c.ub_depth))  # UB or TB address
        m_acc = Signal(range(c.acc_depth))
        m_bank = Signal()
        m_accumulate = Signal()
        bank_drain = [Signal(range(bank_drain_cycles(c) + 1), name=f"bank{b}_drain") for b in range(2)]
        m_drain = Signal(range(matrix_drain_cycles(c) + 1))
        issuing = m_left != 0
        drained = ~issuing & (m_drain == 0)

        # The ranges of the ACTIVATE in the activation unit, for the MATMUL interlock.
        act_acc = Signal(range(c.acc_depth))
        act_ub = Signal(range(c.ub_depth))
        act_count = Signal(COUNT_BITS)

        halted, error = Signal(), Signal()
        all_idle = host_idle & w_idle & drained & ~self.act_busy
        xf_idle = ~self.xf_busy if c.winograd else 1
        all_idle = all_idle & xf_idle
        from_tb = ins.flags.from_tb if c.winograd else 0

        ready = Signal()
        unknown = Signal()  # an opcode this build does not execute: it stops the controller with `error`
        with m.Switch(ins.opcode):
            with m.Case(Opcode.READ_HOST, Opcode.WRITE_HOST, Opcode.READ_WEIGHTS, Opcode.SYNC):
                m.d.comb += ready.eq(all_idle)
            with m.Case(Opcode.HALT):
                m.d.comb += ready.eq(all_idle & (self.out_level == 0))
            with m.Case(Opcode.LOAD_WEIGHTS):
                busy_bank = Mux(bank, bank_drain[1], bank_drain[0]) != 0
                m.d.comb += ready.eq(host_idle & w_idle & ~busy_bank & ~(issuing & (m_bank == bank)))
            with m.Case(Opcode.MATMUL):
                loading_bank = (w_left != 0) & (w_bank == bank)
                conflict = self.act_busy & ((_overlap(ins.ub, ins.count, act_ub, act_count) & ~from_tb)
                                            | _overlap(ins.acc, ins.count, act_acc, act_count))
                m.d.comb += ready.eq(host_idle & ((m_left == 0) | (m_left == 1)) & ~loading_bank & ~conflict)
            with m.Case(Opcode.ACTIVATE):
                m.d.comb += ready.eq(host_idle & drained & ~self.act_busy)
            if c.winograd:
                with m.Case(Opcode.TRANSFORM_IN, Opcode.TRANSFORM_OUT):
                    m.d.comb += ready.eq(all_idle)
            with m.Default():
                m.d.comb += [unknown.eq(1), ready.eq(all_idle & (self.out_level == 0))]  # as HALT
        dispatch = self.instr.valid & ready & xf_idle & ~halted
        m.d.comb += self.instr.ready.eq(ready & xf_idle & ~halted)
        if c.winograd:
            op = ins.opcode
            m.d.comb += [
                self.xf_cmd.valid.eq(dispatch & ((op == Opcode.TRANSFORM_IN) | (op == Opcode.TRANSFORM_OUT))),
                self.xf_cmd.payload.output.eq(op == Opcode.TRANSFORM_OUT),
                self.xf_cmd.payload.ub.eq(ins.ub),
                self.xf_cmd.payload.tb.eq(ins.tb),
                self.xf_cmd.payload.acc.eq(ins.acc),
                self.xf_cmd.payload.count.eq(ins.count),
            ]

        m.d.comb += [
            self.act_cmd.valid.eq(dispatch & (ins.opcode == Opcode.ACTIVATE)),
            self.act_cmd.payload.acc.eq(ins.acc),
            self.act_cmd.payload.ub.eq(ins.ub),
            self.act_cmd.payload.wb.eq(ins.wb),
            self.act_cmd.payload.count.eq(ins.count),
            self.act_cmd.payload.relu.eq(ins.flags.relu),
        ]
        # Host transfers. The UB read port is shared with MATMUL, which never runs at the same time.
        m.d.comb += [
            self.host_in.ready.eq(reading),
            self.ub_write_addr.eq(host_ub),
            self.ub_write_en.eq(reading & host_valid & (host_op == Opcode.READ_HOST)),
            self.wb_write_addr.eq(host_wb),
            self.wb_write_en.eq(reading & host_valid & (host_op == Opcode.READ_WEIGHTS)),
            self.ub_read_addr.eq(Mux(writing, host_ub, m_ub)),
            self.out_push.eq(out_reading),
        ]
        with m.If(reading & host_valid):
            m.d.sync += [host_left.eq(host_left - 1), host_ub.eq(host_ub + 1), host_wb.eq(host_wb + 1)]
        room = self.out_level + out_reading < c.out_depth - 1
        m.d.sync += out_reading.eq(writing & room)
        with m.If(writing & room):
            m.d.sync += [host_left.eq(host_left - 1), host_ub.eq(host_ub + 1)]

        # Weight loading: read the tile's rows last to first; shift each one cycle later, as it arrives.
        m.d.comb += [self.wb_read_addr.eq(w_base + w_left - 1), self.w_shift.eq(w_shift), self.w_bank.eq(w_bank)]
        if c.winograd:  # WIDE: the high word of a row comes first (odd address), the low word shifts the pair in
            m.d.comb += self.w_wide.eq(w_wide)
            m.d.sync += [w_shift.eq((w_left != 0) & (~w_wide | w_left[0])),
                         self.w_capture.eq((w_left != 0) & w_wide & ~w_left[0])]
        else:
            m.d.sync += w_shift.eq(w_left != 0)
        with m.If(w_left != 0):
            m.d.sync += w_left.eq(w_left - 1)

        # Matrix issue: one UB read a cycle; the tag is registered to meet the read data.
        m_from_tb = Signal()
        if c.winograd:
            m.d.comb += self.tb_read_addr.eq(m_ub)
            m.d.sync += self.vector_from_tb.eq(m_from_tb)
        m.d.sync += [
            self.issue.valid.eq(issuing),
            self.issue.bank.eq(m_bank),
            self.issue.accumulate.eq(m_accumulate),
            self.issue.addr.eq(m_acc),
        ]
        with m.If(issuing):
            m.d.sync += [m_left.eq(m_left - 1), m_ub.eq(m_ub + 1), m_acc.eq(m_acc + 1),
                         m_drain.eq(matrix_drain_cycles(c))]
        with m.Elif(m_drain != 0):
            m.d.sync += m_drain.eq(m_drain - 1)
        for b, drain in enumerate(bank_drain):
            with m.If(issuing & (m_bank == b)):
                m.d.sync += drain.eq(bank_drain_cycles(c))
            with m.Elif(drain != 0):
                m.d.sync += drain.eq(drain - 1)

        # Dispatch, last so that a unit's new instruction overrides its sequencer's final step.
        op = ins.opcode
        with m.If(dispatch & ((op == Opcode.READ_HOST) | (op == Opcode.WRITE_HOST) | (op == Opcode.READ_WEIGHTS))):
            m.d.sync += [host_op.eq(op), host_left.eq(ins.count), host_ub.eq(ins.ub), host_wb.eq(ins.wb)]
        with m.If(dispatch & ((op == Opcode.HALT) | unknown)):
            m.d.sync += halted.eq(1)
        with m.If(dispatch & unknown):
            m.d.sync += error.eq(1)
        with m.If(dispatch & (op == Opcode.LOAD_WEIGHTS)):
            m.d.sync += [w_left.eq(c.rows), w_base.eq(ins.wb), w_bank.eq(bank)]
            if c.winograd:
                m.d.sync += [w_left.eq(Mux(ins.flags.wide, 2 * c.rows, c.rows)), w_wide.eq(ins.flags.wide)]
        with m.If(dispatch & (op == Opcode.MATMUL)):
            m.d.sync += [m_left.eq(ins.count), m_ub.eq(Mux(from_tb, ins.tb, ins.ub)), m_acc.eq(ins.acc),
                         m_bank.eq(bank), m_accumulate.eq(ins.flags.accumulate), m_from_tb.eq(from_tb)]
        with m.If(dispatch & (op == Opcode.ACTIVATE)):
            m.d.sync += [act_acc.eq(ins.acc), act_ub.eq(ins.ub), act_count.eq(ins.count)]

        # Performance counters.
        host_stall = (reading & ~host_valid) | self.out_blocked | (~self.instr.valid & all_idle)
        m.d.comb += [self.halted.eq(halted), self.error.eq(error)]
        with m.If(~halted):
            m.d.sync += self.cycles.eq(self.cycles + 1)
            with m.If(issuing):
                m.d.sync += self.mac_busy.eq(self.mac_busy + 1)
            with m.If(host_stall):
                m.d.sync += self.stall_cycles.eq(self.stall_cycles + 1)
            with m.If(~(w_idle & drained & ~self.act_busy & xf_idle)):
                m.d.sync += self.active_cycles.eq(self.active_cycles + 1)
        return m
