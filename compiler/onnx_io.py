"""ONNX to the layer IR and back, with the ``onnx`` package only (no onnxruntime).

:func:`read_onnx` takes a sequential graph of Gemm, MatMul, Conv, Relu, Flatten, Reshape, MaxPool and AveragePool,
as exporters write them:

* Gemm with any ``transB``, ``alpha`` and ``beta`` and a bias C that broadcasts per output; MatMul by a matrix; a
  layer without a bias has a zero bias, and a constant Add (either operand order) or an inference
  BatchNormalization right after a Gemm, MatMul or Conv is folded into its bias (and weight);
* Conv and the pools with ``auto_pad`` NOTSET, VALID, SAME_UPPER or SAME_LOWER (resolved against the input shape),
  ``dilations`` and, for the pools, ``ceil_mode``; Flatten at axis 1 (or its negative twin), Reshape of each sample;
* an Add of the running tensor and an earlier tensor of the chain (a ResNet skip connection) becomes a
  :class:`~sparq.compiler.ir.Residual` block around the layers between them;
* Identity and inference Dropout are skipped, and a trailing Softmax over the classes is dropped (the model outputs
  logits; ``Model.softmax`` records it and ``Model.notes`` says so).

Before any node is read, every node whose op or attributes cannot be compiled is listed in one
:class:`~sparq.compiler.errors.UnsupportedError` (name, op and what would make it work). A node that does not fit
the chain, a dynamic shape other than the batch axis, or a weight that is not an initializer then stops the import
with one :class:`~sparq.compiler.errors.CompileError` naming the node and what to do.

:func:`write_onnx` writes an IR model as such a graph (opset 17, Gemm for Dense); the shipped default models are
written with it.
"""

from pathlib import Path

import numpy as np

from .checks import weight_array
from .errors import CompileError, ModelFormatError, UnsupportedError
from .ir import WEIGHTED, AvgPool, Conv, Dense, Flatten, MaxPool, Model, Relu, Reshape, Residual

__all__ = ["read_onnx", "write_onnx", "SUPPORTED_OPS", "ATTRIBUTES", "OPSET"]

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


_ANY = None
_POOL = {"auto_pad": _ANY, "ceil_mode": _ANY, "dilations": _ANY, "kernel_shape": _ANY, "pads": _ANY, "strides": _ANY}
ATTRIBUTES = {
    "Gemm": {"alpha": _ANY, "beta": _ANY, "transA": 0, "transB": _ANY},
    "MatMul": {},
    "Add": {},
    "Conv": {**_POOL, "group": 1, "ceil_mode": 0},
    "Relu": {},
    "Flatten": {"axis": _ANY},
    "Reshape": {"allowzero": _ANY},
    "MaxPool": {**_POOL, "storage_order": _ANY},
    "AveragePool": {**_POOL, "count_include_pad": _ANY},
    "BatchNormalization": {"epsilon": _ANY, "momentum": _ANY, "training_mode": 0, "spatial": 1},
    "Softmax": {"axis": _ANY},
    "Identity": {},
    "Dropout": {"ratio": _ANY, "seed": _ANY},
    "Constant": {"value": _ANY},
}
"""Each supported op's accepted attributes: None accepts any value (the handler checks it), anything else is the one
supported value."""

SUPPORTED_OPS = tuple(ATTRIBUTES)

_ATTRIBUTE_REMEDIES = {
    "transA": "transA=1 makes the data input's batch axis the second one; export the layer as Gemm(x, W) with "
              "transA=0",
    "group": "grouped and depthwise convolutions are not supported; export a dense convolution (group=1)",
    "training_mode": "the model was exported in training mode; export it in inference mode (PyTorch: model.eval())",
}

