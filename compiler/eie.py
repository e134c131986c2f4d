"""Lowering a compressed fully connected network to EIE memory images (:mod:`sparq.formats.eie`).

The core, :func:`lower`, takes plain arrays, one :class:`LayerSpec` per layer (the code matrix, its codebook, the
bias, the ReLU flag); :func:`lower_compressed` adapts a :class:`sparq.compiler.pipeline.CompressedModel`. Both return a
:class:`sparq.formats.eie.EieImage` that fits the given :class:`sparq.formats.eie.EieConfig` or raise
:class:`sparq.formats.eie.CapacityError` naming the memory, the overflow and the parameter to raise.

Fixed point (see :mod:`sparq.formats.eie`): each layer's codebook becomes 16-bit integers with ``w_frac`` fraction bits,
the largest ``w_frac`` (at most 15) for which every codebook entry fits 16 bits and no row's accumulator can
overflow 40 bits for any 16-bit input; the bias becomes Q8.8. Both round to nearest (ties to even).

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
    MAX_ZEROS,
    W_FRAC_MAX,
    WEIGHT_BITS,
    ZERO_BITS,
    EieImage,
    LayerEntry,
    pack_entries,
)

from .errors import ShapeError, UnsupportedError, WeightError
from .ir import Dense, Relu

__all__ = ["LayerSpec", "LoweredLayer", "lower", "lower_compressed", "lower_layer", "column_entries"]


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


def lower(specs, config):
    """Lower the layers ``specs`` (:class:`LayerSpec`, in order) for ``config``; return a fitting EieImage.

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
                     np.concatenate(spmats, axis=1), np.concatenate(biases, axis=1))
    image.check_fits()
    return image


def lower_compressed(compressed, config):
    """Lower a :class:`sparq.compiler.pipeline.CompressedModel` of Dense layers, each optionally followed by a Relu.

    Every Dense layer must be weight-shared (``compressed.shared``); its codes, codebook and float bias are lowered
    with :func:`lower`.
    """
    model = compressed.model
    if len(model.input_shape) != 1:
        raise UnsupportedError(f"EIE takes a flat input vector; the model's input shape is {model.input_shape}")
    specs = []
    for layer in model.layers:
        if isinstance(layer, Dense):
            if layer.name not in compressed.shared:
                raise UnsupportedError(f"layer {layer.name!r} is not weight-shared; compress it before lowering")
            shared = compressed.shared[layer.name]
            specs.append(LayerSpec(shared.codes, shared.codebook, layer.bias, relu=False))
        elif isinstance(layer, Relu) and specs and not specs[-1].relu:
            specs[-1].relu = True
        else:
            raise UnsupportedError(f"EIE runs Dense layers, each optionally followed by one Relu; layer "
                                   f"{layer.name!r} ({type(layer).__name__}) is not one")
    return lower(specs, config)
