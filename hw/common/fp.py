"""IEEE 754 floating-point arithmetic for the mixed-precision PE: an fp16 / bf16 multiplier with an fp32 result and
an fp32 adder, both combinational, both rounding to nearest with ties to even.

The semantics are those of ``sparq.sim.golden.fp`` (its module docstring is the contract): subnormals kept in and out (no
flush to zero), overflow to a signed infinity, IEEE signed zeros, and every NaN result the canonical quiet NaN
``0x7FC00000``. Values travel as raw bit patterns (``unsigned(16)`` / ``unsigned(32)``).

Both units share :func:`round_to_fp32`: normalise an exact (or sticky-extended) significand with a leading-zero
shifter, denormalise into fp32's subnormal range if needed, then round once.
"""

from dataclasses import dataclass

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["FloatFormat", "FLOAT_FORMATS", "FP32", "CANONICAL_NAN", "float_format", "round_to_fp32",
           "FloatMultiplier", "FP32Adder"]


@dataclass(frozen=True)
class FloatFormat:
    """An IEEE 754 binary format: ``1 + exp_bits + frac_bits`` bits, sign in the top bit."""
    name: str
    exp_bits: int
    frac_bits: int

    @property
    def width(self) -> int:
        return 1 + self.exp_bits + self.frac_bits

    @property
    def bias(self) -> int:
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def exp_max(self) -> int:
        """The all-ones exponent field (infinities and NaNs)."""
        return (1 << self.exp_bits) - 1


FLOAT_FORMATS = {f.name: f for f in (FloatFormat("fp16", 5, 10), FloatFormat("bf16", 8, 7),
                                     FloatFormat("fp32", 8, 23))}
FP32 = FLOAT_FORMATS["fp32"]
CANONICAL_NAN = 0x7FC00000


def float_format(name: str) -> FloatFormat:
    """The :class:`FloatFormat` called ``name``; one clear :class:`ValueError` for an unknown name."""
    try:
        return FLOAT_FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown float format {name!r}; choose one of "
                         f"{', '.join(map(repr, FLOAT_FORMATS))}") from None


class _Fields:
    """The decoded fields of a bit pattern of format ``fmt``, as combinational signals in ``m``."""

    def __init__(self, m: Module, bits, fmt: FloatFormat, name: str):
        self.sign = bits[fmt.width - 1]
        self.exp = bits[fmt.frac_bits:fmt.width - 1]
        self.frac = bits[:fmt.frac_bits]
        self.is_special = self.exp == fmt.exp_max
        self.is_nan = self.is_special & (self.frac != 0)
        self.is_inf = self.is_special & (self.frac == 0)
        self.is_zero = (self.exp == 0) & (self.frac == 0)
        # value = sig * 2**(eff_exp - bias - frac_bits), with the hidden bit set for normal numbers only
        self.sig = Signal(fmt.frac_bits + 1, name=f"{name}_sig")
        self.eff_exp = Signal(fmt.exp_bits, name=f"{name}_eff_exp")
        m.d.comb += [
            self.sig.eq(Cat(self.frac, self.exp != 0)),
            self.eff_exp.eq(Mux(self.exp == 0, 1, self.exp)),
        ]


def _shift_right_sticky(m: Module, value, amount, name: str):
    """``(value >> amount, any bit shifted out)``; ``amount`` may exceed the width (everything goes to sticky)."""
    width = len(value)
    limit = Signal(range(width + 1), name=f"{name}_amount")
    m.d.comb += limit.eq(Mux(amount > width, width, amount))
    shifted = Signal(width, name=f"{name}_shifted")
    sticky = Signal(name=f"{name}_sticky")
    m.d.comb += [
        shifted.eq(value >> limit),
        sticky.eq((shifted << limit)[:width] != value),
    ]
    return shifted, sticky


