"""Networks on the systolic accelerator: a model quantized and cut into device steps (GEMM chains, Winograd
convolutions) and host steps (im2col, pooling, reshapes), and the generator that runs them call by call."""

from dataclasses import dataclass, field

import numpy as np

from sparq.formats.systolic import (
    SystolicConfig,
    SystolicProgram,
    pack_matrix,
    unpack_matrix,
)

from ..errors import CompileError, UnsupportedError
from ..ir import AvgPool, Conv, Dense, Flatten, MaxPool, Relu, Reshape, Residual, im2col, trace
from ..quantize import (
    avgpool_int8,
    calibrate_scale,
    quantize_activation,
    quantize_model,
    requant_params,
    residual_add_int8,
)
from ..ranges import check_ranges
from .gemm import lower_gemm
from .program import CapacityError, GemmLayer
from .winograd import WinogradLayer, WinogradStep, winograd_refusal

__all__ = ["HostStep", "DeviceStep", "SystolicNetwork", "compile_network", "max_batch"]


@dataclass
class HostStep:
    """A numpy step on int8 values between device steps; ``apply`` maps one int8 array to the next.

    A residual block is two host steps around its body's steps: one that ``keeps`` the running tensor under the
    block's name, and one that ``adds`` it back: its ``apply`` takes the kept tensor and the body's output.
    """
    name: str
    describe: str
    apply: object
    keeps: str = None
    adds: str = None

    def host(self, x, kept):
        """This step on the running tensor ``x``; ``kept`` holds the tensors residual blocks keep during a run."""
        if self.keeps is not None:
            kept[self.keeps] = x
            return x
        if self.adds is not None:
            return self.apply(kept.pop(self.adds), x)
        return self.apply(x)


@dataclass
class DeviceStep:
    """A chain of GEMMs on the accelerator; its input is an ``(images * rows_per_image, K)`` int8 matrix."""
    name: str
    layers: list
    rows_per_image: int
    config: SystolicConfig
    batch: int = 1
    _programs: dict = field(default_factory=dict, repr=False)

    @property
    def describe(self):
        return " -> ".join(f"{l.name} ({l.k}x{l.n}{', ReLU' if l.relu else ''})" for l in self.layers)

    def check(self, images: int):
        """Raise :class:`CapacityError` if ``images`` images per call do not fit the configuration."""
        lower_gemm(self.layers, images * self.rows_per_image, self.config)

    def program(self, m: int) -> SystolicProgram:
        """The program for ``m`` rows (compiled once per size)."""
        if m not in self._programs:
            self._programs[m] = lower_gemm(self.layers, m, self.config)
        return self._programs[m]

    def run(self, x):
        """A generator: yields ``(program, input_words)`` per chunk of at most ``batch`` images and expects the
        chunk's output words to be sent back; returns the ``(rows, N)`` int8 result."""
        rows = self.batch * self.rows_per_image
        outputs = []
        for lo in range(0, len(x), rows):
            chunk = x[lo:lo + rows]
            program = self.program(len(chunk))
            words = yield program, pack_matrix(chunk, self.config.lanes)
            outputs.append(unpack_matrix(words, len(chunk), self.layers[-1].n))
        return np.concatenate(outputs)


@dataclass
class SystolicNetwork:
    """A model compiled for the accelerator: quantize the input, then run the steps; the output is int8 logits
    with scale ``output_scale``."""
    name: str
    config: SystolicConfig
    steps: list
    input_scale: float
    output_scale: float
    batch: int
    notes: list = field(default_factory=list)

    def execute(self, images):
        """A generator over the device calls of a run on float ``images`` (see :meth:`DeviceStep.run`); returns
        the int8 logits. ``sparq.sim.systolic.golden.run_network`` drives it with the golden model, ``sparq.sim.tb.systolic``
        with the RTL."""
        x = quantize_activation(images, self.input_scale)
        kept = {}
        for step in self.steps:
            x = step.host(x, kept) if isinstance(step, HostStep) else (yield from step.run(x))
        return x

    def summary(self) -> str:
        lines = [f"{self.name} on a {self.config.rows}x{self.config.cols} array, {self.batch} images per call"]
        lines += [f"  {'host  ' if isinstance(s, HostStep) else 'device'}  {s.name}: {s.describe}"
                  for s in self.steps]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def _gemm_layer(name, q, weight_kn, relu, multiplier, shift):
    return GemmLayer(name, np.ascontiguousarray(weight_kn), q.bias.astype(np.int64), multiplier, shift, relu)


