"""EIE blocks against their golden behaviour on Amaranth's simulator (no build), with random gaps and, where a
stream has back-pressure, random back-pressure."""

import random

import pytest

from sparq.hw.eie import ArithmeticUnit, LeadingNonZeroDetector, PointerReadUnit, SparseMatrixReadUnit
from sparq.hw.eie.activation import ActivationRegisters
from sparq.sim.harness import run_amaranth

PRESSURE = [(0.0, 0.0), (0.3, 0.3), (0.1, 0.7)]
GAPS = [0.0, 0.3, 0.1]  # the sparse-matrix read unit's output is always ready: gaps on its input only


@pytest.mark.parametrize("n", [1, 3, 4, 5, 16, 17])
def test_lnzd(n):
    run_amaranth(LeadingNonZeroDetector(n), "sparq.sim.tb.eie:lnzd_random", seed=n, n=n, count=200)


@pytest.mark.parametrize("gap,stall", PRESSURE)
def test_pointer_read_unit(gap, stall):
    rng = random.Random(1)
    pointers = sorted(rng.randrange(200) for _ in range(64))
    columns = [rng.randrange(40) for _ in range(150)]
    run_amaranth(PointerReadUnit(64, 10), "sparq.sim.tb.eie:pointer_unit", seed=2, pointers=pointers, ptr_base=13,
                 ptr_width=10, columns=columns, gap_probability=gap, stall_probability=stall)


def _spmat_unit(gap, spram=False):
    """40 random runs (empty, short, long, skipped columns) through a SparseMatrixReadUnit; returns them and the
    body's result."""
    rng = random.Random(3)
    runs, start = [], 0
    for _ in range(40):
        length = rng.choice([0, 0, 1, 2, 3, 8, 9, 17])
        start += rng.choice([0, 0, 5])  # skipped columns
        runs.append((start, start + length))
        start += length
    words = [rng.getrandbits(64) for _ in range(3 + start // 8 + 1)]
    unit = SparseMatrixReadUnit(64, 12, spram=spram)
    return runs, run_amaranth(unit, "sparq.sim.tb.eie:spmat_unit", seed=4, words=words, spmat_base=3, ptr_width=12,
                              runs=runs, gap_probability=gap, spram=spram)


@pytest.mark.parametrize("gap", GAPS)
def test_sparse_matrix_read_unit(gap):
    runs, result = _spmat_unit(gap)
    assert result["busy"] == sum(max(1, t - s) for s, t in runs)
    if gap == 0:  # back to back: max(1, n) cycles per column, plus the word's and the entry's registers
        assert result["cycles"] <= sum(max(1, t - s) for s, t in runs) + 3


@pytest.mark.parametrize("gap", GAPS)
def test_sparse_matrix_read_unit_spram(gap):
    """The SPRAM organisation, written as halfwords: the same entries in the same cycles as the default one."""
    assert _spmat_unit(gap, spram=True)[1] == _spmat_unit(gap)[1]


def test_sparse_matrix_read_unit_spram_has_no_init():
    with pytest.raises(ValueError, match="no initial contents"):
        SparseMatrixReadUnit(64, 12, [1], spram=True)


@pytest.mark.parametrize("act_depth, max_layers", [(1, 1), (5, 3), (32, 2)])
def test_arithmetic_unit_with_bypass(act_depth, max_layers):
    run_amaranth(ArithmeticUnit(act_depth, bias_depth=2 * act_depth, max_layers=max_layers), "sparq.sim.tb.eie:arith_random",
                 seed=act_depth, act_depth=act_depth, max_layers=max_layers, count=400,
                 flush_latency=ArithmeticUnit.FLUSH_LATENCY)


@pytest.mark.parametrize("act_depth", [1, 7])
def test_activation_finish(act_depth):
    run_amaranth(ActivationRegisters(act_depth), "sparq.sim.tb.eie:activation_finish_random", seed=act_depth,
                 act_depth=act_depth, count=700)
