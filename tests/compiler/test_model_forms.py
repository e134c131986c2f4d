"""Models built with onnx.helper, as users' exporters write them, through everything the compiler does: data from an
.npz, compression, the EIE lowering (golden model) and the systolic lowering (golden model)."""

import numpy as np
import pytest
from onnx import helper
from onnx_models import image_mlp, init, save

from sparq.compiler.data import load_data
from sparq.compiler.eie import eie_inputs, eie_split, lower_compressed
from sparq.compiler.ir import forward
from sparq.compiler.models import load_shipped
from sparq.compiler.onnx_io import read_onnx
from sparq.compiler.pipeline import DeepCompressionConfig, compress
from sparq.compiler.systolic import compile_network
from sparq.compiler.train import accuracy, fit
from sparq.formats.eie import EieConfig
from sparq.sim.eie import Golden
from sparq.sim.systolic.golden import run_network
from sparq.sim.systolic.stimulus import config_for

ort = pytest.importorskip("onnxruntime")
EIE = EieConfig(n_pe=4, ptr_depth=8192, spmat_depth=8192, act_depth=512, bias_depth=1024)
FAST = dict(prune_steps=2, prune_epochs=2, finetune_epochs=1)


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory, digits):
    """The digits split as a user's .npz of (n, 1, 8, 8) images."""
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    x_train, y_train, x_test, y_test = digits
    np.savez(path, x_train=x_train.reshape(-1, 1, 8, 8), y_train=y_train, x_test=x_test.reshape(-1, 1, 8, 8),
             y_test=y_test)
    return path


def test_image_mlp_from_onnx_helper_through_compression_and_both_lowerings(tmp_path, digits_npz):
    path = image_mlp(tmp_path / "user_mlp.onnx")
    model = read_onnx(path)
    data = load_data(digits_npz, model.input_shape, model.output_shape)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    probabilities = session.run(None, {"x": data.x_test})[0]
    assert model.softmax and (probabilities.argmax(1) == forward(model, data.x_test).argmax(1)).all()
    assert accuracy(model, data.x_test, data.y_test) == pytest.approx(0.9796, abs=1e-3)

    compressed, report = compress(model, data, DeepCompressionConfig({"fc1": 0.9, "fc2": 0.9, "fc3": 0.6}, **FAST),
                                  progress=False)
    assert report["accuracy"]["compressed"] >= 0.95 and report["total"]["ratio"]["huffman"] > 15

    image = lower_compressed(compressed, EIE, calibration_x=data.x_train)
    assert image.input_len == 64
    golden = Golden(image)
    eie = np.array([np.argmax(golden.run(a).output) for a in eie_inputs(compressed.model, image, data.x_test)])
    assert (eie == forward(compressed.model, data.x_test).argmax(1)).mean() >= 0.99

    network = compile_network(compressed.model, data.x_train, config_for(8), name="user_mlp")
    logits, _ = run_network(network, data.x_test)
    assert (logits.argmax(1) == data.y_test).mean() >= report["accuracy"]["compressed"] - 0.01


