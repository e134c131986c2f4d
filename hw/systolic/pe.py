"""The weight-stationary processing element and the activation lane it passes along."""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..common.mac import MACCell

__all__ = ["activation_lane", "WeightStationaryPE"]


def activation_lane(width: int = 8) -> data.StructLayout:
    """One activation travelling through the array: its ``value``, a ``valid`` bit (the MAC enable) and the weight
    ``bank`` it must be multiplied with (so a bank switch travels with the data wavefront)."""
    return data.StructLayout({"value": signed(width), "valid": 1, "bank": 1})


class WeightStationaryPE(wiring.Component):
    """A systolic PE: ``psum_out <= psum_in + act.value * weight[act.bank]`` (an ``hw.common.mac.MACCell``, int32
    wrap-around by default) and ``act_out <= act_in``.

    It holds two stationary weights (banks 0 and 1). Weights are loaded by shifting down a column: when ``w_shift``
    is high, bank ``w_bank`` takes ``w_in`` at the clock edge, and ``w_out`` always shows bank ``w_bank``'s current
    value for the PE below. The other bank keeps serving the activations tagged with it (double buffering).

    Ports
    -----
    act_in : In(activation_lane(act_width))
    act_out : Out(activation_lane(act_width))
        ``act_in`` registered: 1-cycle latency, to the PE on the right.
    psum_in : In(signed(acc_width))
    psum_out : Out(signed(acc_width))
        Registered MAC result, 1-cycle latency; holds when ``act_in.valid`` is low.
    w_in, w_out : In / Out(signed(weight_width))
    w_shift, w_bank : In(1)
    """

    def __init__(self, *, act_width: int = 8, weight_width: int = 8, acc_width: int = 32, saturate: bool = False):
        self.act_width, self.weight_width, self.acc_width, self.saturate = act_width, weight_width, acc_width, saturate
        super().__init__({
            "act_in": In(activation_lane(act_width)),
            "act_out": Out(activation_lane(act_width)),
            "psum_in": In(signed(acc_width)),
            "psum_out": Out(signed(acc_width)),
            "w_in": In(signed(weight_width)),
            "w_out": Out(signed(weight_width)),
            "w_shift": In(1),
            "w_bank": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mac = mac = MACCell(a_width=self.act_width, b_width=self.weight_width,
                                         acc_width=self.acc_width, saturate=self.saturate)
        weights = [Signal(signed(self.weight_width), name=f"weight{bank}") for bank in range(2)]
        for bank, weight in enumerate(weights):
            with m.If(self.w_shift & (self.w_bank == bank)):
                m.d.sync += weight.eq(self.w_in)
        m.d.comb += [
            self.w_out.eq(Mux(self.w_bank, weights[1], weights[0])),
            mac.a.eq(self.act_in.value),
            mac.b.eq(Mux(self.act_in.bank, weights[1], weights[0])),
            mac.c.eq(self.psum_in),
            mac.en.eq(self.act_in.valid),
            self.psum_out.eq(mac.y),
        ]
        m.d.sync += self.act_out.eq(self.act_in)
        return m
