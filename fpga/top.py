"""Board tops: an accelerator with its model image in block RAM, a UART host interface and two LEDs.

:class:`SystolicHost` and :class:`EieHost` are the whole design of a systolic and an EIE board, each a component with
four ports (``rx``, ``tx``, ``busy``, ``done``) that simulates as it is; :class:`BoardTop` puts any such host core on
an ``amaranth-boards`` platform (UART pins, LEDs, the board clock, the UART divisor from the clock frequency).

Host protocol (:mod:`sparq.formats.uart`), as the systolic board top defines it:

* a host word (one unified-buffer word, ``lanes`` int8 lanes, lane 0 in the low byte) spans ``parts`` 32-bit
  protocol words, ``parts = ceil(lanes / 4)`` rounded up to a power of two; part ``j`` of host word ``i`` is at
  protocol address ``i * parts + j`` (:func:`sparq.fpga.driver.to_protocol_words` packs, :func:`sparq.fpga.driver.systolic_job`
  runs a whole inference);
* space :data:`~sparq.formats.uart.SPACE_INPUT`: the run-time input words of the program (write);
* space :data:`~sparq.formats.uart.SPACE_OUTPUT`: the output words of the last run (read);
* space :data:`~sparq.formats.uart.SPACE_IMAGE`: the weight image (write; baked in at build time, replaceable by any
  image of the same program, e.g. retrained weights);
* START resets the accelerator and runs the baked program once on the current input; ``busy`` until it halts, then
  ``done`` (and the done LED) until the next START;
* COUNTERS: ``sparq.formats.systolic.COUNTERS`` (``cycles``, ``mac_busy``, ``stall_cycles``, ``active_cycles``) of
  the last run (defined in :mod:`sparq.formats.systolic.timing`);
* STATUS bit ``error``: the accelerator stopped on an instruction it does not execute (``done`` rises with it; the
  outputs are not valid), until the next START; :func:`sparq.formats.uart.wait_done`, and so every driver
  sequence that waits for a run, raises :class:`sparq.formats.uart.DeviceError` on it.

and as the EIE board top defines it (``N`` PEs; vector element ``i`` lives in PE ``i % N`` at local address
``i // N``, as everywhere in :mod:`sparq.hw.eie`; :func:`sparq.fpga.driver.eie_job` runs a whole inference):

* space :data:`~sparq.formats.uart.SPACE_INPUT` (write): word ``i`` is input activation ``i``, Q8.8 int16 in the low
  16 bits (the high 16 are ignored); it goes straight into the EIE's activation memory (load target ACT);
* READ, any space: word ``i`` is activation ``i`` of the EIE's current vector, sign-extended to 32 bits: the final
  layer's output after a run (space :data:`~sparq.formats.uart.SPACE_OUTPUT` by convention), the input as written
  before one; there is no output buffer, the EIE's activation memories hold both;
* space :data:`~sparq.formats.uart.SPACE_IMAGE` (write): the baked image (every memory initialised from it) can be
  patched or replaced by an image of the same layer count that fits the same configuration: each EIE load-port word
  (:func:`sparq.formats.eie.load_fields`: target, pe, addr, data, least significant first) travels as four protocol
  words, low part first, and is written when its last part (address ``% 4 == 3``) arrives; only the address's low two
  bits count, so a host can send every chunk at address 0 (:func:`sparq.fpga.driver.eie_load`);
* START runs all layers of the image on the current input (a START during a run is ignored); ``busy`` until it ends,
  then ``done`` until the next START. A WRITE during a run waits for its end (the host's next bytes are lost meanwhile:
  status bit ``overrun``), a READ likewise; a host polls STATUS until done first;
* COUNTERS: ``sparq.formats.eie.COUNTERS`` (``cycles``, ``compute_cycles``) of the last run, then, with the EIE's
  per-PE counters (``EieHost(..., pe_counters=True)``, the EIE's default), ``sparq.formats.eie.PE_COUNTERS``
  (``busy_cycles``, ``starve_cycles``, ``stall_cycles``) of PE 0 .. N - 1, in that order (``2 + 3 * N`` counters;
  :class:`sparq.hw.eie.EIE`).
"""

