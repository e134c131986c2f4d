"""The controller: decodes the instruction stream, dispatches to the units in order with interlocks, sequences the
host transfers, weight loads and matrix issues, and keeps the performance counters."""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sparq.formats.systolic import (
    COUNTER_BITS,
    COUNTERS,
    PARAM_WORDS,
    UB_READ_LATENCY,
    WEIGHT_READ_LATENCY,
    Opcode,
    SystolicConfig,
    bank_drain_cycles,
    matrix_drain_cycles,
)

from .layouts import activate_command_layout, instruction_layout, issue_layout, vector_layout
from .winograd import transform_command_layout

__all__ = ["Controller"]


def _address_bits(depth: int) -> int:
    return max(1, (depth - 1).bit_length())


def _overlap(lo_a, hi_a, lo_b, hi_b):
    return (lo_a < hi_b) & (lo_b < hi_a)


KINDS = ("read_host", "read_weights", "write_host", "load", "matmul", "activate", "sync", "halt", "transform", "bad")
"""The opcode classes of a decoded instruction, one bit each (``bad``: an opcode this build does not execute)."""


def count_bits(config: SystolicConfig) -> int:
    """Width of a decoded count: it holds the deepest memory's depth, the largest count of a program whose ranges
    stay within its memories (a larger count saturates, as the range ends do)."""
    depths = [config.ub_depth, config.wb_depth, config.acc_depth] + ([config.tb_depth] if config.winograd else [])
    return max(depths).bit_length()


RELATIONS = ("ub_hi", "wb_hi", "ub_ho", "ub_mm", "ub_act", "acc_act", "wb_act", "wb_ld", "write_chase", "act_chase",
             "extends")
"""An instruction's range relations to the latest earlier instruction of each unit (:class:`InstructionDecoder`):
``ub_hi`` its UB range overlaps the latest READ's if that was a READ_HOST, ``wb_hi`` its WB range the latest READ's
if that was a READ_WEIGHTS, ``ub_ho`` the latest WRITE_HOST's, ``ub_mm`` the latest MATMUL's if that read the UB,
``ub_act``, ``acc_act`` and ``wb_act`` the latest ACTIVATE's (its parameter words in the WB), ``wb_ld`` the latest
LOAD_WEIGHTS's; ``write_chase`` its UB range starts where the latest ACTIVATE's does and ends within it;
``act_chase`` its accumulator range starts at the latest MATMUL run's first row and ends within the run;
``extends`` it starts at the row after the latest MATMUL's last."""


def decoded_layout(config: SystolicConfig) -> data.StructLayout:
    """An instruction as the controller takes it (:class:`InstructionDecoder`): its opcode class (:data:`KINDS`),
    flags, count (:func:`count_bits`), its UB, WB and accumulator start addresses, the end of its WB range (one bit
    wider, saturated: a range past its memory ends at the all-ones address), the TB address in Winograd builds, and
    its range relations (``rel``, :data:`RELATIONS`)."""
    c = config
    ub_bits, wb_bits, acc_bits = (_address_bits(d) for d in (c.ub_depth, c.wb_depth, c.acc_depth))
    return data.StructLayout({
        **{kind: 1 for kind in KINDS},
        "transform_out": 1, "bank": 1, "accumulate": 1, "relu": 1, "from_tb": 1, "wide": 1,
        "count": count_bits(c), "ub": ub_bits, "wb": wb_bits, "wb_end": wb_bits + 1, "acc": acc_bits,
        "tb": range(c.tb_depth) if c.winograd else 1, "rel": data.StructLayout({name: 1 for name in RELATIONS}),
    })


