"""Trained ternary quantization."""

import numpy as np
import pytest

from sparq.compiler.errors import ConfigError
from sparq.compiler.ternary import TernaryWeight, train_ternary
from sparq.compiler.train import accuracy


def test_ternary_values_and_threshold():
    weight = np.array([[1.0, 0.04, -0.06, -0.5], [0.3, -0.01, 0.05, -2.0]], np.float32)
    ternary = TernaryWeight(weight)  # delta = 0.05 * 2.0 = 0.1
    np.testing.assert_allclose(ternary.wp, [np.mean([1.0, 0.3])])
    np.testing.assert_allclose(ternary.wn, [np.mean([0.5, 2.0])])
    w = ternary.weight()
    assert set(np.unique(w)) == {0.0, ternary.wp[0], -ternary.wn[0]}
    np.testing.assert_array_equal(w != 0, np.abs(weight) > 0.1)
    np.testing.assert_array_equal(ternary.shared().decode(), w)
    assert ternary.shared().codebook[0] == 0.0


def test_ternary_gradients():
    weight = np.array([[1.0, 0.0, -1.0, 0.5]], np.float32)
    ternary = TernaryWeight(weight)
    grad = np.array([[0.1, 0.2, 0.3, 0.4]], np.float32)
    latent, grad_wp, grad_wn = ternary.grads(grad)
    assert grad_wp[0] == pytest.approx(0.5) and grad_wn[0] == pytest.approx(-0.3)
    np.testing.assert_allclose(latent, [[0.1 * 0.75, 0.2, 0.3 * 1.0, 0.4 * 0.75]])


def test_training_keeps_accuracy(mlp, digits):
    x_train, y_train, x_test, y_test = digits
    model, ternary = train_ternary(mlp, x_train, y_train, epochs=4, progress=False)
    for name in ("fc1", "fc2", "fc3"):
        assert len(np.unique(model.layer(name).weight)) == 3
    assert accuracy(model, x_test, y_test) > 0.95


def test_one_signed_layer_is_refused():
    with pytest.raises(ConfigError, match="both above"):
        TernaryWeight(np.ones((2, 2)))