def _host_im2col(layer, shape):
    c, h, w = shape
    def apply(x):
        cols = im2col(x.reshape(-1, c, h, w), layer.kernel, layer.stride, layer.padding, fill=0,
                      dilation=layer.dilation)
        n, _, oh, ow = cols.shape[:4]
        return np.ascontiguousarray(cols.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, -1))
    return HostStep(f"{layer.name}.im2col", f"im2col {shape} -> rows (image, y, x), columns (c, ky, kx)", apply)


def _host_nchw(name, shape):
    c, oh, ow = shape
    def apply(y):
        return np.ascontiguousarray(y.reshape(-1, oh, ow, c).transpose(0, 3, 1, 2))
    return HostStep(f"{name}.nchw", f"rows (image, y, x) -> NCHW {shape}", apply)


def _host_maxpool(layer):
    def apply(x):
        return layer.windows(x, -128).max(axis=(4, 5)).astype(np.int8)
    return HostStep(layer.name, f"max pool {layer.kernel} stride {layer.stride} on int8", apply)


def _host_avgpool(layer):
    return HostStep(layer.name, f"average pool {layer.kernel} stride {layer.stride} on int8 (window sums "
                    f"requantized by 1 / count)", lambda x: avgpool_int8(layer, x))


def _host_reshape(name, shape):
    def apply(x):
        return np.ascontiguousarray(x.reshape(-1, *shape))
    return HostStep(name, f"reshape to {shape}", apply)


def _host_residual(layer, residual):
    keep = HostStep(f"{layer.name}.keep", "keep the block's input for its residual add", None, keeps=layer.name)
    add = HostStep(f"{layer.name}.add", f"residual add on int8 (skip x {residual.skip_multiplier}, body x "
                   f"{residual.body_multiplier}, >> {residual.shift})",
                   lambda kept, body: residual_add_int8(kept, body, residual), adds=layer.name)
    return keep, add


def max_batch(layer_chains, config: SystolicConfig, limit: int = 4096) -> int:
    """The largest number of images (up to ``limit``) whose device steps all fit ``config``; ``layer_chains`` is a
    list of ``(layers, rows_per_image)``. Raises :class:`CapacityError` when not even one image fits."""
    return _largest_batch([DeviceStep("chain", layers, rows, config) for layers, rows in layer_chains], limit)


