"""ONNX to the layer IR and back, with the ``onnx`` package only (no onnxruntime).

:func:`read_onnx` takes a sequential graph of Gemm, MatMul (+ Add), Conv, Relu, Flatten, Reshape, MaxPool and
AveragePool; a trailing Softmax is dropped and noted in ``Model.notes``. Anything else, a dynamic shape other than
the batch axis, or a weight that is not an initializer stops the import with one
:class:`~sparq.compiler.errors.CompileError` naming the node and what to do.

:func:`write_onnx` writes an IR model as such a graph (opset 17, Gemm for Dense); the shipped default models are
written with it.
"""

from pathlib import Path

import numpy as np

from .errors import ModelFormatError, UnsupportedError
from .ir import AvgPool, Conv, Dense, Flatten, MaxPool, Model, Relu, Reshape

__all__ = ["read_onnx", "write_onnx", "SUPPORTED_OPS", "OPSET"]

SUPPORTED_OPS = ("Gemm", "MatMul", "Add", "Conv", "Relu", "Flatten", "Reshape", "MaxPool", "AveragePool", "Softmax",
                 "Constant")
OPSET = 17


def _first_line(exc):
    """The first line of an exception's message, or its type name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _load(path):
    """The checked ModelProto in ``path``, or a :class:`ModelFormatError` saying why it cannot be read."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"{path}: no such ONNX file; check the path")
    try:
        proto = onnx.load(str(path))
    except onnx.checker.ValidationError as exc:  # external data that onnx refuses to read
        raise ModelFormatError(f"{path}: its external data cannot be read ({_first_line(exc)}); keep the data "
                               f"files in the model's folder") from None
    except (DecodeError, OSError, ValueError, RuntimeError) as exc:
        raise ModelFormatError(f"{path}: not an ONNX model ({_first_line(exc)}); the file is corrupt or truncated -- "
                               f"re-export or re-download it") from None
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ModelFormatError(f"{path}: the ONNX checker rejects the model ({_first_line(exc)}); re-export it with "
                               f"a current exporter") from None
    if not proto.graph.node:
        raise ModelFormatError(f"{path}: the ONNX graph has no nodes; export a model with at least one layer")
    return proto