from amaranth import Cat, Const, Elaboratable, Module, Mux, ResetInserter, Signal
from amaranth.lib import data, io, memory, wiring
from amaranth.lib.wiring import In, Out

from sparq.formats import uart as protocol
from sparq.formats.eie import ACT_BITS, EieConfig, EieImage, LoadTarget
from sparq.formats.eie import COUNTERS as EIE_COUNTERS
from sparq.formats.eie import PE_COUNTERS as EIE_PE_COUNTERS
from sparq.formats.systolic import COUNTERS as SYSTOLIC_COUNTERS
from sparq.formats.systolic import INSTRUCTION_BITS, Opcode, SystolicProgram, words_to_ints
from sparq.hw.common.fifo import StreamFIFO
from sparq.hw.eie import EIE
from sparq.hw.eie.layouts import load_layout
from sparq.hw.systolic.accelerator import SystolicAccelerator
from sparq.hw.systolic.layouts import COUNT_BITS, instruction_layout
from sparq.hw.uart.bridge import HostBridge

from .driver import DEFAULT_BAUD, EIE_IMAGE_PARTS, protocol_parts

__all__ = ["SystolicHost", "EieHost", "BoardTop"]

SEGMENT_QUEUE_DEPTH = 4


class _HostCore(wiring.Component):
    """What every host core shares: the four ports and a :class:`sparq.hw.uart.bridge.HostBridge` (``self.bridge``) with
    ``n_counters`` counters. A subclass drives the bridge's ``write``, ``read``, ``read_data`` and uses its ``start``,
    then calls :meth:`_connect_bridge`."""

    def __init__(self, *, divisor: int, n_counters: int, timeout: int):
        self.bridge = HostBridge(divisor=divisor, n_counters=n_counters, timeout=timeout)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "busy": Out(1), "done": Out(1)})

    def _connect_bridge(self, m, *, busy, done, counters, error=0):
        """Add the bridge to ``m`` on the UART lines, with ``busy`` and ``done`` on the ports (the LEDs) and in
        STATUS, ``error`` (the accelerator's error flag, if it has one) in STATUS, and ``counters``
        (``n_counters`` values) in COUNTERS, in that order."""
        m.submodules.bridge = bridge = self.bridge
        m.d.comb += [bridge.rx.eq(self.rx), self.tx.eq(bridge.tx), self.busy.eq(busy), self.done.eq(done),
                     bridge.busy.eq(busy), bridge.done.eq(done), bridge.error.eq(error)]
        m.d.comb += [bridge.counters[k].eq(value) for k, value in enumerate(counters)]


