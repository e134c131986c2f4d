"""Back end for the systolic accelerator: lowers int8 GEMMs (and, through im2col, convolutions) to
``formats.systolic`` programs plus their weight images, and checks that they fit the hardware configuration.

Lowering of one GEMM ``Y = requantize(X @ W + bias)`` with ``X`` of ``M x K`` (run-time input in the unified
buffer), ``W`` of ``K x N`` (static):

* ``W`` is cut into ``rows x cols`` tiles (``KT = ceil(K / rows)`` by ``NT = ceil(N / cols)``), zero-padded at the
  edges, each stored as ``rows`` weight-buffer words; each output-column tile has a parameter record (bias,
  multiplier, shift). All of them go to the weight buffer once, by READ_WEIGHTS at the start of the program.
* ``X`` is in the unified buffer as ``KT`` blocks of ``M`` words (``formats.systolic.pack_matrix``); ``Y`` is
  written as ``NT`` blocks of ``M`` words, which is the next layer's input layout.
* Rows are processed in chunks of at most ``acc_depth // 2`` (two accumulator regions, alternated, so that an
  ACTIVATE drains one region while MATMUL fills the other). For each output tile and row chunk: for each K tile,
  LOAD_WEIGHTS into the next bank (alternating, so the next tile shifts in while the current one computes) then
  MATMUL (overwrite for the first K tile, accumulate after); then ACTIVATE. The first LOAD_WEIGHTS of the next
  group is placed before the ACTIVATE, so that it overlaps the drain.

Capacity errors name the memory, the words needed, the words available and the parameter to raise.

Networks (:func:`compile_network`) are quantized with :mod:`compiler.quantize` (symmetric per-channel int8
weights, calibrated activations, round-half-up requantization -- the same integer rule the hardware runs) and cut
into steps:

* **device** steps: a run of Dense layers (each with the ReLU that follows it fused into its ACTIVATE) is one
  program whose activations stay in the unified buffer; a Conv layer (with its ReLU) is one GEMM over the im2col
  matrix. The last layer is requantized to int8 too, with a scale calibrated on the float logits.
* **host** steps, in numpy on int8 values: reshape, flatten, **im2col** (rows ``(image, out_y, out_x)``, columns
  ``(in_channel, ky, kx)``, zero padding -- zero is the quantized 0), back to NCHW after a convolution, and
  **max pooling** (exact on int8, since requantization is monotonic; padding is -128). Pooling and flatten are on
  the host side, not in the activation unit. Average pooling is not supported.

Each device step runs in chunks of at most ``batch`` images, ``batch`` being the largest that fits the unified
buffer (:func:`max_batch`).

With ``winograd=True`` (and a Winograd build, ``SystolicConfig(winograd=True)``), 3x3 stride-1 convolutions are
lowered by Winograd F(2x2, 3x3) instead (:mod:`compiler.winograd`, one ``WinogradStep`` doing its own tiling),
with int8 outputs identical to im2col's; other conv layers fall back to im2col, with a note in
``SystolicNetwork.notes``.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from formats.systolic import (PARAM_WORDS, Flag, Instruction, Opcode, SystolicConfig, SystolicProgram, pack_matrix,
                              pack_params, pack_weight_tile, unpack_matrix)

from .errors import CompileError, UnsupportedError
from .ir import Conv, Dense, Flatten, MaxPool, Relu, Reshape, im2col, trace
from .quantize import calibrate_scale, quantize_activation, quantize_model, requant_params

__all__ = ["CapacityError", "GemmLayer", "ProgramBuilder", "lower_gemm", "gemm_program", "DeviceStep", "HostStep",
           "SystolicNetwork", "compile_network", "max_batch"]


class CapacityError(CompileError):
    """A program does not fit the hardware configuration; the message names the memory and the parameter to raise."""


@dataclass
class GemmLayer:
    """One int8 GEMM with its requantization: ``Y = requantize(X @ weight + bias, multiplier, shift, relu)``.

    ``weight`` is int8 ``K x N`` (inputs by outputs); ``bias`` int32, ``multiplier`` uint16 and ``shift`` per output
    column (length ``N``).
    """
    name: str
    weight: np.ndarray
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    relu: bool = False

    def __post_init__(self):
        from formats.systolic import MAX_SHIFT
        self.weight = np.asarray(self.weight)
        if self.weight.ndim != 2 or self.weight.dtype != np.int8:
            raise CompileError(f"layer {self.name!r}: weight must be a 2-D int8 array (K x N), got "
                               f"{self.weight.dtype} {self.weight.shape}")
        n = self.weight.shape[1]
        for what in ("bias", "multiplier", "shift"):
            value = np.broadcast_to(np.asarray(getattr(self, what), dtype=np.int64), (n,)).copy()
            setattr(self, what, value)
        too_far = (self.shift >= MAX_SHIFT) & (self.multiplier != 0)
        if too_far.any():
            raise CompileError(f"layer {self.name!r}: requantization shift {int(self.shift[too_far].max())} is beyond "
                               f"the hardware's {MAX_SHIFT - 1}; the output scale is far too large for this layer "
                               "(recalibrate)")

    @property
    def k(self):
        return self.weight.shape[0]

    @property
    def n(self):
        return self.weight.shape[1]


def _need(config, memory, parameter, needed, detail):
    available = getattr(config, parameter)
    if needed > available:
        raise CapacityError(f"the {memory} needs {needed} words ({detail}) but {parameter}={available}: short by "
                            f"{needed - available}; raise {parameter} to at least {needed}")


@dataclass
class ProgramBuilder:
    """Accumulates instructions, listing comments and the weight image of one program."""
    config: SystolicConfig
    instructions: list = field(default_factory=list)
    comments: dict = field(default_factory=dict)
    weight_chunks: list = field(default_factory=list)
    wb_used: int = 0
    next_bank: int = 0
    next_region: int = 0

    def emit(self, opcode, comment=None, **fields):
        if comment:
            self.comments[len(self.instructions)] = comment
        self.instructions.append(Instruction(opcode, **fields))

    def weights(self, words, what):
        """Place ``words`` in the weight buffer (loaded by a READ_WEIGHTS emitted now); return their address."""
        words = np.asarray(words, dtype=np.int8).reshape(-1, self.config.lanes)
        address = self.wb_used
        _need(self.config, "weight buffer", "wb_depth", address + len(words), f"{what} and everything before it")
        self.emit(Opcode.READ_WEIGHTS, f"{what}: {len(words)} words", wb=address, count=len(words))
        self.weight_chunks.append(words)
        self.wb_used += len(words)
        return address

    def place_layer(self, layer: GemmLayer):
        """Put ``layer``'s weight tiles and parameter records in the weight buffer; return their addresses."""
        c = self.config
        kt, nt = math.ceil(layer.k / c.rows), math.ceil(layer.n / c.cols)
        tiles = [pack_weight_tile(layer.weight[k * c.rows:(k + 1) * c.rows, n * c.cols:(n + 1) * c.cols],
                                  c.rows, c.cols) for n in range(nt) for k in range(kt)]
        records = [pack_params(layer.bias[n * c.cols:(n + 1) * c.cols], layer.multiplier[n * c.cols:(n + 1) * c.cols],
                               layer.shift[n * c.cols:(n + 1) * c.cols], c.lanes) for n in range(nt)]
        base = self.weights(np.concatenate(tiles + records), f"layer {layer.name}: {nt}x{kt} weight tiles, "
                                                             f"{nt} parameter records")
        tile_address = {(n, k): base + (n * kt + k) * c.rows for n in range(nt) for k in range(kt)}
        param_address = {n: base + nt * kt * c.rows + n * PARAM_WORDS for n in range(nt)}
        return tile_address, param_address

    def gemm(self, layer: GemmLayer, m: int, x_ub: int, y_ub: int, placed):
        """Emit the instructions of ``layer`` on ``m`` rows at UB ``x_ub`` (KT blocks), writing UB ``y_ub``."""
        c = self.config
        tile_address, param_address = placed
        kt, nt = math.ceil(layer.k / c.rows), math.ceil(layer.n / c.cols)
        region = max(1, min(m, c.acc_depth // 2))
        groups = [(n, m0) for n in range(nt) for m0 in range(0, m, region)]
        pending_load = None
        for g, (n, m0) in enumerate(groups):
            rows = min(region, m - m0)
            acc = (self.next_region % 2) * region if c.acc_depth >= 2 * region else 0
            self.next_region += 1
            for k in range(kt):
                bank = pending_load if (k == 0 and pending_load is not None) else self._load(layer, tile_address, n, k)
                pending_load = None
                flags = Flag(bank) | (Flag.ACCUMULATE if k else Flag(0))
                self.emit(Opcode.MATMUL, f"{layer.name}: rows {m0}..{m0 + rows - 1}, K tile {k}, N tile {n}",
                          flags=flags, ub=x_ub + k * m + m0, acc=acc, count=rows)
            if g + 1 < len(groups):
                pending_load = self._load(layer, tile_address, groups[g + 1][0], 0)
            self.emit(Opcode.ACTIVATE, f"{layer.name}: N tile {n}, rows {m0}..{m0 + rows - 1}"
                      + (" + ReLU" if layer.relu else ""), flags=Flag.RELU if layer.relu else Flag(0),
                      acc=acc, ub=y_ub + n * m + m0, wb=param_address[n], count=rows)

    def _load(self, layer, tile_address, n, k):
        bank = self.next_bank
        self.next_bank ^= 1
        self.emit(Opcode.LOAD_WEIGHTS, f"{layer.name}: tile N{n} K{k} -> bank {bank}", flags=Flag(bank),
                  wb=tile_address[(n, k)])
        return bank

    def program(self, input_words: int, output_words: int, meta=None) -> SystolicProgram:
        lanes = self.config.lanes
        weights = np.concatenate(self.weight_chunks) if self.weight_chunks else np.zeros((0, lanes), np.int8)
        return SystolicProgram(self.config, list(self.instructions), weights, input_words, output_words,
                               dict(self.comments), meta or {})


def lower_gemm(layers, m: int, config: SystolicConfig, *, halt: bool = True) -> SystolicProgram:
    """A program running the chain of :class:`GemmLayer` ``layers`` on ``m`` input rows.

    The program reads the weights, reads the ``ceil(K0 / lanes) * m`` input words
    (``formats.systolic.pack_matrix`` of the ``m x K0`` int8 input), runs the layers with their activations kept in
    the unified buffer (two regions, alternated), writes the ``ceil(N_last / lanes) * m`` output words and, if
    ``halt``, halts.
    """
    layers = list(layers)
    if not layers:
        raise CompileError("lower_gemm needs at least one layer")
    if not isinstance(m, int) or m < 1:
        raise CompileError(f"the number of input rows must be a positive integer, got {m!r}")
    for before, after in zip(layers, layers[1:]):
        if before.n != after.k:
            raise CompileError(f"layer {after.name!r} takes {after.k} inputs but {before.name!r} gives {before.n}")
    lanes = config.lanes
    blocks = [math.ceil(layers[0].k / lanes)] + [math.ceil(layer.n / lanes) for layer in layers]
    # Two UB regions, alternated: region 0 holds the input and the even layers' outputs.
    region = [max(blocks[0::2]) * m, max(blocks[1::2]) * m]
    _need(config, "unified buffer", "ub_depth", sum(region),
          f"two activation regions of {region[0]} and {region[1]} words for {m} rows")
    builder = ProgramBuilder(config)
    placed = [builder.place_layer(layer) for layer in layers]
    builder.emit(Opcode.READ_HOST, f"input: {m} rows x {layers[0].k}", ub=0, count=blocks[0] * m)
    for i, layer in enumerate(layers):
        x_ub, y_ub = (0, region[0]) if i % 2 == 0 else (region[0], 0)
        builder.gemm(layer, m, x_ub, y_ub, placed[i])
    out_ub = region[0] if len(layers) % 2 else 0
    builder.emit(Opcode.WRITE_HOST, f"output: {m} rows x {layers[-1].n}", ub=out_ub, count=blocks[-1] * m)
    if halt:
        builder.emit(Opcode.HALT)
    return builder.program(blocks[0] * m, blocks[-1] * m,
                           meta=dict(m=m, layers=[dict(name=l.name, k=l.k, n=l.n, relu=l.relu) for l in layers]))


def gemm_program(x, layers, config: SystolicConfig, *, halt: bool = True):
    """``(program, input_words)`` for running ``layers`` on the int8 matrix ``x`` (``m x K``)."""
    x = np.asarray(x)
    if x.ndim != 2 or x.dtype != np.int8:
        raise CompileError(f"the GEMM input must be a 2-D int8 matrix, got {x.dtype} {x.shape}")
    program = lower_gemm(layers, x.shape[0], config, halt=halt)
    return program, pack_matrix(x, config.lanes)


# --- networks ---------------------------------------------------------------------------------------------------

@dataclass
class HostStep:
    """A numpy step on int8 values between device steps; ``apply`` maps one int8 array to the next."""
    name: str
    describe: str
    apply: object

    def run(self, x):
        return self.apply(x)
        yield  # a generator like DeviceStep.run, which it never suspends


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
        the int8 logits. ``sim.systolic.golden.run_network`` drives it with the golden model, ``sim.tb.systolic``
        with the RTL."""
        x = quantize_activation(images, self.input_scale)
        for step in self.steps:
            x = yield from step.run(x)
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
        cols = im2col(x.reshape(-1, c, h, w), layer.kernel, layer.stride, layer.padding, fill=0)
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
        return im2col(x, layer.kernel, layer.stride, layer.padding, fill=-128).max(axis=(4, 5)).astype(np.int8)
    return HostStep(layer.name, f"max pool {layer.kernel} stride {layer.stride} on int8", apply)


def _host_reshape(name, shape):
    def apply(x):
        return np.ascontiguousarray(x.reshape(-1, *shape))
    return HostStep(name, f"reshape to {shape}", apply)


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
    """Quantize ``model`` (an IR :class:`~compiler.ir.Model`) on ``calibration_x`` and lower it for ``config``.

    ``batch`` (images per device call) defaults to :func:`max_batch`; a larger one is refused with the capacity
    error of the memory that overflows. ``winograd`` lowers 3x3 stride-1 convolutions by Winograd F(2x2, 3x3)
    (needs ``config.winograd``); the others go through im2col with a note.
    """
    if winograd and not config.winograd:
        raise CompileError("winograd=True needs a Winograd build of the accelerator: SystolicConfig(winograd=True, "
                           "...) (or drop --winograd to lower convolutions by im2col)")
    from .winograd import WinogradLayer, WinogradStep, winograd_refusal
    notes = []
    qmodel = quantize_model(model, calibration_x, method=method)
    logits = trace(model, calibration_x)[-1]
    output_scale = calibrate_scale(logits, method)
    layers = model.layers
    steps, dense_run, shape = [], [], model.input_shape
    weighted = model.weighted()

    def requant(layer):
        q = qmodel.layers[layer.name]
        if q.multiplier is not None:
            return q.multiplier, q.shift
        return requant_params(q.input_scale * q.weight_scale.astype(np.float64) / output_scale)

    def flush():
        if dense_run:
            steps.append(DeviceStep("+".join(l.name for l in dense_run), list(dense_run), 1, config))
            dense_run.clear()

    i = 0
    while i < len(layers):
        layer = layers[i]
        relu = i + 1 < len(layers) and isinstance(layers[i + 1], Relu) and layer is not weighted[-1]
        if isinstance(layer, Dense):
            q = qmodel.layers[layer.name]
            dense_run.append(_gemm_layer(layer.name, q, q.weight.T, relu, *requant(layer)))
        else:
            flush()
            winograd_layer = None
            if isinstance(layer, Conv) and winograd:
                q = qmodel.layers[layer.name]
                why = winograd_refusal(layer.kernel, layer.stride)
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
            elif isinstance(layer, (Flatten, Reshape)):
                steps.append(_host_reshape(layer.name, layer.output_shape(shape)))
            elif isinstance(layer, Relu):
                steps.append(HostStep(layer.name, "ReLU on int8", lambda x: np.maximum(x, 0)))
            else:
                raise UnsupportedError(f"layer {layer.name!r} ({type(layer).__name__}) has no systolic lowering; "
                                       "supported: Dense, Conv, Relu, MaxPool, Flatten, Reshape")
        shape = layer.output_shape(shape)
        i += 2 if relu else 1
        if relu:
            shape = layers[i - 1].output_shape(shape)
    flush()
    device = [s for s in steps if not isinstance(s, HostStep)]
    if batch is None:
        batch = _largest_batch(device)
    else:
        for step in device:
            step.check(batch)  # a clear CapacityError if it does not fit
    for step in device:
        step.batch = batch
    return SystolicNetwork(name, config, steps, qmodel.input_scale, output_scale, batch, notes)
