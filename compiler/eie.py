"""Lowering a compressed fully connected network to EIE memory images (:mod:`sparq.formats.eie`).

The core, :func:`lower`, takes plain arrays, one :class:`LayerSpec` per layer (the code matrix, its codebook, the
bias, the ReLU flag); :func:`lower_compressed` adapts a :class:`sparq.compiler.pipeline.CompressedModel`. Both return a
:class:`sparq.formats.eie.EieImage` that fits the given :class:`sparq.formats.eie.EieConfig` or raise
:class:`sparq.formats.eie.CapacityError` naming the memory, the overflow and the parameter to raise.

EIE runs the fully connected layers of a network, as in the paper. A model's leading Flatten or Reshape is the
flattening of the input vector (row-major); any other leading part (a CNN's convolutions and pools) runs on the host,
in float, when asked (``host_prefix=True``): :func:`eie_split` says where the host part ends and :func:`eie_inputs`
turns float inputs into the image's Q8.8 input vectors through it.

Fixed point (see :mod:`sparq.formats.eie`): each layer's codebook becomes 16-bit integers with ``w_frac`` fraction bits,
the largest ``w_frac`` (at most 15) for which every codebook entry fits 16 bits and no row's accumulator can
overflow 40 bits for any 16-bit input; the bias becomes Q8.8. Both round to nearest (ties to even). Activations are
Q8.8, range [-128, 128): given calibration inputs, :func:`activation_scales` picks for the input and for each
layer's output a power-of-two scale under which the calibration peak stays below :data:`ACT_LIMIT` (half the range,
so unseen data has 2x headroom); the codebooks and biases absorb the scales (exact for a ReLU network, since
``relu(s x) = s relu(x)`` for ``s > 0``) and the image records the input and output scales. Data that fits Q8.8
keeps scale 1, and an image identical to an uncalibrated one.

Vectorised numpy throughout: the non-zeros are found once in (PE, column, local row) order and every later step is
an array operation over them, with no Python loop over non-zeros.
"""

from dataclasses import dataclass

import numpy as np

from sparq.formats.eie import (
    ACC_BITS,
    ACT_BITS,
    ACT_FRAC,
    CODEBOOK_SIZE,
    ENTRIES_PER_WORD,
    LAYER_BITS,
    MAX_ZEROS,
    W_FRAC_MAX,
    WEIGHT_BITS,
    WORD_BITS,
    ZERO_BITS,
    EieImage,
    LayerEntry,
    pack_entries,
)

from .errors import RangeError, ShapeError, UnsupportedError, WeightError
from .ir import Dense, Flatten, Relu, Reshape
from .ranges import check_ranges

__all__ = ["ACT_LIMIT", "LayerSpec", "LoweredLayer", "lower", "lower_compressed", "lower_layer", "column_entries",
           "eie_split", "eie_inputs", "activation_scales", "image_storage", "storage_lines"]

ACT_LIMIT = 64.0
"""The largest calibration activation magnitude a scale of 1 is kept for: half of Q8.8's 128."""


@dataclass(eq=False)
class LayerSpec:
    """One fully connected layer, ``y = relu?(codebook[codes] @ x + bias)``.

    ``codes``: integer (out_len, in_len), rows are outputs; code 0 is a pruned weight. ``codebook``: at most 16
    floats with ``codebook[0] == 0``. ``bias``: (out_len,) floats or None for zeros. ``relu``: apply ReLU to the
    output (False for a classifier's last layer).
    """

    codes: np.ndarray
    codebook: np.ndarray
    bias: np.ndarray = None
    relu: bool = True

    def __post_init__(self):
        self.codes = np.asarray(self.codes)
        self.codebook = np.asarray(self.codebook, dtype=np.float64)
        if self.codes.ndim != 2 or 0 in self.codes.shape or not np.issubdtype(self.codes.dtype, np.integer):
            raise ShapeError(f"codes must be a non-empty 2-D integer array (out_len, in_len), got {self.codes.dtype} "
                             f"of shape {self.codes.shape}")
        if self.codebook.ndim != 1 or not 1 <= len(self.codebook) <= CODEBOOK_SIZE:
            raise WeightError(f"EIE holds at most {CODEBOOK_SIZE} codebook entries (4-bit codes), got "
                              f"{self.codebook.size}; share the weights with bits <= 4")
        if not np.all(np.isfinite(self.codebook)) or self.codebook[0] != 0.0:
            raise WeightError(f"codebook entry 0 must be exactly 0.0 (padding entries use it) and all entries finite, "
                              f"got {self.codebook[:4]}...; share the weights with keep_zero=True")
        if self.codes.min() < 0 or self.codes.max() >= len(self.codebook):
            raise WeightError(f"codes must index the {len(self.codebook)}-entry codebook, got codes in "
                              f"[{self.codes.min()}, {self.codes.max()}]")
        self.bias = np.zeros(self.out_len) if self.bias is None else np.asarray(self.bias, dtype=np.float64)
        if self.bias.shape != (self.out_len,) or not np.all(np.isfinite(self.bias)):
            raise ShapeError(f"bias must be {self.out_len} finite values (one per output row), got shape "
                             f"{self.bias.shape}")
        self.relu = bool(self.relu)

    @property
    def out_len(self):
        return self.codes.shape[0]

    @property
    def in_len(self):
        return self.codes.shape[1]


