"""MACCell against its numpy golden model, under Verilator and under Amaranth's simulator."""

import pytest

from sparq.hw.common.mac import MACCell
from sparq.sim.harness import run_amaranth, run_verilator
from sparq.sim.tb.mac import accumulate_sequence, overflow_cases

PARAMS = [
    dict(a_width=8, b_width=8, acc_width=32, saturate=False),   # the systolic array's PE
    dict(a_width=8, b_width=8, acc_width=16, saturate=True),
    dict(a_width=16, b_width=4, acc_width=12, saturate=False),  # asymmetric, overflows often
    dict(a_width=3, b_width=5, acc_width=20, saturate=True),
]
IDS = ["8x8+32wrap", "8x8+16sat", "16x4+12wrap", "3x5+20sat"]
PIPELINED = [dict(a_width=8, b_width=8, acc_width=32, saturate=False, pipeline=True),  # the pipelined PE's
             dict(a_width=10, b_width=12, acc_width=16, saturate=True, pipeline=True)]
PIPELINED_IDS = ["8x8+32wrap-pipelined", "10x12+16sat-pipelined"]


@pytest.mark.parametrize("params", PARAMS, ids=IDS)
def test_random_verilator(params):
    run_verilator(MACCell(**params), "sparq.sim.tb.mac:random_mac", seed=7, n=2000, **params)


@pytest.mark.parametrize("params", PIPELINED, ids=PIPELINED_IDS)
def test_random_pipelined_verilator(params):
    run_verilator(MACCell(**params), "sparq.sim.tb.mac:random_mac", seed=9, n=2000, **params)


@pytest.mark.parametrize("params", PIPELINED, ids=PIPELINED_IDS)
def test_random_pipelined_amaranth(params):
    run_amaranth(MACCell(**params), "sparq.sim.tb.mac:random_mac", seed=10, n=300, **params)


@pytest.mark.parametrize("params", PARAMS, ids=IDS)
def test_random_amaranth(params):
    run_amaranth(MACCell(**params), "sparq.sim.tb.mac:random_mac", seed=8, n=300, **params)


@pytest.mark.parametrize("params", PARAMS, ids=IDS)
@pytest.mark.parametrize("case", list(overflow_cases(8, 8, 16)))
def test_overflow_verilator(params, case):
    stimulus = overflow_cases(params["a_width"], params["b_width"], params["acc_width"])[case]
    result = run_verilator(MACCell(**params), accumulate_sequence, **stimulus, **params)
    if case == "up_past_max" and params["saturate"]:
        assert result["final"] == (1 << (params["acc_width"] - 1)) - 1


@pytest.mark.parametrize("params", PARAMS[1:3], ids=IDS[1:3])
def test_overflow_amaranth(params):
    for stimulus in overflow_cases(params["a_width"], params["b_width"], params["acc_width"]).values():
        run_amaranth(MACCell(**params), accumulate_sequence, **stimulus, **params)


def test_mismatch_names_index_expected_and_got():
    """A wrong golden model (the wrap model against saturating hardware) fails with the first differing index."""
    sat = dict(a_width=8, b_width=8, acc_width=12, saturate=True)
    stimulus = overflow_cases(8, 8, 12)["up_past_max"]
    with pytest.raises(AssertionError, match=r"first at index \d+: expected -?\d+, got -?\d+"):
        run_amaranth(MACCell(**sat), accumulate_sequence, **stimulus, **{**sat, "saturate": False})


@pytest.mark.parametrize("bad", [dict(a_width=0), dict(acc_width=-3), dict(b_width=2.5)])
def test_bad_widths_are_refused(bad):
    with pytest.raises(ValueError, match="must be a positive integer"):
        MACCell(**bad)
