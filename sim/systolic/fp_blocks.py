"""One Verilator build for the mixed-precision tests (``tests/mixed_precision``): the fp16 and bf16 multipliers, the
fp32 adder, an fp16 and a bf16 PE and two float matrix units, side by side and unconnected, each behind its own
sub-interface: ``sparq.sim.rig.BlockRig.of(FP_BLOCKS)``, as :mod:`sparq.sim.systolic.blocks` does for the int8 blocks."""

from sparq.hw.common.fp import FloatMultiplier, FP32Adder
from sparq.hw.systolic.matrix import MatrixUnit
from sparq.hw.systolic.pe import WeightStationaryPE

__all__ = ["FP_BLOCKS"]

FP_BLOCKS = {
    "mul_fp16": (FloatMultiplier, dict(fmt="fp16")),
    "mul_bf16": (FloatMultiplier, dict(fmt="bf16")),
    "add": (FP32Adder, dict()),
    "pe_fp16": (WeightStationaryPE, dict(arithmetic="fp16")),
    "pe_bf16": (WeightStationaryPE, dict(arithmetic="bf16")),
    "matrix_fp16": (MatrixUnit, dict(rows=3, cols=2, acc_depth=16, arithmetic="fp16")),
    "matrix_bf16": (MatrixUnit, dict(rows=2, cols=3, acc_depth=16, arithmetic="bf16")),
}
"""The instances: sub-interface name -> (class, constructor arguments)."""

