"""The layer IR and its float32 reference inference, against direct loop implementations."""

import numpy as np
import pytest

from sparq.compiler.errors import ShapeError
from sparq.compiler.ir import AvgPool, Conv, Dense, Flatten, MaxPool, Model, Relu, Reshape, forward, trace


def naive_conv(x, w, b, stride, pads):
    top, left, bottom, right = pads
    x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = (h - kh) // stride[0] + 1, (wd - kw) // stride[1] + 1
    y = np.zeros((n, o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, :, i * stride[0]:i * stride[0] + kh, j * stride[1]:j * stride[1] + kw]
            y[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w) + b
    return y


def naive_pool(x, kernel, stride, pads, reduce, fill):
    top, left, bottom, right = pads
    valid = np.pad(np.ones_like(x), ((0, 0), (0, 0), (top, bottom), (left, right)))
    x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=fill)
    oh, ow = (x.shape[2] - kernel[0]) // stride[0] + 1, (x.shape[3] - kernel[1]) // stride[1] + 1
    y = np.zeros(x.shape[:2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            window = np.s_[:, :, i * stride[0]:i * stride[0] + kernel[0], j * stride[1]:j * stride[1] + kernel[1]]
            y[:, :, i, j] = reduce(x[window], valid[window])
    return y


def test_dense_rows_are_outputs():
    weight = np.arange(6, dtype=np.float32).reshape(3, 2)
    layer = Dense("fc", weight, [1, 2, 3])
    assert layer.weight.dtype == np.float32 and layer.output_shape((2,)) == (3,)
    np.testing.assert_allclose(layer.forward(np.array([[1.0, 1.0]], np.float32)), [[2, 7, 12]])


@pytest.mark.parametrize("stride,pads", [((1, 1), (0, 0, 0, 0)), ((2, 1), (1, 0, 2, 1)), ((2, 3), (1, 1, 1, 1))])
def test_conv_matches_direct_loops(stride, pads):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 7, 6)).astype(np.float32)
    layer = Conv("conv", rng.normal(size=(4, 3, 3, 2)), rng.normal(size=4), stride=stride, padding=pads)
    y = layer.forward(x)
    assert y.shape == (2, *layer.output_shape((3, 7, 6)))
    np.testing.assert_allclose(y, naive_conv(x, layer.weight, layer.bias, stride, pads), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel,stride,pads", [((2, 2), (2, 2), (0, 0, 0, 0)), ((3, 2), (1, 2), (1, 0, 1, 1))])
def test_pools_match_direct_loops(kernel, stride, pads):
    x = np.random.default_rng(1).normal(size=(2, 3, 6, 5)).astype(np.float32)
    max_pool = MaxPool("max", kernel, stride, pads)
    np.testing.assert_allclose(max_pool.forward(x), naive_pool(x, kernel, stride, pads,
                                                               lambda w, v: w.max(axis=(2, 3)), -np.inf), rtol=1e-6)
    for include in (False, True):
        avg = AvgPool("avg", kernel, stride, pads, count_include_pad=include)
        divisor = (lambda w, v: w[0, 0].size) if include else (lambda w, v: v.sum(axis=(2, 3)))
        expected = naive_pool(x, kernel, stride, pads, lambda w, v: w.sum(axis=(2, 3)) / divisor(w, v), 0.0)  # noqa: B023 (called here)
        np.testing.assert_allclose(avg.forward(x), expected, rtol=1e-5, atol=1e-6)


def test_model_chains_shapes_and_trace_records_every_layer():
    rng = np.random.default_rng(2)
    model = Model([Reshape("r", (1, 4, 4)), Conv("c", rng.normal(size=(2, 1, 3, 3)), np.zeros(2), padding=1),
                   Relu("a"), MaxPool("p", 2), Flatten("f"), Dense("d", rng.normal(size=(3, 8)), np.zeros(3))], (16,))
    assert model.output_shape == (3,)
    assert [layer.name for layer in model.weighted()] == ["c", "d"]
    x = rng.normal(size=(5, 16))
    values = trace(model, x)
    assert len(values) == len(model.layers) + 1 and values[3].shape == (5, 2, 4, 4)
    np.testing.assert_array_equal(values[-1], forward(model, x))


def test_bad_models_fail_when_built():
    dense = Dense("d", np.ones((3, 4)), np.zeros(3))
    with pytest.raises(ShapeError, match="takes \\(4,\\) inputs"):
        Model([dense], (5,))
    with pytest.raises(ShapeError, match="unique"):
        Model([Relu("x"), Relu("x")], (4,))
    with pytest.raises(ShapeError, match="bias has 2 entries"):
        Dense("d", np.ones((3, 4)), np.zeros(2))
    with pytest.raises(ShapeError, match="does not fit"):
        Model([MaxPool("p", 5)], (1, 4, 4))
    with pytest.raises(ShapeError, match="batch of shape"):
        forward(Model([dense], (4,)), np.ones((2, 5)))
