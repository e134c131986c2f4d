"""The systolic accelerator's top level: instruction queue, controller, memories, matrix unit, accumulators,
activation unit and host output queue."""

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from sparq.formats.systolic import (
    COUNTER_BITS,
    COUNTERS,
    WEIGHT_READ_LATENCY,
    WINOGRAD_U_BITS,
    WINOGRAD_V_BITS,
    SystolicConfig,
    matrix_drain_cycles,
)

from ..common.fifo import StreamFIFO
from ..common.memory import COLLISION_UNUSED
from .accumulators import Accumulators
from .activation import ActivationUnit
from .buffer import UnifiedBuffer
from .controller import Controller, InstructionDecoder, SkidBuffer, count_bits, decoded_layout
from .layouts import instruction_layout, vector_layout
from .matrix import MatrixUnit
from .winograd import WinogradTransforms

__all__ = ["SystolicAccelerator"]


class SystolicAccelerator(wiring.Component):
    """A TPU-v1-style int8 accelerator that runs ``sparq.formats.systolic`` programs; see that module for the instruction
    set and the integer semantics, and :class:`~.controller.Controller` for timing and interlocks.

    Memories (``amaranth.lib.memory.Memory``, sized by ``config``): the unified buffer (``ub_depth`` x ``rows``
    int8, :class:`~.buffer.UnifiedBuffer`: two banks whose slots give MATMUL and WRITE_HOST a read and READ_HOST
    and ACTIVATE a write every cycle), the weight buffer (``wb_depth`` x ``cols`` int8; written by READ_WEIGHTS,
    read by the weight loader and by the activation unit's parameter fetch), and the accumulators
    (:class:`~.accumulators.Accumulators`). Timing: :mod:`sparq.formats.systolic.timing`.

    Ports
    -----
    instr : In(stream.Signature(instruction_layout()))
        Encoded instructions (``sparq.formats.systolic.encode``), decoded (:class:`~.controller.InstructionDecoder`,
        registered: one cycle) and queued in an ``instr_depth``-entry FIFO (and a
        :class:`~.controller.SkidBuffer` entry after it).
    host_in : In(stream.Signature(ArrayLayout(signed(8), rows)))
        Data words for READ_HOST and READ_WEIGHTS, in program order.
    host_out : Out(stream.Signature(ArrayLayout(signed(8), rows)))
        WRITE_HOST words, through an ``out_depth``-entry FIFO.
    Winograd builds (``config.winograd``) add the transform buffer (``tb_depth`` x ``rows`` lanes of
    ``WINOGRAD_V_BITS`` bits, written by :class:`~.winograd.WinogradTransforms`, read by MATMUL ``FROM_TB``), the
    transform unit (which borrows the UB read port, the accumulators' read port and their write input while it
    runs, with the UB's A slot free of bank restrictions; nothing else runs then), and a matrix unit of
    ``WINOGRAD_V_BITS`` x ``WINOGRAD_U_BITS``-bit operands
    (UB activations and int8 weights are sign-extended; WIDE weight rows are joined from two WB words).

    halted : Out(1)
        High once HALT has completed; the accelerator then takes no more instructions until reset.
    error : Out(1)
        High once the accelerator has stopped on an opcode it does not execute (as HALT: ``halted`` rises with it;
        see :class:`~.controller.Controller`); until reset.
    cycles, mac_busy, stall_cycles, active_cycles : Out(32)
        Performance counters (``sparq.formats.systolic.COUNTERS``, defined in :mod:`sparq.formats.systolic.timing`).
    """

    def __init__(self, config: SystolicConfig):
        self.config = config
        word = vector_layout(config.lanes)
        super().__init__({
            "instr": In(stream.Signature(instruction_layout())),
            "host_in": In(stream.Signature(word)),
            "host_out": Out(stream.Signature(word)),
            "halted": Out(1),
            "error": Out(1),
            **{name: Out(COUNTER_BITS) for name in COUNTERS},
        })

    def elaborate(self, platform):
        m = Module()
        c = self.config
        word = vector_layout(c.lanes)
        m.submodules.decoder = decoder = InstructionDecoder(c, registered=True)
        m.submodules.instr_queue = instr_queue = StreamFIFO(decoded_layout(c), c.instr_depth)
        # The queue's read logic from a register, not from the controller's dispatch decision.
        m.submodules.instr_skid = instr_skid = SkidBuffer(decoded_layout(c))
        m.submodules.out_queue = out_queue = StreamFIFO(word, c.out_depth)
        m.submodules.controller = ctl = Controller(c)
        widths = dict(act_width=WINOGRAD_V_BITS, weight_width=WINOGRAD_U_BITS) if c.winograd else {}
        m.submodules.matrix = matrix = MatrixUnit(c.rows, c.cols, c.acc_depth, lookahead=Accumulators.PREFETCH,
                                                  **widths)
        m.submodules.accumulators = accumulators = Accumulators(c.cols, c.acc_depth)
        m.submodules.activation = activation = ActivationUnit(c.cols, c.acc_depth, c.ub_depth, c.wb_depth,
                                                              max_wait=matrix_drain_cycles(c), count_bits=count_bits(c))
        m.submodules.unified_buffer = unified_buffer = UnifiedBuffer(c.lanes, c.ub_depth)
        # READ_WEIGHTS never writes a WB word in the cycle a LOAD_WEIGHTS or ACTIVATE reads it (interlocks on WB
        # ranges): COLLISION_UNUSED.
        m.submodules.weight_buffer = weight_buffer = memory.Memory(shape=word, depth=c.wb_depth, init=[],
                                                                   attrs=COLLISION_UNUSED)
        wb_write, wb_weights, wb_params = (weight_buffer.write_port(), weight_buffer.read_port(),
                                           weight_buffer.read_port())
        # The weight loader's rows, registered next to the array (WEIGHT_READ_LATENCY: the block RAMs are far away).
        weights = Signal(word)
        assert WEIGHT_READ_LATENCY == 2  # the read port's cycle, then this register
        m.d.sync += weights.eq(wb_weights.data)

        wiring.connect(m, wiring.flipped(self.instr), decoder.i)
        wiring.connect(m, decoder.o, instr_queue.i)
        wiring.connect(m, instr_queue.o, instr_skid.i)
        wiring.connect(m, instr_skid.o, ctl.instr)
        wiring.connect(m, wiring.flipped(self.host_in), ctl.host_in)
        wiring.connect(m, out_queue.o, wiring.flipped(self.host_out))
        wiring.connect(m, ctl.act_cmd, activation.cmd)
        ub = unified_buffer
        m.d.comb += [
            # Host side.
            out_queue.i.payload.eq(ub.b_read_data),
            out_queue.i.valid.eq(ctl.out_push),
            ctl.out_level.eq(out_queue.level),
            ctl.out_blocked.eq(out_queue.o.valid & ~self.host_out.ready),
            ctl.out_taken.eq(out_queue.o.valid & self.host_out.ready),
            # Unified buffer: A slot = MATMUL reads and READ_HOST writes, B slot = WRITE_HOST reads and ACTIVATE
            # writes (the controller and the activation unit keep to their slots).
            ub.phase.eq(ctl.phase),
            activation.phase.eq(ctl.phase),
            ub.b_read_addr.eq(ctl.ub_b_read_addr),
            ub.a_write_addr.eq(ctl.ub_write_addr),
            ub.a_write_data.eq(self.host_in.payload),
            ub.a_write_en.eq(ctl.ub_write_en),
            ub.b_write_addr.eq(activation.ub_addr),
            ub.b_write_data.eq(activation.ub_data),
            ub.b_write_en.eq(activation.ub_en),
            # Weight buffer.
            wb_write.addr.eq(ctl.wb_write_addr),
            wb_write.data.eq(self.host_in.payload),
            wb_write.en.eq(ctl.wb_write_en),
            wb_weights.addr.eq(ctl.wb_read_addr),
            wb_params.addr.eq(activation.wb_addr),
            activation.wb_data.eq(wb_params.data),
            # Matrix unit and accumulators.
            matrix.issue.eq(ctl.issue),
            accumulators.upcoming.eq(matrix.upcoming),
            matrix.w_shift.eq(ctl.w_shift),
            matrix.w_bank.eq(ctl.w_bank),
            activation.acc_data.eq(accumulators.read_data),
            ctl.act_busy.eq(activation.busy),
            ctl.act_wrote.eq(activation.wrote),
            # Status and counters.
            self.halted.eq(ctl.halted),
            self.error.eq(ctl.error),
            *(getattr(self, name).eq(getattr(ctl, name)) for name in COUNTERS),
        ]
        if not c.winograd:
            m.d.comb += [
                matrix.vector.eq(ub.a_read_data),
                matrix.w_in.eq(weights),
                accumulators.write.eq(matrix.result),
                accumulators.read_addr.eq(activation.acc_addr),
                ub.a_read_addr.eq(ctl.ub_a_read_addr),
            ]
            return m

        # Winograd datapath.
        m.submodules.transforms = xf = WinogradTransforms(c)
        tb_word = data.ArrayLayout(xf.tb_write_data.shape().elem_shape, c.lanes)
        m.submodules.transform_buffer = transform_buffer = memory.Memory(shape=tb_word, depth=c.tb_depth, init=[])
        tb_write, tb_read = transform_buffer.write_port(), transform_buffer.read_port()
        tb_data = Signal(tb_word)  # registered, as the UB's read data (UB_READ_LATENCY)
        m.d.sync += tb_data.eq(tb_read.data)
        wiring.connect(m, ctl.xf_cmd, xf.cmd)
        high = Signal(vector_layout(c.cols))  # the high bytes of a WIDE weight row, captured before its low bytes
        with m.If(ctl.w_capture):
            m.d.sync += high.eq(weights)
        m.d.comb += [
            ctl.xf_busy.eq(xf.busy),
            tb_write.addr.eq(xf.tb_write_addr),
            tb_write.data.eq(xf.tb_write_data),
            tb_write.en.eq(xf.tb_write_en),
            tb_read.addr.eq(ctl.tb_read_addr),
            ub.any_bank.eq(xf.ub_read_en),
            ub.a_read_addr.eq(Mux(xf.ub_read_en, xf.ub_read_addr, ctl.ub_a_read_addr)),
            xf.ub_data.eq(ub.a_read_data),
            accumulators.read_addr.eq(Mux(xf.acc_read_en, xf.acc_read_addr, activation.acc_addr)),
            xf.acc_data.eq(accumulators.read_data),
            accumulators.write.eq(Mux(xf.acc_write.valid, xf.acc_write, matrix.result)),
        ]
        for lane in range(c.lanes):
            m.d.comb += matrix.vector[lane].eq(Mux(ctl.vector_from_tb, tb_data[lane], ub.a_read_data[lane]))
        for col in range(c.cols):
            joined = Cat(weights[col].as_unsigned(), high[col])[:WINOGRAD_U_BITS].as_signed()
            m.d.comb += matrix.w_in[col].eq(Mux(ctl.w_wide, joined, weights[col]))
        return m