class SystolicHost(_HostCore):
    """A :class:`sparq.hw.systolic.accelerator.SystolicAccelerator` running a baked program, driven over a UART.

    The program's instructions live in a ROM and its weight image in a RAM initialised from the program; a START
    streams the instructions into the accelerator and, for every READ_WEIGHTS / READ_HOST it issues, feeds that many
    words from the image RAM / the input RAM to ``host_in``, from word ``src`` (the format's rule: each READ copies
    words ``src .. src + count`` of its source). ``host_out`` words land in the output RAM. See the module docstring
    for the host's view.

    Parameters
    ----------
    program : sparq.formats.systolic.SystolicProgram
        Program and weight image; the accelerator is built with ``program.config``.
    divisor : int
        UART clock cycles per bit.
    timeout : int
        Host-silence timeout of the bridge, in cycles.

    Ports
    -----
    rx : In(1), tx : Out(1)
        UART lines.
    busy, done : Out(1)
        A run is in progress / the last run has finished (until the next START).

    Throughput: the feeder presents one ``host_in`` word per cycle while the accelerator takes them (the RAM output
    register is the stream register), and instructions issue at one per cycle; a run's cycle count is therefore the
    accelerator's own (``cycles`` counter), with no host stalls beyond the accelerator's.
    """

    def __init__(self, program: SystolicProgram, *, divisor: int, timeout: int = 1 << 22):
        self.program = program
        self.config = program.config
        super().__init__(divisor=divisor, n_counters=len(SYSTOLIC_COUNTERS), timeout=timeout)

    def elaborate(self, platform):
        m = Module()
        program, config = self.program, self.config
        host_bits = 8 * config.lanes
        parts = protocol_parts(config.lanes)
        part_bits = parts.bit_length() - 1
        word_bits = 32 * parts if parts > 1 else host_bits  # RAM word: whole 32-bit parts, written part by part

        bridge = self.bridge
        restart = bridge.start
        running = Signal()
        with m.If(restart):
            m.d.sync += running.eq(1)

        accelerator = SystolicAccelerator(config)
        m.submodules.accelerator = ResetInserter(restart)(accelerator)
        segments = StreamFIFO(data.StructLayout({"image": 1, "count": COUNT_BITS, "src": COUNT_BITS}),
                              SEGMENT_QUEUE_DEPTH)
        m.submodules.segments = ResetInserter(restart)(segments)

        # Memories: the baked program, the weight image, and the host's input and output buffers.
        m.submodules.instructions = instructions = memory.Memory(
            shape=INSTRUCTION_BITS, depth=len(program.instructions), init=program.encoded())
        m.submodules.image = image = memory.Memory(
            shape=word_bits, depth=max(1, len(program.weight_words)), init=words_to_ints(program.weight_words))
        m.submodules.inputs = inputs = memory.Memory(shape=word_bits, depth=program.input_words, init=[])
        m.submodules.outputs = outputs = memory.Memory(shape=word_bits, depth=program.output_words, init=[])
        granularity = dict(granularity=32) if parts > 1 else {}
        image_write = image.write_port(**granularity)
        input_write = inputs.write_port(**granularity)
        output_write = outputs.write_port()
        instruction_read, image_read, input_read, output_read = (
            instructions.read_port(), image.read_port(), inputs.read_port(), outputs.read_port())

        # Instruction issue: the ROM's output register is the instruction stream's payload register.
        issue_addr = Signal(range(len(program.instructions) + 1))
        issue_valid = Signal()
        instruction = data.View(instruction_layout(), instruction_read.data)
        is_read = (instruction.opcode == Opcode.READ_WEIGHTS) | (instruction.opcode == Opcode.READ_HOST)
        segment_room = ~is_read | segments.i.ready
        issue_advance = ~issue_valid | (accelerator.instr.ready & segment_room)
        m.d.comb += [
            accelerator.instr.payload.eq(instruction_read.data),
            accelerator.instr.valid.eq(issue_valid & segment_room),
            instruction_read.addr.eq(issue_addr),
            instruction_read.en.eq(issue_advance),
            segments.i.payload.image.eq(instruction.opcode == Opcode.READ_WEIGHTS),
            segments.i.payload.count.eq(instruction.count),
            segments.i.payload.src.eq(instruction.src),
            segments.i.valid.eq(accelerator.instr.valid & accelerator.instr.ready & is_read),
        ]
        with m.If(issue_advance & running):
            more = issue_addr != len(program.instructions)
            m.d.sync += issue_valid.eq(more)
            with m.If(more):
                m.d.sync += issue_addr.eq(issue_addr + 1)

        # Feeder: host_in words from the image or input RAM, one segment (one READ instruction) after another.
        left = Signal(COUNT_BITS)
        from_image = Signal()
        image_addr = Signal(range(len(program.weight_words) + 1))
        input_addr = Signal(range(program.input_words + 1))
        feed_valid, feed_from_image = Signal(), Signal()
        feed_advance = ~feed_valid | accelerator.host_in.ready
        m.d.comb += [
            segments.o.ready.eq(left == 0),
            image_read.addr.eq(image_addr),
            input_read.addr.eq(input_addr),
            image_read.en.eq(feed_advance),
            input_read.en.eq(feed_advance),
            accelerator.host_in.payload.eq(Mux(feed_from_image, image_read.data, input_read.data)[:host_bits]),
            accelerator.host_in.valid.eq(feed_valid),
        ]
        with m.If(segments.o.valid & segments.o.ready):
            segment = segments.o.payload
            m.d.sync += [left.eq(segment.count), from_image.eq(segment.image)]
            with m.If(segment.image):
                m.d.sync += image_addr.eq(segment.src)
            with m.Else():
                m.d.sync += input_addr.eq(segment.src)
        with m.If(feed_advance):
            m.d.sync += [feed_valid.eq(left != 0), feed_from_image.eq(from_image)]
            with m.If(left != 0):
                m.d.sync += left.eq(left - 1)
                with m.If(from_image):
                    m.d.sync += image_addr.eq(image_addr + 1)
                with m.Else():
                    m.d.sync += input_addr.eq(input_addr + 1)

        # Output capture.
        output_addr = Signal(range(program.output_words + 1))
        m.d.comb += [
            accelerator.host_out.ready.eq(1),
            output_write.addr.eq(output_addr),
            output_write.data.eq(accelerator.host_out.payload),
            output_write.en.eq(accelerator.host_out.valid),
        ]
        with m.If(accelerator.host_out.valid):
            m.d.sync += output_addr.eq(output_addr + 1)

        with m.If(restart):
            m.d.sync += [issue_addr.eq(0), issue_valid.eq(0), left.eq(0), image_addr.eq(0), input_addr.eq(0),
                         feed_valid.eq(0), output_addr.eq(0)]

        # Host writes (input and image spaces) and reads (output space), 32-bit part by part.
        write = bridge.write.payload
        part_select = Const(1, 1) << write.addr[:part_bits]
        m.d.comb += bridge.write.ready.eq(1)
        for port, space in ((input_write, protocol.SPACE_INPUT), (image_write, protocol.SPACE_IMAGE)):
            m.d.comb += [
                port.addr.eq(write.addr >> part_bits),
                port.data.eq(Cat(*[write.data] * parts) if parts > 1 else write.data),
                port.en.eq(Mux(bridge.write.valid & (write.space == space), part_select, 0)),
            ]

        read = bridge.read.payload
        pending, read_part, read_output = Signal(), Signal(max(1, part_bits)), Signal()
        m.d.comb += [
            bridge.read.ready.eq(~pending),
            output_read.addr.eq(read.addr >> part_bits),
            output_read.en.eq(bridge.read.valid & ~pending),
            bridge.read_data.valid.eq(pending),
            bridge.read_data.payload.eq(Mux(read_output, output_read.data.word_select(read_part, 32)
                                            if parts > 1 else output_read.data, 0)),
        ]
        with m.If(bridge.read.valid & bridge.read.ready):
            m.d.sync += [pending.eq(1), read_part.eq(read.addr[:part_bits] if parts > 1 else 0),
                         read_output.eq(read.space == protocol.SPACE_OUTPUT)]
        with m.If(bridge.read_data.valid & bridge.read_data.ready):
            m.d.sync += pending.eq(0)

        self._connect_bridge(m, busy=running & ~accelerator.halted, done=running & accelerator.halted,
                             error=accelerator.error,
                             counters=[getattr(accelerator, name) for name in SYSTOLIC_COUNTERS])
        return m


