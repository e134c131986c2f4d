"""The weight-stationary processing element and the activation lane it passes along.

The PE's arithmetic is a constructor parameter: ``"int8"`` (int8 x int8 into an int32 accumulator, the default) or
``"fp16"`` / ``"bf16"`` (16-bit float multiplies, fp32 accumulation, IEEE round to nearest even after the multiply
and after the add; semantics in ``sparq.sim.golden.fp``). Float operands and partial sums travel as raw bit patterns.
"""

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.hdl import Shape
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from sparq.formats.systolic import PE_LATENCY

from ..common.fp import FloatMultiplier, FP32Adder
from ..common.mac import MACCell

__all__ = ["ARITHMETICS", "check_arithmetic", "check_pe_parameters", "operand_shape", "accumulator_shape",
           "pe_latency", "activation_lane", "WeightStationaryPE"]

ARITHMETICS = ("int8", "fp16", "bf16")
"""The PE arithmetics: integer, or 16-bit float multiplies with fp32 accumulation."""


def check_arithmetic(arithmetic) -> str:
    """``arithmetic`` if it is one of :data:`ARITHMETICS`; otherwise one clear :class:`ValueError`."""
    if arithmetic not in ARITHMETICS:
        raise ValueError(f"unknown PE arithmetic {arithmetic!r}; choose one of {', '.join(map(repr, ARITHMETICS))}")
    return arithmetic


def check_pe_parameters(arithmetic, act_width=8, weight_width=8, acc_width=32, saturate=False) -> None:
    """Refuse an unknown arithmetic, or integer width parameters given to a float arithmetic (whose widths are
    fixed), with one clear :class:`ValueError`."""
    check_arithmetic(arithmetic)
    if arithmetic != "int8" and (act_width, weight_width, acc_width, saturate) != (8, 8, 32, False):
        raise ValueError(f"a {arithmetic} PE has fixed widths (16-bit operands, fp32 partial sums) and rounds "
                         "instead of saturating; leave act_width, weight_width, acc_width and saturate unset")


def operand_shape(arithmetic: str = "int8", width: int = 8) -> Shape:
    """An activation or weight: ``signed(width)`` for int8 arithmetic, a 16-bit pattern for fp16 / bf16."""
    return signed(width) if check_arithmetic(arithmetic) == "int8" else unsigned(16)


def accumulator_shape(arithmetic: str = "int8", width: int = 32) -> Shape:
    """A partial sum: ``signed(width)`` for int8 arithmetic, an fp32 bit pattern for fp16 / bf16."""
    return signed(width) if check_arithmetic(arithmetic) == "int8" else unsigned(32)


def pe_latency(arithmetic: str = "int8") -> int:
    """Cycles from a PE's activation input to its partial-sum output: ``sparq.formats.systolic.PE_LATENCY`` for the
    pipelined int8 PE, 1 for the float PEs."""
    return PE_LATENCY if check_arithmetic(arithmetic) == "int8" else 1


def activation_lane(value=8) -> data.StructLayout:
    """One activation travelling through the array: its ``value`` (an int is a signed width, else a shape), a
    ``valid`` bit (the MAC enable) and the weight ``bank`` it must be multiplied with (so a bank switch travels with
    the data wavefront)."""
    return data.StructLayout({"value": signed(value) if isinstance(value, int) else value, "valid": 1, "bank": 1})


