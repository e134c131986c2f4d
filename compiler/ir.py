"""A small layer IR and its float32 numpy reference inference.

A :class:`Model` is a list of layers in execution order plus the shape of one input sample (no batch dimension).
Every layer is a dataclass with a ``name``, a ``forward(x)`` on a batch and an ``output_shape(shape)`` for one sample:

* :class:`Dense` -- ``y = x @ weight.T + bias``; weight is (out_features, in_features): rows are outputs, columns
  are inputs (the EIE convention).
* :class:`Conv` -- 2-D convolution (cross-correlation, as ONNX), NCHW, weight (out_c, in_c, kh, kw).
* :class:`Relu`, :class:`Flatten` (to (n, features)), :class:`Reshape` (to a fixed per-sample shape).
* :class:`MaxPool`, :class:`AvgPool` -- 2-D pooling, NCHW, with ONNX's ``ceil_mode``.
* :class:`Residual` -- a skip connection, ``y = x + body(x)``, around a list of layers that keeps the shape (a ResNet
  block); blocks nest. :meth:`Model.walk` visits every layer, those inside blocks included.

Padding is ``(top, left, bottom, right)``, the order of ONNX ``pads`` for 2-D; convolutions and pools take a
``dilation`` ``(dh, dw)`` as ONNX ``dilations`` (a kernel tap every ``d`` pixels). A weighted layer given no bias has a
zero bias. Layers check their arrays when built
(float32, finite, non-empty, consistent shapes) and a model checks that the shapes chain, so a bad model fails when
it is made, with a :class:`~sparq.compiler.errors.CompileError` naming the layer.
"""

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .checks import weight_array
from .errors import ShapeError

__all__ = ["Dense", "Conv", "Relu", "Flatten", "Reshape", "MaxPool", "AvgPool", "Residual", "Model", "WEIGHTED",
           "forward", "probabilities", "im2col", "conv2d", "window_shape", "trace", "trace_layers"]


def _pair(value, what):
    """``value`` as a tuple of two positive ints (an int is used for both)."""
    pair = (value, value) if np.isscalar(value) else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v < 1 for v in pair):
        raise ShapeError(f"{what} must be one or two positive integers, got {value!r}")
    return tuple(int(v) for v in pair)


def _padding(value, what):
    """``value`` as ``(top, left, bottom, right)`` non-negative ints (an int is used for all four)."""
    pads = (value,) * 4 if np.isscalar(value) else tuple(value)
    if len(pads) != 4 or any(int(v) != v or v < 0 for v in pads):
        raise ShapeError(f"{what} must be (top, left, bottom, right) non-negative integers, got {value!r}")
    return tuple(int(v) for v in pads)


def _checked_array(layer, what, array, ndim):
    """``array`` as a float32 array of ``ndim`` dimensions, finite and non-empty, or a clear error."""
    return weight_array(array, f"layer {layer!r}: {what}", ndim)


def _weight_and_bias(layer, ndim, what):
    """Check ``layer.weight`` (``ndim`` dimensions) and ``layer.bias`` (zeros when None: no bias is a zero bias)."""
    layer.weight = _checked_array(layer.name, "weight", layer.weight, ndim)
    if layer.bias is None:
        layer.bias = np.zeros(layer.weight.shape[0], np.float32)
    layer.bias = _checked_array(layer.name, "bias", layer.bias, 1)
    if layer.bias.shape[0] != layer.weight.shape[0]:
        raise ShapeError(f"layer {layer.name!r}: bias has {layer.bias.shape[0]} entries but weight has "
                         f"{layer.weight.shape[0]} {what}")


def _chw(layer, shape):
    """The (channels, height, width) of a per-sample ``shape``, or a clear error."""
    if len(shape) != 3:
        raise ShapeError(f"layer {layer!r} needs (channels, height, width) input, got per-sample shape {shape}")
    return shape


def _span(kernel, dilation):
    """The (height, width) a dilated kernel covers: ``dilation * (kernel - 1) + 1``."""
    return tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))