class InstructionDecoder(wiring.Component):
    """Decodes encoded instructions (``sparq.formats.systolic.encode``) into :func:`decoded_layout`, in front of the
    instruction queue, so that the queue holds compact entries and the controller's dispatch logic starts from
    registers: ``o`` is ``i`` with the payload decoded, with no latency (``i.ready == o.ready``) or, ``registered``,
    through a register stage between the decoding and the relations' compares (one cycle; ``i.ready`` when the
    stage is empty or ``o`` takes its instruction).

    The range ends are ``start + length`` (LOAD_WEIGHTS: ``rows`` or ``2 * rows`` WB words, ACTIVATE:
    ``PARAM_WORDS`` WB words; otherwise ``count``), saturated; READ's ``src`` is the host's business and is dropped.

    The decoder sees the program in order, as the controller dispatches it, so the latest earlier instruction of
    each unit is the one that unit holds (or last held) when this instruction is the next to dispatch: the range
    relations (:data:`RELATIONS`) are taken here, against the ranges of each unit's latest instruction (empty from
    reset), which advance with each transfer on ``o``. No compare is left on the controller's dispatch path.
    """

    def __init__(self, config: SystolicConfig, *, registered: bool = False):
        self.config, self.registered = config, registered
        super().__init__({"i": In(stream.Signature(instruction_layout())),
                          "o": Out(stream.Signature(decoded_layout(config)))})

    def elaborate(self, platform):
        m = Module()
        c = self.config
        ins = self.i.payload
        op = ins.opcode
        is_ = {name: op == code for name, code in (
            ("read_host", Opcode.READ_HOST), ("read_weights", Opcode.READ_WEIGHTS), ("write_host", Opcode.WRITE_HOST),
            ("load", Opcode.LOAD_WEIGHTS), ("matmul", Opcode.MATMUL), ("activate", Opcode.ACTIVATE),
            ("sync", Opcode.SYNC), ("halt", Opcode.HALT))}
        transform = (op == Opcode.TRANSFORM_IN) | (op == Opcode.TRANSFORM_OUT)
        known = Cat(*is_.values()).any() | (transform if c.winograd else 0)
        bits = count_bits(c)
        layout = decoded_layout(c)
        # The decoded instruction without its relations, and the ends of its UB and accumulator ranges.
        front = Signal(data.StructLayout({"decoded": layout, "ub_end": _address_bits(c.ub_depth) + 1,
                                          "acc_end": _address_bits(c.acc_depth) + 1}))
        decoded = front.decoded
        m.d.comb += [getattr(decoded, name).eq(value) for name, value in is_.items()]
        m.d.comb += [
            decoded.transform.eq(transform if c.winograd else 0),
            decoded.transform_out.eq(op == Opcode.TRANSFORM_OUT),
            decoded.bad.eq(~known),
            decoded.bank.eq(ins.flags.bank),
            decoded.accumulate.eq(ins.flags.accumulate),
            decoded.relu.eq(ins.flags.relu),
            decoded.from_tb.eq(ins.flags.from_tb if c.winograd else 0),
            decoded.wide.eq(ins.flags.wide if c.winograd else 0),
            decoded.count.eq(Mux(ins.count[bits:] != 0, Const(-1, bits), ins.count[:bits])),
        ]
        if c.winograd:
            m.d.comb += decoded.tb.eq(ins.tb)
        words = Mux(decoded.wide, 2 * c.rows, c.rows)
        wb_length = Mux(is_["load"], words, Mux(is_["activate"], PARAM_WORDS, ins.count))
        for name, start, length, end in (("ub", ins.ub, ins.count, front.ub_end),
                                         ("wb", ins.wb, wb_length, decoded.wb_end),
                                         ("acc", ins.acc, ins.count, front.acc_end)):
            width = len(getattr(decoded, name))
            saturate = (start[width:] != 0) | (length[width:] != 0)
            m.d.comb += [getattr(decoded, name).eq(start[:width]),
                         end.eq(Mux(saturate, Const(-1, len(end)), start[:width] + length[:width]))]

        if self.registered:
            stage, full = Signal.like(front, name="stage"), Signal(name="stage_full")
            m.d.comb += [self.i.ready.eq(~full | self.o.ready), self.o.valid.eq(full)]
            with m.If(self.i.ready):
                m.d.sync += [stage.eq(front), full.eq(self.i.valid)]
        else:
            stage = front
            m.d.comb += [self.o.valid.eq(self.i.valid), self.i.ready.eq(self.o.ready)]
        out = stage.decoded
        m.d.comb += self.o.payload.eq(out)

        # The latest earlier instruction's ranges, per unit: (unit, memory) -> (start, end), empty (0, 0) if none or
        # (the host input's, the matrix unit's) if that instruction did not touch the memory.
        span = {"ub": (out.ub, stage.ub_end), "wb": (out.wb, out.wb_end), "acc": (out.acc, stage.acc_end)}
        ranges = {(unit, memory): (Signal(len(span[memory][0]), name=f"{unit}_{memory}_lo"),
                                   Signal(len(span[memory][1]), name=f"{unit}_{memory}_hi"))
                  for unit, memory in (("hi", "ub"), ("hi", "wb"), ("ho", "ub"), ("mm", "ub"), ("act", "ub"),
                                       ("act", "acc"), ("act", "wb"), ("ld", "wb"))}
        acc_bits = len(out.acc)
        run_lo = Signal(acc_bits)  # the first accumulator row of the latest MATMUL run
        ma_hi = Signal(acc_bits + 1)  # the end of the latest MATMUL's accumulator rows
        rel = self.o.payload.rel
        for name, (unit, memory) in (("ub_hi", ("hi", "ub")), ("wb_hi", ("hi", "wb")), ("ub_ho", ("ho", "ub")),
                                     ("ub_mm", ("mm", "ub")), ("ub_act", ("act", "ub")), ("acc_act", ("act", "acc")),
                                     ("wb_act", ("act", "wb")), ("wb_ld", ("ld", "wb"))):
            m.d.comb += getattr(rel, name).eq(_overlap(*span[memory], *ranges[unit, memory]))
        (ub, ub_end), (acc, acc_end) = span["ub"], span["acc"]
        a_lo, a_hi = ranges["act", "ub"]
        m.d.comb += [rel.write_chase.eq((ub == a_lo) & (ub_end <= a_hi)),
                     rel.act_chase.eq((acc == run_lo) & (acc_end <= ma_hi)),
                     rel.extends.eq(acc == ma_hi)]

        empty = (0, 0)
        updates = {"read_host": {("hi", "ub"): span["ub"], ("hi", "wb"): empty},
                   "read_weights": {("hi", "ub"): empty, ("hi", "wb"): span["wb"]},
                   "write_host": {("ho", "ub"): span["ub"]},
                   "load": {("ld", "wb"): span["wb"]},
                   "activate": {("act", memory): span[memory] for memory in ("ub", "acc", "wb")}}
        taken = self.o.valid & self.o.ready
        for kind, changes in updates.items():
            with m.If(taken & getattr(out, kind)):
                m.d.sync += [part.eq(value) for key, new in changes.items() for part, value in zip(ranges[key], new)]
        with m.If(taken & out.matmul):
            mm_lo, mm_hi = ranges["mm", "ub"]
            m.d.sync += [mm_lo.eq(Mux(out.from_tb, 0, ub)), mm_hi.eq(Mux(out.from_tb, 0, ub_end)),
                         ma_hi.eq(acc_end)]
            with m.If(~rel.extends):
                m.d.sync += run_lo.eq(acc)
        return m