class _Reader:
    """Walks the nodes of one graph, in order, into IR layers."""

    def __init__(self, proto, path):
        from onnx import numpy_helper

        self.path, self.graph = path, proto.graph
        self.constants = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        self.layers, self.notes, self.names = [], [], set()
        self.current = None         # name of the tensor the next node must read
        self.shape = None           # its per-sample shape
        self.open_matmul = None     # the Dense of a MatMul that an Add may complete
        self.softmax_output = None  # output of a dropped trailing Softmax

    def add(self, layer):
        """Append ``layer`` and follow the per-sample shape through it."""
        self.shape = layer.output_shape(self.shape)
        self.layers.append(layer)

    def fail(self, cls, node, message):
        """Raise ``cls`` with the file, the node and ``message``."""
        raise cls(f"{self.path}: node {node.name or '(unnamed)'!r} (op {node.op_type}): {message}")

    def attributes(self, node, allowed):
        """The node's attributes as a dict; unknown or unsupported values raise :class:`UnsupportedError`.

        ``allowed`` maps each accepted attribute to None (any value) or to the one value that is supported.
        """
        from onnx import helper

        values = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        for name, value in values.items():
            if name not in allowed:
                self.fail(UnsupportedError, node, f"attribute {name}={value!r} is not supported; re-export the "
                                                  f"model without it")
            wanted = allowed[name]
            value = value.decode() if isinstance(value, bytes) else value
            if wanted is not None and list(np.atleast_1d(value)) != list(np.atleast_1d(wanted)):
                self.fail(UnsupportedError, node, f"attribute {name}={value!r} is not supported (only {wanted!r}); "
                                                  f"re-export the model with {name}={wanted!r}")
            values[name] = value
        return values

    def constant(self, node, tensor, what):
        """The float or int array held by initializer or Constant ``tensor``, or a clear error."""
        if tensor not in self.constants:
            self.fail(ModelFormatError, node,
                      f"its {what} {tensor!r} is not an initializer in the file; export the model with its weights "
                      f"embedded as initializers (for PyTorch: torch.onnx.export(..., export_params=True))")
        return self.constants[tensor]

    def weight(self, node, tensor, what):
        """Initializer ``tensor`` as float32, or a clear error when it is missing or not floating point."""
        array = self.constant(node, tensor, what)
        if not np.issubdtype(array.dtype, np.floating):
            self.fail(UnsupportedError, node, f"its {what} {tensor!r} is {array.dtype}, not floating point; "
                                              f"quantized ONNX models are not supported -- export the float model")
        return array.astype(np.float32)

    def layer_name(self, node):
        """A unique layer name from the node name (or op type and position when the name is empty or repeated)."""
        name = node.name or f"{node.op_type.lower()}{len(self.layers)}"
        while name in self.names:
            name = f"{name}_{len(self.layers)}"
        self.names.add(name)
        return name

    def data_input(self, node):
        """Check that ``node`` reads the running tensor first, as a sequential model does."""
        if not node.input or node.input[0] != self.current:
            self.fail(UnsupportedError, node, f"reads {list(node.input)} but the running tensor is "
                                              f"{self.current!r}; only sequential models (one chain of layers) "
                                              f"are supported")

    def read_input(self):
        """Set the running tensor and its per-sample shape to those of the graph input."""
        inputs = [i for i in self.graph.input if i.name not in self.constants]
        first = next((node.input[0] for node in self.graph.node if node.op_type != "Constant" and node.input), None)
        if len(inputs) > 1:  # weights fed as inputs fail later, at the node that reads them
            inputs = [i for i in inputs if i.name == first]
        if len(inputs) != 1:
            raise UnsupportedError(f"{self.path}: cannot tell the data input among the graph inputs "
                                   f"{[i.name for i in self.graph.input]}; export a model with exactly one input")
        tensor = inputs[0]
        dims = tensor.type.tensor_type.shape.dim
        shape = []
        for axis, dim in enumerate(dims[1:], start=1):
            if not dim.HasField("dim_value") or dim.dim_value < 1:
                label = dim.dim_param or "?"
                raise ModelFormatError(f"{self.path}: input {tensor.name!r} has a dynamic dimension {label!r} at "
                                       f"axis {axis}; only the batch axis (0) may be dynamic -- export the model "
                                       f"with a fixed input shape")
            shape.append(dim.dim_value)
        if not dims:
            raise ModelFormatError(f"{self.path}: input {tensor.name!r} has no shape; export the model with a fixed "
                                   f"input shape (batch axis first)")
        self.current, self.shape = tensor.name, tuple(shape)

    def read(self):
        """The IR :class:`Model` of the graph."""
        self.read_input()
        input_shape = self.shape
        nodes = list(self.graph.node)
        for index, node in enumerate(nodes):
            if node.op_type == "Constant":
                self.read_constant(node)
                continue
            handler = getattr(self, f"op_{node.op_type}", None)
            if handler is None:
                self.fail(UnsupportedError, node, f"this op is not supported; supported ops are "
                                                  f"{', '.join(SUPPORTED_OPS)} -- replace it or re-export the "
                                                  f"model without it")
            if node.op_type == "Softmax" and index != len(nodes) - 1:
                self.fail(UnsupportedError, node, "only a trailing Softmax is supported (it is dropped: the "
                                                  "compiler works on logits); remove the inner Softmax")
            if node.op_type != "Add":
                self.open_matmul = None
            self.data_input(node)
            handler(node)
            if node.op_type != "Softmax":
                self.current = node.output[0]
        outputs = [o.name for o in self.graph.output]
        if outputs != [self.softmax_output or self.current]:
            raise UnsupportedError(f"{self.path}: the graph outputs {outputs} but its chain of layers ends in "
                                   f"{self.current!r}; export a model with one output at the end of the chain")
        return Model(self.layers, input_shape, notes=self.notes)

    def read_constant(self, node):
        """Record the value of a Constant node, for later Reshape shapes or weights."""
        from onnx import numpy_helper

        attribute = {a.name: a for a in node.attribute}
        if "value" not in attribute:
            self.fail(UnsupportedError, node, "only Constant nodes with a tensor 'value' are supported")
        self.constants[node.output[0]] = numpy_helper.to_array(attribute["value"].t)

    def op_Gemm(self, node):
        """Gemm: ``alpha * A @ op(B) + beta * C`` with B (and C) initializers -> Dense."""
        attrs = self.attributes(node, {"alpha": None, "beta": None, "transA": 0, "transB": None})
        weight = self.weight(node, node.input[1], "weight B")
        weight = (weight if attrs.get("transB", 0) else weight.T) * attrs.get("alpha", 1.0)
        outputs = weight.shape[0]
        bias = (self.weight(node, node.input[2], "bias C") * attrs.get("beta", 1.0) if len(node.input) > 2
                and node.input[2] else np.zeros(outputs, np.float32))
        if bias.size not in (1, outputs):
            self.fail(UnsupportedError, node, f"bias C of shape {bias.shape} is not one value per output; export a "
                                              f"per-output bias")
        self.add(Dense(self.layer_name(node), weight, np.broadcast_to(bias.reshape(-1), (outputs,))))

    def op_MatMul(self, node):
        """MatMul by an initializer -> Dense with a zero bias, which a following Add may fill."""
        self.attributes(node, {})
        weight = self.weight(node, node.input[1], "weight")
        if weight.ndim != 2:
            self.fail(UnsupportedError, node, f"the weight has shape {weight.shape}; only 2-D MatMul weights "
                                              f"(a fully connected layer) are supported")
        self.add(Dense(self.layer_name(node), weight.T, np.zeros(weight.shape[1], np.float32)))
        self.open_matmul = self.layers[-1]

    def op_Add(self, node):
        """Add of an initializer bias right after a MatMul -> the Dense layer's bias."""
        self.attributes(node, {})
        if self.open_matmul is None:
            self.fail(UnsupportedError, node, "only an Add of a bias right after a MatMul is supported (residual "
                                              "or other adds are not); fold it into a Gemm or remove it")
        dense, self.open_matmul = self.open_matmul, None
        bias = self.weight(node, node.input[1], "bias").reshape(-1)
        if bias.shape != dense.bias.shape:
            self.fail(UnsupportedError, node, f"bias of {bias.size} values does not match the MatMul's "
                                              f"{dense.bias.size} outputs; export a per-output bias")
        dense.bias = bias

    def pool_geometry(self, node, attrs):
        """(kernel, stride, padding) of a 2-D Conv or pool node."""
        kernel = tuple(attrs["kernel_shape"]) if "kernel_shape" in attrs else None
        if kernel is not None and len(kernel) != 2:
            self.fail(UnsupportedError, node, f"kernel {kernel} is not 2-D; only 2-D (NCHW) layers are supported")
        pads = tuple(attrs.get("pads", (0, 0, 0, 0)))
        return kernel, tuple(attrs.get("strides", (1, 1))), pads

    def op_Conv(self, node):
        """2-D Conv with initializer weights -> Conv."""
        attrs = self.attributes(node, {"auto_pad": "NOTSET", "dilations": [1, 1], "group": 1, "kernel_shape": None,
                                       "pads": None, "strides": None})
        weight = self.weight(node, node.input[1], "weight")
        if weight.ndim != 4:
            self.fail(UnsupportedError, node, f"weight of shape {weight.shape} is not 2-D convolution "
                                              f"(out, in, kh, kw)")
        bias = (self.weight(node, node.input[2], "bias") if len(node.input) > 2 and node.input[2]
                else np.zeros(weight.shape[0], np.float32))
        _, stride, pads = self.pool_geometry(node, attrs)
        self.add(Conv(self.layer_name(node), weight, bias, stride=stride, padding=pads))

    def op_MaxPool(self, node):
        """2-D MaxPool -> MaxPool."""
        attrs = self.attributes(node, {"auto_pad": "NOTSET", "ceil_mode": 0, "dilations": [1, 1],
                                       "kernel_shape": None, "pads": None, "storage_order": 0, "strides": None})
        if len(node.output) > 1 and node.output[1]:
            self.fail(UnsupportedError, node, "the Indices output is not supported; export MaxPool with one output")
        kernel, stride, pads = self.pool_geometry(node, attrs)
        self.add(MaxPool(self.layer_name(node), kernel, stride, pads))

    def op_AveragePool(self, node):
        """2-D AveragePool -> AvgPool."""
        attrs = self.attributes(node, {"auto_pad": "NOTSET", "ceil_mode": 0, "count_include_pad": None,
                                       "dilations": [1, 1], "kernel_shape": None, "pads": None, "strides": None})
        kernel, stride, pads = self.pool_geometry(node, attrs)
        self.add(AvgPool(self.layer_name(node), kernel, stride, pads,
                                   count_include_pad=bool(attrs.get("count_include_pad", 0))))

    def op_Relu(self, node):
        """Relu -> Relu."""
        self.attributes(node, {})
        self.add(Relu(self.layer_name(node)))

    def op_Flatten(self, node):
        """Flatten on axis 1 -> Flatten."""
        self.attributes(node, {"axis": 1})
        self.add(Flatten(self.layer_name(node)))

    def op_Reshape(self, node):
        """Reshape by a constant shape that keeps the batch axis -> Reshape to the per-sample shape."""
        self.attributes(node, {"allowzero": 0})
        if node.input[1] not in self.constants:
            self.fail(ModelFormatError, node, f"its shape comes from {node.input[1]!r}, which is computed at run "
                                              f"time (a dynamic shape); export the model with a constant reshape")
        target = [int(v) for v in self.constant(node, node.input[1], "shape").reshape(-1)]
        size = int(np.prod(self.shape))
        dims = [self.shape[axis] if v == 0 and axis < len(self.shape) else v for axis, v in enumerate(target[1:])]
        if dims.count(-1) == 1 and target[0] != -1:
            known = int(np.prod([v for v in dims if v != -1]))
            dims[dims.index(-1)] = size // known if known > 0 and size % known == 0 else 0
        if not target or min(dims, default=0) < 1 or int(np.prod(dims)) != size:
            self.fail(UnsupportedError, node, f"reshape of per-sample shape {self.shape} to {target} does not keep "
                                              f"the batch axis first; only reshapes of each sample (shape [-1, ...] "
                                              f"or [0, ...]) are supported")
        self.add(Reshape(self.layer_name(node), dims))

    def op_Softmax(self, node):
        """A trailing Softmax is dropped: the compiler works on logits, and argmax does not change."""
        self.softmax_output = node.output[0]
        self.notes.append(f"dropped the trailing Softmax {node.name or '(unnamed)'!r}: the model now outputs logits "
                          f"(the arg-max class is unchanged)")


