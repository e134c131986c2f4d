"""int8 quantization: per-channel weights, calibration, and bit-exact multiplier + shift requantization."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparq.compiler.errors import ConfigError, UnsupportedError
from sparq.compiler.ir import AvgPool, Conv, Dense, Flatten, Model, Relu, Reshape, forward
from sparq.compiler.quantize import (
    CALIBRATIONS,
    calibrate_scale,
    forward_int8,
    quantize_activation,
    quantize_model,
    quantize_per_channel,
    requant_params,
    requantize,
    round_half_up,
)
from sparq.compiler.train import accuracy


def oracle(acc, multiplier, shift):
    """floor(acc * multiplier / 2**shift + 1/2), clipped to int8, in exact rational arithmetic."""
    return max(-128, min(127, math.floor(Fraction(acc * multiplier, 2 ** shift) + Fraction(1, 2))))


def test_round_half_up_ties():
    np.testing.assert_array_equal(round_half_up([2.5, -2.5, 0.5, -0.5, 1.49, -1.51]), [3, -2, 1, 0, 1, -2])


def test_requantize_ties_round_up():
    np.testing.assert_array_equal(requantize([5, -5, 7, -7, 6, -6], 1, 1), [3, -2, 4, -3, 3, -3])
    np.testing.assert_array_equal(requantize([1000, -1000, 3], 1, 0), [127, -128, 3])


@settings(max_examples=300, deadline=None)
@given(st.integers(-2 ** 31, 2 ** 31 - 1), st.integers(2 ** 15, 2 ** 16 - 1), st.integers(0, 46))
def test_requantize_is_exact(acc, multiplier, shift):
    assert int(requantize(np.array([acc]), multiplier, shift)[0]) == oracle(acc, multiplier, shift)


@settings(max_examples=200, deadline=None)
@given(st.floats(1e-9, 0.999, allow_subnormal=False), st.integers(8, 31))
def test_requant_params_precision(scale, bits):
    multiplier, shift = requant_params(scale, bits)
    assert 2 ** (bits - 1) <= multiplier < 2 ** bits and 0 <= shift <= 62
    assert abs(int(multiplier) / 2 ** int(shift) - scale) <= scale * 2.0 ** -(bits - 1)


def test_requant_params_edges():
    multiplier, shift = requant_params(np.array([1.0 - 1e-9, 1e-30]))
    assert (multiplier[0], shift[0]) == (2 ** 15, 15)  # rounding carried into the next power of two
    assert (multiplier[1], shift[1]) == (0, 0)         # too small for any int32 accumulator to reach 1/2
    with pytest.raises(ConfigError, match="too large"):
        requant_params(2.0 ** 17)
    with pytest.raises(ConfigError, match="finite and positive"):
        requant_params(0.0)


def test_per_channel_weights():
    weight = np.array([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0], [3.0, 1.5, -0.02]], np.float32)
    q, scales = quantize_per_channel(weight)
    assert q.dtype == np.int8 and scales.shape == (3,)
    np.testing.assert_array_equal(q[0], [64, -127, 32])   # 63.5 rounds half up to 64
    np.testing.assert_array_equal(q[1], 0)
    assert q[2, 0] == 127 and scales[2] == pytest.approx(3.0 / 127)
    np.testing.assert_allclose(q * scales[:, None], weight, atol=scales.max() / 2)


def test_calibration_methods():
    samples = np.r_[np.linspace(0, 1, 10_000), 50.0].astype(np.float32)
    assert calibrate_scale(samples, "minmax") == pytest.approx(50 / 127)
    assert calibrate_scale(samples, "percentile", 99.9) == pytest.approx(1 / 127, rel=0.01)
    np.testing.assert_array_equal(quantize_activation([0.0, 1.0, 100.0, -100.0], 1 / 127), [0, 127, 127, -128])
    with pytest.raises(ConfigError, match="unknown calibration"):
        calibrate_scale(samples, "entropy")


@pytest.mark.parametrize("method", CALIBRATIONS)
def test_int8_models_keep_their_accuracy(method, mlp, cnn, digits):
    x_train, _, x_test, y_test = digits
    for model in (mlp, cnn):
        qmodel = quantize_model(model, x_train[:400], method)
        int8_accuracy = np.mean(forward_int8(qmodel, x_test).argmax(axis=1) == y_test)
        assert int8_accuracy >= accuracy(model, x_test, y_test) - 0.01
    layer = qmodel.layers["conv1"]
    assert layer.weight.dtype == np.int8 and layer.bias.dtype == np.int32
    assert layer.multiplier.dtype == np.int64 and qmodel.layers["fc"].multiplier is None


def test_int8_layers_chain_requantized_integers():
    rng = np.random.default_rng(0)
    model = Model([Reshape("r", (1, 4, 4)), Conv("c", rng.normal(size=(2, 1, 3, 3)), rng.normal(size=2), padding=1),
                   Relu("a"), AvgPool("p", 2), Flatten("f"), Dense("d", rng.normal(size=(3, 8)), np.zeros(3))], (16,))
    x = rng.random((50, 16), dtype=np.float32)
    qmodel = quantize_model(model, x)
    expected = forward(model, x)
    assert np.abs(forward_int8(qmodel, x) - expected).max() < 0.05 * np.abs(expected).max()
    relu_output = np.maximum(model.layers[1].forward(model.layers[0].forward(x)), 0)
    assert qmodel.layers["c"].output_scale == qmodel.layers["d"].input_scale == relu_output.max() / 127


def test_models_must_end_with_logits():
    model = Model([Dense("d", np.ones((2, 2)), np.zeros(2)), Relu("r")], (2,))
    with pytest.raises(UnsupportedError, match="ends with"):
        quantize_model(model, np.ones((4, 2), np.float32))
