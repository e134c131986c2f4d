"""The EIE accelerator's top level: the central control unit and N processing elements."""

from amaranth import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sparq.formats.eie import COUNTER_BITS, COUNTERS, PE_COUNTERS, WORD_BITS, EieConfig, EieImage, LoadTarget

from .ccu import CentralControlUnit
from .layouts import act, load_layout, read_layout
from .pe import ProcessingElement
from .spmat import HALFWORD_BITS

__all__ = ["EIE"]


class EIE(wiring.Component):
    """EIE for ``config`` (:class:`sparq.formats.eie.EieConfig`): runs :class:`sparq.formats.eie.EieImage` networks.

    With ``image``, every memory starts with the image's words (``Memory(init=...)``, for FPGA builds), but for the
    sparse matrices with ``spram``; without it, the host loads them through ``load``. Either way the input vector
    is loaded through ``load`` (target ACT).

    Ports
    -----
    load : In(stream.Signature(load_layout(n_pe)))
        One memory word per transfer (:class:`sparq.formats.eie.LoadTarget`); ready while no run is in progress. A word
        takes one cycle (the PEs write it from a register the cycle after); with ``spram`` an SPMAT word takes four: it is written as four halfwords (low first) from
        the held payload, and ``ready`` stays low for the first three.
    start : In(1), n_layers : In(range(max_layers + 1))
        A cycle with ``start`` high while not ``running`` runs layers ``0 .. n_layers - 1``.
    running : Out(1), done : Out(1)
        ``done`` rises when the run ends and stays high until the next ``start``.
    read : In(stream.Signature(read_layout(n_pe, act_depth)))
        Request the activation at local address ``addr`` of PE ``pe`` (vector index ``addr * N + pe``): the input
        before a run, the network's output after one. Ready while not ``running`` and ``out`` can take it.
    out : Out(stream.Signature(act))
        The requested activations, in order, from a register: ``HOST_READ_LATENCY + 1`` (5) cycles after the
        request; the next request is taken from the cycle the word is on ``out`` (one word per 5 cycles at most).
    cycles, compute_cycles : Out(32); busy_cycles, starve_cycles, stall_cycles : Out(ArrayLayout(32, n_pe))
        Performance counters of the last run (``sparq.formats.eie.COUNTERS`` and ``PE_COUNTERS``, as
        :class:`~.ccu.CentralControlUnit` defines them); ``starve = compute - busy``.
        The per-PE ones only with ``pe_counters`` (the default); a board build that reports only a run's cycles
        saves their logic with ``pe_counters=False``.

    ``spram=True`` keeps each PE's sparse matrix in 16-bit halfwords on one single-port RAM, for the iCE40
    UltraPlus, whose four SB_SPRAM256KA then hold the matrices of four PEs and spare its 30 EBR (see
    :class:`~.spmat.SparseMatrixReadUnit`). Runs take the same cycles either way; only SPMAT loads are slower. SPRAM
    has no initial contents: the host loads the sparse matrices (target SPMAT) before the first run, even when the
    other memories hold an ``image``.
    """

    def __init__(self, config: EieConfig, image: EieImage = None, *, pe_counters: bool = True, spram: bool = False):
        if image is not None:
            image.check_fits(config)
        self.config, self.image, self.pe_counters, self.spram = config, image, pe_counters, spram
        per_pe = data.ArrayLayout(COUNTER_BITS, config.n_pe)
        super().__init__({
            "load": In(stream.Signature(load_layout(config.n_pe))),
            "start": In(1),
            "n_layers": In(range(config.max_layers + 1)),
            "running": Out(1),
            "done": Out(1),
            "read": In(stream.Signature(read_layout(config.n_pe, config.act_depth))),
            "out": Out(stream.Signature(act)),
            **{name: Out(COUNTER_BITS) for name in COUNTERS},
            **({name: Out(per_pe) for name in PE_COUNTERS} if pe_counters else {}),
        })

    def _pe_init(self, k):
        if self.image is None:
            return None
        ptr = self.image.ptr[k].tolist()
        return {"ptr_even": ptr[0::2], "ptr_odd": ptr[1::2], "bias": [int(b) for b in self.image.bias[k]],
                "codebooks": [int(w) for w in self.image.codebooks.ravel()],
                **({} if self.spram else {"spmat": [int(w) for w in self.image.spmat[k]]})}

    def elaborate(self, platform):
        m = Module()
        c, n = self.config, self.config.n_pe
        layers = [entry.pack() for entry in self.image.layers] if self.image is not None else ()
        m.submodules.ccu = ccu = CentralControlUnit(c, layers, pe_counters=self.pe_counters)
        pes = [ProcessingElement(c, self._pe_init(k), spram=self.spram) for k in range(n)]
        for k, pe in enumerate(pes):
            m.submodules[f"pe{k}"] = pe

        # Host loads. ``write``: the PE memories take ``pe_load`` this cycle (every word, and with ``spram`` each
        # halfword of an SPMAT word, written from the payload the stream holds until ``ready``).
        load = self.load.payload
        load_fire, write = Signal(), Signal()
        pe_load = Signal.like(load)
        m.d.comb += [
            write.eq(self.load.valid & ~ccu.running),
            load_fire.eq(self.load.valid & self.load.ready),
            pe_load.eq(load),
            ccu.table_addr.eq(load.addr),
            ccu.table_data.eq(load.data),
            ccu.table_en.eq(load_fire & (load.target == LoadTarget.LAYER)),
        ]

        if self.spram:
            # One serializer for all PEs. ``half`` is 0 except inside an SPMAT word, so halfword ``half`` of ``data``
            # is the low 16 bits every other target uses.
            n_halves = WORD_BITS // HALFWORD_BITS
            half, spmat = Signal(range(n_halves)), Signal()
            halves = data.View(data.ArrayLayout(HALFWORD_BITS, n_halves), load.data[:WORD_BITS])
            m.d.comb += [
                spmat.eq(load.target == LoadTarget.SPMAT),
                self.load.ready.eq(~ccu.running & (~spmat | (half == n_halves - 1))),
                pe_load.data.eq(Cat(halves[half], load.data[HALFWORD_BITS:])),
                pe_load.addr.eq(Mux(spmat, Cat(half, load.addr), load.addr)),
            ]
            with m.If(write & spmat):
                m.d.sync += half.eq(half + 1)
        else:
            m.d.comb += self.load.ready.eq(~ccu.running)

        # Output reads: the CCU's host read of every PE's source activations, between runs; the word read is
        # selected and registered on ``out``. One request at a time.
        latency = CentralControlUnit.HOST_READ_LATENCY
        read_take, read_pe, pending = Signal(), Signal.like(self.read.payload.pe), Signal(latency)
        m.d.comb += [
            self.read.ready.eq(~ccu.running & ~pending.any() & (~self.out.valid | self.out.ready)),
            read_take.eq(self.read.valid & self.read.ready),
            ccu.host_addr.eq(self.read.payload.addr),
        ]
        m.d.sync += pending.eq(Cat(read_take, pending))  # pending[-1]: the word is on the links' act_data
        with m.If(read_take):
            m.d.sync += read_pe.eq(self.read.payload.pe)
        with m.If(pending[-1]):
            m.d.sync += [self.out.valid.eq(1), self.out.payload.eq(Array(link.act_data for link in ccu.pes)[read_pe])]
        with m.Elif(self.out.ready):
            m.d.sync += self.out.valid.eq(0)

        m.d.comb += [
            ccu.start.eq(self.start),
            ccu.n_layers.eq(self.n_layers),
            self.running.eq(ccu.running),
            self.done.eq(ccu.done),
            self.cycles.eq(ccu.cycles),
            self.compute_cycles.eq(ccu.compute_cycles),
        ]
        if self.pe_counters:
            m.d.comb += [self.busy_cycles.eq(ccu.busy_cycles), self.stall_cycles.eq(ccu.stall_cycles)]
            for k in range(n):
                m.d.comb += self.starve_cycles[k].eq(ccu.compute_cycles - ccu.busy_cycles[k])
        # The PEs take their load words from registers: one cycle after the transfer.
        pe_load_q, pe_write = Signal.like(pe_load), Signal(n)
        m.d.sync += pe_load_q.eq(pe_load)
        m.d.sync += [pe_write[k].eq(write & ((load.pe == k) | (load.target == LoadTarget.CODEBOOK))) for k in range(n)]
        for k, pe in enumerate(pes):
            wiring.connect(m, ccu.pes[k], pe.ccu)
            m.d.comb += [pe.load.eq(pe_load_q), pe.load_en.eq(pe_write[k])]
        return m