def read_onnx(path):
    """Read the ONNX file at ``path`` into an IR :class:`~sparq.compiler.ir.Model` (see the module docstring)."""
    return _Reader(_load(path), Path(path)).read()


def _node_of(layer, helper, numpy_helper, tensor_in, initializers):
    """The ONNX node of one IR layer reading ``tensor_in``; appends its weights to ``initializers``."""
    out = f"{layer.name}.out"
    if isinstance(layer, Dense):
        initializers += [numpy_helper.from_array(layer.weight, f"{layer.name}.weight"),
                         numpy_helper.from_array(layer.bias, f"{layer.name}.bias")]
        return helper.make_node("Gemm", [tensor_in, f"{layer.name}.weight", f"{layer.name}.bias"], [out],
                                name=layer.name, transB=1)
    if isinstance(layer, Conv):
        initializers += [numpy_helper.from_array(layer.weight, f"{layer.name}.weight"),
                         numpy_helper.from_array(layer.bias, f"{layer.name}.bias")]
        return helper.make_node("Conv", [tensor_in, f"{layer.name}.weight", f"{layer.name}.bias"], [out],
                                name=layer.name, kernel_shape=list(layer.kernel), strides=list(layer.stride),
                                pads=list(layer.padding))
    if isinstance(layer, Relu):
        return helper.make_node("Relu", [tensor_in], [out], name=layer.name)
    if isinstance(layer, Flatten):
        return helper.make_node("Flatten", [tensor_in], [out], name=layer.name, axis=1)
    if isinstance(layer, Reshape):
        initializers.append(numpy_helper.from_array(np.array([-1, *layer.shape], np.int64), f"{layer.name}.shape"))
        return helper.make_node("Reshape", [tensor_in, f"{layer.name}.shape"], [out], name=layer.name)
    pool = dict(kernel_shape=list(layer.kernel), strides=list(layer.stride), pads=list(layer.padding))
    if isinstance(layer, MaxPool):
        return helper.make_node("MaxPool", [tensor_in], [out], name=layer.name, **pool)
    return helper.make_node("AveragePool", [tensor_in], [out], name=layer.name,
                            count_include_pad=int(layer.count_include_pad), **pool)


def write_onnx(model, path, softmax=False):
    """Write ``model`` to ``path`` as an ONNX graph (opset 17) with a dynamic batch axis named ``N``.

    ``softmax`` appends a Softmax node to the output. The weights are embedded as initializers.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    initializers, nodes, tensor = [], [], "input"
    for layer in model.layers:
        nodes.append(_node_of(layer, helper, numpy_helper, tensor, initializers))
        tensor = nodes[-1].output[0]
    if softmax:
        nodes.append(helper.make_node("Softmax", [tensor], ["probabilities"], name="softmax", axis=-1))
        tensor = "probabilities"
    graph = helper.make_graph(
        nodes, "sparq", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *model.input_shape])],
        [helper.make_tensor_value_info(tensor, TensorProto.FLOAT, ["N", *model.output_shape])], initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="sparq")
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
