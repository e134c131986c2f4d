"""Model images for the board tops: the shipped digits MLP as a systolic program, and saved programs from disk.

:func:`digits_mlp_program` quantizes the shipped 64-300-100-10 digits MLP with :func:`compiler.quantize.quantize_model`
and lowers its three layers with :func:`compiler.systolic.lower_gemm`. The systolic array writes int8, so the last
layer, whose logits the float model leaves unquantized, is requantized here into an int8 scale calibrated on the
training logits; the predicted digit is the argmax of those int8 logits. (Glue between two compiler modules, kept
here until the compiler lowers whole shipped models itself.)
"""

from functools import lru_cache

import numpy as np

__all__ = ["digits_mlp_program", "digits_inputs", "load_image"]


@lru_cache(maxsize=4)
def _digits_int8():
    from compiler.datasets import load_digits_split
    from compiler.models import load_shipped
    from compiler.quantize import quantize_model
    model = load_shipped("digits_mlp")
    x_train, _, _, _ = load_digits_split()
    return model, quantize_model(model, x_train), x_train


def digits_mlp_program(config, *, batch: int = 1):
    """The digits MLP as a ``formats.systolic.SystolicProgram`` for ``config``, on ``batch`` images per run."""
    from compiler.quantize import calibrate_scale, requant_params
    from compiler.systolic import GemmLayer, lower_gemm
    from compiler.ir import Relu, forward

    model, qmodel, x_train = _digits_int8()
    weighted = model.weighted()
    logits_scale = calibrate_scale(forward(model, x_train))
    layers = []
    for i, layer in enumerate(weighted):
        q = qmodel.layers[layer.name]
        multiplier, shift = q.multiplier, q.shift
        if multiplier is None:  # the logits: requantize into their own calibrated int8 scale
            multiplier, shift = requant_params(q.input_scale * q.weight_scale.astype(np.float64) / logits_scale)
        position = model.layers.index(layer)
        relu = position + 1 < len(model.layers) and isinstance(model.layers[position + 1], Relu)
        layers.append(GemmLayer(layer.name, q.weight.T.copy(), q.bias, multiplier, shift, relu=relu))
    return lower_gemm(layers, batch, config)


def digits_inputs(indices):
    """``(x int8 (n, 64), labels)`` of test images ``indices``, quantized with the MLP's input scale."""
    from compiler.datasets import load_digits_split
    from compiler.quantize import quantize_activation
    _, qmodel, _ = _digits_int8()
    _, _, x_test, y_test = load_digits_split()
    indices = list(indices)
    return quantize_activation(x_test[indices], qmodel.input_scale), y_test[indices]


def load_image(image, config):
    """A systolic program from ``image``: ``"digits"`` (the shipped MLP, one image per run) or the path of a program
    saved with ``formats.systolic.save_program``, which must have been compiled for ``config``."""
    from formats.systolic import FormatError, load_program
    if image == "digits":
        return digits_mlp_program(config)
    program = load_program(image)
    if program.config != config:
        raise FormatError(f"the image {image} was compiled for {program.config}, not {config}; recompile it or "
                          f"build with its configuration")
    return program
