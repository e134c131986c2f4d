"""A processing element: activation queue, pointer and sparse-matrix read units, arithmetic unit, activations."""

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sparq.formats.eie import EieConfig, LoadTarget

from .activation import ActivationRegisters
from .arith import ArithmeticUnit
from .layouts import act, broadcast_layout, layer_layout, load_layout
from .pointer import PointerReadUnit
from .queue import ActivationQueue
from .spmat import SparseMatrixReadUnit

__all__ = ["ProcessingElement"]


class ProcessingElement(wiring.Component):
    """PE ``k`` of ``config.n_pe``: owns rows ``k, k + N, ...`` of every layer, their accumulators, biases and
    activations, and its slice of the pointers and the sparse matrix.

    Datapath: :class:`~.queue.ActivationQueue` -> :class:`~.pointer.PointerReadUnit` ->
    :class:`~.spmat.SparseMatrixReadUnit` -> :class:`~.arith.ArithmeticUnit` (which keeps the PE's copy of the
    codebooks and its biases); at the end of a layer the CCU flushes the accumulators through
    :class:`~.activation.ActivationRegisters` (bias, rounding, saturation, ReLU).

    Room: the PE counts the activations it holds, from the broadcast that writes one until the cycle it finishes
    the column (its last entry issues), wherever they are (queue, pointer unit or read unit). It reports ``room``
    while it holds fewer than ``fifo_depth`` -- the cycle model's queue of depth D, whose slot stays taken until
    the PE is done with the activation -- and the queue is ready. (``SyncFIFOBuffered`` of depth 2 refuses a
    write in the cycle its one-entry inner queue hands an item to its output register.)

    Ports
    -----
    bcast : In(stream.Signature(broadcast_layout()))
        Written (``valid``) only while ``room``; ``ready`` is the queue's and is always high then.
    room : Out(1)
    layer : In(layer_layout()), layer_index : In(range(max_layers)), parity : In(1)
        The running layer; steady during a layer.
    act_addr, act_en : In; act_data : Out(act)
        Read of the source activations (one cycle latency).
    flush_addr, flush_en, flush_write : In
        Write-back of local row ``flush_addr``: the accumulator is read and cleared, and, with ``flush_write``,
        finished into the destination activations three cycles later (see the blocks).
    load : In(load_layout(n_pe)), load_en : In(1)
        Host write into the PE's memories (``target`` CODEBOOK, PTR, SPMAT, BIAS or ACT), while no layer runs, one
        per cycle. Every PE keeps a copy of the codebooks: :class:`~.top.EIE` writes CODEBOOK words to all of them.
        With ``spram`` an SPMAT write is one halfword: ``addr`` is ``4 * word + h`` and ``data`` holds bits
        ``[16h+15 : 16h]`` of the 64-bit word (:class:`~.top.EIE` splits the host's words).
    busy : Out(1)
        This cycle the PE issues an entry or reads the pointers of an empty column.
    idle : Out(1)
        The PE holds no activation and no entry is in flight.
    """

    def __init__(self, config: EieConfig, init=None, *, spram: bool = False):
        """``init``: ``{"ptr_even", "ptr_odd", "spmat", "bias", "codebooks"}`` word lists for
        ``Memory(init=...)``, or None.
        ``spram``: the sparse-matrix memory in halfwords on one single-port RAM (an iCE40 SPRAM), see
        :class:`~.spmat.SparseMatrixReadUnit`."""
        self.config, self.spram = config, spram
        self._init = init or {}
        super().__init__({
            "bcast": In(stream.Signature(broadcast_layout())),
            "room": Out(1),
            "layer": In(layer_layout()),
            "layer_index": In(range(config.max_layers)),
            "parity": In(1),
            "act_addr": In(range(config.act_depth)),
            "act_en": In(1),
            "act_data": Out(act),
            "flush_addr": In(range(config.act_depth)),
            "flush_en": In(1),
            "flush_write": In(1),
            "load": In(load_layout(config.n_pe)),
            "load_en": In(1),
            "busy": Out(1),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        c = self.config
        m.submodules.queue = queue = ActivationQueue(c.fifo_depth)
        m.submodules.pointers = pointers = PointerReadUnit(c.ptr_depth, c.ptr_width, self._init.get("ptr_even", ()),
                                                           self._init.get("ptr_odd", ()))
        m.submodules.spmat = spmat = SparseMatrixReadUnit(c.spmat_depth, c.ptr_width, self._init.get("spmat", ()),
                                                           spram=self.spram)
        m.submodules.arith = arith = ArithmeticUnit(c.act_depth, c.bias_depth, c.max_layers,
                                                    codebooks=self._init.get("codebooks", ()),
                                                    biases=self._init.get("bias", ()))
        m.submodules.activations = acts = ActivationRegisters(c.act_depth)

        wiring.connect(m, wiring.flipped(self.bcast), queue.i)
        wiring.connect(m, queue.o, pointers.column)
        wiring.connect(m, pointers.run, spmat.run)
        m.d.comb += [
            arith.entry.valid.eq(spmat.entry.valid),
            arith.entry.payload.eq(spmat.entry.payload),
            spmat.entry.ready.eq(1),
            pointers.ptr_base.eq(self.layer.ptr_base),
            spmat.spmat_base.eq(self.layer.spmat_base),
            arith.layer_index.eq(self.layer_index),
        ]

        held = Signal(range(c.fifo_depth + 1))
        m.d.sync += held.eq(held + self.bcast.valid - spmat.finished)
        m.d.comb += [
            self.room.eq((held < c.fifo_depth) & queue.i.ready),
            self.busy.eq(spmat.busy),
            self.idle.eq((held == 0) & spmat.idle & ~arith.busy),
        ]

        # Write-back: accumulator and bias read together (by the arithmetic unit), finished into the destination.
        flush_write_d, flush_addr_d = Signal(), Signal(range(c.act_depth))
        m.d.sync += [flush_write_d.eq(self.flush_en & self.flush_write), flush_addr_d.eq(self.flush_addr)]
        m.d.comb += [
            arith.flush_addr.eq(self.flush_addr),
            arith.flush_en.eq(self.flush_en),
            arith.bias_base.eq(self.layer.bias_base),
            acts.parity.eq(self.parity),
            acts.read_addr.eq(self.act_addr),
            acts.read_en.eq(self.act_en),
            self.act_data.eq(acts.read_data),
            acts.result_addr.eq(flush_addr_d),
            acts.result_acc.eq(arith.result),
            acts.result_bias.eq(arith.bias),
            acts.result_en.eq(flush_write_d),
            acts.w_frac.eq(self.layer.w_frac),
            acts.relu.eq(self.layer.relu),
        ]

        # Host loads.
        load, target = self.load, self.load.target
        m.d.comb += [
            pointers.write_addr.eq(load.addr),
            pointers.write_data.eq(load.data),
            pointers.write_en.eq(self.load_en & (target == LoadTarget.PTR)),
            spmat.write_addr.eq(load.addr),
            spmat.write_data.eq(load.data),
            spmat.write_en.eq(self.load_en & (target == LoadTarget.SPMAT)),
            arith.write_addr.eq(load.addr),
            arith.write_data.eq(load.data),
            arith.write_codebook.eq(self.load_en & (target == LoadTarget.CODEBOOK)),
            arith.write_bias.eq(self.load_en & (target == LoadTarget.BIAS)),
            acts.load_addr.eq(load.addr),
            acts.load_data.eq(load.data),
            acts.load_en.eq(self.load_en & (target == LoadTarget.ACT)),
        ]
        return m
