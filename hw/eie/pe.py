"""A processing element: activation queue, pointer and sparse-matrix read units, arithmetic unit, activations."""

from amaranth import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from sparq.formats.eie import EieConfig, LoadTarget

from .activation import ActivationRegisters
from .arith import ArithmeticUnit
from .layouts import load_layout
from .link import PELinkSignature
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

    Flow control: the CCU counts, per PE, the activations it has broadcast that the PE has not yet freed (credits),
    and broadcasts only while every PE holds fewer than ``fifo_depth`` -- the cycle model's queue of depth D, whose
    slot stays taken from the broadcast until the PE is done with the activation. The PE reports ``freed``, a
    register, in the cycle after it finishes a column (its last entry issues). So the PE takes every broadcast
    (``ccu.bcast`` is always ready) and no path runs from the PEs' state into the CCU's decision in one cycle. The
    physical queue has one entry more than ``fifo_depth`` (``SyncFIFOBuffered`` refuses a write while its inner
    queue is full, even in the cycle that queue hands an item to its output register), so it is ready whenever the
    count allows. ``freed``, ``busy`` and ``idle`` are registered: they say what happened in the cycle before.

    Ports
    -----
    ccu : In(PELinkSignature(config))
        The link to the CCU (:class:`~.link.PELinkSignature`): broadcasts in, ``freed``, ``busy`` and ``idle``
        out, the running layer, the source-activation read (two cycles: the read, a register) and the write-back of local row
        ``flush_addr`` (accumulator read and cleared, and with ``flush_write`` finished into the destination
        activations: visible to source reads five cycles later; see the blocks).
    load : In(load_layout(n_pe)), load_en : In(1)
        Host write into the PE's memories (``target`` CODEBOOK, PTR, SPMAT, BIAS or ACT), while no layer runs, one
        per cycle. Every PE keeps a copy of the codebooks: :class:`~.top.EIE` writes CODEBOOK words to all of them.
        With ``spram`` an SPMAT write is one halfword: ``addr`` is ``4 * word + h`` and ``data`` holds bits
        ``[16h+15 : 16h]`` of the 64-bit word (:class:`~.top.EIE` splits the host's words).
    """

    def __init__(self, config: EieConfig, init=None, *, spram: bool = False):
        """``init``: ``{"ptr_even", "ptr_odd", "spmat", "bias", "codebooks"}`` word lists for
        ``Memory(init=...)``, or None.
        ``spram``: the sparse-matrix memory in halfwords on one single-port RAM (an iCE40 SPRAM), see
        :class:`~.spmat.SparseMatrixReadUnit`."""
        self.config, self.spram = config, spram
        self._init = init or {}
        super().__init__({
            "ccu": In(PELinkSignature(config)),
            "load": In(load_layout(config.n_pe)),
            "load_en": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        c = self.config
        m.submodules.queue = queue = ActivationQueue(c.fifo_depth + 1)
        m.submodules.pointers = pointers = PointerReadUnit(c.ptr_depth, c.ptr_width, self._init.get("ptr_even", ()),
                                                           self._init.get("ptr_odd", ()))
        m.submodules.spmat = spmat = SparseMatrixReadUnit(c.spmat_depth, c.ptr_width, self._init.get("spmat", ()),
                                                           spram=self.spram)
        m.submodules.arith = arith = ArithmeticUnit(c.act_depth, c.bias_depth, c.max_layers,
                                                    codebooks=self._init.get("codebooks", ()),
                                                    biases=self._init.get("bias", ()))
        m.submodules.activations = acts = ActivationRegisters(c.act_depth)

        link = self.ccu
        m.d.comb += [queue.i.valid.eq(link.bcast.valid), queue.i.payload.eq(link.bcast.payload)]
        wiring.connect(m, queue.o, pointers.column)
        wiring.connect(m, pointers.run, spmat.run)
        wiring.connect(m, spmat.entry, arith.entry)
        m.d.comb += [
            pointers.ptr_base.eq(link.layer.ptr_base),
            spmat.spmat_base.eq(link.layer.spmat_base),
            arith.layer_index.eq(link.layer_index),
        ]

        # freed: the column finished in the cycle before, the CCU's credit back; held: the activations the PE holds,
        # from the broadcast that writes one until the cycle after its column finishes (for idle, which busy keeps
        # low in that cycle). All three link bits are registered: nothing from the PE's state reaches the CCU's
        # logic in the same cycle.
        held, busy = Signal(range(c.fifo_depth + 1)), Signal()
        idle = Signal(init=1)
        m.d.sync += [held.eq(held + link.bcast.valid - link.freed), link.freed.eq(spmat.finished),
                     busy.eq(spmat.busy),
                     idle.eq((held == 0) & ~link.bcast.valid & spmat.idle & ~arith.busy & ~busy)]  # busy: counted
        m.d.comb += [link.busy.eq(busy), link.idle.eq(idle)]

        # Write-back: accumulator and bias read together (by the arithmetic unit), finished into the destination.
        flush_write = Signal(ArithmeticUnit.FLUSH_LATENCY)
        flush_addr = [Signal(range(c.act_depth), name=f"flush_addr{k}") for k in range(ArithmeticUnit.FLUSH_LATENCY)]
        m.d.sync += link.act_data.eq(acts.read_data)  # registered on its way to the CCU
        m.d.sync += [flush_write.eq(Cat(link.flush_en & link.flush_write, flush_write)),
                     flush_addr[0].eq(link.flush_addr)]
        m.d.sync += [flush_addr[k].eq(flush_addr[k - 1]) for k in range(1, len(flush_addr))]
        m.d.comb += [
            arith.flush_addr.eq(link.flush_addr),
            arith.flush_en.eq(link.flush_en),
            arith.bias_addr.eq(link.bias_addr),
            acts.parity.eq(link.parity),
            acts.read_addr.eq(link.act_addr),
            acts.read_en.eq(1),
            acts.result_addr.eq(flush_addr[-1]),
            acts.result_acc.eq(arith.result),
            acts.result_bias.eq(arith.bias),
            acts.result_en.eq(flush_write[-1]),
            acts.w_frac.eq(link.layer.w_frac),
            acts.relu.eq(link.layer.relu),
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