def window_shape(hw, kernel, stride, padding, dilation=(1, 1), ceil_mode=False):
    """Output (height, width) of a sliding window over ``hw``, as ONNX computes it (zero or negative if it does not
    fit). With ``ceil_mode`` a partial last window counts, unless it would start past the input and its leading
    padding (ONNX and PyTorch drop that one)."""
    out = []
    for size, low, high, span, step in zip(hw, padding[:2], padding[2:], _span(kernel, dilation), stride):
        room = size + low + high - span
        count = (-(-room // step) if ceil_mode else room // step) + 1
        if ceil_mode and room >= 0 and (count - 1) * step >= size + low:
            count -= 1
        out.append(count)
    return tuple(out)


def _window_shape(layer, hw, kernel, stride, padding, dilation=(1, 1), ceil_mode=False):
    """:func:`window_shape`, or a clear error when the window does not fit."""
    out = window_shape(hw, kernel, stride, padding, dilation, ceil_mode)
    if min(out) < 1:
        raise ShapeError(f"layer {layer!r}: kernel {kernel} (dilation {dilation}) does not fit input {hw} with "
                         f"padding {padding}")
    return out


def im2col(x, kernel, stride, padding, fill=0.0, dilation=(1, 1)):
    """Sliding windows of a (n, c, h, w) batch: an array (n, c, oh, ow, kh, kw), padded with ``fill``.

    ``dilation`` takes every ``d``-th pixel of a window ``d * (k - 1) + 1`` wide. A view where possible; pooling
    reduces its last two axes and convolution contracts them with the weights.
    """
    top, left, bottom, right = padding
    if any(padding):
        x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=fill)
    windows = sliding_window_view(x, _span(kernel, dilation), axis=(2, 3))[:, :, ::stride[0], ::stride[1]]
    return windows[..., ::dilation[0], ::dilation[1]] if dilation != (1, 1) else windows


def conv2d(x, weight, bias, stride, padding, dilation=(1, 1)):
    """2-D convolution of a (n, c, h, w) batch in the dtype of its operands; the kernel of :class:`Conv`."""
    cols = im2col(x, weight.shape[2:], stride, padding, dilation=dilation)
    n, _, oh, ow = cols.shape[:4]
    cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, -1)
    y = cols @ weight.reshape(weight.shape[0], -1).T + bias
    return y.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)


@dataclass(eq=False)
class Dense:
    """Fully connected: ``y = x @ weight.T + bias``; weight (out_features, in_features), bias (out_features,) or None
    for none (a zero bias)."""

    name: str
    weight: np.ndarray
    bias: np.ndarray = None

    def __post_init__(self):
        _weight_and_bias(self, 2, "output rows")

    def output_shape(self, shape):
        """Per-sample output shape for per-sample input ``shape``."""
        if tuple(shape) != (self.weight.shape[1],):
            raise ShapeError(f"layer {self.name!r} takes ({self.weight.shape[1]},) inputs, got per-sample shape "
                             f"{tuple(shape)}; put a Flatten before it")
        return (self.weight.shape[0],)

    def forward(self, x):
        """Apply the layer to a batch (n, in_features)."""
        return x @ self.weight.T + self.bias


@dataclass(eq=False)
class Conv:
    """2-D convolution, NCHW: weight (out_c, in_c, kh, kw), bias (out_c,) or None (zero), stride (sh, sw), padding
    (t, l, b, r), dilation (dh, dw)."""

    name: str
    weight: np.ndarray
    bias: np.ndarray = None
    stride: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)
    dilation: tuple = (1, 1)

    def __post_init__(self):
        _weight_and_bias(self, 4, "output channels")
        self.stride = _pair(self.stride, f"layer {self.name!r}: stride")
        self.padding = _padding(self.padding, f"layer {self.name!r}: padding")
        self.dilation = _pair(self.dilation, f"layer {self.name!r}: dilation")

    @property
    def kernel(self):
        """(kh, kw)."""
        return self.weight.shape[2:]

    def output_shape(self, shape):
        """Per-sample output shape for per-sample input ``shape``."""
        channels, height, width = _chw(self.name, tuple(shape))
        if channels != self.weight.shape[1]:
            raise ShapeError(f"layer {self.name!r} takes {self.weight.shape[1]} input channels, got {channels}")
        return (self.weight.shape[0], *_window_shape(self.name, (height, width), self.kernel, self.stride,
                                                     self.padding, self.dilation))

    def forward(self, x):
        """Apply the layer to a batch (n, in_c, h, w)."""
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)


@dataclass(eq=False)
class Relu:
    """``max(x, 0)``."""

    name: str

    def output_shape(self, shape):
        """Per-sample output shape for per-sample input ``shape``."""
        return tuple(shape)

    def forward(self, x):
        """Apply the layer to a batch."""
        return np.maximum(x, 0)


@dataclass(eq=False)
class Flatten:
    """Flatten every sample to one dimension, in C order."""

    name: str

    def output_shape(self, shape):
        """Per-sample output shape for per-sample input ``shape``."""
        return (math.prod(shape),)

    def forward(self, x):
        """Apply the layer to a batch."""
        return x.reshape(x.shape[0], -1)


