"""Distillation: the combined loss's logit gradient checks numerically, it reduces to cross-entropy at alpha 0, and
distilling moves a student towards the teacher."""

import numpy as np
import pytest

from sparq.compiler.distill import distill, distillation_loss, soft_targets
from sparq.compiler.errors import ConfigError
from sparq.compiler.ir import Dense, Model, Relu, forward
from sparq.compiler.train import softmax_cross_entropy


def _targets(rng, n, classes, temperature):
    teacher = Model([Dense("t", rng.normal(0, 2, (classes, 5)), rng.normal(0, 1, classes))], (5,))
    x = rng.normal(size=(n, 5)).astype(np.float32)
    return soft_targets(teacher, x, rng.integers(0, classes, n), temperature)


@pytest.mark.parametrize("temperature, alpha", [(1.0, 0.5), (4.0, 0.7), (8.0, 1.0), (2.0, 0.0)])
def test_gradient_matches_finite_differences(temperature, alpha):
    rng = np.random.default_rng(int(temperature * 10 + alpha * 100))
    targets = _targets(rng, 6, 4, temperature)
    logits = rng.normal(0, 3, (6, 4))
    loss = distillation_loss(temperature, alpha)
    _, grad = loss(logits, targets)
    numeric = np.zeros_like(logits)
    h = 1e-5
    for index in np.ndindex(logits.shape):
        up, down = logits.copy(), logits.copy()
        up[index] += h
        down[index] -= h
        numeric[index] = (loss(up, targets)[0] - loss(down, targets)[0]) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=2e-3, atol=1e-5)


def test_alpha_zero_is_cross_entropy_and_soft_targets_are_distributions():
    rng = np.random.default_rng(1)
    targets = _targets(rng, 8, 5, 3.0)
    np.testing.assert_allclose(targets["soft"].sum(axis=1), 1.0)
    logits = rng.normal(size=(8, 5)).astype(np.float32)
    value, grad = distillation_loss(3.0, 0.0)(logits, targets)
    ce, ce_grad = softmax_cross_entropy(logits, targets["label"])
    assert value == pytest.approx(ce)
    np.testing.assert_allclose(grad, ce_grad, rtol=1e-6)


def test_soft_loss_is_zero_at_the_teacher():
    rng = np.random.default_rng(2)
    targets = _targets(rng, 4, 3, 2.0)
    logits = 2.0 * np.log(targets["soft"])  # softmax(logits / T) == soft targets
    value, grad = distillation_loss(2.0, 1.0)(logits, targets)
    assert value == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(grad, 0.0, atol=1e-6)


def test_distilled_student_agrees_with_teacher():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 5)).astype(np.float32)
    teacher = Model([Dense("a", rng.normal(0, 1, (12, 5)), np.zeros(12)), Relu("r"),
                     Dense("b", rng.normal(0, 1, (3, 12)), np.zeros(3))], (5,))
    labels = forward(teacher, x).argmax(axis=1)
    student = Model([Dense("fc", rng.normal(0, 0.1, (3, 5)), np.zeros(3))], (5,))
    trained = distill(teacher, student, x, labels, temperature=4.0, alpha=0.9, epochs=15, lr=1e-2, progress=False)
    before = (forward(student, x).argmax(1) == labels).mean()
    after = (forward(trained, x).argmax(1) == labels).mean()
    assert after > max(before, 0.7)


def test_bad_settings():
    with pytest.raises(ConfigError, match="temperature > 0"):
        distillation_loss(0.0, 0.5)
    with pytest.raises(ConfigError, match="alpha"):
        distillation_loss(2.0, 1.5)
