"""A parametric signed multiply-accumulate cell, the processing element of the systolic array."""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .dsp import RegisteredMultiplier

__all__ = ["MACCell"]


class MACCell(wiring.Component):
    """Signed multiply-accumulate: ``y <= fit(c + a * b)`` on every clock edge where ``en`` is high.

    The sum ``c + a * b`` is formed exactly (no intermediate rounding) and then fitted to ``acc_width`` bits:
    with ``saturate=True`` it is clamped to ``[-2**(acc_width-1), 2**(acc_width-1) - 1]``; with ``saturate=False`` it
    wraps modulo ``2**acc_width`` (two's complement). ``sparq.sim.golden.mac.mac`` is the numpy model of exactly this.

    Feeding ``y`` back into ``c`` makes an accumulator; feeding a partial sum from a neighbour into ``c`` makes the
    weight-stationary systolic PE (``psum_out = psum_in + activation * weight``).

    Parameters
    ----------
    a_width, b_width : int
        Widths of the signed operands.
    acc_width : int
        Width of the signed addend ``c`` and of the result ``y``.
    saturate : bool
        Clamp (``True``) or wrap (``False``) a result that does not fit ``acc_width`` bits.
    pipeline : bool
        Multiply in a :class:`~sparq.hw.common.dsp.RegisteredMultiplier` (operands and product registered, in the DSP
        block's own registers): ``y <= fit(c + p)`` where ``p`` is ``a * b`` of two cycles before, ``en`` taken
        with ``a`` and ``b``. The addend ``c`` is taken two cycles after the operands, which is what a systolic PE
        whose partial sums arrive two cycles after its activations needs.

    Ports
    -----
    a : In(signed(a_width))
    b : In(signed(b_width))
    c : In(signed(acc_width))
        The addend.
    en : In(1)
        Update ``y`` at this clock edge; otherwise ``y`` holds.
    y : Out(signed(acc_width))
        Registered result. Latency: one cycle from ``a``, ``b``, ``c``, ``en`` to ``y``; with ``pipeline``, three
        cycles from ``a``, ``b``, ``en`` and one from ``c``. Reset value 0.
    overflow : Out(1)
        Registered with ``y``: high when the last update did not fit and was clamped or wrapped.
    """

    def __init__(self, *, a_width: int = 8, b_width: int = 8, acc_width: int = 32, saturate: bool = False,
                 pipeline: bool = False):
        for label, width in (("a_width", a_width), ("b_width", b_width), ("acc_width", acc_width)):
            if not isinstance(width, int) or width < 1:
                raise ValueError(f"MACCell {label} must be a positive integer, not {width!r}")
        self.a_width, self.b_width, self.acc_width, self.saturate = a_width, b_width, acc_width, saturate
        self.pipeline = pipeline
        super().__init__({
            "a": In(signed(a_width)),
            "b": In(signed(b_width)),
            "c": In(signed(acc_width)),
            "en": In(1),
            "y": Out(signed(acc_width)),
            "overflow": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        product, en = self.a * self.b, self.en
        if self.pipeline:
            m.submodules.multiplier = multiplier = RegisteredMultiplier(signed(self.a_width), signed(self.b_width))
            en = Signal()
            en_taken = Signal()  # en of the operands in the multiplier's input registers
            m.d.comb += [multiplier.a.eq(self.a), multiplier.b.eq(self.b)]
            m.d.sync += [en_taken.eq(self.en), en.eq(en_taken)]
            product = multiplier.p
            assert RegisteredMultiplier.LATENCY == 2
        full = Signal(signed(max(self.acc_width, self.a_width + self.b_width) + 1))
        m.d.comb += full.eq(self.c + product)
        lo, hi = -(1 << (self.acc_width - 1)), (1 << (self.acc_width - 1)) - 1
        too_low, too_high = full < lo, full > hi
        if self.saturate:
            fitted = Mux(too_high, hi, Mux(too_low, lo, full[:self.acc_width].as_signed()))
        else:
            fitted = full[:self.acc_width].as_signed()
        with m.If(en):
            m.d.sync += [
                self.y.eq(fitted),
                self.overflow.eq(too_low | too_high),
            ]
        return m
