"""The golden models and the scoreboard on their own, in plain numpy."""

import numpy as np
import pytest

from sparq.sim.golden.fifo import FIFOModel
from sparq.sim.golden.mac import accumulate, fit, mac
from sparq.sim.scoreboard import Mismatch, Scoreboard, assert_words_equal


def test_fit_saturates_and_wraps_at_both_ends():
    x = [127, 128, -128, -129, 300, -300]
    assert fit(x, 8, True)[0].tolist() == [127, 127, -128, -128, 127, -128]
    assert fit(x, 8, False)[0].tolist() == [127, -128, -128, 127, 44, -44]
    assert fit(x, 8, True)[1].tolist() == [False, True, False, True, True, True]


def test_mac_is_exact_before_fitting():
    # (-128) * (-128) = 16384 does not fit 15 bits, but 16384 - 1 does: nothing may be fitted before the add.
    y, ovf = mac(-128, -128, -1, a_width=8, b_width=8, acc_width=15, saturate=True)
    assert (int(y), bool(ovf)) == (16383, False)
    y, ovf = mac(-128, -128, 1, a_width=8, b_width=8, acc_width=15, saturate=True)
    assert (int(y), bool(ovf)) == (16383, True)
    y, ovf = mac(-128, -128, 1, a_width=8, b_width=8, acc_width=15, saturate=False)
    assert (int(y), bool(ovf)) == (-16383, True)


def test_saturating_accumulate_carries_the_clamped_value():
    ys = accumulate([100, 100, -100], [1, 1, 1], a_width=8, b_width=8, acc_width=8, saturate=True)
    assert ys.tolist() == [100, 127, 27]
    ys = accumulate([100, 100, -100], [1, 1, 1], a_width=8, b_width=8, acc_width=8, saturate=False)
    assert ys.tolist() == [100, -56, 100]


def test_golden_refuses_widths_it_cannot_model_exactly():
    with pytest.raises(ValueError, match="exact only up to 62-bit"):
        mac(1, 1, 0, a_width=40, b_width=40, acc_width=32, saturate=False)


@pytest.mark.parametrize("depth", [1, 2, 3, 8])
def test_fifo_model_preserves_order_and_bounds_level(depth):
    rng = np.random.default_rng(depth)
    fifo, pushed, popped = FIFOModel(depth), [], []
    for k in range(2000):
        ports = fifo.outputs()
        assert 0 <= ports["level"] <= depth
        payload = ports["o_payload"]
        push, pop = fifo.step(bool(rng.random() < 0.6), k, bool(rng.random() < 0.5))
        if push:
            pushed.append(k)
        if pop:
            popped.append(payload)
    assert popped == pushed[:len(popped)] and len(popped) > 100


def test_fifo_model_full_refuses_and_latency_is_two():
    fifo = FIFOModel(4)
    fifo.step(True, 1, False)
    assert not fifo.outputs()["o_valid"]  # one edge: written into the memory
    fifo.step(False, 0, False)
    assert fifo.outputs()["o_valid"] and fifo.outputs()["o_payload"] == 1  # two edges: registered out
    for k in range(5):
        fifo.step(True, 2 + k, False)
    assert fifo.outputs()["level"] == 4 and not fifo.outputs()["i_ready"]


def test_scoreboard_reports_first_difference():
    with pytest.raises(Mismatch, match="2 of 4 words differ; first at index 1: expected 2, got 5"):
        assert_words_equal([1, 2, 3, 4], [1, 5, 3, 0])
    with pytest.raises(Mismatch, match="expected 3 words, got 2"):
        assert_words_equal([1, 2, 3], [1, 2])
    board = Scoreboard([7, 8])
    board.push(7)
    with pytest.raises(Mismatch, match="index 1: expected 8, got 9"):
        board.push(9)
