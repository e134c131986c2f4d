"""Backprop, Adam and the training loop."""

import copy

import numpy as np
import pytest

from sparq.compiler.errors import ConfigError
from sparq.compiler.ir import AvgPool, Conv, Dense, Flatten, MaxPool, Model, Relu, Reshape, Residual, forward
from sparq.compiler.train import FreeWeight, accuracy, fit, gradients, softmax_cross_entropy


def small_cnn(seed=0):
    rng = np.random.default_rng(seed)
    return Model([Reshape("r", (2, 5, 5)), Conv("c", rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3), stride=(2, 1),
                                                 padding=(1, 0, 1, 2)),
                  Relu("a"), MaxPool("mp", (2, 2), (1, 1), (0, 1, 1, 0)),
                  AvgPool("ap", (2, 2), (1, 2), (1, 1, 0, 0), count_include_pad=False), Flatten("f"),
                  Dense("d", rng.normal(size=(4, 27)), rng.normal(size=4))], (50,))


def dilated_ceil_cnn(seed=0):
    """A dilated conv and ceil-mode pools whose last windows hang over the padding."""
    rng = np.random.default_rng(seed)
    return Model([Reshape("r", (2, 5, 5)), Conv("c", rng.normal(size=(3, 2, 2, 2)), None, stride=(1, 1),
                                                 padding=(1, 1, 0, 1), dilation=(2, 1)),
                  Relu("a"), MaxPool("mp", (2, 2), (2, 2), (0, 0, 0, 0), dilation=(1, 2), ceil_mode=True),
                  AvgPool("ap", (2, 2), (2, 1), (1, 0, 0, 0), ceil_mode=True, count_include_pad=True), Flatten("f"),
                  Dense("d", rng.normal(size=(4, 12)), rng.normal(size=4))], (50,))


def residual_net(seed=0):
    """A residual conv block and a nested pair of Dense residuals."""
    rng = np.random.default_rng(seed)
    block = Residual("block", [Conv("c1", rng.normal(size=(2, 2, 3, 3)), rng.normal(size=2), padding=1), Relu("a1"),
                               Conv("c2", rng.normal(size=(2, 2, 3, 3)), None, padding=1)])
    inner = Residual("inner", [Dense("d2", rng.normal(size=(6, 6)) / 2, rng.normal(size=6))])
    return Model([Reshape("r", (2, 5, 5)), block, Relu("a2"), Flatten("f"), Dense("d1", rng.normal(size=(6, 50)) / 5),
                  Residual("outer", [Relu("a3"), inner, Relu("a4")]), Dense("d", rng.normal(size=(4, 6)))], (50,))


@pytest.mark.parametrize("make", [small_cnn, dilated_ceil_cnn, residual_net])
def test_gradients_match_finite_differences(make):
    model = make()
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(3, 50)).astype(np.float32), np.array([0, 1, 3])
    _, grads = gradients(model, x, y)

    def loss():
        return softmax_cross_entropy(forward(model, x).astype(np.float64), y)[0]

    for name in [layer.name for layer in model.weighted()]:
        weight = model.layer(name).weight
        numeric = np.zeros_like(weight)
        for index in np.ndindex(weight.shape):
            old = weight[index]
            weight[index] = old + 1e-3
            up = loss()
            weight[index] = old - 1e-3
            down = loss()
            weight[index] = old
            numeric[index] = (up - down) / 2e-3
        np.testing.assert_allclose(grads[name][0], numeric, atol=1e-2 * max(1.0, np.abs(numeric).max()))


def test_fit_is_deterministic_and_leaves_its_input_alone(digits):
    x, y = digits[0], digits[1]
    model = Model([Dense("fc", np.zeros((10, 64)), np.zeros(10))], (64,))
    before = copy.deepcopy(model)
    a = fit(model, x, y, epochs=3, lr=1e-2, seed=4, progress=False)
    b = fit(model, x, y, epochs=3, lr=1e-2, seed=4, progress=False)
    np.testing.assert_array_equal(a.layer("fc").weight, b.layer("fc").weight)
    np.testing.assert_array_equal(model.layer("fc").weight, before.layer("fc").weight)
    assert accuracy(a, digits[2], digits[3]) > 0.9


def test_free_weight_is_the_identity_parameterisation():
    weight = FreeWeight(np.ones((2, 2)))
    assert weight.weight() is weight.params()[0]
    assert weight.grads("g") == ["g"]


def test_bad_training_settings():
    model = Model([Dense("fc", np.zeros((2, 2)), np.zeros(2))], (2,))
    with pytest.raises(ConfigError, match="lr > 0"):
        fit(model, np.zeros((2, 2)), np.zeros(2, int), epochs=1, lr=0)
    with pytest.raises(ConfigError, match="no weighted layer"):
        fit(model, np.zeros((2, 2)), np.zeros(2, int), epochs=1, weights={"nope": FreeWeight(np.zeros((2, 2)))})
