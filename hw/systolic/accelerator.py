"""The systolic accelerator's top level: instruction queue, controller, memories, matrix unit, accumulators,
activation unit and host output queue."""

from amaranth import Module, Mux
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from formats.systolic import SystolicConfig

from ..common.fifo import StreamFIFO
from .accumulators import Accumulators
from .activation import ActivationUnit
from .controller import Controller
from .layouts import instruction_layout, vector_layout
from .matrix import MatrixUnit

__all__ = ["SystolicAccelerator"]


class SystolicAccelerator(wiring.Component):
    """A TPU-v1-style int8 accelerator that runs ``formats.systolic`` programs; see that module for the instruction
    set and the integer semantics, and :class:`~.controller.Controller` for timing and interlocks.

    Memories (``amaranth.lib.memory.Memory``, sized by ``config``): the unified buffer (``ub_depth`` x ``rows``
    int8; one read port shared by MATMUL and WRITE_HOST, one write port shared by READ_HOST and ACTIVATE), the
    weight buffer (``wb_depth`` x ``cols`` int8; written by READ_WEIGHTS, read by the weight loader and by the
    activation unit's parameter fetch), and the accumulators (:class:`~.accumulators.Accumulators`).

    Ports
    -----
    instr : In(stream.Signature(instruction_layout()))
        Encoded instructions (``formats.systolic.encode``), queued in an ``instr_depth``-entry FIFO.
    host_in : In(stream.Signature(ArrayLayout(signed(8), rows)))
        Data words for READ_HOST and READ_WEIGHTS, in program order.
    host_out : Out(stream.Signature(ArrayLayout(signed(8), rows)))
        WRITE_HOST words, through an ``out_depth``-entry FIFO.
    halted : Out(1)
        High once HALT has completed; the accelerator then takes no more instructions until reset.
    cycles, mac_busy, stall_cycles, active_cycles : Out(32)
        Performance counters (:class:`~.controller.Controller`).
    """

    def __init__(self, config: SystolicConfig):
        self.config = config
        word = vector_layout(config.lanes)
        super().__init__({
            "instr": In(stream.Signature(instruction_layout())),
            "host_in": In(stream.Signature(word)),
            "host_out": Out(stream.Signature(word)),
            "halted": Out(1),
            "cycles": Out(32),
            "mac_busy": Out(32),
            "stall_cycles": Out(32),
            "active_cycles": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        c = self.config
        word = vector_layout(c.lanes)
        m.submodules.instr_queue = instr_queue = StreamFIFO(instruction_layout(), c.instr_depth)
        m.submodules.out_queue = out_queue = StreamFIFO(word, c.out_depth)
        m.submodules.controller = ctl = Controller(c)
        m.submodules.matrix = matrix = MatrixUnit(c.rows, c.cols, c.acc_depth)
        m.submodules.accumulators = accumulators = Accumulators(c.cols, c.acc_depth)
        m.submodules.activation = activation = ActivationUnit(c.cols, c.acc_depth, c.ub_depth, c.wb_depth)
        m.submodules.unified_buffer = unified_buffer = memory.Memory(shape=word, depth=c.ub_depth, init=[])
        m.submodules.weight_buffer = weight_buffer = memory.Memory(shape=word, depth=c.wb_depth, init=[])
        ub_write, ub_read = unified_buffer.write_port(), unified_buffer.read_port()
        wb_write, wb_weights, wb_params = (weight_buffer.write_port(), weight_buffer.read_port(),
                                           weight_buffer.read_port())

        wiring.connect(m, wiring.flipped(self.instr), instr_queue.i)
        wiring.connect(m, instr_queue.o, ctl.instr)
        wiring.connect(m, out_queue.o, wiring.flipped(self.host_out))
        wiring.connect(m, ctl.act_cmd, activation.cmd)
        m.d.comb += [
            # Host side.
            self.host_in.ready.eq(ctl.host_in_ready),
            ctl.host_in_valid.eq(self.host_in.valid),
            out_queue.i.payload.eq(ub_read.data),
            out_queue.i.valid.eq(ctl.out_push),
            ctl.out_level.eq(out_queue.level),
            ctl.out_blocked.eq(out_queue.o.valid & ~self.host_out.ready),
            # Unified buffer: READ_HOST and ACTIVATE never write at the same time (READ_HOST waits for idle).
            ub_write.addr.eq(Mux(activation.ub_en, activation.ub_addr, ctl.ub_write_addr)),
            ub_write.data.eq(Mux(activation.ub_en, activation.ub_data, self.host_in.payload)),
            ub_write.en.eq(activation.ub_en | ctl.ub_write_en),
            ub_read.addr.eq(ctl.ub_read_addr),
            # Weight buffer.
            wb_write.addr.eq(ctl.wb_write_addr),
            wb_write.data.eq(self.host_in.payload),
            wb_write.en.eq(ctl.wb_write_en),
            wb_weights.addr.eq(ctl.wb_read_addr),
            wb_params.addr.eq(activation.wb_addr),
            activation.wb_data.eq(wb_params.data),
            # Matrix unit and accumulators.
            matrix.vector.eq(ub_read.data),
            matrix.issue.eq(ctl.issue),
            matrix.w_in.eq(wb_weights.data),
            matrix.w_shift.eq(ctl.w_shift),
            matrix.w_bank.eq(ctl.w_bank),
            accumulators.write.eq(matrix.result),
            accumulators.read_addr.eq(activation.acc_addr),
            activation.acc_data.eq(accumulators.read_data),
            ctl.act_busy.eq(activation.busy),
            # Counters.
            self.halted.eq(ctl.halted),
            self.cycles.eq(ctl.cycles),
            self.mac_busy.eq(ctl.mac_busy),
            self.stall_cycles.eq(ctl.stall_cycles),
            self.active_cycles.eq(ctl.active_cycles),
        ]
        return m
