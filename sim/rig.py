"""One Verilator build for many block tests.

On this toolchain every Verilator build costs 15-30 s whatever the design's size (cocotb's VPI glue and Verilator's
runtime are compiled each time), so block tests share one design: a :class:`BlockRig` places blocks side by side,
unconnected, each behind a sub-interface of its own name (``pe.act_in``, ``matrix.result``, ...). Each test drives
one of them through the ``prefix`` argument of its testbench body.
"""

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

__all__ = ["BlockRig"]


class BlockRig(wiring.Component):
    """The components of ``blocks`` (sub-interface name -> component) side by side, each exposed unchanged."""

    def __init__(self, blocks: dict):
        self.blocks = dict(blocks)
        super().__init__({name: Out(block.signature) for name, block in self.blocks.items()})

    @classmethod
    def of(cls, spec: dict) -> "BlockRig":
        """A rig of ``spec`` (sub-interface name -> ``(class, constructor arguments)``), each built afresh."""
        return cls({name: block(**params) for name, (block, params) in spec.items()})

    def elaborate(self, platform):
        m = Module()
        for name, block in self.blocks.items():
            m.submodules[name] = block
            wiring.connect(m, wiring.flipped(getattr(self, name)), block)
        return m
