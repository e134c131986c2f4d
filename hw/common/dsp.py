"""A multiplier with registered operands and product, in a DSP block's own registers where the tools need help."""

from amaranth import ClockSignal, Const, Instance, Module, Signal, signed, unsigned
from amaranth.hdl import Shape
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RegisteredMultiplier"]

ECP5_MULTIPLIER_BITS = 18
"""Operand width of the ECP5's MULT18X18D."""


class RegisteredMultiplier(wiring.Component):
    """``p = a * b``, exact, with the operands and the product registered: the product of the operands of cycle
    ``t`` is on ``p`` from ``t + LATENCY`` (2). Reset values are unspecified (a user gates the product with a valid
    bit of its own).

    The registers are the DSP block's own wherever the synthesis flow would otherwise leave them in the fabric: on
    an ECP5 (``platform.family == "ecp5"``), when both operands fit 18 bits, a ``MULT18X18D`` with its input and
    output registers (``synth_ecp5`` maps a multiplier to a bare MULT18X18D, and the routes from fabric registers to
    the DSP row and back were the critical paths). Everywhere else (simulation, iCE40, where ``synth_ice40 -dsp``
    packs such registers into the SB_MAC16) the registers are behavioral. A platform with ``sparq_dsp = False``
    (``sparq.fpga.build.synthesize(..., dsp=False)``) gets the behavioral form too, which the flow then builds
    from LUTs.

    Ports
    -----
    a : In(a_shape), b : In(b_shape)
    p : Out(signed(a_width + b_width)) (unsigned if both operands are)
    """

    LATENCY = 2

    def __init__(self, a_shape, b_shape):
        self.a_shape, self.b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
        width = self.a_shape.width + self.b_shape.width
        product = signed(width) if self.a_shape.signed or self.b_shape.signed else unsigned(width)
        super().__init__({"a": In(self.a_shape), "b": In(self.b_shape), "p": Out(product)})

    def elaborate(self, platform):
        m = Module()
        fits = max(self.a_shape.width + (not self.a_shape.signed),
                   self.b_shape.width + (not self.b_shape.signed)) <= ECP5_MULTIPLIER_BITS
        if getattr(platform, "family", None) == "ecp5" and getattr(platform, "sparq_dsp", True) and fits:
            product = Signal(2 * ECP5_MULTIPLIER_BITS)
            operands = {}
            for name, value, shape in (("A", self.a, self.a_shape), ("B", self.b, self.b_shape)):
                wide = Signal(signed(ECP5_MULTIPLIER_BITS) if shape.signed else unsigned(ECP5_MULTIPLIER_BITS))
                m.d.comb += wide.eq(value)  # sign- or zero-extended, as the operand's shape says
                operands.update({f"i_{name}{k}": wide[k] for k in range(ECP5_MULTIPLIER_BITS)})
                operands[f"i_SIGNED{name}"] = Const(int(shape.signed), 1)
            m.submodules.mult = Instance(
                "MULT18X18D",
                p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
                p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
                p_REG_INPUTA_CE="CE0", p_REG_INPUTB_CE="CE0", p_REG_OUTPUT_CE="CE0",
                p_REG_INPUTA_RST="RST0", p_REG_INPUTB_RST="RST0", p_REG_OUTPUT_RST="RST0",
                p_SOURCEB_MODE="B_SHIFT", p_MULT_BYPASS="DISABLED", p_RESETMODE="SYNC",
                i_CLK0=ClockSignal(), i_CE0=Const(1, 1), i_RST0=Const(0, 1),
                i_SOURCEA=Const(0, 1), i_SOURCEB=Const(0, 1),
                **{f"i_C{k}": Const(0, 1) for k in range(ECP5_MULTIPLIER_BITS)},
                **operands,
                **{f"o_P{k}": product[k] for k in range(2 * ECP5_MULTIPLIER_BITS)},
            )
            m.d.comb += self.p.eq(product[:len(self.p)])
        else:
            # No reset, as in the DSP blocks, so that synth_ice40 -dsp can pack them into an SB_MAC16.
            a, b = Signal(self.a_shape, reset_less=True), Signal(self.b_shape, reset_less=True)
            p = Signal.like(self.p, reset_less=True)
            m.d.sync += [a.eq(self.a), b.eq(self.b), p.eq(a * b)]
            m.d.comb += self.p.eq(p)
        return m
