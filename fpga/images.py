"""Model images baked into FPGA builds: the shipped digits MLP as a systolic program and as an EIE image, and
saved programs and images from disk.

:func:`eie_image` compresses the digits MLP with the Deep Compression pipeline (4-bit codes,
:func:`sparq.compiler.pipeline.compress_digits_mlp`) and lowers it with :func:`sparq.compiler.eie.lower_compressed` for
``n_pe`` PEs, with every per-PE memory sized to what the image needs (so that the build measures the network, not
spare capacity).

:func:`digits_mlp_program` quantizes the shipped 64-300-100-10 digits MLP with :func:`sparq.compiler.quantize.quantize_model`
and lowers its three layers with :func:`sparq.compiler.systolic.lower_gemm`. The systolic array writes int8, so the last
layer, whose logits the float model leaves unquantized, is requantized here into an int8 scale calibrated on the
training logits; the predicted digit is the argmax of those int8 logits. (Glue between two compiler modules, kept
here until the compiler lowers whole shipped models itself.)
"""

from functools import lru_cache

import numpy as np

__all__ = ["digits_mlp_program", "digits_inputs", "load_image", "eie_image"]


@lru_cache(maxsize=4)
def _digits_int8():
    from sparq.compiler.datasets import load_digits_split
    from sparq.compiler.models import load_shipped
    from sparq.compiler.quantize import quantize_model
    model = load_shipped("digits_mlp")
    x_train, _, _, _ = load_digits_split()
    return model, quantize_model(model, x_train), x_train


def digits_mlp_program(config, *, batch: int = 1):
    """The digits MLP as a ``sparq.formats.systolic.SystolicProgram`` for ``config``, on ``batch`` images per run."""
    from sparq.compiler.ir import Relu, forward
    from sparq.compiler.quantize import calibrate_scale, requant_params
    from sparq.compiler.systolic import GemmLayer, lower_gemm

    model, qmodel, x_train = _digits_int8()
    weighted = model.weighted()
    logits_scale = calibrate_scale(forward(model, x_train))
    layers = []
    for layer in weighted:
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
    from sparq.compiler.datasets import load_digits_split
    from sparq.compiler.quantize import quantize_activation
    _, qmodel, _ = _digits_int8()
    _, _, x_test, y_test = load_digits_split()
    indices = list(indices)
    return quantize_activation(x_test[indices], qmodel.input_scale), y_test[indices]


def load_image(image, config):
    """A systolic program from ``image``: ``"digits"`` (the shipped MLP, one image per run) or the path of a program
    saved with ``sparq.formats.systolic.save_program``, which must have been compiled for ``config``."""
    from sparq.formats.systolic import FormatError, load_program
    if image == "digits":
        return digits_mlp_program(config)
    program = load_program(image)
    if program.config != config:
        raise FormatError(f"the image {image} was compiled for {program.config}, not {config}; recompile it or "
                          f"build with its configuration")
    return program


@lru_cache(maxsize=1)
def _digits_compressed():
    from sparq.compiler.pipeline import compress_digits_mlp
    return compress_digits_mlp(bits=4, progress=False)[0]


def eie_image(image: str, *, n_pe: int, fifo_depth: int = 8):
    """``(sparq.formats.eie.EieConfig, EieImage or None)`` for an EIE build.

    ``image`` is ``"digits"`` (the compressed digits MLP, memories sized to it), ``"none"`` (the same memory sizes,
    no image: the host loads one through the ports) or the directory of an image saved with
    ``sparq.formats.eie.EieImage.save`` (its own configuration, which must have ``n_pe`` PEs).
    """
    from sparq.formats.eie import EieConfig, EieImage, ImageError
    if image not in ("digits", "none"):
        loaded = EieImage.load(image)
        if loaded.config.n_pe != n_pe:
            raise ImageError(f"the image {image} is for {loaded.config.n_pe} PEs, not {n_pe}; pass "
                             f"n_pe={loaded.config.n_pe} or lower the model again")
        return loaded.config, loaded
    from sparq.compiler.eie import lower_compressed
    compressed = _digits_compressed()
    roomy = EieConfig(n_pe=n_pe, fifo_depth=fifo_depth, ptr_depth=16384, spmat_depth=16384, act_depth=4096,
                     bias_depth=1024, max_layers=16)
    need = lower_compressed(compressed, roomy).requirements()
    need["ptr_depth"] += need["ptr_depth"] % 2  # two banks of equal depth
    config = EieConfig(n_pe=n_pe, fifo_depth=fifo_depth, **need)
    return config, (lower_compressed(compressed, config) if image == "digits" else None)