@dataclass(eq=False)
class Reshape:
    """Reshape every sample to the fixed per-sample ``shape``, in C order."""

    name: str
    shape: tuple

    def __post_init__(self):
        self.shape = tuple(int(v) for v in self.shape)
        if any(v < 1 for v in self.shape):
            raise ShapeError(f"layer {self.name!r}: reshape target {self.shape} must be positive sizes")

    def output_shape(self, shape):
        """Per-sample output shape for per-sample input ``shape``."""
        if math.prod(shape) != math.prod(self.shape):
            raise ShapeError(f"layer {self.name!r} cannot reshape {tuple(shape)} to {self.shape}")
        return self.shape

    def forward(self, x):
        """Apply the layer to a batch."""
        return x.reshape(x.shape[0], *self.shape)


@dataclass(eq=False)
class _Pool:
    """Shared fields, shape rule and windows of the 2-D pools.

    With ``ceil_mode`` the last window of a row or column may hang over the bottom or right padding; the overhang
    is never an input (it is -inf for a max, left out of an average's divisor even with ``count_include_pad``).
    """

    name: str
    kernel: tuple
    stride: tuple = None
    padding: tuple = (0, 0, 0, 0)
    dilation: tuple = (1, 1)
    ceil_mode: bool = False

    def __post_init__(self):
        self.kernel = _pair(self.kernel, f"layer {self.name!r}: kernel")
        self.stride = self.kernel if self.stride is None else _pair(self.stride, f"layer {self.name!r}: stride")
        self.padding = _padding(self.padding, f"layer {self.name!r}: padding")
        self.dilation = _pair(self.dilation, f"layer {self.name!r}: dilation")
        self.ceil_mode = bool(self.ceil_mode)

    def output_shape(self, shape):
        """Per-sample output shape for per-sample input ``shape``."""
        channels, height, width = _chw(self.name, tuple(shape))
        return (channels, *_window_shape(self.name, (height, width), self.kernel, self.stride, self.padding,
                                         self.dilation, self.ceil_mode))

    def overhang(self, hw):
        """``(bottom, right)``: how far the last windows reach past the padding (non-zero only with ``ceil_mode``)."""
        out = window_shape(hw, self.kernel, self.stride, self.padding, self.dilation, self.ceil_mode)
        return tuple(max(0, (o - 1) * s + span - (size + low + high)) for o, s, span, size, low, high in
                     zip(out, self.stride, _span(self.kernel, self.dilation), hw, self.padding[:2], self.padding[2:]))

    def full_padding(self, hw):
        """The padding ``(top, left, bottom, right)`` of the windows over an input of spatial size ``hw``: the
        layer's own plus the ceil-mode overhang."""
        bottom, right = self.overhang(hw)
        top, left, pad_bottom, pad_right = self.padding
        return (top, left, pad_bottom + bottom, pad_right + right)

    def windows(self, x, fill):
        """The pooling windows of a (n, c, h, w) batch, (n, c, oh, ow, kh, kw), padding and overhang ``fill``."""
        out = window_shape(x.shape[2:], self.kernel, self.stride, self.padding, self.dilation, self.ceil_mode)
        windows = im2col(x, self.kernel, self.stride, self.full_padding(x.shape[2:]), fill, self.dilation)
        return windows[:, :, :out[0], :out[1]]


@dataclass(eq=False)
class MaxPool(_Pool):
    """2-D max pooling, NCHW; padding never wins (it is -inf)."""

    def forward(self, x):
        """Apply the layer to a batch (n, c, h, w)."""
        return self.windows(x, -np.inf).max(axis=(4, 5))


@dataclass(eq=False)
class AvgPool(_Pool):
    """2-D average pooling, NCHW; padding counts in the divisor only when ``count_include_pad`` (as ONNX)."""

    count_include_pad: bool = False

    def divisor(self, hw):
        """The (oh, ow) array of divisors for an input of spatial size ``hw``."""
        top, left, bottom, right = self.padding
        counted = np.pad(np.ones(hw, dtype=np.float32), ((top, bottom), (left, right)),
                         constant_values=float(self.count_include_pad))
        over_bottom, over_right = self.overhang(hw)
        counted = np.pad(counted, ((0, over_bottom), (0, over_right)))[None, None]
        out = window_shape(hw, self.kernel, self.stride, self.padding, self.dilation, self.ceil_mode)
        windows = im2col(counted, self.kernel, self.stride, (0, 0, 0, 0), dilation=self.dilation)
        return windows[0, 0, :out[0], :out[1]].sum(axis=(2, 3))

    def forward(self, x):
        """Apply the layer to a batch (n, c, h, w)."""
        return self.windows(x, 0.0).sum(axis=(4, 5), dtype=np.float32) / self.divisor(x.shape[2:])


