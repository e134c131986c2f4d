"""The Winograd transform units (sparq.hw.systolic.winograd) on directed and random tiles with random gaps and
back-pressure, under Verilator (one shared build) and Amaranth's simulator."""

import pytest

from sparq.formats.systolic import WINOGRAD_AT, WINOGRAD_BT, WINOGRAD_V_BITS
from sparq.hw.systolic.winograd import InputTransform, OutputTransform, TileTransform, exact_width, terms
from sparq.sim.harness import run_amaranth, run_verilator
from sparq.sim.rig import BlockRig


@pytest.mark.parametrize("output", [False, True], ids=["input", "output"])
def test_transform_verilator(output):
    name = "output" if output else "input"
    result = run_verilator(BlockRig({"input": InputTransform(3), "output": OutputTransform(3)}), "sparq.sim.tb.winograd:random_transform", optimize=False, output=output,
                           seed=11 + output, tiles=60, lanes=3, prefix=f"{name}.")
    assert result["tiles"] == 60


def test_transform_full_rate_amaranth():
    """With the output always ready the unit takes a word every cycle: 40 tiles in 16 cycles each, plus the last
    tile's latency and 16 output words (and the reset)."""
    result = run_amaranth(InputTransform(2), "sparq.sim.tb.winograd:random_transform", output=False, seed=3, tiles=40,
                          lanes=2, gap_probability=0.0, stall_probability=0.0)
    assert result["cycles"] <= 16 * 40 + 2 + 16 + 4


def test_output_transform_amaranth():
    run_amaranth(OutputTransform(2), "sparq.sim.tb.winograd:random_transform", output=True, seed=4, tiles=24, lanes=2)


def test_bit_growth_is_documented_widths():
    assert terms(WINOGRAD_BT) == 4 and exact_width(WINOGRAD_BT, 8) == WINOGRAD_V_BITS == 10
    assert terms(WINOGRAD_AT) == 9 and exact_width(WINOGRAD_AT, 32) == 36


def test_bad_matrix_is_refused():
    with pytest.raises(ValueError, match="-1 / 0 / \\+1"):
        TileTransform([[2, 0, 0, 0]], 2, 8, 10)
