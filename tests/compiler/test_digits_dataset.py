"""The bundled data splits and the shipped models."""

import json

import numpy as np
import pytest

from sparq.compiler.datasets import BUNDLED, load_digits_split, load_split
from sparq.compiler.default_models import RECIPES, train_default
from sparq.compiler.errors import DataError, ModelFormatError
from sparq.compiler.ir import Conv, Dense
from sparq.compiler.models import MODELS_DIR, SHIPPED, SHIPPED_DATA, load_shipped, shipped_path, shipped_split
from sparq.compiler.train import accuracy

SHAPES = {"digits": ((64,), 10), "wine": ((13,), 3), "breast_cancer": ((30,), 2)}


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


@pytest.mark.parametrize("name", BUNDLED)
def test_tabular_splits_are_fixed_standardised_and_stratified(name):
    x_train, y_train, x_test, y_test = load_split(name)
    (features,), classes = SHAPES[name]
    assert x_train.shape[1] == features and x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert set(np.unique(y_test)) == set(np.unique(y_train)) == set(range(classes))
    assert abs(len(x_test) / (len(x_train) + len(x_test)) - 0.3) < 0.01
    if name != "digits":
        np.testing.assert_allclose(x_train.mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(x_train.std(axis=0), 1, atol=1e-4)
    assert all(np.array_equal(a, b) for a, b in zip(load_split(name), (x_train, y_train, x_test, y_test)))


def test_unknown_names_are_clear():
    with pytest.raises(DataError, match="bundled ones are digits, wine, breast_cancer"):
        load_split("iris")
    with pytest.raises(ModelFormatError, match="shipped models are"):
        shipped_split("iris_mlp")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_are_small_and_reach_their_recorded_accuracy(name):
    metadata = json.loads((MODELS_DIR / "shipped_models.json").read_text())[name]
    assert shipped_path(name).stat().st_size < 300_000 and metadata["data"] == SHIPPED_DATA[name]
    model = load_shipped(name)
    inputs, classes = SHAPES[SHIPPED_DATA[name]]
    assert model.input_shape == inputs and model.output_shape == (classes,)
    _, _, x_test, y_test = shipped_split(name)
    assert accuracy(model, x_test, y_test) == pytest.approx(metadata["test_accuracy"])
    assert metadata["test_accuracy"] > 0.96


def test_mlp_is_lenet_300_100_shaped(mlp):
    assert [layer.weight.shape for layer in mlp.weighted()] == [(300, 64), (100, 300), (10, 100)]
    assert all(isinstance(layer, Dense) for layer in mlp.weighted())


def test_cnn_has_two_conv_layers_and_one_fc(cnn):
    assert [type(layer) for layer in cnn.weighted()] == [Conv, Conv, Dense]


@pytest.mark.slow
@pytest.mark.parametrize("name", RECIPES)
def test_retraining_reproduces_the_shipped_accuracy(name):
    metadata = json.loads((MODELS_DIR / "shipped_models.json").read_text())[name]
    _, scores = train_default(name, progress=False)
    assert scores["test_accuracy"] == pytest.approx(metadata["test_accuracy"], abs=0.01)