class SkidBuffer(wiring.Component):
    """A one-entry stream buffer whose ``i.ready`` is a register: high exactly when the buffer is empty, so that the
    producer's read logic does not wait for the consumer's decision (between the instruction queue and the
    controller, whose ``instr.ready`` is its dispatch decision). ``o`` presents the buffered item if there is one,
    else ``i``'s (no latency); an item ``i`` presents that ``o`` does not take in that cycle is buffered."""

    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        full, item = Signal(name="full"), Signal.like(self.i.payload, name="item")
        m.d.comb += [self.i.ready.eq(~full), self.o.valid.eq(full | self.i.valid),
                     self.o.payload.eq(Mux(full, item, self.i.payload))]
        with m.If(~full):
            m.d.sync += item.eq(self.i.payload)
        m.d.sync += full.eq(self.o.valid & ~self.o.ready)
        return m


class Controller(wiring.Component):
    """Executes ``sparq.formats.systolic`` instructions with the timing of :mod:`sparq.formats.systolic.timing`,
    whose :class:`~sparq.formats.systolic.timing.Timeline` is the cycle-exact model of this block (with the units it
    drives): dispatch in program order, at most one instruction a cycle, to the host input (READ_HOST,
    READ_WEIGHTS), host output (WRITE_HOST), weight loader (LOAD_WEIGHTS), matrix issue (MATMUL), activation unit
    (ACTIVATE, ``act_cmd``) and, in Winograd builds, the transform unit (``xf_cmd``), with interlocks on the UB, WB
    and accumulator ranges each busy unit still touches.

    Front end: ``instr`` carries decoded instructions (:class:`InstructionDecoder`, in front of the instruction
    queue: the opcode class, a count as wide as the deepest memory, the range relations to each unit's latest
    instruction), from registers (the queue's output register or a :class:`SkidBuffer` after it) into the head
    register ``d``. The dispatch decision depends on registers alone (plus ``host_in.valid`` for back-to-back
    READs), the units' free and idle flags among them, registered from their next values: no memory output, adder,
    counter compare or address compare is on the dispatch path.

    Unified buffer slots (``phase``, counted from the first dispatch): MATMUL reads and READ_HOST writes use the A
    slot (``ub_a_*``, address parity = ``phase``), WRITE_HOST reads and the activation unit's writes the B slot
    (``ub_b_read_addr``; the activation unit writes by itself). A unit waits for a cycle of its slot to start.

    Unit timing, for an instruction dispatched at cycle ``t``: READ_HOST / READ_WEIGHTS take a ``host_in`` word in
    each cycle from ``t+1`` on where one is valid (READ_HOST: in its slot); WRITE_HOST reads the UB in each cycle
    from ``t+1`` on in its slot where the output queue had room in the cycle before (its level, the reads in flight
    and that cycle's read, one word short of full) and pushes the word ``UB_READ_LATENCY`` cycles later
    (``out_push``); LOAD_WEIGHTS reads ``WB`` at ``t+1 .. t+rows`` (last row first, from an address register) and
    shifts each row in ``WEIGHT_READ_LATENCY`` cycles after its read, when the top level has it registered (WIDE:
    reads at ``t+1 .. t+2*rows``, the high word of a row first, captured with ``w_capture``, the low word shifting
    the pair in with ``w_wide``); MATMUL reads the UB (or, ``FROM_TB``,
    the TB) in each cycle from ``t+1`` on in its slot and presents ``issue`` (with ``vector_from_tb``)
    ``UB_READ_LATENCY`` cycles after each read, when the top level has the word registered.

    An opcode this build does not execute (not in ``sparq.formats.systolic.Opcode``, or a Winograd one without
    ``config.winograd``) stops the controller as HALT does (it waits for every unit and the output queue, then
    ``halted`` rises) and raises ``error``, which stays high until reset: nothing after it runs.

    Performance counters: ``sparq.formats.systolic.COUNTERS`` (``cycles``, ``mac_busy``, ``stall_cycles``,
    ``active_cycles``), defined in :mod:`sparq.formats.systolic.timing`.

    Ports: see the signature; memory-side ports are addresses and enables, the top level wires the data.
    ``out_level``, ``out_blocked`` and ``out_taken`` describe the output queue: its level, a word refused by the host
    and a word taken by the host (``out_push`` pushes one).
    ``host_in`` is the accelerator's data stream: the controller takes a word (``ready``) when a READ_HOST or
    READ_WEIGHTS needs one and writes it through ``ub_write_*`` / ``wb_write_*``; the top level wires its
    payload to the memories.
    """

    def __init__(self, config: SystolicConfig):
        self.config = c = config
        self.drain = matrix_drain_cycles(c)
        winograd = {
            "xf_cmd": Out(stream.Signature(transform_command_layout(c))),
            "xf_busy": In(1),
            "tb_read_addr": Out(range(c.tb_depth)),
            "vector_from_tb": Out(1),
            "w_wide": Out(1),
            "w_capture": Out(1),
        } if c.winograd else {}
        super().__init__({**winograd,
            "instr": In(stream.Signature(decoded_layout(c))),
            "host_in": In(stream.Signature(vector_layout(c.lanes))),
            "out_level": In(range(c.out_depth + 1)),
            "out_blocked": In(1),
            "out_taken": In(1),
            "out_push": Out(1),
            "phase": Out(1),
            "ub_a_read_addr": Out(range(c.ub_depth)),
            "ub_b_read_addr": Out(range(c.ub_depth)),
            "ub_write_addr": Out(range(c.ub_depth)),
            "ub_write_en": Out(1),
            "wb_write_addr": Out(range(c.wb_depth)),
            "wb_write_en": Out(1),
            "wb_read_addr": Out(range(c.wb_depth)),
            "w_shift": Out(1),
            "w_bank": Out(1),
            "issue": Out(issue_layout(c.acc_depth)),
            "act_cmd": Out(stream.Signature(activate_command_layout(c.acc_depth, c.ub_depth, c.wb_depth,
                                                                    self.drain, count_bits(c)))),
            "act_busy": In(1),
            "act_wrote": In(1),
            "halted": Out(1),
            "error": Out(1),
            **{name: Out(COUNTER_BITS) for name in COUNTERS},
        })

    def elaborate(self, platform):
        m = Module()
        c = self.config
        drain, bank_drain_init = self.drain, bank_drain_cycles(c)
        halted, error = Signal(), Signal()
        host_valid = self.host_in.valid
        layout = decoded_layout(c)
        cw = count_bits(c)
        d = Signal(layout)  # the head instruction, the next to dispatch
        d_valid = Signal()
        nxt = self.instr.payload  # the one behind it (the queue's output register)
        ub_bits, wb_bits, acc_bits = len(d.ub), len(d.wb), len(d.acc)
        dispatch = Signal()

        # Bank slot phase: 0 until the first dispatch, then alternating.
        started = Signal()
        phase = self.phase

        def counter(name, width):
            """A count of words or rows still to do, with registered ``== 0`` and ``== 1`` flags (so that no wide
            compare is on the dispatch path): returns ``(value, zero, one, step, load)``; ``step`` counts one down
            (the flags from the value's own compares), ``load(count, count_is_one)`` restarts it (overriding)."""
            value = Signal(width, name=name)
            zero, one = Signal(name=f"{name}_zero", init=1), Signal(name=f"{name}_one")

            def step(m, enable):
                with m.If(enable):
                    m.d.sync += [value.eq(value - 1), zero.eq(one), one.eq(value == 2)]

            def load(m, enable, count, count_is_one):
                with m.If(enable):
                    m.d.sync += [value.eq(count), zero.eq(count == 0), one.eq(count_is_one)]
            return value, zero, one, step, load

        # Host input unit: READ_HOST (to the UB, A slot) and READ_WEIGHTS (to the WB).
        hi_left, hi_zero, hi_one, hi_step, hi_load = counter("hi_left", cw)
        hi_addr = Signal(max(ub_bits, wb_bits))
        hi_to_ub = Signal()
        hi_slot = ~hi_to_ub | (hi_addr[0] == phase)
        hi_take = ~hi_zero & host_valid & hi_slot
        hi_busy = ~hi_zero
        hi_last = Signal()  # hi_one & hi_slot, registered (below)
        hi_free = hi_zero | (hi_last & host_valid)

        # Host output unit: WRITE_HOST (UB, B slot) into the output queue.
        ho_left, ho_zero, ho_one, ho_step, ho_load = counter("ho_left", cw)
        ho_addr = Signal(ub_bits)
        ho_inflight = [Signal(name=f"ho_inflight{k}") for k in range(1, UB_READ_LATENCY + 1)]  # reads k cycles ago
        # Room for one more read, registered so that no queue level or adder is on the dispatch path: last
        # cycle's level, reads in flight and read bound this cycle's (a word the host took since counts next cycle).
        room = Signal(init=1)
        ho_read = ~ho_zero & (ho_addr[0] != phase) & room
        room_next = self.out_level + sum(ho_inflight) + ho_read < c.out_depth - 1
        m.d.sync += room.eq(room_next)
        ho_busy = ~ho_zero
        ho_free = Signal(init=1)  # ho_zero | (ho_one & ho_read), registered (below)
        # The output queue is empty (HALT waits for it), registered: next cycle's level is 0.
        out_empty = Signal(init=1)
        m.d.sync += out_empty.eq(~self.out_push & ((self.out_level == 0) | ((self.out_level == 1) & self.out_taken)))

        # Weight loader.
        w_left = Signal(range(2 * c.rows + 1))
        w_addr = Signal(wb_bits)
        w_wide, w_bank = Signal(), Signal()
        # [k]: a row was read k + 1 cycles ago (it shifts in when k + 1 == WEIGHT_READ_LATENCY), and the WIDE high
        # words likewise (captured then).
        w_shifts = [Signal(name=f"w_shift{k}") for k in range(1, WEIGHT_READ_LATENCY + 1)]
        w_captures = [Signal(name=f"w_capture{k}") for k in range(1, WEIGHT_READ_LATENCY + 1)]
        # w_left == 0; w_left > 3 - WEIGHT_READ_LATENCY (a MATMUL on the bank waits: its first vector would meet a
        # PE before the last shift).
        w_zero, w_many = Signal(init=1), Signal()
        w_busy = ~w_zero
        w_idle = Signal(init=1)  # w_zero & ~any(w_shifts), registered (below)

        # Matrix issue.
        m_left, m_zero, m_one, m_step, m_load = counter("m_left", cw)
        m_addr = Signal(max(ub_bits, len(d.tb)) if c.winograd else ub_bits)  # UB or TB address
        m_acc = Signal(acc_bits)
        m_bank, m_accumulate, m_from_tb = Signal(), Signal(), Signal()
        run_lo = Signal(acc_bits)  # the first accumulator row of the latest run
        ma_lo = Signal(acc_bits)  # the latest MATMUL's first accumulator row
        m_lead = Signal(range(drain + 2))  # cycles until the latest MATMUL's first row has landed
        m_drain = Signal(range(drain + 1))  # cycles until every issued row has landed
        bank_drain = [Signal(range(bank_drain_init + 1), name=f"bank{b}_drain") for b in range(2)]
        m_issue = ~m_zero & (m_from_tb | (m_addr[0] == phase))
        m_busy = ~m_zero
        m_free = Signal(init=1)  # m_zero | (m_one & m_issue), registered (below)
        # bank_drain[b] != 0 | (m_busy & m_bank == b), registered (below): a LOAD_WEIGHTS into bank b waits.
        bank_busy = [Signal(name=f"bank{b}_busy") for b in range(2)]
        drained = m_zero & (m_drain == 0)

        act_busy = self.act_busy

        xf_idle = ~self.xf_busy if c.winograd else 1
        # ~hi_busy & ho_idle & w_idle & the matrix unit drained (every issued row landed), registered (below).
        units_idle = Signal(init=1)
        all_idle = units_idle & ~act_busy & xf_idle

        # The head instruction's range relations to each unit's latest instruction (the decoder's): a relation to
        # a unit counts while the unit is busy.
        rel = d.rel

        # Interlocks of the head instruction, per unit: a unit's load enables (`goes`) depend on its own conditions
        # only (the opcode classes are one-hot), not on the whole dispatch decision.
        write_chase = rel.write_chase & self.act_wrote
        busy_bank = Mux(d.bank, bank_busy[1], bank_busy[0])
        loading_bank = w_many & (w_bank == d.bank)
        ub_hi, wb_hi = hi_busy & rel.ub_hi, hi_busy & rel.wb_hi
        ub_ho, ub_mm = ho_busy & rel.ub_ho, m_busy & rel.ub_mm
        ub_act, acc_act, wb_act = act_busy & rel.ub_act, act_busy & rel.acc_act, act_busy & rel.wb_act
        wb_ld = w_busy & rel.wb_ld
        ready = {
            "read_host": hi_free & ~ub_ho & ~ub_mm & ~ub_act,
            "read_weights": hi_free & ~wb_ld & ~wb_act,
            "write_host": ho_free & ~ub_hi & (~ub_act | write_chase),
            "load": w_idle & ~busy_bank & ~wb_hi,
            "matmul": m_free & ~loading_bank & ~acc_act & (d.from_tb | (~ub_hi & ~ub_act)),
            "activate": ~act_busy & ~wb_hi & ~ub_hi & ~ub_ho & ~ub_mm & (rel.act_chase | m_free),
            "sync": all_idle,
            "transform": all_idle,
            "halt": all_idle & out_empty,
            "bad": all_idle & out_empty,
        }
        # The head's opcode class while it may dispatch (d_valid & d.<kind> & ~halted), registered.
        head_kind = Signal(data.StructLayout({kind: 1 for kind in KINDS}))
        goes = {kind: getattr(head_kind, kind) & unit_ready & xf_idle for kind, unit_ready in ready.items()}
        m.d.comb += dispatch.eq(Cat(*goes.values()).any())

        # The registered dispatch conditions above, each from this cycle's state and dispatch (so that no counter
        # compare or slot test is on the dispatch path). A busy unit's slot test holds while it steps (its address
        # and the phase both advance) and flips while it waits (the phase alone advances).
        count_is_one = d.count == 1
        count_is_zero = d.count == 0
        to_host_in = goes["read_host"] | goes["read_weights"]
        hi_zero_next = Mux(to_host_in, count_is_zero, Mux(hi_take, hi_one, hi_zero))
        m.d.sync += hi_last.eq(Mux(to_host_in, count_is_one & (~d.read_host | (d.ub[0] != phase)),
                                   Mux(hi_take, hi_left == 2, hi_one & (~hi_to_ub | (hi_addr[0] != phase)))))
        ho_zero_next = Mux(goes["write_host"], count_is_zero, Mux(ho_read, ho_one, ho_zero))
        m.d.sync += ho_free.eq(Mux(goes["write_host"], count_is_zero | (count_is_one & (d.ub[0] == phase) & room_next),
                                   Mux(ho_read, ho_one | ((ho_left == 2) & room_next),
                                       ho_zero | (ho_one & (ho_addr[0] == phase) & room_next))))
        w_idle_next = ~goes["load"] & w_zero & ~Cat(*w_shifts[:-1]).any()  # a busy loader shifts the next cycle
        m.d.sync += w_idle.eq(w_idle_next)
        m_zero_next = Mux(goes["matmul"], count_is_zero, Mux(m_issue, m_one, m_zero))
        m.d.sync += m_free.eq(Mux(goes["matmul"], count_is_zero | (count_is_one & (d.from_tb | (d.ub[0] != phase))),
                                  m_zero | m_one | (m_issue & (m_left == 2))))
        m_bank_next = Mux(goes["matmul"], d.bank, m_bank)
        for b, counter_b in enumerate(bank_drain):
            draining = (counter_b > 1) | ((m_issue & (m_bank == b)) if bank_drain_init else 0)
            m.d.sync += bank_busy[b].eq(draining | (~m_zero_next & (m_bank_next == b)))
        ho_idle_next = ho_zero_next & ~ho_read & ~Cat(*ho_inflight[:-1]).any()
        drained_next = m_zero_next & ~m_issue & (m_drain <= 1)
        m.d.sync += units_idle.eq(hi_zero_next & ho_idle_next & w_idle_next & drained_next)

        advance = ~d_valid | dispatch
        m.d.comb += self.instr.ready.eq(advance)
        halting = halted | goes["halt"] | goes["bad"]
        with m.If(advance):
            m.d.sync += [d.eq(nxt), d_valid.eq(self.instr.valid)]
            m.d.sync += [getattr(head_kind, kind).eq(self.instr.valid & getattr(nxt, kind) & ~halting)
                         for kind in KINDS]

        with m.If(dispatch | started):
            m.d.sync += [started.eq(1), phase.eq(~phase)]

        if c.winograd:
            m.d.comb += [
                self.xf_cmd.valid.eq(goes["transform"]),
                self.xf_cmd.payload.output.eq(d.transform_out),
                self.xf_cmd.payload.ub.eq(d.ub),
                self.xf_cmd.payload.tb.eq(d.tb),
                self.xf_cmd.payload.acc.eq(d.acc),
                self.xf_cmd.payload.count.eq(d.count),
            ]
        # The activation unit may read from `wait` cycles after the cycle after dispatch: the chased MATMUL's first
        # row has landed then, or (no chase, every MATMUL issued) the last issued row.
        wait_drain = Mux(m_issue, drain - 1, Mux(m_drain != 0, m_drain - 1, 0))
        # Chasing a run, row 0 may be read `offset` cycles before the latest MATMUL's first row has landed.
        offset = Signal(acc_bits)
        m.d.comb += offset.eq(ma_lo - run_lo)
        wait_chase = Mux(m_lead > offset, m_lead - 1 - offset, 0)
        m.d.comb += [
            self.act_cmd.valid.eq(goes["activate"]),
            self.act_cmd.payload.acc.eq(d.acc),
            self.act_cmd.payload.ub.eq(d.ub),
            self.act_cmd.payload.wb.eq(d.wb),
            self.act_cmd.payload.count.eq(d.count),
            self.act_cmd.payload.relu.eq(d.relu),
            self.act_cmd.payload.wait.eq(Mux(rel.act_chase, wait_chase, wait_drain)),
        ]

        # Host input.
        m.d.comb += [
            self.host_in.ready.eq(~hi_zero & hi_slot),
            self.ub_write_addr.eq(hi_addr),
            self.ub_write_en.eq(hi_take & hi_to_ub),
            self.wb_write_addr.eq(hi_addr),
            self.wb_write_en.eq(hi_take & ~hi_to_ub),
        ]
        hi_step(m, hi_take)
        with m.If(hi_take):
            m.d.sync += hi_addr.eq(hi_addr + 1)

        # Host output.
        m.d.sync += [ho_inflight[0].eq(ho_read)] + [ho_inflight[k].eq(ho_inflight[k - 1])
                                                     for k in range(1, len(ho_inflight))]
        m.d.comb += [self.ub_b_read_addr.eq(ho_addr), self.out_push.eq(ho_inflight[-1])]
        ho_step(m, ho_read)
        with m.If(ho_read):
            m.d.sync += ho_addr.eq(ho_addr + 1)

        # Weight loading: read the tile's rows last to first; shift each one in WEIGHT_READ_LATENCY cycles later, as
        # it arrives on the array's weight input.
        m.d.comb += [self.wb_read_addr.eq(w_addr), self.w_shift.eq(w_shifts[-1]), self.w_bank.eq(w_bank)]
        if c.winograd:  # WIDE: the high word of a row comes first (odd address), the low word shifts the pair in
            m.d.comb += [self.w_wide.eq(w_wide), self.w_capture.eq(w_captures[-1])]
            m.d.sync += [w_shifts[0].eq(w_busy & (~w_wide | w_left[0])),
                         w_captures[0].eq(w_busy & w_wide & ~w_left[0])]
            m.d.sync += [w_captures[k].eq(w_captures[k - 1]) for k in range(1, len(w_captures))]
        else:
            m.d.sync += w_shifts[0].eq(w_busy)
        m.d.sync += [w_shifts[k].eq(w_shifts[k - 1]) for k in range(1, len(w_shifts))]
        with m.If(w_busy):
            m.d.sync += [w_left.eq(w_left - 1), w_addr.eq(w_addr - 1), w_zero.eq(w_left == 1),
                         w_many.eq(w_left > 4 - WEIGHT_READ_LATENCY)]

        # Matrix issue: one UB read a cycle in its slot; the tag is delayed to meet the registered read data.
        tag = Signal(issue_layout(c.acc_depth))
        from_tb = m_issue & m_from_tb
        m.d.comb += [tag.valid.eq(m_issue), tag.bank.eq(m_bank), tag.accumulate.eq(m_accumulate), tag.addr.eq(m_acc),
                     self.ub_a_read_addr.eq(m_addr)]
        for stage in range(UB_READ_LATENCY):
            delayed, delayed_tb = Signal.like(tag, name=f"tag{stage}"), Signal(name=f"from_tb{stage}")
            m.d.sync += [delayed.eq(tag), delayed_tb.eq(from_tb)]
            tag, from_tb = delayed, delayed_tb
        m.d.comb += self.issue.eq(tag)
        if c.winograd:
            m.d.comb += [self.tb_read_addr.eq(m_addr), self.vector_from_tb.eq(from_tb)]
        m_step(m, m_issue)
        with m.If(m_issue):
            m.d.sync += [m_addr.eq(m_addr + 1), m_acc.eq(m_acc + 1), m_drain.eq(drain - 1)]
        with m.Elif(m_drain != 0):
            m.d.sync += m_drain.eq(m_drain - 1)
        with m.If(m_lead != 0):
            m.d.sync += m_lead.eq(m_lead - 1)
        for b, counter_b in enumerate(bank_drain):
            with m.If(m_issue & (m_bank == b)):
                m.d.sync += counter_b.eq(bank_drain_init)
            with m.Elif(counter_b != 0):
                m.d.sync += counter_b.eq(counter_b - 1)

        # Dispatch, last so that a unit's new instruction overrides its sequencer's final step.
        hi_load(m, to_host_in, d.count, count_is_one)
        with m.If(to_host_in):
            m.d.sync += [hi_to_ub.eq(d.read_host), hi_addr.eq(Mux(d.read_host, d.ub, d.wb))]
        ho_load(m, goes["write_host"], d.count, count_is_one)
        with m.If(goes["write_host"]):
            m.d.sync += ho_addr.eq(d.ub)
        with m.If(goes["halt"] | goes["bad"]):
            m.d.sync += halted.eq(1)
        with m.If(goes["bad"]):
            m.d.sync += error.eq(1)
        with m.If(goes["load"]):
            words = Mux(d.wide, 2 * c.rows, c.rows)
            m.d.sync += [w_left.eq(words), w_addr.eq(d.wb_end - 1), w_bank.eq(d.bank), w_wide.eq(d.wide),
                         w_zero.eq(0), w_many.eq(words > 3 - WEIGHT_READ_LATENCY)]
        m_load(m, goes["matmul"], d.count, count_is_one)
        with m.If(goes["matmul"]):
            # The first issue is the next cycle if its address is in the A slot then (phase flips), else the one
            # after. It extends the run if its rows continue the latest MATMUL's.
            late = ~d.from_tb & (d.ub[0] == phase)
            m.d.sync += [m_addr.eq(Mux(d.from_tb, d.tb, d.ub)), m_acc.eq(d.acc), m_bank.eq(d.bank),
                         m_accumulate.eq(d.accumulate), m_from_tb.eq(d.from_tb), ma_lo.eq(d.acc),
                         m_lead.eq(drain + late)]
            with m.If(~rel.extends):
                m.d.sync += run_lo.eq(d.acc)

        # Performance counters.
        host_stall = (~hi_zero & hi_slot & ~host_valid) | self.out_blocked | (~d_valid & all_idle)
        m.d.comb += [self.halted.eq(halted), self.error.eq(error)]
        with m.If(~halted):
            m.d.sync += self.cycles.eq(self.cycles + 1)
            with m.If(m_issue):
                m.d.sync += self.mac_busy.eq(self.mac_busy + 1)
            with m.If(host_stall):
                m.d.sync += self.stall_cycles.eq(self.stall_cycles + 1)
            with m.If(~(w_idle & drained & ~act_busy & xf_idle)):
                m.d.sync += self.active_cycles.eq(self.active_cycles + 1)
        return m
