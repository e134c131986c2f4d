"""One Verilator build for all the systolic block tests.

On this toolchain every Verilator build costs 15-30 s whatever the design's size (cocotb's VPI glue and
Verilator's runtime are compiled each time), so the block tests share a single design: :class:`SystolicBlocks`
places one instance of each block side by side, each behind its own sub-interface (``pe.act_in``,
``matrix.result``, ...). The blocks are not connected to one another; each test drives one of them through the
``prefix`` argument of its testbench body.
"""

from amaranth import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from hw.systolic.accumulators import Accumulators
from hw.systolic.activation import Requantizer
from hw.systolic.matrix import MatrixUnit
from hw.systolic.pe import WeightStationaryPE
from hw.systolic.skew import InputSkew, OutputDeskew

__all__ = ["BLOCKS", "SystolicBlocks"]

BLOCKS = {
    "pe": (WeightStationaryPE, dict()),
    "skew": (InputSkew, dict(lanes=5, shape=signed(10))),
    "deskew": (OutputDeskew, dict(lanes=5, shape=signed(32))),
    "accumulators": (Accumulators, dict(cols=4, depth=16)),
    "requantizer": (Requantizer, dict()),
    "matrix": (MatrixUnit, dict(rows=4, cols=3, acc_depth=32)),
}
"""The instances: sub-interface name -> (class, constructor arguments). The matrix unit is non-square on purpose."""


class SystolicBlocks(wiring.Component):
    """Every block of :data:`BLOCKS`, unconnected, each exposed as the sub-interface of its name."""

    def __init__(self):
        self.blocks = {name: cls(**params) for name, (cls, params) in BLOCKS.items()}
        super().__init__({name: Out(block.signature) for name, block in self.blocks.items()})

    def elaborate(self, platform):
        m = Module()
        for name, block in self.blocks.items():
            m.submodules[name] = block
            wiring.connect(m, wiring.flipped(getattr(self, name)), block)
        return m