class EieHost(_HostCore):
    """A :class:`sparq.hw.eie.EIE` with a baked image, driven over a UART. See the module docstring for the host's view.

    Nothing but the bridge and a 96-bit register for image words is added to the EIE: the host's input words go
    straight into the EIE's activation memories through its ``load`` port, and READs are EIE ``read`` requests, so
    the input and the output live where the EIE keeps them anyway.

    Parameters
    ----------
    config : sparq.formats.eie.EieConfig
    image : sparq.formats.eie.EieImage
        Baked into the memories' init (it must fit ``config``); START runs its ``len(image.layers)`` layers.
    divisor : int
        UART clock cycles per bit.
    timeout : int
        Host-silence timeout of the bridge, in cycles.
    **eie_options
        Passed on to :class:`sparq.hw.eie.EIE`: its ``pe_counters`` (on by default) adds the per-PE counters to COUNTERS;
        the ``eie-board`` design (:mod:`sparq.fpga.designs`) leaves them out.

    Ports
    -----
    rx : In(1), tx : Out(1)
        UART lines.
    busy, done : Out(1)
        The EIE's ``running`` and ``done``: a run is in progress / the last run has finished (until the next START).

    Latency: an input or image word is written the cycle the bridge offers it (when no run is in progress); a READ
    word is answered one cycle after the request. A run takes the EIE's own ``cycles``; the host adds none.
    """

    def __init__(self, config: EieConfig, image: EieImage, *, divisor: int, timeout: int = 1 << 22, **eie_options):
        if image is None:
            raise ValueError("EieHost needs an image to bake in (it sets the number of layers a START runs)")
        self.config, self.image = config, image
        self.eie = EIE(config, image, **eie_options)
        if load_layout(config.n_pe).size > 32 * EIE_IMAGE_PARTS:
            raise ValueError(f"an EIE load-port word for {config.n_pe} PEs does not fit {EIE_IMAGE_PARTS} protocol "
                             f"words")
        per_pe = len(EIE_PE_COUNTERS) * config.n_pe if self.eie.pe_counters else 0
        super().__init__(divisor=divisor, n_counters=len(EIE_COUNTERS) + per_pe, timeout=timeout)

    def elaborate(self, platform):
        m = Module()
        n, eie, bridge = self.config.n_pe, self.eie, self.bridge
        m.submodules.eie = eie
        m.d.comb += [eie.start.eq(bridge.start), eie.n_layers.eq(len(self.image.layers))]

        # Writes: an input word is one ACT load; an image word's parts gather in `parts` until the last one arrives.
        write, load = bridge.write.payload, eie.load.payload
        part_bits = (EIE_IMAGE_PARTS - 1).bit_length()
        is_input = write.space == protocol.SPACE_INPUT
        is_image = write.space == protocol.SPACE_IMAGE
        loads = is_input | (is_image & (write.addr[:part_bits] == EIE_IMAGE_PARTS - 1))
        parts = Signal(32 * (EIE_IMAGE_PARTS - 1))
        m.d.comb += [
            eie.load.valid.eq(bridge.write.valid & loads),
            bridge.write.ready.eq(eie.load.ready | ~loads),
            load.eq(Cat(parts, write.data)),
        ]
        with m.If(is_input):
            # ACT takes the low ACT_BITS of data; the rest keep the image word's bits (no multiplexer for them).
            m.d.comb += [load.target.eq(LoadTarget.ACT), load.pe.eq(write.addr % n), load.addr.eq(write.addr // n),
                         load.data[:ACT_BITS].eq(write.data)]
        with m.If(bridge.write.valid & bridge.write.ready & is_image):
            m.d.sync += parts.eq(Cat(parts[32:], write.data))

        # Reads: activation `addr` of the current vector, sign-extended.
        read = bridge.read.payload
        m.d.comb += [
            eie.read.valid.eq(bridge.read.valid),
            bridge.read.ready.eq(eie.read.ready),
            eie.read.payload.pe.eq(read.addr % n),
            eie.read.payload.addr.eq(read.addr // n),
            bridge.read_data.valid.eq(eie.out.valid),
            eie.out.ready.eq(bridge.read_data.ready),
            bridge.read_data.payload.eq(eie.out.payload),
        ]

        counters = [getattr(eie, name) for name in EIE_COUNTERS]
        if eie.pe_counters:
            counters += [getattr(eie, name)[k] for name in EIE_PE_COUNTERS for k in range(n)]
        self._connect_bridge(m, busy=eie.running, done=eie.done, counters=counters)
        return m


class BoardTop(Elaboratable):
    """Puts a host core on a board: ``make_core(divisor)`` returns a component with ``rx``, ``tx``, ``busy`` and
    ``done`` ports (a :class:`SystolicHost`, say), and the divisor is the board clock's cycles per bit at ``baud``.

    Pins: ``uart`` 0 (``rx`` in, ``tx`` out), ``led`` 0 (busy) and ``led`` 1 (done); the ``sync`` domain is the
    platform's default (board oscillator with its power-on reset).
    """

    def __init__(self, make_core, *, baud: int = DEFAULT_BAUD):
        self.make_core, self.baud = make_core, baud

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.make_core(int(platform.default_clk_frequency // self.baud))
        uart = platform.request("uart", 0, dir={"rx": "-", "tx": "-"})
        busy_led, done_led = platform.request("led", 0, dir="-"), platform.request("led", 1, dir="-")
        m.submodules.rx = rx = io.Buffer("i", uart.rx)
        m.submodules.tx = tx = io.Buffer("o", uart.tx)
        m.submodules.busy_led = busy = io.Buffer("o", busy_led)
        m.submodules.done_led = done = io.Buffer("o", done_led)
        m.d.comb += [core.rx.eq(rx.i), tx.o.eq(core.tx), busy.o.eq(core.busy), done.o.eq(core.done)]
        return m
