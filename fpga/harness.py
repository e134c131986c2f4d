"""A board-level wrapper that times any ``wiring.Component`` register to register, on three pins.

A design's own ports cannot all reach pins (a 16x16 MAC alone has 65 input bits and 33 output bits), and unregistered
ports would leave its input and output paths untimed or let Yosys delete logic whose result reaches no pin.
:class:`TimingHarness` solves both with scan chains:

* every input port is driven from a flip-flop of one shift register, fed serially from the board's UART RX pin;
* every output port is folded into a second shift register (a multiple-input signature register:
  ``sig <= (sig >> 1) ^ outputs``) whose bit 0 drives the UART TX pin, so every output bit stays observable;
* the design's ``sync`` domain runs on the board clock pin directly, reset from the board's first button through a
  flip-flop, so the platform's power-on-reset timer does not compete with the design for the critical path. On an
  ECP5 the reset then goes through a ``DCCA`` onto a global network: nextpnr promotes only clocks there, and a reset
  left in general routing reached the far flip-flops of a 16-PE EIE in 15.6 ns, which made it the critical path
  (nextpnr-ice40 promotes a high-fanout reset to a global buffer itself).

Every path into and out of the design therefore starts and ends at a flip-flop, and nextpnr times the design alone.
The harness costs ``inputs + outputs + 1`` flip-flops and about one LUT per output bit; :attr:`overhead` says how many,
and :mod:`sparq.fpga.report` carries it into the report so that a reader can subtract it.

A harness is a measurement fixture: its bitstream does nothing useful on a board. Board tops that users program
(UART host interface, model image in memory) are built as they are, without this wrapper.
"""

from amaranth import Cat, ClockDomain, ClockSignal, Const, Elaboratable, Instance, Module, ResetSignal, Signal, Value
from amaranth.lib import io, wiring

__all__ = ["TimingHarness"]


class TimingHarness(Elaboratable):
    """Wrap ``design`` between an input scan chain and an output signature register; see the module docstring.

    Uses the platform resources ``uart`` 0 (``rx``, ``tx``), ``button`` 0 and the default clock.
    """

    def __init__(self, design: wiring.Component):
        self.design = design
        members = list(design.signature.flatten(design))
        self._inputs = [Value.cast(value) for _, member, value in members if member.flow == wiring.In]
        self._outputs = [Value.cast(value) for _, member, value in members if member.flow == wiring.Out]
        self.input_bits = sum(len(v) for v in self._inputs)
        self.output_bits = sum(len(v) for v in self._outputs)

    @property
    def overhead(self) -> dict:
        """Flip-flops and (approximate) LUTs the harness adds around the design."""
        return {"ff": self.input_bits + self.output_bits + 1, "lut": self.output_bits}

    def elaborate(self, platform):
        m = Module()
        m.submodules.design = self.design

        clk = platform.request(platform.default_clk, dir="-")
        uart = platform.request("uart", 0, dir={"rx": "-", "tx": "-"})
        button = platform.request("button", 0, dir="-")
        m.submodules.clk_buffer = clk_buffer = io.Buffer("i", clk)
        m.submodules.serial_in = serial_in = io.FFBuffer("i", uart.rx)
        m.submodules.serial_out = serial_out = io.FFBuffer("o", uart.tx)
        m.submodules.reset_in = reset_in = io.FFBuffer("i", button)

        m.domains.sync = ClockDomain("sync")
        reset = Signal()
        if getattr(platform, "family", None) == "ecp5":
            m.submodules.reset_buffer = Instance("DCCA", i_CLKI=reset_in.i, i_CE=Const(1, 1), o_CLKO=reset)
        else:
            m.d.comb += reset.eq(reset_in.i)
        m.d.comb += [
            ClockSignal("sync").eq(clk_buffer.i),
            ResetSignal("sync").eq(reset),
        ]

        if self.input_bits:
            scan = Signal(self.input_bits)
            m.d.sync += scan.eq(Cat(serial_in.i, scan[:-1]))
            m.d.comb += Cat(*self._inputs).eq(scan)
        if self.output_bits:
            signature = Signal(self.output_bits)
            m.d.sync += signature.eq((signature >> 1) ^ Cat(*self._outputs))
            m.d.comb += serial_out.o.eq(signature[0])
        return m
