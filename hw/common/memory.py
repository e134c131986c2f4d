"""Attributes for ``amaranth.lib.memory.Memory`` that tell synthesis what a design guarantees about its memories."""

__all__ = ["COLLISION_UNUSED"]

#: ``Memory(attrs=COLLISION_UNUSED)``: the design never uses the word a read port returns in the cycle the same
#: address is written through another port (the write comes from the host while the reader is stopped, or a bypass
#: replaces the read word). Amaranth's read ports return the old word on such a collision, and on block RAMs that do
#: not (iCE40 EBR, ECP5 DP16KD) Yosys would emulate that with registers on the write port and a comparator and
#: multiplexer on the read port, over 100 flip-flops for a 64-bit memory. This is Yosys's own ``no_rw_check``
#: attribute; :mod:`sparq.fpga.build` applies it to synchronous read ports (Yosys itself honours it only for the ports it
#: builds from flip-flops). Simulation keeps Amaranth's old-word result, which such a design ignores anyway.
COLLISION_UNUSED = {"no_rw_check": 1}