class WeightStationaryPE(wiring.Component):
    """A systolic PE: ``psum_out = psum_in + act.value * weight[act.bank]``, :attr:`latency` cycles after the
    activation, and ``act_out <= act_in``.

    ``arithmetic="int8"``: pipelined in :data:`sparq.formats.systolic.PE_LATENCY` = 3 register stages, so that the
    multiplier runs register to register, in the DSP block's own registers (``sparq.hw.common.mac.MACCell`` with
    ``pipeline``: ``act_width`` x ``weight_width`` into ``acc_width`` bits, wrap-around, or clamped with
    ``saturate``): (1) the activation and the weight of its bank, (2) their product, (3) ``psum_out <= psum_in +
    product``, taking ``psum_in`` two cycles after the activation -- which is when the PE above, one cycle ahead on
    the same wavefront, delivers it.
    ``arithmetic="fp16"`` or ``"bf16"``: a :class:`~sparq.hw.common.fp.FloatMultiplier` then an
    :class:`~sparq.hw.common.fp.FP32Adder`, both combinational, so
    ``psum_out <= round_fp32(psum_in + round_fp32(act.value * weight))`` in the same single cycle (latency 1); the
    widths are then fixed (16-bit operands, fp32 partial sums) and the integer width parameters must stay at their
    defaults.

    It holds two stationary weights (banks 0 and 1). Weights are loaded by shifting down a column: when ``w_shift``
    is high, bank ``w_bank`` takes ``w_in`` at the clock edge, and ``w_out`` always shows bank ``w_bank``'s current
    value for the PE below. The other bank keeps serving the activations tagged with it (double buffering).

    Ports
    -----
    act_in : In(activation_lane(operand_shape(arithmetic, act_width)))
    act_out : Out(activation_lane(operand_shape(arithmetic, act_width)))
        ``act_in`` registered: 1-cycle latency, to the PE on the right.
    psum_in : In(accumulator_shape(arithmetic, acc_width))
        Taken ``latency - 1`` cycles after the activation it is added to.
    psum_out : Out(accumulator_shape(arithmetic, acc_width))
        Registered MAC result, :attr:`latency` cycles after ``act_in``; holds when the activation was not valid.
        Reset value 0 (``+0.0``).
    w_in, w_out : In / Out(operand_shape(arithmetic, weight_width))
    w_shift, w_bank : In(1)
    """

    def __init__(self, *, arithmetic: str = "int8", act_width: int = 8, weight_width: int = 8, acc_width: int = 32,
                 saturate: bool = False):
        check_pe_parameters(arithmetic, act_width, weight_width, acc_width, saturate)
        self.arithmetic = arithmetic
        self.act_width, self.weight_width, self.acc_width, self.saturate = act_width, weight_width, acc_width, saturate
        self.latency = pe_latency(arithmetic)
        operand, acc = operand_shape(arithmetic, act_width), accumulator_shape(arithmetic, acc_width)
        weight = operand_shape(arithmetic, weight_width)
        super().__init__({
            "act_in": In(activation_lane(operand)),
            "act_out": Out(activation_lane(operand)),
            "psum_in": In(acc),
            "psum_out": Out(acc),
            "w_in": In(weight),
            "w_out": Out(weight),
            "w_shift": In(1),
            "w_bank": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        weights = [Signal(self.w_in.shape(), name=f"weight{bank}") for bank in range(2)]
        for bank, weight in enumerate(weights):
            with m.If(self.w_shift & (self.w_bank == bank)):
                m.d.sync += weight.eq(self.w_in)
        weight = Mux(self.act_in.bank, weights[1], weights[0])
        m.d.comb += self.w_out.eq(Mux(self.w_bank, weights[1], weights[0]))
        if self.arithmetic == "int8":
            m.submodules.mac = mac = MACCell(a_width=self.act_width, b_width=self.weight_width,
                                             acc_width=self.acc_width, saturate=self.saturate, pipeline=True)
            m.d.comb += [
                mac.a.eq(self.act_in.value),
                mac.b.eq(weight),
                mac.c.eq(self.psum_in),
                mac.en.eq(self.act_in.valid),
                self.psum_out.eq(mac.y),
            ]
        else:
            m.submodules.multiplier = multiplier = FloatMultiplier(self.arithmetic)
            m.submodules.adder = adder = FP32Adder()
            m.d.comb += [
                multiplier.a.eq(self.act_in.value),
                multiplier.b.eq(weight),
                adder.a.eq(self.psum_in),
                adder.b.eq(multiplier.y),
            ]
            with m.If(self.act_in.valid):
                m.d.sync += self.psum_out.eq(adder.y)
        m.d.sync += self.act_out.eq(self.act_in)
        return m