def round_to_fp32(m: Module, sign, sig, exp, name: str = "round"):
    """The fp32 bit pattern nearest (ties to even) to ``(-1)**sign * sig * 2**exp``; add its logic to ``m``.

    ``sig`` is an unsigned significand of at least 26 bits that must not be zero (callers handle exact zeros,
    which carry an operation-specific sign); its lowest bit may be a sticky bit (an OR of bits already discarded
    below it, as the adder's alignment makes), provided at least two bits separate it from fp32's rounding
    position after normalisation. ``exp`` is a signed value. Results beyond fp32's range round to a signed
    infinity; results below it become subnormals or a signed zero.
    """
    width = len(sig)
    assert width >= 26, "round_to_fp32 needs a guard bit and a sticky bit below the 24-bit significand"
    # Leading-zero normalisation: shift left by 16, 8, 4, 2, 1 while the top bits are zero.
    normal, lz, stage = sig, 0, 1 << (width - 1).bit_length()
    while stage > 1:
        stage //= 2
        top_zero = normal[width - stage:] == 0
        shifted = Signal(width, name=f"{name}_norm{stage}")
        m.d.comb += shifted.eq(Mux(top_zero, (normal << stage)[:width], normal))
        normal, lz = shifted, lz + Mux(top_zero, stage, 0)
    # The leading one is now bit width-1, worth 2**(exp - lz + width - 1): the biased fp32 exponent follows.
    biased = Signal(signed(max(len(exp), 6) + 3), name=f"{name}_biased_exp")
    m.d.comb += biased.eq(exp - lz + (width - 1 + FP32.bias))
    tiny = biased < 1
    # Below the normal range: shift right so the exponent field is 0 (the value is then frac * 2**-149).
    denormal, lost = _shift_right_sticky(m, normal, Mux(tiny, 1 - biased, 0)[:len(biased)], f"{name}_denorm")
    exp_field = Mux(tiny, 0, biased[:8])
    frac = denormal[width - 24:width - 1]  # bit width-1 is the hidden bit (0 when tiny)
    guard = denormal[width - 25]
    sticky = (denormal[:width - 25] != 0) | lost
    round_up = guard & (sticky | frac[0])
    magnitude = Signal(31, name=f"{name}_magnitude")
    # A carry out of the fraction lands in the exponent: 1.11..1 -> 10.0, max subnormal -> min normal, max -> inf.
    m.d.comb += magnitude.eq(Cat(frac, exp_field) + round_up)
    result = Signal(32, name=f"{name}_result")
    m.d.comb += result.eq(Mux(biased >= FP32.exp_max, Cat(Const(0, 23), Const(FP32.exp_max, 8), sign),
                              Cat(magnitude, sign)))
    return result


class FloatMultiplier(wiring.Component):
    """``y = round_fp32(a * b)`` for ``a``, ``b`` in ``fmt`` (fp16 or bf16); combinational (latency 0).

    The significand product is exact (``2 * (frac_bits + 1)`` bits); it is rounded once into fp32. For fp16 the
    product is always exact in fp32; for bf16 it can overflow to infinity or round into fp32's subnormals.
    Specials: NaN in, or ``0 * inf`` -> canonical NaN; ``inf * nonzero`` -> infinity; a zero operand -> a zero;
    the sign is the XOR of the operands' signs (except for NaN).

    Ports
    -----
    a, b : In(unsigned(fmt.width))
        Bit patterns in ``fmt``.
    y : Out(unsigned(32))
        fp32 bit pattern.
    """

    def __init__(self, fmt: str = "fp16"):
        self.fmt = float_format(fmt)
        if self.fmt.width != 16:
            raise ValueError(f"FloatMultiplier takes a 16-bit format (fp16 or bf16), not {fmt!r}")
        super().__init__({"a": In(unsigned(self.fmt.width)), "b": In(unsigned(self.fmt.width)),
                          "y": Out(unsigned(32))})

    def elaborate(self, platform):
        m = Module()
        fmt = self.fmt
        a, b = _Fields(m, self.a, fmt, "a"), _Fields(m, self.b, fmt, "b")
        sign = a.sign ^ b.sign
        product_bits = 2 * (fmt.frac_bits + 1)
        width = max(product_bits, 26)
        product = Signal(width)
        m.d.comb += product.eq((a.sig * b.sig) << (width - product_bits))
        exp = Signal(signed(fmt.exp_bits + 3))
        m.d.comb += exp.eq(a.eff_exp + b.eff_exp - (2 * (fmt.bias + fmt.frac_bits) + width - product_bits))
        rounded = round_to_fp32(m, sign, product, exp)
        nan = a.is_nan | b.is_nan | (a.is_inf & b.is_zero) | (b.is_inf & a.is_zero)
        with m.If(nan):
            m.d.comb += self.y.eq(CANONICAL_NAN)
        with m.Elif(a.is_inf | b.is_inf):
            m.d.comb += self.y.eq(Cat(Const(0, 23), Const(FP32.exp_max, 8), sign))
        with m.Elif(a.is_zero | b.is_zero):
            m.d.comb += self.y.eq(Cat(Const(0, 31), sign))
        with m.Else():
            m.d.comb += self.y.eq(rounded)
        return m