def variant_cnn(path):
    """A digits CNN in the exporter variants: SAME_UPPER conv + BatchNormalization, a ceil-mode MaxPool, a
    dilated SAME_LOWER-free conv, a ceil-mode AveragePool with count_include_pad, Dropout, Flatten at axis -3."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "cw1"], ["c1"], name="conv1", kernel_shape=[3, 3], auto_pad="SAME_UPPER"),
             helper.make_node("BatchNormalization", ["c1", "g", "beta", "mean", "var"], ["bn1"], name="bn1"),
             helper.make_node("Relu", ["bn1"], ["r1"], name="relu1"),
             helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[3, 3], strides=[2, 2],
                              ceil_mode=1),
             helper.make_node("Conv", ["p1", "cw2", "cb2"], ["c2"], name="conv2", kernel_shape=[2, 2],
                              dilations=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("AveragePool", ["r2"], ["p2"], name="pool2", kernel_shape=[2, 2], strides=[2, 2],
                              ceil_mode=1, count_include_pad=1, pads=[1, 1, 0, 0]),
             helper.make_node("Dropout", ["p2"], ["d"], name="drop"),
             helper.make_node("Flatten", ["d"], ["f"], name="flatten", axis=-3),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1)]
    initializers = [init("cw1", rng.normal(0, 0.5, (6, 1, 3, 3))), init("g", np.ones(6)), init("beta", np.zeros(6)),
                    init("mean", np.zeros(6)), init("var", np.ones(6)), init("cw2", rng.normal(0, 0.3, (8, 6, 2, 2))),
                    init("cb2", np.zeros(8)), init("fw", rng.normal(0, 0.3, (10, 8 * 3 * 3))), init("fb", np.zeros(10))]
    return save(path, nodes, initializers, (1, 8, 8), "y")


def test_exporter_variant_cnn_trains_compresses_and_lowers(tmp_path, digits_npz):
    path = variant_cnn(tmp_path / "variant_cnn.onnx")
    model = read_onnx(path)
    x = np.random.default_rng(1).random((20, 1, 8, 8), dtype=np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(forward(model, x), session.run(None, {"x": x})[0], rtol=1e-4, atol=1e-5)

    data = load_data(digits_npz, model.input_shape, model.output_shape)
    model = fit(model, data.x_train, data.y_train, epochs=10, lr=1e-2, progress=False)  # dilated and ceil backprop
    assert accuracy(model, data.x_test, data.y_test) >= 0.9
    compressed, report = compress(model, data, DeepCompressionConfig({"conv2": 0.5, "fc": 0.5}, **FAST),
                                  progress=False)
    assert report["accuracy"]["compressed"] >= report["accuracy"]["float"] - 0.05  # a short FAST schedule

    network = compile_network(compressed.model, data.x_train, config_for(8), name="variant_cnn")
    logits, _ = run_network(network, data.x_test[:200])
    reference = forward(compressed.model, data.x_test[:200]).argmax(1)
    assert (logits.argmax(1) == reference).mean() >= 0.95

    image = lower_compressed(compressed, EIE, calibration_x=data.x_train, host_prefix=True)
    golden = Golden(image)
    eie = [np.argmax(golden.run(a).output) for a in eie_inputs(compressed.model, image, data.x_test[:200],
                                                               host_prefix=True)]
    assert (np.array(eie) == reference).mean() >= 0.97


def residual_cnn(path):
    """A small ResNet for the digits: a stem conv, one basic block (conv, ReLU, conv, Add of its input, ReLU), a
    max pool, and an MLP head with a residual Dense layer."""
    rng = np.random.default_rng(2)
    nodes = [helper.make_node("Conv", ["x", "w0"], ["c0"], name="stem", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c0"], ["s"], name="stem_relu"),
             helper.make_node("Conv", ["s", "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["s", "c2"], ["sum"], name="block"),
             helper.make_node("Relu", ["sum"], ["o"], name="block_relu"),
             helper.make_node("MaxPool", ["o"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "w3", "b3"], ["h"], name="fc1", transB=1),
             helper.make_node("Relu", ["h"], ["hr"], name="fc1_relu"),
             helper.make_node("Gemm", ["hr", "w4"], ["h2"], name="fc2", transB=1),
             helper.make_node("Add", ["h2", "hr"], ["hs"], name="head_skip"),
             helper.make_node("Relu", ["hs"], ["hsr"], name="head_relu"),
             helper.make_node("Gemm", ["hsr", "w5", "b5"], ["y"], name="fc3", transB=1)]
    initializers = [init("w0", rng.normal(0, 0.5, (4, 1, 3, 3))), init("w1", rng.normal(0, 0.2, (4, 4, 3, 3))),
                    init("b1", np.zeros(4)), init("w2", rng.normal(0, 0.2, (4, 4, 3, 3))),
                    init("w3", rng.normal(0, 0.15, (32, 64))), init("b3", np.zeros(32)),
                    init("w4", rng.normal(0, 0.15, (32, 32))), init("w5", rng.normal(0, 0.2, (10, 32))),
                    init("b5", np.zeros(10))]
    return save(path, nodes, initializers, (1, 8, 8), "y")


def test_residual_network_trains_compresses_saves_exports_and_lowers(tmp_path, digits_npz):
    from sparq.compiler.errors import UnsupportedError
    from sparq.compiler.pipeline import CompressedModel
    from sparq.compiler.quantize import forward_int8, quantize_model

    model = read_onnx(residual_cnn(tmp_path / "resnet.onnx"))
    assert [type(layer).__name__ for layer in model.layers].count("Residual") == 2
    data = load_data(digits_npz, model.input_shape, model.output_shape)
    model = fit(model, data.x_train, data.y_train, epochs=8, lr=5e-3, progress=False)
    assert accuracy(model, data.x_test, data.y_test) >= 0.9
    compressed, report = compress(model, data, DeepCompressionConfig({"conv2": 0.5, "fc1": 0.7, "fc2": 0.7},
                                                                     **FAST), progress=False)
    assert report["accuracy"]["compressed"] >= report["accuracy"]["float"] - 0.05
    assert {row["name"] for row in report["layers"]} == {"stem", "conv1", "conv2", "fc1", "fc2", "fc3"}

    compressed.save(tmp_path / "compressed.npz")
    back = CompressedModel.load(tmp_path / "compressed.npz")
    np.testing.assert_array_equal(forward(back.model, data.x_test), forward(compressed.model, data.x_test))
    compressed.export_onnx(tmp_path / "compressed.onnx")
    session = ort.InferenceSession(str(tmp_path / "compressed.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": data.x_test})[0], forward(compressed.model, data.x_test),
                               rtol=1e-5, atol=1e-5)

    reference = forward(compressed.model, data.x_test[:200]).argmax(1)
    int8 = forward_int8(quantize_model(compressed.model, data.x_train), data.x_test[:200]).argmax(1)
    network = compile_network(compressed.model, data.x_train, config_for(8), name="resnet")
    assert sum(1 for step in network.steps if getattr(step, "adds", None)) == 2
    logits, _ = run_network(network, data.x_test[:200])
    assert (logits.argmax(1) == reference).mean() >= 0.95 and (int8 == reference).mean() >= 0.95

    with pytest.raises(UnsupportedError, match="host_prefix"):
        lower_compressed(compressed, EIE)
    _, fc = eie_split(compressed.model, host_prefix=True)
    assert [layer.name for layer in fc] == ["fc3"]  # the head's residual runs on the host
    image = lower_compressed(compressed, EIE, calibration_x=data.x_train, host_prefix=True)
    golden = Golden(image)
    eie = [np.argmax(golden.run(a).output) for a in eie_inputs(compressed.model, image, data.x_test[:200],
                                                               host_prefix=True)]
    assert (np.array(eie) == reference).mean() >= 0.97


def test_systolic_calibration_follows_the_given_data_not_digits():
    """The wine MLP calibrated on wine features (standardised, up to ~4.5) and on the same features x 100."""
    from sparq.compiler.datasets import load_wine_split

    x_train = load_wine_split()[0]
    model = load_shipped("wine_mlp")
    for factor in (1.0, 100.0):
        network = compile_network(model, x_train * factor, config_for(8), name="wine")
        assert network.input_scale == pytest.approx(np.abs(x_train * factor).max() / 127)


def test_lowering_refuses_out_of_range_weights_before_the_work(digits):
    from sparq.compiler.errors import RangeError

    model = load_shipped("digits_mlp")
    model.layer("fc3").weight[0, 0] = 5e4
    with pytest.raises(RangeError, match="stop the systolic lowering before it starts: layer 'fc3': weight 5e\\+04"):
        compile_network(model, digits[0], config_for(8))
