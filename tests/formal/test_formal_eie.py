"""Formal properties of EIE's control path and its stream ports (sparq.sim.formal.eie, .fifo, .rules): the leading
non-zero detector, the CCU's scan and its handshake with the PEs, the pointer and sparse-matrix read units' streams.
Times in README.md here."""

import pytest

from sparq.hw.eie.pointer import PointerReadUnit
from sparq.hw.eie.spmat import SparseMatrixReadUnit
from sparq.sim.formal import cover, prove
from sparq.sim.formal.eie import CCUHandshake, LayerScan, LeadingNonZero, ccu_config
from sparq.sim.formal.rules import StreamRules

SLOW = pytest.mark.slow


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 16, 64])
def test_leading_non_zero(n):
    assert prove(LeadingNonZero(n)).verdict == "proved"


def _configs(*slow):
    """(n_pe, act_depth) from 1 to 4 PEs; those in ``slow`` are marked slow."""
    return [pytest.param(n, a, id=f"{n}pe-act{a}", marks=[SLOW] if (n, a) in slow else [])
            for n, a in [(1, 2), (2, 1), (2, 2), (4, 1), (3, 2), (4, 2)]]


@pytest.mark.parametrize("n_pe, act_depth", _configs((1, 2), (2, 2), (4, 1), (3, 2), (4, 2)))
def test_layer_scan(n_pe, act_depth):
    prove(LayerScan(ccu_config(n_pe, act_depth)))


@pytest.mark.parametrize("n_pe, act_depth", _configs((2, 2), (4, 1), (3, 2), (4, 2)))
def test_ccu_handshake(n_pe, act_depth):
    prove(CCUHandshake(ccu_config(n_pe, act_depth)))


def test_ccu_covers():
    """Two dense layers scanned and finished are reachable within the bounds, so the proofs above are not vacuous."""
    cover(LayerScan(ccu_config(2, 2)))
    cover(CCUHandshake(ccu_config(2, 2)))


@pytest.mark.parametrize("spram", [False, True])
def test_read_unit_streams(spram):
    """The pointer and sparse-matrix read units keep the stream rules on their input and output streams, with any
    memory contents and host writes at any time."""
    ptr_width = 5  # a 2-word sparse matrix: entry addresses up to 16
    assert prove(StreamRules(PointerReadUnit(4, ptr_width))).verdict == "proved"
    assert prove(StreamRules(SparseMatrixReadUnit(2, ptr_width, spram=spram))).verdict == "proved"