class FP32Adder(wiring.Component):
    """``y = round_fp32(a + b)`` on fp32 bit patterns; combinational (latency 0).

    The smaller magnitude is aligned to the larger with three extra bits (guard, round, and a sticky bit that ORs
    everything shifted further), added or subtracted, then normalised and rounded once by :func:`round_to_fp32`:
    the IEEE correctly rounded sum. Specials: NaN in, or ``inf + -inf`` -> canonical NaN; an infinity otherwise
    wins; an exact zero sum is ``-0`` only for ``-0 + -0`` (round to nearest).

    Ports
    -----
    a, b : In(unsigned(32))
    y : Out(unsigned(32))
    """

    def __init__(self):
        super().__init__({"a": In(unsigned(32)), "b": In(unsigned(32)), "y": Out(unsigned(32))})

    def elaborate(self, platform):
        m = Module()
        a_in, b_in = _Fields(m, self.a, FP32, "a"), _Fields(m, self.b, FP32, "b")
        swap = self.b[:31] > self.a[:31]
        big_bits, small_bits = Signal(32), Signal(32)
        m.d.comb += [big_bits.eq(Mux(swap, self.b, self.a)), small_bits.eq(Mux(swap, self.a, self.b))]
        big, small = _Fields(m, big_bits, FP32, "big"), _Fields(m, small_bits, FP32, "small")
        distance = Signal(8)
        m.d.comb += distance.eq(big.eff_exp - small.eff_exp)
        big_ext = Signal(27)
        m.d.comb += big_ext.eq(big.sig << 3)
        aligned, lost = _shift_right_sticky(m, (small.sig << 3)[:27], distance, "align")
        small_ext = aligned | lost
        total = Signal(28)
        m.d.comb += total.eq(Mux(big.sign ^ small.sign, big_ext - small_ext, big_ext + small_ext))
        exp = Signal(signed(10))
        m.d.comb += exp.eq(big.eff_exp - (FP32.bias + 23 + 3))
        rounded = round_to_fp32(m, big.sign, total, exp)
        nan = a_in.is_nan | b_in.is_nan | (a_in.is_inf & b_in.is_inf & (a_in.sign != b_in.sign))
        with m.If(nan):
            m.d.comb += self.y.eq(CANONICAL_NAN)
        with m.Elif(a_in.is_inf):
            m.d.comb += self.y.eq(self.a)
        with m.Elif(b_in.is_inf):
            m.d.comb += self.y.eq(self.b)
        with m.Elif(total == 0):
            m.d.comb += self.y.eq(Cat(Const(0, 31), a_in.sign & b_in.sign))
        with m.Else():
            m.d.comb += self.y.eq(rounded)
        return m
