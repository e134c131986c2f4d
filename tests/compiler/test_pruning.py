"""Magnitude pruning and iterative prune-and-retrain with fixed masks."""

import numpy as np
import pytest

from sparq.compiler.errors import ConfigError
from sparq.compiler.prune import MaskedWeight, magnitude_mask, prune_and_retrain, quality_sparsity, sparsity_schedule
from sparq.compiler.train import accuracy


def test_mask_prunes_exactly_the_smallest_magnitudes():
    weight = np.random.default_rng(0).normal(size=(40, 25))
    mask = magnitude_mask(weight, 0.9)
    assert mask.sum() == 100
    assert np.abs(weight[mask]).min() >= np.abs(weight[~mask]).max()
    assert magnitude_mask(weight, 0.0).all()


def test_quality_threshold_is_hans_std_rule():
    weight = np.random.default_rng(1).normal(size=10_000)
    expected = np.mean(np.abs(weight) <= 1.5 * weight.std())
    assert quality_sparsity(weight, 1.5) == pytest.approx(expected)
    assert 0.85 < quality_sparsity(weight, 1.5) < 0.88  # a Gaussian has 86.6 % within 1.5 sigma


def test_cubic_schedule_reaches_the_target():
    schedule = sparsity_schedule(0.9, 4)
    assert schedule[-1] == pytest.approx(0.9) and np.all(np.diff(schedule) > 0)
    assert schedule[0] > 0.9 / 4  # prunes most at first


def test_masked_weight_keeps_pruned_weights_zero():
    mask = np.array([[True, False], [False, True]])
    weight = MaskedWeight(np.ones((2, 2)), mask)
    np.testing.assert_array_equal(weight.grads(np.ones((2, 2)))[0], mask)
    weight.w += 3.0
    weight.project()
    np.testing.assert_array_equal(weight.weight(), [[4, 0], [0, 4]])


def test_iterative_pruning_keeps_masks_fixed(mlp, digits):
    x_train, y_train, x_test, y_test = digits
    targets = {"fc1": 0.9, "fc2": 0.9}
    pruned, masks = prune_and_retrain(mlp, x_train, y_train, sparsity=targets, steps=2, epochs=2, progress=False)
    for name, target in targets.items():
        weight = pruned.layer(name).weight
        np.testing.assert_array_equal(weight != 0, masks[name])
        assert 1 - masks[name].mean() == pytest.approx(target, abs=1e-3)
    assert (pruned.layer("fc3").weight != 0).all()
    assert accuracy(pruned, x_test, y_test) > 0.95
    by_quality, _ = prune_and_retrain(mlp, x_train, y_train, quality={"fc2": 1.0}, steps=1, epochs=0,
                                      progress=False)
    assert 1 - np.mean(by_quality.layer("fc2").weight != 0) == pytest.approx(
        quality_sparsity(mlp.layer("fc2").weight, 1.0), abs=1e-3)


def test_bad_pruning_settings(mlp, digits):
    with pytest.raises(ConfigError, match="exactly one"):
        prune_and_retrain(mlp, digits[0], digits[1])
    with pytest.raises(ConfigError, match="no weighted layer"):
        prune_and_retrain(mlp, digits[0], digits[1], sparsity={"fc9": 0.5})
    with pytest.raises(ConfigError, match="prunes every weight"):
        quality_sparsity(np.ones(10) + np.arange(10), 100.0)
