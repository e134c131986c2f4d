"""Bit-exact golden model of EIE: runs a :class:`sparq.formats.eie.EieImage` on an input vector, layer by layer.

What it executes is the image, not the matrix it came from: pointers, packed entries, codebook and bias words. For
each layer, for each non-zero input activation ``a_j`` (zero activations are skipped, as the leading non-zero
detector skips them), every PE ``k`` reads ``p[j]`` and ``p[j+1]`` and walks its entries of column ``j``: an entry
``(v, z)`` moves the local row on by ``z + 1`` and adds ``codebook[v] * a_j`` to the accumulator of local row ``r``
(global row ``r * N + k``). Accumulators start at ``bias << w_frac``; after the last column
:func:`sparq.formats.eie.finish` rounds, saturates and applies the layer's ReLU. All integer; the accumulator cannot
overflow (the lowering guarantees it), so the order of the additions is immaterial and the model is vectorised.

Quantization error against the float network (:meth:`Golden.error_bound`): with ``e`` the bound on the input
error (``|x - a_0 / 256|`` for the network input) and, for a layer with ``w_frac = f``,
``dw = 2**-(f+1)`` (codebook rounding), every output ``i`` obeys, as long as nothing saturates,

    |y_i / 256 - y_float_i| <= sum over the row's non-zeros j of (|a_j| / 256 * dw + (|w_ij| + dw) * e_j)
                               + 2**-9 (bias rounding) + 2**-9 (output rounding)

where ``a`` is the golden input and ``w`` its fixed-point weight; ReLU does not increase it. The next layer uses it
as ``e``.
"""

from dataclasses import dataclass

import numpy as np

from sparq.formats.eie import ACT_BITS, ACT_FRAC, ImageFormatError, finish

__all__ = ["Golden", "Trace"]

_HALF_LSB = 2.0 ** -(ACT_FRAC + 1)


@dataclass(frozen=True)
class _Layer:
    """A layer's entries decoded from the image, all PEs together: column, global row and code of each entry (padding
    included, in memory order), the integer codebook, the accumulators' starting values and the table entry."""

    col: np.ndarray
    row: np.ndarray
    code: np.ndarray
    codebook: np.ndarray
    start: np.ndarray
    entry: object


@dataclass
class Trace:
    """A run: ``acts[0]`` the input, ``acts[l + 1]`` layer ``l``'s output (int64, Q8.8); ``saturated[l]`` the
    number of layer ``l``'s outputs clipped to 16 bits."""

    acts: list
    saturated: list

    @property
    def output(self):
        """The network's output (int64, Q8.8)."""
        return self.acts[-1]


def _decode(image, l):
    """Layer ``l`` of ``image`` as a :class:`_Layer`; raises ImageFormatError if an entry leaves its PE's rows."""
    entry, n = image.layers[l], image.config.n_pe
    cols, rows, codes = [], [], []
    for k in range(n):
        p = image.pointers(l)[k]
        v, z = image.entries(l, k)
        col = np.repeat(np.arange(entry.in_len), np.diff(p))
        steps = np.cumsum(z.astype(np.int64) + 1)
        local = steps - np.concatenate([[0], steps])[p[:-1]][col] - 1
        rows_here = len(range(k, entry.out_len, n))
        if local.size and local.max() >= rows_here:
            raise ImageFormatError(f"layer {l}, PE {k}: an entry points to local row {local.max()} but the PE has "
                                   f"{rows_here} rows; the image is corrupt")
        cols.append(col)
        rows.append(local * n + k)
        codes.append(v)
    rows_per_pe = image.config.rows_per_pe(entry.out_len)
    bias = image.bias[:, entry.bias_base:entry.bias_base + rows_per_pe].T.ravel()[:entry.out_len]
    return _Layer(np.concatenate(cols), np.concatenate(rows), np.concatenate(codes), image.codebooks[l],
                  bias << entry.w_frac, entry)


class Golden:
    """The golden model of one image; decodes the image once, then runs any number of inputs."""

    def __init__(self, image):
        self.image = image
        self.layers = [_decode(image, l) for l in range(len(image.layers))]

    def layer(self, l, a):
        """Layer ``l`` on integer activations ``a`` (Q8.8): returns ``(outputs, saturated count)``."""
        layer = self.layers[l]
        read = a[layer.col] != 0  # only the columns of non-zero activations are read
        acc = layer.start.copy()
        np.add.at(acc, layer.row[read], layer.codebook[layer.code[read]] * a[layer.col[read]])
        y, saturated = finish(acc, layer.entry.w_frac, layer.entry.relu)
        return y, int(saturated.sum())

    def run(self, a):
        """Run the network on integer input activations ``a`` (Q8.8, 16-bit); return a :class:`Trace`."""
        a = np.asarray(a)
        lo, hi = -(1 << (ACT_BITS - 1)), (1 << (ACT_BITS - 1)) - 1
        if a.shape != (self.image.input_len,) or not np.issubdtype(a.dtype, np.integer) or \
                a.size and (a.min() < lo or a.max() > hi):
            raise ValueError(f"the input must be {self.image.input_len} 16-bit integers (Q8.8), got {a.dtype} of "
                             f"shape {a.shape}; convert floats with the image's inputs(x) (sparq.formats.eie.EieImage.inputs)")
        trace = Trace([a.astype(np.int64)], [])
        for l in range(len(self.layers)):
            y, saturated = self.layer(l, trace.acts[-1])
            trace.acts.append(y)
            trace.saturated.append(saturated)
        return trace

    def infer(self, x):
        """The network's output for float input ``x``, as floats: the input through the image's input scale
        (:meth:`sparq.formats.eie.EieImage.inputs`), the integer run, the output through its output scale."""
        return self.image.outputs(self.run(self.image.inputs(x)).output)

    def classify(self, xs):
        """The argmax class (first on a tie) of the output for each row of the float batch ``xs`` (converted as in
        :meth:`infer`)."""
        return np.array([int(np.argmax(self.run(a).output)) for a in self.image.inputs(xs)])

    def error_bound(self, x, trace):
        """Per layer, the bound (float64 array, real units) on ``|golden output - float output|`` for the float
        input ``x`` and its golden ``trace``; valid while ``trace.saturated`` is all zero (module docstring)."""
        error = np.abs(np.asarray(x, dtype=np.float64) - trace.acts[0] / 2.0 ** ACT_FRAC)
        bounds = []
        for layer, a in zip(self.layers, trace.acts):
            dw = 2.0 ** -(layer.entry.w_frac + 1) * (layer.code != 0)
            w = np.abs(layer.codebook[layer.code]) / 2.0 ** layer.entry.w_frac
            per_entry = np.abs(a[layer.col]) / 2.0 ** ACT_FRAC * dw + (w + dw) * error[layer.col]
            error = np.bincount(layer.row, weights=per_entry, minlength=layer.entry.out_len) + 2 * _HALF_LSB
            bounds.append(error)
        return bounds
