"""Linear int8 quantization: symmetric per-output-channel weights, calibrated activations, integer requantization.

Every real value ``r`` is stored as an int8 ``q`` with a float scale ``s``: ``r ~= s * q`` (symmetric, zero point
0). The rounding everywhere is **round half up**, ``round(v) = floor(v + 1/2)``:

* weights, per output channel: ``s_w[c] = max|W[c]| / 127``, ``q = clip(round(W / s_w), -127, 127)``;
* activations: ``s = max|x| / 127`` over calibration samples (``"minmax"``) or the ``percentile`` of ``|x|``
  (``"percentile"``), ``q = clip(round(x / s), -128, 127)``;
* biases: int32, ``round(b / (s_in * s_w[c]))``.

A layer then computes the int32 accumulator ``acc = sum q_x * q_w + q_b`` exactly, and the int8 output is
:func:`requantize` ``(acc, multiplier, shift)``, in integers only::

    y = clip((acc * multiplier + 2**(shift - 1)) >> shift, -128, 127)      # >> is an arithmetic shift (floor)

which is ``floor(acc * multiplier / 2**shift + 1/2)``: round half up, so 2.5 -> 3 and -2.5 -> -2.
``(multiplier, shift)`` from :func:`requant_params` approximate ``s_in * s_w[c] / s_out`` with a
``multiplier_bits``-bit unsigned multiplier (its top bit set). This is what the systolic array executes.
"""

from dataclasses import dataclass, field

import numpy as np

from .checks import weight_array
from .errors import ConfigError, UnsupportedError
from .ir import WEIGHTED, AvgPool, Conv, Dense, Relu, Residual, conv2d, trace, trace_layers

__all__ = ["round_half_up", "quantize_per_channel", "calibrate_scale", "quantize_activation", "requant_params",
           "requantize", "avgpool_int8", "Int8Layer", "Int8Residual", "Int8Model", "residual_params", "residual_add_int8",
           "quantize_model", "forward_int8", "CALIBRATIONS"]

CALIBRATIONS = ("minmax", "percentile")
MAX_SHIFT = 62


def round_half_up(x):
    """``floor(x + 1/2)`` as int64: the one rounding rule of this module."""
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5).astype(np.int64)


def quantize_per_channel(weight):
    """Symmetric per-output-channel int8 weights: ``(q int8 of weight's shape, scales float32 (out,))``.

    Channel ``c`` is ``weight[c]`` (a row of a Dense weight, a filter of a Conv weight); ``scale[c] =
    max|weight[c]| / 127`` and ``q = clip(round_half_up(weight / scale), -127, 127)``. A channel whose largest
    magnitude is below 2**-16 of the layer's (a dead or all-zero channel) gets the scale of that floor instead, so
    that its bias, stored in units of the scale, still fits int32. An all-zero layer gets scale 1/127.
    """
    weight = weight_array(weight, "weight to quantize")
    amax = np.abs(weight.reshape(len(weight), -1)).max(axis=1)
    floor = amax.max() / 2 ** 16 if amax.max() > 0 else 1.0
    scales = (np.maximum(amax, floor) / 127.0).astype(np.float32)
    shape = (-1,) + (1,) * (weight.ndim - 1)
    q = np.clip(round_half_up(weight / scales.reshape(shape)), -127, 127).astype(np.int8)
    return q, scales


def calibrate_scale(samples, method="minmax", percentile=99.99):
    """Activation scale ``amax / 127`` from calibration ``samples``: ``amax`` is ``max|x|`` (``"minmax"``) or the
    ``percentile`` of ``|x|`` (``"percentile"``, clipping rare outliers). An all-zero tensor gets scale 1/127."""
    if method not in CALIBRATIONS:
        raise ConfigError(f"unknown calibration {method!r}; use one of {', '.join(CALIBRATIONS)}")
    if not 0 < percentile <= 100:
        raise ConfigError(f"the calibration percentile must be in (0, 100], got {percentile}")
    magnitude = np.abs(weight_array(samples, "calibration samples"))
    amax = float(magnitude.max() if method == "minmax" else np.percentile(magnitude, percentile))
    return (amax if amax > 0 else 1.0) / 127.0


