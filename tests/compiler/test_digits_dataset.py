"""The digits split and the shipped default models."""

import json

import numpy as np
import pytest

from sparq.compiler.datasets import load_digits_split
from sparq.compiler.default_models import RECIPES, train_default
from sparq.compiler.ir import Conv, Dense
from sparq.compiler.models import MODELS_DIR, SHIPPED, load_shipped, shipped_path
from sparq.compiler.train import accuracy


def test_split_shapes_types_and_range(digits):
    x_train, y_train, x_test, y_test = digits
    assert x_train.shape == (1257, 64) and x_test.shape == (540, 64)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert 0.0 <= x_train.min() and x_train.max() == 1.0
    assert set(np.unique(y_test)) == set(range(10))
    assert np.bincount(y_test).min() >= 50  # stratified: every class about 54 times


def test_split_is_fixed(digits):
    again = load_digits_split()
    assert all(np.array_equal(a, b) for a, b in zip(digits, again))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_are_small_and_reach_their_recorded_accuracy(name, digits):
    metadata = json.loads((MODELS_DIR / "digits_models.json").read_text())[name]
    assert shipped_path(name).stat().st_size < 300_000
    model = load_shipped(name)
    assert model.input_shape == (64,) and model.output_shape == (10,)
    assert accuracy(model, digits[2], digits[3]) == pytest.approx(metadata["test_accuracy"])
    assert metadata["test_accuracy"] > 0.96


def test_mlp_is_lenet_300_100_shaped(mlp):
    assert [layer.weight.shape for layer in mlp.weighted()] == [(300, 64), (100, 300), (10, 100)]
    assert all(isinstance(layer, Dense) for layer in mlp.weighted())


def test_cnn_has_two_conv_layers_and_one_fc(cnn):
    assert [type(layer) for layer in cnn.weighted()] == [Conv, Conv, Dense]


@pytest.mark.slow
@pytest.mark.parametrize("name", RECIPES)
def test_retraining_reproduces_the_shipped_accuracy(name):
    metadata = json.loads((MODELS_DIR / "digits_models.json").read_text())[name]
    _, scores = train_default(name, progress=False)
    assert scores["test_accuracy"] == pytest.approx(metadata["test_accuracy"], abs=0.01)
