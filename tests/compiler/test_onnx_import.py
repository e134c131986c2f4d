"""ONNX import: the reference inference agrees with onnxruntime, and bad graphs fail with one clear error."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sparq.compiler.errors import ModelFormatError, UnsupportedError, WeightError
from sparq.compiler.ir import AvgPool, Conv, Dense, Flatten, MaxPool, Model, Relu, Reshape, forward, probabilities
from sparq.compiler.models import SHIPPED, shipped_path
from sparq.compiler.onnx_io import read_onnx, write_onnx

ort = pytest.importorskip("onnxruntime")
RNG = np.random.default_rng(0)


def init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def save(tmp_path, nodes, initializers, input_shape, output, output_shape=(None, None), inputs=()):
    graph = helper.make_graph(
        nodes, "test", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *input_shape]), *inputs],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, output_shape)], initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    path = tmp_path / "model.onnx"
    onnx.save(proto, str(path))
    return path


def runtime(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def random(*shape):
    return RNG.normal(size=shape).astype(np.float32)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_agree_with_onnxruntime(name):
    model = read_onnx(shipped_path(name))
    x = RNG.random((64, *model.input_shape), dtype=np.float32)
    ours = forward(model, x)
    np.testing.assert_allclose(ours, runtime(shipped_path(name), x), rtol=1e-5, atol=1e-5)


def test_matmul_add_and_trailing_softmax(tmp_path):
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
             helper.make_node("Add", ["h", "b1"], ["h2"], name="add1"),
             helper.make_node("Relu", ["h2"], ["h3"]),
             helper.make_node("MatMul", ["h3", "w2"], ["z"], name="mm2"),
             helper.make_node("Softmax", ["z"], ["p"], name="sm", axis=-1)]
    path = save(tmp_path, nodes, [init("w1", random(12, 7)), init("b1", random(7)), init("w2", random(7, 5))],
                (12,), "p")
    model = read_onnx(path)
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "Relu", "Dense"]
    assert model.layer("mm1").weight.shape == (7, 12)
    assert any("Softmax" in note for note in model.notes)
    x = random(20, 12)
    np.testing.assert_allclose(softmax(forward(model, x)), runtime(path, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("trans_b,alpha,beta", [(0, 1.0, 1.0), (1, 0.5, 2.0)])
def test_gemm_attributes(tmp_path, trans_b, alpha, beta):
    weight = random(6, 9) if trans_b else random(9, 6)
    node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="g", transB=trans_b, alpha=alpha, beta=beta)
    path = save(tmp_path, [node], [init("w", weight), init("b", random(1, 6))], (9,), "y")
    x = random(10, 9)
    np.testing.assert_allclose(forward(read_onnx(path), x), runtime(path, x), rtol=1e-5, atol=1e-5)


def test_conv_pools_flatten_reshape_and_constant(tmp_path):
    shape = helper.make_node("Constant", [], ["shape"], value=init("s", np.array([0, 2, 6, 6], np.int64)))
    nodes = [shape, helper.make_node("Reshape", ["x", "shape"], ["img"], name="reshape"),
             helper.make_node("Conv", ["img", "cw", "cb"], ["c"], name="conv", kernel_shape=[3, 3], strides=[1, 2],
                              pads=[1, 0, 2, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["m"], name="max", kernel_shape=[2, 2], strides=[1, 1],
                              pads=[0, 1, 1, 0]),
             helper.make_node("AveragePool", ["m"], ["a"], name="avg", kernel_shape=[2, 2], strides=[2, 1],
                              pads=[1, 1, 0, 0]),
             helper.make_node("AveragePool", ["a"], ["a2"], name="avg_pad", kernel_shape=[2, 2], pads=[1, 1, 1, 1],
                              count_include_pad=1),
             helper.make_node("Conv", ["a2", "cw2"], ["c2"], name="conv_nobias", kernel_shape=[1, 1]),
             helper.make_node("Reshape", ["c2", "shape2"], ["g"], name="reshape_back"),
             helper.make_node("Flatten", ["g"], ["f"], name="flat", axis=1),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1)]
    convs = [init("cw", random(4, 2, 3, 3)), init("cb", random(4)), init("cw2", random(3, 4, 1, 1)),
             init("shape2", np.array([0, 2, -1], np.int64))]
    features = read_onnx(save(tmp_path, nodes[:-1], convs, (72,), "f")).output_shape[0]
    initializers = convs + [init("fw", random(5, features)), init("fb", random(5))]
    path = save(tmp_path, nodes, initializers, (72,), "y")
    model = read_onnx(path)
    assert [type(layer) for layer in model.weighted()] == [Conv, Conv, Dense]
    assert isinstance(model.layer("max"), MaxPool) and isinstance(model.layer("avg"), AvgPool)
    assert model.layer("avg_pad").count_include_pad and isinstance(model.layer("flat"), Flatten)
    assert isinstance(model.layer("reshape_back"), Reshape) and model.layer("reshape_back").shape[0] == 2
    x = random(7, 72)
    np.testing.assert_allclose(forward(model, x), runtime(path, x), rtol=1e-5, atol=1e-5)


def test_write_then_read_round_trips(tmp_path, cnn):
    write_onnx(cnn, tmp_path / "cnn.onnx", softmax=True)
    back = read_onnx(tmp_path / "cnn.onnx")
    assert [layer.name for layer in back.layers] == [layer.name for layer in cnn.layers] and back.notes
    for ours, theirs in zip(cnn.weighted(), back.weighted()):
        np.testing.assert_array_equal(ours.weight, theirs.weight)


def test_every_unsupported_node_is_listed_at_once(tmp_path):
    nodes = [helper.make_node("Gemm", ["x", "w"], ["h"], name="fc", transA=1),
             helper.make_node("Sigmoid", ["h"], ["s"], name="squash"),
             helper.make_node("Erf", ["s"], ["e"], name="mystery"),
             helper.make_node("Relu", ["e"], ["y"], name="ok")]
    path = save(tmp_path, nodes, [init("w", random(4, 3))], (4,), "y")
    with pytest.raises(UnsupportedError) as info:
        read_onnx(path)
    message = str(info.value)
    assert isinstance(info.value, ValueError) and "\n" not in message and "3 node(s) cannot be compiled" in message
    for expected in ("'fc' (op Gemm): attribute transA=1", "'squash' (op Sigmoid): only ReLU activations",
                     "'mystery' (op Erf): not an op sparq compiles", "replace it or re-export"):
        assert expected in message
    assert "'ok'" not in message


def test_dynamic_shape_is_refused(tmp_path):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "features"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None])])
    path = tmp_path / "dynamic.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ModelFormatError, match="dynamic dimension 'features' at axis 1.*fixed input shape"):
        read_onnx(path)


def test_runtime_reshape_shape_is_a_dynamic_shape(tmp_path):
    nodes = [helper.make_node("Reshape", ["x", "s"], ["y"], name="rs")]
    path = save(tmp_path, nodes, [], (4,), "y", inputs=[helper.make_tensor_value_info("s", TensorProto.INT64,
                                                                                          [2])])
    with pytest.raises(ModelFormatError, match="'rs'.*computed at run time"):
        read_onnx(path)


def test_missing_initializer_names_the_node(tmp_path):
    node = helper.make_node("Gemm", ["x", "w"], ["y"], name="fc1")
    path = save(tmp_path, [node], [], (4,), "y", inputs=[helper.make_tensor_value_info("w", TensorProto.FLOAT,
                                                                                        [3, 4])])
    with pytest.raises(ModelFormatError, match="'fc1'.*not an initializer.*export_params=True"):
        read_onnx(path)
    node = helper.make_node("Gemm", ["x", "w"], ["y"], name="fc1")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "missing.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(ModelFormatError, match="checker rejects"):
        read_onnx(path)


def test_nan_initializer_names_the_layer(tmp_path):
    weight = random(3, 4)
    weight[1, 2] = np.nan
    path = save(tmp_path, [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc9", transB=1)], [init("w", weight)],
                (4,), "y")
    with pytest.raises(WeightError, match="'fc9'.*NaN, infinite or beyond-float32.*\\(1, 2\\)"):
        read_onnx(path)


@pytest.mark.parametrize("content", [b"", b"\x08\x07garbage that is not protobuf \xff\xff\xff", "truncate"])
def test_corrupt_file(tmp_path, content):
    path = tmp_path / "bad.onnx"
    data = shipped_path("digits_mlp").read_bytes()
    path.write_bytes(data[:len(data) // 2] if content == "truncate" else content)
    with pytest.raises(ModelFormatError, match="bad.onnx"):
        read_onnx(path)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFormatError, match="no such ONNX file"):
        read_onnx(tmp_path / "nope.onnx")


@pytest.mark.parametrize("case", ["branches", "inner_softmax", "group_conv"])
def test_non_sequential_or_unsupported_attributes(tmp_path, case):
    w = init("w", random(4, 4))
    if case == "branches":
        nodes = [helper.make_node("Gemm", ["x", "w"], ["h"], name="fc"), helper.make_node("Gemm", ["x", "w2"], ["g"],
                                                                                          name="fc_side"),
                 helper.make_node("Add", ["h", "g"], ["y"], name="join")]
        inits, shape = [w, init("w2", random(4, 4))], (4,)
    elif case == "inner_softmax":
        nodes = [helper.make_node("Softmax", ["x"], ["s"], name="early"), helper.make_node("Gemm", ["s", "w"], ["y"])]
        inits, shape = [w], (4,)
    else:
        nodes = [helper.make_node("Conv", ["x", "cw"], ["y"], name="grouped", group=2, kernel_shape=[1, 1])]
        inits, shape = [init("cw", random(2, 1, 1, 1))], (2, 3, 3)
    with pytest.raises(UnsupportedError):
        read_onnx(save(tmp_path, nodes, inits, shape, "y"))


def test_image_mlp_with_flatten_and_every_dense_form_agrees_with_onnxruntime(tmp_path):
    """A (1, 8, 8) input, Flatten, then Gemm transB=0, Gemm transB=1 (alpha, beta, a (1, n) bias), MatMul + Add (the
    bias first) and a MatMul without a bias, as exporters write them."""
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "w1", "b1"], ["h1"], name="fc1", transB=0),
             helper.make_node("Relu", ["h1"], ["r1"]),
             helper.make_node("Gemm", ["r1", "w2", "b2"], ["h2"], name="fc2", transB=1, alpha=0.5, beta=2.0),
             helper.make_node("Relu", ["h2"], ["r2"]),
             helper.make_node("MatMul", ["r2", "w3"], ["m3"], name="fc3"),
             helper.make_node("Add", ["b3", "m3"], ["h3"], name="fc3_bias"),
             helper.make_node("Relu", ["h3"], ["r3"]),
             helper.make_node("MatMul", ["r3", "w4"], ["y"], name="fc4")]
    initializers = [init("w1", random(64, 32)), init("b1", random(32)), init("w2", random(24, 32)),
                    init("b2", random(1, 24)), init("w3", random(24, 16)), init("b3", random(16)),
                    init("w4", random(16, 10))]
    path = save(tmp_path, nodes, initializers, (1, 8, 8), "y")
    model = read_onnx(path)
    assert model.input_shape == (1, 8, 8) and [layer.name for layer in model.weighted()] == ["fc1", "fc2", "fc3",
                                                                                                "fc4"]
    assert not model.layer("fc4").bias.any()
    x = RNG.random((50, 1, 8, 8), dtype=np.float32)
    ours, theirs = forward(model, x), runtime(path, x)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6 * np.abs(theirs).max())


def test_exporter_variants_agree_with_onnxruntime(tmp_path):
    """auto_pad SAME_UPPER / SAME_LOWER / VALID, a dilated conv, ceil-mode pools, a folded BatchNormalization and a
    per-channel Add after a Conv, Dropout and Identity, Flatten at axis -3 and a trailing Softmax."""
    nodes = [helper.make_node("Conv", ["x", "cw"], ["c"], name="conv_same", kernel_shape=[3, 3], auto_pad="SAME_UPPER",
                              strides=[2, 2]),
             helper.make_node("BatchNormalization", ["c", "g", "beta", "mean", "var"], ["bn"], name="bn",
                              epsilon=1e-3),
             helper.make_node("Add", ["bn", "cb"], ["cba"], name="conv_bias"),
             helper.make_node("Relu", ["cba"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["m"], name="pool_ceil", kernel_shape=[2, 2], strides=[2, 2],
                              ceil_mode=1, auto_pad="VALID"),
             helper.make_node("Conv", ["m", "cw2", "cb2"], ["c2"], name="conv_dilated", kernel_shape=[2, 2],
                              dilations=[2, 1], pads=[1, 0, 1, 1]),
             helper.make_node("Dropout", ["c2", "ratio"], ["d"], name="drop"),
             helper.make_node("AveragePool", ["d"], ["a"], name="avg_ceil", kernel_shape=[3, 2], strides=[2, 2],
                              pads=[1, 0, 0, 0], ceil_mode=1, count_include_pad=1),
             helper.make_node("Conv", ["a", "cw3"], ["c3"], name="conv_same_lower", kernel_shape=[2, 2],
                              auto_pad="SAME_LOWER"),
             helper.make_node("Identity", ["c3"], ["i"]),
             helper.make_node("Flatten", ["i"], ["f"], name="flatten", axis=-3),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["z"], name="fc", transB=1),
             helper.make_node("Softmax", ["z"], ["p"], name="softmax")]
    convs = [init("cw", random(4, 2, 3, 3)), init("g", random(4)), init("beta", random(4)), init("mean", random(4)),
             init("var", RNG.random(4).astype(np.float32) + 0.5), init("cb", random(4, 1, 1)),
             init("cw2", random(3, 4, 2, 2)), init("cb2", random(3)), init("cw3", random(2, 3, 2, 2)),
             init("ratio", np.array(0.3, np.float32))]
    features = read_onnx(save(tmp_path, nodes[:-3], convs, (2, 11, 9), "i")).output_shape
    initializers = convs + [init("fw", random(5, int(np.prod(features)))), init("fb", random(5))]
    path = save(tmp_path, nodes, initializers, (2, 11, 9), "p")
    model = read_onnx(path)
    assert model.softmax and [type(layer) for layer in model.weighted()] == [Conv, Conv, Conv, Dense]
    assert any("BatchNormalization" in note for note in model.notes)
    assert model.layer("pool_ceil").ceil_mode and model.layer("conv_dilated").dilation == (2, 1)
    x = random(9, 2, 11, 9)
    np.testing.assert_allclose(probabilities(model, x), runtime(path, x), rtol=1e-4, atol=1e-6)


def test_written_model_runs_in_onnxruntime_with_every_layer_field(tmp_path):
    """write_onnx keeps dilations, ceil_mode, count_include_pad and the dropped Softmax (Model.softmax)."""
    model = Model([Reshape("r", (2, 5, 5)), Conv("c", random(3, 2, 2, 2), None, padding=(1, 1, 0, 1), dilation=(2, 1)),
                   Relu("a"), MaxPool("mp", (2, 2), (2, 2), dilation=(1, 2), ceil_mode=True),
                   AvgPool("ap", (2, 2), (2, 1), (1, 0, 0, 0), ceil_mode=True, count_include_pad=True), Flatten("f"),
                   Dense("d", random(4, 12))], (50,), softmax=True)
    write_onnx(model, tmp_path / "m.onnx")
    x = random(6, 50)
    np.testing.assert_allclose(runtime(tmp_path / "m.onnx", x), probabilities(model, x), rtol=1e-5, atol=1e-6)
    back = read_onnx(tmp_path / "m.onnx")
    assert back.softmax and back.layer("mp").ceil_mode and back.layer("c").dilation == (2, 1)


def test_residual_adds_become_blocks_and_agree_with_onnxruntime(tmp_path):
    """A ResNet basic block (conv, batch norm, ReLU, conv, Add of the block input, ReLU), a nested pair of MLP
    residuals with the skip as Add's first operand, then the classifier."""
    nodes = [helper.make_node("Conv", ["x", "cw0"], ["c0"], name="stem", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c0"], ["s"], name="stem_relu"),
             helper.make_node("Conv", ["s", "cw1"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c1", "g", "beta", "mean", "var"], ["b1"], name="bn1"),
             helper.make_node("Relu", ["b1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "cw2", "cb2"], ["c2"], name="conv2", kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c2", "s"], ["sum1"], name="block1"),
             helper.make_node("Relu", ["sum1"], ["o1"], name="block1_relu"),
             helper.make_node("Flatten", ["o1"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fw1"], ["h1"], name="fc1", transB=1),
             helper.make_node("Relu", ["h1"], ["q1"], name="fc1_relu"),
             helper.make_node("Gemm", ["q1", "fw2"], ["h2"], name="fc2", transB=1),
             helper.make_node("Add", ["q1", "h2"], ["inner"], name="inner_skip"),
             helper.make_node("Relu", ["inner"], ["q2"], name="inner_relu"),
             helper.make_node("Add", ["h1", "q2"], ["outer"], name="outer_skip"),
             helper.make_node("Gemm", ["outer", "fw3", "fb3"], ["y"], name="fc3", transB=1)]
    initializers = [init("cw0", random(4, 2, 3, 3) / 3), init("cw1", random(4, 4, 3, 3) / 4), init("g", random(4)),
                    init("beta", random(4)), init("mean", random(4)),
                    init("var", RNG.random(4).astype(np.float32) + 0.5), init("cw2", random(4, 4, 3, 3) / 4),
                    init("cb2", random(4)), init("fw1", random(12, 4 * 5 * 5) / 10), init("fw2", random(12, 12) / 3),
                    init("fw3", random(3, 12)), init("fb3", random(3))]
    path = save(tmp_path, nodes, initializers, (2, 5, 5), "y")
    model = read_onnx(path)
    assert [type(layer).__name__ for layer in model.layers] == ["Conv", "Relu", "Residual", "Relu", "Flatten",
                                                                "Dense", "Residual", "Dense"]
    block, outer = model.layer("block1"), model.layer("outer_skip")
    assert [layer.name for layer in block.layers] == ["conv1", "relu1", "conv2"]
    assert [layer.name for layer in outer.layers] == ["fc1_relu", "inner_skip", "inner_relu"]
    assert [layer.name for layer in model.layer("inner_skip").layers] == ["fc2"]
    assert [layer.name for layer in model.weighted()] == ["stem", "conv1", "conv2", "fc1", "fc2", "fc3"]
    x = random(16, 2, 5, 5)
    ours, theirs = forward(model, x), runtime(path, x)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5 * np.abs(theirs).max())
    write_onnx(model, tmp_path / "back.onnx")
    np.testing.assert_allclose(runtime(tmp_path / "back.onnx", x), theirs, rtol=1e-4, atol=1e-5 * np.abs(theirs).max())