@dataclass(eq=False)
class Residual:
    """A skip connection: ``y = x + body(x)``, where ``layers`` (the body, in order) map a sample to its own shape."""

    name: str
    layers: list

    def __post_init__(self):
        self.layers = list(self.layers)
        if not self.layers:
            raise ShapeError(f"layer {self.name!r}: a residual block needs at least one layer in its body")

    def output_shape(self, shape):
        """Per-sample output shape for per-sample input ``shape`` (the same, or a clear error)."""
        out = tuple(shape)
        for layer in self.layers:
            out = layer.output_shape(out)
        if out != tuple(shape):
            raise ShapeError(f"layer {self.name!r}: its body maps {tuple(shape)} to {out}; a residual Add needs the "
                             f"same shape on both sides")
        return tuple(shape)

    def forward(self, x):
        """Apply the block to a batch."""
        return x + trace_layers(self.layers, x)[-1]


WEIGHTED = (Dense, Conv)
"""The layer types that hold a weight and a bias."""


def _walk(layers):
    for layer in layers:
        yield layer
        if isinstance(layer, Residual):
            yield from _walk(layer.layers)


@dataclass(eq=False)
class Model:
    """Layers in execution order and the per-sample ``input_shape`` (no batch dimension).

    ``notes`` records what an importer changed on the way in (a dropped trailing Softmax, for instance).
    ``softmax`` is True when the source model ended in a Softmax over its outputs: the compiler works on the logits
    (:func:`forward`; the arg-max class is the same) and :func:`probabilities` applies the Softmax again. Building
    a model checks that the layer names are unique and that the shapes chain.
    """

    layers: list
    input_shape: tuple
    notes: list = field(default_factory=list)
    softmax: bool = False

    def __post_init__(self):
        self.layers = list(self.layers)
        self.input_shape = tuple(int(v) for v in self.input_shape)
        names = [layer.name for layer in self.walk()]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ShapeError(f"layer names must be unique; repeated: {duplicates}")
        if not self.layers:
            raise ShapeError("a model needs at least one layer")
        _ = self.output_shape  # checks that the shapes chain

    @property
    def output_shape(self):
        """Per-sample output shape; raises :class:`ShapeError` if the layers do not chain."""
        shape = self.input_shape
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return shape

    def walk(self):
        """Every layer in execution order, the layers inside residual blocks included (after their block)."""
        return list(_walk(self.layers))

    def layer(self, name):
        """The layer called ``name`` (inside a residual block too)."""
        for layer in self.walk():
            if layer.name == name:
                return layer
        raise KeyError(f"no layer {name!r}; layers are {[layer.name for layer in self.walk()]}")

    def weighted(self):
        """The layers with a weight and a bias (Dense and Conv), in execution order, inside blocks too."""
        return [layer for layer in self.walk() if isinstance(layer, WEIGHTED)]


def _batch(model, x):
    """``x`` as a float32 batch for ``model``, or a clear error."""
    x = np.asarray(x, dtype=np.float32)
    if x.shape[1:] != model.input_shape:
        raise ShapeError(f"the model takes a batch of shape (n, {', '.join(map(str, model.input_shape))}), got "
                         f"{x.shape}")
    return x


def forward(model, x):
    """Float32 reference inference of ``model`` on a batch ``x`` of shape (n, *model.input_shape).

    Returns the output of the last layer: the logits, for a classifier.
    """
    x = _batch(model, x)
    for layer in model.layers:
        x = layer.forward(x)
    return x


def probabilities(model, x):
    """What the source model outputs: :func:`forward`, then the Softmax over each sample's outputs if it had one."""
    logits = forward(model, x)
    if not model.softmax:
        return logits
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def trace(model, x):
    """Every intermediate of the reference inference: ``[input, output of layer 0, ..., output of the last]``.

    Entry ``i`` is the input of ``model.layers[i]``; training and calibration read them.
    """
    return trace_layers(model.layers, _batch(model, x))


def trace_layers(layers, x):
    """``[x, output of layers[0], ..., output of the last]`` for a batch ``x`` (a residual block's body, say)."""
    values = [x]
    for layer in layers:
        values.append(layer.forward(values[-1]))
    return values
