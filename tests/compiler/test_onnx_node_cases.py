"""The ONNX project's own node test cases (shipped in the onnx package) for the ops sparq imports, each as a model
whose first input is the data and whose other inputs are initializers: every case is either imported and matches
the reference output, or refused with one clear line; none is imported wrongly."""

import functools
import warnings
from collections import Counter

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from sparq.compiler.errors import CompileError
from sparq.compiler.ir import probabilities
from sparq.compiler.onnx_io import read_onnx

OPS = ("Gemm", "MatMul", "Conv", "MaxPool", "AveragePool", "Flatten", "Relu", "Softmax", "Reshape", "Add")
MIN_MATCHES = 50
"""36 matched before auto_pad, ceil_mode, dilations and Flatten's negative axis were imported (62 refused)."""


@functools.cache
def node_cases():
    """The single-node cases of :data:`OPS` (collect_testcases imports every case module once, with numpy noise)."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cases = collect_testcases(None)
    return [c for c in cases if len(c.model.graph.node) == 1 and c.model.graph.node[0].op_type in OPS]


def with_initializers(case, path):
    """Write ``case``'s model to ``path`` with every input but the first made an initializer; return the data."""
    inputs, outputs = case.data_sets[0]
    graph = case.model.graph
    initializers = [numpy_helper.from_array(np.asarray(value), tensor.name)
                    for tensor, value in zip(graph.input[1:], inputs[1:])]
    proto = helper.make_model(helper.make_graph(list(graph.node), graph.name, [graph.input[0]], list(graph.output),
                                                initializers), opset_imports=case.model.opset_import)
    proto.ir_version = case.model.ir_version
    onnx.save(proto, str(path))
    return inputs[0], outputs[0]


def outcome(case, path):
    """``("match" | "refused" | "wrong", detail)`` of one case."""
    x, expected = with_initializers(case, path)
    try:
        model = read_onnx(path)
    except CompileError as error:
        return "refused", str(error)
    got = probabilities(model, x)
    if got.shape == expected.shape and np.allclose(got, expected, rtol=1e-3, atol=1e-5):
        return "match", ""
    return "wrong", f"shape {got.shape} vs {expected.shape}, max error {np.max(np.abs(got - expected), initial=0)}"


def test_node_cases_match_or_are_refused_clearly(tmp_path):
    results = {case.name: outcome(case, tmp_path / f"{case.name}.onnx") for case in node_cases()}
    counts = Counter(kind for kind, _ in results.values())
    print(dict(counts))
    assert len(results) == 98
    assert counts["wrong"] == 0, {name: detail for name, (kind, detail) in results.items() if kind == "wrong"}
    assert counts["match"] >= MIN_MATCHES, counts
    for name, (kind, detail) in results.items():
        if kind == "refused":
            assert "\n" not in detail and f"{name}.onnx: " in detail and ("node" in detail or "graph" in detail)
    for name in ("test_averagepool_2d_ceil", "test_averagepool_2d_same_lower", "test_averagepool_2d_dilations",
                 "test_maxpool_2d_ceil_output_size_reduce_by_one", "test_maxpool_2d_precomputed_same_upper",
                 "test_maxpool_2d_dilations", "test_conv_with_autopad_same", "test_flatten_negative_axis3"):
        assert results[name][0] == "match", (name, results[name])


@pytest.mark.parametrize("name,words", [
    ("test_gemm_transposeA", "transA=1"), ("test_gemm_default_matrix_bias", "varies along the batch axis"),
    ("test_flatten_axis2", "merges the batch axis"), ("test_softmax_axis_0", "Softmax over axis 0"),
    ("test_maxpool_with_argmax_2d_precomputed_pads", "Indices output"), ("test_add_bcast", "no MatMul, Gemm or Conv"),
])
def test_refusals_say_why(tmp_path, name, words):
    case = next(c for c in node_cases() if c.name == name)
    kind, detail = outcome(case, tmp_path / "case.onnx")
    assert kind == "refused" and words in detail