_OP_REMEDIES = {
    "Sigmoid": "only ReLU activations run on the accelerators; retrain with ReLU",
    "Tanh": "only ReLU activations run on the accelerators; retrain with ReLU",
    "LeakyRelu": "only ReLU activations run on the accelerators; retrain with ReLU",
    "PRelu": "only ReLU activations run on the accelerators; retrain with ReLU",
    "Elu": "only ReLU activations run on the accelerators; retrain with ReLU",
    "Gelu": "only ReLU activations run on the accelerators; retrain with ReLU",
    "HardSigmoid": "only ReLU activations run on the accelerators; retrain with ReLU",
    "HardSwish": "only ReLU activations run on the accelerators; retrain with ReLU",
    "Clip": "only ReLU activations run on the accelerators; replace ReLU6 / Clip by ReLU and retrain",
    "LogSoftmax": "export the logits (drop the LogSoftmax; the arg-max class is the same) or end with Softmax",
    "GlobalAveragePool": "use an AveragePool whose kernel is the whole feature map",
    "GlobalMaxPool": "use a MaxPool whose kernel is the whole feature map",
    "Transpose": "only sequential NCHW models are supported; export without the Transpose (e.g. flatten instead)",
    "Concat": "only one chain of layers (with residual Adds) is supported; branches that join are not",
    "Squeeze": "use a Flatten or a Reshape by a constant shape",
    "Unsqueeze": "use a Reshape by a constant shape",
    "Mul": "fold the constant scale into the weights of the layer before it",
    "Sub": "fold the constant into the bias of the layer before it",
    "Div": "fold the constant scale into the weights of the layer before it",
    "QuantizeLinear": "quantized ONNX models are not supported; export the float model (sparq quantizes it)",
    "DequantizeLinear": "quantized ONNX models are not supported; export the float model (sparq quantizes it)",
    "QLinearConv": "quantized ONNX models are not supported; export the float model (sparq quantizes it)",
    "QLinearMatMul": "quantized ONNX models are not supported; export the float model (sparq quantizes it)",
}


def _remedy(op):
    """What would make a node of ``op`` compile."""
    return _OP_REMEDIES.get(op, f"not an op sparq compiles (it compiles {', '.join(SUPPORTED_OPS)}); replace it or "
                                f"re-export the model without it")


