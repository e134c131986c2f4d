"""The mixed-precision RTL (``sparq.hw.common.fp``, the fp16 / bf16 PE and matrix unit) bit-exact against ``sparq.sim.golden.fp``.

By default under Amaranth's simulator (no C++ build); under ``-m slow`` also under Verilator, all blocks in one
build (``BlockRig.of(FP_BLOCKS)``) with more seeded random cases.
"""

import pytest

from sparq.hw.common.fp import FloatMultiplier, FP32Adder
from sparq.hw.systolic.array import SystolicArray
from sparq.hw.systolic.matrix import MatrixUnit
from sparq.hw.systolic.pe import WeightStationaryPE
from sparq.sim.harness import run_amaranth, run_verilator
from sparq.sim.rig import BlockRig
from sparq.sim.systolic.fp_blocks import FP_BLOCKS


def on_verilator(prefix, body, **params):
    """Run ``body`` on the block ``prefix`` of the shared ``BlockRig.of(FP_BLOCKS)`` build."""
    return run_verilator(BlockRig.of(FP_BLOCKS), body, prefix=f"{prefix}.", optimize=False, **params)


@pytest.mark.parametrize("fmt", ["fp16", "bf16"])
def test_multiplier_amaranth(fmt):
    result = run_amaranth(FloatMultiplier(fmt), "sparq.sim.tb.fp:fp_unit_sweep", unit="mul", fmt=fmt, seed=11, n=2000)
    assert result["cases"] > 2500


def test_adder_amaranth():
    result = run_amaranth(FP32Adder(), "sparq.sim.tb.fp:fp_unit_sweep", unit="add", seed=12, n=3000)
    assert result["cases"] > 3600


@pytest.mark.parametrize("arithmetic", ["fp16", "bf16"])
def test_pe_amaranth(arithmetic):
    run_amaranth(WeightStationaryPE(arithmetic=arithmetic), "sparq.sim.tb.systolic:random_pe", arithmetic=arithmetic,
                 seed=13, n=800)


@pytest.mark.parametrize("arithmetic", ["fp16", "bf16"])
def test_matrix_unit_amaranth(arithmetic):
    """Skew, float array and de-skew together, double-buffered weights, random issue gaps."""
    result = run_amaranth(MatrixUnit(3, 2, 16, arithmetic=arithmetic), "sparq.sim.tb.systolic:random_matrix_unit",
                          arithmetic=arithmetic, seed=14, rows=3, cols=2, acc_depth=16, rounds=3, vectors=12)
    assert result["vectors"] > 30


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["fp16", "bf16"])
def test_multiplier_verilator(fmt):
    result = on_verilator(f"mul_{fmt}", "sparq.sim.tb.fp:fp_unit_sweep", unit="mul", fmt=fmt, seed=21, n=20000)
    assert result["cases"] > 20000


@pytest.mark.slow
def test_adder_verilator():
    result = on_verilator("add", "sparq.sim.tb.fp:fp_unit_sweep", unit="add", seed=22, n=30000)
    assert result["cases"] > 30000


@pytest.mark.slow
@pytest.mark.parametrize("arithmetic", ["fp16", "bf16"])
def test_pe_verilator(arithmetic):
    on_verilator(f"pe_{arithmetic}", "sparq.sim.tb.systolic:random_pe", arithmetic=arithmetic, seed=23, n=5000)


@pytest.mark.slow
@pytest.mark.parametrize("arithmetic", ["fp16", "bf16"])
def test_matrix_unit_verilator(arithmetic):
    name = f"matrix_{arithmetic}"
    params = {k: v for k, v in FP_BLOCKS[name][1].items() if k != "arithmetic"}
    result = on_verilator(name, "sparq.sim.tb.systolic:random_matrix_unit", arithmetic=arithmetic, seed=24, rounds=8,
                          vectors=60, **params)
    assert result["vectors"] > 480


@pytest.mark.parametrize("make, message", [
    (lambda: WeightStationaryPE(arithmetic="fp8"), "unknown PE arithmetic 'fp8'"),
    (lambda: WeightStationaryPE(arithmetic="bf16", acc_width=24), "fixed widths"),
    (lambda: SystolicArray(2, 2, arithmetic="int4"), "unknown PE arithmetic"),
    (lambda: MatrixUnit(2, 2, 8, arithmetic="fp32"), "choose one of 'int8', 'fp16', 'bf16'"),
    (lambda: FloatMultiplier("fp32"), "16-bit format"),
    (lambda: FloatMultiplier("e4m3"), "unknown float format 'e4m3'"),
])
def test_bad_parameters_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()
