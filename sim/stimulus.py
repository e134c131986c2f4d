"""Stimulus generated inside the design, for long runs where Python must stay out of the simulation loop.

:class:`LFSRStimulus` is a 32-bit Galois LFSR; :func:`lfsr_states` is its numpy golden model.
:class:`FreeRunningMAC` drives a :class:`sparq.hw.common.mac.MACCell` from it as an accumulator, so the same long test
runs under Verilator and under Amaranth's simulator with nothing but the clock, and the final ``y`` is checked against
:func:`sparq.sim.golden.mac.accumulate` on :func:`lfsr_operands`.
"""

import numpy as np
from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from sparq.hw.common.mac import MACCell

__all__ = ["TAPS", "LFSRStimulus", "lfsr_states", "lfsr_operands", "FreeRunningMAC"]

TAPS = 0x80200003  # x^32 + x^22 + x^2 + x + 1


class LFSRStimulus(wiring.Component):
    """A 32-bit right-shifting Galois LFSR: ``s <= (s >> 1) ^ (TAPS if s & 1 else 0)`` every cycle.

    Ports: ``state`` Out(32), the current state; it is ``seed`` after reset. Latency: none (``state`` is the register).
    """
    state: Out(32)

    def __init__(self, seed: int):
        if not 0 < seed < 1 << 32:
            raise ValueError(f"LFSR seed must be a non-zero 32-bit value, not {seed}")
        self.seed = seed
        super().__init__()
        self.state = Signal(32, init=seed)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.state.eq((self.state >> 1) ^ Mux(self.state[0], TAPS, 0))
        return m


def lfsr_states(seed: int, count: int) -> np.ndarray:
    """The first ``count`` states of :class:`LFSRStimulus`, starting with ``seed`` (uint64 array)."""
    out = np.empty(count, dtype=np.uint64)
    s = seed
    for k in range(count):
        out[k] = s
        s = (s >> 1) ^ (TAPS if s & 1 else 0)
    return out


def lfsr_operands(seed: int, count: int, a_width: int, b_width: int):
    """The signed operand pairs :class:`FreeRunningMAC` feeds its MAC: ``a`` from state bits ``[0, a_width)``,
    ``b`` from bits ``[16, 16 + b_width)``."""
    states = lfsr_states(seed, count).astype(np.int64)
    a = states & ((1 << a_width) - 1)
    b = (states >> 16) & ((1 << b_width) - 1)
    return a - ((a >> (a_width - 1)) << a_width), b - ((b >> (b_width - 1)) << b_width)


class FreeRunningMAC(wiring.Component):
    """A :class:`MACCell` accumulating LFSR operands every cycle after reset. Port: ``y``, the accumulator."""

    def __init__(self, *, seed: int = 0x1234567, a_width: int = 8, b_width: int = 8, acc_width: int = 32,
                 saturate: bool = False):
        if a_width > 16 or b_width > 16:
            raise ValueError("FreeRunningMAC draws each operand from 16 LFSR bits: widths must be at most 16")
        self.seed = seed
        self.params = dict(a_width=a_width, b_width=b_width, acc_width=acc_width, saturate=saturate)
        super().__init__({"y": Out(signed(acc_width))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.lfsr = lfsr = LFSRStimulus(self.seed)
        m.submodules.mac = mac = MACCell(**self.params)
        m.d.comb += [
            mac.a.eq(lfsr.state[:self.params["a_width"]]),
            mac.b.eq(lfsr.state[16:16 + self.params["b_width"]]),
            mac.c.eq(mac.y),
            mac.en.eq(1),
            self.y.eq(mac.y),
        ]
        return m
