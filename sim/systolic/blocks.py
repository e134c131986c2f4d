"""The systolic blocks the block tests run in one Verilator build: ``sparq.sim.rig.BlockRig.of(BLOCKS)``."""

from amaranth import signed

from sparq.hw.systolic.accumulators import Accumulators
from sparq.hw.systolic.activation import ActivationUnit, Requantizer
from sparq.hw.systolic.buffer import UnifiedBuffer
from sparq.hw.systolic.matrix import MatrixUnit
from sparq.hw.systolic.pe import WeightStationaryPE
from sparq.hw.systolic.skew import InputSkew, OutputDeskew

__all__ = ["BLOCKS"]

BLOCKS = {
    "pe": (WeightStationaryPE, dict()),
    "skew": (InputSkew, dict(lanes=5, shape=signed(10))),
    "deskew": (OutputDeskew, dict(lanes=5, shape=signed(32))),
    "accumulators": (Accumulators, dict(cols=4, depth=16)),
    "requantizer": (Requantizer, dict()),
    "matrix": (MatrixUnit, dict(rows=4, cols=3, acc_depth=32)),
    "buffer": (UnifiedBuffer, dict(lanes=3, depth=13)),
    "activation": (ActivationUnit, dict(cols=3, acc_depth=16, ub_depth=32, wb_depth=28, max_wait=10)),
}
"""The instances: sub-interface name -> (class, constructor arguments). The matrix unit is non-square and the unified
buffer's depth odd (unequal banks) on purpose."""