def _nonzeros(codes, n_pe):
    """The non-zero codes in (PE, column, local row) order: arrays ``(pe, col, local_row, code)``."""
    out_len, in_len = codes.shape
    rows = -(-out_len // n_pe)
    if rows * n_pe != out_len:
        codes = np.concatenate([codes, np.zeros((rows * n_pe - out_len, in_len), dtype=codes.dtype)])
    cube = codes.reshape(rows, n_pe, in_len).transpose(1, 2, 0)  # cube[k, j, r] = codes[r * n_pe + k, j]
    pe, col, row = np.nonzero(cube)
    return pe, col, row, cube[pe, col, row]


def _entries(codes, n_pe):
    """The non-zeros in (PE, column, local row) order, ``(pe, local_row, code, gap)``, where ``gap`` counts the zeros
    before each inside its PE's slice of the column, and the entries (padding included) per PE and column."""
    out_len, in_len = codes.shape
    pe, col, row, code = _nonzeros(codes, n_pe)
    group = pe * in_len + col
    previous = np.empty_like(row)
    previous[:1] = -1
    previous[1:] = row[:-1]
    previous[1:][group[1:] != group[:-1]] = -1  # the first non-zero of a slice counts from row -1
    gap = row - previous - 1
    counts = np.bincount(group, weights=1 + (gap >> ZERO_BITS), minlength=n_pe * in_len)
    return pe, row, code, gap, counts.astype(np.int64).reshape(n_pe, in_len)


def column_entries(codes, n_pe):
    """Entries (padding included) of each PE's slice of each column: int64 (n_pe, in_len).

    ``sum - count_nonzero(codes)`` is the number of padding entries.
    """
    return _entries(np.asarray(codes), n_pe)[-1]


@dataclass(eq=False)
class LoweredLayer:
    """One layer in EIE storage: ``ptr`` int64 (n_pe, in_len + 1), ``spmat`` uint64 (n_pe, words) and
    ``code_counts`` int64 (out_len, 16), how many times each output row uses each code."""

    ptr: np.ndarray
    spmat: np.ndarray
    code_counts: np.ndarray


def lower_layer(codes, n_pe):
    """One layer's pointers and sparse-matrix words for ``n_pe`` PEs, as a :class:`LoweredLayer`.

    Column ``j`` of PE ``k`` is entries ``ptr[k, j] .. ptr[k, j+1] - 1``: per non-zero, ``gap // 16`` padding
    entries ``(0, 15)`` then ``(code, gap % 16)``, where ``gap`` counts the zeros before it in the PE's slice.
    Every PE gets the same number of words, enough for the fullest one.
    """
    codes = np.asarray(codes)
    out_len, in_len = codes.shape
    pe, row, code, gap, counts = _entries(codes, n_pe)
    pads = gap >> ZERO_BITS
    ptr = np.zeros((n_pe, in_len + 1), dtype=np.int64)
    np.cumsum(counts, axis=1, out=ptr[:, 1:])
    per_pe = ptr[:, -1]
    slots = -(-int(per_pe.max()) // ENTRIES_PER_WORD) * ENTRIES_PER_WORD
    stream_start = np.concatenate([[0], np.cumsum(per_pe)[:-1]])
    position = np.cumsum(1 + pads) - 1 - stream_start[pe]  # each non-zero comes after its padding entries
    is_entry = np.arange(slots) < per_pe[:, None]
    v = np.zeros((n_pe, slots), dtype=np.uint8)
    z = np.where(is_entry, MAX_ZEROS, 0).astype(np.uint8)  # every slot not holding a non-zero is padding
    v[pe, position] = code
    z[pe, position] = gap & MAX_ZEROS
    global_row = row * n_pe + pe
    code_counts = np.bincount(global_row * CODEBOOK_SIZE + code, minlength=(out_len + n_pe) * CODEBOOK_SIZE)
    return LoweredLayer(ptr, pack_entries(v, z), code_counts.reshape(-1, CODEBOOK_SIZE)[:out_len])


def _fixed(values, frac, what, layer):
    """``values`` rounded to 16-bit integers with ``frac`` fraction bits, or a clear error if one does not fit."""
    fixed = np.rint(np.asarray(values, dtype=np.float64) * 2.0 ** frac)
    half = 1 << 15  # codebook entries (WEIGHT_BITS) and biases (ACT_BITS) are both 16-bit
    if np.any(fixed < -half) or np.any(fixed >= half):
        raise WeightError(f"layer {layer}: {what} {np.abs(values).max():.4g} does not fit 16-bit fixed point with "
                          f"{frac} fraction bits (|value| < {half / 2 ** frac:g}); rescale the layer")
    return fixed.astype(np.int64)


def _w_frac(codebook, code_counts, bias, layer):
    """The layer's ``w_frac``: the most fraction bits (<= 15) for which the codebook fits 16 bits and no row's
    accumulator, ``bias << f`` plus 16-bit inputs times the row's weights, can leave 40 bits."""
    for f in range(W_FRAC_MAX, -1, -1):
        scaled = np.rint(codebook * 2.0 ** f)
        if np.any(np.abs(scaled) >= 1 << (WEIGHT_BITS - 1)):
            continue
        worst = (np.abs(bias) << f) + (code_counts @ np.abs(scaled).astype(np.int64) << (ACT_BITS - 1))
        if worst.max() < 1 << (ACC_BITS - 1):
            return f
    raise WeightError(f"layer {layer}: its weights are too large for 16-bit codebook entries and a {ACC_BITS}-bit "
                      f"accumulator even with no fraction bits; rescale the layer")


def lower(specs, config, input_scale=1.0, output_scale=1.0):
    """Lower the layers ``specs`` (:class:`LayerSpec`, in order) for ``config``; return a fitting EieImage that
    records ``input_scale`` and ``output_scale`` (see :mod:`sparq.formats.eie`).

    Raises ``sparq.compiler.errors`` errors for bad layers (codebook, codes, shapes that do not chain) and
    :class:`sparq.formats.eie.CapacityError` when the image does not fit ``config``'s memories.
    """
    specs = list(specs)
    if not specs:
        raise ShapeError("a network needs at least one layer")
    for l, (spec, nxt) in enumerate(zip(specs, specs[1:])):
        if nxt.in_len != spec.out_len:
            raise ShapeError(f"layer {l + 1} takes {nxt.in_len} inputs but layer {l} gives {spec.out_len} outputs; "
                             f"the layers must chain")
    n = config.n_pe
    entries, codebooks, ptrs, spmats, biases = [], [], [], [], []
    ptr_base = spmat_base = bias_base = 0
    for l, spec in enumerate(specs):
        lowered = lower_layer(spec.codes, n)
        bias = _fixed(spec.bias, ACT_FRAC, "bias", l)
        codebook = np.zeros(CODEBOOK_SIZE)
        codebook[:len(spec.codebook)] = spec.codebook
        w_frac = _w_frac(codebook, lowered.code_counts, bias, l)
        rows = config.rows_per_pe(spec.out_len)
        local_bias = np.zeros(rows * n, dtype=np.int64)
        local_bias[:spec.out_len] = bias
        entries.append(LayerEntry(spec.in_len, spec.out_len, ptr_base, spmat_base, bias_base, w_frac, spec.relu))
        codebooks.append(_fixed(codebook, w_frac, "codebook entry", l))
        ptrs.append(lowered.ptr)
        spmats.append(lowered.spmat)
        biases.append(local_bias.reshape(rows, n).T)  # local row r of PE k is row r * n + k
        ptr_base += spec.in_len + 1
        spmat_base += lowered.spmat.shape[1]
        bias_base += rows
    image = EieImage(config, entries, np.array(codebooks), np.concatenate(ptrs, axis=1),
                     np.concatenate(spmats, axis=1), np.concatenate(biases, axis=1), input_scale, output_scale)
    image.check_fits()
    return image


def eie_split(model, host_prefix=False):
    """``(host layers, EIE layers)`` of ``model``: EIE runs the trailing run of Dense layers (each optionally
    followed by one Relu); before it, Flatten and Reshape only flatten the input, and any other layer is refused
    unless ``host_prefix`` lets the host run it."""
    layers = model.layers
    start = len(layers)
    while start > 0 and isinstance(layers[start - 1], (Dense, Relu)):
        start -= 1
    while start < len(layers) and not isinstance(layers[start], Dense):
        start += 1
    fc = layers[start:]
    if not fc:
        raise UnsupportedError(f"EIE runs fully connected layers and this model ends in {layers[-1].name!r} "
                               f"({type(layers[-1]).__name__}); lower it with --target systolic")
    for before, layer in zip(fc, fc[1:]):
        if isinstance(layer, Relu) and not isinstance(before, Dense):
            raise UnsupportedError(f"EIE runs Dense layers, each optionally followed by one Relu; layer "
                                   f"{layer.name!r} follows another Relu")
    host = [layer for layer in layers[:start] if not isinstance(layer, (Flatten, Reshape))]
    if host and not host_prefix:
        raise UnsupportedError(f"EIE runs fully connected layers; layer {host[0].name!r} ({type(host[0]).__name__}) "
                               f"is not one. Lower with --target systolic, or run the layers before "
                               f"{fc[0].name!r} on the host (host_prefix=True), as the EIE paper does for convolutions")
    return list(layers[:start]), list(fc)


def _host_forward(host, x):
    """The float inputs ``x`` through the host layers, one flat vector per sample (row-major)."""
    x = np.asarray(x, dtype=np.float32)
    for layer in host:
        x = layer.forward(x)
    return x.reshape(len(x), -1)


def eie_inputs(model, image, x, host_prefix=False):
    """The Q8.8 input vectors (int64, (n, ``image.input_len``)) of float inputs ``x`` (a batch of ``model``'s input
    shape) for an image lowered from ``model``: the host layers, flattening, then the image's input scale
    (:meth:`sparq.formats.eie.EieImage.inputs`, which refuses a value that would saturate)."""
    host, _ = eie_split(model, host_prefix)
    return image.inputs(_host_forward(host, x))


def _scale(peak):
    """The power of two ``s >= 1`` under which ``peak / s`` stays below :data:`ACT_LIMIT`."""
    return 1.0 if peak <= ACT_LIMIT else 2.0 ** int(np.ceil(np.log2(peak / ACT_LIMIT)))


def activation_scales(dense_layers, relus, x):
    """Power-of-two scales ``[s_0, s_1, ..., s_L]`` of the input and of each layer's output (its accumulator output
    before any ReLU, and its bias) from the float run of ``dense_layers`` (with ReLU after layer ``l`` where
    ``relus[l]``) on flat calibration inputs ``x``; see the module docstring."""
    a = np.asarray(x, dtype=np.float64)
    peaks = [np.abs(a).max(initial=0.0)]
    for layer, relu in zip(dense_layers, relus):
        y = a @ layer.weight.T.astype(np.float64) + layer.bias
        peaks.append(max(np.abs(y).max(initial=0.0), np.abs(layer.bias).max(initial=0.0)))
        a = np.maximum(y, 0) if relu else y
    if not np.all(np.isfinite(peaks)):
        raise RangeError("the calibration inputs drive the network to NaN or infinite activations; check the data")
    return [_scale(p) for p in peaks]


def lower_compressed(compressed, config, calibration_x=None, host_prefix=False):
    """Lower a :class:`sparq.compiler.pipeline.CompressedModel` whose fully connected layers EIE runs (see
    :func:`eie_split`; ``host_prefix`` lets a leading non-FC part run on the host).

    Every Dense layer EIE runs must be weight-shared (``compressed.shared``); its codes, codebook and float bias are
    lowered with :func:`lower`. With ``calibration_x`` (float inputs of the model's input shape: the user's data),
    the activations are scaled into Q8.8 by :func:`activation_scales` and the image records the scales; without,
    the scales are 1 and nothing checks that the activations fit.
    """
    check_ranges(compressed.model, calibration_x, "EIE lowering")
    host, fc = eie_split(compressed.model, host_prefix)
    dense, relus = [], []
    for layer in fc:
        if isinstance(layer, Dense):
            dense.append(layer)
            relus.append(False)
        else:
            relus[-1] = True  # eie_split checked that a Relu follows a Dense
    for layer in dense:
        if layer.name not in compressed.shared:
            raise UnsupportedError(f"layer {layer.name!r} is not weight-shared; compress it before lowering")
    scales = [1.0] * (len(dense) + 1)
    if calibration_x is not None:
        scales = activation_scales(dense, relus, _host_forward(host, calibration_x))
    specs = [LayerSpec(compressed.shared[layer.name].codes,
                       compressed.shared[layer.name].codebook.astype(np.float64) * (scales[l] / scales[l + 1]),
                       layer.bias.astype(np.float64) / scales[l + 1], relu)
             for l, (layer, relu) in enumerate(zip(dense, relus))]
    return lower(specs, config, scales[0], scales[-1])


def image_storage(image, report=None):
    """The EIE image's own size, by memory, against float32 and (given the compression ``report`` of the model it
    was lowered from) against the Deep Compression storage figures of the same layers.

    Returns ``{"memories": {memory: bits}, "total_bits", "float32_bits", "ratio", "bytes": {...}}`` plus, with
    ``report``, ``"deep_compression": {format: bits}`` and ``"deep_compression_ratio"`` of its layer rows. The
    memories are the pointers (``n_pe * (in_len + 1)`` per layer, ``ptr_width`` bits each), the sparse matrix
    (64-bit words, every PE padded to the fullest PE's length), the codebooks (16 x 16 bits per layer, one copy),
    the biases (16 bits per PE-local row) and the layer table; float32 is the dense weights and biases.

    Why the image is larger than Deep Compression's count, and pointers dominate when a layer is short and wide:
    Deep Compression stores each layer as one relative-index stream, 4-bit code plus index per non-zero and nothing
    per column. EIE needs random access per PE and per column, so every PE holds ``in_len + 1`` pointers for every
    layer, however few of the layer's rows it owns: a layer with few outputs and many inputs (a classifier's last
    layer, 10 x 100 on 64 PEs) has under one non-zero per column per PE, and its 64 x 101 pointers of ~17 bits each
    outweigh its entries many times over. The padding entries that bridge zero runs longer than 15 in each PE's
    slice, and the words up to the fullest PE's length, add to the sparse matrix too.
    """
    n = image.config.n_pe
    memories = {"pointers": int(image.ptr.size) * image.config.ptr_width,
                "sparse_matrix": int(image.spmat.size) * WORD_BITS,
                "codebook": int(image.codebooks.size) * WEIGHT_BITS,
                "biases": int(image.bias.size) * ACT_BITS,
                "layer_table": len(image.layers) * LAYER_BITS}
    total = sum(memories.values())
    float32 = sum(32 * (layer.in_len * layer.out_len + layer.out_len) for layer in image.layers)
    storage = {"n_pe": n, "memories": memories, "total_bits": total, "float32_bits": float32,
               "ratio": float32 / total, "bytes": {name: bits / 8 for name, bits in memories.items()}}
    if report is not None:
        rows = report["layers"][-len(image.layers):]
        shapes = [list(row["shape"]) for row in rows]
        if len(rows) != len(image.layers) or shapes != [[e.out_len, e.in_len] for e in image.layers]:
            raise ShapeError(f"the compression report's last layers {shapes} are not the image's "
                             f"{[[e.out_len, e.in_len] for e in image.layers]}; give the report of the lowered model")
        formats = rows[0]["bits"].keys()
        storage["deep_compression"] = {f: sum(row["bits"][f] for row in rows) for f in formats}
        storage["deep_compression_ratio"] = {f: float32 / bits for f, bits in storage["deep_compression"].items()
                                             if f != "original"}
    return storage


def storage_lines(storage):
    """The lines a report prints for :func:`image_storage`'s result: each memory's bytes and share, the total and
    its ratio against float32, and the Deep Compression figures next to it."""
    total = storage["total_bits"]
    lines = [f"EIE image ({storage['n_pe']} PEs): {total / 8:,.0f} bytes, {storage['ratio']:.1f}x smaller than "
             f"float32 ({storage['float32_bits'] / 8:,.0f} bytes)"]
    lines += [f"  {name.replace('_', ' '):14s} {bits / 8:>12,.0f} bytes  {100 * bits / total:5.1f} %"
              for name, bits in storage["memories"].items()]
    if "deep_compression" in storage:
        figures = ", ".join(f"{f} {bits / 8:,.0f} bytes ({storage['deep_compression_ratio'][f]:.1f}x)"
                            for f, bits in storage["deep_compression"].items() if f != "original")
        quantized = storage["deep_compression"]["quantized"]
        lines.append(f"  Deep Compression storage of the same layers: {figures}; the image is "
                     f"{total / quantized:.2f}x the pruned + quantized figure: every PE keeps a pointer per column of "
                     f"every layer ({100 * storage['memories']['pointers'] / total:.0f} % of the image) and pads its "
                     f"sparse matrix to the fullest PE (see sparq.compiler.eie.image_storage)")
    return lines