def quantize_activation(x, scale):
    """``clip(round_half_up(x / scale), -128, 127)`` as int8."""
    return np.clip(round_half_up(np.asarray(x, dtype=np.float64) / scale), -128, 127).astype(np.int8)


def requant_params(real_scale, multiplier_bits=16):
    """``(multiplier, shift)``, int64 arrays shaped like ``real_scale``, with ``multiplier / 2**shift ~=
    real_scale``.

    ``multiplier`` has exactly ``multiplier_bits`` bits (``2**(bits-1) <= multiplier < 2**bits``), so the relative
    error is below ``2**-bits``; ``shift`` is in [0, 62]. A scale so small that it would need a larger shift (below
    2**-32 for 16 bits: no int32 accumulator can then reach 1/2) becomes ``(0, 0)``, an output of exactly 0, as
    for a dead channel. A scale too large for shift 0 raises ConfigError.
    """
    if not 2 <= multiplier_bits <= 31:
        raise ConfigError(f"multiplier_bits must be in [2, 31], got {multiplier_bits}")
    real_scale = np.asarray(real_scale, dtype=np.float64)
    if not np.all(np.isfinite(real_scale) & (real_scale > 0)):
        raise ConfigError("requantization scales must be finite and positive; check the calibration samples")
    mantissa, exponent = np.frexp(real_scale)                   # real = mantissa * 2**exponent, mantissa in [0.5, 1)
    multiplier = round_half_up(mantissa * 2.0 ** multiplier_bits)
    carry = multiplier == 2 ** multiplier_bits                  # rounding reached the next power of two
    multiplier = np.where(carry, multiplier // 2, multiplier)
    shift = multiplier_bits - exponent - carry
    if np.any(shift < 0):
        raise ConfigError(f"requantization scale {real_scale.max():.3g} is too large for a {multiplier_bits}-bit "
                          f"multiplier with shift >= 0; recalibrate (the output scale is far below the input scale)")
    negligible = shift > MAX_SHIFT
    return np.where(negligible, 0, multiplier).astype(np.int64), np.where(negligible, 0, shift).astype(np.int64)


def requantize(acc, multiplier, shift):
    """int8 ``clip((acc * multiplier + 2**(shift-1)) >> shift, -128, 127)``: exact integers, round half up.

    ``acc`` is an int32-range accumulator array; ``multiplier`` and ``shift`` broadcast against it (per output
    channel). ``shift = 0`` adds no rounding term. The product stays below 2**62, so int64 is exact.
    """
    acc = np.asarray(acc, dtype=np.int64)
    multiplier, shift = np.asarray(multiplier, dtype=np.int64), np.asarray(shift, dtype=np.int64)
    rounding = np.where(shift > 0, np.left_shift(1, np.maximum(shift - 1, 0)), 0)
    return np.clip((acc * multiplier + rounding) >> shift, -128, 127).astype(np.int8)


@dataclass(eq=False)
class Int8Layer:
    """The integer form of one weighted layer: int8 ``weight``, int32 ``bias``, the scales, and per-channel
    requantization ``multiplier`` and ``shift`` (None for the last layer, whose accumulators are dequantized)."""

    weight: np.ndarray
    bias: np.ndarray
    weight_scale: np.ndarray
    input_scale: float
    output_scale: float = None
    multiplier: np.ndarray = None
    shift: np.ndarray = None


@dataclass(eq=False)
class Int8Residual:
    """The int8 add of a residual block: ``y = clip((x * skip_multiplier + b * body_multiplier + 2**(shift-1)) >>
    shift, -128, 127)``, the skip ``x`` in ``skip_scale``, the body's output ``b`` in ``body_scale`` and ``y`` in
    ``output_scale`` (:func:`residual_params`, :func:`residual_add_int8`)."""

    skip_scale: float
    body_scale: float
    output_scale: float
    skip_multiplier: int
    body_multiplier: int
    shift: int


@dataclass(eq=False)
class Int8Model:
    """An IR ``model`` (for its layer geometry) with the :class:`Int8Layer` of each weighted layer and the
    :class:`Int8Residual` of each residual block."""

    model: object
    layers: dict
    input_scale: float
    residuals: dict = field(default_factory=dict)


RESIDUAL_PRECISION = 30
"""Bits the two multipliers of a residual add may differ by; the smaller term loses precision beyond that, which
keeps ``int8 * multiplier`` inside int64."""


def residual_params(skip_scale, body_scale, output_scale, multiplier_bits=16):
    """The :class:`Int8Residual` adding int8 tensors of ``skip_scale`` and ``body_scale`` into ``output_scale``: each
    ratio becomes a ``multiplier_bits``-bit multiplier (:func:`requant_params`) brought to one shift."""
    (m_skip, s_skip), (m_body, s_body) = (
        (int(m), int(sh)) for m, sh in (requant_params(ratio / output_scale, multiplier_bits)
                                        for ratio in (skip_scale, body_scale)))
    shift = min(max(s_skip, s_body), min(s_skip, s_body) + RESIDUAL_PRECISION)

    def at(multiplier, own):  # the multiplier for ``shift`` instead of ``own``
        return multiplier << (shift - own) if own <= shift else int(round_half_up(multiplier / 2 ** (own - shift)))

    return Int8Residual(float(skip_scale), float(body_scale), float(output_scale), at(m_skip, s_skip),
                        at(m_body, s_body), shift)


def residual_add_int8(skip, body, residual):
    """The int8 output of a residual add (:class:`Int8Residual`) of int8 tensors ``skip`` and ``body``."""
    acc = (np.asarray(skip, dtype=np.int64) * residual.skip_multiplier +
           np.asarray(body, dtype=np.int64) * residual.body_multiplier)
    return requantize(acc, 1, residual.shift)


class _Calibration:
    """The walk of :func:`quantize_model`: follows the scale of the running tensor through a list of layers."""

    def __init__(self, method, percentile, multiplier_bits, last):
        self.method, self.percentile, self.multiplier_bits, self.last = method, percentile, multiplier_bits, last
        self.layers, self.residuals, self.input_scale = {}, {}, None

    def scale_of(self, value):
        return calibrate_scale(value, self.method, self.percentile)

    def start(self, scale, value):
        """The running scale, calibrated on ``value`` (the model's input scale) if not known yet."""
        if scale is None:
            scale = self.input_scale = self.scale_of(value)
        return scale

    def chain(self, layers, values, scale):
        """Quantize ``layers`` run on ``values = trace_layers(layers, x)``, ``x`` in ``scale`` (None: not known
        yet); returns the scale of their output."""
        for i, layer in enumerate(layers):
            if isinstance(layer, WEIGHTED):
                scale = self.start(scale, values[i])
                written = values[i + 2] if i + 1 < len(layers) and isinstance(layers[i + 1], Relu) else values[i + 1]
                out = None if layer is self.last else self.scale_of(written)
                self.layers[layer.name] = self.weighted(layer, scale, out)
                scale = out
            elif isinstance(layer, Residual):
                scale = self.start(scale, values[i])
                body = self.chain(layer.layers, trace_layers(layer.layers, values[i]), scale)
                out = self.scale_of(values[i + 1])
                self.residuals[layer.name] = residual_params(scale, body, out, self.multiplier_bits)
                scale = out
        return scale

    def weighted(self, layer, input_scale, output_scale):
        q, weight_scale = quantize_per_channel(layer.weight)
        accumulator_scale = input_scale * weight_scale.astype(np.float64)
        bias = np.clip(round_half_up(layer.bias / accumulator_scale), -2 ** 31, 2 ** 31 - 1).astype(np.int32)
        int8 = Int8Layer(q, bias, weight_scale, input_scale)
        if output_scale is not None:
            int8.output_scale = output_scale
            int8.multiplier, int8.shift = requant_params(accumulator_scale / output_scale, self.multiplier_bits)
        return int8


def quantize_model(model, calibration_x, method="minmax", percentile=99.99, multiplier_bits=16):
    """Quantize ``model`` to int8, calibrating activation scales on ``calibration_x``; returns an Int8Model.

    The first weighted layer's input scale is calibrated on its float input. Every other weighted layer's
    accumulators are requantized into the scale calibrated on the tensor it writes: its output, after the ReLU
    that directly follows it if there is one. Pools, flatten and reshape keep that scale, so it is also the input
    scale of the next weighted layer. A residual block's add requantizes its skip and its body's output into the
    scale calibrated on the block's output (:func:`residual_params`). The model must end with a weighted layer (the
    logits).
    """
    weighted = model.weighted()
    if not weighted or model.layers[-1] is not weighted[-1]:
        raise UnsupportedError(f"int8 quantization needs a model that ends with a Dense or Conv layer (the logits); "
                               f"this one ends with {model.layers[-1].name!r}")
    walk = _Calibration(method, percentile, multiplier_bits, weighted[-1])
    walk.chain(model.layers, trace(model, calibration_x), None)
    return Int8Model(model, walk.layers, walk.input_scale, walk.residuals)


def _accumulate(layer, q, x):
    """The exact int64 accumulators of weighted ``layer`` with int8 weights ``q.weight`` on integer input ``x``."""
    weight, bias = q.weight.astype(np.float64), q.bias.astype(np.float64)
    if isinstance(layer, Dense):
        acc = x @ weight.T + bias
    else:
        acc = conv2d(x, weight, bias, layer.stride, layer.padding, layer.dilation)
    return np.rint(acc).astype(np.int64)  # float64 sums of these integers are exact below 2**53


def avgpool_int8(layer, x, multiplier_bits=16):
    """Average pooling of int8 values (NCHW): exact window sums requantized by ``1 / count`` (:func:`requantize`),
    so the output keeps the input's scale."""
    sums = np.rint(layer.windows(np.asarray(x, dtype=np.float64), 0.0).sum(axis=(4, 5))).astype(np.int64)
    return requantize(sums, *requant_params(1.0 / layer.divisor(x.shape[2:]), multiplier_bits))


def _channel(layer, acc):
    """The index that broadcasts a per-output-channel array against ``layer``'s accumulators."""
    return (slice(None),) + (None,) * (acc.ndim - 2) if isinstance(layer, Conv) else slice(None)


def _int8_layers(qmodel, layers, x, multiplier_bits):
    """``layers`` on the int8 values ``x`` (held as float64); every weighted layer among them requantizes."""
    for layer in layers:
        if isinstance(layer, WEIGHTED):
            q = qmodel.layers[layer.name]
            acc = _accumulate(layer, q, x)
            x = requantize(acc, q.multiplier[_channel(layer, acc)], q.shift[_channel(layer, acc)]).astype(np.float64)
        elif isinstance(layer, AvgPool):
            x = avgpool_int8(layer, x, multiplier_bits).astype(np.float64)
        elif isinstance(layer, Residual):
            body = _int8_layers(qmodel, layer.layers, x, multiplier_bits)
            x = residual_add_int8(x, body, qmodel.residuals[layer.name]).astype(np.float64)
        else:
            x = layer.forward(x)
    return x


def forward_int8(qmodel, x, multiplier_bits=16):
    """Integer inference of an :class:`Int8Model` on a float batch ``x``; returns float32 logits.

    The input is quantized with the first layer's scale; every weighted layer accumulates exactly and requantizes
    to int8 with :func:`requantize`; ReLU, max-pool, flatten and reshape act on the int8 values, an average pool
    requantizes its sums by ``1 / count`` and a residual block's add is :func:`residual_add_int8`. The last layer's
    accumulators are dequantized (``acc * s_in * s_w[c]``).
    """
    *layers, last = qmodel.model.layers
    x = _int8_layers(qmodel, layers, quantize_activation(x, qmodel.input_scale).astype(np.float64), multiplier_bits)
    q = qmodel.layers[last.name]
    acc = _accumulate(last, q, x)
    return (acc * (q.input_scale * q.weight_scale.astype(np.float64))[_channel(last, acc)]).astype(np.float32)
