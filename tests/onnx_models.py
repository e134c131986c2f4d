"""Models built with onnx.helper as users' exporters write them, shared by the compiler tests
(``tests/compiler/test_model_forms.py``) and the command's (``tests/cli/test_user_models.py``)."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from sparq.compiler.models import load_shipped

__all__ = ["init", "save", "image_mlp"]


def init(name, array):
    return numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name)


def save(path, nodes, initializers, input_shape, output):
    graph = helper.make_graph(nodes, "user", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                           ["batch", *input_shape])],
                              [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", None])], initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.save(proto, str(path))
    return path


def image_mlp(path):
    """The shipped digits MLP's weights as a user's (1, 8, 8)-input ONNX file: Flatten, Gemm transB=0, Gemm
    transB=1 with alpha and beta, MatMul + Add, and a trailing Softmax."""
    mlp = load_shipped("digits_mlp")
    fc1, fc2, fc3 = mlp.weighted()
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "w1", "b1"], ["h1"], name="fc1", transB=0),
             helper.make_node("Relu", ["h1"], ["r1"], name="relu1"),
             helper.make_node("Gemm", ["r1", "w2", "b2"], ["h2"], name="fc2", transB=1, alpha=2.0, beta=0.5),
             helper.make_node("Relu", ["h2"], ["r2"], name="relu2"),
             helper.make_node("MatMul", ["r2", "w3"], ["m3"], name="fc3"),
             helper.make_node("Add", ["m3", "b3"], ["z"], name="fc3_bias"),
             helper.make_node("Softmax", ["z"], ["p"], name="softmax", axis=1)]
    initializers = [init("w1", fc1.weight.T), init("b1", fc1.bias), init("w2", fc2.weight / 2),
                    init("b2", fc2.bias * 2), init("w3", fc3.weight.T), init("b3", fc3.bias[None])]
    return save(path, nodes, initializers, (1, 8, 8), "p")