class _Reader:
    """Walks the nodes of one graph, in order, into IR layers."""

    def __init__(self, proto, path):
        from onnx import numpy_helper

        self.path, self.graph = path, proto.graph
        self.opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), OPSET)
        self.constants = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        self.layers, self.notes, self.names = [], [], set()
        self.current = None         # name of the tensor the next node must read
        self.shape = None           # its per-sample shape
        self.open_weighted = None   # the Dense or Conv whose output is the running tensor (a bias Add may fold in)
        self.softmax_output = None  # output of a dropped trailing Softmax
        self.tensors = {}           # earlier tensors of the chain a residual Add may read: name -> (layers before it,
                                    # its per-sample shape)

    # --- checks before any node is read ---------------------------------------------------------------------------

    def node_problems(self, node):
        """Why ``node`` cannot be compiled whatever its inputs' shapes: a list of one-line reasons (empty if none)."""
        from onnx import helper

        label = f"node {node.name or '(unnamed)'!r} (op {node.op_type})"
        if node.domain not in ("", "ai.onnx"):
            return [f"{label}: an op of the custom domain {node.domain!r}; export with standard ONNX ops"]
        if node.op_type not in ATTRIBUTES:
            return [f"{label}: {_remedy(node.op_type)}"]
        allowed, problems = ATTRIBUTES[node.op_type], []
        for attribute in node.attribute:
            value = helper.get_attribute_value(attribute)
            value = value.decode() if isinstance(value, bytes) else value
            if attribute.name not in allowed:
                problems.append(f"{label}: attribute {attribute.name}={value!r} is not supported; re-export the "
                                f"model without it")
            elif allowed[attribute.name] is not None and value != allowed[attribute.name]:
                problems.append(f"{label}: attribute {attribute.name}={value!r} is not supported; " +
                                _ATTRIBUTE_REMEDIES.get(attribute.name, f"re-export the model with "
                                                        f"{attribute.name}={allowed[attribute.name]!r}"))
        return problems

    def check_nodes(self):
        """Raise one :class:`UnsupportedError` listing every node whose op or attributes cannot be compiled."""
        problems = [problem for node in self.graph.node for problem in self.node_problems(node)]
        if problems:
            raise UnsupportedError(f"{self.path}: {len(problems)} node(s) cannot be compiled: " + "; ".join(problems))

    # --- helpers --------------------------------------------------------------------------------------------------

    def fail(self, cls, node, message):
        """Raise ``cls`` with the file, the node and ``message``."""
        raise cls(f"{self.path}: node {node.name or '(unnamed)'!r} (op {node.op_type}): {message}")

    def attributes(self, node):
        """The node's attributes as a dict (strings decoded); :meth:`check_nodes` has checked them."""
        from onnx import helper

        values = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        return {name: value.decode() if isinstance(value, bytes) else value for name, value in values.items()}

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
        with np.errstate(over="ignore", invalid="ignore"):  # beyond float32: inf, which the layer then reports
            return array.astype(np.float32)

    def layer_name(self, node):
        """A unique layer name from the node name (or op type and position when the name is empty or repeated)."""
        name = node.name or f"{node.op_type.lower()}{len(self.layers)}"
        while name in self.names:
            name = f"{name}_{len(self.layers)}"
        self.names.add(name)
        return name

    def running(self, node):
        """Check that ``node`` reads the running tensor first, as a sequential model does."""
        if not node.input or node.input[0] != self.current:
            self.fail(UnsupportedError, node, f"reads {list(node.input)} but the running tensor is "
                                              f"{self.current!r}; only sequential models (one chain of layers, "
                                              f"with residual Adds) are supported")

    def add(self, node, layer):
        """Append ``layer``, made of ``node``, and follow the running tensor and its per-sample shape through it."""
        try:
            self.shape = layer.output_shape(self.shape)
        except CompileError as exc:
            self.fail(type(exc), node, str(exc))
        self.layers.append(layer)
        self.open_weighted = layer if isinstance(layer, WEIGHTED) else None
        self.current = node.output[0]
        self.tensors[self.current] = (len(self.layers), self.shape)

    def pass_through(self, node):
        """The node's output is its input: the running tensor is renamed, no layer is added."""
        self.current = node.output[0]
        self.tensors[self.current] = (len(self.layers), self.shape)

    def per_output(self, node, array, what):
        """``array``, a constant added to the running tensor, as one value per output of the weighted layer before
        it (per channel for a Conv), or a clear error when it varies along the batch or within a channel."""
        rank = 1 + len(self.shape)
        if array.ndim > rank:
            self.fail(UnsupportedError, node, f"{what} of shape {array.shape} has more axes than the layer's output "
                                              f"(batch, {', '.join(map(str, self.shape))})")
        full = array.reshape((1,) * (rank - array.ndim) + array.shape)
        if full.shape[0] != 1:
            self.fail(UnsupportedError, node, f"{what} of shape {array.shape} varies along the batch axis; a layer "
                                              f"of a per-sample model needs one value per output (shape "
                                              f"({self.shape[0]},) or (1, {self.shape[0]}))")
        try:
            full = np.broadcast_to(full, (1, *self.shape))[0]
        except ValueError:
            self.fail(UnsupportedError, node, f"{what} of shape {array.shape} does not broadcast to the layer's "
                                              f"per-sample output {self.shape}")
        per_channel = full.reshape(len(full), -1)
        if np.any(per_channel != per_channel[:, :1]):
            self.fail(UnsupportedError, node, f"{what} of shape {array.shape} varies inside a channel; only a "
                                              f"per-channel bias can be folded into a convolution")
        return per_channel[:, 0]

    def geometry(self, node, attrs, kernel):
        """``(stride, padding, dilation)`` of a 2-D Conv or pool with ``kernel``; ``auto_pad`` resolved against the
        running per-sample shape, as ONNX does (SAME_UPPER puts the odd padding row at the end, SAME_LOWER at the
        start)."""
        kernel = tuple(kernel)
        if len(kernel) != 2 or len(self.shape) != 3:
            self.fail(UnsupportedError, node, f"kernel {kernel} on per-sample shape {self.shape}: only 2-D layers "
                                              f"on (channels, height, width) inputs are supported")
        stride = tuple(attrs.get("strides", (1, 1)))
        dilation = tuple(attrs.get("dilations", (1, 1)))
        auto_pad = attrs.get("auto_pad", "NOTSET")
        if auto_pad == "NOTSET":
            pads = tuple(attrs.get("pads", (0, 0, 0, 0)))
        elif auto_pad == "VALID":
            pads = (0, 0, 0, 0)
        elif auto_pad in ("SAME_UPPER", "SAME_LOWER") and len(stride) == 2 and len(dilation) == 2:
            totals = [max(0, (-(-size // s) - 1) * s + d * (k - 1) + 1 - size)
                      for size, s, k, d in zip(self.shape[1:], stride, kernel, dilation)]
            low = [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in totals]
            pads = (*low, *(t - lo for t, lo in zip(totals, low)))
        else:
            self.fail(UnsupportedError, node, f"auto_pad={auto_pad!r} is not an ONNX padding mode; use NOTSET, "
                                              f"VALID, SAME_UPPER or SAME_LOWER")
        if len(stride) != 2 or len(dilation) != 2 or len(pads) != 4:
            self.fail(UnsupportedError, node, f"strides {stride}, dilations {dilation} or pads {pads} are not 2-D")
        return stride, pads, dilation

    # --- the graph ------------------------------------------------------------------------------------------------

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
        self.tensors[self.current] = (0, self.shape)

    def read(self):
        """The IR :class:`Model` of the graph."""
        self.check_nodes()
        self.read_input()
        input_shape = self.shape
        nodes = [node for node in self.graph.node if node.op_type != "Constant"]
        for node in self.graph.node:
            if node.op_type == "Constant":
                self.read_constant(node)
        for index, node in enumerate(nodes):
            if node.op_type == "Softmax" and index != len(nodes) - 1:
                self.fail(UnsupportedError, node, "only a trailing Softmax is supported (it is dropped: the "
                                                  "compiler works on logits); remove the inner Softmax")
            getattr(self, f"op_{node.op_type}")(node)
        if not self.layers:
            raise UnsupportedError(f"{self.path}: the graph has no layer to compile (its nodes are "
                                   f"{[node.op_type for node in nodes]}); sparq compiles models with at least one "
                                   f"Gemm, MatMul or Conv")
        outputs = [o.name for o in self.graph.output]
        if outputs != [self.softmax_output or self.current]:
            raise UnsupportedError(f"{self.path}: the graph outputs {outputs} but its chain of layers ends in "
                                   f"{self.current!r}; export a model with one output at the end of the chain")
        return Model(self.layers, input_shape, notes=self.notes, softmax=self.softmax_output is not None)

    def read_constant(self, node):
        """Record the value of a Constant node, for later Reshape shapes or weights."""
        from onnx import numpy_helper

        attribute = {a.name: a for a in node.attribute}
        if "value" not in attribute:
            self.fail(UnsupportedError, node, "only Constant nodes with a tensor 'value' are supported")
        self.constants[node.output[0]] = numpy_helper.to_array(attribute["value"].t)

    # --- one handler per op ---------------------------------------------------------------------------------------

    def op_Gemm(self, node):
        """Gemm: ``alpha * A @ op(B) + beta * C`` with A the running tensor, B (and C) initializers -> Dense."""
        self.running(node)
        attrs = self.attributes(node)
        if len(self.shape) != 1:
            self.fail(UnsupportedError, node, f"takes (batch, features) but the running tensor has per-sample shape "
                                              f"{self.shape}; put a Flatten before it")
        weight = self.weight(node, node.input[1], "weight B")
        if weight.ndim != 2:
            self.fail(UnsupportedError, node, f"weight B has shape {weight.shape}; Gemm needs a matrix")
        weight = (weight if attrs.get("transB", 0) else weight.T) * np.float32(attrs.get("alpha", 1.0))
        layer = Dense(self.layer_name(node), weight)
        self.add(node, layer)
        if len(node.input) > 2 and node.input[2]:
            bias = self.weight(node, node.input[2], "bias C") * np.float32(attrs.get("beta", 1.0))
            layer.bias = self.per_output(node, bias, "bias C")

    def op_MatMul(self, node):
        """MatMul of the running tensor by an initializer matrix -> Dense with a zero bias, which an Add may fill."""
        if node.input[0] in self.constants and len(node.input) > 1 and node.input[1] == self.current:
            self.fail(UnsupportedError, node, "multiplies a constant by the running tensor (W @ x), so the output's "
                                              "batch axis is not first; export x @ W (or Gemm with transB=1)")
        self.running(node)
        if len(self.shape) != 1:
            self.fail(UnsupportedError, node, f"multiplies a per-sample shape {self.shape} by a matrix; only a "
                                              f"(batch, features) input is supported -- put a Flatten before it")
        weight = self.weight(node, node.input[1], "weight")
        if weight.ndim != 2:
            self.fail(UnsupportedError, node, f"the weight has shape {weight.shape}; only 2-D MatMul weights "
                                              f"(a fully connected layer) are supported")
        self.add(node, Dense(self.layer_name(node), weight.T))

    def op_Add(self, node):
        """Add of a constant right after a MatMul, Gemm or Conv -> folded into its bias; Add of the running tensor and
        an earlier tensor of the chain -> a Residual block around the layers between them."""
        constants = [t for t in node.input if t in self.constants]
        others = [t for t in node.input if t not in self.constants]
        if len(node.input) == 2 and not constants and self.current in others:
            return self.residual(node, others[1] if others[0] == self.current else others[0])
        if len(node.input) != 2 or others != [self.current]:
            self.fail(UnsupportedError, node, f"adds {list(node.input)}; only a constant bias added to the running "
                                              f"tensor {self.current!r}, or a residual Add of it and an earlier tensor "
                                              f"of the chain, is supported")
        if self.open_weighted is None:
            self.fail(UnsupportedError, node, f"adds a constant to {self.current!r}, which no MatMul, Gemm or Conv "
                                              f"wrote just before; only a bias right after such a layer can be "
                                              f"folded (sparq has no separate bias layer)")
        layer = self.open_weighted
        layer.bias = layer.bias + self.per_output(node, self.weight(node, constants[0], "bias"), "bias")
        self.pass_through(node)

    def residual(self, node, skip):
        """``current + skip``, ``skip`` an earlier tensor of the chain: the layers since ``skip`` become the body of a
        :class:`~sparq.compiler.ir.Residual` block."""
        if skip == self.current or skip not in self.tensors:
            self.fail(UnsupportedError, node, f"adds {skip!r}, which is not an earlier tensor of the chain of layers; "
                                              f"only residual Adds of the running tensor and a tensor before it are "
                                              f"supported")
        start, shape = self.tensors[skip]
        if shape != self.shape:
            self.fail(UnsupportedError, node, f"adds {skip!r} of per-sample shape {shape} to {self.current!r} of "
                                              f"{self.shape}; a residual Add needs equal shapes (no broadcasting)")
        if start == len(self.layers):
            self.fail(UnsupportedError, node, f"adds {skip!r} to itself (no layer between them); export 2 * x as a "
                                              f"scale folded into the next layer")
        body = self.layers[start:]
        del self.layers[start:]
        self.tensors = {name: where for name, where in self.tensors.items() if where[0] <= start}
        self.add(node, Residual(self.layer_name(node), body))

    def op_BatchNormalization(self, node):
        """Inference BatchNormalization right after a Conv or Gemm -> folded into its weight and bias."""
        self.running(node)
        attrs = self.attributes(node)
        layer = self.open_weighted
        if layer is None:
            self.fail(UnsupportedError, node, "only a BatchNormalization right after a Conv, Gemm or MatMul can be "
                                              "folded into it; move it, or fold it before exporting")
        if any(node.output[1:]):
            self.fail(UnsupportedError, node, "has training outputs (running mean and variance); export the model "
                                              "in inference mode (PyTorch: model.eval())")
        scale, shift, mean, variance = (self.weight(node, tensor, what) for tensor, what in
                                        zip(node.input[1:5], ("scale", "bias B", "mean", "variance")))
        channels = layer.weight.shape[0]
        if any(a.shape != (channels,) for a in (scale, shift, mean, variance)) or np.any(variance < 0):
            self.fail(UnsupportedError, node, f"scale, bias, mean and variance must be {channels} values each (one "
                                              f"per output of {layer.name!r}), the variance non-negative")
        factor = scale / np.sqrt(variance.astype(np.float64) + attrs.get("epsilon", 1e-5))
        layer.weight = weight_array(layer.weight * factor.reshape(-1, *[1] * (layer.weight.ndim - 1)),
                                    f"layer {layer.name!r}: weight with the batch norm folded in")
        layer.bias = ((layer.bias - mean) * factor + shift).astype(np.float32)
        self.notes.append(f"folded BatchNormalization {node.name or '(unnamed)'!r} into {layer.name!r}")
        self.pass_through(node)

    def op_Conv(self, node):
        """2-D Conv with initializer weights -> Conv."""
        self.running(node)
        attrs = self.attributes(node)
        weight = self.weight(node, node.input[1], "weight")
        if weight.ndim != 4:
            self.fail(UnsupportedError, node, f"weight of shape {weight.shape} is not 2-D convolution "
                                              f"(out, in, kh, kw)")
        if "kernel_shape" in attrs and tuple(attrs["kernel_shape"]) != weight.shape[2:]:
            self.fail(ModelFormatError, node, f"kernel_shape {attrs['kernel_shape']} disagrees with the weight's "
                                              f"{weight.shape[2:]}; re-export the model")
        bias = self.weight(node, node.input[2], "bias") if len(node.input) > 2 and node.input[2] else None
        stride, pads, dilation = self.geometry(node, attrs, weight.shape[2:])
        self.add(node, Conv(self.layer_name(node), weight, bias, stride=stride, padding=pads, dilation=dilation))

    def pool(self, node, cls, **extra):
        """A 2-D MaxPool or AveragePool node -> ``cls``."""
        self.running(node)
        attrs = self.attributes(node)
        if "kernel_shape" not in attrs:
            self.fail(ModelFormatError, node, "has no kernel_shape; re-export the model")
        stride, pads, dilation = self.geometry(node, attrs, attrs["kernel_shape"])
        self.add(node, cls(self.layer_name(node), tuple(attrs["kernel_shape"]), stride, pads, dilation,
                           bool(attrs.get("ceil_mode", 0)), **extra))

    def op_MaxPool(self, node):
        """2-D MaxPool -> MaxPool."""
        if len(node.output) > 1 and node.output[1]:
            self.fail(UnsupportedError, node, "the Indices output is not supported; export MaxPool with one output")
        self.pool(node, MaxPool)

    def op_AveragePool(self, node):
        """2-D AveragePool -> AvgPool."""
        self.pool(node, AvgPool, count_include_pad=bool(self.attributes(node).get("count_include_pad", 0)))

    def op_Relu(self, node):
        """Relu -> Relu."""
        self.running(node)
        self.add(node, Relu(self.layer_name(node)))

    def op_Identity(self, node):
        """Identity: nothing to compute."""
        self.running(node)
        self.pass_through(node)

    def op_Dropout(self, node):
        """Dropout in inference mode is the identity."""
        self.running(node)
        training = node.input[2] if len(node.input) > 2 else ""
        if training and (training not in self.constants or bool(np.any(self.constants[training]))):
            self.fail(UnsupportedError, node, "runs in training mode; export the model in inference mode "
                                              "(PyTorch: model.eval())")
        used = {t for n in self.graph.node for t in n.input} | {o.name for o in self.graph.output}
        if len(node.output) > 1 and node.output[1] in used:
            self.fail(UnsupportedError, node, "its mask output is used; only inference Dropout (the identity) is "
                                              "supported")
        self.pass_through(node)

    def op_Flatten(self, node):
        """Flatten at the axis that keeps the batch first (1, or its negative twin) -> Flatten."""
        self.running(node)
        axis = self.attributes(node).get("axis", 1)
        rank = 1 + len(self.shape)
        if axis + rank * (axis < 0) != 1:
            self.fail(UnsupportedError, node, f"flattens a rank-{rank} tensor at axis {axis}, which merges the batch "
                                              f"axis with others; only axis 1 (or {1 - rank}) keeps one row per "
                                              f"sample")
        self.add(node, Flatten(self.layer_name(node)))

    def op_Reshape(self, node):
        """Reshape by a constant shape that keeps the batch axis -> Reshape to the per-sample shape."""
        self.running(node)
        if node.input[1] not in self.constants:
            self.fail(ModelFormatError, node, f"its shape comes from {node.input[1]!r}, which is computed at run "
                                              f"time (a dynamic shape); export the model with a constant reshape")
        target = [int(v) for v in self.constant(node, node.input[1], "shape").reshape(-1)]
        if self.attributes(node).get("allowzero", 0) and 0 in target:
            self.fail(UnsupportedError, node, f"allowzero=1 with a 0 in the shape {target} makes an empty tensor; "
                                              f"export the shape without the 0")
        size = int(np.prod(self.shape))
        dims = [self.shape[axis] if v == 0 and axis < len(self.shape) else v for axis, v in enumerate(target[1:])]
        if dims.count(-1) == 1 and target[0] != -1:
            known = int(np.prod([v for v in dims if v != -1]))
            dims[dims.index(-1)] = size // known if known > 0 and size % known == 0 else 0
        if not target or min(dims, default=0) < 1 or int(np.prod(dims)) != size:
            self.fail(UnsupportedError, node, f"reshape of per-sample shape {self.shape} to {target} does not keep "
                                              f"the batch axis first; only reshapes of each sample (shape [-1, ...] "
                                              f"or [0, ...]) are supported")
        self.add(node, Reshape(self.layer_name(node), dims))

    def op_Softmax(self, node):
        """A trailing Softmax over the classes is dropped: the compiler works on logits, and argmax does not change.
        """
        self.running(node)
        axis = self.attributes(node).get("axis", 1 if self.opset < 13 else -1)
        if len(self.shape) != 1 or axis not in (1, -1):
            self.fail(UnsupportedError, node, f"a Softmax over axis {axis} of per-sample shape {self.shape}; only a "
                                              f"Softmax over the classes of a (batch, classes) output is supported")
        self.softmax_output = node.output[0]
        self.notes.append(f"dropped the trailing Softmax {node.name or '(unnamed)'!r}: the model now outputs logits "
                          f"(the arg-max class is unchanged)")


def read_onnx(path):
    """Read the ONNX file at ``path`` into an IR :class:`~sparq.compiler.ir.Model` (see the module docstring)."""
    return _Reader(_load(path), Path(path)).read()


def _nodes(layers, helper, numpy_helper, tensor_in, initializers):
    """``(nodes, output tensor)`` of IR ``layers`` reading ``tensor_in``; appends their weights to ``initializers``.
    A residual block is its body's nodes and an Add of the block's input."""
    nodes = []
    for layer in layers:
        if isinstance(layer, Residual):
            body, tensor = _nodes(layer.layers, helper, numpy_helper, tensor_in, initializers)
            nodes += body + [helper.make_node("Add", [tensor, tensor_in], [f"{layer.name}.out"], name=layer.name)]
        else:
            nodes.append(_node_of(layer, helper, numpy_helper, tensor_in, initializers))
        tensor_in = nodes[-1].output[0]
    return nodes, tensor_in


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
                                pads=list(layer.padding), dilations=list(layer.dilation))
    if isinstance(layer, Relu):
        return helper.make_node("Relu", [tensor_in], [out], name=layer.name)
    if isinstance(layer, Flatten):
        return helper.make_node("Flatten", [tensor_in], [out], name=layer.name, axis=1)
    if isinstance(layer, Reshape):
        initializers.append(numpy_helper.from_array(np.array([-1, *layer.shape], np.int64), f"{layer.name}.shape"))
        return helper.make_node("Reshape", [tensor_in, f"{layer.name}.shape"], [out], name=layer.name)
    pool = dict(kernel_shape=list(layer.kernel), strides=list(layer.stride), pads=list(layer.padding),
                ceil_mode=int(layer.ceil_mode))
    if layer.dilation != (1, 1):  # AveragePool has dilations from opset 19 on (write_onnx then uses it)
        pool["dilations"] = list(layer.dilation)
    if isinstance(layer, MaxPool):
        return helper.make_node("MaxPool", [tensor_in], [out], name=layer.name, **pool)
    return helper.make_node("AveragePool", [tensor_in], [out], name=layer.name,
                            count_include_pad=int(layer.count_include_pad), **pool)


def write_onnx(model, path, softmax=None, metadata=None):
    """Write ``model`` to ``path`` as an ONNX graph (opset 17, or 19 for a dilated AveragePool) with a dynamic batch
    axis named ``N``.

    ``softmax`` appends a Softmax node to the output (default: if the model came with one, ``model.softmax``). The
    weights are embedded as initializers; ``metadata`` (``{key: text}``) goes to the model's ``metadata_props``.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    initializers = []
    nodes, tensor = _nodes(model.layers, helper, numpy_helper, "input", initializers)
    if model.softmax if softmax is None else softmax:
        nodes.append(helper.make_node("Softmax", [tensor], ["probabilities"], name="softmax", axis=-1))
        tensor = "probabilities"
    graph = helper.make_graph(
        nodes, "sparq", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *model.input_shape])],
        [helper.make_tensor_value_info(tensor, TensorProto.FLOAT, ["N", *model.output_shape])], initializers)
    dilated_average = any(isinstance(layer, AvgPool) and layer.dilation != (1, 1) for layer in model.walk())
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19 if dilated_average else OPSET)],
                              producer_name="sparq")
    proto.ir_version = 8
    helper.set_model_props(proto, dict(metadata or {}))
    onnx.checker.check_model(proto)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