def _largest_batch(steps, limit: int = 4096) -> int:
    """The largest number of images (up to ``limit``) for which every step's ``check`` passes."""
    def fits(batch):
        try:
            for step in steps:
                step.check(batch)
        except CapacityError:
            return False
        return True
    if not fits(1):
        for step in steps:
            step.check(1)  # raises the CapacityError that says what to raise
    lo, hi = 1, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def compile_network(model, calibration_x, config: SystolicConfig, *, name: str = "model", batch: int = None,
                    method: str = "minmax", winograd: bool = False) -> SystolicNetwork:
    """Quantize ``model`` (an IR :class:`~sparq.compiler.ir.Model`) on ``calibration_x`` and lower it for ``config``.

    ``batch`` (images per device call) defaults to :func:`max_batch`; a larger one is refused with the capacity
    error of the memory that overflows. ``winograd`` lowers 3x3 stride-1 convolutions by Winograd F(2x2, 3x3)
    (needs ``config.winograd``); the others go through im2col with a note.
    """
    if winograd and not config.winograd:
        raise CompileError("winograd=True needs a Winograd build of the accelerator: SystolicConfig(winograd=True, "
                           "...) (or drop --winograd to lower convolutions by im2col)")
    check_ranges(model, calibration_x, "systolic lowering")
    notes = []
    qmodel = quantize_model(model, calibration_x, method=method)
    logits = trace(model, calibration_x)[-1]
    output_scale = calibrate_scale(logits, method)
    last = model.weighted()[-1]

    def requant(layer):
        q = qmodel.layers[layer.name]
        if q.multiplier is not None:
            return q.multiplier, q.shift
        return requant_params(q.input_scale * q.weight_scale.astype(np.float64) / output_scale)

    def lower_layers(layers, shape):
        """The steps of ``layers`` on per-sample ``shape`` (a residual block's body recursively)."""
        steps, dense_run = [], []

        def flush():
            if dense_run:
                steps.append(DeviceStep("+".join(l.name for l in dense_run), list(dense_run), 1, config))
                dense_run.clear()

        i = 0
        while i < len(layers):
            layer = layers[i]
            relu = i + 1 < len(layers) and isinstance(layers[i + 1], Relu) and layer is not last
            if isinstance(layer, Dense):
                q = qmodel.layers[layer.name]
                dense_run.append(_gemm_layer(layer.name, q, q.weight.T, relu, *requant(layer)))
            else:
                flush()
                winograd_layer = None
                if isinstance(layer, Conv) and winograd:
                    q = qmodel.layers[layer.name]
                    why = winograd_refusal(layer.kernel, layer.stride, layer.dilation)
                    if not why:
                        try:
                            winograd_layer = WinogradLayer(layer.name, q.weight, q.bias.astype(np.int64),
                                                           *requant(layer), relu=relu, padding=layer.padding)
                        except CompileError as error:
                            why = str(error)
                    if why:
                        notes.append(f"{layer.name}: lowered by im2col, not Winograd ({why})")
                if winograd_layer is not None:
                    steps.append(WinogradStep(layer.name, winograd_layer, tuple(shape), config))
                elif isinstance(layer, Conv):
                    q = qmodel.layers[layer.name]
                    out = layer.output_shape(shape)
                    steps.append(_host_im2col(layer, shape))
                    gemm = _gemm_layer(layer.name, q, q.weight.reshape(len(q.weight), -1).T, relu, *requant(layer))
                    steps.append(DeviceStep(layer.name, [gemm], out[1] * out[2], config))
                    steps.append(_host_nchw(layer.name, out))
                elif isinstance(layer, MaxPool):
                    steps.append(_host_maxpool(layer))
                elif isinstance(layer, AvgPool):
                    steps.append(_host_avgpool(layer))
                elif isinstance(layer, (Flatten, Reshape)):
                    steps.append(_host_reshape(layer.name, layer.output_shape(shape)))
                elif isinstance(layer, Relu):
                    steps.append(HostStep(layer.name, "ReLU on int8", lambda x: np.maximum(x, 0)))
                elif isinstance(layer, Residual):
                    keep, add = _host_residual(layer, qmodel.residuals[layer.name])
                    steps += [keep, *lower_layers(layer.layers, shape), add]
                else:
                    raise UnsupportedError(f"layer {layer.name!r} ({type(layer).__name__}) has no systolic "
                                           f"lowering; supported: Dense, Conv, Relu, MaxPool, AvgPool, Flatten, "
                                           f"Reshape, Residual")
            shape = layer.output_shape(shape)
            i += 2 if relu else 1
            if relu:
                shape = layers[i - 1].output_shape(shape)
        flush()
        return steps

    steps = lower_layers(model.layers, model.input_shape)
    device = [s for s in steps if not isinstance(s, HostStep)]
    if batch is None:
        batch = _largest_batch(device)
    else:
        for step in device:
            step.check(batch)  # a clear CapacityError if it does not fit
    for step in device:
        step.batch = batch
    return SystolicNetwork(name, config, steps, qmodel.input_scale, output_scale, batch, notes)
